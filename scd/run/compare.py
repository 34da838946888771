"""The reproduction report: a fresh run's tables against the committed ones, cell by cell.

The committed results are ``results/<profile>/`` as of git ``HEAD`` (read from git, so a
half-finished local run cannot stand in for it; the working tree when there is no git). Tables
are recomputed from the committed per-sample rows for the fresh run's tasks and seeds, so a
one-seed run is compared with the committed seed, never with a three-seed mean.
"""
from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scd.core import environment
from scd.analysis import tables
from scd.core.io import atomic_write_text, project_path, read_json, write_csv
from scd.analysis.products import sfs_tfs
from scd.analysis.export import has_results, load_runs, results_dir

if TYPE_CHECKING:
    from scd.core.config import Config


RUN_VALUES = ("primary", "gold_loss", "n_unparsed")


def committed_results(profile: str, dest: Path) -> tuple[Path | None, str]:
    """Extract ``results/<profile>`` at git HEAD into ``dest``; -> (results results_root or None, what it is)."""
    repo, rel = project_path("."), f"results/{profile}"
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        blob = subprocess.run(["git", "-C", str(repo), "archive", "HEAD", rel], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        local = repo / rel
        return (repo / "results", f"working tree {local}") if (local / "runs.csv").is_file() else (None, "none")
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "results", f"git HEAD {commit}:{rel}"


def _cells(table: str, frame: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    rows = []
    for _, r in frame.iterrows():
        name = f"{table}: " + " ".join(f"{k}={r[k]}" for k in keys)
        rows += [{"cell": f"{name} {v}", "x": r[v]} for v in values if v in frame]
    return pd.DataFrame(rows)


def table_cells(cfg: Config, results_root) -> pd.DataFrame:
    """Every compared cell of a results folder as (cell, value): per-seed test scores, Table 1
    with intervals, SFS/TFS subset scores per seed, and the claims."""
    runs = load_runs(cfg, results_root)
    scores = tables.score_table(cfg, results_root=results_root)
    sub = sfs_tfs(cfg, results_root)
    parts = [
        _cells("runs", runs, ["model", "task", "seed"], list(RUN_VALUES)),
        _cells("table1", scores, ["model", "task"], ["mean", "lo", "hi", "diff_vs_teacher", "diff_lo", "diff_hi"]),
        _cells("sfs_tfs", sub["scores"], ["model", "domain", "task", "seed"], ["score"]),
        _cells("claims", sub["claims"], ["claim"], ["diff", "lo", "hi", "verdict"]),
    ]
    return pd.concat(parts, ignore_index=True)


def compare(committed: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    both = committed.merge(new, on="cell", how="outer", suffixes=("_committed", "_new"), indicator=True)
    ref, cur = both["x_committed"], both["x_new"]
    numeric = pd.to_numeric(ref, errors="coerce").notna() & pd.to_numeric(cur, errors="coerce").notna()
    diff = pd.Series(np.nan, index=both.index)
    diff[numeric] = pd.to_numeric(cur[numeric]) - pd.to_numeric(ref[numeric])
    same = (ref.astype(str) == cur.astype(str)) | (numeric & (diff == 0)) | (ref.isna() & cur.isna())
    return pd.DataFrame({"cell": both["cell"], "committed": ref, "new": cur, "difference": diff,
                         "status": np.where(both["_merge"] != "both", "missing", np.where(same, "identical", "differs"))})


def verdict(cells: pd.DataFrame) -> str:
    differs, missing = cells[cells.status == "differs"], cells[cells.status == "missing"]
    if differs.empty and missing.empty:
        return f"identical: all {len(cells)} cells equal the committed values"
    parts = []
    if not differs.empty:
        size = differs["difference"].abs()  # NaN for a changed verdict or other text
        worst = differs.loc[size.sort_values(ascending=False).index]
        top = "; ".join(f"{r.cell} {r.committed} -> {r.new}" for r in worst.head(5).itertuples())
        parts.append(f"{len(differs)} of {len(cells)} cells differ, max |difference| {size.max():.3g} (largest: {top})")
    if not missing.empty:
        parts.append(f"{len(missing)} cells present on one side only (e.g. {missing.cell.iloc[0]})")
    return "; ".join(parts)


def write_report(cfg: Config, new_root, out_dir, scratch: Path) -> tuple[str, Path]:
    """Compare ``new_root`` with the committed results; write report.md and report_cells.csv."""
    out_dir = Path(out_dir)
    ref_root, what = committed_results(cfg.profile, scratch)
    head = [f"# Reproduction report: profile `{cfg.profile}`, tasks {', '.join(cfg.tasks)}, seeds "
            f"{', '.join(map(str, cfg.seeds))}", "", f"Reference: {what}.", ""]
    if ref_root is None or not has_results(cfg, ref_root):
        line = (f"no committed results for profile {cfg.profile} with tasks {list(cfg.tasks)} and seeds "
                f"{list(cfg.seeds)}: nothing to compare")
        cells = pd.DataFrame(columns=["cell", "committed", "new", "difference", "status"])
    else:
        cells = compare(table_cells(cfg, ref_root), table_cells(cfg, new_root))
        line = verdict(cells)
        env_ref = _read(results_dir(cfg, ref_root) / "environment.json")
        env_new = _read(results_dir(cfg, new_root) / "environment.json")
        diffs = environment.differences(env_ref, env_new)
        head += ["Environment: " + ("same CPU kind, thread count and library versions as the committed run, so "
                                    "the numbers should be bitwise identical." if not diffs else
                                    "differs from the committed run's (" + "; ".join(diffs) + "): float results "
                                    "may differ in the last digits and, through training, beyond."), ""]
    head += [f"**Verdict: {line}**", ""]
    shown = cells[cells.status != "identical"].head(200)
    body = shown.to_markdown(index=False) if len(shown) else "(no differing cells)"
    write_csv(out_dir / "report_cells.csv", cells)
    path = atomic_write_text(out_dir / "report.md", "\n".join(head) + "\n" + body + "\n")
    return line, path


def _read(path: Path) -> dict | None:
    return read_json(path) if path.is_file() else None
