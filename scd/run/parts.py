"""Results built up in parts: a run that recomputes some seeds or some tasks keeps the committed
rows of every (task, seed) it does not recompute, so a three-seed rerun that does not fit in one
sitting can be done seed by seed, and a setting that only some tasks read (a config field with
``kinds=``) reruns only those tasks (``python -m scd reproduce --in-place --merge``); the tables
are those of one run either way.

Per-(task, seed) files (per-item rows, weights, ablation rows) are separate files: the recomputed
ones are replaced, the others stay. The tables with task and seed columns are joined here, in the
order a single run writes them; every derived table is then recomputed from the union.
"""
from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pandas as pd

from scd.core.config import Config
from scd.core.io import read_json, write_csv
from scd.analysis.export import results_dir
from scd.core.tasks import get_task

SEEDED = ("runs", "trajectory", "stages", "train_curves", "stage_seconds", "ablations")


def _same(value) -> object:
    return json.loads(json.dumps(value, default=str))


def _recomputed(cfg: Config, frame: pd.DataFrame) -> pd.Series:
    return frame["task"].isin(cfg.tasks) & frame["seed"].isin(cfg.seeds)


def kept_rows(cfg: Config, results_root) -> tuple[dict[str, pd.DataFrame], Config]:
    """The committed rows of every (task, seed) this run does not recompute, and the config of
    the union (``union_config``). Refused when the kept rows were made with another value of a
    setting they depend on (any field but tasks and seeds, unless it is scoped with ``kinds=`` to
    task kinds none of the kept tasks has), or when the union would lack a (task, seed)."""
    out = results_dir(cfg, results_root)
    if not (out / "runs.csv").is_file():
        return {}, cfg
    kept = {}
    for name in SEEDED:
        path = out / f"{name}.csv"
        if path.is_file():
            frame = pd.read_csv(path)
            kept[name] = frame[~_recomputed(cfg, frame)].reset_index(drop=True)
    kinds = {get_task(t).kind for frame in kept.values() for t in frame["task"]}
    made, mine = read_json(out / "config.json"), _same(cfg.to_dict())
    # a keyed_when_set field added after those rows were made was at its default for them
    made = {f.name: _same(f.default) for f in fields(Config) if f.metadata["keyed_when_set"]} | made
    scopes = {f.name: f.metadata["kinds"] for f in fields(Config)}
    logging = {f.name for f in fields(Config) if f.metadata["logging_only"]}  # change no number
    differ = sorted(k for k in set(made) | set(mine) if k not in ("seeds", "tasks", *logging)
                    and made.get(k) != mine.get(k)
                    and (scopes.get(k) is None or kinds & set(scopes[k])))
    if differ:
        raise SystemExit(f"--merge: {out} was made with other values of {differ}, which the runs this run keeps "
                         "depend on; rerun them too (or remove the folder and rerun everything)")
    union = union_config(cfg, kept, made["tasks"])
    have = set(zip(kept["runs"]["task"], kept["runs"]["seed"])) | {(t, s) for t in cfg.tasks for s in cfg.seeds}
    missing = sorted((t, s) for t in union.tasks for s in union.seeds if (t, s) not in have)
    if missing:
        raise SystemExit(f"--merge: the results would lack (task, seed) {missing}: compute those too")
    return kept, union


def union_config(cfg: Config, kept: dict[str, pd.DataFrame], committed_tasks) -> Config:
    """This run's config over the union: the committed tasks in their order (then this run's new
    ones) and the kept seeds with this run's, in order."""
    runs = kept["runs"]
    tasks = [t for t in committed_tasks if t in set(runs["task"]) | set(cfg.tasks)]
    tasks += [t for t in cfg.tasks if t not in tasks]
    return cfg.replace(tasks=tuple(tasks), seeds=tuple(sorted(set(runs["seed"]) | set(cfg.seeds))))


def _in_run_order(frame: pd.DataFrame, outer: list[str], order: dict[str, dict] | None = None) -> pd.DataFrame:
    """Rows sorted as one run writes them: by ``outer`` (seeds by number, other columns in the
    given order, else first appearance), the rows of one block keeping theirs."""
    order = order or {}
    keys = {c: order.get(c) or {v: i for i, v in enumerate(dict.fromkeys(frame[c]))} for c in outer if c != "seed"}
    return frame.sort_values(outer, key=lambda col: col.map(keys[col.name]) if col.name in keys else col,
                             kind="stable").reset_index(drop=True)


def merge(cfg: Config, union: Config, results_root, kept: dict[str, pd.DataFrame], ablations: bool) -> None:
    """Join the kept rows with the ones this run exported (same file names); the ablation table
    only when this run wrote one (else the committed one stays as it is)."""
    out = results_dir(cfg, results_root)
    tasks = {"task": {t: i for i, t in enumerate(union.tasks)}}
    for name, old in kept.items():
        if name == "ablations" and not ablations:
            continue
        path = out / f"{name}.csv"
        new = pd.read_csv(path) if path.is_file() else old.iloc[:0]
        both = pd.concat([old, new], ignore_index=True)
        # runs, trajectory, stages: seed is the outer loop of a run, then task; ablations: variant, task, seed
        both = (_in_run_order(both, ["variant", "task", "seed"]) if name == "ablations"
                else _in_run_order(both, ["seed", "task"], tasks))
        write_csv(Path(path), both)


def environments(cfg: Config, union: Config, results_root, fingerprint: dict) -> dict:
    """Which machine made each seed (``environment_by_seed.json``; ``"<seed>/<task>"`` for a part
    that recomputed some tasks of a seed): parts may come from different machines, and the
    reproduction report should know which."""
    path = results_dir(cfg, results_root) / "environment_by_seed.json"
    have = read_json(path) if path.is_file() else {}
    whole = set(cfg.tasks) >= set(union.tasks)
    parts = [str(s) for s in cfg.seeds] if whole else [f"{s}/{t}" for s in cfg.seeds for t in cfg.tasks]
    return have | {part: fingerprint for part in parts}
