"""Command line: ``python -m skdtutor compare ...``, ``python -m skdtutor results ...`` and
``python -m skdtutor recipe cifar100-kd ...`` (see ``python -m skdtutor <command> --help``).

The parser is built from the light constants of :mod:`skdtutor.cli_spec`, so ``--help`` never
imports torch; the heavy modules are imported only when a command runs.
"""
from __future__ import annotations

import argparse
import math
import sys
import time

from .cli_spec import (AMP_MODES, CLI_METHODS, DATASET_NAMES, MAX_EPOCHS, METHOD_NAMES, MULTIPLIER_RANGE,
                       OFFLINE_DATASET_NAMES, RECIPE_NAMES)


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"temperatures must be numbers > 0, got {text!r}")
    return values


def _choices(text: str, known, what: str) -> list[str]:
    """Comma-separated names, each one of ``known``; an argparse error names the unknown ones."""
    values = [v.strip().lower() for v in text.split(",") if v.strip()]
    unknown = [v for v in values if v not in known]
    if not values or unknown:
        raise argparse.ArgumentTypeError(f"unknown {what}(s) {unknown or text!r}; choose from "
                                         f"{','.join(known)}")
    return values


def _methods(text: str) -> list[str]:
    return _choices(text, CLI_METHODS, "method")


def _datasets(text: str) -> list[str]:
    return _choices(text, DATASET_NAMES, "dataset")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _epochs(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_EPOCHS:
        raise argparse.ArgumentTypeError(f"{text} epochs is above the limit of {MAX_EPOCHS}; pass fewer")
    return value


def _seeds(text: str):
    from .studies import seed_list

    try:
        values = [int(v) for v in text.split(",") if v.strip()] if "," in text else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or comma-separated integers, got {text!r}") \
            from None
    try:
        seed_list(values)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--seeds {text}: {exc}") from None
    return values


def _check_csv(path) -> None:
    """A ValueError unless ``path`` can be written: its folder exists and is writable, and
    it is not a folder itself (checked before training, so no run is lost)."""
    import os
    from pathlib import Path

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ValueError(f"--csv {str(path)!r} is a folder; pass a file name such as {str(path / 'runs.csv')!r}")
    if not folder.is_dir():
        raise ValueError(f"--csv {str(path)!r}: folder {str(folder)!r} does not exist; create it or "
                         "pass another path")
    if (path.exists() and not os.access(path, os.W_OK)) or not os.access(folder, os.W_OK):
        raise ValueError(f"--csv {str(path)!r} is not writable; pass a path in a folder you can write to")


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line (the problem and where to look)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: ...)`` only where the help does not already say the default and
    the default is not ``None`` (which means: the dataset's setting, said in the help)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or "default" in text:
            return text
        return super()._get_help_string(action)


def _offline_words() -> str:
    """The datasets that need no download, as words ("digits, mnist1d and mnist-5k")."""
    *rest, last = OFFLINE_DATASET_NAMES
    return f"{', '.join(rest)} and {last}" if rest else last


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
    _recipe_parser(sub)
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


def _recipe_parser(sub) -> None:
    """``recipe``: a named training recipe of the literature (skdtutor.recipe.RECIPES)."""
    r = sub.add_parser(
        "recipe", help="a training recipe of the literature, e.g. cifar100-kd (needs a GPU)",
        description="Run a named recipe of the distillation literature (skdtutor.recipe): cifar100-kd "
                    "trains a resnet32x4 teacher, then one resnet8x4 student per method, with "
                    "mdistiller's CIFAR-100 recipe (SGD, momentum 0.9, weight decay 5e-4, batch 64, lr "
                    "0.05 divided by 10 at epochs 150/180/210 of 240, random crop and flip on the "
                    "device; bf16/fp16 autocast and channels_last on CUDA). Prints test accuracy and "
                    "images/s per model next to the published numbers. Settings left unset are the "
                    "recipe's (skdtutor.recipe.RecipeConfig).",
        formatter_class=_Help)
    r.add_argument("name", choices=RECIPE_NAMES, help="the recipe")
    r.add_argument("--epochs", type=_epochs, default=None,
                   help="epochs of the teacher and of each student; the lr milestones keep their place "
                        "in the schedule (default: the recipe's, 240)")
    r.add_argument("--methods", type=lambda text: _choices(text, METHOD_NAMES, "method"), default=None,
                   help=f"comma-separated losses among {', '.join(METHOD_NAMES)} (default: the recipe's)")
    r.add_argument("--batch-size", type=_positive_int, default=None, help="images per SGD step")
    r.add_argument("--lr", type=float, default=None, help="SGD learning rate before the first decay")
    r.add_argument("--seed", type=int, default=None, help="seed of the weights, batch order and augmentation")
    r.add_argument("--amp", choices=AMP_MODES, default=None,
                   help="mixed precision on CUDA: auto (bf16 where supported, else fp16 with a gradient "
                        "scaler), bf16, fp16 or off; the CPU always runs float32")
    r.add_argument("--eval-every", type=_positive_int, default=None,
                   help="test accuracy every k epochs (and after the last)")
    r.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: auto)")
    r.add_argument("--root", default=None, help="folder for torchvision datasets")
    r.add_argument("--cache-dir", default=None, help="folder for the cached teacher (default $SKDTUTOR_CACHE "
                   "or ~/.cache/skdtutor)")
    r.add_argument("--no-cache", action="store_true", help="retrain the teacher and do not save it")
    r.add_argument("--csv", default=None, help="also write one row per trained model to this CSV file")
    r.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")


def _recipe(args, start) -> int:
    """Run ``args.name``, print its table and the literature's numbers; 0 on success."""
    from .recipe import LITERATURE, run_recipe

    settings = dict(epochs=args.epochs, methods=args.methods and tuple(args.methods),
                    batch_size=args.batch_size, lr=args.lr, seed=args.seed, amp=args.amp,
                    eval_every=args.eval_every, device=args.device)
    rows = run_recipe(args.name, root=args.root, cache=args.cache_dir, use_cache=not args.no_cache,
                      **settings)
    table = rows.assign(test_acc=100 * rows["test_acc"], best_test_acc=100 * rows["best_test_acc"])
    print(table.rename(columns={"test_acc": "test acc %", "best_test_acc": "best epoch %",
                                "images_per_s": "images/s", "train_s": "train s"})
          .to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    print(f"published, {args.name} at 240 epochs (best epoch, %):")
    for what, acc, where in LITERATURE.get(args.name, ()):
        print(f"  {what}: {acc:.2f} ({where})")
    if args.csv:
        rows.to_csv(args.csv, index=False)
        print(f"wrote {len(rows)} rows to {args.csv}")
    print(f"wall time {time.perf_counter() - start:.1f} s")
    return 0


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
            return _recipe(args, start)
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
