"""A task from the user's file (scd.data.cards, scd.api): cards and rows checked with messages
that name the file and row, the generic path end to end on ``smoke``, and the same scores as the
built-in task when it reads the built-in task's own data."""
import json

import pandas as pd
import pytest

from scd import cli
from scd import api as domain
from scd.scoring import metrics
from scd.data.splits import load_task
from scd.core.io import DataError
from scd.core.cards import card_from_dict, load_card, register_card
from scd.data.cards import card_records, write_task_file


def _card(tmp_path, rows, fmt="jsonl", **keys):
    data = write_task_file(rows, tmp_path / f"t.{fmt}", fields_=tuple(rows[0]))
    return domain.write_card(tmp_path / "t.yaml", **{"name": "t", "data": data.name} | keys)


ROWS = [{"id": f"q{i}", "q": f"question {i}", "a": "AB"[i % 2]} for i in range(10)]


@pytest.mark.parametrize("keys, message", [
    ({"name": "x", "data": "d.jsonl", "kind": "choice", "labels": ["A", "B"], "colour": 1}, "unknown key(s) ['colour']"),
    ({"name": "x", "data": "d.jsonl"}, "missing ['kind']"),
    ({"name": "x", "data": "d.jsonl", "kind": "essay"}, "kind 'essay'; expected one of"),
    ({"name": "x", "data": "d.jsonl", "kind": "choice"}, "a choice task needs labels"),
    ({"name": "x", "data": "d.jsonl", "kind": "choice", "labels": ["B", "C"]}, "in order from A"),
    ({"name": "x", "data": "d.jsonl", "kind": "yesno", "labels": ["yes", "perhaps"]}, "must be some of"),
    ({"name": "x y", "data": "d.jsonl", "kind": "text"}, "must be letters, digits"),
    ({"name": "x", "data": "d.txt", "kind": "text"}, "format '.txt'; expected one of"),
    ({"name": "x", "data": "d.csv", "kind": "text", "kappa_weights": "linear"}, "choice tasks only"),
])
def test_bad_cards_say_what_is_wrong(keys, message):
    with pytest.raises(DataError, match="task card my.yaml") as err:
        card_from_dict(keys, "my.yaml")
    assert message in str(err.value)


def test_a_missing_card_or_data_file_is_named(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_card(tmp_path / "none.yaml")
    card = domain.write_card(tmp_path / "c.yaml", name="c", data="absent.jsonl", kind="text")
    with pytest.raises(DataError, match=r"absent\.jsonl does not exist"):
        card_records(load_card(card))


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize("change, message", [
    ({3: {"id": "q3", "q": "question 3"}}, "4: missing field 'a'"),
    ({4: {"id": "q4", "q": "question 4", "a": " "}}, "5: empty answer"),
    ({5: {"id": "q5", "q": "question 5", "a": "C"}}, "6: answer 'C' is not one of the declared labels ['A', 'B']"),
    ({6: {"id": "q1", "q": "question 6", "a": "A"}}, "7: duplicate id 'q1'"),
])
def test_bad_rows_are_named_by_file_and_row(tmp_path, fmt, change, message):
    rows = [dict(r) for r in ROWS]
    for i, row in change.items():
        rows[i] = row
    if fmt == "csv" and "missing field" in message:  # a CSV row always has every column: drop it from the header
        rows = [{k: v for k, v in r.items() if k != "a"} for r in rows]
        message = "1: missing field 'a'"
    card = load_card(_card(tmp_path, rows, fmt, kind="choice", labels=["A", "B"], prompt="q", answer="a", id="id"))
    with pytest.raises(DataError) as err:
        card_records(card)
    unit = "line" if fmt == "jsonl" else "row"
    assert f"t.{fmt} {unit} " in str(err.value) and message in str(err.value)


def test_a_bad_split_value_and_a_bad_entity_list_are_named(tmp_path):
    rows = [dict(r, split="train") for r in ROWS]
    rows[2]["split"] = "holdout"
    card = load_card(_card(tmp_path, rows, kind="choice", labels=["A", "B"], prompt="q", answer="a", split="split"))
    with pytest.raises(DataError, match=r"line 3: split 'holdout'; expected one of"):
        card_records(card)
    rows = [{"q": "text", "a": "not a list"}]
    card = load_card(_card(tmp_path, rows, "csv", name="n", kind="ner", prompt="q", answer="a"))
    with pytest.raises(DataError, match=r"row 1: answer 'not a list' is not a list of strings"):
        card_records(card)


def test_rows_a_parser_would_mangle_are_refused_with_file_and_row(tmp_path):
    (tmp_path / "t.csv").write_text("q,a\nquestion 1,A\nquestion 2, with a comma,B\n", encoding="utf-8")
    card = load_card(domain.write_card(tmp_path / "t.yaml", name="t", data="t.csv", kind="choice",
                                       labels=["A", "B"], prompt="q", answer="a"))
    with pytest.raises(DataError, match=r"t\.csv row 2: 1 more field\(s\) than the header's 2"):
        card_records(card)
    rows = [dict(r) for r in ROWS]
    rows[7]["q"] = rows[2]["q"]
    card = load_card(_card(tmp_path, rows, kind="choice", labels=["A", "B"], prompt="q", answer="a", id="id"))
    with pytest.raises(DataError, match=r"t\.jsonl line 8: the same prompt as line 3"):
        card_records(card)
    card = load_card(_card(tmp_path, ROWS, kind="choice", labels=["A", "B"], answer="a",
                           prompt_template="Q: {q} {0}"))
    with pytest.raises(DataError, match=r"prompt_template cannot be filled"):
        card_records(card)


def test_a_saved_dataset_with_splits_numbers_rows_across_them_and_names_the_split(tmp_path):
    import datasets

    parts = {"train": ROWS[:6], "test": ROWS[6:]}
    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in parts.items()}).save_to_disk(tmp_path / "ds")
    card = load_card(domain.write_card(tmp_path / "t.yaml", name="t", data="ds", kind="choice",
                                       labels=["A", "B"], prompt="q", answer="a"))
    records = card_records(card)
    assert [r["id"] for r in records] == [f"t/{i}" for i in range(1, 11)]  # default ids unique across splits
    assert [r["split"] for r in records] == ["train"] * 6 + ["test"] * 4
    bad = dict(parts, test=[dict(ROWS[6], a="C")] + ROWS[7:])
    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in bad.items()}).save_to_disk(tmp_path / "ds2")
    card = load_card(domain.write_card(tmp_path / "t2.yaml", name="t", data="ds2", kind="choice",
                                       labels=["A", "B"], prompt="q", answer="a"))
    with pytest.raises(DataError, match=r"ds2 split 'test' row 1: answer 'C' is not one of"):
        card_records(card)


def test_a_json_array_file_is_read_like_jsonl(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps(ROWS), encoding="utf-8")
    card = load_card(domain.write_card(tmp_path / "t.yaml", name="t", data="t.json", kind="choice",
                                       labels=["A", "B"], prompt="q", answer="a", id="id"))
    assert [r["id"] for r in card_records(card)] == [f"t/{r['id']}" for r in ROWS]


def test_a_card_cannot_take_a_builtin_name(tmp_path):
    with pytest.raises(ValueError, match="'crade' is a built-in task"):
        register_card(_card(tmp_path, ROWS, name="crade", kind="choice", labels=["A", "B"], prompt="q", answer="a"))


def test_splits_made_by_the_seeded_stratified_rule(tmp_path):
    rows = [{"q": f"question {i}", "a": "ABC"[i % 3]} for i in range(60)]
    card = _card(tmp_path, rows, name="made", kind="choice", labels=["A", "B", "C"], prompt="q", answer="a",
                 test_fraction=0.25)
    register_card(card)
    splits = load_task("made")
    assert [len(splits[s]) for s in ("train", "dev", "test")] == [36, 9, 15]
    assert sorted(r["answer"] for r in splits["test"]) == sorted("ABC" * 5)  # the label mix of the file
    ids = [r["id"] for s in ("train", "dev", "test") for r in splits[s]]
    assert len(set(ids)) == 60 and load_task("made")["test"] == splits["test"]  # disjoint, the same every time


def test_token_f1_and_exact_match_by_hand():
    from scd.scoring.freetext import text_tokens

    assert text_tokens("The Liver, left lobe!") == ["the", "liver", "left", "lobe"]
    assert text_tokens("肝臓 left") == ["肝", "臓", "left"]
    assert text_tokens("Café Müller, Москва") == ["café", "müller", "москва"]  # whole words in other scripts
    assert text_tokens("肝転移あり(stage2)") == ["肝", "転", "移", "あ", "り", "stage2"]
    assert metrics.exact_match("Left lobe.", "left  LOBE") == 1.0 and metrics.exact_match("a", None) == 0.0
    # gold {the, left, lobe}, prediction {left, lobe, of, liver}: P = 2/4, R = 2/3, F1 = 4/7
    assert metrics.token_f1("the left lobe", "left lobe of liver") == pytest.approx(4 / 7)
    assert metrics.token_f1("肝転移", "肝臓") == pytest.approx(0.4)  # P = 1/2, R = 1/3
    summary = metrics.score("text", ["the left lobe", "yes"], ["left lobe of liver\nmore", ""])
    assert summary["primary"] == pytest.approx(4 / 7 / 2) and summary["exact_match"] == 0.0
    assert summary["n_unparsed"] == 1


@pytest.mark.parametrize("task, fmt", [("crade", "jsonl"), ("nrner", "csv"), ("pubmedqa", "parquet")])
def test_an_exported_builtin_task_reads_back_as_the_same_records(data_dir, tmp_path, task, fmt):
    card = domain.export_builtin(task, tmp_path, fmt, name=f"{task}_same")
    register_card(card)
    mine, theirs = load_task(f"{task}_same"), load_task(task)
    for split in ("train", "dev", "test"):
        for key in ("prompt", "answer", "label", "tag"):
            assert [r[key] for r in mine[split]] == [r[key] for r in theirs[split]], (split, key)


@pytest.fixture(scope="module")
def generic(smoke_cfg, tmp_path_factory):
    """The CLI's generic path on smoke: the built-in CRADE exported to JSONL, with SCD+AW, its base
    LMs built from the profile's benchmark corpus (by default a card run's read the card's text)."""
    folder = tmp_path_factory.mktemp("generic")
    card = domain.export_builtin("crade", folder, "jsonl", name="crade_jsonl")
    corpus = ",".join(smoke_cfg.corpus_tasks)
    assert cli.main(["run", "--task-card", str(card), "--profile", "smoke", "--method", "scd_aw",
                     "--out", str(folder / "out"), "--set", f"corpus_tasks={corpus}"]) == 0
    return folder


def test_generic_path_scores_equal_the_builtin_task(generic, smoke_cfg):
    from scd.stages.base_sft import sft_stage
    from scd.stages.distill import distill_stage

    runs = pd.read_csv(generic / "out" / "results" / "smoke" / "runs.csv").set_index("model")
    assert list(runs.index) == ["teacher_sft", "student_sft", "scd_aw"]
    builtin = {"teacher_sft": sft_stage(smoke_cfg, "teacher", "crade", 0),
               "student_sft": sft_stage(smoke_cfg, "student", "crade", 0),
               "scd_aw": distill_stage(smoke_cfg, "scd_aw", "crade", 0)}
    for model, record in builtin.items():
        assert runs.loc[model, "primary"] == record.test.primary, model
        assert runs.loc[model, "gold_loss"] == pytest.approx(record.test.gold_loss, rel=1e-6), model
        assert runs.loc[model, "kappa"] == pytest.approx(record.test.kappa), model
    table = pd.read_csv(generic / "out" / "results" / "smoke" / "table1_ci.csv")
    assert "crade_jsonl" in " ".join(table.columns) and len(table) == 4  # 3 models and the reference
    assert "paper_average" not in table.columns  # the paper's numbers are about its benchmark, not this task


def test_generic_path_other_kinds_from_csv_and_made_splits(data_dir, smoke_cfg, tmp_path):
    """NER from CSV (split column) and yes/no from JSONL go through one run; free text made from
    NRNER's first entity, from CSV with splits made by the rule, through another."""
    ner = domain.export_builtin("nrner", tmp_path, "csv", name="nrner_csv")
    yesno = domain.export_builtin("pubmedqa", tmp_path, "jsonl", name="pubmedqa_jsonl")
    rows = [{"id": r["id"], "prompt": r["prompt"].replace("回答はPythonのリスト形式で", "最初の病名だけを"),
             "answer": metrics.gold_entities(r["answer"])[0]}
            for r in load_task("nrner")["train"][:200] if metrics.gold_entities(r["answer"])]
    data = write_task_file(rows, tmp_path / "first_entity.csv", fields_=("id", "prompt", "answer"))
    text = domain.write_card(tmp_path / "first_entity.yaml", name="first_entity", data=data.name, kind="text",
                             id="id", lang="ja", set={"max_new_tokens": 16})
    for cards in ([ner, yesno], [text]):
        result = domain.run(cards, methods=["td"], profile="smoke", out=tmp_path / "out", log=lambda *a: None)
        runs = result.runs()
        assert set(runs.model) == {"teacher_sft", "student_sft", "td"} and set(runs.task) == set(result.cfg.tasks)
        assert runs.primary.between(0, 1).all()
        rows_ = result.samples("td", task=result.cfg.tasks[0])
        assert len(rows_) == 12 and rows_.correct.between(0, 1).all()  # smoke's max_eval
    assert result.cfg.max_new_tokens == 16  # the card's own override
    assert "token_f1" in runs.columns and "exact_match" in runs.columns


def test_two_cards_that_disagree_on_a_setting_are_refused(tmp_path):
    a = domain.write_card(tmp_path / "a.yaml", name="a", data="a.jsonl", kind="text", set={"max_train": 10})
    b = domain.write_card(tmp_path / "b.yaml", name="b", data="b.jsonl", kind="text", set={"max_train": 20})
    with pytest.raises(ValueError, match="task cards disagree on max_train: 10 vs 20"):
        domain.domain_config([a, b], profile="smoke")


def test_models_by_folder_are_local_and_never_downloaded(tmp_path):
    assert domain.model_overrides(str(tmp_path), str(tmp_path))["model_source"] == "local"
    assert domain.model_overrides("org/teacher", "org/student") == {
        "model_source": "hub", "teacher_id": "org/teacher", "student_id": "org/student"}
    with pytest.raises(ValueError, match="both a teacher and a student"):
        domain.model_overrides("org/teacher", None)
    json.dumps(domain.model_overrides(None, None))


def test_the_building_blocks_example_runs_and_selects_as_the_pipeline(smoke_cfg, tmp_path):
    """examples/own_trainer_loop.py: SCD+AW from the blocks alone. Its first stage starts from the
    same base student with the same probe, so it follows the checkpoint the pipeline's SCD+AW did."""
    import runpy

    from scd.core.io import project_path
    from scd.stages.distill import distill_stage

    example = runpy.run_path(str(project_path("examples") / "own_trainer_loop.py"))
    out = example["main"]("crade", str(tmp_path))
    assert len(out["chosen"]) == smoke_cfg.n_checkpoints and 0 <= out["dev"]["primary"] <= 1
    assert out["chosen"][0] == distill_stage(smoke_cfg, "scd_aw", "crade", 0).stages[0].checkpoint_index


def test_cards_without_tasks_give_the_cards_tasks(tmp_path):
    """What notebooks 4-6 get from ``-p task_cards my.yaml`` alone: the card's task, not the profile's."""
    from scd.core.config import get_config

    card = _card(tmp_path, ROWS, kind="choice", labels=["A", "B"], prompt="q", answer="a", id="id")
    assert get_config("smoke", task_cards=[str(card)]).tasks == ("t",)
    assert get_config("smoke", task_cards=str(card), tasks="t,crade").tasks == ("t", "crade")
