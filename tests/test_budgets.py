"""The SFT budget rule, and a budget study through the real stages on smoke."""
import pandas as pd
import pytest

from scd.run import budgets


def test_the_budget_is_the_earliest_epoch_near_the_best_of_the_whole_curve():
    assert budgets.choose([3.0, 2.0, 1.5, 1.6, 1.7, 1.0], patience=2) == (6, False)  # a late dip is seen, at the cap
    assert budgets.choose([3.0, 2.0, 1.5, 1.6, 1.4, 1.45, 1.5], patience=2) == (5, True)
    assert budgets.choose([3.0, 2.0, 1.5, 1.4], patience=2) == (4, False)  # still improving at the cap
    assert budgets.choose([1.0, 1.0, 1.0], patience=2) == (1, True)  # a tie is no improvement
    assert budgets.choose([2.0]) == (1, False)
    assert budgets.choose([0.1, 0.3, 0.2, 0.25], patience=2, higher_is_better=True) == (2, True)
    # flat at chance for four epochs, then a rise: the rule must not stop in the flat stretch
    flat_then_rise = [0.0, 0.0, 0.0, 0.0, 0.12, 0.1, 0.18, 0.26, 0.28, 0.27, 0.28, 0.26]
    assert budgets.choose(flat_then_rise, patience=3, higher_is_better=True) == (9, True)
    # the tolerance: the earliest epoch within it of the best, not the best itself
    assert budgets.choose(flat_then_rise, patience=3, higher_is_better=True, tol=0.02) == (8, True)
    assert budgets.choose([0.30, 0.44, 0.40, 0.45, 0.43], patience=1, higher_is_better=True, tol=0.02) == (2, True)
    assert budgets.choose([0.30, 0.44, 0.40, 0.45, 0.43], patience=2, higher_is_better=True, tol=0.0) == (4, False)
    with pytest.raises(ValueError):
        budgets.choose([])


def test_a_study_trains_past_the_budget_and_writes_curves_and_budgets(smoke_cfg, tmp_path):
    out = tmp_path / "budgets"
    chosen = budgets.run(smoke_cfg, {"student": ("crade",)}, out, caps={"student": 3}, log=lambda *a: None)
    curves = pd.read_csv(out / "curves.csv")
    assert list(curves.epoch) == [1, 2, 3] and curves.dev_gold_loss.notna().all()
    assert (out / "budgets.md").is_file() and len(chosen) == 1
    row = chosen.iloc[0]
    assert row.budget_epochs == budgets.choose(curves.dev_selection.tolist(), higher_is_better=True, tol=budgets.TOL)[0]
    assert row.budget_epochs_by_loss == budgets.choose(curves.dev_gold_loss.tolist())[0] and row.cap == 3
    assert not (out / "proposal.json").exists()  # no teacher curve: nothing to propose


def _curves(role, task, epochs, train_s, eval_s, profile="cpu"):
    return pd.DataFrame({"profile": profile, "role": role, "task": task, "seed": 0, "epoch": range(1, epochs + 1),
                         "dev_selection": [0.1 * e for e in range(epochs)], "dev_gold_loss": 1.0,
                         "train_s": train_s, "eval_s": eval_s, "dev_primary": 0.0})


def test_the_projection_prices_each_part_from_the_measured_epoch_costs():
    curves = pd.concat([_curves("teacher", "crade", 10, 1000.0, 50.0), _curves("student", "crade", 16, 160.0, 16.0),
                        _curves("student", "smdis", 16, 16.0, 1.6)])  # smdis: no teacher curve, no row
    cost = budgets.per_epoch(curves)
    assert cost.loc[("teacher", "crade")].tolist() == [100.0, 5.0] and cost.loc[("student", "crade")].tolist() == [10.0, 1.0]
    row = budgets.projection(curves, teacher_epochs=8, student_epochs=8, n_checkpoints=4, n_arms=7,
                             distill_factor=1.5).set_index("task").loc["crade"]
    assert row.teacher_s == 8 * 100 + 5 * 5.0  # 8 epochs, dev at 4 checkpoints and test
    assert row.targets_s == pytest.approx(4 * 100 / 3)
    assert row.students_s == (1 + 6 * 1.5) * 8 * 10 + 7 * 5 * 1.0
    assert row.total_s == pytest.approx(row.teacher_s + row.targets_s + row.students_s)
    assert list(budgets.projection(curves, 8, 8, 4).task) == ["crade"]


def test_a_study_is_read_back_for_its_own_profile_only(tmp_path):
    _curves("student", "crade", 5, 10.0, 1.0).to_csv(tmp_path / "curves.csv", index=False)
    curves, chosen = budgets.load(tmp_path, "cpu")
    assert len(curves) == 5 and chosen.budget_epochs.tolist() == [5]
    assert all(f.empty for f in budgets.load(tmp_path, "smoke")) and all(f.empty for f in budgets.load(tmp_path / "no", "cpu"))


def test_the_proposal_takes_the_median_student_and_the_largest_teacher_budget():
    rows = [("student", "a", 7, 0.4), ("student", "b", 14, 0.3), ("student", "c", 3, 0.2), ("student", "d", 1, 0.0),
            ("teacher", "a", 7, 0.5), ("teacher", "b", 5, 0.2), ("teacher", "d", 12, 0.0)]  # 0.0: no signal, left out
    table = pd.DataFrame(rows, columns=["role", "task", "budget_epochs", "dev_selection"])
    assert budgets.proposal(table, stage_epochs=2) == {"stage_epochs": 2, "n_checkpoints": 4, "student_epochs": 8,
                                                       "teacher_epochs": 8}
    assert budgets.proposal(table, stage_epochs=3) == {"stage_epochs": 3, "n_checkpoints": 3, "student_epochs": 9,
                                                       "teacher_epochs": 9}
    with pytest.raises(ValueError, match="teacher"):
        budgets.proposal(table[table.role == "student"])
