"""What the train split alone gives, without a language model: the floor a distilled LM should
clear before its scores mean anything.

Choice and yes/no tasks: a TF-IDF bag of character 1–3-grams of the prompt with a
class-balanced logistic regression (scikit-learn). NER: a train-lexicon matcher that predicts
every entity string of the train split's answers found in the prompt. Free text (task cards):
the answer of the most similar train prompt (cosine of the same TF-IDF). Fixed settings, chosen
before looking at any score; fitted on the run's train split, scored on its test split, in
the same per-sample row format as a model's test rows.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from scd.data import entitylists
from scd.scoring import metrics
from scd.core.tasks import get_task



def ngram_predictions(train: list[dict], test: list[dict], seed: int = 0) -> list[str]:
    """Class-balanced logistic regression on TF-IDF character 1–3-grams of the prompt."""
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    features = vectorizer.fit_transform([r["prompt"] for r in train])
    model = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed)
    model.fit(features, [r["answer"] for r in train])
    return list(model.predict(vectorizer.transform([r["prompt"] for r in test])))


def nearest_answer_predictions(train: list[dict], test: list[dict]) -> list[str]:
    """The answer of the train item whose prompt is nearest (TF-IDF character 1–3-grams, cosine)."""
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    features = vectorizer.fit_transform([r["prompt"] for r in train])
    nearest = (vectorizer.transform([r["prompt"] for r in test]) @ features.T).toarray().argmax(axis=1)
    return [train[i]["answer"] for i in nearest]


def lexicon_predictions(train: list[dict], test: list[dict]) -> list[list[str]]:
    """Every distinct train-answer entity that occurs in the test prompt, longest first."""
    lexicon = sorted({e for r in train for e in metrics.gold_entities(r["answer"]) if e},
                     key=lambda e: (-len(e), e))
    return [[e for e in lexicon if e in r["prompt"]] for r in test]


def reference_rows(task: str, train: list[dict], test: list[dict]) -> pd.DataFrame:
    """Per-sample test rows of the reference, in a model's row format (no gold loss: no LM)."""
    kind = get_task(task).kind
    if kind == "ner":
        preds = lexicon_predictions(train, test)
        generated = [entitylists.serialize_entities(p) for p in preds]
    elif kind == "text":
        generated = nearest_answer_predictions(train, test)
        preds = [metrics.parse_text(g) for g in generated]
    else:
        preds = generated = ngram_predictions(train, test)
    return metrics.sample_rows(kind, test, generated, preds, np.nan)


def passage_disjoint(train: list[dict], held_out: list[dict]) -> list[dict]:
    """Train items sharing no passage with ``held_out``: the reference without the help of test
    passages seen in training (splits are disjoint by question, not by passage)."""
    from scd.data.corpus import main_passage

    banned = {main_passage(r) for r in held_out} - {None}
    return [r for r in train if main_passage(r) not in banned]


def reference_scores(task: str, splits: dict) -> list[dict]:
    """The reference's score on dev and test, fitted on the whole train split and on its part that
    shares no passage with the test split (dev scores of that fit are not passage-disjoint)."""
    kind, rows = get_task(task).kind, []
    disjoint = passage_disjoint(splits["train"], splits["test"])
    for train_name, train in (("train", splits["train"]), ("passage-disjoint train", disjoint)):
        fits = bool(train) and (kind in ("ner", "text") or len({r["answer"] for r in train}) > 1)  # LR: 2 labels
        scored = reference_rows(task, train, splits["dev"] + splits["test"]) if fits else None  # one fit
        n_dev = len(splits["dev"])
        for split, part in (("dev", slice(0, n_dev)), ("test", slice(n_dev, None))):
            summary = metrics.score(kind, list(scored["gold"][part]), list(scored["generated"][part]),
                                    weights=get_task(task).kappa_weights) if fits else {}
            rows.append({"task": task, "fitted_on": train_name, "n_train": len(train), "split": split,
                         "primary": summary.get("primary", np.nan), "selection": summary.get("selection", np.nan)})
    return rows
