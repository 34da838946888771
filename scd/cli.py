"""``python -m scd <command>``: every stage for a profile/task/seed, each compute-or-load."""
from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from dataclasses import dataclass
from typing import Callable

from scd.core import ranks
from scd.core.config import get_config
from scd.core.io import user_path


def parse_overrides(pairs: list[str]) -> dict:
    """``--set key=value``; values are Python literals where they parse, strings otherwise."""
    out = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def absolute_env() -> None:
    """Relative ``SCD_DATA_DIR``/``SCD_RUNS_DIR`` mean the folder the command was typed in, also for
    the notebook kernels and processes started from here."""
    for name in ("SCD_DATA_DIR", "SCD_RUNS_DIR"):
        if os.environ.get(name):
            os.environ[name] = str(user_path(os.environ[name]))


def _config(args):
    overrides = parse_overrides(args.set)
    if getattr(args, "task", None):
        overrides["tasks"] = args.task
    if getattr(args, "seed", None) is not None:
        overrides["seeds"] = args.seed
    if getattr(args, "seeds", None):
        overrides["seeds"] = args.seeds
    return get_config(args.profile, **overrides)


def _print_run(record) -> None:
    if ranks.is_main():  # once, not once per process
        print(json.dumps({"path": record.path, "best": record.best, "test": record.test.to_json(),
                          "train_s": record.train_s}, indent=2))


def _download(args):
    from scd.data.files import download
    print(f"downloaded and verified into {download(args.dest)}")


def _data_summary(args):
    from scd.analysis.data_report import write_data_summary
    frame, paths = write_data_summary(args.out)
    print(frame.to_string(index=False))
    print("wrote", ", ".join(map(str, paths)))


def _pretrain(args):
    from scd.stages.base_sft import base_model_stage
    cfg = _config(args)
    for role in ("student", "teacher"):
        print(f"{role} base LM: {base_model_stage(cfg, role)[0]}")


def _sft(args):
    from scd.stages.base_sft import sft_stage
    _print_run(sft_stage(_config(args), args.role, args.task, args.seed))


def _distill(args):
    from scd.stages.distill import distill_stage
    _print_run(distill_stage(_config(args), args.method, args.task, args.seed))


def _reproduce(args):
    from scd.run.reproduce import main_job
    absolute_env()
    return main_job(_config(args), args.out, args.in_place, args.ablations, parse_overrides(args.param), args.merge)


def _notebooks(args):
    from scd.run.reproduce import render_committed
    absolute_env()
    return render_committed(args.profile, args.seeds, parse_overrides(args.set))


def _calibrate(args):
    from scd.run.calibration import run
    print(run(user_path(args.out)).to_string(index=False))


def _budgets(args):
    from scd.run.budgets import run
    cfg = _config(args)
    plan = {role: tuple(args.tasks.split(",")) for role in args.roles.split(",")}
    print(run(cfg, plan, user_path(args.out), seed=args.seed).to_string(index=False))


def _run_all(args):
    from scd.run.reproduce import run_all
    run_all(_config(args), args.out)


def _run(args):
    from scd import api
    absolute_env()
    cards = (args.task_card or []) + (args.data or [])
    if not cards:
        raise ValueError("run: give --task-card FILE (a task card) or --data FILE (prompt/completion rows)")
    out = args.out or "scd-" + "-".join(api.task_card(c).name for c in cards)
    result = api.run(cards, args.teacher, args.student, args.method.split(","), args.profile,
                     args.seeds, out, **parse_overrides(args.set))
    if ranks.is_main():
        print(result.table1().to_string())
        print(f"results -> {result.results_root / result.cfg.profile}")


def opt(*flags: str, **kwargs) -> tuple[tuple[str, ...], dict]:
    """One option of a command, as ``add_argument`` takes it."""
    return flags, kwargs


@dataclass(frozen=True)
class Command:
    """A subcommand. ``run(args)`` returns the exit code (None: 0) and imports what it needs itself, so ``--help``
    stays fast. ``run_opts``: takes --profile/--set; ``ranks``: may run under ``accelerate launch``."""
    name: str
    help: str
    run: Callable[[argparse.Namespace], int | None]
    options: tuple = ()
    run_opts: bool = True
    ranks: bool = False


TASK_SEED = (opt("--task", required=True), opt("--seed", type=int, default=0))
COMMANDS = (
    Command("download", "fetch the benchmark files at the pinned commits and verify them", _download,
            (opt("--dest", default="data"),), run_opts=False),
    Command("data-summary", "split sizes, label balance, prompt lengths -> results/", _data_summary,
            (opt("--out", default="results"),), run_opts=False),
    Command("pretrain", "tokenizer and base LMs (tiny profiles; cached)", _pretrain, ranks=True),
    Command("sft", "teacher or student SFT for one task and seed", _sft,
            TASK_SEED + (opt("--role", choices=["teacher", "student"], required=True),), ranks=True),
    Command("distill", "distil the student with one method for one task and seed", _distill,
            TASK_SEED + (opt("--method", required=True, help="e.g. td, cd, scd, td_aw, cd_aw, scd_aw"),), ranks=True),
    Command("reproduce", "compute every missing stage, render the notebooks, compare with the committed results",
            _reproduce, (
                opt("--seeds", default=None, help="comma-separated seeds, e.g. 0,1,2 (default: the profile's)"),
                opt("--out", default=None, help="folder for this run's results, figures, notebooks and report "
                    "(default: reproduction/<profile>-seeds<S>/; never the committed files)"),
                opt("--in-place", action="store_true", help="maintainers: write results/, figures/ and the "
                    "notebooks themselves (the committed files)"),
                opt("--ablations", default="crade", help="tasks the ablations run on ('' for none)"),
                opt("--merge", "--add-seeds", dest="merge", action="store_true", help="keep the (task, seed) runs "
                    "the results folder holds and this run does not recompute (a three-seed rerun in parts, or the "
                    "tasks a setting reads); refused when the kept runs depend on a setting this run changes; "
                    "ablations run for every seed that has none"),
                opt("--param", action="append", metavar="NAME=VALUE", help="extra notebook parameter (papermill -p)"))),
    Command("notebooks", "re-render the notebooks from the committed results (no training; about a minute)",
            _notebooks, (opt("--seeds", default=None, help="default: every seed in results/<profile>/runs.csv"),)),
    Command("calibrate", "the cpu profile's calibration grid, scored on dev -> results/calibration/", _calibrate,
            (opt("--out", default="results/calibration"),), run_opts=False),
    Command("budgets", "SFT budget study: train past convergence, choose each budget on dev -> results/budgets/",
            _budgets, (opt("--roles", default="teacher,student"), opt("--tasks", default="crade"),
                       opt("--seed", type=int, default=0), opt("--out", default="results/budgets"))),
    Command("run-all", "every stage for every task and seed, then results/ tables (no notebooks)", _run_all,
            (opt("--out", default="results"),), ranks=True),
    Command("run", "SCD on your own task: teacher SFT with checkpoints, student anchor, methods, evaluation", _run, (
        opt("--task-card", action="append", metavar="FILE", help="task card (YAML); repeat for several tasks"),
        opt("--data", action="append", metavar="FILE", help="instead of a card: a file of prompt/completion rows "
            "(JSONL, CSV, Parquet), a free-text task named after the file; repeatable"),
        opt("--teacher", help="teacher: local folder or hub id (default: the profile's own pair)"),
        opt("--student", help="student: local folder or hub id, same tokenizer as the teacher"),
        opt("--method", default="scd_aw", help="comma-separated methods, or all (td,cd,scd,td_aw,cd_aw,scd_aw)"),
        opt("--seeds", default="0", help="comma-separated seeds"),
        opt("--out", default=None, help="results folder (default: scd-<task name>/ here)")), ranks=True),
)


DEBUG_HELP = "on an error in the input, the full traceback (also SCD_DEBUG=1), not one line"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scd", description=__doc__)
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        if command.run_opts:
            p.add_argument("--profile", default="cpu", help="smoke | cpu | gemma | paper")
            p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
        for flags, kwargs in command.options:
            p.add_argument(*flags, **kwargs)
    return parser


# What a user's input gets wrong (a card, a row, a config value, a path): DataError is a ValueError.
USER_ERRORS = (ValueError, FileNotFoundError)


def error_line(exc: BaseException) -> str:
    """The message on one line; a missing file as its path."""
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"no such file: {exc.filename}"
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """A mistake in the input ends with ``scd: error: <message>`` on stderr and exit code 2, as
    argparse's own; its traceback only with ``--debug`` or ``SCD_DEBUG=1`` (it points into the
    package, not at the file and row the message names)."""
    args = build_parser().parse_args(argv)
    command = next(c for c in COMMANDS if c.name == args.command)
    try:
        if command.ranks:
            ranks.init()
        code = command.run(args)
    except USER_ERRORS as exc:
        if args.debug or os.environ.get("SCD_DEBUG", "0") not in ("", "0"):
            raise
        print(f"scd: error: {error_line(exc)}", file=sys.stderr)
        return 2
    return 0 if code is None else code


if __name__ == "__main__":
    sys.exit(main())
