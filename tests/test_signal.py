"""The signal checks on hand-made scores: chance levels, thresholds and the verdicts."""
import pandas as pd
import pytest

from scd.analysis import signal
from scd.core.config import get_config


def test_chance_is_the_majority_share_for_choices_and_zero_for_ner():
    assert signal.chance_level(pd.Series(["A", "B", "B", "C"]), "choice") == 0.5
    assert signal.chance_level(pd.Series(["yes"] * 3 + ["no"]), "yesno") == 0.75
    assert signal.chance_level(pd.Series(["['a']", "['b']"]), "ner") == 0.0


def _score(model, task, mean, lo, hi, diff=None):
    row = {"model": model, "task": task, "mean": mean, "lo": lo, "hi": hi}
    return row | ({} if diff is None else {"diff_vs_teacher": diff[0], "diff_lo": diff[1], "diff_hi": diff[2]})


def test_each_check_is_met_or_missed_by_its_own_rule(tmp_path):
    cfg = get_config("smoke", tasks=("crade", "smdis", "rrtnm", "nrner"))
    gold = {"crade": ["A", "B", "C", "D"], "smdis": ["A", "B", "A", "B"], "rrtnm": ["A", "A", "B", "C"], "nrner": ["['x']"] * 4}
    for task, labels in gold.items():
        folder = tmp_path / "smoke" / "samples" / task
        folder.mkdir(parents=True)
        pd.DataFrame({"id": range(4), "gold": labels}).to_csv(folder / "teacher_sft_seed0.csv", index=False)
    scores = pd.DataFrame([
        _score("teacher_sft", "crade", 0.60, 0.50, 0.70),    # chance 0.25: above
        _score("teacher_sft", "smdis", 0.65, 0.55, 0.75),    # chance 0.50: above
        _score("teacher_sft", "rrtnm", 0.55, 0.45, 0.65),    # chance 0.50 (majority "A"): lo 0.45 is not above
        _score("teacher_sft", "nrner", 0.05, 0.00, 0.10),    # chance 0: lo must be above 0
        _score("train_reference", "crade", 0.75, 0.65, 0.85),
        _score("student_sft", "average", 0.30, 0.25, 0.35, diff=(-0.06, -0.09, -0.01)),
    ])
    table = signal.check_table(cfg, scores, tmp_path).set_index(["check", "task"])
    above = table.xs("teacher above chance (95% interval)")
    assert above.threshold.to_dict() == {"crade": 0.25, "smdis": 0.5, "rrtnm": 0.5, "nrner": 0.0}
    assert above.met.to_dict() == {"crade": True, "smdis": True, "rrtnm": False, "nrner": False}
    count = table.loc[("teacher above chance on ≥ 3 of 4 tasks", "crade,smdis,rrtnm,nrner")]
    assert (count.value, count.met) == (2.0, False)
    three = signal.check_table(cfg.replace(tasks=("crade", "rrtnm", "nrner")), scores, tmp_path)
    assert "teacher above chance on ≥ 3 of 4 tasks" not in set(three.check)  # a count of three tasks says nothing
    ratio = table.loc[("teacher / train-split n-gram reference", "crade")]
    assert ratio.value == pytest.approx(0.8) and not ratio.met
    gap = table.loc[("teacher − student SFT, task average (paired 95% interval)", "average")]
    assert (gap.value, gap.lo, gap.hi) == pytest.approx((0.06, 0.01, 0.09)) and gap.met
    narrow = scores.assign(diff_lo=lambda f: f.diff_lo.where(f.model != "student_sft", -0.07),
                           diff_hi=lambda f: f.diff_hi.where(f.model != "student_sft", 0.01))
    again = signal.check_table(cfg, narrow, tmp_path).set_index("task")
    assert not again.loc["average", "met"]  # a gap of 0.06 whose interval reaches 0 is not a gap


def test_dev_gap_compares_best_checkpoints_and_leaves_thin_tasks_out_of_the_average():
    rows = [  # (model, task, seed, dev_selection, best)
        ("teacher_sft", "crade", 0, 0.40, False), ("teacher_sft", "crade", 0, 0.60, True),
        ("student_sft", "crade", 0, 0.30, True), ("student_sft", "crade", 1, 0.50, True),
        ("student_sft", "crade", 1, 0.90, False),  # not its best: ignored
        ("teacher_sft", "smdis", 0, 0.52, True), ("student_sft", "smdis", 0, 0.50, True),
        ("teacher_sft", "tiny", 0, 0.90, True), ("student_sft", "tiny", 0, 0.00, True),
    ]
    traj = pd.DataFrame(rows, columns=["model", "task", "seed", "dev_selection", "best"])
    gap = signal.dev_gap(traj, leave_out=("tiny",)).set_index("task")
    assert list(gap.index) == ["crade", "smdis", "tiny", "average"]
    assert gap.loc["crade", "student_sft"] == pytest.approx(0.40) and gap.loc["crade", "gap"] == pytest.approx(0.20)
    assert gap.loc["smdis", "keeps_gap"] == False and gap.loc["crade", "keeps_gap"] == True  # noqa: E712
    assert gap.loc["average", "gap"] == pytest.approx((0.20 + 0.02) / 2)  # "tiny" left out
