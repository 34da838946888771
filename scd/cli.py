"""``python -m scd <command>``: every stage for a profile/task/seed, each compute-or-load."""
from __future__ import annotations

import argparse
import ast
import json
import os
import sys

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, help, run_opts=True):
        p = sub.add_parser(name, help=help)
        if run_opts:
            p.add_argument("--profile", default="cpu", help="smoke | cpu | gemma | paper")
            p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
        return p

    p = add("download", "fetch the benchmark files at the pinned commits and verify them", run_opts=False)
    p.add_argument("--dest", default="data")
    p = add("data-summary", "split sizes, label balance, prompt lengths -> results/", run_opts=False)
    p.add_argument("--out", default="results")
    add("pretrain", "tokenizer and base LMs (tiny profiles; cached)")
    for name, help in [("sft", "teacher or student SFT for one task and seed"),
                       ("distill", "distil the student with one method for one task and seed")]:
        p = add(name, help)
        p.add_argument("--task", required=True)
        p.add_argument("--seed", type=int, default=0)
        if name == "sft":
            p.add_argument("--role", choices=["teacher", "student"], required=True)
        else:
            p.add_argument("--method", required=True, help="e.g. td, cd, scd, td_aw, cd_aw, scd_aw")
    p = add("reproduce", "compute every missing stage, render the notebooks, compare with the committed results")
    p.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 0,1,2 (default: the profile's)")
    p.add_argument("--out", default=None,
                   help="folder for this run's results, figures, notebooks and report "
                        "(default: reproduction/<profile>-seeds<S>/; never the committed files)")
    p.add_argument("--in-place", action="store_true",
                   help="maintainers: write results/, figures/ and the notebooks themselves (the committed files)")
    p.add_argument("--ablations", default="crade", help="tasks the ablations run on ('' for none)")
    p.add_argument("--merge", "--add-seeds", dest="merge", action="store_true",
                   help="keep the (task, seed) runs the results folder holds and this run does not recompute "
                        "(a three-seed rerun in parts, or the tasks a setting reads); refused when the kept runs "
                        "depend on a setting this run changes; ablations run for every seed that has none")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="extra notebook parameter (papermill -p)")
    p = add("notebooks", "re-render the notebooks from the committed results (no training; about a minute)")
    p.add_argument("--seeds", default=None, help="default: every seed in results/<profile>/runs.csv")
    p = add("calibrate", "the cpu profile's calibration grid, scored on dev -> results/calibration/", run_opts=False)
    p.add_argument("--out", default="results/calibration")
    p = add("run-all", "every stage for every task and seed, then results/ tables (no notebooks)")
    p.add_argument("--out", default="results")
    p = add("run", "SCD on your own task: teacher SFT with checkpoints, student anchor, methods, evaluation")
    p.add_argument("--task-card", action="append", required=True, metavar="FILE",
                   help="task card (YAML); repeat for several tasks")
    p.add_argument("--teacher", help="teacher: local folder or hub id (default: the profile's own pair)")
    p.add_argument("--student", help="student: local folder or hub id, same tokenizer as the teacher")
    p.add_argument("--method", default="scd_aw", help="comma-separated methods, or all (td,cd,scd,td_aw,cd_aw,scd_aw)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--out", default=None, help="results folder (default: scd-<task name>/ here)")
    args = parser.parse_args(argv)
    if args.command in ("pretrain", "sft", "distill", "run-all", "run"):  # may run under `accelerate launch`
        ranks.init()

    if args.command == "download":
        from scd.data.files import download

        print(f"downloaded and verified into {download(args.dest)}")
    elif args.command == "data-summary":
        from scd.analysis.data_report import write_data_summary

        frame, paths = write_data_summary(args.out)
        print(frame.to_string(index=False))
        print("wrote", ", ".join(map(str, paths)))
    elif args.command == "pretrain":
        from scd.stages.base_sft import base_model_stage

        cfg = _config(args)
        for role in ("student", "teacher"):
            path, _ = base_model_stage(cfg, role)
            print(f"{role} base LM: {path}")
    elif args.command == "sft":
        from scd.stages.base_sft import sft_stage

        _print_run(sft_stage(_config(args), args.role, args.task, args.seed))
    elif args.command == "distill":
        from scd.stages.distill import distill_stage

        _print_run(distill_stage(_config(args), args.method, args.task, args.seed))
    elif args.command == "calibrate":
        from scd.run.calibration import run

        print(run(user_path(args.out)).to_string(index=False))
    elif args.command == "run-all":
        from scd.run.reproduce import run_all

        run_all(_config(args), args.out)
    elif args.command == "run":
        from scd import api
        from scd.core.cards import load_card

        absolute_env()
        out = args.out or "scd-" + "-".join(load_card(c).name for c in args.task_card)
        result = api.run(args.task_card, args.teacher, args.student, args.method.split(","), args.profile,
                            args.seeds, out, **parse_overrides(args.set))
        if ranks.is_main():
            print(result.table1().to_string())
            print(f"results -> {result.root / result.cfg.profile}")
    elif args.command in ("reproduce", "notebooks"):
        from scd.run.reproduce import main_job, render_committed

        absolute_env()
        if args.command == "notebooks":
            return render_committed(args.profile, args.seeds, parse_overrides(args.set))
        return main_job(_config(args), args.out, args.in_place, args.ablations, parse_overrides(args.param),
                        args.merge)
    return 0


if __name__ == "__main__":
    sys.exit(main())
