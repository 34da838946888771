"""Results built up seed by seed: the committed seeds of the same config are kept and the new
ones added, so a three-seed rerun that does not fit in one sitting can be done in parts
(``python -m scd reproduce --in-place --add-seeds``) and still give the tables of one run.

Per-seed files (per-item rows, weights, ablation rows) are separate files and simply stay; the
tables with a seed column are joined here, in the order a single run writes them; every
derived table is then recomputed from the union.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from scd.config import Config
from scd.io import read_json, write_csv
from scd.results import results_dir

SEEDED = ("runs", "trajectory", "stages", "ablations")


def _same(value) -> object:
    return json.loads(json.dumps(value, default=str))


def kept_rows(cfg: Config, root) -> dict[str, pd.DataFrame]:
    """The committed rows of every seed this run does not recompute, from the seed-keyed tables;
    refused when the committed results were made by another config (anything but the seeds)."""
    out = results_dir(cfg, root)
    if not (out / "runs.csv").is_file():
        return {}
    made, mine = read_json(out / "config.json"), _same(cfg.to_dict())
    differ = sorted(k for k in set(made) | set(mine) if k != "seeds" and made.get(k) != mine.get(k))
    if differ:
        raise SystemExit(f"--add-seeds: {out} was made with other values of {differ}; rerun every seed "
                         "(remove the folder first) instead of adding to it")
    kept = {}
    for name in SEEDED:
        path = out / f"{name}.csv"
        if path.is_file():
            frame = pd.read_csv(path)
            kept[name] = frame[~frame["seed"].isin(cfg.seeds)].reset_index(drop=True)
    return kept


def seeds_with(cfg: Config, kept: dict[str, pd.DataFrame]) -> Config:
    """The config of the union: the kept seeds and this run's, in order."""
    have = set(kept["runs"]["seed"]) if "runs" in kept else set()
    return cfg.replace(seeds=tuple(sorted(have | set(cfg.seeds))))


def _in_run_order(frame: pd.DataFrame, outer: list[str]) -> pd.DataFrame:
    """Rows sorted as one run writes them: by ``outer`` (first-appearance order), then seed."""
    keys = {c: {v: i for i, v in enumerate(dict.fromkeys(frame[c]))} for c in outer}
    return frame.sort_values([*outer, "seed"], key=lambda col: col.map(keys[col.name]) if col.name in keys else col,
                             kind="stable").reset_index(drop=True)


def merge(cfg: Config, root, kept: dict[str, pd.DataFrame], ablations: bool) -> None:
    """Join the kept rows with the ones this run exported (same file names); the ablation table
    only when this run wrote one (else the committed one stays as it is)."""
    out = results_dir(cfg, root)
    for name, old in kept.items():
        if name == "ablations" and not ablations:
            continue
        path = out / f"{name}.csv"
        new = pd.read_csv(path) if path.is_file() else old.iloc[:0]
        both = pd.concat([old, new], ignore_index=True)
        # runs, trajectory, stages: seed is the outer loop of a run; ablations: variant, task, then seed
        both = (_in_run_order(both, ["variant", "task"]) if name == "ablations"
                else both.sort_values("seed", kind="stable").reset_index(drop=True))
        write_csv(Path(path), both)


def environments(cfg: Config, root, fingerprint: dict) -> dict:
    """Which machine made each seed (``environment_by_seed.json``): seeds added later may come
    from another machine, and the reproduction report should know which."""
    path = results_dir(cfg, root) / "environment_by_seed.json"
    have = read_json(path) if path.is_file() else {}
    return have | {str(s): fingerprint for s in cfg.seeds}
