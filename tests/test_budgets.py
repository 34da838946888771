"""The SFT budget rule, and a budget study through the real stages on smoke."""
import pandas as pd
import pytest

from scd.run import budgets


def test_the_budget_is_the_best_epoch_before_patience_runs_out():
    assert budgets.choose([3.0, 2.0, 1.5, 1.6, 1.7, 1.0], patience=2) == (3, True)  # the late dip is never seen
    assert budgets.choose([3.0, 2.0, 1.5, 1.6, 1.4, 1.45, 1.5], patience=2) == (5, True)
    assert budgets.choose([3.0, 2.0, 1.5, 1.4], patience=2) == (4, False)  # still improving at the cap
    assert budgets.choose([1.0, 1.0, 1.0], patience=2) == (1, True)  # a tie is no improvement
    assert budgets.choose([2.0]) == (1, False)
    assert budgets.choose([0.1, 0.3, 0.2, 0.25], patience=2, higher_is_better=True) == (2, True)
    with pytest.raises(ValueError):
        budgets.choose([])


def test_a_study_trains_past_the_budget_and_writes_curves_and_budgets(smoke_cfg, tmp_path):
    out = tmp_path / "budgets"
    chosen = budgets.run(smoke_cfg, {"student": ("crade",)}, out, caps={"student": 3}, log=lambda *a: None)
    curves = pd.read_csv(out / "curves.csv")
    assert list(curves.epoch) == [1, 2, 3] and curves.dev_gold_loss.notna().all()
    assert (out / "budgets.md").is_file() and len(chosen) == 1
    row = chosen.iloc[0]
    assert row.budget_epochs == budgets.choose(curves.dev_selection.tolist(), higher_is_better=True)[0]
    assert row.budget_epochs_by_loss == budgets.choose(curves.dev_gold_loss.tolist())[0] and row.cap == 3
