"""The train-split reference: a bag of n-grams for choice and yes/no tasks, a lexicon for NER,
in a model's per-sample row format."""
import pytest

from scd.scoring.reference import lexicon_predictions, ngram_predictions, reference_rows


def _rec(i, prompt, answer, tag="t"):
    return {"id": f"x:{i}", "prompt": prompt, "answer": answer, "tag": tag}


def test_lexicon_predicts_every_train_entity_found_in_the_text():
    train = [_rec(0, "", "['肝転移', '腫瘍']"), _rec(1, "", "['肝']"), _rec(2, "", "[]")]
    test = [_rec(3, "「肝転移あり、腫瘍なし」", "['肝転移']"), _rec(4, "「異常なし」", "[]")]
    assert lexicon_predictions(train, test) == [["肝転移", "腫瘍", "肝"], []]


def test_ngram_model_learns_a_separable_task_with_skewed_labels():
    train = [_rec(i, f"質問 りんご {i}", "A") for i in range(18)] + [_rec(100 + i, f"質問 みかん {i}", "B") for i in range(3)]
    test = [_rec(200, "質問 みかん 7", "B"), _rec(201, "質問 りんご 99", "A")]
    assert ngram_predictions(train, test) == ["B", "A"]  # balanced classes: the minority label is not drowned


def test_reference_rows_have_the_model_row_format_and_learn_crade(data_dir):
    from scd.data.splits import load_splits

    splits = load_splits("crade", max_train=1000)
    rows = reference_rows("crade", splits["train"], splits["test"])
    assert list(rows.columns) == ["id", "tag", "gold", "generated", "prediction", "correct", "gold_loss"]
    assert len(rows) == len(splits["test"]) and rows["id"].is_unique and rows["gold_loss"].isna().all()
    assert rows["correct"].mean() == pytest.approx(0.72, abs=0.05)  # measured: 0.72; chance 0.25
    ner = reference_rows("nrner", *(load_splits("nrner", max_train=200)[s][:50] for s in ("train", "test")))
    assert ner["correct"].between(0, 1).all() and ner["prediction"].str.startswith("[").all()


def test_passage_disjoint_reference_drops_test_passages_and_crade_falls_to_chance(data_dir):
    """CRADE's train split holds its test passages (other terms asked about each): fitted without
    them, the n-gram model is at chance; a one-label train split gives NaN, not an error."""
    from scd.data.corpus import main_passage
    from scd.data.splits import load_splits
    from scd.scoring.reference import passage_disjoint, reference_scores

    splits = load_splits("crade", max_train=1000)
    disjoint = passage_disjoint(splits["train"], splits["test"])
    test_passages = {main_passage(r) for r in splits["test"]}
    assert 0 < len(disjoint) < len(splits["train"]) and not {main_passage(r) for r in disjoint} & test_passages
    scores = {(r["fitted_on"], r["split"]): r for r in reference_scores("crade", splits)}
    assert scores[("train", "test")]["primary"] == pytest.approx(0.72, abs=0.05)
    assert scores[("passage-disjoint train", "test")]["primary"] == pytest.approx(0.25, abs=0.05)
    one_label = dict(splits, train=[r for r in splits["train"] if r["answer"] == "A"])
    rows = reference_scores("crade", one_label)
    assert all(r["primary"] != r["primary"] for r in rows)  # NaN: nothing to fit
