"""The run's targets on a hand-made results folder: the uniform guess, collapse, differences, timing."""
import math

import pandas as pd
import pytest

from scd.analysis import targets
from scd.analysis.export import run_time
from scd.analysis.products import run_targets
from scd.core.config import get_config
from scd.core.io import write_json

GOLD = {"crade": list("ABCD") * 2, "smdis": list("AB") * 4}


def _folder(tmp_path, cfg, predictions, losses):
    """``predictions[(model, task)]``: the labels predicted in every seed; gold as ``GOLD``."""
    rows = []
    for (model, task), pred in predictions.items():
        folder = tmp_path / cfg.profile / "samples" / task
        folder.mkdir(parents=True, exist_ok=True)
        for seed in cfg.seeds:
            gold = GOLD[task]
            pd.DataFrame({"id": range(len(gold)), "gold": gold, "prediction": pred,
                          "correct": [float(p == g) for p, g in zip(pred, gold)]}).to_csv(
                folder / f"{model}_seed{seed}.csv", index=False)
            rows.append({"model": model, "task": task, "seed": seed, "gold_loss": losses[(model, task)][seed]})
    pd.DataFrame(rows).to_csv(tmp_path / cfg.profile / "runs.csv", index=False)


@pytest.fixture
def made(tmp_path):
    cfg = get_config("smoke", tasks=("crade", "smdis"), methods=("td", "scd_aw"), seeds=(0, 1), min_train_items=0)
    right = {t: GOLD[t] for t in GOLD}
    predictions, losses = {}, {}
    for model in cfg.models:
        for task in GOLD:
            collapsed = model == "scd_aw" and task == "crade"
            predictions[(model, task)] = ["A"] * 8 if collapsed else right[task][:6] + ["A", "A"]
            guess = math.log(4 if task == "crade" else 2) / 2
            losses[(model, task)] = [guess + 0.05, guess + 0.01] if collapsed else [guess - 0.1, guess - 0.2]
    _folder(tmp_path, cfg, predictions, losses)
    return cfg, tmp_path


def _scores(cfg):
    rows = [{"model": "teacher_sft", "task": t, "mean": 0.7, "lo": 0.6, "hi": 0.8} for t in cfg.tasks]
    return pd.DataFrame(rows + [{"model": "student_sft", "task": "average", "mean": 0.5, "lo": 0.4, "hi": 0.6,
                                 "diff_vs_teacher": -0.2, "diff_lo": -0.3, "diff_hi": -0.1}])


def test_uniform_guess_is_half_the_log_of_the_options():
    assert targets.uniform_guess_loss("crade") == pytest.approx(math.log(4) / 2)  # 0.693: letter + end of answer
    assert targets.uniform_guess_loss("smdis") == pytest.approx(math.log(2) / 2)
    assert targets.uniform_guess_loss("rrtnm") == pytest.approx(math.log(5) / 2)


def test_a_collapsed_arm_misses_both_learning_targets_and_the_others_meet_them(made):
    cfg, root = made
    table = run_targets(cfg, _scores(cfg), root)
    loss = table[table.target.str.startswith("mean test gold loss")].set_index(["model", "task"])
    assert not loss.loc[("scd_aw", "crade"), "met"]  # mean of guess+0.05 and guess+0.01
    assert loss.loc[("scd_aw", "crade"), "value"] == pytest.approx(math.log(4) / 2 + 0.03)
    assert loss.drop(("scd_aw", "crade")).met.all()
    labels = table[table.target.str.startswith("labels predicted")].set_index(["model", "task"])
    assert labels.loc[("scd_aw", "crade"), "value"] == 1 and not labels.loc[("scd_aw", "crade"), "met"]
    assert labels.loc[("td", "crade"), "value"] == 4 and labels.drop(("scd_aw", "crade")).met.all()
    assert "missed" in targets.summary(table) and "(crade)" in targets.summary(table)


def test_the_paper_differences_are_reported_with_interval_and_resolution_not_judged(made):
    cfg, root = made
    table = run_targets(cfg, _scores(cfg), root)
    diffs = table[table.task == "average"].set_index("model")
    td = diffs.loc["td − student_sft"]  # identical predictions: a difference of exactly zero
    assert td.value == 0 and td.lo == 0 and td.hi == 0 and pd.isna(td.met)
    aw = diffs.loc["scd_aw − td"]  # crade: 2/8 vs 6/8 right, smdis: equal -> average −0.25
    assert aw.value == pytest.approx(-0.25) and aw.lo < aw.value < aw.hi and aw.mde > 0 and pd.isna(aw.met)


def test_time_is_judged_only_for_a_run_that_computed_every_stage(made):
    cfg, root = made
    path = root / cfg.profile / "timing.json"
    write_json(path, {"wall_s": 37.0})  # a run that only merged tables: no time measured
    row = targets.timing_rows(cfg, root)[0]
    assert math.isnan(row["value"]) and row["met"] is None
    write_json(path, {"wall_s": 90 * 60.0, "stages": 12, "stages_computed": 12, "seeds": [0, 1]})
    row = targets.timing_rows(cfg, root)[0]
    assert row["value"] == 90.0 and row["threshold"] == 100.0 and row["met"] is True
    write_json(path, {"wall_s": 50 * 60.0, "stages": 12, "stages_computed": 12, "seeds": [0]})
    assert targets.timing_rows(cfg.replace(seeds=(0,)), root)[0]["met"] is False  # one seed: 45 minutes


def test_summed_stage_times_count_a_shared_teacher_once_add_the_base_lms_and_only_show_a_miss(made):
    cfg, root = made
    folder = root / cfg.profile
    assert len(targets.timing_rows(cfg, root)) == 1  # no stage times: the one-run row alone
    write_json(folder / "base_models.json", {"student": {"wall_s": 60.0}, "teacher": {"wall_s": 540.0}})
    rows = []
    for task in cfg.tasks:  # one teacher (seed 0) for both run seeds, listed under each
        for seed in cfg.seeds:
            rows += [("sft", "teacher_sft", task, seed, 0, 1200.0, 60.0), ("cache", "teacher_cache", task, seed, 0, 300.0, 0),
                     ("sft", "student_sft", task, seed, seed, 60.0, 6.0), ("distill", "td", task, seed, seed, 120.0, 12.0)]
    frame = pd.DataFrame(rows, columns=["stage", "model", "task", "seed", "stage_seed", "seconds", "eval_seconds"])
    frame.to_csv(folder / "stage_seconds.csv", index=False)
    one, both = targets.timing_rows(cfg, root)[1:]
    assert one["value"] == pytest.approx((600 + 2 * (1200 + 300 + 60 + 120)) / 60) and one["threshold"] == 45.0
    assert one["met"] is False and "seed(s) 0," in one["target"]  # 66 minutes: a miss whatever the run
    assert both["value"] == pytest.approx(one["value"] + 2 * 3.0) and both["met"] is None  # under 100: says nothing
    spent = run_time(cfg, root).set_index("part")  # where it went: the shared teacher once
    assert spent.loc["teacher SFT", "all_seeds_min"] == spent.loc["teacher SFT", "first_seed_min"] == 2 * 20.0
    assert spent.loc["student SFT", "all_seeds_min"] == 2 * spent.loc["student SFT", "first_seed_min"] == 4.0
    assert spent.loc["total", "all_seeds_min"] == pytest.approx(both["value"]) and spent.loc["total", "share"] == 1.0
    assert spent.loc["teacher SFT", "all_seeds_eval_min"] == 2.0
    later = targets.timing_rows(cfg.replace(seeds=(1,)), root)[1]  # the shared teacher counts for seed 1 alone too
    assert later["value"] == pytest.approx(one["value"])
    frame[frame.seed == 0].to_csv(folder / "stage_seconds.csv", index=False)  # seed 1's times missing: no sum
    assert len(targets.timing_rows(cfg, root)) == 1
    write_json(folder / "base_models.json", {"student": {"wall_s": None}, "teacher": {"wall_s": 540.0}})
    assert len(targets.timing_rows(cfg.replace(seeds=(0,)), root)) == 1  # hub base LMs: not trained here
