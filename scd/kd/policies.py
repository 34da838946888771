"""SCD's probe: what a target policy with ``needs_probe`` (``scd.core.methods.Policy``) reads to
choose a checkpoint. The policies themselves, and their rules, are registered in ``scd.core.methods``.

SCD's selection (a *choice* the paper leaves open, documented here): candidates are all N
checkpoints, a checkpoint may be picked again, and the probe set is the first ``probe_size``
train items in file order (``scd.stages.distill.probe_records``). ``KL(p_best || p_c)`` is exact
(dense, computed once when the cache is built); ``KL(p_student || p_c)`` compares the current
student with the candidate's cached top-k targets (student collapsed onto the candidate's k+1
buckets, a lower bound of the dense KL). Both are means over the probe's answer tokens.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from scd.data.encoding import PadCollator, encode
from scd.kd.divergences import bucketize, forward_kl, teacher_buckets
from scd.train.models import answer_logits, device_of, kd_vocab, model_inputs

if TYPE_CHECKING:
    from scd.kd.targets import TeacherTargets


def student_probe_kl(student, tok, probe: list[dict], candidates: list[TeacherTargets], cfg,
                     temperature: float) -> list[float]:
    """Mean over probe answer tokens of KL(p_student || p_c) on each candidate's top-k buckets.

    One student forward serves every candidate: selection must stay a small share of training.
    """
    items, _ = encode(probe, tok, cfg)
    batch = PadCollator(tok.pad_token_id)(items)
    dev = device_of(student)
    was_training = student.training
    student.eval()
    with torch.no_grad():
        logits, _, _ = answer_logits(student, *model_inputs(batch, student), vocab=kd_vocab(tok))
        scores = []
        for targets in candidates:
            top_ids, top_logp, rest_logp = targets.lookup(batch["sample_ids"])
            s_b = bucketize(logits.float(), top_ids.to(dev), temperature)
            scores.append(float(forward_kl(s_b, teacher_buckets(top_logp.to(dev), rest_logp.to(dev))).mean()))
    student.train(was_training)
    return scores


def dense_probe_kl(p_logits: torch.Tensor, q_logits: torch.Tensor, temperature: float) -> float:
    """Exact mean token KL(p || q) from two dense ``[tokens, V]`` logit matrices."""
    p = torch.log_softmax(p_logits.float() / temperature, -1)
    q = torch.log_softmax(q_logits.float() / temperature, -1)
    return float((p.exp() * (p - q)).sum(-1).mean())


def probe_scores(selection_terms: str, kl_best: list[float], kl_student: list[float]) -> list[float]:
    """One score per candidate: ``KL(p_best‖p_c) + KL(p_student‖p_c)``, or one term alone
    (``selection_terms`` best | student, an ablation of SCD's criterion)."""
    use_best, use_student = selection_terms in ("both", "best"), selection_terms in ("both", "student")
    return [use_best * b + use_student * s for b, s in zip(kl_best, kl_student, strict=True)]
