"""Smoke-profile models trained end to end on real data: trajectory, anchor, evaluation, resume."""
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from scd.core.config import PROFILES, get_config
from scd.data.splits import load_task
from scd.data.encoding import SHORT_ANSWER_RESERVE, encode, passage_focus
from scd.core.tasks import QUOTED
from scd.train.models import answer_logits, load_model, load_tokenizer
from scd.stages.base_sft import base_model_stage, sft_stage
from scd.core.records import SFTRecord
from scd.train.sft import AnswerOnlyTrainer, SaveAtSteps, checkpoint_steps
from scd.train.training import seconds_before


@pytest.fixture(scope="module")
def teacher(smoke_cfg):
    return sft_stage(smoke_cfg, "teacher", "crade", 0)


@pytest.fixture(scope="module")
def student(smoke_cfg):
    return sft_stage(smoke_cfg, "student", "crade", 0)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_student_arm_gets_the_same_optimiser_steps(profile):
    """Student SFT trains as many epochs as a distillation method's N stages of T epochs, over the
    same train items and batch: a method then differs from the baseline by what it learns from,
    never by how long it trains."""
    cfg = get_config(profile)
    assert cfg.student_epochs == cfg.n_checkpoints * cfg.stage_epochs


def test_checkpoint_steps_are_evenly_spaced():
    assert checkpoint_steps(12, 3) == [4, 8, 12]
    assert checkpoint_steps(10, 4) == [2, 5, 8, 10]
    assert checkpoint_steps(3, 3) == [1, 2, 3]


def test_teacher_trajectory_has_n_checkpoints_at_expected_steps(smoke_cfg, teacher):
    steps_per_epoch = math.ceil(teacher.n["train"] / smoke_cfg.batch_size)
    expected = checkpoint_steps(steps_per_epoch * smoke_cfg.teacher_epochs, smoke_cfg.n_checkpoints)
    assert [t.step for t in teacher.trajectory] == expected
    assert len(teacher.trajectory) == smoke_cfg.n_checkpoints
    assert teacher.trajectory[-1].epoch == pytest.approx(smoke_cfg.teacher_epochs)
    assert teacher.best in {t.checkpoint for t in teacher.trajectory}
    best = max(t.dev.selection for t in teacher.trajectory)
    assert next(t for t in teacher.trajectory if t.checkpoint == teacher.best).dev.selection == best


def test_evaluation_scores_in_range_with_per_sample_rows(smoke_cfg, teacher):
    test = teacher.test
    assert 0.0 <= test.accuracy <= 1.0 and -1.0 <= test.kappa <= 1.0 or math.isnan(test.kappa)
    assert test.n == teacher.n["test"] and 0 <= test.n_unparsed <= test.n
    rows = pd.read_csv(f"{teacher.path}/test.csv")
    assert len(rows) == teacher.n["test"] and rows["id"].is_unique
    assert set(rows.columns) >= {"id", "tag", "gold", "generated", "prediction", "correct", "gold_loss"}
    assert rows["correct"].between(0, 1).all() and (rows["gold_loss"] > 0).all()
    assert rows["correct"].mean() == pytest.approx(test.accuracy)


def test_student_anchor_covers_every_train_id(smoke_cfg, student):
    anchor = pd.read_csv(f"{student.path}/anchor.csv")
    train_ids = [r["id"] for r in load_task("crade", max_train=smoke_cfg.max_train)["train"]]
    assert sorted(anchor["id"]) == sorted(train_ids)
    assert anchor["loss"].map(math.isfinite).all() and (anchor["loss"] > 0).all()


def test_teacher_is_bigger_than_student(smoke_cfg, teacher, student):
    t = load_model(teacher.best_path)
    s = load_model(student.best_path)
    assert sum(p.numel() for p in t.parameters()) > 2 * sum(p.numel() for p in s.parameters())
    assert t.config.vocab_size == s.config.vocab_size


def test_answer_only_logits_match_the_full_forward(smoke_cfg, teacher):
    tok = load_tokenizer(teacher.best_path)
    model = load_model(teacher.best_path).eval()
    items, _ = encode(load_task("crade", max_train=4)["train"][:2], tok, smoke_cfg)
    ids = torch.tensor([items[0]["input_ids"]])
    labels = torch.tensor([items[0]["labels"]])
    with torch.no_grad():
        sparse, targets, _ = answer_logits(model, ids, torch.ones_like(ids), labels)
        full = model(input_ids=ids).logits[0, :-1][labels[0, 1:] != -100]
    assert sparse.shape[0] == targets.shape[0] == (labels != -100).sum()
    assert torch.allclose(sparse, full, atol=1e-5)


def test_prompt_truncation_keeps_the_answer_and_ignores_it(smoke_cfg, teacher):
    tok = load_tokenizer(teacher.best_path)
    cfg = smoke_cfg.replace(max_length=64, max_new_tokens=8)
    rec = load_task("crade")["test"][0]
    items, n = encode([rec], tok, cfg)
    answer = tok(rec["answer"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert n == 1 and items[0]["prompt_len"] == 56 and items[0]["input_ids"][-len(answer):] == answer
    # the cut must not depend on the gold answer, or the prompt's length leaks the label
    variants, _ = encode([rec | {"answer": a} for a in ("A", "yes", "maybe", "A" * 200)], tok, cfg)
    assert len({tuple(it["input_ids"][: it["prompt_len"]]) for it in variants}) == 1
    long = variants[-1]
    assert len(long["input_ids"]) - long["prompt_len"] == len(tok("A" * 200, add_special_tokens=False)["input_ids"]) + 1


def test_passage_cut_keeps_question_options_and_the_asked_term(smoke_cfg, teacher):
    """CRADE asks about a term of its passage: the passage rule cuts only the passage, around
    that term; the middle rule may cut the term and the options alike."""
    tok = load_tokenizer(teacher.best_path)
    rec = next(r for r in load_task("crade")["test"] if len(r["prompt"]) > 700)
    start, end, focus = passage_focus(rec["prompt"])
    term = QUOTED.findall(rec["prompt"])[0]
    assert rec["prompt"][focus:focus + len(term)] == term and start < focus < end
    cfg = smoke_cfg.replace(max_length=200, max_new_tokens=8, prompt_cut="passage")
    (item,), n = encode([rec], tok, cfg)
    assert n == 1 and item["prompt_len"] == 192
    kept = tok.decode(item["input_ids"][: item["prompt_len"]]).replace(" ", "")
    head = rec["prompt"][:start]
    assert kept.startswith(head.replace(" ", "").replace("\n", "")[:20])
    assert kept.count(term) >= 2  # in the question, and where the passage mentions it
    for piece in ("選択肢:", "D.確実にADEである", "答え:"):
        assert piece.replace(" ", "") in kept.replace("\n", ""), piece
    # the same record without a passage marker falls back to the middle cut
    plain = rec | {"prompt": rec["prompt"].replace("「", "").replace("」", "")}
    (middle,), _ = encode([plain], tok, cfg)
    ids = tok(plain["prompt"])["input_ids"]
    assert middle["input_ids"][: middle["prompt_len"]] == ids[:96] + ids[-96:]


def test_room_by_kind_gives_choice_prompts_all_but_the_answer_reserve(smoke_cfg, teacher):
    tok = load_tokenizer(teacher.best_path)
    choice = load_task("crade")["test"][0]
    ner = next(r for r in load_task("nrner")["test"] if len(tok(r["prompt"])["input_ids"]) > 60)
    cfg = smoke_cfg.replace(max_length=64, max_new_tokens=16)
    uniform, _ = encode([choice, ner], tok, cfg)
    by_kind, _ = encode([choice, ner], tok, cfg.replace(prompt_room="by_kind"))
    assert [it["prompt_len"] for it in uniform] == [48, 48]
    assert [it["prompt_len"] for it in by_kind] == [64 - SHORT_ANSWER_RESERVE, 48]


def test_interrupted_sft_resumes_to_the_same_result(smoke_cfg, runs_dir, monkeypatch, teacher):
    cfg = get_config("smoke", teacher_lr=2e-3)  # a fresh stage key, same base LM
    calls = {"n": 0}

    def crash_after_first_save(self, args, state, control, **kw):
        calls["n"] += 1
        raise KeyboardInterrupt("simulated kill after the first checkpoint")

    monkeypatch.setattr(SaveAtSteps, "on_save", crash_after_first_save, raising=False)
    with pytest.raises(KeyboardInterrupt):
        sft_stage(cfg, "teacher", "crade", 0)
    assert calls["n"] == 1
    (first,) = [c for c in runs_dir.glob("smoke/sft-teacher-crade-*/trainer/checkpoint-*")
                if not (c.parents[1] / "done.json").exists()]  # the interrupted stage's one checkpoint
    before = seconds_before(first)  # the killed run's seconds, written beside its checkpoint
    assert before > 0
    monkeypatch.delattr(SaveAtSteps, "on_save")
    resumed = sft_stage(cfg, "teacher", "crade", 0)
    assert resumed.train_s > before  # the whole cost, not only the resumed part
    # an uninterrupted run of the same config in a separate runs folder
    monkeypatch.setenv("SCD_RUNS_DIR", str(runs_dir / "fresh"))
    base_model_stage(cfg, "teacher")
    fresh = sft_stage(cfg, "teacher", "crade", 0)
    assert [t.dev.gold_loss for t in resumed.trajectory] == pytest.approx(
        [t.dev.gold_loss for t in fresh.trajectory], rel=1e-5)
    assert resumed.test.gold_loss == pytest.approx(fresh.test.gold_loss, rel=1e-5)
    assert SFTRecord.read(Path(resumed.path) / "done.json").best == fresh.best


def test_fewer_checkpoints_copy_a_finished_run_instead_of_training(smoke_cfg, runs_dir, monkeypatch, teacher):
    """N checkpoints from a finished run with 2N: no training step, and the same trajectory as the
    `teacher` trained with N itself (saving checkpoints does not change training)."""
    other = runs_dir / "more-checkpoints"
    for stage in (runs_dir / "smoke").iterdir():
        if stage.name.startswith(("tokenizer-", "base-")):
            shutil.copytree(stage, other / "smoke" / stage.name)
    monkeypatch.setenv("SCD_RUNS_DIR", str(other))
    more = sft_stage(smoke_cfg.replace(n_checkpoints=2 * smoke_cfg.n_checkpoints), "teacher", "crade", 0)
    steps = []
    monkeypatch.setattr(AnswerOnlyTrainer, "training_step", lambda self, *a, **k: steps.append(1))
    copied = sft_stage(smoke_cfg, "teacher", "crade", 0)
    assert steps == []
    assert [t.step for t in copied.trajectory] == [t.step for t in teacher.trajectory]
    assert {t.step for t in copied.trajectory} < {t.step for t in more.trajectory}
    assert [t.dev.gold_loss for t in copied.trajectory] == pytest.approx([t.dev.gold_loss for t in teacher.trajectory],
                                                                         rel=1e-6)
    assert copied.test == teacher.test


def test_generation_stops_at_the_stop_string(smoke_cfg):
    """With ``stop`` a greedy continuation ends once the string has been written: a prefix of the
    unstopped continuation that ends within one token after the first occurrence."""
    from scd.train.evaluate import generate

    path, _ = base_model_stage(smoke_cfg, "teacher")  # a base LM writes on; an SFT model stops after a letter
    tok, model = load_tokenizer(path), load_model(path)
    records = load_task("nrner")["dev"][:6]
    free = generate(model, tok, records, smoke_cfg, 24)
    inner = [t[:-1] for t in free if len(t) > 2]
    assert inner, "the model wrote nothing to stop in"
    stop = max(set("".join(inner)), key="".join(inner).count)  # its most written character
    stopped = generate(model, tok, records, smoke_cfg, 24, stop=stop)
    longest_piece = max(len(tok.decode([i])) for i in range(len(tok)))
    cut = 0
    for f, s in zip(free, stopped):
        assert f.startswith(s)
        if stop in f[:-1]:
            assert stop in s and len(s) <= f.index(stop) + longest_piece
            cut += len(s) < len(f)
    assert cut > 0


def test_repeat_stop_ends_a_row_at_its_first_repeated_item(smoke_cfg):
    """The stopping criterion of ``stop_at_repeat`` reads each row's new text only: a row stops once
    its list repeats a complete item, not while the repeat is still being written."""
    import torch

    from scd.train.evaluate import RepeatStop

    path, _ = base_model_stage(smoke_cfg, "teacher")
    tok = load_tokenizer(path)
    prompt = tok("答え: ['痛い', '痛い']", add_special_tokens=False)["input_ids"]  # a repeat in the prompt: ignored
    rows = ["['痛い', '発熱', '痛い'", "['痛い', '発熱', '痛", "['痛い', '発熱']"]
    ids = [prompt + tok(r, add_special_tokens=False)["input_ids"] for r in rows]
    width = max(map(len, ids))
    batch = torch.tensor([i + [tok.pad_token_id] * (width - len(i)) for i in ids])
    assert RepeatStop(tok, len(prompt))(batch, None).tolist() == [True, False, False]


@pytest.mark.parametrize("from_first_step", [False, True])
def test_a_one_step_run_moves_the_model_only_with_the_first_step_warmup(smoke_cfg, tmp_path, from_first_step):
    """transformers' warm-up gives step 1 a learning rate of 0 (so a stage of one step never
    changed the student); ``warmup_from_first_step`` starts the warm-up above 0."""
    import torch

    from scd.data.encoding import PadCollator
    from scd.train.sft import AnswerOnlyTrainer
    from scd.train.training import cosine_from_first_step, training_args

    cfg = smoke_cfg.replace(warmup_from_first_step=from_first_step)
    path, _ = base_model_stage(cfg, "student")
    model, tok = load_model(path), load_tokenizer(path)
    before = [p.detach().clone() for p in model.parameters()]
    items, _ = encode(load_task("crade")["train"][:4], tok, cfg)
    args = training_args(tmp_path, cfg, 1e-3, 1, 0, max_steps=1, save_strategy="no")
    AnswerOnlyTrainer(model=model, args=args, train_dataset=items, data_collator=PadCollator(tok.pad_token_id)).train()
    moved = any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert moved == from_first_step
    assert cosine_from_first_step(0, 1, 10) == 0.5 and cosine_from_first_step(1, 1, 10) == 1.0
    assert cosine_from_first_step(10, 1, 10) == pytest.approx(0.0, abs=1e-12)
