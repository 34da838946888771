"""The reproduction report: cell-by-cell comparison, its verdict, and the committed results."""
import numpy as np
import pandas as pd

from scd.core import environment
from scd.run.compare import committed_results, compare, verdict

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def cells(**values):
    return pd.DataFrame({"cell": list(values), "x": list(values.values())})


def test_identical_cells_give_identical():
    a = cells(a=0.25, b="supported", c=np.nan)
    assert verdict(compare(a, a.copy())) == "identical: all 3 cells equal the committed values"


def test_differences_are_weighed_against_the_noise_and_the_largest_named():
    noise = pd.DataFrame({"cell": ["a", "b"], "noise": [0.05, 0.05]})
    got = compare(cells(a=0.25, b=0.5, c="undecided"), cells(a=0.26, b=0.3, c="supported"), noise)
    assert list(got.status) == ["within noise", "beyond noise", "beyond noise"]
    line = verdict(got)
    assert line.startswith("2 of 3 cells differ beyond the committed run-to-run noise (1 more within it; "
                           "max |difference| 0.2): c undecided -> supported; b 0.5 -> 0.3")
    assert verdict(compare(cells(a=0.25), cells(a=0.26), noise)).startswith("reproduced within noise: 1 of 1")
    assert verdict(compare(cells(a=0.25), cells(a=0.26), noise), bitwise=True).startswith("not bitwise")
    assert list(compare(cells(a=0.25), cells(a=0.26)).status) == ["beyond noise"]  # no band: never excused
    assert list(compare(cells(a=7.37016042), cells(a=7.37016054)).status) == ["within noise"]  # float rounding
    missing = compare(cells(a=1.0), cells(a=1.0, z=2.0))
    assert "1 cells present on one side only (e.g. z)" in verdict(missing)


def test_a_perturbed_reference_is_within_noise_or_named(tmp_path):
    """The committed cpu results against a copy of themselves with one run nudged by less than its
    seeds' spread and another moved far beyond it."""
    import shutil

    from scd.core.config import get_config
    from scd.run.compare import noise_cells, table_cells

    cfg = get_config("cpu", tasks=("crade",), seeds=(0,))
    committed = REPO / "results"
    shutil.copytree(committed / "cpu", tmp_path / "cpu")
    runs = pd.read_csv(tmp_path / "cpu" / "runs.csv")
    crade = runs[(runs.task == "crade")].groupby("model")["primary"].std()
    near, far = (runs.task == "crade") & (runs.seed == 0) & (runs.model == "student_sft"), \
        (runs.task == "crade") & (runs.seed == 0) & (runs.model == "td")
    runs.loc[near, "primary"] += crade["student_sft"] / 2
    runs.loc[far, "primary"] += 10 * crade["td"]
    runs.to_csv(tmp_path / "cpu" / "runs.csv", index=False)
    got = compare(table_cells(cfg, committed), table_cells(cfg, tmp_path), noise_cells(cfg, committed))
    status = got.set_index("cell")["status"]
    assert status["runs: model=student_sft task=crade seed=0 primary"] == "within noise"
    assert status["runs: model=td task=crade seed=0 primary"] == "beyond noise"
    assert (status.drop(["runs: model=student_sft task=crade seed=0 primary",
                         "runs: model=td task=crade seed=0 primary"]) == "identical").all()
    line = verdict(got)
    assert line.startswith("1 of ") and "runs: model=td task=crade seed=0 primary" in line


def test_committed_results_is_read_from_git_head(tmp_path):
    root, what = committed_results("cpu", tmp_path)
    assert what.startswith("git HEAD ") and (root / "cpu" / "runs.csv").is_file()


def test_environment_differences_name_what_differs():
    a = environment.fingerprint()
    assert environment.differences(a, dict(a)) == []
    b = a | {"threads": a["threads"] + 1, "packages": a["packages"] | {"torch": "0.0"}}
    assert environment.differences(a, b) == [f"threads: {a['threads']} vs {a['threads'] + 1}",
                                             f"torch: {a['packages']['torch']} vs 0.0"]
    other_cpu = a | {"cpu": "another CPU", "isa": ["avx2"]}
    assert environment.bitwise_expected(a, other_cpu)  # same kernel probe: one numerical path
    assert not environment.bitwise_expected(a, b)
    assert not environment.bitwise_expected(a, other_cpu | {"numerics": a["numerics"] | {"probe": "0" * 16}})


def test_in_place_never_shrinks_the_committed_results(tmp_path):
    import pandas as pd
    import pytest

    from scd.core.config import get_config
    from scd.run.reproduce import refuse_shrinking

    cfg = get_config("cpu", seeds=(0, 1, 2))
    (tmp_path / "cpu").mkdir()
    pd.DataFrame({"model": "scd_aw", "task": list(cfg.tasks) * 3,
                  "seed": [s for s in cfg.seeds for _ in cfg.tasks]}).to_csv(tmp_path / "cpu" / "runs.csv")
    refuse_shrinking(cfg, tmp_path)
    with pytest.raises(SystemExit, match=r"without tasks \[\] / seeds \[1, 2\]"):
        refuse_shrinking(get_config("cpu", seeds=(0,)), tmp_path)


def test_seeds_added_in_parts_give_the_tables_of_one_run(smoke_cfg, tmp_path):
    """Seed 0, then seed 1 added with the ablations (which then run for both seeds): every table
    equals that of one run over seeds 0 and 1; another config may not be added to."""
    import pandas as pd
    import pytest

    from scd.core.io import read_json
    from scd.run.reproduce import run_all

    quiet = lambda *_: None  # noqa: E731
    run_all(smoke_cfg.replace(seeds=(0,)), tmp_path / "parts", quiet)
    run_all(smoke_cfg.replace(seeds=(1,)), tmp_path / "parts", quiet, ablations="crade", merge=True)
    run_all(smoke_cfg.replace(seeds=(0, 1)), tmp_path / "one", quiet, ablations="crade")
    parts, one = tmp_path / "parts" / "smoke", tmp_path / "one" / "smoke"
    for name in ("runs", "trajectory", "stages", "ablations", "table1_ci", "scores_ci", "claims", "ablations_summary"):
        pd.testing.assert_frame_equal(pd.read_csv(parts / f"{name}.csv"), pd.read_csv(one / f"{name}.csv"), obj=name)
    assert read_json(parts / "config.json") == read_json(one / "config.json")
    assert sorted(read_json(parts / "environment_by_seed.json")) == ["0", "1"]
    with pytest.raises(SystemExit, match=r"made with other values of \['alpha'\]"):
        run_all(smoke_cfg.replace(seeds=(2,), alpha=0.25), tmp_path / "parts", quiet, merge=True)


def test_a_ner_setting_reruns_only_the_ner_tasks(smoke_cfg, tmp_path):
    """crade and nrner, then nrner alone rerun with a NER-only setting (stop_at_repeat) and merged:
    the tables equal those of one run with the setting; a setting the kept crade runs read, or a
    NER setting while NER runs are kept, is refused."""
    import pandas as pd
    import pytest

    from scd.core.io import read_json
    from scd.run.reproduce import run_all

    quiet = lambda *_: None  # noqa: E731
    both = smoke_cfg.replace(tasks=("crade", "nrner"))
    run_all(both, tmp_path / "parts", quiet)
    run_all(both.replace(tasks=("nrner",), stop_at_repeat=True), tmp_path / "parts", quiet, merge=True)
    run_all(both.replace(stop_at_repeat=True), tmp_path / "one", quiet)
    parts, one = tmp_path / "parts" / "smoke", tmp_path / "one" / "smoke"
    for name in ("runs", "trajectory", "stages", "table1_ci", "scores_ci", "claims", "reference_scores"):
        pd.testing.assert_frame_equal(pd.read_csv(parts / f"{name}.csv"), pd.read_csv(one / f"{name}.csv"), obj=name)
    assert read_json(parts / "config.json") == read_json(one / "config.json")
    assert sorted(read_json(parts / "environment_by_seed.json")) == ["0", "0/nrner"]
    with pytest.raises(SystemExit, match=r"other values of \['top_k'\], which the runs this run keeps"):
        run_all(both.replace(tasks=("nrner",), stop_at_repeat=True, top_k=4), tmp_path / "parts", quiet, merge=True)
    with pytest.raises(SystemExit, match=r"other values of \['stop_at_repeat'\]"):
        run_all(both.replace(tasks=("crade",)), tmp_path / "parts", quiet, merge=True)
    with pytest.raises(SystemExit, match=r"would lack \(task, seed\) \[\('crade', 1\)\]"):
        run_all(both.replace(tasks=("nrner",), seeds=(0, 1), stop_at_repeat=True), tmp_path / "parts", quiet,
                merge=True)
