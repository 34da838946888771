"""Your own data as people have it: yes/no cards written as YAML reads them, files saved by Excel
with a byte-order mark, whitespace around answers, every row checked before any training, one-line
errors from the command line, and a prompt/completion file run without a card."""
import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from scd import api as domain
from scd import cli
from scd.core.cards import load_card
from scd.core.io import DataError
from scd.data.cards import card_records

ROWS = [{"q": f"question {i}", "a": "AB"[i % 2]} for i in range(10)]


def _jsonl(path, rows, bom=False):
    path.write_text(("\ufeff" if bom else "") + "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _yaml(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_unquoted_yes_no_labels_and_boolean_answers_mean_yes_and_no(tmp_path):
    """YAML 1.1 reads ``[yes, no, maybe]`` as [True, False, 'maybe']; JSON data may hold true/false."""
    rows = [{"q": "q1", "a": True}, {"q": "q2", "a": False}, {"q": "q3", "a": "maybe"}, {"q": "q4", "a": " Yes "}]
    _jsonl(tmp_path / "yn.jsonl", rows)
    card = load_card(_yaml(tmp_path / "yn.yaml", "name: yn\ndata: yn.jsonl\nkind: yesno\nprompt: q\nanswer: a\n"
                                                "labels: [yes, no, maybe]\n"))
    assert card.labels == ("yes", "no", "maybe")
    assert [r["answer"] for r in card_records(card)] == ["yes", "no", "maybe", "yes"]
    # only for yes/no tasks: a free-text task keeps what the file holds
    text = load_card(_yaml(tmp_path / "tx.yaml", "name: tx\ndata: yn.jsonl\nkind: text\nprompt: q\nanswer: a\n"))
    assert [r["answer"] for r in card_records(text)][:2] == ["True", "False"]


def test_a_byte_order_mark_is_no_part_of_the_first_field(tmp_path):
    """Excel's "CSV UTF-8" and some editors' JSONL start with U+FEFF; so may the card."""
    pd.DataFrame(ROWS).to_csv(tmp_path / "t.csv", index=False, encoding="utf-8-sig")
    _jsonl(tmp_path / "t.jsonl", ROWS, bom=True)
    for data in ("t.csv", "t.jsonl"):
        path = tmp_path / "t.yaml"
        path.write_text(f"name: t\ndata: {data}\nkind: choice\nprompt: q\nanswer: a\nlabels: [A, B]\n",
                        encoding="utf-8-sig")
        records = card_records(load_card(path))
        assert [r["prompt"] for r in records] == [r["q"] for r in ROWS], data
        assert [r["answer"] for r in records] == [r["a"] for r in ROWS], data


def test_whitespace_rule_answers_stripped_declared_labels_refused(tmp_path):
    """Answers are stripped before they are checked against the labels; a declared label with
    surrounding whitespace could then never match, so the card is refused naming it."""
    _jsonl(tmp_path / "t.jsonl", [dict(r, a=f"  {r['a']}\t") for r in ROWS])
    card = load_card(_yaml(tmp_path / "t.yaml", "name: t\ndata: t.jsonl\nkind: choice\nprompt: q\nanswer: a\n"
                                                "labels: 'A, B'\n"))  # one string: the spaces are separators
    assert card.labels == ("A", "B") and [r["answer"] for r in card_records(card)] == [r["a"] for r in ROWS]
    bad = _yaml(tmp_path / "bad.yaml", "name: t\ndata: t.jsonl\nkind: choice\nprompt: q\nanswer: a\n"
                                       "labels: ['A', ' B']\n")
    with pytest.raises(DataError, match=r"task card .*bad\.yaml: label ' B' is empty or has surrounding whitespace"):
        load_card(bad)


def test_a_bad_row_stops_run_before_any_stage(tmp_path, monkeypatch):
    """Every row is read before the tokenizer, on the cpu profile too: seconds, nothing written."""
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("SCD_RUNS_DIR", str(runs))
    rows = [{"q": f"question {i}", "a": "AB"[i % 2]} for i in range(300)]
    rows[250]["a"] = "C"
    _jsonl(tmp_path / "t.jsonl", rows)
    card = domain.write_card(tmp_path / "t.yaml", name="t", data="t.jsonl", kind="choice", labels=["A", "B"],
                             prompt="q", answer="a")
    start = time.time()
    with pytest.raises(DataError, match=r"t\.jsonl line 251: answer 'C' is not one of the declared labels"):
        domain.run(card, profile="cpu", out=tmp_path / "out", log=lambda *a: None)
    assert time.time() - start < 10
    assert not any(runs.iterdir()) and not (tmp_path / "out").exists()


def _scd(args, cwd, **env):
    return subprocess.run([sys.executable, "-m", "scd", *args], capture_output=True, text=True, cwd=cwd,
                          env=os.environ | {"SCD_RUNS_DIR": str(cwd / "runs")} | env, timeout=300)


def test_cli_input_errors_are_one_line_and_exit_2(tmp_path):
    rows = [dict(r) for r in ROWS]
    del rows[2]["a"]
    _jsonl(tmp_path / "t.jsonl", rows)
    card = domain.write_card(tmp_path / "t.yaml", name="t", data="t.jsonl", kind="choice", labels=["A", "B"],
                             prompt="q", answer="a")
    args = ["run", "--task-card", str(card), "--profile", "cpu", "--out", str(tmp_path / "out")]
    done = _scd(args, tmp_path, SCD_DEBUG="0")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scd: error: ")
    assert "t.jsonl line 3: missing field 'a'" in lines[0]
    debug = _scd(args, tmp_path, SCD_DEBUG="1")
    assert debug.returncode != 0 and "Traceback (most recent call last)" in debug.stderr
    assert "t.jsonl line 3: missing field 'a'" in debug.stderr


def test_cli_errors_in_process_and_the_debug_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SCD_DEBUG", raising=False)
    parser = cli.build_parser()
    assert parser.parse_args(["--debug", "run", "--data", "x.jsonl"]).debug
    assert parser.parse_args(["run", "--data", "x.jsonl", "--debug"]).debug
    assert not parser.parse_args(["run", "--data", "x.jsonl"]).debug
    cases = [(["run", "--task-card", str(tmp_path / "none.yaml")], "none.yaml: no such file"),
             (["run"], "give --task-card FILE (a task card) or --data FILE"),
             (["sft", "--task", "crade", "--role", "teacher", "--set", "n_ckpt=3"], "unknown config keys ['n_ckpt']")]
    for argv, message in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("scd: error: ") and message in err and err.count("\n") == 1, err
    with pytest.raises(ValueError, match="n_ckpt"):
        cli.main(["--debug", "sft", "--task", "crade", "--role", "teacher", "--set", "n_ckpt=3"])
    assert cli.error_line(FileNotFoundError(2, "No such file or directory", "/x/y.csv")) == "no such file: /x/y.csv"


def _sft_file(path, n=80):
    rows = [{"prompt": f"What is {i} plus {i % 7}?", "completion": f" {i + i % 7}"} for i in range(n)]
    return _jsonl(path, rows)


def test_a_prompt_completion_file_is_a_text_task_without_a_card(tmp_path):
    data = _sft_file(tmp_path / "my-sft.v2.jsonl")
    card = domain.task_card(data)
    assert (card.name, card.kind, card.prompt, card.answer, card.split) == ("my-sft_v2", "text", "prompt",
                                                                              "completion", None)
    records = card_records(card)
    assert records[3]["prompt"] == "What is 3 plus 3?" and records[3]["answer"] == "6"
    checked = domain.check_cards([data, domain.write_card(tmp_path / "c.yaml", name="c", data=data.name,
                                                          kind="text", answer="completion")])
    assert [c.name for c in checked] == ["my-sft_v2", "c"]
    written = domain.card_file(card, tmp_path / "out")
    assert written.name == "my-sft_v2.card.yaml" and load_card(written).checksum() == card.checksum()
    with pytest.raises(DataError, match=r"line 1: missing field 'completion'"):
        domain.check_cards(_jsonl(tmp_path / "other.jsonl", [{"prompt": "p", "answer": "a"}]))


def test_run_with_data_and_no_card_end_to_end(smoke_cfg, tmp_path):
    data = _sft_file(tmp_path / "sums.jsonl")
    out = tmp_path / "out"
    assert cli.main(["run", "--data", str(data), "--profile", "smoke", "--method", "scd_aw", "--out", str(out)]) == 0
    runs = pd.read_csv(out / "results" / "smoke" / "runs.csv")
    assert list(runs.model) == ["teacher_sft", "student_sft", "scd_aw"] and set(runs.task) == {"sums"}
    assert runs.primary.between(0, 1).all() and (out / "sums.card.yaml").is_file()


def test_the_readme_yes_no_card_reads_as_written():
    import re

    import yaml

    from scd.core.cards import card_from_dict
    from scd.core.io import project_path

    text = (project_path("README.md")).read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S) if "kind: yesno" in b)
    card = card_from_dict(yaml.safe_load(block), "README.md")
    assert card.kind == "yesno" and card.labels == ("yes", "no", "maybe")
