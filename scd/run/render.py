"""Executing the numbered notebooks with papermill without ever leaving one half-written: each
runs into a scratch copy that replaces the target only once its last cell has run."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from scd.core.io import project_path


def notebook_paths(notebooks_dir: str | Path = "notebooks") -> list[Path]:
    paths = sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no numbered notebooks in {notebooks_dir}")
    return paths


class NotebookFailed(RuntimeError):
    """A notebook stopped with an error; its executed copy is kept at ``path``."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = path


def run_notebooks(parameters: dict, notebooks_dir: str | Path = "notebooks", output_dir: str | Path | None = None,
                  kernel: str = "scd", log=print, logs_dir: str | Path | None = None) -> dict[str, float]:
    """Execute every notebook in order with papermill. Each runs into a scratch copy that replaces
    ``output_dir/<name>`` (default: the notebook itself) only once it has run to the end; a failed
    copy stays in ``logs_dir`` and the committed notebook is left as it was.

    Kernels start in the caller's working folder, so relative paths mean what the user typed."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    logs = Path(logs_dir) if logs_dir else Path(output_dir or notebooks_dir) / ".executing"
    logs.mkdir(parents=True, exist_ok=True)
    timings = {}
    for path in notebook_paths(notebooks_dir):
        target = Path(output_dir or path.parent) / path.name
        scratch = logs / path.name
        declared = papermill.inspect_notebook(str(path))
        start = time.time()
        try:
            papermill.execute_notebook(str(path), str(scratch), kernel_name=kernel,
                                       parameters={k: v for k, v in parameters.items() if k in declared},
                                       cwd=os.getcwd(), progress_bar=False,
                                       extra_arguments=["--IPKernelApp.log_level=ERROR"])
        except PapermillExecutionError as err:
            first = next((line for line in str(err.source).splitlines() if line.strip()), "")
            raise NotebookFailed(f"{path.name} failed in cell {err.cell_index} ({first!r}): {err.ename}: {err.evalue}; "
                                 f"the executed copy is {scratch}; {target} is unchanged", scratch) from err
        except BaseException:
            log(f"{path.name} interrupted; {target} is unchanged (partial copy: {scratch})")
            raise
        target.parent.mkdir(parents=True, exist_ok=True)
        without_machine_paths(scratch)
        shutil.move(str(scratch), str(target))  # a rename when both are on one file system
        timings[path.name] = time.time() - start
        log(f"{path.name}: {timings[path.name]:.0f}s -> {target}")
    if not logs_dir and not any(logs.iterdir()):
        logs.rmdir()
    return timings


def without_machine_paths(path: Path) -> None:
    """A rendered notebook as it is committed: paths inside this checkout written relative to
    ``notebooks/`` (the folder a reader's kernel starts in), so it shows no machine's folders and
    its parameters still find the project's results in JupyterLab; and no ``figures_dir`` among
    its recorded parameters, so re-running it as committed (a reader, nbval) shows the figures
    without rewriting the committed files; no stored widget state (papermill carries it over from
    the notebook it executes)."""
    import json

    checkout = str(project_path(".").resolve())
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text.replace(checkout + "/", "../").replace(f'"{checkout}"', '".."'))
    for cell in nb["cells"]:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            lines = "".join(cell["source"]).splitlines(keepends=True)
            cell["source"] = [line for line in lines if not line.startswith("figures_dir =")]
    nb.get("metadata", {}).get("papermill", {}).get("parameters", {}).pop("figures_dir", None)
    nb.get("metadata", {}).pop("widgets", None)  # progress-widget state: dead weight once the bars are gone
    fixed = json.dumps(nb, indent=1, ensure_ascii=False)
    if fixed != text:
        path.write_text(fixed, encoding="utf-8")
