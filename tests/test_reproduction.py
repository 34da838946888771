"""The reproduction report: cell-by-cell comparison, its verdict, and the committed reference."""
import numpy as np
import pandas as pd

from scd import environment
from scd.reproduction import committed_reference, compare, verdict


def cells(**values):
    return pd.DataFrame({"cell": list(values), "x": list(values.values())})


def test_identical_cells_give_identical():
    a = cells(a=0.25, b="supported", c=np.nan)
    assert verdict(compare(a, a.copy())) == "identical: all 3 cells equal the committed values"


def test_differences_are_counted_sized_and_listed_largest_first():
    got = compare(cells(a=0.25, b=0.5, c="undecided"), cells(a=0.26, b=0.3, c="supported"))
    assert list(got.status) == ["differs"] * 3
    line = verdict(got)
    assert line.startswith("3 of 3 cells differ, max |difference| 0.2 (largest: b 0.5 -> 0.3; a 0.25 -> 0.26")
    missing = compare(cells(a=1.0), cells(a=1.0, z=2.0))
    assert "1 cells present on one side only (e.g. z)" in verdict(missing)


def test_committed_reference_is_read_from_git_head(tmp_path):
    root, what = committed_reference("cpu", tmp_path)
    assert what.startswith("git HEAD ") and (root / "cpu" / "runs.csv").is_file()


def test_environment_differences_name_what_differs():
    a = environment.fingerprint()
    assert environment.differences(a, dict(a)) == []
    b = a | {"threads": a["threads"] + 1, "packages": a["packages"] | {"torch": "0.0"}}
    assert environment.differences(a, b) == [f"threads: {a['threads']} vs {a['threads'] + 1}",
                                             f"torch: {a['packages']['torch']} vs 0.0"]


def test_in_place_never_shrinks_the_committed_results():
    import pytest

    from scd.config import get_config
    from scd.io import project_path
    from scd.reproduce import refuse_shrinking

    refuse_shrinking(get_config("cpu", seeds=(0, 1, 2)), project_path("results"))  # the committed selection
    with pytest.raises(SystemExit, match=r"without tasks \[\] / seeds \[1, 2\]"):
        refuse_shrinking(get_config("cpu", seeds=(0,)), project_path("results"))
