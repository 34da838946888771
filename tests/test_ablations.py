"""The ablation table as a results folder holds it: its own variants, in its order, and a gap named."""
import pandas as pd
import pytest

from scd.analysis import ablations
from scd.core.config import get_config


def _table(tmp_path, rows):
    folder = tmp_path / "smoke"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["variant", "method", "task", "seed", "primary"]).to_csv(folder / "ablations.csv",
                                                                                        index=False)


def test_a_folder_is_read_with_the_variants_it_was_made_with_and_a_missing_run_is_named(tmp_path):
    cfg = get_config("smoke", seeds=(0, 1))
    rows = [(v, "scd_aw", "crade", s, p) for v, p in (("default", 0.3), ("N = 9 checkpoints", 0.5)) for s in (0, 1)]
    _table(tmp_path, rows)  # "N = 9" is no variant of today's profile: still read, as made
    table = ablations.load(cfg, ["crade"], tmp_path)
    assert list(ablations.summary(cfg, table).index) == ["default", "N = 9 checkpoints"]
    assert ablations.summary(cfg, table).loc["N = 9 checkpoints", "mean"] == pytest.approx(0.5)
    _table(tmp_path, rows[:-1])  # the variant lacks seed 1
    with pytest.raises(FileNotFoundError, match=r"\('N = 9 checkpoints', 'crade', 1\)"):
        ablations.load(cfg, ["crade"], tmp_path)
    _table(tmp_path, rows[2:])  # no default to compare with
    with pytest.raises(FileNotFoundError, match="'default'"):
        ablations.load(cfg, ["crade"], tmp_path)
