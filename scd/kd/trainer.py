"""One distillation trainer; a *target policy* picks the teacher checkpoint per stage and a
*weighting* mixes KD and gold CE per sample: ``loss_i = w_i·KD_i + (1 − w_i)·CE_i``.

Methods are policy × weighting: ``td``, ``cd``, ``scd`` and the same with ``_aw`` (registered in
``scd.core.methods``; SCD's probe is in ``scd.kd.policies``).
Training runs in N stages of T epochs; each stage builds a fresh ``Trainer``, so the optimiser
state and the cosine schedule restart at every stage, and total steps are equal across methods.
"""
from __future__ import annotations

import torch

from typing import TYPE_CHECKING

from scd.kd.divergences import answer_divergence, get_divergence
from scd.core.methods import Method
from scd.train.models import answer_logits, per_sample_mean, teacher_topk
from scd.train.training import MeanLossTrainer, check_finite

if TYPE_CHECKING:
    from scd.kd.targets import TeacherTargets



# ------------------------------------------------------------------ weightings
def adaptive_weights(anchor: dict[str, float], target_loss: dict[str, float]) -> dict[str, float]:
    """AW: ``w_i = sigmoid(log(L_anchor / L_c)) = L_anchor / (L_anchor + L_c)``.

    Where the SFT student was already better than the target checkpoint (small anchor loss),
    w is small and the gold label dominates; where the teacher is better, KD dominates.
    """
    missing = sorted(set(target_loss) - set(anchor))
    if missing:
        raise ValueError(f"AW anchor has no loss for samples {missing[:3]} (student SFT ran on other data?)")
    return {i: anchor[i] / (anchor[i] + target_loss[i]) for i in target_loss}


def sample_weights(method: Method, alpha: float, anchor: dict[str, float] | None,
                   target: TeacherTargets) -> dict[str, float]:
    if method.weighting == "fixed":
        return {i: alpha for i in target.sample_ids}
    return adaptive_weights(anchor, target.losses())


# ------------------------------------------------------------------ the trainer
class DistillTrainer(MeanLossTrainer):
    """KD on answer tokens against cached (or online) top-k teacher targets, weighted per sample.

    The loss is the mean of ``loss_i`` over the samples of the optimiser step's global batch,
    however it is split into micro-steps and processes (``num_items_in_batch``: its samples)."""

    loss_is_scaled_for_ga = True  # normalised over the whole step below (or a single micro-step)

    def items_in(self, batch: dict) -> int:
        return int(batch["labels"].shape[0])

    def __init__(self, *args, targets: TeacherTargets | None = None, teacher=None, weights: dict[str, float],
                 divergence: str = "forward_kl", temperature: float = 1.0, top_k: int = 32,
                 divergence_params: dict | None = None, vocab: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if (targets is None) == (teacher is None):
            raise ValueError("give exactly one of targets (cached) or teacher (online)")
        self.targets, self.teacher, self.weights = targets, teacher, weights
        get_divergence(divergence)  # fails early, naming the valid ones
        self.divergence, self.div_params = divergence, divergence_params or {}
        self.temperature, self.top_k = temperature, top_k
        self.vocab = vocab  # the shared tokenizer's ids (scd.train.models.kd_vocab); None: every LM-head row
        self._parts: dict[str, list[torch.Tensor]] = {"kd": [], "ce": [], "w_mean": []}

    def teacher_rows(self, inputs: dict, sample_ids: list[str]) -> tuple[torch.Tensor, ...]:
        if self.targets is not None:
            return self.targets.lookup(sample_ids)
        ids, logp, rest, _ = teacher_topk(self.teacher, inputs, self.top_k, self.temperature, self.vocab)
        return ids, logp, rest

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        sample_ids = inputs.pop("sample_ids")
        logits, gold, mask = answer_logits(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"],
                                           self.vocab)
        top_ids, top_logp, rest_logp = self.teacher_rows(inputs, sample_ids)
        if top_ids.shape[0] != logits.shape[0]:
            raise ValueError(f"teacher targets have {top_ids.shape[0]} answer positions, the batch has "
                             f"{logits.shape[0]} (samples {sample_ids[:3]}): cache built with another max_length?")
        dev = logits.device
        kd = answer_divergence(self.divergence, logits.float(), top_ids.to(dev), top_logp.to(dev), mask,
                               self.temperature, rest_logp.to(dev), **self.div_params)
        ce = per_sample_mean(torch.nn.functional.cross_entropy(logits.float(), gold, reduction="none"), mask)
        w = torch.tensor([self.weights[s] for s in sample_ids], device=dev, dtype=kd.dtype)
        per_sample = w * kd + (1 - w) * ce
        loss = per_sample.mean() if num_items_in_batch is None else self.pooled(per_sample.sum(), num_items_in_batch)
        check_finite(loss, self.state.global_step, sample_ids)
        for name, part in (("kd", kd), ("ce", ce), ("w_mean", w)):
            self._parts[name].append(part.detach().mean())
        return (loss, None) if return_outputs else loss

    def log(self, logs: dict, *args, **kwargs) -> None:
        """The KD term, the gold CE and the mean weight since the last log join the Trainer's own
        record (trainer_state.json, and TensorBoard/W&B/MLflow through ``report_to``). Under
        several processes they are this rank's means."""
        if "loss" in logs and self._parts["kd"]:
            logs = logs | {k: float(torch.stack(v).mean()) for k, v in self._parts.items()}
            self._parts = {k: [] for k in self._parts}
        super().log(logs, *args, **kwargs)
