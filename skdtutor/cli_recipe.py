"""``python -m skdtutor recipe NAME``: a named training recipe of the literature.

The parser uses light data only (:mod:`skdtutor.cli_spec`); :mod:`skdtutor.recipe` and torch
are imported when the recipe runs.
"""
from __future__ import annotations

import time

from .cli_args import _choices, _epochs, _Help, _positive_int
from .cli_spec import AMP_MODES, METHOD_NAMES, RECIPE_NAMES


def add_recipe_parser(sub) -> None:
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


def run_recipe_command(args, start) -> int:
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
