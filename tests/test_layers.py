"""The package's folders are its layers: a module imports only from its own layer or the ones below,
counting every import (those inside functions and under TYPE_CHECKING too), and no modules import
each other in a cycle."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "scd"
# bottom to top; a top-level module of the package is its own layer
LAYERS = ["core", "data", "scoring", "train", "kd", "stages", "analysis", "run", "api", "cli", "__main__"]


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def imports_of(path: Path) -> set[str]:
    """Every ``scd`` module ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "scd"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "scd":
            for alias in node.names:  # `from scd.kd import trainer` names a module; `from scd.kd.trainer import X` does not
                sub = f"{node.module}.{alias.name}"
                found.add(sub if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() else node.module)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> str:
    return module.split(".")[1] if "." in module else "scd"


def test_every_module_sits_in_a_layer():
    stray = [m for m in graph() if layer_of(m) not in LAYERS and m != "scd"]
    assert not stray, f"modules outside the layer folders {LAYERS}: {stray}"


def test_no_import_from_a_higher_layer():
    upward = [f"{m} imports {d}" for m, deps in graph().items() for d in deps
              if layer_of(m) in LAYERS and layer_of(d) in LAYERS and LAYERS.index(layer_of(d)) > LAYERS.index(layer_of(m))]
    assert not upward, "imports against the layer order " + " < ".join(LAYERS) + ":\n" + "\n".join(sorted(upward))


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle():
    edges = {m: {d for d in deps if d != m and not d.endswith("__init__")} for m, deps in graph().items()}
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_longest_import_chain_is_short():
    """Layers bound the depth: a chain climbs at most one module per layer plus a few inside one."""
    edges = graph()
    memo: dict[str, int] = {}

    def depth(m):
        if m not in memo:
            memo[m] = 0
            memo[m] = 1 + max((depth(d) for d in edges.get(m, ()) if d in edges and d != m), default=0)
        return memo[m]
    longest = max(edges, key=depth)
    assert depth(longest) <= 12, f"{longest} heads an import chain of {depth(longest)} modules"
