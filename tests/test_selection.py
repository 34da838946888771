"""SCD's checkpoint choice term by term (``scd.analysis.selection``): both KL terms are recorded,
derived where older results lack the student term, and each stage names the term that decided."""
import json
import math
import shutil
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from scd.analysis import figures, selection
from scd.analysis.products import write_all
from scd.core.config import get_config
from scd.core.io import project_path, read_json
from scd.core.methods import parse_method
from scd.core.records import StageRecord
from scd.stages import distill

RESULTS = project_path("results")


def stage(model="scd_aw", task="crade", seed=0, n=0, best=(0.2, 0.1, 0.0), student=(1.0, 2.0, 3.0),
          terms="both", kl_student=True, chosen=None) -> dict:
    """A stages.csv row of a probe method; ``kl_student=False`` leaves the column out (older results)."""
    use_best, use_student = terms in ("both", "best"), terms in ("both", "student")
    score = [use_best * b + use_student * s for b, s in zip(best, student)]
    pick = min(range(len(score)), key=lambda c: (score[c], c)) if chosen is None else chosen
    row = {"model": model, "task": task, "seed": seed, "stage": n, "checkpoint": f"ckpt{pick}",
           "checkpoint_index": pick, "candidate_scores": json.dumps(score), "kl_from_best": json.dumps(list(best))}
    return row | ({"kl_student": json.dumps(list(student))} if kl_student else {})


def no_probe(model="td", **kw) -> dict:
    return {"model": model, "task": "crade", "seed": 0, "stage": 0, "checkpoint": "ckpt2", "checkpoint_index": 2,
            "candidate_scores": float("nan"), "kl_from_best": json.dumps([0.2, 0.1, 0.0])} | kw


def test_each_stage_names_the_term_that_decided():
    rows = [stage(n=0, best=(0.2, 0.1, 0.0), student=(1.0, 2.0, 3.0)),    # student term: ckpt0
            stage(n=1, best=(3.0, 2.0, 0.0), student=(0.0, 0.1, 0.2)),    # best term: ckpt2
            stage(n=2, best=(0.3, 0.2, 0.0), student=(0.5, 0.4, 0.1)),    # both: ckpt2
            stage(n=3, best=(1.0, 0.5, 0.0), student=(0.0, 0.4, 1.0))]    # only the sum: ckpt1 (1.0, 0.9, 1.0)
    terms = selection.candidates(pd.DataFrame(rows))
    assert list(terms.columns) == selection.COLUMNS and len(terms) == 12
    view = selection.stage_view(terms)
    assert list(view.decided_by) == ["student term", "best term", "both agree", "neither alone"]
    assert list(view.chosen_index) == [0, 2, 2, 1]
    assert terms.groupby("stage").chosen.sum().tolist() == [1, 1, 1, 1]
    first = terms[terms.stage == 0]
    assert first.kl_best.tolist() == [0.2, 0.1, 0.0] and first.kl_student.tolist() == [1.0, 2.0, 3.0]
    assert first.score.tolist() == pytest.approx([1.2, 2.1, 3.0])
    assert first.kl_best_range.iloc[0] == pytest.approx(0.2) and first.kl_student_range.iloc[0] == pytest.approx(2.0)
    assert first.checkpoint.tolist() == ["ckpt0", "ckpt1", "ckpt2"] and first.chosen.tolist() == [True, False, False]


def test_a_tie_goes_to_the_earlier_checkpoint_as_in_scds_rule():
    assert selection.decided_by([0.0, 0.0, 0.1], [0.5, 0.5, 0.5], [0.5, 0.5, 0.6]) == "both agree"
    assert selection.decided_by([0.1, 0.0], [0.0, 0.1], [0.1, 0.1]) == "student term"  # the sum ties: ckpt0


def test_methods_without_a_probe_are_left_out():
    frame = pd.DataFrame([no_probe("td"), no_probe("cd_aw", candidate_scores="null"), stage(model="scd")])
    terms = selection.candidates(frame)
    assert set(terms.model) == {"scd"} and len(terms) == 3
    assert selection.candidates(pd.DataFrame([no_probe("td")])).empty


@pytest.mark.parametrize("terms_used", ["both", "student", "best"])
def test_older_results_get_the_student_term_where_it_is_exact(terms_used):
    """No kl_student column (results exported before it was kept): score − KL(best‖c) under "both",
    the score under "student", unknown under "best"."""
    student = (1.0, 2.0, 3.0)
    frame = pd.DataFrame([stage(terms=terms_used, student=student, kl_student=False)])
    terms = selection.candidates(frame, terms_used)
    if terms_used == "best":
        assert terms.kl_student.isna().all() and set(terms.decided_by) == {selection.UNKNOWN}
        assert selection.summary(terms)[selection.UNKNOWN].tolist() == [1, 1]
    else:
        assert terms.kl_student.tolist() == pytest.approx(list(student))
        assert set(terms.decided_by) == {"student term"}
        assert selection.UNKNOWN not in selection.summary(terms)


def test_a_recorded_student_term_is_read_not_derived():
    row = stage(terms="best", student=(1.0, 2.0, 3.0))  # a "best"-only run that recorded its probe anyway
    terms = selection.candidates(pd.DataFrame([row]), "best")
    assert terms.kl_student.tolist() == [1.0, 2.0, 3.0] and set(terms.decided_by) == {"best term"}
    mixed = pd.DataFrame([stage(n=0), stage(n=1, kl_student=False)])  # old and new rows, as after a merge
    mixed.loc[1, "kl_student"] = float("nan")
    assert selection.candidates(mixed).kl_student.tolist() == pytest.approx([1.0, 2.0, 3.0] * 2)


def test_summary_counts_each_method_and_task_then_all_tasks():
    rows = [stage(model=m, task=t, seed=s, n=n, best=b, student=st)
            for m in ("scd_aw", "scd") for t in ("crade", "smdis") for s in (0, 1)
            for n, (b, st) in enumerate([((0.2, 0.1, 0.0), (1.0, 2.0, 3.0)), ((3.0, 2.0, 0.0), (0.0, 0.1, 0.2))])]
    table = selection.summary(selection.candidates(pd.DataFrame(rows)))
    assert list(table.columns) == ["model", "task", "stages", "student_term", "best_term", "both_agree",
                                   "neither_alone", "earliest_chosen", "last_chosen", "kl_best_range",
                                   "kl_student_range"]
    assert list(zip(table.model, table.task)) == [("scd", "crade"), ("scd", "smdis"), ("scd", "all tasks"),
                                                  ("scd_aw", "crade"), ("scd_aw", "smdis"), ("scd_aw", "all tasks")]
    crade = table.iloc[0]
    assert (crade.stages, crade.student_term, crade.best_term, crade.both_agree, crade.neither_alone) == (4, 2, 2, 0, 0)
    assert (crade.earliest_chosen, crade.last_chosen) == (2, 2)
    assert crade.kl_best_range == pytest.approx((0.2 + 3.0) / 2) and crade.kl_student_range == pytest.approx(1.1)
    assert table.iloc[2].stages == 8 and table.iloc[2].student_term == 4
    whole, focus = selection.headline(selection.candidates(pd.DataFrame(rows)))
    assert (whole.model, whole.task, focus.model, focus.task) == ("scd_aw", "all tasks", "scd_aw", "crade")
    _, first = selection.headline(selection.candidates(pd.DataFrame(rows)), focus="nrner")
    assert first.task == "crade"


def test_the_figure_draws_every_stage_and_seed():
    rows = [stage(seed=s, n=n) for s in (0, 1) for n in (0, 1, 2)]
    fig = figures.selection_terms(selection.candidates(pd.DataFrame(rows)))
    axes = fig.axes
    assert len(axes) == 6 and axes[0].get_title() == "seed 0, stage 0: student term"
    assert axes[0].get_ylabel() and axes[-1].get_xlabel() == "teacher checkpoint" and fig.legends
    empty = figures.selection_terms(selection.candidates(pd.DataFrame([no_probe()])))
    assert "no scd_aw stages" in empty.axes[0].texts[0].get_text()
    import matplotlib.pyplot as plt
    plt.close("all")


def test_a_stage_record_without_the_student_term_still_loads():
    """Records written before ``kl_student`` existed (every done.json in runs/) read as None."""
    dev = {"n": 4, "n_unparsed": 0, "primary": 0.5, "selection": 0.25, "gold_loss": 1.5}
    old = {"stage": 0, "checkpoint": "ckpt0", "checkpoint_index": 0, "candidate_scores": [1.2, 2.1],
           "kl_from_best": [0.2, 0.0], "weights": {}, "select_s": 0.1, "train_s": 1.0, "eval_s": 0.1, "steps": 3,
           "train_loss": 1.0, "dev": dev}
    assert StageRecord.from_json(old).kl_student is None
    new = StageRecord.from_json(old | {"kl_student": [1.0, 2.1]})
    assert new.kl_student == [1.0, 2.1] and StageRecord.from_json(new.to_json()) == new


def test_the_stage_plan_returns_both_terms(monkeypatch):
    """``stage_choice`` keeps the probe's student term beside the score; ``stage_plan`` is unchanged."""
    monkeypatch.setattr(distill, "student_probe_kl", lambda *a, **k: [0.5, 0.1, 0.3])
    targets = [SimpleNamespace(sample_ids=["a", "b"])] * 3
    args = (1, torch.nn.Linear(1, 1), None, [], targets, [0.0, 0.2, 0.4], 0, {})
    cfg = get_config("smoke")
    chosen, scores, kl_student, _ = distill.stage_choice(cfg, parse_method("scd"), *args)
    assert (chosen, kl_student) == (1, [0.5, 0.1, 0.3]) and scores == [0.5, 0.1 + 0.2, 0.3 + 0.4]
    assert distill.stage_plan(cfg, parse_method("scd"), *args)[:2] == (1, scores)
    assert distill.stage_choice(cfg, parse_method("td"), *args)[1:3] == (None, None)


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_the_committed_selection_tables_are_current(profile):
    """The committed scd_selection tables are those of the committed stages.csv and config."""
    folder, terms_used = RESULTS / profile, read_json(RESULTS / profile / "config.json")["selection_terms"]
    terms = selection.candidates(pd.read_csv(folder / "stages.csv"), terms_used)
    assert terms.to_csv(index=False) == (folder / "scd_selection.csv").read_text()
    assert selection.summary(terms).to_csv(index=False) == (folder / "scd_selection_summary.csv").read_text()


def test_write_all_writes_the_selection_tables(data_dir, tmp_path):
    saved = read_json(RESULTS / "smoke" / "config.json")
    cfg = get_config("smoke", tasks=saved["tasks"], seeds=saved["seeds"], selection_terms=saved["selection_terms"])
    shutil.copytree(RESULTS / "smoke", tmp_path / "smoke", ignore=shutil.ignore_patterns("scd_selection*"))
    written = {p.name for p in write_all(cfg, tmp_path, ablation_tasks=("crade",))}
    assert {"scd_selection.csv", "scd_selection_summary.csv", "scd_selection_summary.md",
            "scd_selection_summary.tex"} <= written
    for name in ("scd_selection.csv", "scd_selection_summary.md"):
        assert (tmp_path / "smoke" / name).read_text() == (RESULTS / "smoke" / name).read_text(), name


def test_a_fresh_scd_stage_records_both_terms(smoke_cfg):
    """A smoke SCD+AW run (slow: trains): every stage keeps KL(student‖c) for each of the N
    candidates, and its score is the sum of the two terms."""
    run = distill.distill_stage(smoke_cfg, "scd_aw", "crade", 0)
    for s in run.stages:
        assert len(s.kl_student) == len(s.kl_from_best) == smoke_cfg.n_checkpoints
        assert s.candidate_scores == [b + k for b, k in zip(s.kl_from_best, s.kl_student)]
        assert all(math.isfinite(k) and k > -1e-6 for k in s.kl_student)  # a KL, up to rounding
