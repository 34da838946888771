
import pytest
import torch
from hypothesis import given, settings, strategies as st

from scd.kd.divergences import (
    DIVERGENCES, answer_divergence, bucketize, forward_kl, get_divergence, jsd,
    reverse_kl, skew_forward_kl, skew_reverse_kl, teacher_buckets, total_variation,
)

NAMES = sorted(DIVERGENCES)
F64 = torch.float64


def per_sample_divergence(name, logits, ids, logp, mask, **kw):
    """The training loss's KD term (``answer_divergence``) on dense [B, L, ...] test tensors:
    answer positions gathered the way ``scd.train.models.answer_logits`` does."""
    mask = mask.bool()
    return answer_divergence(name, logits[mask], ids[mask], logp[mask], mask, **kw)


def logp(*probs):
    return torch.tensor(probs, dtype=F64).log()


def rand_logp(gen, shape, scale):
    return torch.log_softmax(torch.randn(shape, generator=gen, dtype=F64) * scale, -1)


# ---- dense references written from the definitions, on full-vocabulary probabilities ----
def _kl(p, q):
    return torch.where(p > 0, p * (p.log() - q.log()), torch.zeros_like(p)).sum(-1)


def dense(name, p, q, **kw):
    if name == "forward_kl":
        return _kl(p, q)
    if name == "reverse_kl":
        return _kl(q, p)
    if name == "skew_forward_kl":
        a = kw.get("alpha", 0.1)
        return _kl(p, a * p + (1 - a) * q)
    if name == "skew_reverse_kl":
        a = kw.get("alpha", 0.1)
        return _kl(q, (1 - a) * p + a * q)
    if name == "jsd":
        b = kw.get("beta", 0.5)
        m = b * p + (1 - b) * q
        return b * _kl(p, m) + (1 - b) * _kl(q, m)
    if name == "tv":
        return 0.5 * (p - q).abs().sum(-1)
    raise AssertionError(name)


seeds = st.integers(0, 2**31 - 1)
scales = st.floats(0.1, 6.0)


@pytest.mark.parametrize("name", NAMES)
@given(seed=seeds, scale=scales)
@settings(max_examples=25, deadline=None)
def test_zero_for_identical(name, seed, scale):
    x = rand_logp(torch.Generator().manual_seed(seed), (4, 7), scale)
    assert torch.allclose(get_divergence(name)(x, x), torch.zeros(4, dtype=F64), atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_zero_for_identical_with_zero_leftover(name):
    t = teacher_buckets(logp(0.25, 0.75))  # leftover exactly 0 -> -inf bucket
    assert torch.isneginf(t[-1])
    assert get_divergence(name)(t, t).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
@given(seed=seeds, scale=scales)
@settings(max_examples=25, deadline=None)
def test_non_negative(name, seed, scale):
    g = torch.Generator().manual_seed(seed)
    t, s = rand_logp(g, (8, 6), scale), rand_logp(g, (8, 6), scale)
    d = get_divergence(name)(t, s)
    assert d.shape == (8,) and torch.isfinite(d).all() and (d >= -1e-12).all()


@given(seed=seeds, scale=scales)
@settings(max_examples=25, deadline=None)
def test_symmetric_jsd_half_and_tv(seed, scale):
    g = torch.Generator().manual_seed(seed)
    t, s = rand_logp(g, (5, 9), scale), rand_logp(g, (5, 9), scale)
    assert torch.allclose(jsd(t, s, beta=0.5), jsd(s, t, beta=0.5), atol=1e-12)
    assert torch.allclose(total_variation(t, s), total_variation(s, t), atol=1e-12)
    # generalized JSD is not symmetric for beta != 0.5, but swapping roles flips beta
    assert torch.allclose(jsd(t, s, beta=0.2), jsd(s, t, beta=0.8), atol=1e-12)


P, Q = logp(0.5, 0.5), logp(0.9, 0.1)  # p = teacher, q = student


@pytest.mark.parametrize("fn, kw, expected", [
    # 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1)
    (forward_kl, {}, 0.5108256237659907),
    # 0.9 ln(0.9/0.5) + 0.1 ln(0.1/0.5)
    (reverse_kl, {}, 0.3680642071684971),
    # m = [0.7, 0.3]; 0.5 KL(p||m) + 0.5 KL(q||m)
    (jsd, {"beta": 0.5}, 0.10174922507919676),
    # m = 0.2 p + 0.8 q = [0.82, 0.18]; 0.2 KL(p||m) + 0.8 KL(q||m)
    (jsd, {"beta": 0.2}, 0.0726976719849464),
    # m = 0.1 p + 0.9 q = [0.86, 0.14]; KL(p||m)
    (skew_forward_kl, {"alpha": 0.1}, 0.36532069249376276),
    # m = 0.9 p + 0.1 q = [0.54, 0.46]; KL(q||m)
    (skew_reverse_kl, {"alpha": 0.1}, 0.30713743103988667),
    # 0.5 (|0.5-0.9| + |0.5-0.1|)
    (total_variation, {}, 0.4),
])
def test_closed_form(fn, kw, expected):
    assert fn(P, Q, **kw).item() == pytest.approx(expected, abs=1e-12)


@given(seed=seeds, scale=scales)
@settings(max_examples=25, deadline=None)
def test_skew_endpoints(seed, scale):
    g = torch.Generator().manual_seed(seed)
    t, s = rand_logp(g, (3, 5), scale), rand_logp(g, (3, 5), scale)
    assert torch.allclose(skew_forward_kl(t, s, alpha=0.0), forward_kl(t, s), atol=1e-12)
    assert torch.allclose(skew_reverse_kl(t, s, alpha=0.0), reverse_kl(t, s), atol=1e-12)
    zero = torch.zeros(3, dtype=F64)
    assert torch.allclose(skew_forward_kl(t, s, alpha=1.0), zero, atol=1e-12)
    assert torch.allclose(skew_reverse_kl(t, s, alpha=1.0), zero, atol=1e-12)


def test_jsd_limits():
    assert jsd(P, Q, beta=0.0).item() == 0.0 and jsd(P, Q, beta=1.0).item() == 0.0
    eps = 1e-5
    assert jsd(P, Q, beta=eps).item() / eps == pytest.approx(forward_kl(P, Q).item(), rel=1e-3)
    assert jsd(P, Q, beta=1 - eps).item() / eps == pytest.approx(reverse_kl(P, Q).item(), rel=1e-3)


def test_bad_params_and_names():
    with pytest.raises(ValueError, match="forward_kl.*tv"):
        get_divergence("kl")
    with pytest.raises(ValueError):
        per_sample_divergence("nope", torch.zeros(1, 1, 3), torch.zeros(1, 1, 1, dtype=torch.long),
                              torch.zeros(1, 1, 1), torch.ones(1, 1))
    with pytest.raises(ValueError):
        jsd(P, Q, beta=1.5)
    with pytest.raises(ValueError):
        bucketize(torch.zeros(3), torch.zeros(1, dtype=torch.long), temperature=0.0)


def _sparse_teacher(t_logits, k, temperature):
    t_full = torch.log_softmax(t_logits / temperature, -1)
    vals, ids = t_full.topk(k, dim=-1)
    return t_full, ids, vals


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("temperature", [1.0, 2.0])
@given(seed=seeds, scale=scales)
@settings(max_examples=15, deadline=None)
def test_full_k_equals_dense(name, temperature, seed, scale):
    g = torch.Generator().manual_seed(seed)
    B, L, V = 2, 3, 11
    s_logits = torch.randn(B, L, V, generator=g, dtype=F64) * scale
    t_full, ids, vals = _sparse_teacher(torch.randn(B, L, V, generator=g, dtype=F64) * scale,
                                        V, temperature)
    got = get_divergence(name)(teacher_buckets(vals), bucketize(s_logits, ids, temperature))
    want = dense(name, t_full.exp(), torch.softmax(s_logits / temperature, -1))
    assert torch.allclose(got, want, atol=1e-10), (got - want).abs().max()


@pytest.mark.parametrize("name", NAMES)
@given(seed=seeds, scale=scales, k=st.integers(1, 10))
@settings(max_examples=20, deadline=None)
def test_bucketed_is_lower_bound(name, seed, scale, k):
    """Data-processing inequality: merging outcomes can only lose divergence."""
    g = torch.Generator().manual_seed(seed)
    s_logits = torch.randn(4, 12, generator=g, dtype=F64) * scale
    t_full, ids, vals = _sparse_teacher(torch.randn(4, 12, generator=g, dtype=F64) * scale, k, 1.0)
    got = get_divergence(name)(teacher_buckets(vals), bucketize(s_logits, ids))
    want = dense(name, t_full.exp(), torch.softmax(s_logits, -1))
    assert (got <= want + 1e-10).all()


def test_buckets_are_distributions():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 20, generator=g) * 4
    ids = torch.randperm(20, generator=g)[:5].expand(3, 5)
    assert torch.allclose(bucketize(logits, ids).exp().sum(-1), torch.ones(3), atol=1e-6)
    # bf16 logits are upcast, not summed in 8 bits
    assert bucketize(logits.bfloat16(), ids).dtype == torch.float32
    full = bucketize(logits, torch.arange(20).expand(3, 20))  # leftover rounds to ~0
    assert torch.isfinite(full).all()


def _batch(seed, B=3, L=5, V=9, K=4):
    g = torch.Generator().manual_seed(seed)
    s_logits = torch.randn(B, L, V, generator=g, dtype=F64)
    _, ids, vals = _sparse_teacher(torch.randn(B, L, V, generator=g, dtype=F64) * 2, K, 1.0)
    mask = torch.tensor([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    return s_logits, ids, vals, mask


@pytest.mark.parametrize("name", NAMES)
def test_masked_mean_matches_manual_and_ignores_padding(name):
    s_logits, ids, vals, mask = _batch(1)
    s_logits.requires_grad_(True)
    out = per_sample_divergence(name, s_logits, ids, vals, mask.long(), temperature=1.5)
    tok = get_divergence(name)(teacher_buckets(vals), bucketize(s_logits, ids, 1.5))
    for b in range(2):
        assert out[b].item() == pytest.approx(tok[b][mask[b]].mean().item(), abs=1e-12)
    assert out[2].item() == 0.0  # no answer positions -> 0

    out.sum().backward()
    assert torch.isfinite(s_logits.grad).all()
    assert (s_logits.grad[~mask] == 0).all() and (s_logits.grad[mask] != 0).any()

    garbage = s_logits.detach().clone()
    garbage[~mask] = torch.randn_like(garbage[~mask]) * 100
    garbage[0, 2, 0] = float("nan")
    vals2 = vals.clone()
    vals2[~mask] = float("nan")
    garbage.requires_grad_(True)
    again = per_sample_divergence(name, garbage, ids, vals2, mask, temperature=1.5)
    assert torch.equal(again.detach(), out.detach())
    again.sum().backward()  # padding garbage must not leak NaN into the gradient either
    assert torch.equal(garbage.grad, s_logits.grad)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("k", [2, 6])
def test_gradients_finite_with_zero_teacher_leftover(name, k):
    V = 6
    t_full = torch.log_softmax(torch.randn(2, 3, V, generator=torch.Generator().manual_seed(k)), -1)
    if k < V:  # teacher puts literally all its mass on k tokens
        t_full[..., k:] = -float("inf")
        t_full[..., :k] = torch.log_softmax(t_full[..., :k], -1)
    # nudge up so the stored top-k sums to >= 1 in float32 and the leftover is exactly 0
    vals, ids = t_full[..., :k] + 1e-5, torch.arange(k).expand(2, 3, k)
    assert torch.isneginf(teacher_buckets(vals)[..., -1]).all()
    s_logits = torch.randn(2, 3, V, requires_grad=True)
    out = per_sample_divergence(name, s_logits, ids, vals, torch.ones(2, 3))
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(s_logits.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck(name):
    s_logits, ids, vals, mask = _batch(2, B=2, L=2, V=5, K=2)
    mask = torch.tensor([[1, 0], [1, 1]])
    s_logits.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: per_sample_divergence(name, x, ids, vals, mask, temperature=0.7), (s_logits,))


def test_registry_names_every_divergence_and_its_config_fields():
    import dataclasses
    import inspect

    from scd.core import methods
    from scd.core.config import Config

    assert set(methods.DIVERGENCES) == set(DIVERGENCES)
    fields = {f.name for f in dataclasses.fields(Config)}
    for name, params in methods.DIVERGENCES.items():
        assert set(params) <= set(inspect.signature(DIVERGENCES[name]).parameters), name
        assert set(params.values()) <= fields, name


def _buckets64(logp, ids):
    """Exact bucketed distribution in float64: the k ids and one bucket for the rest."""
    rest = torch.logsumexp(logp.scatter(-1, ids, float("-inf")), -1, keepdim=True)
    return torch.cat([logp.gather(-1, ids), rest], -1).exp()


@pytest.mark.parametrize("name", NAMES)
def test_exact_leftover_matches_dense_for_a_sharp_teacher(name):
    """A float32 teacher whose top-k holds all but ~1e-9 of the mass: ``1 - sum p`` rounds to 0,
    the exact leftover (``leftover_logmass``) does not, and every divergence then matches the
    dense float64 computation on the same buckets."""
    from scd.train.models import leftover_logmass

    g = torch.Generator().manual_seed(0)
    V, k = 300, 8
    t_logits = torch.randn(32, V, generator=g)
    t_logits[:, :k] += 24.0
    s_logits = torch.randn(32, V, generator=g)
    logp = torch.log_softmax(t_logits, -1)
    vals, ids = logp.topk(k, -1)
    exact = leftover_logmass(logp, ids)
    assert torch.isneginf(teacher_buckets(vals)[..., -1]).any()  # the old leftover loses the tail
    assert torch.isfinite(exact).all() and (exact < -15).all()
    want = dense(name, _buckets64(torch.log_softmax(t_logits.double(), -1), ids),
                 _buckets64(torch.log_softmax(s_logits.double(), -1), ids))
    got = get_divergence(name)(teacher_buckets(vals, exact), bucketize(s_logits, ids))
    assert torch.allclose(got.double(), want, rtol=1e-4, atol=1e-5), (got.double() - want).abs().max()
    if name == "reverse_kl":  # student-first, as SCD's probe: the floor at ~-87 weighs in
        old = get_divergence(name)(teacher_buckets(vals), bucketize(s_logits, ids))
        assert (old.double() - want).abs().max() > 1.0
