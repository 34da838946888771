"""How long to train: each SFT budget chosen on dev, by one stated rule, from curves trained past it.

A budget study trains a role (teacher or student) on a task for ``cap`` epochs with a checkpoint
at every epoch and scores each on **dev** (score and gold loss; never test). The rule: the budget
is the epoch with the best dev selection score (the chance-corrected score that also picks the
teacher's checkpoints and the distillation stages) among those seen before it has failed to
improve for ``patience`` epochs in a row; a curve still improving at the cap is marked
unconverged. The same rule on the dev gold loss is reported beside it: on these tasks the loss
turns up (the model grows over-confident) epochs before the score stops rising. Every
point is an ordinary SFT stage (more epochs, one checkpoint per epoch), so the study's stages live
in ``runs/`` like any other and a rerun computes only what is missing.

``python -m scd budgets`` writes ``results/budgets/`` (curves and chosen budgets).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from scd.core.config import Config
from scd.core.io import write_csv, write_table

PATIENCE = 2
CAP = {"teacher": 12, "student": 16}


def choose(values: list[float], patience: int = PATIENCE, higher_is_better: bool = False) -> tuple[int, bool]:
    """(1-based epoch of the budget, converged). Converged: ``patience`` epochs after the chosen one
    were seen and none improved on it."""
    if not values:
        raise ValueError("choose: no dev values")
    losses = [-v for v in values] if higher_is_better else list(values)
    best, since = 0, 0
    for i, loss in enumerate(losses[1:], start=1):
        if loss < losses[best]:
            best, since = i, 0
        else:
            since += 1
            if since >= patience:
                return best + 1, True
    return best + 1, False


def study_config(cfg: Config, role: str, cap: int) -> Config:
    return cfg.replace(**{f"{role}_epochs": cap}, n_checkpoints=cap)


def curve(cfg: Config, role: str, task: str, seed: int = 0, cap: int | None = None, data_root=None) -> pd.DataFrame:
    """One row per epoch: dev score, selection score and gold loss of the role trained ``cap`` epochs."""
    from scd.stages.base_sft import sft_stage

    cap = cap or CAP[role]
    record = sft_stage(study_config(cfg, role, cap), role, task, seed, data_root)
    return pd.DataFrame([{"role": role, "task": task, "seed": seed, "epoch": round(c.epoch), "step": c.step,
                          "dev_primary": c.dev.primary, "dev_selection": c.dev.selection,
                          "dev_gold_loss": c.dev.gold_loss, "dev_n_unparsed": c.dev.n_unparsed,
                          "train_s": record.train_s, "eval_s": record.eval_s} for c in record.trajectory])


def chosen(curves: pd.DataFrame, patience: int = PATIENCE) -> pd.DataFrame:
    """The budget per (role, task, seed) by :func:`choose` on the dev selection score, its dev
    numbers, and the same rule on the dev gold loss for comparison."""
    rows = []
    for (role, task, seed), c in curves.groupby(["role", "task", "seed"], sort=False):
        c = c.sort_values("epoch")
        epoch, converged = choose(c["dev_selection"].tolist(), patience, higher_is_better=True)
        by_loss, loss_converged = choose(c["dev_gold_loss"].tolist(), patience)
        at = c[c.epoch == epoch].iloc[0]
        rows.append({"role": role, "task": task, "seed": seed, "cap": int(c.epoch.max()), "budget_epochs": epoch,
                     "converged": converged, "dev_selection": at.dev_selection, "dev_primary": at.dev_primary,
                     "dev_gold_loss": at.dev_gold_loss, "budget_epochs_by_loss": by_loss,
                     "converged_by_loss": loss_converged})
    return pd.DataFrame(rows)


def run(cfg: Config, plan: dict[str, tuple[str, ...]], out, seed: int = 0, caps: dict | None = None,
        log=print) -> pd.DataFrame:
    """Compute every (role, task) curve of ``plan`` that is missing; write curves and budgets, keeping
    the curves ``out`` already holds for other (role, task, seed)s."""
    path, caps = Path(out) / "curves.csv", CAP | (caps or {})
    curves = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    for role, tasks in plan.items():
        for task in tasks:
            log(f"budget study: {role}, {task}, {caps[role]} epochs, seed {seed} ...")
            new = curve(cfg, role, task, seed, caps[role])
            if len(curves):
                curves = curves[~((curves.role == role) & (curves.task == task) & (curves.seed == seed))]
            curves = pd.concat([curves, new], ignore_index=True)
            write_csv(path, curves)  # each curve is kept as soon as it is done
    budgets = chosen(curves)
    write_table(f"{out}/budgets", budgets)
    return budgets
