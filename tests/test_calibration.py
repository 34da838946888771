"""The calibration grid on ``smoke``: each point is the pipeline's own stages, scored on dev."""
import pandas as pd
import pytest

from scd.run import calibration
from scd.stages.base_sft import sft_stage


@pytest.fixture(scope="module")
def grid(smoke_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("calibration")
    points = [("teacher", "profile", "uniform", None), ("student", "profile", "uniform", None)]
    return out, calibration.run(out, profile="smoke", points=points, tasks=("crade",), log=lambda *a, **k: None)


def test_points_are_the_pipelines_stages_scored_on_dev(grid):
    out, frame = grid
    assert pd.read_csv(out / "grid.csv").shape[0] == len(frame) == 3  # reference, teacher, student
    for role in ("teacher", "student"):
        row = frame[frame.role == role].iloc[0]
        cfg = calibration.point_config(role, "profile", "uniform", None, "smoke", ("crade",))
        record = sft_stage(cfg, role, "crade", 0)
        assert row.dev_selection == record.trajectory[record.best_index].dev.selection
        assert row.best == record.best and row.n_train == record.n["train"]
        assert cfg.train_sampling == "uniform" and cfg.prompt_cut == "passage"


def test_summary_gap_is_teacher_minus_student_on_the_dev_mean(grid):
    _, frame = grid
    table = calibration.summary(frame).set_index("role")
    assert table.loc["student", "gap_to_teacher"] == pytest.approx(
        table.loc["teacher", "mean"] - table.loc["student", "mean"])
    assert table.loc["reference", "crade"] == frame[frame.role == "reference"].dev_selection.iloc[0]


def test_cpu_profile_is_the_point_the_grid_chose():
    from scd.core.config import get_config
    from scd.stages.store import stage_key

    cpu = get_config("cpu")
    assert cpu == get_config("cpu", **calibration.CHOSEN)
    for role, model in (("teacher", "4x256, 300 steps"), ("student", "1x64, 150 steps")):
        point = calibration.point_config(role, model, "uniform", 1000)
        assert stage_key(point, "base", role) == stage_key(cpu, "base", role)  # the grid's stages are the profile's
        assert stage_key(point, "sft", role) == stage_key(cpu, "sft", role)
