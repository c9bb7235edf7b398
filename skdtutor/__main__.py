"""Command line: ``python -m skdtutor compare ...``, ``python -m skdtutor results ...`` and
``python -m skdtutor recipe cifar100-kd ...`` (see ``python -m skdtutor <command> --help``).

The parser is built from the light constants of :mod:`skdtutor.cli_spec`, so ``--help`` never
imports torch; the heavy modules are imported only when a command runs.
"""
from __future__ import annotations

import argparse
import sys
import time

from .cli_args import (_check_csv, _datasets, _epochs, _floats, _Help, _methods, _offline_words,
                       _Parser, _positive_int, _seeds)
from .cli_recipe import add_recipe_parser, run_recipe_command
from .cli_spec import CLI_METHODS, DATASET_NAMES, MULTIPLIER_RANGE


def build_parser() -> argparse.ArgumentParser:
    """The parser of both commands, from light data only (no torch import)."""
    methods = ", ".join(CLI_METHODS)

    parser = _Parser(prog="python -m skdtutor",
                                     description="Knowledge distillation experiments from the skdtutor book.")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser(
        "compare", help="distil one student per (method, temperature, seed) and print a table",
        description="Train (or reuse from the cache) a teacher, distil one student per "
                    "(method, temperature, seed) and print test accuracy mean ± std per method and T. "
                    "Architectures and epochs default to the dataset's setting (skdtutor.config.SETTINGS).",
        formatter_class=_Help)
    c.add_argument("--dataset", default="mnist1d", choices=DATASET_NAMES,
                   help=f"dataset; {_offline_words()} need no download")
    c.add_argument("--teacher", default=None, help="teacher architecture: mlp, cnn, resnet18/34/50 "
                   "(default: the dataset's setting)")
    c.add_argument("--student", default=None, help="student architecture (default: the dataset's setting)")
    c.add_argument("--teacher-width", type=_positive_int, default=None, help="teacher capacity knob")
    c.add_argument("--student-width", type=_positive_int, default=None, help="student capacity knob")
    c.add_argument("--methods", type=_methods, default=["ce", "kd", "skd"],
                   help=f"comma-separated losses among {methods} "
                        "(kd@dice: KD at the temperature chosen by the Dice search)")
    c.add_argument("--temperatures", type=_floats, default=[1.0, 4.0, 16.0],
                   help="comma-separated distillation temperatures (ce ignores them)")
    for p in (c, _results_parser(sub, DATASET_NAMES, methods)):
        _add_common_options(p)
    add_recipe_parser(sub)
    return parser


def _results_parser(sub, datasets, methods):
    """``results``: the book's results table (chapter 6), every method on every dataset."""
    r = sub.add_parser(
        "results", help="the book's results table: every method on every dataset",
        description="Train (or reuse from the cache) each dataset's teacher and distil one student per "
                    "(method, temperature, seed): ce, kd, skd, dice and kd@dice (KD at the temperature "
                    "chosen by the Dice search on the validation split). Prints one row per dataset, "
                    "method and T with test accuracy mean ± std over the seeds and the teacher's and "
                    "student's sizes: the table of the book's chapter 'Results at a glance' "
                    "(skdtutor.studies.results_table). Architectures and epochs default to each "
                    "dataset's setting (skdtutor.config.SETTINGS).",
        formatter_class=_Help)
    r.add_argument("--dataset", type=_datasets, default="digits,mnist1d",
                   help="comma-separated datasets among " + ", ".join(datasets)
                        + f" ({_offline_words()} need no download)")
    r.add_argument("--methods", type=_methods, default="ce,kd,skd,dice,kd@dice",
                   help=f"comma-separated methods among {methods}")
    r.add_argument("--temperatures", type=_floats, default="1,4,16",
                   help="comma-separated temperatures for kd, skd and dice")
    return r


def _add_common_options(p) -> None:
    """Options shared by ``compare`` and ``results``."""
    p.add_argument("--seeds", type=_seeds, default=3,
                   help="number of student seeds (0..N-1), or a comma-separated list of distinct seeds")
    p.add_argument("--gamma", type=float, default=0.9, help="weight of the distillation term, in [0, 1]")
    p.add_argument("--multiplier", type=float, default=2.0,
                   help="SKD sphere multiplier, in [{:g}, {:g}] (skdtutor.losses.MULTIPLIER_RANGE)"
                        .format(*MULTIPLIER_RANGE))
    p.add_argument("--teacher-epochs", type=_epochs, default=None,
                   help="teacher epochs (default: the dataset's setting)")
    p.add_argument("--student-epochs", type=_epochs, default=None,
                   help="student epochs (default: the dataset's setting)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--root", default=None, help="folder for torchvision datasets")
    p.add_argument("--cache-dir", default=None,
                   help="folder for cached teachers and students (default $SKDTUTOR_CACHE or "
                        "~/.cache/skdtutor)")
    p.add_argument("--no-cache", action="store_true",
                   help="retrain the teachers and students and do not save them")
    p.add_argument("--sequential", action="store_true",
                   help="train students one by one instead of as one stacked model (same numbers); "
                        "under torchrun they always train one by one, each data-parallel over the processes")
    p.add_argument("--csv", default=None, help="also write one row per student run to this CSV file")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.add_argument("--dice-temperatures", type=_floats, default=None,
                   help="candidate temperatures of the Dice search used by kd@dice "
                        "(default: skdtutor.temperature.DEFAULT_TEMPERATURES)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads for torch (1 is fastest for the embedded datasets' tiny "
                        "models; default: torch's choice)")


def _results(args):
    from .studies import results_table

    table, runs = results_table(args.dataset, seeds=args.seeds, temperatures=args.temperatures,
                                methods=args.methods, return_runs=True, **_run_kwargs(args))
    return table, runs, ["dataset", "method", "T", "test_acc", "n"]


def _compare(args):
    from .stats import format_table, seed_summary
    from .studies import compare

    runs = compare(args.dataset, teacher=args.teacher, student=args.student, methods=args.methods,
                   temperatures=args.temperatures, seeds=args.seeds,
                   teacher_width=args.teacher_width, student_width=args.student_width,
                   **_run_kwargs(args))
    first = runs.iloc[0]
    table = format_table(seed_summary(runs)).assign(
        **{k: first[k] for k in ("dataset", "teacher", "teacher_params", "teacher_test_acc",
                                 "student", "student_params")})
    return table, runs, ["method", "T", "test_acc", "n"]


def _fail(command: str, message, status: int) -> int:
    """One line on stderr, no traceback."""
    text = " ".join(str(message).split())
    print(f"python -m skdtutor {command}: error: {text}", file=sys.stderr)
    return status


def _report(table, runs, columns, csv, start) -> None:
    """Print the models' sizes per dataset, the accuracy table, the CSV path and the wall time."""
    for dataset, part in table.groupby("dataset", sort=False):
        first = part.iloc[0]
        print(f"dataset {dataset}: teacher {first['teacher']} ({first['teacher_params']:,} params, "
              f"test acc {100 * first['teacher_test_acc']:.2f}%) -> student {first['student']} "
              f"({first['student_params']:,} params)")
    print(table[columns].rename(
        columns={"test_acc": "test acc % (mean ± std)", "n": "seeds"}).to_string(index=False))
    from .studies import diverged_note

    note = diverged_note(runs)
    if note:
        print(f"warning: {note}")
    if csv:
        runs.to_csv(csv, index=False)
        print(f"wrote {len(runs)} runs to {csv}")
    print(f"wall time {time.perf_counter() - start:.1f} s")


def _run_kwargs(args) -> dict:
    """Keyword arguments of :func:`skdtutor.studies.compare` shared by both commands."""
    kwargs = dict(gamma=args.gamma, multiplier=args.multiplier, teacher_epochs=args.teacher_epochs,
                  student_epochs=args.student_epochs, device=args.device, root=args.root,
                  cache=args.cache_dir, use_cache=not args.no_cache,
                  batched=False if args.sequential else None, progress=args.progress)
    if args.dice_temperatures is not None:
        kwargs["dice_temperatures"] = args.dice_temperatures
    return kwargs


def main(argv=None) -> int:
    """Run the CLI. A user mistake exits with status 2 and one line naming it (no traceback),
    found before anything trains; a diverged teacher with status 1; Ctrl-C with 130 (the
    cache then holds complete entries only)."""
    args = build_parser().parse_args(argv)
    from . import distributed
    from .steps import DivergedError

    start = time.perf_counter()
    try:
        if args.csv:
            _check_csv(args.csv)
        if args.threads is not None:
            import torch

            torch.set_num_threads(args.threads)
        if args.command == "recipe":
            if distributed.launched():
                raise ValueError("the recipe trains in one process; run it without torchrun "
                                 "(`python -m skdtutor recipe ...`), on one GPU")
            return run_recipe_command(args, start)
        with distributed.session(args.device, say=print):  # under torchrun: one process group
            table, runs, columns = (_results if args.command == "results" else _compare)(args)
    except (ValueError, FileNotFoundError) as exc:
        return _fail(args.command, exc, 2)
    except DivergedError as exc:
        return _fail(args.command, exc, 1)
    except KeyboardInterrupt:
        return _fail(args.command, "interrupted; cached entries are complete or absent, rerun to go on", 130)
    if distributed.is_rank0():  # under torchrun only rank 0 prints and writes the CSV
        _report(table, runs, columns, args.csv, start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
