"""Every derived table of a results folder, computed from its per-sample rows by one function each.

The pipeline (``run-all``) writes them; notebooks call the same functions to display them and
never write; the reproduction report recomputes them from the committed rows to compare like
with like. So a table exists in exactly one place in the code.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from scd.analysis import ablations, power, selection, targets
from scd.analysis import sfs_tfs as subsets  # the module; sfs_tfs below is this file's product
from scd.analysis import tables
from scd.analysis import signal as signals
from scd.core.io import write_csv, write_table
from scd.analysis.export import load_runs, load_samples, load_table, results_dir, run_time
from scd.core.tasks import TASKS, get_task

if TYPE_CHECKING:
    from scd.core.config import Config


def sfs_tfs(cfg: Config, results_root) -> dict[str, pd.DataFrame | float | str]:
    """The SFS/TFS analysis of notebook 6: the decomposition identity per task, seed and risk, the
    subset scores, the sub-task view, the margin prediction, the claims with their verdicts and
    the tie counts per subset and task (``ties``)."""
    rows, scores, splits, samples = [], [], {}, {}
    headline = "scd_aw" if "scd_aw" in cfg.methods else cfg.methods[0]
    for task in cfg.tasks:
        for seed in cfg.seeds:
            frames = {m: load_samples(cfg, task, m, seed, results_root) for m in cfg.models}
            samples[(task, seed)] = frames
            for risk in subsets.RISKS:
                split = subsets.split_subdomains(frames["teacher_sft"], frames["student_sft"], risk)
                rows.append({"task": task, "seed": seed, "risk": risk} | subsets.decomposition(split))
                if risk == "error":
                    splits[(task, seed)] = split
                    scores.append(subsets.subdomain_scores(split, frames).assign(task=task, seed=seed))
    decomp = pd.DataFrame(rows)
    views = []
    for task in cfg.tasks:
        pooled = {m: pd.concat([samples[(task, s)][m] for s in cfg.seeds]) for m in ("teacher_sft", headline)}
        views.append(subsets.subtask_view(pooled["teacher_sft"], {headline: pooled[headline]}).assign(task=task))
    view = pd.concat(views, ignore_index=True)
    margin, rho = margin_prediction(decomp, load_runs(cfg, results_root), headline)
    thin = set(tables.thin_tasks(cfg))  # as in Table 1's average: tasks with too little train data stay out
    kept = {k: v for k, v in samples.items() if k[0] not in thin}
    claims = subsets.claim_table(kept, {k: v for k, v in splits.items() if k[0] not in thin})
    text = subsets.claims_text(claims, view.student_wins.mean(), len(view), rho, len(margin), cfg.profile,
                                len(cfg.seeds))
    return {"decomposition": decomp, "scores": pd.concat(scores, ignore_index=True), "subtask_view": view,
            "margin": margin, "rho": rho, "sign_agreement": ((margin.predicted_margin > 0)
                                                            == (margin.achieved_margin > 0)).mean(),
            "claims": claims, "claims_text": text, "ties": subsets.tie_table(kept, splits)}


def margin_prediction(decomp: pd.DataFrame, runs: pd.DataFrame, headline: str) -> tuple[pd.DataFrame, float]:
    """Per task and seed, the SFS/TFS margin after SFT (the error decomposition's gap) beside the
    margin ``headline`` achieved over the teacher; -> (that table, their Spearman rho)."""
    primary = runs.set_index(["task", "seed", "model"])["primary"]
    margin = decomp[decomp.risk == "error"][["task", "seed", "gap"]].rename(columns={"gap": "predicted_margin"})
    margin["achieved_margin"] = [primary[(t, s, headline)] - primary[(t, s, "teacher_sft")]
                                 for t, s in zip(margin.task, margin.seed)]
    margin = margin.reset_index(drop=True)
    return margin, margin[["predicted_margin", "achieved_margin"]].corr(method="spearman").iloc[0, 1]


def table1_upstream_ner(cfg: Config, results_root) -> pd.DataFrame | None:
    """Table 1 with the NER tasks scored by JMED-LLM's own code (``metrics.partial_f1_upstream``):
    the version comparable with the paper's numbers; None when the run has no NER task."""
    if not any(get_task(t).kind == "ner" for t in cfg.tasks):
        return None
    return tables.table1(tables.score_table(cfg, results_root=results_root, ner="upstream"))


NER_PARSE = {"partial_f1": "strict F1", "n_unparsed": "strict unparsed", "partial_f1_lenient": "lenient F1",
             "n_unparsed_lenient": "lenient unparsed", "n_repeat_cut": "ended at a repeat"}


def ner_parses(runs: pd.DataFrame) -> pd.DataFrame | None:
    """How the NER lists were read, per model and task (test, mean over seeds): partial F1 and
    unparsed count by the strict parse (primary, as JMED-LLM scores) and by the lenient one that
    keeps the complete items of a cut list, and how many lists ended at a repeated item (config
    ``stop_at_repeat``), to 3 decimals; None when the run has no NER task."""
    ner = runs[[get_task(t).kind == "ner" for t in runs["task"]]]
    if ner.empty:
        return None
    cols = [c for c in NER_PARSE if c in ner]
    table = ner.groupby(["task", "model"], sort=False)[cols].mean().round(3).reset_index()  # in the runs' order
    return table.rename(columns=NER_PARSE)


def efficiency(runs: pd.DataFrame) -> pd.DataFrame:
    """Training and selection seconds per model, summed over tasks and seeds, against student SFT: a
    teacher shared by k student seeds counts under each (the cost of one run); what was actually
    spent, each stage once, is ``stage_seconds.csv``."""
    cost = runs.groupby("model")[["train_s", "select_s"]].sum()
    cost["ratio_vs_student_sft"] = cost["train_s"] / cost.loc["student_sft", "train_s"]
    cost["selection_share"] = cost["select_s"] / cost["train_s"]
    return cost.reset_index()


def detectable(scores: pd.DataFrame, claims: pd.DataFrame) -> pd.DataFrame:
    """What the run can resolve: every claim (on all tasks, and again without its all-tie tasks when
    it has some) and every model's task-average difference from the teacher (Table 1), with the
    difference, its 95% interval, the minimum detectable difference ``mde`` (80% power, two-sided
    5%, ``scd.analysis.power``), the paper's difference of the same two averages where it reports
    both (whole test set only) and a plain verdict. Tasks with too little train data are out of both."""
    paper = tables.paper_reported().query("task == 'average'").set_index("model")["value"] if set(
        scores.task) - {"average"} <= set(TASKS) else pd.Series(dtype=float)
    rows = []
    for r in claims.itertuples():
        ties = str(r.tie_tasks).split() if pd.notna(r.tie_tasks) else []
        rows.append(_detect(r.a, r.b, f"claim: {r.claim}", r.subset, "all", r.n, r.diff, r.lo, r.hi, r.mde, paper))
        if ties:
            rows.append(_detect(r.a, r.b, f"claim: {r.claim}", r.subset, "without " + ", ".join(ties),
                                r.n_without_tie_tasks, r.diff_without_tie_tasks, r.lo_without_tie_tasks,
                                r.hi_without_tie_tasks, r.mde_without_tie_tasks, paper))
    if "mde_vs_teacher" in scores:
        for r in scores[(scores.task == "average") & scores.diff_vs_teacher.notna()].itertuples():
            rows.append(_detect(r.model, "teacher_sft", "Table 1 average vs the teacher", "all", "all", float("nan"),
                                r.diff_vs_teacher, r.diff_lo, r.diff_hi, r.mde_vs_teacher, paper))
    return pd.DataFrame(rows, columns=["comparison", "source", "subset", "tasks", "n", "diff", "lo", "hi", "mde",
                                       "paper_diff", "verdict"])


def _detect(a: str, b: str, source: str, subset: str, tasks: str, n, diff, lo, hi, mde, paper: pd.Series) -> dict:
    both = subset == "all" and a in paper.index and b in paper.index
    paper_diff = float(paper[a] - paper[b]) if both else float("nan")
    if pd.isna(lo):
        verdict = "untestable: no items"
    elif lo > 0 or hi < 0:
        verdict = f"detected: {a} {'above' if lo > 0 else 'below'} {b}"
    else:
        verdict = f"undecided: {power.undetected(mde)}"
    if both and not pd.isna(mde) and abs(paper_diff) < mde:
        verdict += f"; the paper's {paper_diff:+.3f} is below this resolution"
    return {"comparison": f"{a} − {b}", "source": source, "subset": subset, "tasks": tasks, "n": n, "diff": diff,
            "lo": lo, "hi": hi, "mde": mde, "paper_diff": paper_diff, "verdict": verdict}


def run_targets(cfg: Config, scores: pd.DataFrame, results_root, signal: pd.DataFrame | None = None,
                spent: pd.DataFrame | None = None) -> pd.DataFrame:
    """The targets table (``scd.analysis.targets``) of a results folder; ``scores``: Table 1's."""
    signal = signals.check_table(cfg, scores, results_root) if signal is None else signal
    thin = set(tables.thin_tasks(cfg))
    diffs = {(a, b): [tables.credit_matrix(cfg, t, a, results_root) - tables.credit_matrix(cfg, t, b, results_root)
                      for t in cfg.tasks if t not in thin]
             for a, b in targets.DIFFERENCES if {a, b} <= set(cfg.models)}
    return targets.target_table(cfg, load_runs(cfg, results_root), signal, diffs, results_root, spent)


def write_all(cfg: Config, results_root, ablation_tasks=()) -> list[Path]:
    """Write every derived table of ``results/<profile>/`` (after the stages have been exported)."""
    out = results_dir(cfg, results_root)
    scores = tables.score_table(cfg, results_root=results_root)
    paths = write_table(out / "scores_ci", scores) + write_table(out / "table1_ci", tables.table1(scores))
    signal = signals.check_table(cfg, scores, results_root)
    if len(signal):
        paths += write_table(out / "signal_checks", signal)
    spent = run_time(cfg, results_root)  # where the time goes (notebook 7), and the time targets
    paths += write_table(out / "targets", run_targets(cfg, scores, results_root, signal, spent))
    paths += write_table(out / "dev_gap", signals.dev_gap(load_table(cfg, "trajectory", results_root),
                                                          tables.thin_tasks(cfg)))
    upstream = table1_upstream_ner(cfg, results_root)
    if upstream is not None:
        paths += write_table(out / "table1_ci_upstream_ner", upstream)
    sub = sfs_tfs(cfg, results_root)
    for name in ("decomposition", "scores", "subtask_view", "claims", "ties"):
        paths += write_table(out / ("sfs_tfs_" + name if name in ("decomposition", "scores", "ties") else name),
                             sub[name])
    paths += write_table(out / "detectable", detectable(scores, sub["claims"]))
    runs = load_runs(cfg, results_root)
    paths += write_table(out / "efficiency", efficiency(runs))
    if len(spent):
        paths += write_table(out / "run_time", spent)
    parses = ner_parses(runs)
    if parses is not None:
        paths += write_table(out / "ner_parses", parses)
    terms = selection.candidates(load_table(cfg, "stages", results_root), cfg.selection_terms)
    if len(terms):  # SCD's choices term by term (notebook 4)
        paths += [write_csv(out / "scd_selection.csv", terms)]
        paths += write_table(out / "scd_selection_summary", selection.summary(terms))
    if ablation_tasks:
        abl = ablations.load(cfg, ablation_tasks, results_root)
        paths += write_table(out / "ablations_summary", ablations.summary(cfg, abl).reset_index())
        effects = ablations.variant_effects(cfg, ablation_tasks, results_root=results_root, table=abl)
        paths += write_table(out / "ablations_effects", effects)
    return paths
