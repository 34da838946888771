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
ROUNDING = 1e-6  # relative: a difference this small is float rounding, within any noise


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


def _per_seed(cfg: Config, results_root, seeds) -> tuple[pd.DataFrame, dict]:
    """The per-seed tables of ``seeds``: runs and SFS/TFS subset scores (and the claims, for the record)."""
    sub = cfg.replace(seeds=tuple(seeds))
    return load_runs(sub, results_root), sfs_tfs(sub, results_root)


def table_cells(cfg: Config, results_root) -> pd.DataFrame:
    """Every compared cell of a results folder as (cell, value): per-seed test scores, Table 1
    with intervals, SFS/TFS subset scores per seed, and the claims."""
    runs, sub = _per_seed(cfg, results_root, cfg.seeds)
    scores = tables.score_table(cfg, results_root=results_root)
    parts = [
        _cells("runs", runs, ["model", "task", "seed"], list(RUN_VALUES)),
        _cells("table1", scores, ["model", "task"], ["mean", "lo", "hi", "diff_vs_teacher", "diff_lo", "diff_hi"]),
        _cells("sfs_tfs", sub["scores"], ["model", "domain", "task", "seed"], ["score"]),
        _cells("claims", sub["claims"], ["claim"], ["diff", "lo", "hi", "verdict"]),
    ]
    return pd.concat(parts, ignore_index=True)


def _seed_noise(frame: pd.DataFrame, group: list[str], values: list[str], seeds) -> pd.DataFrame:
    """Per cell of ``seeds``: the 95% band of the difference of two independent runs,
    2 x sqrt(2) x the committed seeds' standard deviation of that (group, value)."""
    band = frame.groupby(group)[values].std(ddof=1) * 2 * np.sqrt(2)
    keys = frame.loc[frame["seed"].isin(seeds), group + ["seed"]]
    return keys.merge(band.reset_index(), on=group, how="left")


def _interval_noise(frame: pd.DataFrame, pairs: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """Per interval cell: sqrt(2) x its committed 95% half-width (the band of a replication's difference)."""
    out = frame.copy()
    for value, (lo, hi) in pairs.items():
        out[value] = (frame[hi] - frame[lo]) / 2 * np.sqrt(2)
    return out


def noise_cells(cfg: Config, results_root) -> pd.DataFrame:
    """The committed results' own run-to-run noise for every cell ``table_cells`` names: seed
    spread for per-seed cells (from all committed seeds), interval width for Table 1 and the
    claims; NaN where there is none (one committed seed, a text cell)."""
    seeds = sorted(pd.read_csv(results_dir(cfg, results_root) / "runs.csv")["seed"].unique())
    runs, sub = _per_seed(cfg, results_root, seeds)
    scores = tables.score_table(cfg, results_root=results_root)
    table1 = _interval_noise(scores, {"mean": ("lo", "hi"), "lo": ("lo", "hi"), "hi": ("lo", "hi"),
                                      "diff_vs_teacher": ("diff_lo", "diff_hi"),
                                      "diff_lo": ("diff_lo", "diff_hi"), "diff_hi": ("diff_lo", "diff_hi")})
    claims = _interval_noise(sub["claims"], {"diff": ("lo", "hi"), "lo": ("lo", "hi"), "hi": ("lo", "hi")})
    parts = [
        _cells("runs", _seed_noise(runs, ["model", "task"], list(RUN_VALUES), cfg.seeds), ["model", "task", "seed"],
               list(RUN_VALUES)),
        _cells("table1", table1, ["model", "task"], ["mean", "lo", "hi", "diff_vs_teacher", "diff_lo", "diff_hi"]),
        _cells("sfs_tfs", _seed_noise(sub["scores"], ["model", "domain", "task"], ["score"], cfg.seeds),
               ["model", "domain", "task", "seed"], ["score"]),
        _cells("claims", claims, ["claim"], ["diff", "lo", "hi"]),
    ]
    return pd.concat(parts, ignore_index=True).rename(columns={"x": "noise"})


def compare(committed: pd.DataFrame, new: pd.DataFrame, noise: pd.DataFrame | None = None) -> pd.DataFrame:
    """Cell by cell: identical, within noise (|difference| inside the cell's noise band, or float
    rounding), beyond noise (outside it, a changed text, or no band to weigh it by), or missing."""
    both = committed.merge(new, on="cell", how="outer", suffixes=("_committed", "_new"), indicator=True)
    band = both["cell"].map(noise.set_index("cell")["noise"]) if noise is not None and len(noise) else np.nan
    ref, cur = both["x_committed"], both["x_new"]
    numeric = pd.to_numeric(ref, errors="coerce").notna() & pd.to_numeric(cur, errors="coerce").notna()
    diff = pd.Series(np.nan, index=both.index)
    diff[numeric] = pd.to_numeric(cur[numeric]) - pd.to_numeric(ref[numeric])
    same = (ref.astype(str) == cur.astype(str)) | (numeric & (diff == 0)) | (ref.isna() & cur.isna())
    scale = pd.to_numeric(ref, errors="coerce").abs().clip(lower=1.0)
    inside = numeric & ((diff.abs() <= pd.Series(band, index=both.index).astype(float)) | (diff.abs() <= ROUNDING * scale))
    status = np.select([both["_merge"] != "both", same, inside], ["missing", "identical", "within noise"],
                       "beyond noise")
    return pd.DataFrame({"cell": both["cell"], "committed": ref, "new": cur, "difference": diff,
                         "noise": band, "status": status})


def verdict(cells: pd.DataFrame, bitwise: bool = False) -> str:
    """One line. ``bitwise``: the run shares the committed run's numerical path and versions, so
    any difference is a failure to reproduce, whatever its size."""
    differs = cells[cells.status.isin(["within noise", "beyond noise"])]
    beyond, missing = cells[cells.status == "beyond noise"], cells[cells.status == "missing"]
    if differs.empty and missing.empty:
        return f"identical: all {len(cells)} cells equal the committed values"
    parts = []
    if bitwise and not differs.empty:
        parts.append("not bitwise although the numerical path and versions match")
    if not differs.empty:
        size = differs["difference"].abs()  # NaN for a changed verdict or other text
        named = beyond if len(beyond) else differs
        worst = named.loc[named["difference"].abs().sort_values(ascending=False, na_position="first").index]
        top = "; ".join(f"{r.cell} {r.committed} -> {r.new}" for r in worst.head(5).itertuples())
        if beyond.empty:
            parts.append(f"reproduced within noise: {len(differs)} of {len(cells)} cells differ, each inside "
                         f"the committed run-to-run noise (max |difference| {size.max():.3g}; largest: {top})")
        else:
            parts.append(f"{len(beyond)} of {len(cells)} cells differ beyond the committed run-to-run noise "
                         f"({len(differs) - len(beyond)} more within it; max |difference| {size.max():.3g}): {top}")
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
        cells = pd.DataFrame(columns=["cell", "committed", "new", "difference", "noise", "status"])
    else:
        env_ref = _read(results_dir(cfg, ref_root) / "environment.json")
        env_new = _read(results_dir(cfg, new_root) / "environment.json")
        bitwise = environment.bitwise_expected(env_ref, env_new)
        cells = compare(table_cells(cfg, ref_root), table_cells(cfg, new_root), noise_cells(cfg, ref_root))
        line = verdict(cells, bitwise)
        diffs = environment.differences(env_ref, env_new)
        head += ["Environment: " + (
            "same numerical path (equal kernel probes), threads and library versions as the committed run, "
            "so the numbers should be bitwise identical" + (f" (the CPU differs: {'; '.join(diffs)})" if diffs else "")
            if bitwise else "differs from the committed run's (" + "; ".join(diffs) + "): float results may differ "
            "in the last digits and, through training, beyond; each differing cell is weighed against the committed "
            "results' own noise (the seed spread, or the interval, as the band of a difference of two runs)") + ".",
            ""]
    head += [f"**Verdict: {line}**", ""]
    shown = cells[cells.status != "identical"].head(200)
    body = shown.to_markdown(index=False) if len(shown) else "(no differing cells)"
    write_csv(out_dir / "report_cells.csv", cells)
    path = atomic_write_text(out_dir / "report.md", "\n".join(head) + "\n" + body + "\n")
    return line, path


def _read(path: Path) -> dict | None:
    return read_json(path) if path.is_file() else None
