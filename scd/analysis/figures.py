"""Figures for the notebooks: each takes plain DataFrames and returns a matplotlib Figure;
``save`` writes PNG and PDF under ``figures/``."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from scd.core.methods import in_order

sns.set_theme(style="whitegrid", context="notebook")


def save(fig, name: str, out_dir: str | Path | None) -> list[Path]:
    """PNG and PDF in ``out_dir``; None saves nothing (a notebook read, not a run that makes figures)."""
    if out_dir is None:
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for path in paths:
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        meta = {"CreationDate": None} if path.suffix == ".pdf" else {}  # byte-stable reruns
        fig.savefig(tmp, dpi=150, bbox_inches="tight", metadata=meta)
        tmp.replace(path)
    return paths


def label_balance(summary: pd.DataFrame):
    rows = []
    for r in summary.itertuples():
        counts = dict(item.split(":") for item in r.labels.split())
        total = sum(int(v) for v in counts.values())
        rows += [{"task": r.task, "split": r.split, "label": k, "share": int(v) / total} for k, v in counts.items()]
    frame = pd.DataFrame(rows)
    grid = sns.catplot(frame, x="split", y="share", hue="label", col="task", col_wrap=4, kind="bar", height=2.4,
                       sharey=True, legend_out=True)
    grid.set_titles("{col_name}")
    return grid.figure


def pretraining_curves(base: dict):
    """Loss curves of the base LMs trained here (scratch pretraining, or healing a pruned student);
    a model loaded pretrained has none and is listed in the legend only."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for role, info in base.items():
        label = f"{role} ({info['params'] / 1e6:.1f}M params)"
        curve = info.get("loss_curve")
        if not curve:
            ax.plot([], [], label=label + ", loaded pretrained")
            continue
        ax.plot(np.linspace(0, info["tokens"] / 1e6, len(curve)), curve, label=label)
    ax.set(xlabel="tokens seen (M)", ylabel="LM loss", title="Base-LM training on train-split text")
    ax.legend()
    return fig


def trajectory(traj: pd.DataFrame):
    """Dev score by SFT epoch: the chance-corrected selection score where the results hold it (dev
    keeps the pools' skew, so dev accuracy rewards the majority label; older results: accuracy)."""
    y = "dev_selection" if "dev_selection" in traj else "dev_primary"
    grid = sns.relplot(traj, x="epoch", y=y, hue="model", col="task", col_wrap=4, kind="line",
                       marker="o", height=2.4, errorbar=("ci", 95), seed=0)
    grid.set_titles("{col_name}")
    grid.set_axis_labels("SFT epoch", "dev score\n(kappa or F1)" if y == "dev_selection" else "dev score")
    return grid.figure


def selections(stages: pd.DataFrame):
    """The checkpoint each stage followed: one dot per seed (a mean of indices is no checkpoint)."""
    frame = stages[stages["model"].isin(["cd", "scd", "scd_aw"])].reset_index(drop=True)
    n = int(frame["checkpoint_index"].max()) + 1
    grid = sns.catplot(frame, x="stage", y="checkpoint_index", hue="model", hue_order=in_order(frame["model"]),
                       col="task", col_wrap=4, kind="swarm", height=2.4, dodge=True, size=4)
    grid.set_titles("{col_name}")
    grid.set_axis_labels("distillation stage", "checkpoint")
    grid.set(yticks=range(n), yticklabels=[f"ckpt{i}" for i in range(n)], ylim=(-0.5, n - 0.5))
    grid.figure.subplots_adjust(hspace=0.5)
    return grid.figure


CURVE_LABELS = {"loss": "loss (w·KD + (1−w)·CE)", "kd": "KD term", "ce": "gold CE", "w_mean": "mean w",
                "learning_rate": "learning rate"}


def train_curves(curves: pd.DataFrame):
    """Each method's logged loss, KD term, gold CE, mean AW weight and learning rate over all of
    its distillation stages (mean over seeds): the optimiser and schedule restart at every stage,
    which is where the steps of a curve jump. Stage s starts after the last logged step of s−1."""
    keys = ["task", "seed", "model", "stage"]
    ends = curves.groupby(keys)["step"].max()
    offset = ends.groupby(level=[0, 1, 2]).transform(lambda s: s.cumsum().shift(fill_value=0)).rename("offset")
    frame = curves.join(offset, on=keys)
    frame = frame.assign(step=frame["step"] + frame["offset"])
    tasks, order = list(dict.fromkeys(frame["task"])), in_order(frame["model"])
    fig, axes = plt.subplots(len(CURVE_LABELS), len(tasks), figsize=(3.2 * len(tasks) + 1.5, 9), sharex="col",
                             squeeze=False)
    for col, task in enumerate(tasks):
        for row, (metric, label) in enumerate(CURVE_LABELS.items()):
            ax = axes[row, col]
            sns.lineplot(frame[frame["task"] == task], x="step", y=metric, hue="model", hue_order=order, ax=ax,
                         errorbar=None, legend="auto" if (row, col) == (0, len(tasks) - 1) else False)
            ax.set(xlabel="optimiser step (all stages)" if row == len(CURVE_LABELS) - 1 else "",
                   ylabel=label if col == 0 else "", title=task if row == 0 else "")
    if axes[0, -1].get_legend() is not None:
        sns.move_legend(axes[0, -1], "upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    return fig


def weight_distributions(weights: pd.DataFrame):
    weights = weights.reset_index(drop=True)
    grid = sns.displot(weights, x="w", col="task", col_wrap=4, bins=30, height=2.4, facet_kws={"sharey": False})
    grid.set_titles("{col_name}")
    grid.set_axis_labels("AW weight on KD", "samples")
    return grid.figure


def method_bars(table: pd.DataFrame):
    """Mean test score with 95% intervals per method (rows: model, mean, lo, hi)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    order = in_order(table["model"])
    t = table.set_index("model").loc[order]
    ax.bar(order, t["mean"], yerr=[t["mean"] - t["lo"], t["hi"] - t["mean"]], capsize=3,
           color=sns.color_palette("deep", len(order)))
    ax.set(xlabel="model", ylabel="average test score", title="Average over tasks (95% bootstrap interval)")
    ax.set_xticks(range(len(order)), order, rotation=30, ha="right")
    return fig


def subdomain_bars(scores: pd.DataFrame):
    scores = scores.reset_index(drop=True)  # concatenated per task/seed: seaborn needs a unique index
    order = in_order(scores["model"])
    grid = sns.catplot(scores, x="model", y="score", hue="domain", col="task", col_wrap=4, kind="bar", height=2.6,
                       order=order, errorbar=("ci", 95), seed=0)
    grid.set_titles("{col_name}")
    bottom = grid.axes.flat[-min(4, len(grid.axes.flat)):]
    for ax in grid.axes.flat:  # every panel names its bars (shared x axes would hide the upper rows' names)
        ax.tick_params(labelbottom=True)
        ax.set_xticks(range(len(order)), order, rotation=60, ha="right")
        ax.set_xlabel("model" if ax in bottom else "")
    grid.set_ylabels("test score\n(mean over seeds)")
    grid.figure.subplots_adjust(hspace=0.9)
    return grid.figure


def margin_scatter(frame: pd.DataFrame):
    frame = frame.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    sns.scatterplot(frame, x="predicted_margin", y="achieved_margin", hue="task", ax=ax)
    lim = [min(frame[["predicted_margin", "achieved_margin"]].min()), max(frame[["predicted_margin", "achieved_margin"]].max())]
    ax.plot(lim, lim, color="grey", lw=0.8, ls="--")
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set(xlabel="SFT margin R_T − R_S (0/1 error)", ylabel="distilled − teacher (test score)")
    sns.move_legend(ax, "center left", bbox_to_anchor=(1.02, 0.5), frameon=False)  # never over a point
    return fig


def timing_bars(frame: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.barplot(frame, x="model", y="train_s", order=in_order(frame["model"]), ax=ax,
                errorbar=None, estimator="sum")
    ax.set(ylabel="training seconds (all tasks)", title="Training cost per method")
    ax.tick_params(axis="x", rotation=30)
    return fig


def benchmark_bars(training: pd.DataFrame):
    """Step time of each trainer relative to student SFT, measured in one benchmark run."""
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.barh(training["trainer"], training["step_ratio_vs_sft"], color=sns.color_palette("deep", len(training)))
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.axvline(1.2, color="red", lw=0.8, ls=":", label="target for cached SCD+AW (1.2×)")
    ax.set(xlabel="step time / student-SFT step time", title="Distillation cost (benchmarks/bench_distill.py)")
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    return fig


def calibration(grid: pd.DataFrame):
    """Dev selection score per task for every calibration point: teachers, students, reference."""
    frame = grid.assign(point=grid.role + ": " + grid.model.astype(str) + ", " + grid.sampling + ", "
                        + grid.max_train.astype("Int64").astype(str) + " train")
    order = sorted(frame.point.unique(), key=lambda p: ({"teacher": 0, "student": 1}.get(p.split(":")[0], 2), p))
    fig, ax = plt.subplots(figsize=(9, 4))
    sns.barplot(frame, x="task", y="dev_selection", hue="point", hue_order=order, ax=ax)
    ax.set_xlabel("task (dev split)")
    ax.set_ylabel("dev selection score\n(kappa; partial F1 for NER)")
    ax.axhline(0, color="black", lw=0.8)
    ax.legend(title="calibration point", fontsize=8, title_fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set_title("cpu profile calibration, seed 0, scored on dev")
    return fig


def deployment_ratios(ratios: pd.DataFrame):
    """How much cheaper the student is than the teacher for the same work (``deployment``):
    one bar per measure, batch and length; 1 = as fast as the teacher."""
    rows = ratios.dropna(subset=["student_advantage"])
    rows = rows[rows.measure != "parameters"]
    label = rows.apply(lambda r: r.measure.split(" (")[0] + (f", batch {int(r.batch)}" if pd.notna(r.batch) else "")
                       + (f", {int(r.length)} tok" if pd.notna(r.length) else ""), axis=1)
    fig, ax = plt.subplots(figsize=(6.4, 0.32 * len(rows) + 1.2))
    ax.barh(label, rows["student_advantage"], color=sns.color_palette("deep", 1)[0])
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set(xscale="log", xlabel="student advantage (teacher cost / student cost, log scale)",
           title="Inference: student vs teacher, same work")
    ax.invert_yaxis()
    return fig


def selection_terms(terms: pd.DataFrame, task: str = "crade", model: str = "scd_aw"):
    """SCD's two KL terms for every candidate checkpoint, per stage (columns) and seed (rows) of
    ``model`` on ``task`` (``scd.analysis.selection.candidates``). Each term is drawn above its own
    lowest candidate: the checkpoint with the smallest sum of the two bars is the one SCD picks
    (shaded), so the taller bars show which term decides; the terms' lowest values are in the corner."""
    frame = terms[(terms["model"] == model) & (terms["task"] == task)].reset_index(drop=True)
    if frame.empty:
        fig, ax = plt.subplots(figsize=(5, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"no {model} stages with a probe on {task}", ha="center", va="center")
        return fig
    seeds, stages = sorted(frame["seed"].unique()), sorted(frame["stage"].unique())
    fig, axes = plt.subplots(len(seeds), len(stages), figsize=(2.9 * len(stages) + 1.8, 2.3 * len(seeds) + 0.6),
                             sharey=True, squeeze=False)
    colors, width = sns.color_palette("deep", 2), 0.38
    names = {"kl_best": "KL(p_best‖p_c)", "kl_student": "KL(p_student‖p_c)"}
    for (i, seed), (j, stage) in ((a, b) for a in enumerate(seeds) for b in enumerate(stages)):
        ax, part = axes[i, j], frame[(frame["seed"] == seed) & (frame["stage"] == stage)].sort_values("candidate")
        x = part["candidate"].to_numpy()
        for k, (term, color) in enumerate(zip(names, colors)):
            ax.bar(x + (k - 0.5) * width, part[term] - part[term].min(), width, color=color, label=names[term])
        chosen = int(part["chosen_index"].iloc[0])
        ax.axvspan(chosen - 0.48, chosen + 0.48, color="gold", alpha=0.3, zorder=0, label="chosen checkpoint")
        ax.text(0.03, 0.95, f"lowest: best {part['kl_best'].min():.3g}\nstudent {part['kl_student'].min():.3g}",
                transform=ax.transAxes, ha="left", va="top", fontsize=7)
        ax.set_xticks(x, part["checkpoint"])
        ax.set(title=f"seed {seed}, stage {stage}: {part['decided_by'].iloc[0]}",
               xlabel="teacher checkpoint" if i == len(seeds) - 1 else "",
               ylabel="term − its lowest\ncandidate (nats)" if j == 0 else "")
        ax.title.set_fontsize(9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8)
    fig.suptitle(f"{model} on {task}: SCD's two terms per candidate (it picks the smallest sum)", fontsize=11)
    fig.tight_layout()
    return fig


def budget_curves(curves: pd.DataFrame, budgets: pd.DataFrame):
    """The budget study: dev selection score and dev gold loss per epoch, teacher and student,
    one column per task; a dot marks each chosen budget."""
    if curves.empty:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "no budget study in this results folder", ha="center", va="center")
        return fig
    tasks, palette = list(dict.fromkeys(curves["task"])), {"teacher": "C3", "student": "C0"}
    fig, axes = plt.subplots(2, len(tasks), figsize=(2.6 * len(tasks) + 1.5, 5.5), sharex=True, squeeze=False)
    for col, task in enumerate(tasks):
        for role, color in palette.items():
            c = curves[(curves.task == task) & (curves.role == role)].sort_values("epoch")
            if c.empty:
                continue
            for row, metric in enumerate(("dev_selection", "dev_gold_loss")):
                axes[row, col].plot(c.epoch, c[metric], color=color, marker=".", label=role)
            pick = budgets[(budgets.task == task) & (budgets.role == role)]
            if len(pick):
                axes[0, col].plot(pick.budget_epochs, pick.dev_selection, "o", ms=9, mfc="none", color=color)
        axes[0, col].set_title(task)
        axes[1, col].set_xlabel("SFT epoch")
    axes[0, 0].set_ylabel("dev selection score")
    axes[1, 0].set_ylabel("dev gold loss (nats/token)")
    handles = [plt.Line2D([], [], color=color, marker=".", label=role) for role, color in palette.items()]
    handles.append(plt.Line2D([], [], color="grey", marker="o", mfc="none", ls="", label="chosen budget"))
    axes[0, -1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    return fig
