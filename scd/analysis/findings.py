"""What each notebook's numbers show, in a few sentences written from those numbers.

Every notebook ends with a "What this shows" cell that calls one function here, so its closing text changes
with the results instead of going stale beside them (as notebook 6's claims text does). A function reads what
its notebook reads, through the same loaders, or takes what the notebook computed (``scores=``, ``sub=``, ...),
and adds only counts, means and comparisons of those tables. A results folder that lacks a file (a smoke
render, a partial run) gets a sentence naming it instead of an exception, so the notebook still ends.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scd.analysis import power, products, selection, signal, tables
from scd.analysis.ablations import seed_list
from scd.analysis.export import load_runs, load_samples, load_table, load_weights, results_dir
from scd.core.io import read_json
from scd.core.methods import REFERENCE, in_order, is_method, parse_method
from scd.core.tasks import TASKS, get_task

if TYPE_CHECKING:
    from scd.core.config import Config


def _graceful(fn):
    """A missing file or table becomes one sentence naming it: a notebook on partial results still ends."""
    @functools.wraps(fn)
    def wrapper(cfg: Config, results_root, **kw) -> str:
        try:
            return fn(cfg, results_root, **kw)
        except FileNotFoundError as err:  # from a loader (names the file) or from _need (names the table)
            what = f"`{Path(err.filename).name}`" if err.filename else str(err)
        return (f"*Nothing to summarise yet:* {what} is not in this results folder for the `{cfg.profile}` "
                f"profile, tasks {', '.join(cfg.tasks)} and seeds {seed_list(cfg)}; compute the results first.")
    return wrapper


def _need(frame: pd.DataFrame | None, what: str) -> pd.DataFrame:
    if frame is None or frame.empty:
        raise FileNotFoundError(what)
    return frame


def _bullets(lines) -> str:
    return "\n".join(f"- {line}" for line in lines if line)


def _scores(cfg: Config, results_root, scores: pd.DataFrame | None) -> pd.DataFrame:
    """Table 1's long form: the notebook's; else the folder's own when it was written for this config's
    tasks, seeds and methods; else computed from the per-sample rows, as the notebook does."""
    if scores is not None:
        return scores
    load_runs(cfg, results_root)  # no runs: one sentence, not a long computation that fails
    folder = results_dir(cfg, results_root)
    saved = read_json(folder / "config.json") if (folder / "config.json").is_file() else None
    mine = {"tasks": list(cfg.tasks), "seeds": list(cfg.seeds), "methods": list(cfg.methods)}
    if saved and (folder / "scores_ci.csv").is_file() and all(saved[k] == v for k, v in mine.items() if k in saved):
        return pd.read_csv(folder / "scores_ci.csv")
    return tables.score_table(cfg, None, results_root)


def _chance(cfg: Config, task: str, results_root) -> float:
    gold = load_samples(cfg, task, "teacher_sft", cfg.seeds[0], results_root)["gold"]
    return signal.chance_level(gold, get_task(task).kind)


def _policy(model: str) -> str | None:
    return parse_method(model).policy.name if is_method(model) else None


@_graceful
def data_and_tasks(cfg: Config, results_root, summary: pd.DataFrame | None = None) -> str:
    """Split sizes, train-versus-test label skew, passages shared with train, and prompt cuts."""
    summary = summary if summary is not None else pd.read_csv(Path(results_root) / "data_summary.csv")
    summary = _need(summary[summary.task.isin(cfg.tasks)], "the data summary of these tasks")
    n, labels = summary.pivot(index="task", columns="split", values="n"), summary.set_index(["task", "split"]).labels
    thin = n[n.train < cfg.min_train_items].train
    lines = [f"{len(n)} tasks: train splits of {n.train.min()} ({n.train.idxmin()}) to {n.train.max()} items "
             f"({n.train.idxmax()}), test sets of {n.test.min()} to {n.test.max()}." if len(n) > 1 else
             f"One task, {n.index[0]}: {n.train.iloc[0]} train, {n.dev.iloc[0]} dev and {n.test.iloc[0]} test items.",
             ", ".join(f"{t} ({k} train items)" for t, k in thin.items()) + f": under `min_train_items` = "
             f"{cfg.min_train_items}, so left out of Table 1's average." if len(thin) else ""]
    skew = []
    for task in (t for t in n.index if get_task(t).kind != "ner"):
        train, test = ({k: int(v) for k, v in (i.rsplit(":", 1) for i in labels[(task, s)].split())}
                       for s in ("train", "test"))
        top = max(train, key=train.get)
        if (p := train[top] / sum(train.values())) - (q := test.get(top, 0) / sum(test.values())) >= 0.2:
            skew.append(f"{task} {p:.0%} *{top}* in train, {q:.0%} in test")
    if skew:
        lines.append("Train pools are skewed where the test sets are not: " + "; ".join(skew) + (
            f"; so `{cfg.profile}` trains on label-balanced samples." if cfg.train_sampling == "balanced"
            else "; a model that learns only the train prior loses on test."))
    if (path := Path(results_root) / "passage_overlap.csv").is_file():
        ov = pd.read_csv(path).query("split == 'test' and task in @cfg.tasks and passage_in_own_train >= n / 2")
        lines.append("Test items whose passage is also in their task's train split: " + ", ".join(
            f"{r.task} {r.passage_in_own_train} of {r.n}" for r in ov.itertuples()) + (
            "; `corpus_excludes_eval` keeps them out of the tokenizer and base-LM corpus." if cfg.corpus_excludes_eval
            else "; they are in the base-LM corpus (`corpus_excludes_eval` is off).") if len(ov) else "")
    if (results_dir(cfg, results_root) / "prompt_cuts.csv").is_file():
        cuts = load_table(cfg, "prompt_cuts", results_root).query("rule == @cfg.prompt_cut and cut > 0")
        top, broken = cuts.assign(share=cuts.cut / cuts.n).nlargest(3, "share"), cuts[cuts.rest_whole_share < 1]
        lines.append(f"Most cut by the `{cfg.prompt_cut}` rule: " + ", ".join(
            f"{r.task} ({r.cut} of {r.n} prompts, {r.tokens_removed_share:.0%} of tokens)" for r in top.itertuples())
            + "; the text outside the passage stays whole in every cut prompt" + (" but " + ", ".join(
                f"{r.cut - round(r.rest_whole_share * r.cut)} of {r.task}'s {r.cut}" for r in broken.itertuples())
                if len(broken) else "") + "." if len(cuts) else "")
    return _bullets(lines)


@_graceful
def base_models(cfg: Config, results_root, base: dict | None = None) -> str:
    """The size and pretraining gap between the base LMs, and why the calibration grid chose this student."""
    base = base or read_json(results_dir(cfg, results_root) / "base_models.json")
    info = {role: b.get("details", {}) | {k: v for k, v in b.items() if k != "details"} for role, b in base.items()}
    if not {"teacher", "student"} <= set(info):
        raise FileNotFoundError("a teacher and a student base LM")
    t, s = info["teacher"], info["student"]
    lines = [f"The teacher has {t['params'] / 1e6:.2f}M parameters, the student {s['params'] / 1e6:.2f}M "
             f"({t['params'] / s['params']:.1f}× fewer)."]
    if t.get("final_loss") is not None and s.get("final_loss") is not None:
        lines.append(f"Pretraining on train-split text: the teacher saw {t['tokens'] / 1e6:.2f}M tokens in "
                     f"{t['wall_s']:.0f} s and ended at LM loss {t['final_loss']:.2f}, the student "
                     f"{s['tokens'] / 1e6:.2f}M in {s['wall_s']:.0f} s, ending at {s['final_loss']:.2f}" + (
                         ": the gap distillation needs." if t["final_loss"] < s["final_loss"]
                         else ": the teacher is no better at the domain text."))
    if isinstance(s.get("window_loss"), dict):
        lines.append("LM loss on fixed windows of train text: " + ", ".join(f"{k} {v:.2f}"
                                                                           for k, v in s["window_loss"].items()))
    if cfg.student is not None and (path := Path(results_root) / "calibration" / "summary.csv").is_file():
        students = pd.read_csv(path).query("role == 'student'")
        label = f"{cfg.student.layers}x{cfg.student.hidden}, {cfg.student.pretrain_steps} steps"
        mine = students.query("model == @label and sampling == @cfg.train_sampling and max_train == @cfg.max_train")
        others = students[students.model != label].gap_to_teacher.dropna()
        if len(mine) and len(others):
            lines.append(f"On the calibration grid (dev, seed 0) this student ({label}) trails its teacher by "
                         f"{mine.gap_to_teacher.iloc[0]:.3f}; the other students' gaps run from {others.min():.3f} to "
                         f"{others.max():.3f}" + (": they leave nothing to distil." if others.max() <= 0.005 else "."))
    return _bullets(lines)


@_graceful
def teacher_trajectory(cfg: Config, results_root, traj: pd.DataFrame | None = None) -> str:
    """Dev selection's picks (a teacher that seeds share counts once), the teacher's dev lead, and on test."""
    traj = _need(traj if traj is not None else load_table(cfg, "trajectory", results_root), "the SFT trajectory")
    teachers, last = traj[traj.best & (traj.model == "teacher_sft")], sorted(traj.checkpoint.unique())[-1]
    picks = teachers.assign(t=teachers.seed.map(cfg.teacher_seed)).drop_duplicates(["task", "t"]).checkpoint.value_counts()
    rest = ", ".join(f"{c}: {k}" for c, k in sorted(picks.items()) if c != last)
    teacher = traj[traj.model == "teacher_sft"].groupby("task").dev_selection
    flat = [t for t, spread in (teacher.max() - teacher.min()).items() if spread < 1e-12]
    lines = [f"The teacher's dev selection picks the last checkpoint ({last}) in {picks.get(last, 0)} of "
             f"{picks.sum()} teacher runs (one per task and teacher seed" + (f"; {rest})." if rest else ")."),
             f"On {', '.join(flat)} every teacher checkpoint scores the same on dev: the tie-break (lowest dev gold "
             "loss) picks." if flat else ""]
    gap = signal.dev_gap(traj, tables.thin_tasks(cfg)).set_index("task")  # notebook 3's table
    if gap.student_sft.notna().any():
        dev, average = gap.drop(index="average"), gap.loc["average"]
        low, led = dev.index[dev.student_sft <= 0.01], dev.index[dev.gap > 0.01]
        test = load_runs(cfg, results_root).pivot_table(index="task", columns="model", values="primary")
        lost = [t for t in led if test.loc[t, "teacher_sft"] <= test.loc[t, "student_sft"]]
        lines += [f"Selected checkpoints on dev (chance-corrected): teacher {average.teacher_sft:.3f} against "
                  f"student {average.student_sft:.3f} averaged as Table 1 is; the teacher leads on {len(led)} of "
                  f"{len(dev)} tasks, the student scores 0.01 or less on {len(low)}"
                  + (f" ({', '.join(low)})." if 0 < len(low) < len(dev) else "."),
                  f"On test (mean over seeds) the teacher's dev lead carries over on {len(led) - len(lost)} of those "
                  f"{len(led)} tasks" + (f"; not on {', '.join(lost)}." if lost else ".")]
    return _bullets(lines)


@_graceful
def distillation(cfg: Config, results_root, stages: pd.DataFrame | None = None,
                 weights: pd.DataFrame | None = None) -> str:
    """Which checkpoints SCD followed, how AW weighted KD, and whether the students left the label prior."""
    stages = _need(stages if stages is not None else load_table(cfg, "stages", results_root), "the stages")
    lines, ran = [], [m for m in cfg.methods if m in set(stages.model)]
    scd, td = (next((m for m in ran if _policy(m) == p), None) for p in ("scd", "td"))
    if scd:
        picks, last = (mine := stages[stages.model == scd]).checkpoint_index.value_counts(), mine.stage.max()  # N − 1
        both = mine.merge(stages[stages.model == td], on=["task", "seed", "stage"], suffixes=("", "_td"))
        same = (both.checkpoint_index == both.checkpoint_index_td).mean()
        lines.append(f"SCD ({scd}) chose the earliest checkpoint (ckpt0) at {picks.get(0, 0)} of {len(mine)} stage "
                     f"starts and the last (ckpt{last}) at {picks.get(last, 0)}"
                     + (f"; it followed TD's (the dev-best) at {same:.0%} of them." if td else "."))
    if len(terms := selection.candidates(stages, cfg.selection_terms)):  # SCD's two terms (notebook 4's table)
        a, c = selection.headline(terms)
        lines.append(f"{a.model}, term by term: KL(p_student‖p_c) alone decides {a.student_term} of {a.stages} stage "
                     f"starts, KL(p_best‖p_c) alone {a.best_term}, both agree at {a.both_agree}, only the sum at "
                     f"{a.neither_alone} (median range over the candidates {a.kl_student_range:.3g} against "
                     f"{a.kl_best_range:.3g} nats); on {c.task} the student term decides {c.student_term} of "
                     f"{c.stages} and {a.model} picks the earliest checkpoint at {c.earliest_chosen}.")
    aw = next((m for m in cfg.methods if parse_method(m).weighting == "aw"), None)
    aw = "scd_aw" if "scd_aw" in cfg.methods else aw  # the headline method where it ran
    files = [results_dir(cfg, results_root) / "weights" / t / f"{aw}_seed{s}.csv" for t in cfg.tasks for s in cfg.seeds]
    if weights is None and aw and all(f.is_file() for f in files):
        weights = pd.concat([load_weights(cfg, t, aw, s, results_root).assign(task=t, seed=s)
                             for t in cfg.tasks for s in cfg.seeds], ignore_index=True)
    if weights is not None and len(weights):
        by_task = weights.groupby("task").w.mean()
        lines.append(f"AW's weight on KD ({aw}, per train sample) averages {weights.w.mean():.3f} against the fixed "
                     f"α = {cfg.alpha:g}; {(weights.w < 0.5).mean():.0%} of samples get under 0.5 (the SFT student "
                     "beats that checkpoint on the gold answer)" + (f"; by task {by_task.min():.3f} "
                     f"({by_task.idxmin()}) to {by_task.max():.3f} ({by_task.idxmax()})." if len(by_task) > 1 else "."))
    choice, runs = [t for t in cfg.tasks if get_task(t).kind == "choice"], load_runs(cfg, results_root)
    if choice and "gold_loss" in runs:
        # loss per answer token (label, end) of predicting the test label mix: the floor of ignoring the question
        mix = {t: load_samples(cfg, t, "teacher_sft", cfg.seeds[0], results_root).gold.astype(str).value_counts(
            normalize=True) for t in choice}
        prior = pd.Series({t: float(-(p * np.log(p)).sum() / 2) for t, p in mix.items()})
        loss = runs[runs.task.isin(choice)].pivot_table(index="model", columns="task", values="gold_loss")[choice]
        ratio, t0 = loss / prior, choice[0]

        def where(models) -> tuple[int, int, int, int]:  # below, within 5% of, above the prior; of how many
            r = ratio.loc[[m for m in models if m in ratio.index]].to_numpy().ravel()
            return (r < 0.95).sum(), ((r >= 0.95) & (r <= 1.05)).sum(), (r > 1.05).sum(), r.size

        student, methods, teacher = where(["student_sft"]), where(cfg.methods), where(["teacher_sft"])
        lines.append(f"Test gold loss per answer token against the label prior's (the label mix's entropy over "
                     f"label and end token: ln(n)/2 on a balanced test set; {t0}: {prior[t0]:.3f}) on the "
                     f"{len(choice)} choice task(s): the SFT student is within 5% of it on {student[1]} of "
                     f"{student[3]} ({t0}: {loss.loc['student_sft', t0]:.3f}); distilled students within 5% on "
                     f"{methods[1]}, above on {methods[2]}, below on {methods[0]} of {methods[3]}; the teacher below "
                     f"on {teacher[0]} of {teacher[3]}." + (
                         " No student is below it: none tells these items apart better than the label mix does."
                         if student[0] + methods[0] == 0 else ""))
    return _bullets(lines)


@_graceful
def table1(cfg: Config, results_root, scores: pd.DataFrame | None = None) -> str:
    """Table 1's averages, the differences its intervals decide, the signal checks and the paper's order."""
    scores = _scores(cfg, results_root, scores)
    avg = scores[scores.task == "average"].set_index("model")
    thin = sorted(scores.task[scores.get("too_little_train", False) == True].unique())  # noqa: E712 (column or False)
    lines = [f"Task averages (95% intervals{'; ' + ', '.join(thin) + ' left out' if thin else ''}): " + ", ".join(
        f"{m} {avg.loc[m, 'mean']:.3f} [{avg.loc[m, 'lo']:.3f}, {avg.loc[m, 'hi']:.3f}]" for m in in_order(avg.index))
        + "."]
    if "teacher_sft" in avg.index and "distinguishable" in avg:
        vs = avg.drop(index=["teacher_sft", REFERENCE], errors="ignore")
        decided = vs[vs.distinguishable.astype(str) == "True"]
        rest, below = [m for m in vs.index if m not in decided.index], decided.diff_vs_teacher < 0
        for side, part in (("Below", decided[below]), ("Above", decided[~below])):
            lines.append(f"{side} the teacher by a paired 95% interval that excludes zero: " + ", ".join(
                f"{m} {r.diff_vs_teacher:+.3f} [{r.diff_lo:+.3f}, {r.diff_hi:+.3f}]" for m, r in part.iterrows())
                + "." if len(part) else "")
        mde = vs.get("mde_vs_teacher", pd.Series(dtype=float)).dropna()  # absent from tables written before it
        lines.append("Not distinguishable from the teacher: " + (", ".join(rest) if rest else "none") + (
            f" (task average: by model, an effect smaller than {mde.min():.3f} to {mde.max():.3f} would go undetected"
            " at 80% power)" if len(mde) else "") + ".")
        if (methods := [m for m in cfg.methods if m in avg.index]) and "student_sft" in avg.index:
            top, sft = max(methods, key=lambda m: avg.loc[m, "mean"]), avg.loc["student_sft", "mean"]
            lines.append(f"The best distilled student, {top} ({avg.loc[top, 'mean']:.3f}), is "
                         f"{avg.loc[top, 'mean'] - sft:+.3f} from the SFT student ({sft:.3f}) (no interval: Table 1 "
                         "tests differences from the teacher only).")
        checks = signal.check_table(cfg, scores, results_root)
        missed = checks[~checks.met.astype(bool)]
        lines.append(f"Signal checks: {len(checks) - len(missed)} of {len(checks)} met" + ("; not met: " + "; ".join(
            f"{r.iloc[0]}, {r.task}: " + (f"lower bound {r.lo:.3f}" if pd.notna(r.lo) else f"{r.value:.3f}")
            + f" vs {r.threshold:.3f}" for _, r in missed.iterrows()) if len(missed) else "") + "."
            if len(checks) else "")
    if set(cfg.tasks) <= set(TASKS):
        paper = tables.paper_reported().query("task == 'average'").set_index("model").value
        if len(both := [m for m in paper.index if m in avg.index and m != "teacher_sft"]) > 1:
            lines.append("Order of the models the paper reports: paper " + " > ".join(sorted(both, key=paper.get)[::-1])
                         + "; here " + " > ".join(sorted(both, key=lambda m: -avg.loc[m, "mean"])) + ".")
    return _bullets(lines)


@_graceful
def sfs_tfs(cfg: Config, results_root, sub: dict | None = None) -> str:
    """The identity check, how large the subdomains are, who scores where, and the claims' verdicts."""
    load_runs(cfg, results_root)
    decomp = (sub := sub or products.sfs_tfs(cfg, results_root))["decomposition"]
    err, loss = (decomp[decomp.risk == r].groupby("task")[["P_SFS", "gap"]].mean() for r in ("error", "loss"))
    lower = list(loss.index[loss.gap > 0])
    lines = [f"The identity R_T − R_S = P(SFS)·advantage − P(TFS)·deficit holds on all {len(decomp)} "
             f"task-seed-risk rows: largest |residual| {decomp.residual.abs().max():.1e}.",
             f"The SFT student has the lower risk (the SFS) on {err.P_SFS.mean():.0%} of test items by 0/1 error and "
             f"{loss.P_SFS.mean():.0%} by gold loss (mean over tasks); by error the teacher's TFS lead outweighs the "
             f"SFS on {(err.gap < 0).sum()} of {len(err)} tasks" + (
                 f", by gold loss the student has the lower risk on {', '.join(lower)}." if lower else ".")]
    score = sub["scores"].pivot_table(index="model", columns="domain", values="score")
    if {"SFS", "TFS"} <= set(score.columns):
        lines.append("Scores on SFS / TFS (0/1-error split, mean over tasks and seeds): " + ", ".join(
            f"{m} {score.loc[m, 'SFS']:.3f} / {score.loc[m, 'TFS']:.3f}"
            for m in ("student_sft", "teacher_sft", "scd", "scd_aw") if m in score.index) + ".")
    for verdict in ("supported", "contradicted", "undecided", "untestable"):
        part = sub["claims"][sub["claims"].verdict == verdict]
        lines.append(f"{verdict.capitalize()}: " + "; ".join(f"*{r.claim}*" + (
            "" if verdict == "untestable" else f" {r.diff:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}] ("
            f"{power.undetected(r.mde)}; without its all-tie tasks: {r.verdict_without_tie_tasks})")
            for r in part.itertuples()) + "." if len(part) else "")
    view, rho = sub["subtask_view"], sub["rho"]
    lines.append(f"The headline student beats the teacher on {view.student_wins.astype(bool).mean():.0%} of "
                 f"{len(view)} sub-tasks (the paper: about 40%); " + (
                     f"Spearman ρ = {rho:.2f} between the SFT-time margin and the achieved one over "
                     f"{len(sub['margin'])} task-seed pairs." if not np.isnan(rho)
                     else "the SFT-time margins do not vary, so ρ is undefined."))
    return _bullets(lines)


@_graceful
def efficiency(cfg: Config, results_root, runs: pd.DataFrame | None = None) -> str:
    """Training-time ratios, SCD's selection share, and the controlled benchmark's step and deployment ratios."""
    runs = runs if runs is not None else load_runs(cfg, results_root)
    if "student_sft" not in set(runs.model):
        raise FileNotFoundError("the student SFT runs (the cost floor)")
    cost = products.efficiency(runs).set_index("model")
    ratio, share = cost.loc[[m for m in cfg.methods if m in cost.index], "ratio_vs_student_sft"], cost.selection_share
    scd, others = [m for m in ratio.index if _policy(m) == "scd"], [m for m in ratio.index if _policy(m) != "scd"]
    lines = [f"Teacher SFT took {cost.loc['teacher_sft', 'ratio_vs_student_sft']:.2f}× the student SFT's training "
             "time (pipeline seconds, dev evaluations included)." if "teacher_sft" in cost.index else "",
             f"The distillation methods took {ratio.min():.2f}× ({ratio.idxmin()}) to {ratio.max():.2f}× "
             f"({ratio.idxmax()}) the student SFT's time." if len(ratio) else "",
             f"SCD's checkpoint selection is {share[scd].min():.1%} to {share[scd].max():.1%} of its training time"
             + (f" (the other methods' target set-up: at most {share[others].max():.1%})." if others else ".")
             if scd else ""]
    for path in sorted((Path(results_root) / "benchmarks").glob(f"{cfg.profile}_*_training.csv")):
        bench = pd.read_csv(path).set_index("trainer").step_ratio_vs_sft.drop("student SFT", errors="ignore")
        lines.append(f"Controlled benchmark ({path.name.removesuffix('_training.csv')}): a training step costs "
                     + ", ".join(f"{r:.2f}× ({t})" for t, r in bench.items()) + " a student SFT step.")
        if (deploy := Path(str(path).replace("_training.csv", "_deployment_ratios.csv"))).is_file():
            dep = pd.read_csv(deploy)
            lat, params = dep[dep.measure.str.startswith("latency")].sort_values("batch"), dep.query(
                "measure == 'parameters'").student_advantage
            lines.append("Deployment: the student " + (f"has {params.iloc[0]:.1f}× fewer parameters and " if len(
                params) else "") + "answers a test prompt " + ", ".join(
                f"{r.student_advantage:.1f}× faster at batch {r.batch:g}" for r in lat.itertuples()) + ".")
    return _bullets(lines)


@_graceful
def ablations(cfg: Config, results_root, effects: pd.DataFrame | None = None) -> str:
    """Which one-setting variant moved SCD+AW's score, and the main run's 2×2 factorial."""
    if effects is None:
        effects = pd.read_csv(results_dir(cfg, results_root) / "ablations_effects.csv", dtype={"seeds": str})
        effects = effects[(effects.seeds == seed_list(cfg)) & effects.task.isin(cfg.tasks)]
    effects, lines = _need(effects, f"the ablation effects for seeds {seed_list(cfg)}"), []
    for task, part in effects.groupby("task", sort=False):
        chance, default = _chance(cfg, task, results_root), part["default"].iloc[0]
        lines.append(f"On {task} (seeds {seed_list(cfg)}) the default SCD+AW scores {default:.3f}" + (
            ", exactly the majority label's share of its test set." if abs(default - chance) < 1e-9
            else f" (the majority label's share of its test set: {chance:.3f})."))
    still = effects.drop((moved := effects[effects.distinguishable.astype(str) == "True"]).index)
    lines += ["Variants that move the score by a 95% interval excluding zero: " + "; ".join(
        f"{r.variant} on {r.task} {r.diff:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}] (score {r.score:.3f})"
        for r in moved.itertuples()) + ("; N and T change the number of distillation epochs (N × T), so the cost "
                                        "too." if moved.variant.str.match("[NT] =").any() else ".") if len(moved) else "",
              f"{'The other' if len(moved) else 'All'} {len(still)} variant-task pairs stay within noise: "
              f"differences {still['diff'].min():+.3f} to {still['diff'].max():+.3f}." if len(still) else ""]
    runs = load_runs(cfg, results_root)
    if (fact := runs[runs.model.map(_policy).isin(["cd", "scd"])]).model.nunique() == 4:
        cell = fact.assign(order=fact.model.map(_policy), weighting=fact.model.map(lambda m: parse_method(m).weighting)
                           ).pivot_table(index="order", columns="weighting", values="primary")
        aw, pol = cell["aw"] - cell["fixed"], cell.loc["scd"] - cell.loc["cd"]
        lines.append(f"The main run's 2×2 factorial (mean test score over all tasks and seeds, no interval): AW over "
                     f"fixed weight {aw['cd']:+.3f} with CD order, {aw['scd']:+.3f} with SCD selection; SCD selection "
                     f"over CD order {pol['aw']:+.3f} with AW, {pol['fixed']:+.3f} with fixed weight.")
    return _bullets(lines)


@_graceful
def your_domain(cfg: Config, results_root, scores: pd.DataFrame | None = None,
                against: pd.DataFrame | None = None) -> str:
    """The task's Table 1 row in words, against a constant answer, and whether the task file matched the built-in."""
    scores = _scores(cfg, results_root, scores).set_index(["model", "task"])
    shown, lines = (list(cfg.tasks) if len(cfg.tasks) <= 3 else ["average"]), []
    for task in shown:
        rows = scores.xs(task, level="task")
        line = f"{task}: " + ", ".join(f"{m} {rows.loc[m, 'mean']:.3f}" for m in in_order(rows.index))
        if task != "average" and "teacher_sft" in rows.index:
            chance, t = _chance(cfg, task, results_root), rows.loc["teacher_sft"]
            line += (f"; a constant answer scores {chance:.3f}, and the teacher's interval [{t.lo:.3f}, {t.hi:.3f}] "
                     "is " + ("above it" if t.lo > chance else "below it" if t.hi < chance else "not clear of it"))
        lines.append(line + ".")
    if "distinguishable" in scores:
        diff = scores[scores.distinguishable.astype(str) == "True"].query("task in @shown")
        lines.append("Differences from the teacher that a paired 95% interval decides: " + (", ".join(
            f"{m} on {t} {r.diff_vs_teacher:+.3f}" for (m, t), r in diff.iterrows()) if len(diff) else "none") + ".")
    if against is not None and len(equal := against.equal.astype(bool)):
        lines.append(f"The task file gives the built-in task's test score for {equal.sum()} of {len(equal)} "
                     "model-seed pairs" + ("." if equal.all() else ": where not, the card reads other data."))
    if cfg.profile == "smoke":
        lines.append("These are `smoke` numbers (a minute of training): they check the chain, not the method.")
    return _bullets(lines)


FINDINGS = {f"{i:02d}_{fn.__name__}": fn for i, fn in enumerate((data_and_tasks, base_models, teacher_trajectory,
            distillation, table1, sfs_tfs, efficiency, ablations, your_domain), start=1)}


def what_this_shows(notebook: str, cfg: Config, results_root, **kw) -> str:
    """The closing "What this shows" of ``notebook`` (its file stem; ``.ipynb`` may be given)."""
    name = Path(notebook).name.removesuffix(".ipynb")
    if name not in FINDINGS:
        raise ValueError(f"no findings for notebook {notebook!r}; expected one of {list(FINDINGS)}")
    return FINDINGS[name](cfg, results_root, **kw)
