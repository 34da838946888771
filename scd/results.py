"""Small, committed outputs of a profile's run, gathered from the heavy ``runs/`` folder.

Notebooks read only these files, so a reader (or nbval in CI) renders every table and figure
without the checkpoints; when they are missing for the requested tasks and seeds the
notebook computes them first (compute-or-load).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from scd.config import Config
from scd.io import read_json, write_csv, write_json
from scd.methods import MODELS



def results_dir(cfg: Config, root: str | Path = "results") -> Path:
    return Path(root) / cfg.profile


def export(cfg: Config, runs: pd.DataFrame, root: str | Path = "results") -> Path:
    """Write runs.csv, per-sample test rows, trajectories, stage logs, weights and base-LM info."""
    out = results_dir(cfg, root)
    trajectory, stages = [], []
    for row in runs.itertuples():
        info = read_json(Path(row.path) / "done.json")
        samples = pd.read_csv(Path(row.path) / "test.csv")
        write_csv(out / "samples" / row.task / f"{row.model}_seed{row.seed}.csv", samples)
        if row.model.endswith("_sft"):
            for t in info["trajectory"]:
                trajectory.append({"model": row.model, "task": row.task, "seed": row.seed, "checkpoint": t["checkpoint"],
                                   "step": t["step"], "epoch": t["epoch"], "dev_primary": t["dev"]["primary"],
                                   "dev_gold_loss": t["dev"]["gold_loss"], "best": t["checkpoint"] == info["best"]})
            continue
        for s in info["stages"]:
            stages.append({"model": row.model, "task": row.task, "seed": row.seed, "stage": s["stage"],
                           "checkpoint": s["checkpoint"], "checkpoint_index": s["checkpoint_index"],
                           "candidate_scores": json.dumps(s["candidate_scores"]),
                           "kl_from_best": json.dumps(s["kl_from_best"]), "select_s": s["select_s"],
                           "train_s": s["train_s"], "eval_s": s.get("eval_s"), "steps": s["steps"],
                           "train_loss": s["train_loss"],
                           "dev_primary": s["dev"]["primary"], "best": f"stage{s['stage']}" == info["best"],
                           **{f"w_{k}": v for k, v in s["weights"].items()}})
        if row.model.endswith("_aw"):
            weights = read_json(Path(row.path) / "weights.json")
            write_csv(out / "weights" / row.task / f"{row.model}_seed{row.seed}.csv",
                      pd.DataFrame({"id": list(weights), "w": list(weights.values())}))
    write_csv(out / "runs.csv", runs.drop(columns=["path"]))
    write_csv(out / "trajectory.csv", pd.DataFrame(trajectory))
    write_csv(out / "stages.csv", pd.DataFrame(stages))
    write_json(out / "config.json", cfg.to_dict())
    return out


def has_results(cfg: Config, root: str | Path = "results") -> bool:
    path = results_dir(cfg, root) / "runs.csv"
    if not path.is_file():
        return False
    runs = pd.read_csv(path)
    wanted = {(m, t, s) for m in MODELS for t in cfg.tasks for s in cfg.seeds}
    return wanted <= set(zip(runs["model"], runs["task"], runs["seed"]))


def load_runs(cfg: Config, root: str | Path = "results") -> pd.DataFrame:
    runs = pd.read_csv(results_dir(cfg, root) / "runs.csv")
    return runs[runs["task"].isin(cfg.tasks) & runs["seed"].isin(cfg.seeds)].reset_index(drop=True)


def load_table(cfg: Config, name: str, root: str | Path = "results") -> pd.DataFrame:
    frame = pd.read_csv(results_dir(cfg, root) / f"{name}.csv")
    return frame[frame["task"].isin(cfg.tasks) & frame["seed"].isin(cfg.seeds)].reset_index(drop=True)


def load_samples(cfg: Config, task: str, model: str, seed: int, root: str | Path = "results") -> pd.DataFrame:
    return pd.read_csv(results_dir(cfg, root) / "samples" / task / f"{model}_seed{seed}.csv")


def load_weights(cfg: Config, task: str, model: str, seed: int, root: str | Path = "results") -> pd.DataFrame:
    return pd.read_csv(results_dir(cfg, root) / "weights" / task / f"{model}_seed{seed}.csv")
