"""Every notebook runs under papermill on the smoke profile; assertions are on the numbers and
files it records, not on printed text."""
import json
import os

import pandas as pd
import pytest

from scd.run.render import NotebookFailed, notebook_paths, run_notebooks
from scd.run.reproduce import main_job

NOTEBOOKS = os.path.join(os.path.dirname(__file__), "..", "notebooks")


@pytest.fixture(scope="module")
def executed(smoke_cfg, data_dir, runs_dir, tmp_path_factory):
    """The main job on smoke into a temporary folder: stages, tables, notebooks, report."""
    out = tmp_path_factory.mktemp("nb")
    assert main_job(smoke_cfg, str(out)) == 0
    timings = json.loads((out / "results" / "smoke" / "notebook_timing_seeds0.json").read_text())
    return out, {k: v for k, v in timings.items() if k.endswith(".ipynb")}


def test_every_notebook_has_a_parameters_cell():
    for path in notebook_paths(NOTEBOOKS):
        cells = json.loads(path.read_text())["cells"]
        assert any("parameters" in c["metadata"].get("tags", []) for c in cells), path.name


def test_all_notebooks_ran(executed):
    out, timings = executed
    assert len(timings) == len(notebook_paths(NOTEBOOKS)) >= 8
    assert all((out / "notebooks" / name).is_file() for name in timings)
    report = (out / "report.md").read_text()
    assert "**Verdict: " in report and (out / "report_cells.csv").is_file()


def test_a_failing_notebook_leaves_the_committed_one_untouched(tmp_path):
    first = notebook_paths(NOTEBOOKS)[0]
    before = first.read_bytes()
    with pytest.raises(NotebookFailed, match=r"01_data_and_tasks.ipynb failed in cell \d+ .*unknown profile 'huge'.*unchanged"):
        run_notebooks({"profile": "huge"}, NOTEBOOKS, kernel="scd", log=lambda *_: None, logs_dir=tmp_path)
    assert first.read_bytes() == before
    assert "unknown profile" in (tmp_path / first.name).read_text()


def test_list_parameters_are_accepted_in_every_form():
    from scd.run.notebook import setup

    for value in ([1, 2], "[1, 2]", "1,2", (1, 2)):
        assert setup("smoke", seeds=value)[0].seeds == (1, 2)
    assert setup("smoke", seeds="1")[0].seeds == (1,) and setup("smoke", seeds=1)[0].seeds == (1,)
    with pytest.raises(ValueError, match=r"parameter seeds='\[1, x\]'"):
        setup("smoke", seeds="[1, x]")
    with pytest.raises(ValueError, match="parameter seeds='one': every item must be int"):
        setup("smoke", seeds="one")


def test_tables_have_the_right_shape_and_ranges(executed, smoke_cfg):
    res = executed[0] / "results" / "smoke"
    t1 = pd.read_csv(res / "table1_ci.csv")
    assert list(t1["model"]) == ["teacher_sft", "student_sft", "td", "cd", "scd", "td_aw", "cd_aw", "scd_aw", "train_reference"]
    assert list(t1.columns) == ["model", "crade", "average", "paper_average"]
    scores = pd.read_csv(res / "scores_ci.csv")
    assert scores["mean"].between(0, 1).all() and (scores["lo"] <= scores["mean"] + 1e-12).all()
    assert (scores["mean"] <= scores["hi"] + 1e-12).all()
    decomp = pd.read_csv(res / "sfs_tfs_decomposition.csv")
    assert set(decomp["risk"]) == {"loss", "error"} and decomp["residual"].abs().max() < 1e-9
    assert (decomp["P_SFS"] + decomp["P_TFS"]).round(9).eq(1).all()
    eff = pd.read_csv(res / "efficiency.csv").set_index("model")
    assert eff.loc["student_sft", "ratio_vs_student_sft"] == 1.0 and (eff["train_s"] > 0).all()
    secs = pd.read_csv(res / "stage_seconds.csv").set_index(["stage", "model"])  # every stage of the run, timed
    runs = pd.read_csv(res / "runs.csv")
    assert (secs["seconds"] > 0).all() and len(secs.loc["cache"]) == len(runs[["task", "seed"]].drop_duplicates())
    assert set(secs.loc["sft"].index) == {"teacher_sft", "student_sft"}
    assert len(secs.loc["distill"]) == (~runs["model"].str.endswith("_sft")).sum()
    assert (executed[0] / "results" / "data_summary.csv").is_file()
    from scd.analysis.ablations import variants

    VARIANTS = variants(smoke_cfg)

    abl = pd.read_csv(res / "ablations.csv")
    assert set(abl["variant"]) == set(VARIANTS) and abl["primary"].between(0, 1).all()
    checkpoints = abl.set_index("variant")["checkpoints"]
    assert len(checkpoints["N = 1 checkpoint"].split()) == 1 and len(checkpoints["default"].split()) == 2
    assert len(checkpoints["T = 2 epochs per stage"].split()) == 2  # T changes epochs, not stages
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


def test_rendered_notebooks_hold_no_machine_paths_and_save_no_figures_when_rerun(tmp_path):
    """What render commits: checkout paths relative to notebooks/, and no figures_dir parameter, so
    re-executing a committed notebook (a reader, nbval) never rewrites the committed figures."""
    import json

    from scd.core.io import project_path
    from scd.run.render import without_machine_paths

    checkout = str(project_path(".").resolve())
    params = {"profile": "cpu", "results_dir": f"{checkout}/results", "figures_dir": f"{checkout}/figures"}
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "outputs": [],
                     "source": [f'{k} = "{v}"\n' for k, v in params.items()]},
                    {"cell_type": "code", "metadata": {}, "outputs": [{"text": [f"wrote {checkout}/figures/x.png"]}],
                     "source": ["print(1)"]}],
          "metadata": {"papermill": {"parameters": params, "input_path": f"{checkout}/notebooks/a.ipynb"}}}
    path = tmp_path / "a.ipynb"
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    without_machine_paths(path)
    text = path.read_text(encoding="utf-8")
    assert checkout not in text and "figures_dir" not in json.dumps(json.loads(text)["cells"][0])
    after = json.loads(text)
    assert after["cells"][0]["source"] == ['profile = "cpu"\n', 'results_dir = "../results"\n']
    assert after["metadata"]["papermill"]["parameters"] == {"profile": "cpu", "results_dir": "../results"}
    assert after["cells"][1]["outputs"][0]["text"] == ["wrote ../figures/x.png"]
