"""Command line: ``python -m skdtutor compare ...`` (see ``python -m skdtutor compare --help``)."""
from __future__ import annotations

import argparse
import math
import sys
import time


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"temperatures must be numbers > 0, got {text!r}")
    return values


def _methods(text: str) -> list[str]:
    from .losses import METHODS

    values = [v.strip().lower() for v in text.split(",") if v.strip()]
    unknown = [v for v in values if v not in METHODS]
    if not values or unknown:
        raise argparse.ArgumentTypeError(f"unknown method(s) {unknown or text!r}; choose from "
                                         f"{','.join(METHODS)}")
    return values


def _seeds(text: str):
    if "," in text:
        return [int(v) for v in text.split(",") if v.strip()]
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("--seeds must be >= 1 (a count) or a comma-separated list")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .data import DATASETS

    parser = argparse.ArgumentParser(prog="python -m skdtutor",
                                     description="Knowledge distillation experiments from the skdtutor book.")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser(
        "compare", help="distil one student per (method, temperature, seed) and print a table",
        description="Train (or reuse from the cache) a teacher, distil one student per "
                    "(method, temperature, seed) and print test accuracy mean ± std per method and T. "
                    "Architectures and epochs default to the dataset's setting (skdtutor.experiments.SETTINGS).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("--dataset", default="mnist1d", choices=DATASETS,
                   help="dataset; digits and mnist1d need no download")
    c.add_argument("--teacher", default=None, help="teacher architecture: mlp, cnn, resnet18/34/50 "
                   "(default: the dataset's setting)")
    c.add_argument("--student", default=None, help="student architecture (default: the dataset's setting)")
    c.add_argument("--teacher-width", type=int, default=None, help="teacher capacity knob")
    c.add_argument("--student-width", type=int, default=None, help="student capacity knob")
    c.add_argument("--methods", type=_methods, default=["ce", "kd", "skd"],
                   help="comma-separated losses among ce, kd, skd, dice")
    c.add_argument("--temperatures", type=_floats, default=[1.0, 4.0, 16.0],
                   help="comma-separated distillation temperatures (ce ignores them)")
    c.add_argument("--seeds", type=_seeds, default=3,
                   help="number of student seeds (0..N-1), or a comma-separated list of seeds")
    c.add_argument("--gamma", type=float, default=0.9, help="weight of the distillation term")
    c.add_argument("--multiplier", type=float, default=2.0, help="SKD sphere multiplier")
    c.add_argument("--teacher-epochs", type=int, default=None, help="teacher epochs")
    c.add_argument("--student-epochs", type=int, default=None, help="student epochs")
    c.add_argument("--device", default="auto", help="auto, cpu or cuda")
    c.add_argument("--root", default=None, help="folder for torchvision datasets")
    c.add_argument("--cache-dir", default=None,
                   help="folder for cached teachers (default $SKDTUTOR_CACHE or ~/.cache/skdtutor)")
    c.add_argument("--no-cache", action="store_true", help="retrain the teacher and do not save it")
    c.add_argument("--sequential", action="store_true",
                   help="train students one by one instead of as one stacked model (same numbers)")
    c.add_argument("--csv", default=None, help="also write one row per run to this CSV file")
    c.add_argument("--progress", action="store_true", help="show progress bars")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .experiments import compare, format_table, summarize

    start = time.perf_counter()
    try:
        runs = compare(args.dataset, teacher=args.teacher, student=args.student, methods=args.methods,
                       temperatures=args.temperatures, seeds=args.seeds, gamma=args.gamma,
                       multiplier=args.multiplier, teacher_width=args.teacher_width,
                       student_width=args.student_width, teacher_epochs=args.teacher_epochs,
                       student_epochs=args.student_epochs, device=args.device, root=args.root,
                       cache=args.cache_dir, use_cache=not args.no_cache,
                       batched=False if args.sequential else None, progress=args.progress)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = format_table(summarize(runs))
    first = runs.iloc[0]
    print(f"dataset {first['dataset']}: teacher {first['teacher']} ({first['teacher_params']:,} params, "
          f"test acc {100 * first['teacher_test_acc']:.2f}%) -> student {first['student']} "
          f"({first['student_params']:,} params)")
    print(table[["method", "T", "accuracy", "n"]].rename(
        columns={"accuracy": "test acc % (mean ± std)", "n": "seeds"}).to_string(index=False))
    if args.csv:
        runs.to_csv(args.csv, index=False)
        print(f"wrote {len(runs)} runs to {args.csv}")
    print(f"wall time {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
