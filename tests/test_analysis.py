"""SFS/TFS identity, coverage, and bootstrap behaviour on synthetic and real results."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scd.analysis import sfs_tfs
from scd.analysis.sfs_tfs import (bootstrap_ci, decomposition, paired_difference, split_subdomains, subdomain_scores,
                          subtask_view)


def frame(ids, loss, correct, tags=None):
    return pd.DataFrame({"id": ids, "tag": tags or ["t"] * len(ids), "gold_loss": loss, "correct": correct})


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0, 10), st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_identity_holds_and_domains_partition(samples):
    ids = [f"s{i}" for i in range(len(samples))]
    teacher = frame(ids, [s[0] for s in samples], [float(s[2]) for s in samples])
    student = frame(ids, [s[1] for s in samples], [float(s[3]) for s in samples])
    for risk in ("loss", "error"):
        split = split_subdomains(teacher, student, risk)
        assert sorted(split["id"]) == sorted(ids) and split["domain"].isin(["SFS", "TFS"]).all()
        d = decomposition(split)
        assert d["residual"] == pytest.approx(0.0, abs=1e-9)
        assert d["P_SFS"] + d["P_TFS"] == pytest.approx(1.0)


def test_known_decomposition():
    teacher = frame(["a", "b", "c", "d"], [1.0, 1.0, 3.0, 2.0], [1, 1, 0, 1])
    student = frame(["a", "b", "c", "d"], [2.0, 1.0, 1.0, 2.5], [0, 1, 1, 1])
    d = decomposition(split_subdomains(teacher, student, "loss"))
    # SFS = {c} (advantage 2); TFS = {a, b, d} (deficits 1, 0, 0.5 -> mean 0.5)
    assert (d["P_SFS"], d["adv_SFS"], d["P_TFS"], d["deficit_TFS"]) == pytest.approx((0.25, 2.0, 0.75, 0.5))
    assert d["gap"] == pytest.approx(7 / 4 - 6.5 / 4) and d["rhs"] == pytest.approx(0.5 - 0.375)
    scores = subdomain_scores(split_subdomains(teacher, student), {"teacher": teacher, "student": student})
    assert scores.set_index(["model", "domain"]).loc[("student", "SFS"), "score"] == 1.0


def test_subtask_view_counts_wins():
    teacher = frame(["a", "b", "c", "d"], [1] * 4, [1, 0, 1, 1], tags=["x", "x", "y", "y"])
    s1 = frame(["a", "b", "c", "d"], [1] * 4, [1, 1, 0, 1], tags=["x", "x", "y", "y"])
    view = subtask_view(teacher, {"scd": s1}).set_index("tag")
    assert bool(view.loc["x", "student_wins"]) and not bool(view.loc["y", "student_wins"])


def test_bootstrap_contains_estimate_and_shrinks():
    rng = np.random.default_rng(0)
    small = rng.binomial(1, 0.6, size=(3, 50))
    large = rng.binomial(1, 0.6, size=(3, 2000))
    m1, lo1, hi1 = bootstrap_ci(small, n_boot=500)
    m2, lo2, hi2 = bootstrap_ci(large, n_boot=500)
    assert lo1 <= m1 <= hi1 and lo2 <= m2 <= hi2
    assert hi2 - lo2 < (hi1 - lo1) / 3


def test_paired_difference_detects_a_real_gap_only():
    rng = np.random.default_rng(1)
    a = rng.binomial(1, 0.8, size=(3, 300)).astype(float)
    b = rng.binomial(1, 0.5, size=(3, 300)).astype(float)
    assert paired_difference(a, b, n_boot=500)["distinguishable"]
    assert paired_difference(a, a.copy(), n_boot=500)["diff"] == 0.0
    assert not paired_difference(a, np.roll(a, 1, axis=1), n_boot=500)["distinguishable"]


def test_identity_on_real_smoke_outputs(smoke_cfg):
    from scd.stages.base_sft import sft_stage

    teacher = pd.read_csv(sft_stage(smoke_cfg, "teacher", "crade", 0).path + "/test.csv")
    student = pd.read_csv(sft_stage(smoke_cfg, "student", "crade", 0).path + "/test.csv")
    for risk in ("loss", "error"):
        split = split_subdomains(teacher, student, risk)
        assert len(split) == len(teacher) and split["id"].is_unique
        d = decomposition(split)
        assert abs(d["residual"]) < 1e-12 and d["gap"] == pytest.approx(d["weighted_adv"] - d["weighted_deficit"])


def test_claim_verdicts_follow_the_intervals():
    rng = np.random.default_rng(0)
    ids = [f"q{i}" for i in range(200)]
    loss_t, loss_s = rng.random(200), rng.random(200)
    good, bad = frame(ids, loss_s, np.ones(200)), frame(ids, loss_s, np.zeros(200))
    coin = frame(ids, loss_s, (rng.random(200) < 0.5).astype(float))
    frames = {"teacher_sft": frame(ids, loss_t, (loss_t < 0.5).astype(float)), "student_sft": frame(ids, loss_s, coin.correct),
              "td": bad, "cd": bad, "td_aw": bad, "scd": good, "scd_aw": frame(ids, loss_s, np.zeros(200))}
    split = sfs_tfs.split_subdomains(frames["teacher_sft"], frames["student_sft"], "error")
    table = sfs_tfs.claim_table({("t", 0): frames}, {("t", 0): split}, n_boot=300).set_index("claim")
    assert table.loc["SCD narrows the TFS deficit (SCD vs. standard KD)", "verdict"] == "supported"  # 1 vs 0
    assert table.loc["AW keeps the SFS advantage (SCD+AW vs. SCD)", "verdict"] == "contradicted"  # 0 vs 1
    assert table.loc["the SCD+AW student beats the teacher", "n"] == 200
    tfs = (split.domain == "TFS").sum()
    assert table.loc["SCD narrows the TFS deficit (SCD vs. standard KD)", "n"] == tfs
    empty = {("t", 0): split.assign(domain="TFS")}  # no SFS items: those claims cannot be tested
    untested = sfs_tfs.claim_table({("t", 0): frames}, empty, n_boot=50).set_index("claim")
    assert (untested.loc[untested.subset == "SFS", "verdict"] == "untestable").all()
    assert untested.loc[untested.subset == "SFS", "n"].eq(0).all()
    text = sfs_tfs.claims_text(table.reset_index(), 0.25, 8, float("nan"), 1, "smoke", 1)
    assert "**supported**" in text and "**contradicted**" in text and "untestable" in text and "25% of 8" in text


def test_tasks_with_too_little_train_data_are_marked_and_left_out_of_the_average():
    """On the committed cpu rows: MRNER-medicine (14 train items) is kept, marked, and out of the
    average, which is then the mean of the other seven tasks."""
    from scd.core.config import get_config
    from scd.core.io import project_path
    from scd.analysis.tables import score_table, table1, thin_tasks

    cfg = get_config("cpu", seeds=(0,), min_train_items=50)  # one of the committed seeds
    assert thin_tasks(cfg) == ["mrner_medicine"] and thin_tasks(cfg.replace(min_train_items=0)) == []
    scores = score_table(cfg, models=("teacher_sft", "student_sft"), results_root=project_path("results"), n_boot=50)
    teacher = scores[scores.model == "teacher_sft"].set_index("task")
    seven = teacher.drop(["average", "mrner_medicine"])["mean"].mean()
    assert teacher.loc["average", "mean"] == pytest.approx(seven)
    assert teacher.loc["average", "mean"] != pytest.approx(teacher.drop("average")["mean"].mean())
    assert teacher.loc["mrner_medicine", "too_little_train"] and not teacher.loc["crade", "too_little_train"]
    assert "mrner_medicine (too little train data)" in table1(scores).columns
