"""The command line: bad configuration fails before any work; the smoke reproduction writes its tables."""
import argparse

import pandas as pd
import pytest

from scd.cli import COMMANDS, build_parser, main
from scd.core.config import get_config


def test_unknown_profile_key_and_range_fail_clearly():
    with pytest.raises(ValueError, match="unknown profile 'tiny'"):
        get_config("tiny")
    with pytest.raises(ValueError, match=r"unknown config keys \['n_ckpt'\]"):
        get_config("smoke", n_ckpt=3)
    with pytest.raises(ValueError, match="n_checkpoints=0 out of range"):
        get_config("smoke", n_checkpoints=0)
    with pytest.raises(ValueError, match="unknown \\['mmlu'\\]"):
        get_config("smoke", tasks="mmlu")
    with pytest.raises(ValueError, match="divergence='kl': expected one of"):
        get_config("smoke", divergence="kl")


COMMAND_NAMES = ["download", "data-summary", "pretrain", "sft", "distill", "reproduce", "notebooks", "calibrate",
                 "budgets", "run-all", "run"]


def test_parser_knows_exactly_the_eleven_commands_and_each_parses_help(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == COMMAND_NAMES == [c.name for c in COMMANDS]
    for name in COMMAND_NAMES:
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([name, "--help"])
        assert exit_.value.code == 0, name
        assert capsys.readouterr().out.startswith(f"usage: scd {name} "), name
    # the commands that may run under `accelerate launch` set up the processes first
    assert {c.name for c in COMMANDS if c.ranks} == {"pretrain", "sft", "distill", "run-all", "run"}
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["train"])
    assert exit_.value.code == 2


def test_reproduce_smoke_writes_table1(smoke_cfg, tmp_path, capsys):
    assert main(["run-all", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "smoke" / "table1_ci.csv")
    assert list(table["model"]) == ["teacher_sft", "student_sft", "td", "cd", "scd", "td_aw", "cd_aw", "scd_aw", "train_reference"]
    means = table["crade"].str.split(" ").str[0].astype(float)
    assert means.between(0, 1).all() and table["average"].str[:5].equals(table["crade"].str[:5])
    for suffix in (".md", ".tex"):
        assert (tmp_path / "smoke" / f"table1_ci{suffix}").stat().st_size > 0
    assert (tmp_path / "data_summary.csv").is_file()
    assert "tables ->" in capsys.readouterr().out
