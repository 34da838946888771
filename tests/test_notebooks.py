"""Every notebook runs under papermill on the smoke profile; assertions are on the numbers and
files it records, not on printed text."""
import json
import os

import pandas as pd
import pytest

from scd.reproduce import notebook_paths, run_notebooks

NOTEBOOKS = os.path.join(os.path.dirname(__file__), "..", "notebooks")


@pytest.fixture(scope="module")
def executed(smoke_cfg, data_dir, runs_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("nb")
    params = {"profile": "smoke", "results_dir": str(out / "results"), "figures_dir": str(out / "figures"),
              "data_dir": str(data_dir), "runs_dir": str(runs_dir)}
    timings = run_notebooks(params, NOTEBOOKS, out / "executed", kernel="scd", log=lambda *_: None)
    return out, timings


def test_every_notebook_has_a_parameters_cell():
    for path in notebook_paths(NOTEBOOKS):
        cells = json.loads(path.read_text())["cells"]
        assert any("parameters" in c["metadata"].get("tags", []) for c in cells), path.name


def test_all_notebooks_ran(executed):
    out, timings = executed
    assert len(timings) == len(notebook_paths(NOTEBOOKS)) >= 8
    assert all((out / "executed" / name).is_file() for name in timings)


def test_tables_have_the_right_shape_and_ranges(executed):
    res = executed[0] / "results" / "smoke"
    t1 = pd.read_csv(res / "table1_ci.csv")
    assert list(t1["model"]) == ["teacher_sft", "student_sft", "td", "cd", "scd", "td_aw", "cd_aw", "scd_aw"]
    assert list(t1.columns) == ["model", "crade", "average", "paper_average"]
    scores = pd.read_csv(res / "scores_ci.csv")
    assert scores["mean"].between(0, 1).all() and (scores["lo"] <= scores["mean"] + 1e-12).all()
    assert (scores["mean"] <= scores["hi"] + 1e-12).all()
    decomp = pd.read_csv(res / "sfs_tfs_decomposition.csv")
    assert set(decomp["risk"]) == {"loss", "error"} and decomp["residual"].abs().max() < 1e-9
    assert (decomp["P_SFS"] + decomp["P_TFS"]).round(9).eq(1).all()
    eff = pd.read_csv(res / "efficiency.csv").set_index("model")
    assert eff.loc["student_sft", "ratio_vs_student_sft"] == 1.0 and (eff["train_s"] > 0).all()
    assert (executed[0] / "results" / "data_summary.csv").is_file()
    from scd.ablations import VARIANTS

    abl = pd.read_csv(res / "ablations.csv")
    assert set(abl["variant"]) == set(VARIANTS) and abl["primary"].between(0, 1).all()
    checkpoints = abl.set_index("variant")["checkpoints"]
    assert len(checkpoints["N = 4 checkpoints"].split()) == 4 and len(checkpoints["N = 2 checkpoints"].split()) == 2
    effects = pd.read_csv(res / "ablations_effects.csv")
    assert set(effects["variant"]) == set(VARIANTS) - {"default"} and (effects["lo"] <= effects["hi"]).all()
    claims = pd.read_csv(res / "claims.csv")
    assert len(claims) == 5 and set(claims["verdict"]) <= {"supported", "contradicted", "undecided", "untestable"}
    assert (claims["verdict"] == "untestable").eq(claims["n"] == 0).all()
    tested = claims[claims["n"] > 0]
    assert (tested["lo"] <= tested["diff"] + 1e-12).all() and (tested["diff"] <= tested["hi"] + 1e-12).all()


def test_figures_written_as_png_and_pdf(executed):
    figs = executed[0] / "figures"
    names = {p.stem for p in figs.glob("*.png")}
    assert {"data_label_balance", "smoke_trajectory", "smoke_table1_average", "smoke_sfs_tfs",
            "smoke_aw_weights", "smoke_margin_prediction"} <= names
    assert all((figs / f"{n}.pdf").is_file() for n in names)


def test_invalid_parameter_fails_in_the_first_cell(smoke_cfg, tmp_path):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError, match="unknown profile 'huge'"):
        papermill.execute_notebook(notebook_paths(NOTEBOOKS)[0], str(tmp_path / "bad.ipynb"), kernel_name="scd",
                                   parameters={"profile": "huge"}, progress_bar=False, cwd=NOTEBOOKS)
