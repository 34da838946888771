"""The statistics count a test item once, report ties, and state their resolution: hand-made cases
whose answer is known (no training, no results folder)."""
import numpy as np
import pandas as pd
import pytest

from scd.analysis import power, products, sfs_tfs
from scd.analysis.sfs_tfs import (bootstrap_ci, claim_table, cluster_bootstrap, paired_difference, task_average_ci,
                                  tie_table)

MODELS = ("teacher_sft", "student_sft", "td", "cd", "scd", "td_aw", "cd_aw", "scd_aw")


def rows(ids, correct):
    return pd.DataFrame({"id": ids, "tag": "t", "gold": "A", "correct": np.asarray(correct, float),
                         "gold_loss": 1.0})


def split(ids, domains):
    return pd.DataFrame({"id": ids, "tag": "t", "l_T": 0.0, "l_S": 0.0, "domain": domains})


# ------------------------------------------------------------------ (1) an item counts once
def test_repeating_every_item_over_seeds_does_not_narrow_any_interval():
    """Three seeds with identical rows hold the information of one: every interval and MDE stays the
    one of a single seed, where treating the rows as independent items would shrink it by about √3."""
    rng = np.random.default_rng(0)
    a, b = rng.binomial(1, 0.6, size=(1, 80)).astype(float), rng.binomial(1, 0.5, size=(1, 80)).astype(float)
    a3, b3 = np.repeat(a, 3, axis=0), np.repeat(b, 3, axis=0)
    assert bootstrap_ci(a3, n_boot=500) == pytest.approx(bootstrap_ci(a, n_boot=500))
    one, three = paired_difference(a, b, n_boot=500), paired_difference(a3, b3, n_boot=500)
    assert (three["lo"], three["hi"], three["mde"]) == pytest.approx((one["lo"], one["hi"], one["mde"]))
    per_task = {"x": a - b, "y": b}
    assert task_average_ci({k: np.repeat(v, 3, axis=0) for k, v in per_task.items()}, 500) == pytest.approx(
        task_average_ci(per_task, 500))
    # the rows as 240 independent items: what the old pooled bootstrap did, and what this guards against
    pooled = paired_difference(a3.reshape(1, -1), b3.reshape(1, -1), n_boot=500)
    assert pooled["hi"] - pooled["lo"] < 0.7 * (one["hi"] - one["lo"]) and pooled["mde"] < 0.7 * one["mde"]


def test_claims_count_an_item_once_over_its_seeds():
    rng = np.random.default_rng(1)
    ids = [f"q{i}" for i in range(60)]
    frames = {m: rows(ids, rng.random(60) < 0.5) for m in MODELS}
    domains = np.where(rng.random(60) < 0.5, "SFS", "TFS")
    one = claim_table({("t", 0): frames}, {("t", 0): split(ids, domains)}, n_boot=400)
    three = claim_table({("t", s): frames for s in range(3)}, {("t", s): split(ids, domains) for s in range(3)},
                        n_boot=400)
    assert (three.n == one.n).all() and (three.n_rows == 3 * one.n_rows).all()
    for col in ("diff", "lo", "hi", "mde", "diff_without_tie_tasks", "mde_without_tie_tasks"):
        assert three[col].tolist() == pytest.approx(one[col].tolist(), nan_ok=True), col
    assert three.verdict.tolist() == one.verdict.tolist()


def test_an_item_in_the_subset_on_some_seeds_only_is_one_cluster_of_its_rows():
    ids = ["a", "b", "c"]
    frames = {m: rows(ids, [1, 0, 1]) for m in MODELS}
    splits = {("t", 0): split(ids, ["TFS", "TFS", "SFS"]), ("t", 1): split(ids, ["SFS", "TFS", "SFS"])}
    credit = sfs_tfs.subset_credit({k: frames for k in splits}, splits, ["scd", "td"], "TFS")["t"]["scd"]
    assert credit.shape == (2, 2)  # items a and b; a is in the TFS of seed 0 only
    assert np.isnan(credit[1, 0]) and credit[0, 0] == 1 and (credit[:, 1] == 0).all()
    assert power.cluster_totals(credit)[1].tolist() == [1.0, 2.0]


# ------------------------------------------------------------------ (2) resolution against the closed form
def test_z_factor_and_mde_are_the_textbook_numbers():
    assert power.z_factor() == pytest.approx(1.959964 + 0.841621, abs=1e-5)
    assert power.mde(0.01) == pytest.approx(0.028016, abs=1e-5)
    assert power.z_factor(alpha=0.05, power=0.5) == pytest.approx(1.959964, abs=1e-5)  # 50% power: the 95% cut-off


def test_clustered_se_is_the_item_level_variance_over_n():
    rng = np.random.default_rng(2)
    sigma, n = 0.2, 4000
    d = rng.normal(0.05, sigma, size=(1, n))
    assert power.clustered_se([d]) == pytest.approx(d.std(ddof=1) / np.sqrt(n), rel=1e-12)
    assert power.clustered_se([d]) == pytest.approx(sigma / np.sqrt(n), rel=0.05)  # the known variance
    assert power.mde(power.clustered_se([d])) == pytest.approx(2.8016 * sigma / np.sqrt(n), rel=0.05)
    # three replicates: item effect (variance tau²) plus replicate noise: var of an item's mean = tau² + sigma²/3
    tau = 0.1
    m = rng.normal(0, tau, size=(1, n)) + rng.normal(0, sigma, size=(3, n))
    assert power.clustered_se([m]) == pytest.approx(m.mean(axis=0).std(ddof=1) / np.sqrt(n), rel=1e-12)
    assert power.clustered_se([m]) == pytest.approx(np.sqrt((tau ** 2 + sigma ** 2 / 3) / n), rel=0.05)
    # the task average: tasks weigh the same, their variances add
    small = rng.normal(0, sigma, size=(2, 300))
    se = [power.clustered_se([x]) for x in (m, small)]
    assert power.clustered_se([m, small], "strata") == pytest.approx(np.hypot(*se) / 2, rel=1e-12)


def test_clustered_se_matches_the_clustered_bootstrap_with_ragged_items():
    rng = np.random.default_rng(3)
    m = rng.normal(0.1, 0.3, size=(3, 400)) + rng.normal(0, 0.2, size=(1, 400))
    m[rng.random(m.shape) < 0.4] = np.nan  # items in the subset on some replicates only
    other = rng.normal(-0.2, 0.5, size=(3, 150))
    for weighting in ("rows", "strata"):
        boot = cluster_bootstrap([m, other], weighting, n_boot=4000, seed=4, replicates=False)
        se = power.clustered_se([m, other], weighting)
        assert boot.std() == pytest.approx(se, rel=0.06) and boot.mean() == pytest.approx(
            power.estimate([m, other], weighting), abs=se / 5)


def test_an_effect_of_one_mde_is_detected_four_times_in_five():
    """Simulated z-tests: with the true difference equal to the MDE, about 80% reject."""
    rng = np.random.default_rng(5)
    sigma, n, sims = 0.3, 100, 4000
    true = power.mde(sigma / np.sqrt(n))
    d = rng.normal(true, sigma, size=(sims, n))
    z = d.mean(axis=1) / (d.std(axis=1, ddof=1) / np.sqrt(n))
    assert (np.abs(z) > 1.959964).mean() == pytest.approx(0.80, abs=0.03)


# ------------------------------------------------------------------ (3) ties counted
def tie_case():
    """Two tasks, two seeds. Task x: scd beats td on TFS item x1 on both seeds, ties on x2 and x3;
    x3 is SFS on seed 1. Task y: every model answers every item the same (all ties)."""
    samples, splits = {}, {}
    for seed in (0, 1):
        x = {m: rows(["x1", "x2", "x3"], [0, 1, 0]) for m in MODELS} | {"scd": rows(["x1", "x2", "x3"], [1, 1, 0])}
        y = {m: rows(["y1", "y2"], [1, 0]) for m in MODELS}
        samples[("x", seed)], samples[("y", seed)] = x, y
        splits[("x", seed)] = split(["x1", "x2", "x3"], ["TFS", "TFS", "TFS" if seed == 0 else "SFS"])
        splits[("y", seed)] = split(["y1", "y2"], ["TFS", "TFS"])
    return samples, splits


def test_tie_table_counts_items_every_compared_model_credits_alike():
    table = tie_table(*tie_case()).set_index(["subset", "task"])
    x, y = table.loc[("TFS", "x")], table.loc[("TFS", "y")]
    assert x.models == "scd td cd" and (x["items"], x["rows"], x.tie_items) == (3, 5, 2) and not x.all_tie
    assert (y["items"], y["rows"], y.tie_items) == (2, 4, 2) and y.all_tie
    total = table.loc[("TFS", "total")]
    assert (total["items"], total["rows"], total.tie_items) == (5, 9, 4) and not total.all_tie
    assert table.loc[("SFS", "x"), "items"] == 1 and table.loc[("SFS", "y"), "items"] == 0
    assert table.loc[("all", "x"), "models"] == "scd_aw teacher_sft" and table.loc[("all", "y"), "all_tie"]


# ------------------------------------------------------------------ (4) claims with and without all-tie tasks
def test_claims_are_stated_on_all_tasks_and_without_the_all_tie_ones():
    samples, splits = tie_case()
    claims = claim_table(samples, splits, n_boot=300).set_index("claim")
    scd_td = claims.loc["SCD narrows the TFS deficit (SCD vs. standard KD)"]
    assert scd_td.tie_tasks == "y" and (scd_td.n, scd_td.n_rows, scd_td.n_ties) == (5, 9, 4)
    assert scd_td["diff"] == pytest.approx(2 / 9)  # x1's two rows of +1, pooled with 7 tied rows
    assert scd_td.n_without_tie_tasks == 3 and scd_td.diff_without_tie_tasks == pytest.approx(2 / 5)
    assert scd_td.mde_without_tie_tasks > scd_td.mde > 0
    whole = claims.loc["the SCD+AW student beats the teacher"]  # scd_aw and the teacher tie everywhere
    assert whole.tie_tasks == "x y" and whole["diff"] == 0 and whole.verdict == "undecided"
    assert whole.n_without_tie_tasks == 0 and whole.verdict_without_tie_tasks == "untestable"
    text = sfs_tfs.claims_text(claims.reset_index(), 0.5, 2, float("nan"), 2, "smoke", 2)
    assert "without y (every item tied): 3 items, +0.400" in text and "would go undetected" in text


def test_the_whole_test_claim_averages_tasks_with_and_without_the_tied_one():
    samples, splits = tie_case()
    for key in samples:  # scd_aw now beats the teacher on x1 (task x), ties on y
        if key[0] == "x":
            samples[key] = samples[key] | {"scd_aw": rows(["x1", "x2", "x3"], [1, 1, 0])}
    whole = claim_table(samples, splits, n_boot=300).set_index("claim").loc["the SCD+AW student beats the teacher"]
    assert whole.tie_tasks == "y" and whole["diff"] == pytest.approx((1 / 3 + 0) / 2)
    assert whole.diff_without_tie_tasks == pytest.approx(1 / 3) and whole.n_without_tie_tasks == 3


def test_detectable_lists_claims_twice_and_the_averages_with_a_plain_verdict():
    claims = claim_table(*tie_case(), n_boot=300)
    average = {"model": "scd", "task": "average", "diff_vs_teacher": 0.01, "diff_lo": -0.02, "diff_hi": 0.04,
               "mde_vs_teacher": 0.042}
    teacher = {"model": "teacher_sft", "task": "average", "diff_vs_teacher": np.nan}
    table = products.detectable(pd.DataFrame([average, teacher, teacher | {"task": "my_task"}]), claims)
    scd_td = table[table.source.str.contains("standard KD")]
    assert scd_td.tasks.tolist() == ["all", "without y"] and scd_td.n.tolist() == [5, 3]
    row = table[table.source == "Table 1 average vs the teacher"].iloc[0]
    assert row.comparison == "scd − teacher_sft" and len(table[table.source.str.startswith("Table 1")]) == 1
    assert row.verdict == "undecided: an effect smaller than 0.042 would go undetected"
    assert np.isnan(row.paper_diff)  # a task of one's own: no paper numbers beside
    decided = pd.DataFrame([average | {"diff_lo": 0.001}, teacher, teacher | {"task": "crade"}])  # the benchmark
    row = products.detectable(decided, claims).iloc[-1]
    assert row.paper_diff == pytest.approx(0.742 - 0.773)  # the paper's SCD and teacher averages
    assert row.verdict == "detected: scd above teacher_sft; the paper's -0.031 is below this resolution"


def test_runs_that_disagree_widen_the_interval_beyond_the_items_alone():
    """Seeds with a systematic difference: resampling the runs puts that training variance in the
    interval, which resampling the items alone would leave out."""
    rng = np.random.default_rng(3)
    base = rng.normal(0.0, 1.0, size=200)
    m = np.stack([base + shift for shift in (-0.5, 0.0, 0.5)])
    runs = cluster_bootstrap([m], n_boot=1000, seed=0)
    items = cluster_bootstrap([m], n_boot=1000, seed=0, replicates=False)
    assert runs.std() > 2 * items.std()
