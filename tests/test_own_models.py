"""A user's own run: its stages under its output folder, its own train text for the profile's
tiny pair (no benchmark data needed), hub pairs whose embedding matrices are padded to different
sizes around one tokenizer, and instruction-tuned models' chat templates."""
import json

import pandas as pd
import pytest
import torch

from scd import api as domain
from scd import cli
from scd.core.config import STAGES, get_config
from scd.core.io import DataError, project_path
from scd.data.cards import write_task_file
from scd.data.encoding import encode
from scd.stages.store import stage_key

SYMPTOMS = ["cough", "fever", "headache", "back pain", "fatigue", "nausea", "rash", "dizziness"]
FINDINGS = {"a smooth cyst": "A", "a calcified nodule": "A", "an irregular mass": "B", "a spiculated lesion": "B"}


def own_rows(n: int) -> list[dict]:
    """A made-up two-label task in English: text no benchmark file holds."""
    findings = list(FINDINGS)
    return [{"id": f"n{i}", "q": f"Note {i}: a patient aged {20 + i} reports {SYMPTOMS[i % 8]} for {i % 7 + 1} days; "
             f"the scan shows {findings[i % 4]}. Is the finding benign (A) or malignant (B)? Answer:",
             "a": FINDINGS[findings[i % 4]]} for i in range(n)]


def own_card(folder, name: str, n: int):
    data = write_task_file(own_rows(n), folder / f"{name}.jsonl", fields_=("id", "q", "a"))
    return domain.write_card(folder / f"{name}.yaml", name=name, data=data.name, kind="choice", labels=["A", "B"],
                             prompt="q", answer="a", id="id")


def tree(path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")} if path.is_dir() else set()


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    """``python -m scd run --out`` on a card, with no benchmark data (an empty SCD_DATA_DIR) and no
    SCD_RUNS_DIR: what a user who installed the package and brought one file gets."""
    folder = tmp_path_factory.mktemp("own")
    card = own_card(folder, "ownnotes", 60)
    checkout_runs = project_path("runs") / "smoke"
    before = tree(checkout_runs)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCD_DATA_DIR", str(tmp_path_factory.mktemp("no_data")))
        mp.delenv("SCD_RUNS_DIR", raising=False)
        assert cli.main(["run", "--task-card", str(card), "--profile", "smoke", "--method", "scd_aw",
                         "--out", str(folder / "out")]) == 0
    return folder / "out", before, tree(checkout_runs)


def test_a_card_runs_stages_go_under_its_output_folder(own_run):
    out, before, after = own_run
    assert before == after  # nothing written to, or created in, the checkout's runs/
    names = {p.name.split("-")[0] for p in (out / "runs" / "smoke").iterdir()}
    assert {"tokenizer", "base", "sft", "cache", "distill"} <= names
    runs = pd.read_csv(out / "results" / "smoke" / "runs.csv")
    assert list(runs.model) == ["teacher_sft", "student_sft", "scd_aw"] and runs.primary.between(0, 1).all()


def test_a_card_runs_tiny_pair_learns_the_cards_own_train_text(own_run):
    out, _, _ = own_run
    (tok_dir,) = (out / "runs" / "smoke").glob("tokenizer-*")
    key = json.loads((tok_dir / "done.json").read_text())["key"]
    assert key["corpus_tasks"] == ["ownnotes"] and set(key["data"]) == {"card:ownnotes", "data:ownnotes"}
    vocab = json.loads((tok_dir / "tokenizer.json").read_text())["model"]["vocab"]
    assert "▁s" in vocab and not any("\u3040" <= ch <= "\u9fff" for piece in vocab for ch in piece)  # no Japanese


def test_too_little_train_text_is_refused_naming_both_sizes(tmp_path, monkeypatch):
    monkeypatch.setenv("SCD_DATA_DIR", str(tmp_path / "no_data"))
    monkeypatch.setenv("SCD_RUNS_DIR", str(tmp_path / "runs"))
    card = domain.write_card(tmp_path / "tiny.yaml", name="tiny", kind="choice", labels=["A", "B"], prompt="q",
                             answer="a", id="id", split="split",
                             data=write_task_file([{"id": f"t{i}", "q": f"Q{i}?", "a": "AB"[i % 2],
                                                    "split": ["train", "dev", "test"][i % 3]} for i in range(6)],
                                                  tmp_path / "tiny.jsonl", fields_=("id", "q", "a", "split")).name)
    with pytest.raises(DataError, match=r"\['tiny'\] holds \d+ characters of text; the tokenizer and base LMs need "
                                        r"at least 195 \(") as err:
        domain.run(card, profile="smoke", out=tmp_path / "out", log=lambda *a: None)
    assert "\n" not in str(err.value)


def test_builtin_profiles_keep_their_corpus_and_keys():
    """The card corpus is a card run's default only: a profile's own config reads the benchmark."""
    for profile in ("smoke", "cpu"):
        cfg = get_config(profile)
        assert cfg.corpus_tasks in (None, ("crade", "nrner", "pubmedqa"))
        for stage in STAGES:
            assert "chat_template" not in stage_key(cfg, stage, "teacher", task="crade")


# ------------------------------------------------------------------ hub pairs with padded embeddings
PAD_ROWS = 64


@pytest.fixture(scope="module")
def padded_pair(smoke_cfg, tmp_path_factory):
    """The smoke pair saved as hub folders, the teacher's embedding padded by 64 rows past the
    tokenizer (as Qwen2.5 7B's is past 0.5B's). The padded rows copy the answer letters' and EOS's
    rows, scaled up, so an unrestricted teacher puts them in its top-k."""
    from scd.stages.base_sft import base_model_stage
    from scd.train.models import load_model, load_tokenizer

    root = tmp_path_factory.mktemp("padded")
    for role in ("teacher", "student"):
        path, _ = base_model_stage(smoke_cfg, role)
        model, tok = load_model(path), load_tokenizer(path)
        if role == "teacher":
            real = len(tok)
            model.resize_token_embeddings(real + PAD_ROWS, mean_resizing=False)
            ids = [tok(c, add_special_tokens=False)["input_ids"][-1] for c in "ABCD"] + [tok.eos_token_id]
            with torch.no_grad():
                for j in range(PAD_ROWS):
                    model.get_output_embeddings().weight[real + j] = 1.5 * model.get_output_embeddings().weight[ids[j % 5]]
        model.save_pretrained(root / role)
        tok.save_pretrained(root / role)
    return root


def test_padded_embedding_rows_are_left_out_of_distillation(smoke_cfg, padded_pair):
    from scd.data.encoding import PadCollator
    from scd.stages.base_sft import sft_stage, task_splits
    from scd.stages.distill import cache_stage, distill_stage
    from scd.train.models import load_model, load_tokenizer, teacher_topk

    tok = load_tokenizer(padded_pair / "student")
    teacher_rows = json.loads((padded_pair / "teacher" / "config.json").read_text())["vocab_size"]
    student_rows = json.loads((padded_pair / "student" / "config.json").read_text())["vocab_size"]
    assert (teacher_rows, student_rows) == (len(tok) + PAD_ROWS, len(tok))
    cfg = smoke_cfg.replace(model_source="local", teacher_id=str(padded_pair / "teacher"),
                            student_id=str(padded_pair / "student"))
    run = distill_stage(cfg, "scd_aw", "crade", 0)
    assert 0.0 <= run.test.primary <= 1.0
    teacher = sft_stage(cfg, "teacher", "crade", 0)
    targets, _ = cache_stage(cfg, teacher, "crade")
    assert all(int(t.topk_ids.max()) < len(tok) for t in targets)
    # the padded rows are live: over every row, the teacher's top-k holds them
    items, _ = encode(task_splits(cfg, "crade")["train"][:8], tok, cfg)
    ids, *_ = teacher_topk(load_model(teacher.best_path), PadCollator(tok.pad_token_id)(items), cfg.top_k, 1.0)
    assert int(ids.max()) >= len(tok)


def test_pairs_with_different_tokenizers_are_still_refused():
    from scd.core.records import BaseRecord
    from scd.stages.distill import check_shared_vocabulary

    with pytest.raises(ValueError, match="different tokenizers"):
        check_shared_vocabulary(BaseRecord(key={}, params=1, tokenizer_hash="aaa"),
                                BaseRecord(key={}, params=1, tokenizer_hash="bbb"))


# ------------------------------------------------------------------ chat templates
TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
            "{% if add_generation_prompt %}<s>assistant:{% endif %}")


@pytest.fixture(scope="module")
def chat_tok(tmp_path_factory):
    """A local tokenizer with a simple chat template, as an instruction-tuned model's folder has."""
    from scd.train.models import load_tokenizer, train_tokenizer

    folder = tmp_path_factory.mktemp("chat_tok")
    texts = [r["q"] + " " + r["a"] for r in own_rows(40)] + ["user assistant"]
    tok = train_tokenizer(texts, get_config("smoke").replace(vocab_size=300), folder)
    plain = folder.parent / (folder.name + "_plain")
    tok.save_pretrained(plain)
    tok.chat_template = TEMPLATE
    tok.save_pretrained(folder)
    return load_tokenizer(folder), load_tokenizer(plain)


def test_chat_template_wraps_every_encoded_prompt(chat_tok):
    tok, plain = chat_tok
    rec = {"id": "x/1", "prompt": own_rows(1)[0]["q"], "answer": "A", "kind": "choice"}
    cfg = get_config("smoke").replace(**cli.parse_overrides(["chat_template=True"]))
    assert cfg.chat_template is True
    (item,), _ = encode([rec], tok, cfg)
    want = tok.apply_chat_template([{"role": "user", "content": rec["prompt"]}], add_generation_prompt=True,
                                   tokenize=True, return_dict=False)
    assert item["input_ids"][:item["prompt_len"]] == list(want)
    assert item["labels"][item["prompt_len"]:] == item["input_ids"][item["prompt_len"]:]  # the answer, as before
    (off,), _ = encode([rec], tok, get_config("smoke"))
    assert off["input_ids"][:off["prompt_len"]] == tok(rec["prompt"])["input_ids"]  # default: the prompt alone
    with pytest.raises(ValueError, match="has no chat template"):
        encode([rec], plain, cfg)


def test_chat_template_keys_the_prompt_stages_only_when_on(tmp_path):
    base = get_config("smoke")
    on = base.replace(chat_template=True)
    for stage in STAGES:
        for role in ("teacher", "student"):
            parts = {"task": "crade"} if stage == "sft" else {}
            assert (stage_key(on, stage, role, **parts) != stage_key(base, stage, role, **parts)) == \
                (stage in ("sft", "cache")), stage
            assert stage_key(base.replace(chat_template=False), stage, role, **parts) == \
                stage_key(base, stage, role, **parts)
    card = domain.write_card(tmp_path / "c.yaml", name="chatty", data="c.jsonl", kind="text",
                             set={"chat_template": True})
    assert domain.domain_config(card, profile="smoke").chat_template is True


@pytest.mark.slow  # installs the package and trains a card's stages
def test_a_non_editable_install_runs_a_card_from_another_folder(tmp_path, data_dir):
    """What `pip install .` gives a user: the built package (its data files included) imported from
    site-packages, run from an unrelated folder with no benchmark data, writing only under --out."""
    import subprocess
    import sys

    site, work = tmp_path / "site", tmp_path / "work"
    work.mkdir()
    repo = project_path(".").resolve()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(repo)], check=True, cwd=work)
    card = own_card(work, "installed", 60)
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("SCD_RUNS_DIR", "PYTHONPATH")}
    env |= {"PYTHONPATH": str(site), "SCD_DATA_DIR": str(tmp_path / "no_data"), "SCD_QUIET": "1"}
    where = subprocess.run([sys.executable, "-c", "import scd; print(scd.__file__)"], env=env, cwd=work,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)), where  # the installed copy, not the checkout
    run = subprocess.run([sys.executable, "-m", "scd", "run", "--task-card", card.name, "--profile", "smoke",
                          "--method", "scd_aw", "--out", "out"], env=env, cwd=work, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (work / "out" / "results" / "smoke" / "runs.csv").is_file() and (work / "out" / "runs" / "smoke").is_dir()
    assert sorted(p.name for p in work.iterdir()) == ["installed.jsonl", "installed.yaml", "out"]
