"""The one registry of models: every name, order, label and kind of a model (SFT baseline,
distillation method, the train reference) in stages, tables, figures and notebooks comes from here.

A method is a target policy × a weighting (``td``, ``td_aw``, …); the two SFT models are the
baselines. **A new target policy is one ``register(Policy(...))`` call** (its name, label, whether
it reads SCD's probe, and its rule; the rules are small pure functions, so they live here, below
the config that validates method names). Its methods, with and without AW, then exist for
configs, stages, tables and the CLI, and no other code tests a policy's name to decide how to
train. A policy registered at run time (your code, a test) works the same way, but only those
registered in this module are in ``METHODS``, the default of every run.
Adding a KD divergence means adding it to ``DIVERGENCES`` (and its function in ``scd.kd.divergences``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

# a policy's rule: (stage, best, scores, n) -> the index of the teacher checkpoint followed
Rule = Callable[[int, int, "list[float] | None", int], int]


@dataclass(frozen=True)
class Policy:
    """A target policy: which of the teacher's ``n`` checkpoints the student follows in each stage.

    ``rule(stage, best, scores, n)`` gets the 0-based stage, the teacher's best checkpoint, the
    candidates' probe scores (None unless ``needs_probe``) and the number of checkpoints.
    ``needs_probe``: the stage first runs SCD's probe (``scd.kd.policies``; a student forward per
    stage) for one score per checkpoint; policies that do not need it skip that cost."""

    name: str
    label: str
    needs_probe: bool
    rule: Rule = field(repr=False)

    def choose(self, stage: int, best: int, scores: list[float] | None, n: int) -> int:
        """The checkpoint index followed in ``stage``, checked to be one of the ``n``."""
        if self.needs_probe and (scores is None or len(scores) != n):
            raise ValueError(f"policy {self.name} reads the probe: it needs {n} candidate scores, got "
                             f"{None if scores is None else len(scores)}")
        chosen = self.rule(stage, best, scores, n)
        if not 0 <= chosen < n:
            raise ValueError(f"policy {self.name} chose checkpoint {chosen} at stage {stage}; there are {n}")
        return chosen


@dataclass(frozen=True)
class Weighting:
    name: str    # what scd.kd.trainer.sample_weights reads
    suffix: str  # appended to the policy's name to make the method's
    label: str


@dataclass(frozen=True)
class Method:
    policy: Policy
    weighting: str  # a Weighting's name

    @property
    def name(self) -> str:
        return self.policy.name + _WEIGHTINGS[self.weighting].suffix

    @property
    def label(self) -> str:
        return self.policy.label + _WEIGHTINGS[self.weighting].label


_WEIGHTINGS = {w.name: w for w in (Weighting("fixed", "", ""), Weighting("aw", "_aw", "+AW"))}
WEIGHTINGS = tuple(_WEIGHTINGS)
_SFT_ROLES = {"teacher_sft": "teacher", "student_sft": "student"}  # baseline -> the SFT stage's role
BASELINES = tuple(_SFT_ROLES)
REFERENCE = "train_reference"  # not an LM: what the train split alone gives (scd.scoring.reference); Table 1's last row
_POLICIES: dict[str, Policy] = {}  # in registration order: the order of methods in every table


def method_table() -> dict[str, Method]:
    """Every method by name, in table order (each weighting, then each policy): names are looked
    up here, never split."""
    return {m.name: m for w in WEIGHTINGS for p in _POLICIES.values() for m in (Method(p, w),)}


def register(policy: Policy) -> Policy:
    """Add a target policy; its methods' names must be new (not a method, baseline or the reference)."""
    names = {Method(policy, w).name for w in WEIGHTINGS}
    taken = sorted(names & (set(method_table()) | set(BASELINES) | {REFERENCE}))
    if not policy.name or policy.name != policy.name.lower() or policy.name in _POLICIES or taken:
        raise ValueError(f"cannot register policy {policy.name!r}: names must be new and lower case "
                         f"(taken: {taken or policy.name!r}; policies {list(_POLICIES)})")
    _POLICIES[policy.name] = policy
    return policy


def unregister(name: str) -> None:
    """Remove a policy registered at run time (a test's toy policy)."""
    get_policy(name)
    del _POLICIES[name]


def get_policy(name: str) -> Policy:
    try:
        return _POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown target policy {name!r}; known policies: {list(_POLICIES)}") from None


def parse_method(name: str) -> Method:
    table = method_table()
    try:
        return table[name.lower()]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; expected one of {list(table)} "
                         f"(a policy of {list(_POLICIES)}, +_aw for AW)") from None


def method_names() -> tuple[str, ...]:
    """Every registered method's name, run-time registrations included."""
    return tuple(method_table())


def model_names() -> tuple[str, ...]:
    """The order of every table row and figure bar (the reference comes last where present)."""
    return BASELINES + method_names()


def is_baseline(name: str) -> bool:
    return name in _SFT_ROLES


def is_method(name: str) -> bool:
    return name in method_table()


def kind_of(name: str) -> str:
    """``baseline`` (an SFT model), ``method`` (a distilled student) or ``reference`` (not an LM)."""
    if is_baseline(name):
        return "baseline"
    if is_method(name):
        return "method"
    if name == REFERENCE:
        return "reference"
    raise ValueError(f"unknown model {name!r}; expected one of {list(model_names() + (REFERENCE,))}")


def sft_role(name: str) -> str:
    """The SFT stage's role (teacher or student) behind a baseline model."""
    if not is_baseline(name):
        raise ValueError(f"{name!r} is a {kind_of(name)}, not an SFT baseline of {list(BASELINES)}")
    return _SFT_ROLES[name]


# ------------------------------------------------------------------ the built-in policies
def _best(stage: int, best: int, scores, n: int) -> int:
    return best


def _in_order(stage: int, best: int, scores, n: int) -> int:
    return stage


def _lowest_score(stage: int, best: int, scores: list[float], n: int) -> int:
    return min(range(n), key=lambda c: (scores[c], c))  # ties: the earlier checkpoint


register(Policy("td", "TD", False, _best))               # standard KD on the best checkpoint
register(Policy("cd", "CD", False, _in_order))           # checkpoint order: stage s follows checkpoint s
register(Policy("scd", "SCD", True, _lowest_score))      # SCD: argmin_c KL(p_best‖p_c) + KL(p_student‖p_c)

POLICIES = tuple(_POLICIES)
METHODS = method_names()  # the built-in methods: the default of every run
MODELS = model_names()

# KD divergence -> {keyword of its function in scd.kd.divergences: the config field that sets it}
DIVERGENCES: dict[str, dict[str, str]] = {
    "forward_kl": {}, "reverse_kl": {}, "tv": {},
    "skew_forward_kl": {"alpha": "skew_alpha"}, "skew_reverse_kl": {"alpha": "skew_alpha"},
    "jsd": {"beta": "jsd_beta"},
}


def in_order(models) -> list[str]:
    """``models`` in the registry's order (unknown names last, as given)."""
    known, present = model_names(), list(dict.fromkeys(models))
    return [m for m in known if m in present] + [m for m in present if m not in known + (REFERENCE,)] + \
        [REFERENCE] * (REFERENCE in present)
