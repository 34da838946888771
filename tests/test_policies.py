"""A target policy is one registered object: a toy one runs through the real distillation stage,
the probe runs only for policies that need it, and names and model kinds come from the registry."""
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import torch

from scd.core import methods
from scd.core.config import get_config
from scd.core.methods import (BASELINES, METHODS, MODELS, REFERENCE, Method, Policy, get_policy, in_order, is_baseline,
                              kind_of, method_names, parse_method, register, sft_role, unregister)
from scd.stages import distill
from scd.stages.base_sft import sft_stage


@contextmanager
def registered(*policies: Policy):
    """``policies`` registered for the block only, so no test sees another's toy policy."""
    done = []
    try:
        for p in policies:
            done.append(register(p))
        yield policies
    finally:
        for p in done:
            unregister(p.name)


def last_checkpoint(stage, best, scores, n):
    return n - 1


@pytest.fixture
def last():
    with registered(Policy("last", "Last", needs_probe=False, rule=last_checkpoint)) as (policy,):
        yield policy
    assert "last" not in method_names()


def test_a_toy_policy_runs_through_the_distillation_stage(smoke_cfg, last):
    cfg = get_config("smoke", methods=("last",), tasks=("crade",))
    assert cfg.models == BASELINES + ("last",)
    teacher = sft_stage(cfg, "teacher", "crade", 0)
    run = distill.distill_stage(cfg, "last", "crade", 0)
    n = len(teacher.trajectory)
    assert run.method == "last" and len(run.stages) == cfg.n_checkpoints == n
    assert [s.checkpoint_index for s in run.stages] == [n - 1] * n
    assert [s.checkpoint for s in run.stages] == [teacher.trajectory[-1].checkpoint] * n
    assert all(s.candidate_scores is None for s in run.stages)  # no probe: nothing to score


def plan(monkeypatch, method: str, kl_student: list[float]):
    """``stage_plan`` of stage 1 over three stub checkpoints, with the student probe replaced by
    ``kl_student`` (counting its calls)."""
    calls = []

    def fake_probe(*args, **kwargs):
        calls.append(args)
        return kl_student

    monkeypatch.setattr(distill, "student_probe_kl", fake_probe)
    targets = [SimpleNamespace(sample_ids=["a", "b"])] * 3
    chosen, scores, weights = distill.stage_plan(get_config("smoke"), parse_method(method), 1, torch.nn.Linear(1, 1),
                                                 None, [], targets, [0.0, 0.2, 0.4], 0, {})
    return chosen, scores, weights, len(calls)


def test_needs_probe_decides_whether_candidates_are_scored(monkeypatch, last):
    assert plan(monkeypatch, "td", [0.5, 0.1, 0.3]) == (0, None, {"a": 0.5, "b": 0.5}, 0)
    assert plan(monkeypatch, "cd", [0.5, 0.1, 0.3])[:2] == (1, None)
    assert plan(monkeypatch, "last", [0.5, 0.1, 0.3])[:2] == (2, None)
    chosen, scores, _, calls = plan(monkeypatch, "scd", [0.5, 0.1, 0.3])
    assert (chosen, calls) == (1, 1) and scores == pytest.approx([0.5, 0.3, 0.7])
    def highest(stage, best, scores, n):
        return max(range(n), key=scores.__getitem__)

    with registered(Policy("worst", "Worst", needs_probe=True, rule=highest)):
        chosen, scores, _, calls = plan(monkeypatch, "worst", [0.5, 0.1, 0.3])
    assert (chosen, calls) == (2, 1) and scores == pytest.approx([0.5, 0.3, 0.7])


def test_a_policy_is_checked_where_it_chooses():
    with pytest.raises(ValueError, match="needs 3 candidate scores, got None"):
        get_policy("scd").choose(0, 0, None, 3)
    with registered(Policy("beyond", "Beyond", False, lambda stage, best, scores, n: n)):
        with pytest.raises(ValueError, match="beyond chose checkpoint 3 at stage 0; there are 3"):
            get_policy("beyond").choose(0, 0, None, 3)


def test_an_unknown_policy_or_method_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown target policy 'kd'; known policies: \['td', 'cd', 'scd'\]"):
        get_policy("kd")
    with pytest.raises(ValueError, match=r"unknown method 'scd_xx'; expected one of \['td', 'cd', 'scd', 'td_aw'"):
        parse_method("scd_xx")
    with pytest.raises(ValueError, match="unknown target policy 'last'"):
        unregister("last")
    with pytest.raises(ValueError, match="expected distinct methods of"):
        get_config("smoke", methods=("last",))


def test_a_policy_cannot_take_a_name_in_use():
    for name in ("td", "td_aw", "teacher_sft", REFERENCE, "Last", ""):
        with pytest.raises(ValueError, match="cannot register policy"):
            register(Policy(name, name, False, last_checkpoint))
    assert method_names() == METHODS


def test_names_round_trip_and_keep_their_order():
    assert METHODS == ("td", "cd", "scd", "td_aw", "cd_aw", "scd_aw")
    assert MODELS == ("teacher_sft", "student_sft") + METHODS
    assert methods.POLICIES == ("td", "cd", "scd") and methods.WEIGHTINGS == ("fixed", "aw")
    for name in METHODS:
        assert parse_method(name).name == name and parse_method(name.upper()) == parse_method(name)
    assert parse_method("scd_aw") == Method(get_policy("scd"), "aw") and parse_method("scd_aw").label == "SCD+AW"
    assert parse_method("td").weighting == "fixed" and not parse_method("td").policy.needs_probe
    # a policy name holding "_" is looked up, never split
    with registered(Policy("last_ckpt", "Last", False, last_checkpoint)):
        assert method_names() == METHODS[:3] + ("last_ckpt",) + METHODS[3:] + ("last_ckpt_aw",)
        assert parse_method("last_ckpt_aw") == Method(get_policy("last_ckpt"), "aw")
        assert [parse_method(m).name for m in method_names()] == list(method_names())
    assert method_names() == METHODS


def test_model_kinds_come_from_the_registry(last):
    assert [kind_of(m) for m in ("teacher_sft", "student_sft", "scd_aw", "last", REFERENCE)] == \
        ["baseline", "baseline", "method", "method", "reference"]
    assert [sft_role(m) for m in BASELINES] == ["teacher", "student"]
    assert is_baseline("student_sft") and not is_baseline("last") and not is_baseline("my_sft")
    with pytest.raises(ValueError, match="unknown model 'my_sft'"):
        kind_of("my_sft")
    with pytest.raises(ValueError, match="'scd' is a method, not an SFT baseline"):
        sft_role("scd")
    assert in_order([REFERENCE, "last", "other", "scd_aw", "td", "teacher_sft"]) == \
        ["teacher_sft", "td", "last", "scd_aw", "other", REFERENCE]
