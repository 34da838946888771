"""How long to train: each SFT budget chosen on dev, by one stated rule, from curves trained past it.

A budget study trains a role (teacher or student) on a task for ``cap`` epochs with a checkpoint
at every epoch and scores each on **dev** (score and gold loss; never test). The rule: the budget
is the earliest epoch whose dev selection score (the chance-corrected score that also picks the
teacher's checkpoints and the distillation stages) is within ``TOL`` of the best score the capped
curve reaches; the curve is converged when at least ``PATIENCE`` epochs follow its best without
beating it, and unconverged (still improving near the cap) otherwise. The tolerance keeps a gain of
one or two dev items (0.01 each on 100 items) from buying many more epochs; the whole curve is
read, because a curve can sit flat for several epochs and then rise (SMDIS's student is at chance
for five). The same rule on the dev gold loss (no tolerance) is reported beside it: on these tasks
the loss turns up (the model grows over-confident) epochs before the score stops rising. Every
point is an ordinary SFT stage (more epochs, one checkpoint per epoch), so the study's stages live
in ``runs/`` like any other and a rerun computes only what is missing.

``python -m scd budgets`` writes ``results/budgets/`` (curves and chosen budgets).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from scd.core.config import Config
from scd.core.io import write_csv, write_json, write_table

PATIENCE = 3
TOL = 0.02
CAP = {"teacher": 10, "student": 16}


def choose(values: list[float], patience: int = PATIENCE, higher_is_better: bool = False,
           tol: float = 0.0) -> tuple[int, bool]:
    """(1-based epoch of the budget, converged): the earliest epoch within ``tol`` of the curve's
    best; converged when ``patience`` epochs follow the (first) best."""
    if not values:
        raise ValueError("choose: no dev values")
    losses = [-v for v in values] if higher_is_better else list(values)
    best = min(range(len(losses)), key=lambda i: (losses[i], i))
    budget = next(i for i, loss in enumerate(losses) if loss <= losses[best] + tol)
    return budget + 1, len(losses) - 1 - best >= patience


def study_config(cfg: Config, role: str, cap: int) -> Config:
    return cfg.replace(**{f"{role}_epochs": cap}, n_checkpoints=cap)


def curve(cfg: Config, role: str, task: str, seed: int = 0, cap: int | None = None, data_root=None) -> pd.DataFrame:
    """One row per epoch: dev score, selection score and gold loss of the role trained ``cap`` epochs."""
    from scd.stages.base_sft import sft_stage

    cap = cap or CAP[role]
    record = sft_stage(study_config(cfg, role, cap), role, task, seed, data_root)
    return pd.DataFrame([{"profile": cfg.profile, "role": role, "task": task, "seed": seed, "epoch": round(c.epoch),
                          "step": c.step,
                          "dev_primary": c.dev.primary, "dev_selection": c.dev.selection,
                          "dev_gold_loss": c.dev.gold_loss, "dev_n_unparsed": c.dev.n_unparsed,
                          "train_s": record.train_s, "eval_s": record.eval_s} for c in record.trajectory])


def chosen(curves: pd.DataFrame, patience: int = PATIENCE, tol: float = TOL) -> pd.DataFrame:
    """The budget per (role, task, seed) by :func:`choose` on the dev selection score, its dev
    numbers, and the same rule on the dev gold loss for comparison."""
    rows = []
    for (role, task, seed), c in curves.groupby(["role", "task", "seed"], sort=False):
        c = c.sort_values("epoch")
        epoch, converged = choose(c["dev_selection"].tolist(), patience, higher_is_better=True, tol=tol)
        best_epoch = choose(c["dev_selection"].tolist(), patience, higher_is_better=True)[0]
        by_loss, loss_converged = choose(c["dev_gold_loss"].tolist(), patience)
        at = c[c.epoch == epoch].iloc[0]
        rows.append({"role": role, "task": task, "seed": seed, "cap": int(c.epoch.max()), "budget_epochs": epoch,
                     "converged": converged, "best_epoch": best_epoch, "dev_selection": at.dev_selection, "dev_primary": at.dev_primary,
                     "dev_gold_loss": at.dev_gold_loss, "budget_epochs_by_loss": by_loss,
                     "converged_by_loss": loss_converged})
    return pd.DataFrame(rows)


def run(cfg: Config, plan: dict[str, tuple[str, ...]], out, seed: int = 0, caps: dict | None = None,
        log=print) -> pd.DataFrame:
    """Compute every (role, task) curve of ``plan`` that is missing; write curves, budgets, the
    budgets they propose for a run and its projected time, keeping the curves ``out`` already holds
    for other (profile, role, task, seed)s."""
    path, caps = Path(out) / "curves.csv", CAP | (caps or {})
    curves = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["profile", "role", "task", "seed"])
    for role, tasks in plan.items():
        for task in tasks:
            log(f"budget study: {role}, {task}, {caps[role]} epochs, seed {seed} ...")
            new = curve(cfg, role, task, seed, caps[role])
            same = (curves.profile == cfg.profile) & (curves.role == role) & (curves.task == task) & (curves.seed == seed)
            curves = pd.concat([curves[~same], new], ignore_index=True)
            write_csv(path, curves)  # each curve is kept as soon as it is done
    mine, budgets = of_profile(curves, cfg.profile)  # the curves just written, not read back
    write_table(f"{out}/budgets", budgets)
    if {"student", "teacher"} <= set(budgets.role[budgets.dev_selection > 0]):  # both roles measured
        plan = proposal(budgets, cfg.stage_epochs)
        write_json(Path(out) / "proposal.json", plan)
        write_table(f"{out}/projection", projection(mine, plan["teacher_epochs"], plan["student_epochs"],
                                                    plan["n_checkpoints"], 1 + len(cfg.methods)))
    return budgets


def _round_up(value: float, multiple: int) -> int:
    return int(-(-value // multiple) * multiple)


def proposal(budgets: pd.DataFrame, stage_epochs: int = 2) -> dict:
    """The run's budgets from the study's, by one rule: every student arm trains the median student
    budget over the tasks with a signal (a best dev score above 0), rounded up to a multiple of T,
    which sets N; the teacher trains its largest measured budget rounded up to a multiple of N, so
    its N checkpoints are evenly spaced and its trajectory spans its convergence."""
    signal = budgets[budgets.dev_selection > 0]
    students, teachers = signal[signal.role == "student"], signal[signal.role == "teacher"]
    if students.empty or teachers.empty:
        raise ValueError("budgets: a proposal needs a student and a teacher curve with a signal")
    student = _round_up(float(students.budget_epochs.median()), stage_epochs)
    n = student // stage_epochs
    return {"stage_epochs": stage_epochs, "n_checkpoints": n, "student_epochs": student,
            "teacher_epochs": _round_up(int(teachers.budget_epochs.max()), n)}


def load(root, profile: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves, budgets) of ``profile``'s study in ``root`` (``results/budgets``); empty where there is none."""
    path = Path(root) / "curves.csv"
    return of_profile(pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["profile"]), profile)


def of_profile(curves: pd.DataFrame, profile: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves, budgets) of one profile's study; empty where it has none."""
    curves = curves[curves.profile == profile].reset_index(drop=True)
    return (curves, chosen(curves)) if len(curves) else (curves, pd.DataFrame())


def per_epoch(curves: pd.DataFrame) -> pd.DataFrame:
    """Measured seconds of one training epoch and of one dev evaluation, per (role, task)."""
    last = curves.sort_values("epoch").groupby(["role", "task"]).last()
    return pd.DataFrame({"train_s": last.train_s / last.epoch, "eval_s": last.eval_s / last.epoch})


def projection(curves: pd.DataFrame, teacher_epochs: int, student_epochs: int, n_checkpoints: int,
               n_arms: int = 7, distill_factor: float = 1.3) -> pd.DataFrame:
    """Estimated seconds per seed and task at the given budgets, from the study's measured costs:
    the teacher's epochs and its dev evaluation at each checkpoint and on test, one forward pass
    over train per checkpoint for the distillation targets (a third of an epoch), and ``n_arms``
    student arms (student SFT and the six methods) of ``student_epochs`` each, a distillation epoch
    priced at ``distill_factor`` student SFT epochs (the committed runs' ratio), each evaluated
    ``n_checkpoints + 1`` times. Rows only for tasks with both roles measured; the timed run is
    the measurement, this says where its time will go before paying for it."""
    cost = per_epoch(curves)
    rows = []
    for task in sorted(set(cost.loc["teacher"].index) & set(cost.loc["student"].index)):
        t, s = cost.loc[("teacher", task)], cost.loc[("student", task)]
        rows.append({"task": task,
                     "teacher_s": teacher_epochs * t.train_s + (n_checkpoints + 1) * t.eval_s,
                     "targets_s": n_checkpoints * t.train_s / 3,
                     "students_s": (1 + (n_arms - 1) * distill_factor) * student_epochs * s.train_s
                                   + n_arms * (n_checkpoints + 1) * s.eval_s})
    frame = pd.DataFrame(rows)
    return frame.assign(total_s=frame[["teacher_s", "targets_s", "students_s"]].sum(axis=1)) if rows else frame
