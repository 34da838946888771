"""Ablations around SCD+AW: the selection criterion's two terms, N, T and the KD divergence.

The 2×2 factorial {CD order, SCD selection} × {fixed weight, AW} is part of the main run
(``cd``, ``scd``, ``cd_aw``, ``scd_aw``). Each variant here changes one setting of the
profile; N changes the teacher trajectory itself (a new teacher SFT), T changes the total
number of distillation epochs (so it is compared with the default at its own cost).
"""
from __future__ import annotations

import pandas as pd

from scd.config import Config
from scd.io import write_csv
from scd.results import results_dir
from scd.run_distill import distill_stage

VARIANTS: dict[str, dict] = {
    "default": {},
    "selection: KL(best||c) only": {"selection_terms": "best"},
    "selection: KL(student||c) only": {"selection_terms": "student"},
    "N = 2 checkpoints": {"n_checkpoints": 2},
    "N = 4 checkpoints": {"n_checkpoints": 4},
    "T = 2 epochs per stage": {"stage_epochs": 2},
    "KD: reverse KL": {"divergence": "reverse_kl"},
    "KD: skew forward KL (α=0.1)": {"divergence": "skew_forward_kl"},
    "KD: generalized JSD (β=0.5)": {"divergence": "jsd"},
}


def run_ablations(cfg: Config, tasks, methods=("scd_aw",), variants=VARIANTS, log=print) -> pd.DataFrame:
    rows = []
    for name, overrides in variants.items():
        vcfg = cfg.replace(**overrides)
        for task in tasks:
            for seed in cfg.seeds:
                for method in methods:
                    info = distill_stage(vcfg, method, task, seed)
                    rows.append({"variant": name, "method": method, "task": task, "seed": seed,
                                 "primary": info["test"]["primary"], "dev_best": max(s["dev"]["primary"] for s in info["stages"]),
                                 "train_s": info["train_s"], "select_s": info["select_s"],
                                 "checkpoints": " ".join(s["checkpoint"] for s in info["stages"])})
                    log(f"{name:32s} {method} {task} seed {seed}: test {rows[-1]['primary']:.3f}")
    return pd.DataFrame(rows)


def ensure_ablations(cfg: Config, tasks, root="results", log=print) -> pd.DataFrame:
    """Compute-or-load the ablation table for ``tasks`` (and the config's seeds)."""
    path = results_dir(cfg, root) / "ablations.csv"
    if path.is_file():
        table = pd.read_csv(path)
        want = {(v, t, s) for v in VARIANTS for t in tasks for s in cfg.seeds}
        if want <= set(zip(table["variant"], table["task"], table["seed"])):
            return table[table["task"].isin(tasks) & table["seed"].isin(cfg.seeds)].reset_index(drop=True)
    table = run_ablations(cfg, tasks, log=log)
    write_csv(path, table)
    return table
