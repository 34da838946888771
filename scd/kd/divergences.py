"""Token-level divergences between a teacher stored as sparse top-k log-probs and a student.

The teacher keeps only its top-k ids per position; the mass outside them is folded into one
"leftover" bucket so the target is still a distribution over k+1 outcomes.  The student's
full-vocabulary distribution is collapsed onto the same buckets, which makes every divergence
a function of two (k+1)-vectors of log-probs.  Collapsing is a coarse-graining, so by the
data-processing inequality each bucketed f-divergence is a lower bound on the dense one and
equals it when k = V.

Conventions:
* ``t_logp`` / ``s_logp`` are bucket log-probs of teacher / student; divergences reduce the
  last dim and broadcast over the rest.
* ``0 * log 0 = 0``: ``-inf`` log-probs are replaced by the dtype's ``log(tiny)`` floor before
  use, so zero-mass buckets add ~0 instead of NaN in values or gradients.  A consequence: a
  divergence that is truly infinite (student mass where the teacher has exactly none, in
  reverse KL) becomes a large finite penalty, ~``mass * 87`` nats in float32.
* Temperature divides the student logits in :func:`bucketize`; the teacher's stored top-k
  log-probs must already have been computed at the same temperature.  No ``T**2`` rescaling
  is applied; that is the caller's choice.
* Low-precision inputs (fp16/bf16) are upcast to float32 because sums of probabilities near 1
  are meaningless in 8-10 bit mantissas.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

__all__ = [
    "bucketize", "teacher_buckets", "forward_kl", "reverse_kl", "skew_forward_kl",
    "skew_reverse_kl", "jsd", "total_variation", "DIVERGENCES", "get_divergence",
    "answer_divergence",
]


def _upcast(x: Tensor) -> Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _log_floor(x: Tensor) -> float:
    return math.log(torch.finfo(x.dtype).tiny)


def _finite(x: Tensor) -> Tensor:
    """Replace -inf by log(tiny): keeps gradients of finite entries (unlike clamp) and avoids
    0 * inf = NaN in both the forward value and the backward pass."""
    return torch.where(torch.isneginf(x), torch.full_like(x, _log_floor(x)), x)


def bucketize(student_logits: Tensor, topk_ids: Tensor, temperature: float = 1.0) -> Tensor:
    """Student log-probs on the teacher's k ids plus a leftover bucket ``log(1 - sum p)``.

    The leftover is clamped at ``finfo.tiny`` before the log, so when the top-k sum rounds to
    (or past) 1 -- always the case for k = V -- it is a finite floor with zero gradient rather
    than NaN.  (``log1p`` would only improve the *relative* accuracy of a near-zero log, which
    the KL terms never need.)
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = _upcast(student_logits)
    if temperature != 1.0:
        z = z / temperature
    top = z.gather(-1, topk_ids) - torch.logsumexp(z, dim=-1, keepdim=True)
    rest = (1.0 - top.exp().sum(-1, keepdim=True)).clamp_min(torch.finfo(top.dtype).tiny)
    return torch.cat([top, rest.log()], dim=-1)


def teacher_buckets(topk_logp: Tensor, rest_logp: Tensor | None = None) -> Tensor:
    """Append the teacher's leftover bucket: ``rest_logp``, the exact log-mass outside the top-k
    (``scd.train.models.teacher_topk``, stored in the cache), or else ``log(max(1 - sum p, 0))``, which
    rounds to -inf for a sharp teacher; -inf is an exact zero downstream (see module docstring)."""
    t = _upcast(topk_logp)
    if rest_logp is None:
        rest_logp = (1.0 - t.exp().sum(-1, keepdim=True)).clamp_min(0.0).log()
    return torch.cat([t, _upcast(rest_logp).reshape(*t.shape[:-1], 1)], dim=-1)


def _kl(p_logp: Tensor, q_logp: Tensor) -> Tensor:
    p_logp, q_logp = _finite(p_logp), _finite(q_logp)
    return (p_logp.exp() * (p_logp - q_logp)).sum(-1)


def _mix(a_logp: Tensor, b_logp: Tensor, w: float) -> Tensor:
    """log(w * e^a + (1 - w) * e^b) without leaving log space; endpoints short-circuit so that
    log(0) never enters the graph."""
    if w == 0.0:
        return b_logp
    if w == 1.0:
        return a_logp
    return torch.logaddexp(_finite(a_logp) + math.log(w), _finite(b_logp) + math.log1p(-w))


def _check_unit(name: str, v: float) -> None:
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {v}")


def forward_kl(t_logp: Tensor, s_logp: Tensor) -> Tensor:
    """KL(p_t || p_s): mode-covering; penalises student mass missing where the teacher has it."""
    return _kl(t_logp, s_logp)


def reverse_kl(t_logp: Tensor, s_logp: Tensor) -> Tensor:
    """KL(p_s || p_t): mode-seeking; penalises student mass where the teacher has little."""
    return _kl(s_logp, t_logp)


def skew_forward_kl(t_logp: Tensor, s_logp: Tensor, alpha: float = 0.1) -> Tensor:
    """DistiLLM skew KL: KL(p_t || alpha p_t + (1-alpha) p_s).  The mixture keeps the
    denominator >= alpha p_t, bounding the loss by -log(alpha); alpha = 0 is forward KL."""
    _check_unit("alpha", alpha)
    return _kl(t_logp, _mix(t_logp, s_logp, alpha))


def skew_reverse_kl(t_logp: Tensor, s_logp: Tensor, alpha: float = 0.1) -> Tensor:
    """DistiLLM skew reverse KL: KL(p_s || (1-alpha) p_t + alpha p_s).  Here alpha weights the
    *student* in the mixture (DistiLLM's convention), so alpha = 0 is reverse KL and the
    teacher's exact zeros no longer blow the loss up."""
    _check_unit("alpha", alpha)
    return _kl(s_logp, _mix(s_logp, t_logp, alpha))


def jsd(t_logp: Tensor, s_logp: Tensor, beta: float = 0.5) -> Tensor:
    """GKD generalized JSD: beta KL(p_t||m) + (1-beta) KL(p_s||m), m = beta p_t + (1-beta) p_s.

    beta = 0.5 is the symmetric JSD.  At exactly beta = 0 or 1 it is identically 0 (m equals
    the one distribution that still has weight).  Near the ends it is first-order in the small
    weight: jsd/beta -> KL(p_t||p_s) as beta -> 0 and jsd/(1-beta) -> KL(p_s||p_t) as beta -> 1,
    i.e. scaled forward / reverse KL.
    """
    _check_unit("beta", beta)
    m = _mix(t_logp, s_logp, beta)
    return beta * _kl(t_logp, m) + (1.0 - beta) * _kl(s_logp, m)


def total_variation(t_logp: Tensor, s_logp: Tensor) -> Tensor:
    """0.5 * sum |p_t - p_s|: bounded in [0, 1], symmetric, insensitive to tiny probabilities."""
    return 0.5 * (_finite(t_logp).exp() - _finite(s_logp).exp()).abs().sum(-1)


DIVERGENCES: dict[str, Callable[..., Tensor]] = {
    "forward_kl": forward_kl,
    "reverse_kl": reverse_kl,
    "skew_forward_kl": skew_forward_kl,
    "skew_reverse_kl": skew_reverse_kl,
    "jsd": jsd,
    "tv": total_variation,
}


def get_divergence(name: str) -> Callable[..., Tensor]:
    try:
        return DIVERGENCES[name]
    except KeyError:
        raise ValueError(
            f"unknown divergence {name!r}; valid names: {', '.join(sorted(DIVERGENCES))}"
        ) from None


def answer_divergence(name: str, logits: Tensor, topk_ids: Tensor, topk_logp: Tensor, mask: Tensor,
                      temperature: float = 1.0, rest_logp: Tensor | None = None, **params) -> Tensor:
    """Mean divergence over each sample's answer positions -> ``[B]``: the KD term of the
    training loss (``scd.kd.trainer.DistillTrainer``).

    ``logits``, ``topk_ids`` and ``topk_logp`` hold one row per answer position, in the row-major
    order of ``mask`` [B, L] (what ``scd.train.models.answer_logits`` returns), so padding never
    reaches the value or the gradient. A sample with no answer positions gets 0.
    """
    d = get_divergence(name)(teacher_buckets(topk_logp, rest_logp), bucketize(logits, topk_ids, temperature), **params)
    rows = mask.nonzero(as_tuple=True)[0]
    total = d.new_zeros(mask.shape[0]).index_add(0, rows, d)
    return total / mask.sum(-1).clamp_min(1).to(d.dtype)
