import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scd.data import entitylists
from scd.scoring import metrics as m


# ---------------------------------------------------------------- parsing


def test_parse_choice_first_letter_wins():
    assert m.parse_choice("答えはCです") == "C"
    assert m.parse_choice("  b) no, D") == "D"  # lower-case letters are ignored
    assert m.parse_choice("わかりません") is None
    assert m.parse_choice("") is None
    assert m.parse_choice("G H") is None
    # Upstream's naive rule: the "A" of "Answer" comes before the real answer.
    assert m.parse_choice("Answer: B") == "A"


def test_parse_yes_no_maybe_whole_word_case_insensitive():
    assert m.parse_yes_no_maybe("YES, it does.") == "yes"
    assert m.parse_yes_no_maybe("Maybe not; no.") == "maybe"
    assert m.parse_yes_no_maybe("I know nothing; yesterday") is None
    assert m.parse_yes_no_maybe("the answer is no") == "no"


def test_parse_entities_accepts_only_list_of_str():
    assert entitylists.parse_entities("['高血圧', '糖尿病']") == ["高血圧", "糖尿病"]
    assert entitylists.parse_entities("  []\n") == []
    for bad in ["['a', 1]", "'a'", "('a',)", "['a'", "高血圧", "{'a': 1}", "None"]:
        assert entitylists.parse_entities(bad) is None, bad


def test_parse_entities_never_executes_code(tmp_path):
    marker = tmp_path / "pwned"
    assert entitylists.parse_entities("__import__('os')") is None
    assert entitylists.parse_entities(f"__import__('os').system('touch {marker}')") is None
    assert entitylists.parse_entities(f"[open('{marker}', 'w').write('x')]") is None
    assert not marker.exists()


def test_parse_entities_survives_pathological_nesting():
    assert entitylists.parse_entities("[" * 100000 + "]" * 100000) is None


def test_serialize_format_and_examples():
    assert entitylists.serialize_entities(["a", "b"]) == "['a', 'b']"
    assert entitylists.serialize_entities(["高血圧"]) == "['高血圧']"  # Japanese stays readable
    tricky = ["it's", 'say "hi"', "back\\slash", "改行\nあり", "'\"", ""]
    assert entitylists.parse_entities(entitylists.serialize_entities(tricky)) == tricky
    with pytest.raises(TypeError):
        entitylists.serialize_entities(["a", 1])


japanese = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x3040, max_codepoint=0x30FF),  # kana
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),  # kanji
        st.sampled_from("'\"\\\n\t []{},"),
    )
)


@given(st.lists(st.one_of(st.text(), japanese)))
def test_serialize_parse_round_trip(entities):
    text = entitylists.serialize_entities(entities)
    assert entitylists.parse_entities(text) == entities
    assert entitylists.serialize_entities(entitylists.parse_entities(text)) == text  # deterministic


def test_parse_prediction_dispatch():
    assert m.parse_prediction("choice", "B") == "B"
    assert m.parse_prediction("yesno", "No.") == "no"
    assert m.parse_prediction("ner", "['x']") == ["x"]
    with pytest.raises(ValueError):
        m.parse_prediction("regression", "1")


# ---------------------------------------------------------------- NER F1


def test_exact_f1():
    # tp=2, P=2/4, R=2/3 -> F1 = 2*(1/2)*(2/3)/(1/2+2/3) = (2/3)/(7/6) = 4/7
    assert m.exact_f1(["a", "b", "c"], ["a", "b", "d", "e"]) == pytest.approx(4 / 7)
    assert m.exact_f1(["a"], ["a"]) == 1.0
    assert m.exact_f1(["a"], ["b"]) == 0.0
    assert m.exact_f1(["a"], []) == 0.0
    # Duplicates removed: P = 1/1, R = 1/2 -> 2/3
    assert m.exact_f1(["a", "b"], ["a", "a", "a"]) == pytest.approx(2 / 3)


def test_partial_f1_substring_both_directions():
    assert m.partial_f1(["高血圧症"], ["高血圧"]) == 1.0  # pred inside gold
    assert m.partial_f1(["糖尿病"], ["2型糖尿病"]) == 1.0  # gold inside pred
    assert m.exact_f1(["糖尿病"], ["2型糖尿病"]) == 0.0


def test_partial_f1_mixed_and_precision_counts_predictions():
    # gold 肺炎 matched, 発熱 not -> R=1/2; pred 細菌性肺炎 matches, 頭痛 not -> P=1/2
    assert m.partial_f1(["肺炎", "発熱"], ["細菌性肺炎", "頭痛"]) == pytest.approx(0.5)
    # R = 1/1; P = 2/3 (急性, 心筋梗塞 match; 頭痛 doesn't) -> F1 = (4/3)/(5/3) = 0.8.
    # Upstream's code would use the gold count (1) for precision: P = 1/3.
    assert m.partial_f1(["急性心筋梗塞"], ["急性", "心筋梗塞", "頭痛"]) == pytest.approx(0.8)


def test_partial_f1_edge_cases():
    assert m.partial_f1(["肺炎"], ["骨折"]) == 0.0  # no match
    assert m.partial_f1(["肺炎"], []) == 0.0  # empty prediction
    assert m.partial_f1([], []) == 1.0  # empty gold, empty pred
    assert m.partial_f1([], ["肺炎"]) == 0.0  # empty gold, spurious pred
    assert m.exact_f1([], []) == 1.0 and m.exact_f1([], ["x"]) == 0.0
    # duplicates: set {肺炎} -> P=1, R=1/2 -> 2/3
    assert m.partial_f1(["肺炎", "発熱"], ["肺炎", "肺炎", "肺"]) == pytest.approx(
        2 * 1 * 0.5 / 1.5
    )
    # the empty string is not a wildcard
    assert m.partial_f1(["肺炎"], [""]) == 0.0


# ---------------------------------------------------------------- choice scoring


def test_unweighted_kappa_by_hand():
    # gold A A B B, pred A B B B.  po = 3/4.
    # gold marginals A=2,B=2; pred marginals A=1,B=3 -> pe = (2*1 + 2*3)/16 = 1/2
    # kappa = (3/4 - 1/2) / (1 - 1/2) = 1/2
    r = m.score("choice", ["A", "A", "B", "B"], ["A", "B", "B", "B"])
    assert r["kappa"] == pytest.approx(0.5)
    assert r["accuracy"] == pytest.approx(0.75) and r["primary"] == r["accuracy"]


def test_unweighted_kappa_with_unparsed_sentinel():
    # gold A A B B, pred A None B B. po = 3/4.
    # gold A=2,B=2,None=0; pred A=1,B=2,None=1 -> pe = (2*1 + 2*2 + 0*1)/16 = 3/8
    # kappa = (3/4 - 3/8) / (5/8) = 3/5
    r = m.score("choice", ["A", "A", "B", "B"], ["A", "?", "B", "B"])
    assert r["kappa"] == pytest.approx(0.6)
    assert r["n_unparsed"] == 1 and r["predictions"] == ["A", None, "B", "B"]


def test_linear_weighted_kappa_by_hand():
    # Labels A<B<C<D (indices 0..3), w_ij = |i-j|, kappa = 1 - sum(w*O)/sum(w*E).
    # gold A B C D, pred A C C A. Observed off-diagonals: (B,C) w=1, (D,A) w=3 -> 4.
    # E_ij = r_i c_j / n with r = (1,1,1,1), c = (2,0,2,0), n = 4.
    # sum_i |i-0| = 6 for column A, sum_i |i-2| = 4 for column C
    # sum(w*E) = (2*6 + 2*4) / 4 = 5  ->  kappa = 1 - 4/5 = 0.2
    r = m.score("choice", list("ABCD"), list("ACCA"), weights="linear")
    assert r["kappa"] == pytest.approx(0.2)
    # Unweighted for comparison: po = 2/4, pe = (1*2 + 1*0 + 1*2 + 1*0)/16 = 1/4
    # kappa = (1/2 - 1/4)/(3/4) = 1/3
    assert m.score("choice", list("ABCD"), list("ACCA"))["kappa"] == pytest.approx(1 / 3)


def test_linear_kappa_puts_unparsed_last():
    # Labels A B C D None (0..4). gold A B C D, pred A B C None: only (D,None), w=1.
    # r = (1,1,1,1,0), c = (1,1,1,0,1); sum_i r_i|i-j|: j=A 6, B 4, C 4, None 10
    # sum(w*E) = (6+4+4+10)/4 = 6  ->  kappa = 1 - 1/6 = 5/6
    r = m.score("choice", list("ABCD"), ["A", "B", "C", "不明"], weights="linear")
    assert r["kappa"] == pytest.approx(5 / 6)


def test_linear_kappa_keeps_distance_when_middle_letter_absent():
    # B never occurs; labels must be A(0) B(1) C(2) None(3), not sklearn's default
    # of the labels present, A(0) C(1) None(2).
    # gold A A C C, pred A A C None: only (C,None), w=1 -> sum(w*O) = 1
    # r = (A2, C2), c = (A2, C1, None1):
    # sum(w*E) = [2*(0*2 + 2*1 + 3*1) + 2*(2*2 + 0*1 + 1*1)] / 4 = (10 + 10)/4 = 5
    # kappa = 1 - 1/5 = 0.8   (with sklearn's default labels: 1 - 1/3 = 2/3)
    from sklearn.metrics import cohen_kappa_score

    r = m.score("choice", list("AACC"), ["A", "A", "C", "?"], weights="linear")
    assert r["kappa"] == pytest.approx(0.8)
    default = cohen_kappa_score(list("AACC"), ["A", "A", "C", "None"], weights="linear")
    assert default == pytest.approx(2 / 3)


def test_unparseable_lowers_accuracy_and_is_counted():
    r = m.score("choice", list("ABCD"), ["A", "答えはB", "わかりません", "xyz"])
    assert r["accuracy"] == pytest.approx(0.5)
    assert r["n"] == 4 and r["n_unparsed"] == 2
    assert r["predictions"] == ["A", "B", None, None]


def test_kappa_nan_when_single_label():
    r = m.score("choice", ["A", "A", "A"], ["A", "A", "A"])
    assert r["accuracy"] == 1.0 and math.isnan(r["kappa"])


def test_choice_gold_validation():
    with pytest.raises(ValueError, match="gold"):
        m.score("choice", ["A", "G"], ["A", "A"])
    with pytest.raises(ValueError, match="gold"):
        m.score("choice", ["AB"], ["A"])


# ---------------------------------------------------------------- PubMedQA


def test_pubmedqa_macro_f1_by_hand():
    # gold yes yes no maybe; pred yes no no None
    # yes:   tp=1 fp=0 fn=1 -> P=1,   R=1/2 -> F1=2/3
    # no:    tp=1 fp=1 fn=0 -> P=1/2, R=1   -> F1=2/3
    # maybe: tp=0           -> F1=0
    # macro = (2/3 + 2/3 + 0)/3 = 4/9
    golds = ["yes", "yes", "no", "maybe"]
    texts = ["Yes, it does.", "No.", "no", "I cannot say"]
    r = m.score("yesno", golds, texts)
    assert r["macro_f1"] == pytest.approx(4 / 9)
    assert r["accuracy"] == pytest.approx(0.5) and r["primary"] == r["accuracy"]
    assert r["n_unparsed"] == 1


def test_yesno_gold_validation():
    with pytest.raises(ValueError, match="gold"):
        m.score("yesno", ["Yes"], ["yes"])


# ---------------------------------------------------------------- NER scoring


def test_score_ner():
    golds = [["肺炎", "発熱"], "['糖尿病']", [], ["骨折"]]
    texts = ["['細菌性肺炎', '発熱']", "['糖尿病']", "[]", "骨折です"]
    r = m.score("ner", golds, texts)
    # exact:   sample0 P=1/2 R=1/2 -> 1/2; 1; 1; 0 (unparsed -> [])
    # partial: sample0 -> 1;                1; 1; 0
    assert r["exact_f1"] == pytest.approx((0.5 + 1 + 1 + 0) / 4)
    assert r["partial_f1"] == pytest.approx(3 / 4) and r["primary"] == r["partial_f1"]
    assert r["n_unparsed"] == 1 and r["predictions"][3] is None


def test_per_sample_correct():
    assert m.per_sample_correct("choice", "A", "A") == 1.0
    assert m.per_sample_correct("choice", "A", None) == 0.0
    assert m.per_sample_correct("yesno", "no", "yes") == 0.0
    assert m.per_sample_correct("ner", ["a", "b"], ["a"]) == pytest.approx(2 / 3)
    assert m.per_sample_correct("ner", [], None) == 1.0


# ---------------------------------------------------------------- errors


def test_length_mismatch_and_other_errors():
    with pytest.raises(ValueError, match="len"):
        m.score("choice", ["A", "B"], ["A"])
    with pytest.raises(ValueError, match="len"):
        m.score("ner", [["a"]], [])
    with pytest.raises(ValueError):
        m.score("choice", [], [])
    with pytest.raises(ValueError):
        m.score("foo", ["A"], ["A"])
    with pytest.raises(ValueError, match="weights"):
        m.score("yesno", ["yes"], ["yes"], weights="linear")


def test_partial_f1_upstream_reproduces_jmed_llms_code_quirk_included():
    from scd.scoring.metrics import partial_f1, partial_f1_upstream

    assert partial_f1_upstream(["a", "b", "c"], ["a"]) == pytest.approx(1.5)  # above 1: every gold counts
    assert partial_f1(["a", "b", "c"], ["a"]) == pytest.approx(0.5)  # the definition: recall 1/3, precision 1
    assert partial_f1_upstream(["肝転移"], ["肝転移あり"]) == 0.0  # membership, not substring
    assert partial_f1(["肝転移"], ["肝転移あり"]) == 1.0
    assert partial_f1_upstream(["a"], ["a", "b"]) == pytest.approx(2 / 3)
    assert partial_f1_upstream(["a", "a", "b"], ["b", "b"]) == pytest.approx(2 * 2 / 3)  # sets: G={a,b}, P={b}
    assert partial_f1_upstream([], []) == 1.0 and partial_f1_upstream(["a"], []) == 0.0


def test_upstream_ner_score_on_the_committed_rows_matches_the_issue_measurement():
    """Upstream's function on the NRNER predictions committed at ae5208c (before the cpu profile was
    recalibrated): teacher 0.231, student 0.148, SCD+AW 0.175 (the definition: 0.118, 0.035, 0.070)."""
    import io
    import subprocess
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from scd.analysis.tables import upstream_credit

    repo = Path(__file__).resolve().parents[1]

    def rows(model, seed):
        blob = subprocess.run(["git", "show", f"ae5208c:results/cpu/samples/nrner/{model}_seed{seed}.csv"],
                              cwd=repo, capture_output=True, check=True).stdout
        return pd.read_csv(io.BytesIO(blob))

    for model, upstream, defined in (("teacher_sft", 0.231, 0.118), ("student_sft", 0.148, 0.035),
                                     ("scd_aw", 0.175, 0.070)):
        frames = [rows(model, seed) for seed in (0, 1, 2)]
        assert np.mean([upstream_credit(f).mean() for f in frames]) == pytest.approx(upstream, abs=5e-4)
        assert np.mean([f["correct"].mean() for f in frames]) == pytest.approx(defined, abs=5e-4)


def test_lenient_parse_keeps_the_complete_items_of_a_cut_list():
    from scd.data.entitylists import parse_entities_lenient
    from scd.scoring.metrics import score

    assert parse_entities_lenient("['肝転移', '肝転移', '肝転") == ["肝転移"]  # looped and cut: deduplicated
    assert parse_entities_lenient("['a', \"b\", 'c") == ["a", "b"]
    assert parse_entities_lenient("['a', 'a']") == ["a"] and parse_entities_lenient("[]") == []
    assert parse_entities_lenient("no list here") is None
    r = score("ner", ["['a', 'b']", "['c']"], ["['a', 'b', 'x", "nothing"])
    assert r["n_unparsed"] == 2 and r["n_unparsed_lenient"] == 1
    assert r["partial_f1"] == 0.0 and r["partial_f1_lenient"] == pytest.approx((1.0 + 0.0) / 2)


def test_a_list_is_cut_before_its_first_repeated_item():
    """``stop_at_repeat``'s cut: the list up to the first complete repeat, closed; nothing to cut
    in a list without repeats, a closed list, or text without a list."""
    from scd.data.entitylists import cut_at_first_repeat, parse_entities

    assert cut_at_first_repeat("['腫瘤', '紅斑', '腫瘤', '腫瘤', '腫") == "['腫瘤', '紅斑']"
    assert parse_entities(cut_at_first_repeat("['a', 'b', 'a'")) == ["a", "b"]
    assert cut_at_first_repeat("['a', 'a\\'', 'a'") == "['a', 'a\\'']"  # an escaped quote is part of an item
    assert cut_at_first_repeat("['[', '[', '[") == "['[']"  # a loop on the bracket itself
    assert cut_at_first_repeat("['a', 'b', 'b'") == "['a', 'b']"
    for text in ("['a', 'b']", "['a', 'b'] and 'b'", "['a', 'b', 'b", "no list", ""):  # no complete repeat
        assert cut_at_first_repeat(text) is None, text
