"""The notebooks' closing "What this shows": written from the committed numbers, one function per
notebook, and a sentence rather than an exception where results are missing."""
import json

import pandas as pd
import pytest

from scd.analysis import findings
from scd.core.config import get_config
from scd.core.io import project_path, read_json

ROOT = project_path("results")
CPU = ROOT / "cpu"
NOTEBOOKS = project_path("notebooks")


@pytest.fixture(scope="module")
def cpu_cfg():
    """The committed cpu run's config: the seeds its runs.csv holds."""
    return get_config("cpu", seeds=sorted(pd.read_csv(CPU / "runs.csv")["seed"].unique().tolist()))


def committed_number(stem: str, cfg) -> str:
    """A number of the committed tables, formatted as the finding writes it."""
    if stem == "01_data_and_tasks":
        summary = pd.read_csv(ROOT / "data_summary.csv")
        return str(summary[(summary.split == "train") & summary.task.isin(cfg.tasks)]["n"].max())
    if stem == "02_base_models":
        return f"{read_json(CPU / 'base_models.json')['teacher']['params'] / 1e6:.2f}M"
    if stem == "03_teacher_trajectory":  # the teacher's mean best dev score, as notebook 3's dev-gap table
        from scd.analysis import signal, tables

        gap = signal.dev_gap(pd.read_csv(CPU / "trajectory.csv"), tables.thin_tasks(cfg)).set_index("task")
        return f"{gap.loc['average', 'teacher_sft']:.3f}"
    if stem == "04_distillation":
        weights = pd.concat([pd.read_csv(CPU / "weights" / t / f"scd_aw_seed{s}.csv")
                             for t in cfg.tasks for s in cfg.seeds])
        return f"{weights.w.mean():.3f}"
    if stem in ("05_table1", "09_your_domain"):  # the teacher's Table 1 average
        scores = pd.read_csv(CPU / "scores_ci.csv").set_index(["model", "task"])
        return f"{scores.loc[('teacher_sft', 'average'), 'mean']:.3f}"
    if stem == "06_sfs_tfs":
        return f"{pd.read_csv(CPU / 'claims.csv')['diff'].iloc[0]:+.3f}"
    if stem == "07_efficiency":
        cost = pd.read_csv(CPU / "efficiency.csv").set_index("model")
        return f"{cost.loc['teacher_sft', 'ratio_vs_student_sft']:.2f}"
    if stem == "08_ablations":  # the largest effect: in the decided list or at an end of the undecided range
        effects = pd.read_csv(CPU / "ablations_effects.csv")
        return f"{effects['diff'].loc[effects['diff'].abs().idxmax()]:+.3f}"
    raise KeyError(stem)


def test_one_finding_per_notebook():
    stems = sorted(p.stem for p in NOTEBOOKS.glob("[0-9]*.ipynb"))
    assert sorted(findings.FINDINGS) == stems and len(stems) == 9
    with pytest.raises(ValueError, match="no findings for notebook"):
        findings.what_this_shows("10_nothing", get_config("smoke"), ROOT)


def test_every_notebook_ends_with_its_finding():
    for path in sorted(NOTEBOOKS.glob("[0-9]*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        heading, code = ("".join(c["source"]) for c in cells[-2:])
        assert cells[-2]["cell_type"] == "markdown" and heading.startswith("## What this shows"), path.name
        assert f'findings.what_this_shows("{path.stem}"' in code, path.name
        shown = [o for o in cells[-1]["outputs"] if "text/markdown" in o.get("data", {})]
        assert shown and "".join(shown[0]["data"]["text/markdown"]).strip(), path.name  # rendered, not empty


@pytest.mark.parametrize("stem", sorted(findings.FINDINGS))
def test_finding_on_the_committed_cpu_results(stem, cpu_cfg, data_dir):
    text = findings.what_this_shows(stem, cpu_cfg, ROOT)
    bullets = [line for line in text.splitlines() if line.startswith("- ")]
    assert 2 <= len(bullets) <= 7 and "Nothing to summarise" not in text, text
    assert committed_number(stem, cpu_cfg) in text, text


def test_a_notebook_computed_table_is_the_one_described(cpu_cfg):
    scores = pd.read_csv(CPU / "scores_ci.csv")
    scores.loc[(scores.model == "teacher_sft") & (scores.task == "average"), "mean"] = 0.987
    assert "teacher_sft 0.987" in findings.table1(cpu_cfg, ROOT, scores=scores)


@pytest.mark.parametrize("stem", sorted(findings.FINDINGS))
def test_missing_results_give_a_sentence(stem, tmp_path):
    text = findings.what_this_shows(stem, get_config("smoke"), tmp_path)
    assert text.startswith("*Nothing to summarise yet:*") and "`smoke`" in text and text.endswith("first."), text


@pytest.mark.parametrize("stem", sorted(findings.FINDINGS))
def test_the_committed_smoke_results_are_described(stem, data_dir):
    """A smoke render (one task, one seed) gets its own text: nothing there assumes the cpu run's shape."""
    text = findings.what_this_shows(stem, get_config("smoke"), ROOT)
    assert text.startswith("- ") and "Nothing to summarise" not in text, text
