"""SCD+AW with the building blocks only, for people who already have their own training loop.

You bring: teacher checkpoints along its SFT (paths), a student and its SFT-trained anchor, train
records ``{id, prompt, answer}``. The blocks: the teacher target cache, SCD's selection probe and
rule, the AW weights, and the ``transformers.Trainer`` that distils. Run (offline, a minute):

    SCD_DATA_DIR=../shared/data .venv/bin/python examples/own_trainer_loop.py

Here the checkpoints, the anchor and the records come from the pipeline's own smoke stages so
that the example runs anywhere; replace those four lines with yours.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from scd.kd.targets import build_targets
from scd.core.config import get_config
from scd.kd.policies import dense_probe_kl, probe_scores, student_probe_kl
from scd.kd.trainer import DistillTrainer, sample_weights
from scd.data.encoding import PadCollator, encode
from scd.train.evaluate import evaluate, gold_losses, new_token_budget
from scd.core.methods import parse_method
from scd.train.models import load_model, load_tokenizer
from scd.stages.base_sft import base_model_stage, sft_stage, task_splits
from scd.stages.distill import probe_logits, probe_records
from scd.train.training import training_args


def main(task: str = "crade", out: str | None = None) -> dict:
    cfg = get_config("smoke", tasks=(task,))
    # --- yours: teacher checkpoints (in SFT order), the best one, the student, train/dev records
    teacher = sft_stage(cfg, "teacher", task, 0)
    checkpoints, best = [c.path for c in teacher.trajectory], teacher.best_index
    student_path, _ = base_model_stage(cfg, "student")
    splits = task_splits(cfg, task)
    train, dev = splits["train"], splits["dev"]
    tok = load_tokenizer(student_path)  # teacher and student must share this tokenizer

    # 1. the target cache: top-k log-probs (and the exact leftover mass) of every checkpoint
    targets = [build_targets(load_model(p).eval(), tok, train, cfg, cfg.top_k, cfg.temperature,
                             {"checkpoint": f"ckpt{i}", "quiet": True}) for i, p in enumerate(checkpoints)]
    # 2. SCD's probe: KL(p_best || p_c) once, from dense teacher logits on a label-stratified probe
    dense = [probe_logits(cfg, load_model(p).eval(), tok, train) for p in checkpoints]
    kl_best = [dense_probe_kl(dense[best], d, cfg.temperature) for d in dense]
    # 3. the AW anchor: the SFT student's per-item gold loss (any student trained on the task)
    anchor_model = load_model(sft_stage(cfg, "student", task, 0).best_path)
    anchor = gold_losses(anchor_model, tok, train, cfg)

    method, probe = parse_method("scd_aw"), probe_records(cfg, train)
    student, items = load_model(student_path), encode(train, tok, cfg)[0]
    chosen_per_stage = []
    with tempfile.TemporaryDirectory() as tmp:
        for stage in range(len(checkpoints)):
            kl_student = student_probe_kl(student, tok, probe, targets, cfg, cfg.temperature)
            scores = probe_scores(cfg.selection_terms, kl_best, kl_student)  # KL(p_best‖p_c) + KL(p_student‖p_c)
            chosen = method.policy.choose(stage, best, scores, len(targets))  # SCD: the lowest score
            weights = sample_weights(method, cfg.alpha, anchor, targets[chosen])  # 4. AW, per item
            args = training_args(Path(out or tmp) / f"stage{stage}", cfg, cfg.distill_lr, cfg.stage_epochs, seed=stage)
            DistillTrainer(model=student, args=args, train_dataset=items, data_collator=PadCollator(tok.pad_token_id),
                           processing_class=tok, targets=targets[chosen], weights=weights).train()
            chosen_per_stage.append(chosen)
    scores, _ = evaluate(student, tok, dev, task, cfg, new_token_budget(task, train, tok, cfg))
    print(f"checkpoint followed per stage: {chosen_per_stage}; dev {scores['primary']:.3f}")
    return {"chosen": chosen_per_stage, "dev": scores}


if __name__ == "__main__":
    main(*sys.argv[1:2])
