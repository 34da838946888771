"""Model sources other than the tiny scratch pair: ``hub`` ids resolved from local folders
(the download path is the same stage), and tokenizers that start every text with BOS."""
import copy

import pytest
import torch
from tokenizers import processors

from scd.data.encoding import encode
from scd.train.models import count_params, leading_bos, load_model, load_tokenizer, tokenizer_hash
from scd.stages.base_sft import base_model_stage, sft_stage
from scd.train.pretrain import WindowDataset


@pytest.fixture(scope="module")
def hub_pair(smoke_cfg, tmp_path_factory):
    """Two 'pretrained' models in plain folders, as a hub snapshot would leave them."""
    root = tmp_path_factory.mktemp("hub")
    for role in ("teacher", "student"):
        path, _ = base_model_stage(smoke_cfg, role)
        model, tok = load_model(path), load_tokenizer(path)
        model.save_pretrained(root / role)
        tok.save_pretrained(root / role)
    return root


def test_hub_source_from_local_folders_runs_the_pipeline(smoke_cfg, hub_pair):
    cfg = smoke_cfg.replace(model_source="hub", teacher_id=str(hub_pair / "teacher"),
                            student_id=str(hub_pair / "student"))
    path, base = base_model_stage(cfg, "teacher")
    assert path.name == "model" and path.resolve() == (hub_pair / "teacher").resolve()  # linked, not copied
    assert base.key["id"] == str((hub_pair / "teacher").resolve())
    model, tok = load_model(path), load_tokenizer(path)
    assert base.params == count_params(model) and base.tokenizer_hash == tokenizer_hash(tok)
    info = sft_stage(cfg, "teacher", "crade", 0)
    assert info.key["base"] == base.key and len(info.trajectory) == cfg.n_checkpoints
    assert 0.0 <= info.test.primary <= 1.0


def test_unknown_hub_id_fails_without_network(smoke_cfg, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = smoke_cfg.replace(model_source="hub", teacher_id="no-such-org/no-such-model", student_id="x/y")
    with pytest.raises(Exception, match="no-such-org/no-such-model|offline|OFFLINE|connection"):
        base_model_stage(cfg, "teacher")


@pytest.fixture(scope="module")
def bos_tok(smoke_cfg):
    """The smoke tokenizer with a post-processor that prepends BOS, as Gemma's and Llama 3's do."""
    tok = copy.deepcopy(load_tokenizer(base_model_stage(smoke_cfg, "teacher")[0]))
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.bos_token_id)])
    return tok


def test_prompts_keep_the_tokenizers_bos_even_when_cut(smoke_cfg, bos_tok):
    from scd.data.splits import load_task

    plain = load_tokenizer(base_model_stage(smoke_cfg, "teacher")[0])
    assert leading_bos(plain) is None and leading_bos(bos_tok) == bos_tok.bos_token_id
    rec = load_task("crade")["test"][0]
    cfg = smoke_cfg.replace(max_length=64, max_new_tokens=8)
    (with_bos,), n = encode([rec], bos_tok, cfg)
    (without,), _ = encode([rec], plain, cfg)
    assert n == 1 and with_bos["input_ids"][0] == bos_tok.bos_token_id and without["input_ids"][0] != plain.bos_token_id
    assert with_bos["prompt_len"] == without["prompt_len"] == 56  # same room, BOS inside it
    assert with_bos["labels"][-3:] == without["labels"][-3:]


def test_pretraining_windows_start_with_bos_only_when_asked():
    stream = torch.arange(100).numpy()
    plain, bos = WindowDataset(stream, 16, 4, seed=0), WindowDataset(stream, 16, 4, seed=0, bos_id=999)
    for i in range(4):
        a, b = plain[i]["input_ids"], bos[i]["input_ids"]
        assert len(a) == len(b) == 16 and b[0] == 999 and torch.equal(b[1:], a[:15])
