"""Ablations around SCD+AW: the selection criterion's two terms, N, T and the KD divergence.

The 2×2 factorial {CD order, SCD selection} × {fixed weight, AW} is part of the main run
(``cd``, ``scd``, ``cd_aw``, ``scd_aw``). Each variant here changes one setting of the
profile; N changes the teacher trajectory SCD follows (and the best checkpoint on dev), T changes
the total number of distillation epochs (so it is compared with the default at its own cost).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scd.analysis.sfs_tfs import paired_difference
from scd.analysis.export import results_dir

if TYPE_CHECKING:
    from scd.core.config import Config


def variants(cfg: Config) -> dict[str, dict]:
    """Variant label -> config overrides, around the profile's own N and T; labels name the values
    the run uses. A changed N changes the student's epochs (N × T). N is only halved: the halved
    run's checkpoints are every second one of the default's, copied rather than trained again
    (``scd.train.sft.copy_checkpoints``), while a larger N needs a new teacher SFT and N target caches
    (on `cpu` about 50 minutes more for one task)."""
    n, t = cfg.n_checkpoints, cfg.stage_epochs
    around = {f"N = {n // 2} {_plural(n // 2, 'checkpoint')}": {"n_checkpoints": n // 2}} if n >= 2 else {}
    around |= {f"T = {e} {_plural(e, 'epoch')} per stage": {"stage_epochs": e} for e in (t - 1, t + 1) if e >= 1}
    return {
        "default": {},
        "selection: KL(best||c) only": {"selection_terms": "best"},
        "selection: KL(student||c) only": {"selection_terms": "student"},
        **around,
        "KD: reverse KL": {"divergence": "reverse_kl"},
        f"KD: skew forward KL (α={cfg.skew_alpha:g})": {"divergence": "skew_forward_kl"},
        f"KD: generalized JSD (β={cfg.jsd_beta:g})": {"divergence": "jsd"},
    }


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def samples_path(cfg: Config, results_root, variant: str, method: str, task: str, seed: int) -> Path:
    """Per-item test rows of one ablation run, kept with the results so that effects can be
    recomputed from results/ alone."""
    slug = re.sub(r"[^a-z0-9]+", "-", variant.lower()).strip("-")
    return results_dir(cfg, results_root) / "ablation_samples" / task / f"{method}-{slug}_seed{seed}.csv"


def load(cfg: Config, tasks, results_root="results") -> pd.DataFrame:
    """The ablation table for ``tasks`` and the config's seeds. The variants are the ones the table
    holds (a folder made with another N or T than the profile's now is read as it was made); a
    table without the default, or lacking a variant for some task or seed, is an error that says
    how to compute them."""
    path = results_dir(cfg, results_root) / "ablations.csv"
    table = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["variant", "task", "seed"])
    want = {(v, t, s) for v in {"default", *table["variant"]} for t in tasks for s in cfg.seeds}
    missing = want - set(zip(table["variant"], table["task"], table["seed"]))
    if missing:
        raise FileNotFoundError(
            f"{path} lacks ablation runs of {sorted(missing)[:4]} (variant, task, seed): run `python -m scd "
            "reproduce` with those seeds, or give an empty results_dir to compute them there")
    return table[table["task"].isin(tasks) & table["seed"].isin(cfg.seeds)].reset_index(drop=True)


def summary(cfg: Config, table: pd.DataFrame) -> pd.DataFrame:
    """Mean test score per variant (rows in the order the run computed them) and task, plus their mean."""
    wide = table.pivot_table(index="variant", columns="task", values="primary", aggfunc="mean")
    wide["mean"] = wide.mean(axis=1)
    return wide.loc[list(dict.fromkeys(table["variant"]))]


def seed_list(cfg: Config) -> str:
    return ",".join(map(str, cfg.seeds))


def _credit(cfg: Config, results_root, variant: str, method: str, task: str, seed: int) -> np.ndarray:
    """Per-item test credit of a finished ablation run, in id order."""
    rows = pd.read_csv(samples_path(cfg, results_root, variant, method, task, seed), dtype={"id": str})
    return rows.sort_values("id")["correct"].to_numpy(float)


def variant_effects(cfg: Config, tasks, method: str = "scd_aw", results_root="results", n_boot: int = 2000,
                    table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each variant the table holds minus the default on the same test items and seeds: paired
    bootstrap interval over test items (each drawn with all its seeds' rows), p and ``mde``
    (``scd.analysis.power``); ``table``: :func:`load`'s, when already read."""
    rows, names = [], dict.fromkeys((load(cfg, tasks, results_root) if table is None else table)["variant"])
    for task in tasks:
        base = np.stack([_credit(cfg, results_root, "default", method, task, s) for s in cfg.seeds])
        for name in names:
            if name == "default":
                continue
            scores = np.stack([_credit(cfg, results_root, name, method, task, s) for s in cfg.seeds])
            rows.append({"variant": name, "task": task, "seeds": seed_list(cfg), "score": scores.mean(),
                         "default": base.mean()} | paired_difference(scores, base, n_boot=n_boot))
    return pd.DataFrame(rows)
