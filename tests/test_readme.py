"""The README stays a user's document that cannot go stale: its results section is what the
committed results give, it is short, it names only paths that exist, and neither it nor docs/ nor
the package refers to issue numbers."""
import re
import subprocess
from pathlib import Path

import pytest

from scd.run.readme import BEGIN, END, readme_block, results_section, update_readme

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
ISSUE = re.compile(r"issue [0-9]+", re.IGNORECASE)


def test_readme_results_section_is_the_committed_results():
    assert readme_block(README) == results_section(REPO / "results", "cpu"), (
        "README.md's results section differs from results/cpu/: run "
        "`python -c \"from scd.run.readme import update_readme; update_readme('README.md', 'results')\"`")


def test_readme_is_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 230


def test_no_issue_numbers_in_readme_docs_or_package():
    files = [README, *(REPO / "docs").rglob("*.md"), *(REPO / "scd").rglob("*.py")]
    hits = [f"{f.relative_to(REPO)}:{n}: {line.strip()}" for f in files
            for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1) if ISSUE.search(line)]
    assert not hits, "\n".join(hits)


def repo_roots() -> set[str]:
    """Top-level names of the repository's files (tracked or not, never ignored ones such as runs/)."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, text=True, check=True).stdout
        return {line.split("/")[0] for line in out.splitlines() if line}
    except (OSError, subprocess.CalledProcessError):
        return {p.name for p in REPO.iterdir() if not p.name.startswith(".") or p.name == ".ci"}


def named_paths(text: str) -> set[str]:
    """Every token of the README, in inline code or in a code block, that names a repository path:
    its first part is a top-level file or folder of the repository (placeholders left out)."""
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
    inline = re.findall(r"`([^`\s]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    tokens = inline + [t for b in blocks for t in b.split()]
    roots = repo_roots()
    found = set()
    for token in tokens:
        token = token.strip("\"'(),;:")
        if not token or any(c in token for c in "<>*…{}$=") or "://" in token:
            continue
        if token.split("/")[0] in roots and ("/" in token or "." in token):
            found.add(token)
    return found


def test_readme_names_only_existing_paths():
    named = named_paths(README.read_text(encoding="utf-8"))
    assert {"scd/core/methods.py", "configs/accelerate/fsdp.yaml", "notebooks/05_table1.ipynb"} <= named
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"README names paths that do not exist: {missing}"


@pytest.mark.parametrize("page", [README, *sorted((REPO / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_links_and_paths_of_readme_and_docs_exist(page):
    text = page.read_text(encoding="utf-8")
    links = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in t and not t.startswith("#")]
    missing = [t for t in links if t and not (page.parent / t).exists()]
    missing += [p for p in named_paths(text) if not (REPO / p).exists()]
    assert not missing, f"{page.name} names paths that do not exist: {sorted(missing)}"


def test_ci_runs_the_readme_test_command():
    command = "SCD_DATA_DIR=../shared/data make test"
    assert command in README.read_text(encoding="utf-8")
    assert command in (REPO / ".ci" / "run").read_text().splitlines()


def test_update_readme_replaces_only_the_marked_block(tmp_path):
    page = tmp_path / "README.md"
    page.write_text(f"# title\n\n{BEGIN}\nold numbers\n{END}\n\nafter\n", encoding="utf-8")
    assert update_readme(page, REPO / "results")
    text = page.read_text(encoding="utf-8")
    assert text.startswith(f"# title\n\n{BEGIN}\n") and text.endswith(f"{END}\n\nafter\n")
    assert "old numbers" not in text and readme_block(page) == results_section(REPO / "results")
    assert not update_readme(page, REPO / "results")  # already current: the file is left alone
    page.write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="results:begin"):
        update_readme(page, REPO / "results")
