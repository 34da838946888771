"""Tokenizer and model builders per profile, and the answer-only forward every stage shares.

Tiny profiles train one BPE tokenizer on train-split text only (short pieces, so a tiny
model sees Japanese as characters and short words, not whole memorised sentences) and build
Llama-architecture models from scratch. Hub profiles load both by id.
"""
from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

if TYPE_CHECKING:
    from scd.core.config import Config, ModelSpec


SPECIALS = {"pad_token": "<pad>", "eos_token": "</s>", "bos_token": "<s>", "unk_token": "<unk>"}


def train_tokenizer(texts: list[str], cfg: Config, out_dir: Path) -> PreTrainedTokenizerFast:
    """Byte-pair merges capped at ``max_piece_length`` characters.

    BPE rather than Unigram: the tokenizers library's Unigram trainer is not deterministic
    between processes, and a tokenizer is part of every downstream run's identity.
    """
    tok = Tokenizer(models.BPE(unk_token=SPECIALS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="never")
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size, special_tokens=list(SPECIALS.values()), max_token_length=cfg.max_piece_length,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIALS)
    fast.padding_side = "left"  # generation batches pad on the left
    fast.save_pretrained(out_dir)
    return fast


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def leading_bos(tok) -> int | None:
    """The BOS id if the tokenizer starts every text with it (Gemma, Llama 3), else None."""
    first = tok("a")["input_ids"][:1]
    return first[0] if tok.bos_token_id is not None and first == [tok.bos_token_id] else None


def tokenizer_hash(tok) -> str:
    """Identity of a vocabulary: caches and checkpoints built with another one are refused."""
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(repr(vocab).encode()).hexdigest()[:12]


def scratch_config(spec: ModelSpec, cfg: Config, vocab: int, pad_id: int | None = None, bos_id: int | None = None,
                   eos_id: int | None = None) -> LlamaConfig:
    """The Llama architecture of a from-scratch model: one place, so its size can be counted
    without a tokenizer (:func:`scratch_params`)."""
    return LlamaConfig(
        vocab_size=vocab, hidden_size=spec.hidden, num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads, num_key_value_heads=spec.heads,
        intermediate_size=int(spec.hidden * 8 / 3) // 16 * 16, max_position_embeddings=max(cfg.max_length, cfg.pretrain_window),
        tie_word_embeddings=True, pad_token_id=pad_id, bos_token_id=bos_id, eos_token_id=eos_id, rope_theta=10000.0,
    )


def build_scratch_model(spec: ModelSpec, tok, cfg: Config, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(scratch_config(spec, cfg, len(tok), tok.pad_token_id, tok.bos_token_id, tok.eos_token_id))


def scratch_params(spec: ModelSpec, cfg: Config, vocab: int | None = None) -> int:
    """Parameters of a from-scratch model with ``vocab`` ids (default: the profile's
    ``vocab_size``, which the BPE fills on the benchmark corpus), built on the meta device: a
    profile's sizes are checked without making any weights."""
    with torch.device("meta"):
        return count_params(LlamaForCausalLM(scratch_config(spec, cfg, vocab or cfg.vocab_size)))


def default_device() -> torch.device:
    """This process's accelerator (its ``LOCAL_RANK``'s GPU under a launcher), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def load_model(path: str | Path, dtype=torch.float32):
    """A whole model in ``dtype`` on this process's device, on every rank: for evaluation, cache
    building and probes (each rank computes with all the weights, even under FSDP's RAM-efficient
    loading, which is switched off for this load)."""
    from accelerate.utils import disable_fsdp_ram_efficient_loading, enable_fsdp_ram_efficient_loading

    efficient = os.environ.get("FSDP_CPU_RAM_EFFICIENT_LOADING", "false").lower() in ("1", "true")
    disable_fsdp_ram_efficient_loading()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).to(default_device())
    finally:
        if efficient:
            enable_fsdp_ram_efficient_loading()
    model.generation_config.pad_token_id = model.config.pad_token_id
    return model


def load_for_training(path: str | Path):
    """Float32 master weights for a Trainer, loaded the way accelerate documents for FSDP: with
    ``fsdp_cpu_ram_efficient_loading`` (an accelerate config) a transformers version that
    implements it reads the checkpoint on rank 0 only and leaves meta tensors elsewhere until FSDP
    broadcasts rank 0's weights (the pinned 5.24 loads on every rank: configs/accelerate/README);
    placement on the device is left to the Trainer. Otherwise the same as :func:`load_model`."""
    from transformers.integrations.fsdp import is_fsdp_enabled

    if not is_fsdp_enabled():
        return load_model(path)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.generation_config.pad_token_id = model.config.pad_token_id
    return model


def inference_dtype(cfg: Config) -> torch.dtype:
    """Weights for generation and target caches: bf16 where the profile trains in bf16 on a GPU
    (the 8B teacher needs 16 GB instead of 32), float32 everywhere else."""
    return torch.bfloat16 if cfg.bf16 and torch.cuda.is_available() else torch.float32


def count_params_on_disk(model_dir: str | Path) -> int:
    """Parameter count from safetensors headers, without loading (an 8B model stays on disk)."""
    from safetensors import safe_open

    total = 0
    for file in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as fh:
            for name in fh.keys():
                total += math.prod(fh.get_slice(name).get_shape())
    return total


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def unwrap(model):
    """The Hugging Face model inside a DDP / DeepSpeed wrapper (FSDP2 shards in place)."""
    while hasattr(model, "module"):
        model = model.module
    return model


def _route_backbone(inner) -> None:
    """Let ``inner(..., scd_backbone_only=True)`` run the backbone alone.

    The call then still enters through the (possibly wrapped) model's own ``__call__``, so
    DDP synchronises gradients and FSDP gathers root parameters; calling ``inner.model``
    directly would bypass both, silently in DDP's case.
    """
    if getattr(inner, "_scd_routed", False):
        return
    plain = inner.forward

    def forward(*args, scd_backbone_only: bool = False, **kwargs):
        return inner.model(*args, **kwargs) if scd_backbone_only else plain(*args, **kwargs)

    inner.forward, inner._scd_routed = forward, True


def device_of(model) -> torch.device:
    return next(model.parameters()).device


def model_inputs(batch: dict, model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask, labels)`` of a collated batch, on the model's device."""
    dev = device_of(model)
    return tuple(batch[k].to(dev) for k in ("input_ids", "attention_mask", "labels"))


def answer_logits(model, input_ids, attention_mask, labels, vocab: int | None = None):
    """LM-head logits only where a label exists (shifted), and those labels.

    The LM head over the vocabulary dominates the cost of tiny models and the memory of a
    262k-vocabulary one: prompt positions never go through it. ``vocab``: keep the first
    ``vocab`` columns only (:func:`kd_vocab`).
    """
    inner = unwrap(model)
    _route_backbone(inner)
    hidden = model(input_ids=input_ids, attention_mask=attention_mask, scd_backbone_only=True).last_hidden_state
    targets = labels[:, 1:]
    mask = targets != -100
    picked = hidden[:, :-1][mask]
    logits = inner.lm_head(picked)
    softcap = getattr(inner.config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    if vocab is not None and logits.shape[-1] > vocab:
        logits = logits[:, :vocab]
    return logits, targets[mask], mask


def kd_vocab(tok) -> int:
    """The ids distillation compares teacher and student on: the tokenizer's, ``len(tok)``. Hub
    models pad their embedding matrix past the tokenizer (Qwen2.5 7B: 152,064 rows, 0.5B:
    151,936, one tokenizer of 151,665 ids); those rows are no token of the shared vocabulary, so
    the teacher's targets and the student's logits both stop at the tokenizer's last id. A model
    with exactly ``len(tok)`` rows (every profile's own pair) is unchanged."""
    return len(tok)


def per_sample_mean(token_nll: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Scatter flat per-token values back to samples: mean over each sample's answer tokens."""
    rows = torch.arange(mask.shape[0], device=mask.device).unsqueeze(1).expand_as(mask)[mask]
    sums = torch.zeros(mask.shape[0], dtype=token_nll.dtype, device=token_nll.device).index_add_(0, rows, token_nll)
    return sums / mask.sum(1).clamp(min=1)


def teacher_topk(model, batch: dict, k: int, temperature: float, vocab: int | None = None) -> tuple[torch.Tensor, ...]:
    """(top-k ids, top-k log-probs at ``temperature``, the exact log-mass outside the top-k
    ``[rows, 1]``, per-sample gold NLL at T=1) for a batch.

    The leftover is a log-sum-exp over the other logits, not ``log(1 - sum p)``: for a sharp
    teacher the top-k sum rounds to 1 in float32 and that difference to 0, whatever the tail holds.
    Rows follow the flattened answer positions of the batch, the order the student sees.
    ``vocab``: the ids the targets range over (:func:`kd_vocab`; None: every row of the LM head).
    """
    with torch.no_grad():
        logits, targets, mask = answer_logits(model, *model_inputs(batch, model), vocab=vocab)
        logits = logits.float()
        logp = torch.log_softmax(logits / temperature, dim=-1)
        top_logp, top_ids = logp.topk(min(k, logp.shape[-1]), dim=-1)
        rest_logp = leftover_logmass(logp, top_ids)
        nll = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    return top_ids.cpu(), top_logp.cpu(), rest_logp.cpu(), per_sample_mean(nll, mask).cpu()


def leftover_logmass(logp: torch.Tensor, top_ids: torch.Tensor) -> torch.Tensor:
    """log of the probability outside ``top_ids``, from the full log-probs ``[rows, V]``: -inf
    where the top-k is the whole vocabulary."""
    return torch.logsumexp(logp.scatter(-1, top_ids, float("-inf")), dim=-1, keepdim=True)
