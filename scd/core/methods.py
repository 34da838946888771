"""The one list of methods: every order, name and label of a model in tables, figures and notebooks
comes from here. A method is a target policy × a weighting; the two SFT models are the baselines.
Adding a policy means adding it to ``POLICIES`` (and its selection rule in ``scd.kd.trainer``);
adding a KD divergence means adding it to ``DIVERGENCES`` (and its function in ``scd.kd.divergences``)."""
from __future__ import annotations

from dataclasses import dataclass

POLICIES = ("td", "cd", "scd")  # standard KD on the best checkpoint, checkpoint order, SCD selection
WEIGHTINGS = ("fixed", "aw")
BASELINES = ("teacher_sft", "student_sft")
METHODS = tuple(p + ("_aw" if w == "aw" else "") for w in WEIGHTINGS for p in POLICIES)
MODELS = BASELINES + METHODS  # the order of every table row and figure bar
REFERENCE = "train_reference"  # not an LM: what the train split alone gives (scd.scoring.reference); Table 1's last row

# KD divergence -> {keyword of its function in scd.kd.divergences: the config field that sets it}
DIVERGENCES: dict[str, dict[str, str]] = {
    "forward_kl": {}, "reverse_kl": {}, "tv": {},
    "skew_forward_kl": {"alpha": "skew_alpha"}, "skew_reverse_kl": {"alpha": "skew_alpha"},
    "jsd": {"beta": "jsd_beta"},
}


@dataclass(frozen=True)
class Method:
    policy: str
    weighting: str

    @property
    def name(self) -> str:
        return self.policy + ("_aw" if self.weighting == "aw" else "")


def parse_method(name: str) -> Method:
    policy, _, suffix = name.lower().partition("_")
    if policy not in POLICIES or suffix not in ("", "aw"):
        raise ValueError(f"unknown method {name!r}; expected one of {list(METHODS)}")
    return Method(policy, "aw" if suffix else "fixed")


def in_order(models) -> list[str]:
    """``models`` in the registry's order (unknown names last, as given)."""
    present = list(dict.fromkeys(models))
    return [m for m in MODELS if m in present] + [m for m in present if m not in MODELS + (REFERENCE,)] + \
        [REFERENCE] * (REFERENCE in present)
