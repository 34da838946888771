"""The README's results section, generated from a committed results folder so it cannot go stale.

``results_section`` reads only files the pipeline wrote to ``results/<profile>/`` (the scores
behind Table 1, the claims, the sub-task view, the SFS/TFS decomposition, the signal checks) and
formats them with the same library functions that wrote those tables. ``update_readme`` puts it
between the README's ``<!-- results:begin -->`` and ``<!-- results:end -->`` markers; the
maintainers' ``python -m scd reproduce --in-place`` calls it, and a test checks that the committed
README holds exactly what the committed results give.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from scd.analysis import sfs_tfs, tables
from scd.analysis.export import load_runs, load_table, results_dir
from scd.analysis.products import margin_prediction
from scd.core.config import get_config
from scd.core.io import atomic_write_text, read_json

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def results_section(results_root: str | Path, profile: str = "cpu") -> str:
    """Markdown: Table 1 with its intervals, the paper's claims in plain words, the signal checks."""
    made = read_json(Path(results_root) / profile / "config.json")
    cfg = get_config(profile, tasks=made["tasks"], seeds=made["seeds"], methods=made["methods"])
    out = results_dir(cfg, results_root)
    seeds = ", ".join(map(str, cfg.seeds))
    table1 = tables.table1(pd.read_csv(out / "scores_ci.csv"))  # with the 'average' rows load_table leaves out
    thin = [c.removesuffix(" (too little train data)") for c in table1.columns if c.endswith("(too little train data)")]
    lines = [
        f"Table 1, profile `{profile}`, seeds {seeds}: test scores (accuracy for the choice tasks and "
        "PubMedQA, partial-match F1 for NER), mean over seeds with a 95% bootstrap interval over test items "
        "(each drawn with all its seeds' rows); `≈`: not distinguishable from the SFT teacher by a paired 95% "
        f"interval (smallest detectable differences: `results/{profile}/detectable.md`); "
        "`train_reference`: no language model, what the train split alone gives (n-gram classifier, "
        "train-answer lexicon for NER)"
        + (f"; {', '.join(thin)}: too little train data, left out of the average" if thin else "")
        + f". Source: `results/{profile}/table1_ci.csv`.",
        "",
        table1.to_markdown(index=False, floatfmt=".3f"),
        "",
    ]
    claims = pd.read_csv(out / "claims.csv")
    view = load_table(cfg, "subtask_view", results_root)
    headline = "scd_aw" if "scd_aw" in cfg.methods else cfg.methods[0]
    margin, rho = margin_prediction(load_table(cfg, "sfs_tfs_decomposition", results_root),
                                    load_runs(cfg, results_root), headline)
    lines += [sfs_tfs.claims_text(claims, view.student_wins.mean(), len(view), rho, len(margin), profile,
                                  len(cfg.seeds)), ""]
    if (out / "signal_checks.csv").is_file():
        lines += [signal_text(pd.read_csv(out / "signal_checks.csv"), profile)]
    return "\n".join(lines).rstrip("\n") + "\n"


def signal_text(checks: pd.DataFrame, profile: str) -> str:
    """The signal checks (``scd.analysis.signal``) in one paragraph: which are met, which missed."""
    def item(r) -> str:
        where = "" if r.task == "average" else f" on {r.task.replace(',', ', ')}"
        if float(r.value).is_integer() and float(r.threshold).is_integer():  # a count
            return f"{r.check}{where}: {r.value:.0f}"
        interval = "" if pd.isna(r.lo) else f" [{r.lo:.3f}, {r.hi:.3f}]"
        return f"{r.check}{where}: {r.value:.3f}{interval} vs {r.threshold:.3f}"

    met = checks["met"].astype(str) == "True"
    text = (f"**Does the run have a signal?** {int(met.sum())} of {len(checks)} checks met "
            f"(`results/{profile}/signal_checks.md`; chance = the test set's majority share, 0 for NER).")
    if met.any():
        text += " Met: " + "; ".join(item(r) for r in checks[met].itertuples()) + "."
    if (~met).any():
        text += " Missed: " + "; ".join(item(r) for r in checks[~met].itertuples()) + "."
    return text


def update_readme(readme_path: str | Path, results_root: str | Path, profile: str = "cpu") -> bool:
    """Replace the text between the results markers with ``results_section`` (atomically);
    -> whether the file changed. A README without both markers is an error."""
    path = Path(readme_path)
    text = path.read_text(encoding="utf-8")
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{path}: expected one {BEGIN} line followed by one {END} line")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    new = f"{head}{BEGIN}\n{results_section(results_root, profile)}{END}{tail}"
    if new != text:
        atomic_write_text(path, new)
    return new != text


def readme_block(readme_path: str | Path) -> str:
    """What the README holds between the markers (without them)."""
    text = Path(readme_path).read_text(encoding="utf-8")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].removeprefix("\n")
