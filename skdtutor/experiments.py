"""Experiment runner shared by the book's chapters and the CLI.

A chapter and ``python -m skdtutor compare`` call the same functions, so a table
in the book is regenerated exactly by the command printed next to it.

* :func:`get_teacher` trains a teacher once per setting and caches its weights
  (``$SKDTUTOR_CACHE`` or ``~/.cache/skdtutor``); its logits are kept in memory.
* :func:`run_students` distils one student per (loss, seed), stacked into one
  model when the architecture allows it (:func:`skdtutor.train.distill_sweep`),
  sequentially otherwise.
* :func:`compare` is the CLI's ``compare``: methods × temperatures × seeds.
* :func:`summarize` turns per-run rows into mean ± std per group.
* :func:`semi_supervised` distils with a fraction of the labels (chapter 5).
* :func:`results_table` is the CLI's ``results``: every method on every dataset (chapter 6);
  :func:`claim_verdict` checks a claim against seed noise.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd
import torch

from . import data as data_mod
from .losses import METHODS, make_loss
from .temperature import DEFAULT_TEMPERATURES, dice_temperature_search
from .models import build_model, count_parameters
from .train import (SweepMember, TeacherLogits, compute_teacher_logits, distill, distill_sweep,
                    predict, resolve_device, stackable, train_teacher)

__all__ = ["Setting", "SETTINGS", "setting_for", "cache_dir", "get_teacher", "default_teacher",
           "teacher_snapshots", "run_students", "compare", "summarize", "format_table", "KD_AT_DICE",
           "labelled_mask", "hard_targets", "subset_teacher", "semi_supervised", "results_table", "RESULT_METHODS",
           "claim_verdict", "overall_verdict"]


@dataclass(frozen=True)
class Setting:
    """Default architectures and budgets for one dataset (CPU-friendly for the embedded ones)."""

    teacher: str = "cnn"
    teacher_width: int = 32
    teacher_epochs: int = 30
    student: str = "mlp"
    student_width: int = 32
    student_depth: int = 1
    student_epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3


SETTINGS = {
    "digits": Setting(teacher="cnn", teacher_width=32, teacher_epochs=30, student="mlp",
                      student_width=16, student_depth=1, student_epochs=40, batch_size=64),
    "mnist1d": Setting(teacher="cnn", teacher_width=32, teacher_epochs=40, student="mlp",
                       student_width=64, student_depth=1, student_epochs=60, batch_size=128,
                       lr=3e-3),
    "mnist": Setting(teacher="cnn", teacher_width=32, teacher_epochs=5, student="mlp",
                     student_width=64, student_depth=1, student_epochs=5, batch_size=256),
    "fashion-mnist": Setting(teacher="cnn", teacher_width=32, teacher_epochs=10, student="mlp",
                             student_width=64, student_depth=1, student_epochs=10, batch_size=256),
    "cifar10": Setting(teacher="resnet18", teacher_width=0, teacher_epochs=30, student="cnn",
                       student_width=16, student_epochs=30, batch_size=256),
    "cifar100": Setting(teacher="resnet34", teacher_width=0, teacher_epochs=60, student="resnet18",
                        student_width=0, student_epochs=60, batch_size=256),
}


def setting_for(dataset: str) -> Setting:
    """The default :class:`Setting` of a dataset."""
    key = dataset.lower()
    if key not in SETTINGS:
        raise ValueError(f"no default setting for dataset {dataset!r}; choose one of {sorted(SETTINGS)}")
    return SETTINGS[key]


def cache_dir(path=None) -> Path:
    """Folder for cached teachers: ``path``, else ``$SKDTUTOR_CACHE``, else ``~/.cache/skdtutor``."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get("SKDTUTOR_CACHE", Path.home() / ".cache" / "skdtutor"))


_LOGITS: dict[tuple, TeacherLogits] = {}

KD_AT_DICE = "kd@dice"  # method name: KD at the temperature chosen by the Dice search


def _fingerprint(*tensors) -> str:
    """A short content hash of tensors (used in cache keys)."""
    h = hashlib.sha1()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def get_teacher(data, arch: str = "cnn", width: int | None = None, epochs: int = 30, seed: int = 0,
                *, lr: float = 1e-3, batch_size: int = 128, device="auto", cache=None,
                use_cache: bool = True, progress: bool = False):
    """Train (or load from the cache) a teacher; return ``(model, TeacherLogits, history_df)``.

    The cache key holds every setting that changes the weights: dataset, its split
    seed, architecture, width, epochs, seed, learning rate and batch size (and, for a
    :meth:`~skdtutor.data.DataBundle.subset`, a fingerprint of the kept samples).
    """
    width = width or None
    key = (data.name, data.seed, len(data.y_train), arch, width, epochs, seed, lr, batch_size)
    if "train_subset" in data.info:  # two subsets of one size must not share a cache entry
        key += (_fingerprint(data.x_train, data.y_train),)
    name = "teacher-" + "-".join(str(k) for k in key) + ".pt"
    path = cache_dir(cache) / name
    model = build_model(arch, data, width=width, seed=seed)
    if use_cache and path.exists():
        state = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        history = pd.DataFrame(state["history"])
    else:
        hist = train_teacher(model, data, epochs, lr=lr, batch_size=batch_size, seed=seed,
                             device=device, progress=progress)
        history = hist.df
        if use_cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": {k: v.cpu() for k, v in model.state_dict().items()},
                        "history": hist.rows}, path)
    model.eval()
    if (path, use_cache) not in _LOGITS or not use_cache:
        _LOGITS[(path, use_cache)] = compute_teacher_logits(model, data, device=device)
    return model, _LOGITS[(path, use_cache)], history


def default_teacher(data, seed: int = 0, device="auto", progress: bool = False):
    """:func:`get_teacher` with the dataset's default :class:`Setting` (what every chapter shares)."""
    s = setting_for(data.name)
    return get_teacher(data, s.teacher, s.teacher_width, s.teacher_epochs, seed=seed, lr=s.lr,
                       batch_size=s.batch_size, device=device, progress=progress)


def teacher_snapshots(data, arch: str | None = None, width: int | None = None,
                      epochs: int | None = None, seed: int = 0, *, lr: float | None = None,
                      batch_size: int | None = None, device="auto", cache=None,
                      use_cache: bool = True):
    """Train a teacher and keep its logits on every split after every epoch.

    Returns ``(snapshots, history_df)`` where ``snapshots[e]`` is the
    :class:`TeacherLogits` after epoch ``e`` (1-based; ``snapshots[0]`` is the
    untrained model). Defaults come from the dataset's :class:`Setting`. Cached
    on disk like :func:`get_teacher` (the logits, not the weights).
    """
    s = setting_for(data.name)
    arch, width = arch or s.teacher, s.teacher_width if width is None else width
    epochs, lr = epochs or s.teacher_epochs, lr or s.lr
    batch_size = batch_size or s.batch_size
    key = (data.name, data.seed, len(data.y_train), arch, width or None, epochs, seed, lr, batch_size)
    path = cache_dir(cache) / ("snapshots-" + "-".join(str(k) for k in key) + ".pt")
    if use_cache and path.exists():
        state = torch.load(path, map_location="cpu", weights_only=False)
        return [TeacherLogits(*t) for t in state["snapshots"]], pd.DataFrame(state["history"])
    model = build_model(arch, data, width=width or None, seed=seed)
    snapshots = [compute_teacher_logits(model, data, device=device)]

    def keep(epoch, m):
        snapshots.append(compute_teacher_logits(m, data, device=device))

    hist = train_teacher(model, data, epochs, lr=lr, batch_size=batch_size, seed=seed,
                         device=device, progress=False, callback=keep)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"snapshots": [(t.train, t.val, t.test) for t in snapshots],
                    "history": hist.rows}, path)
    return snapshots, hist.df


def run_students(data, teacher, student: str, losses: Sequence, seeds: Iterable[int],
                 epochs: int, *, width: int | None = None, depth: int | None = None,
                 lr: float = 1e-3, batch_size: int = 128, device="auto", labelled=None,
                 batched: bool | None = None, progress: bool = False,
                 return_histories: bool = False):
    """Distil one student per (loss, seed); one row per run with its final metrics.

    Students are stacked into one model (:func:`distill_sweep`) when the
    architecture allows it and ``batched`` is not False; otherwise trained one
    after another with :func:`distill`. Both give the same numbers.
    ``labelled`` (boolean mask over the training split): samples where it is
    False are unlabelled and get only the distillation term.
    With ``return_histories=True`` returns ``(rows, histories)``, the histories
    (with the trained students in ``.model``) in the order of the rows.
    """
    seeds = list(seeds)

    def make_student():
        return build_model(student, data, width=width, depth=depth)

    members = [SweepMember(loss, seed) for loss in losses for seed in seeds]
    use_batched = stackable(make_student) if batched is None else batched
    if use_batched:
        histories = distill_sweep(make_student, teacher, data, members, epochs, lr=lr,
                                  batch_size=batch_size, device=device, progress=progress,
                                  labelled=labelled, eval_every=epochs)
    else:
        if isinstance(teacher, torch.nn.Module):
            teacher = compute_teacher_logits(teacher, data, device=device)
        histories = []
        for m in members:
            torch.manual_seed(m.seed)
            model = make_student()
            histories.append(distill(model, teacher, data, m.loss, epochs, lr=lr,
                                     batch_size=batch_size, seed=m.seed, device=device,
                                     progress=progress, labelled=labelled, eval_every=epochs))
    n_params = count_parameters(histories[0].model)
    rows = []
    for h in histories:
        row = h.final
        row.update(student=student, student_params=n_params)
        rows.append(row)
    if return_histories:
        return pd.DataFrame(rows), histories
    return pd.DataFrame(rows)


def compare(dataset: str = "mnist1d", teacher: str | None = None, student: str | None = None,
            methods: Sequence[str] = ("ce", "kd", "skd"), temperatures: Sequence[float] = (1, 4, 16),
            seeds: int | Sequence[int] = 3, gamma: float = 0.9, multiplier: float = 2.0,
            teacher_width: int | None = None, student_width: int | None = None,
            teacher_epochs: int | None = None, student_epochs: int | None = None,
            device="auto", root=None, cache=None, use_cache: bool = True,
            batched: bool | None = None, progress: bool = False,
            dice_temperatures: Sequence[float] = DEFAULT_TEMPERATURES) -> pd.DataFrame:
    """Train (or reuse) a teacher, then one student per (method, temperature, seed).

    ``ce`` ignores the teacher and the temperature, so it runs once per seed.
    ``seeds`` is a count (seeds ``0 .. seeds-1``) or an explicit list. Returns one
    row per run: method, T, gamma, multiplier, seed, test accuracy and the other
    final metrics, plus the teacher's and student's names and sizes.
    Defaults for architectures and epochs come from :data:`SETTINGS`.

    ``kd@dice`` is KD at the temperature chosen by the Dice search
    (:func:`skdtutor.temperature.dice_temperature_search`, over
    ``dice_temperatures``): for every seed, the teacher's and that seed's CE
    student's logits on the validation split choose ``T``, then that seed's KD
    student is trained at it (the row's ``T``). The CE students are trained for
    this even when ``ce`` is not among the methods (their rows are then left
    out). ``runs.attrs["dice_search"]`` holds the search tables as plain dicts,
    ``{seed: {"T": [...], "student_term": [...], "label_term": [...], "total": [...]}}``
    (``pd.DataFrame(runs.attrs["dice_search"][seed])`` rebuilds one).
    """
    setting = setting_for(dataset)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("seeds must be a positive count or a non-empty list")
    methods = [m.lower() for m in methods]
    unknown = [m for m in methods if m not in METHODS and m != KD_AT_DICE]
    if unknown or not methods:
        raise ValueError(f"unknown method(s) {unknown or methods!r}; choose from "
                         f"{', '.join([*METHODS, KD_AT_DICE])}")
    at_dice = KD_AT_DICE in methods
    losses = []
    for method in methods:
        if method == "ce":
            losses.append(make_loss("ce"))
        elif method != KD_AT_DICE:
            losses += [make_loss(method, T=T, gamma=gamma, multiplier=multiplier) for T in temperatures]
    if at_dice and "ce" not in methods:
        losses.insert(0, make_loss("ce"))
    data = data_mod.load(dataset, root=root)
    teacher = teacher or setting.teacher
    student = student or setting.student
    t_width = setting.teacher_width if teacher_width is None else teacher_width
    s_width = setting.student_width if student_width is None else student_width
    t_model, t_logits, _ = get_teacher(data, teacher, t_width,
                                       teacher_epochs or setting.teacher_epochs, seed=0,
                                       lr=setting.lr, batch_size=setting.batch_size, device=device,
                                       cache=cache, use_cache=use_cache, progress=progress)
    student_kw = dict(width=s_width, depth=setting.student_depth if student == "mlp" else None,
                      lr=setting.lr, batch_size=setting.batch_size, device=device,
                      batched=batched, progress=progress)
    s_epochs = student_epochs or setting.student_epochs
    runs, histories = run_students(data, t_logits, student, losses, seed_list, s_epochs,
                                   return_histories=True, **student_kw)
    searches = {}
    if at_dice:
        chosen: dict[float, list[int]] = {}
        for h, method, seed in zip(histories, runs["method"], runs["seed"]):
            if method != "ce":
                continue
            val_logits = predict(h.model, data.x_val, device=device)
            T, table = dice_temperature_search(t_logits.val, val_logits, data.y_val,
                                               temperatures=dice_temperatures)
            searches[int(seed)] = table.to_dict("list")  # plain lists: pandas compares attrs
            chosen.setdefault(T, []).append(int(seed))
        parts = [runs if "ce" in methods else runs[runs["method"] != "ce"]]
        for T, t_seeds in chosen.items():
            part = run_students(data, t_logits, student, [make_loss("kd", T=T, gamma=gamma)],
                                t_seeds, s_epochs, **student_kw)
            part["method"] = KD_AT_DICE
            parts.append(part)
        runs = pd.concat(parts, ignore_index=True)
        order = {m: i for i, m in enumerate(methods)}  # rows in the order of the methods asked for
        runs = runs.sort_values("method", key=lambda col: col.map(order), kind="stable",
                                ignore_index=True)
    runs.insert(0, "dataset", data.name)
    runs["teacher"] = teacher
    runs["teacher_params"] = count_parameters(t_model)
    runs["teacher_test_acc"] = (t_logits.test.argmax(-1) == data.y_test).float().mean().item()
    if "T" in runs:
        runs.loc[runs["method"] == "ce", "T"] = float("nan")
    runs.attrs["dice_search"] = searches
    return runs


def summarize(runs: pd.DataFrame, by: Sequence[str] = ("method", "T"), value: str = "test_acc"):
    """Mean, std (sample std, ddof=1) and count of ``value`` per group; NaN keys kept."""
    by = [b for b in by if b in runs]
    grouped = runs.groupby(by, dropna=False, sort=False)[value]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    return out


def format_table(summary: pd.DataFrame, scale: float = 100.0, digits: int = 2) -> pd.DataFrame:
    """``summarize`` output with a ``mean ± std`` string column (in percent by default)."""
    out = summary.copy()
    out["accuracy"] = [f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}" if pd.notna(s)
                       else f"{m * scale:.{digits}f}" for m, s in zip(out["mean"], out["std"])]
    if "T" in out:
        out["T"] = ["—" if pd.isna(t) else f"{t:g}" for t in out["T"]]
    return out



# ------------------------------------------------------------------ few labels (chapter 5)
def labelled_mask(data, fraction: float, seed: int = 0) -> torch.Tensor:
    """Boolean mask over the training split that keeps the labels of ``fraction`` of every class.

    Deterministic in ``seed``; the kept samples of a smaller fraction are not
    necessarily among those of a larger one.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    y = data.y_train.cpu().numpy()
    _, kept = data_mod.stratified_split(y, fraction, seed)
    if len(kept) == 0:
        raise ValueError(f"fraction {fraction} keeps no labels of the {len(y)} training samples")
    mask = torch.zeros(len(y), dtype=torch.bool)
    mask[torch.as_tensor(kept, dtype=torch.long)] = True
    return mask


def hard_targets(teacher: TeacherLogits, scale: float = 1e3) -> TeacherLogits:
    """The teacher's arg-max as logits: ``scale`` on the predicted class, 0 elsewhere.

    Softened at any temperature up to ``scale / 40`` their softmax is one-hot to float
    precision, so KD on them is cross-entropy with the teacher's pseudo-labels. (The
    sphere of SKD normalises the scale away: SKD on them trains towards one fixed
    smoothed label per class.)
    """
    def one_hot(z):
        return torch.nn.functional.one_hot(z.argmax(-1), z.shape[-1]).to(z.dtype) * scale

    return TeacherLogits(one_hot(teacher.train), one_hot(teacher.val), one_hot(teacher.test))


def subset_teacher(data, fraction: float, *, subset_seed: int = 0, teacher_steps: int = 300,
                   device="auto", cache=None, use_cache: bool = True, progress: bool = False):
    """A teacher trained on the labelled part only, as in :func:`semi_supervised`.

    The labels of ``fraction`` of every class are kept (:func:`labelled_mask`); a
    teacher of the dataset's default architecture trains on those samples alone
    (:meth:`~skdtutor.data.DataBundle.subset`) for ``ceil(teacher_steps / batches
    per epoch)`` epochs, cached like :func:`get_teacher`. Returns ``(mask, model,
    logits, epochs)``, the logits (:class:`TeacherLogits`) on the *whole* training
    split, unlabelled samples included.
    """
    setting = setting_for(data.name)
    mask = labelled_mask(data, fraction, subset_seed)
    n_lab = int(mask.sum())
    epochs = max(1, math.ceil(teacher_steps / math.ceil(n_lab / setting.batch_size)))
    model, _, _ = get_teacher(data.subset(torch.nonzero(mask).flatten()), setting.teacher,
                              setting.teacher_width, epochs, seed=0, lr=setting.lr,
                              batch_size=setting.batch_size, device=device, cache=cache,
                              use_cache=use_cache, progress=progress)
    return mask, model, compute_teacher_logits(model, data, device=device), epochs


def semi_supervised(dataset: str = "digits", fractions: Sequence[float] = (0.05, 0.1, 0.25),
                    seeds: int | Sequence[int] = 3, *, T: float = 4.0, gamma: float = 0.9,
                    multiplier: float = 2.0, teacher_steps: int = 300,
                    student_epochs: int | None = None, subset_seed: int = 0,
                    full_teacher: bool = True, device="auto", root=None, cache=None,
                    use_cache: bool = True, progress: bool = False) -> pd.DataFrame:
    """Distillation when only a fraction of the training labels is kept.

    For every fraction ``f``: labels are kept for ``f`` of every class
    (:func:`labelled_mask` with ``subset_seed``) and the rest of the training split
    is unlabelled. A teacher of the dataset's default architecture is trained on the
    labelled part only (:meth:`~skdtutor.data.DataBundle.subset`), for
    ``ceil(teacher_steps / batches per epoch)`` epochs, so every fraction gets about
    the same number of optimizer steps. Then one student per seed and variant:

    * ``ce`` / ``labels only``: cross-entropy on the labelled samples only;
    * ``kd``, ``skd`` / ``soft``: the teacher's soft targets on every sample, plus
      the labels where they are kept (``labelled`` mask, ``gamma`` weighting);
    * ``kd``, ``skd`` / ``hard``: the same with the teacher's arg-max
      (:func:`hard_targets`) in place of its soft targets;
    * with ``full_teacher``: ``kd`` / ``soft`` from the dataset's default teacher
      (:func:`default_teacher`, trained on *all* the labels): what a better teacher
      would give at the same labelled fraction. Column ``teacher_labels`` says which
      teacher a row learnt from (``"labelled part"`` or ``"all"``).

    Student architecture, width, learning rate and batch size come from the
    dataset's :class:`Setting`; ``student_epochs`` defaults to its epochs. Returns
    one row per run (``fraction``, ``n_labelled``, ``targets``, ``method``, ``T``,
    ``seed``, test metrics, ``teacher_test_acc``, ...). With ``use_cache`` the rows
    are kept on disk under :func:`cache_dir`, keyed by every setting, so a second
    call with the same arguments (another chapter, the CLI) returns them at once.
    """
    setting = setting_for(dataset)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("seeds must be a positive count or a non-empty list")
    fractions = [float(f) for f in fractions]
    epochs = student_epochs or setting.student_epochs
    resolved = resolve_device(device).type
    key = ("semi-v3", dataset.lower(), fractions, seed_list, float(T), float(gamma), float(multiplier),
           int(teacher_steps), int(epochs), int(subset_seed), bool(full_teacher), repr(setting),
           resolved)
    path = cache_dir(cache) / f"semi-{_fingerprint_text(repr(key))}.pkl"
    if use_cache and path.exists():
        return pd.read_pickle(path)
    data = data_mod.load(dataset, root=root)
    student_kw = dict(width=setting.student_width,
                      depth=setting.student_depth if setting.student == "mlp" else None,
                      lr=setting.lr, batch_size=setting.batch_size, device=device, progress=progress)
    # Soft and hard targets travel side by side (concatenated along the class axis) and each
    # loss reads its own slice (routed_loss), so all five variants train as one stacked model.
    distil_losses = [make_loss("kd", T=T, gamma=gamma),
                     make_loss("skd", T=T, gamma=gamma, multiplier=multiplier)]
    losses = [make_loss("ce")] + [routed_loss(loss, index, data.num_classes)
                                  for index in (0, 1) for loss in distil_losses]
    if full_teacher:
        full_model, full_logits, _ = get_teacher(  # = default_teacher(data), shared with the chapters
            data, setting.teacher, setting.teacher_width, setting.teacher_epochs, seed=0,
            lr=setting.lr, batch_size=setting.batch_size, device=device, cache=cache,
            use_cache=use_cache, progress=progress)
        losses.append(routed_loss(distil_losses[0], 2, data.num_classes))
    parts = []
    for fraction in fractions:
        mask, t_model, t_logits, t_epochs = subset_teacher(
            data, fraction, subset_seed=subset_seed, teacher_steps=teacher_steps, device=device,
            cache=cache, use_cache=use_cache, progress=progress)
        n_lab = int(mask.sum())
        hard = hard_targets(t_logits)
        sources = [t_logits, hard] + ([full_logits] if full_teacher else [])
        both = TeacherLogits(*(torch.cat([getattr(t, split) for t in sources], dim=-1)
                               for split in ("train", "val", "test")))
        part = run_students(data, both, setting.student, losses, seed_list, epochs,
                            labelled=mask, **student_kw)
        index = part["teacher_index"].fillna(0).astype(int)
        part.insert(0, "targets", ["labels only" if m == "ce" else ("soft", "hard", "soft")[i]
                                   for m, i in zip(part["method"], index)])
        part.insert(1, "teacher_labels", ["all" if i == 2 else "labelled part" for i in index])
        part = part.drop(columns=["teacher_index", "num_classes", "test_agreement"], errors="ignore")
        parts.append(part.assign(
            fraction=fraction, n_labelled=n_lab, teacher=setting.teacher,
            teacher_params=count_parameters(t_model), teacher_epochs=t_epochs,
            teacher_test_acc=(t_logits.test.argmax(-1) == data.y_test).float().mean().item(),
            teacher_unlabelled_acc=(t_logits.train.argmax(-1)[~mask]
                                    == data.y_train[~mask]).float().mean().item()))
        if full_teacher:  # rows distilled from the all-label teacher describe that teacher
            full = parts[-1]["teacher_labels"] == "all"
            parts[-1].loc[full, "teacher_params"] = count_parameters(full_model)
            parts[-1].loc[full, "teacher_epochs"] = setting.teacher_epochs
            parts[-1].loc[full, "teacher_test_acc"] = (full_logits.test.argmax(-1)
                                                       == data.y_test).float().mean().item()
            parts[-1].loc[full, "teacher_unlabelled_acc"] = (
                full_logits.train.argmax(-1)[~mask] == data.y_train[~mask]).float().mean().item()
    runs = pd.concat(parts, ignore_index=True)
    runs.insert(0, "dataset", data.name)
    runs.loc[runs["method"] == "ce", "T"] = float("nan")
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        runs.to_pickle(tmp)
        os.replace(tmp, path)
    return runs


def _fingerprint_text(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------- results at a glance (chapter 6)
RESULT_METHODS = ("ce", "kd", "skd", "dice", KD_AT_DICE)


def results_table(datasets: str | Sequence[str] = ("digits", "mnist1d"), seeds: int | Sequence[int] = 3,
                  temperatures: Sequence[float] = (1, 4, 16),
                  methods: Sequence[str] = RESULT_METHODS, *, return_runs: bool = False,
                  **compare_kwargs):
    """The book's results table: :func:`compare` on every dataset, one row per (dataset, method, T).

    This is what ``python -m skdtutor results`` prints. ``compare_kwargs`` go to
    :func:`compare` (gamma, multiplier, epochs, device, cache, dice_temperatures, ...).
    Columns: dataset, method, T (for ``kd@dice`` the temperatures the search chose,
    ``/``-separated when seeds disagree), mean and std of the test accuracy (sample
    std over seeds), n (seeds), ``accuracy`` (``mean ± std`` in %), and the teacher's
    and student's architecture, parameter count and the teacher's test accuracy.
    With ``return_runs=True`` returns ``(table, runs)``, ``runs`` holding one row per
    student (the CLI's ``--csv``).
    """
    if isinstance(datasets, str):
        datasets = [d for d in datasets.split(",") if d.strip()]
    parts = [compare(d, methods=methods, temperatures=temperatures, seeds=seeds, **compare_kwargs)
             for d in datasets]
    searches = {part["dataset"].iloc[0]: part.attrs.get("dice_search", {}) for part in parts}
    for part in parts:
        part.attrs = {}
    runs = pd.concat(parts, ignore_index=True)
    runs.attrs["dice_search"] = searches  # {dataset: {seed: search table as a dict of lists}}
    labels = []
    for (dataset, method), part in runs.groupby(["dataset", "method"], sort=False):
        if method == KD_AT_DICE:
            label = "/".join(f"{t:g}" for t in sorted(part["T"].unique()))
            labels.append(pd.Series(label, index=part.index))
        else:
            labels.append(part["T"].map(lambda t: "—" if pd.isna(t) else f"{t:g}"))
    runs_l = runs.assign(T_label=pd.concat(labels))
    table = summarize(runs_l, by=("dataset", "method", "T_label"))
    meta = runs_l.groupby(["dataset", "method", "T_label"], sort=False).agg(
        seeds=("seed", lambda s: ",".join(str(int(v)) for v in s)),
        teacher=("teacher", "first"), teacher_params=("teacher_params", "first"),
        teacher_test_acc=("teacher_test_acc", "first"), student=("student", "first"),
        student_params=("student_params", "first")).reset_index()
    table = table.merge(meta, on=["dataset", "method", "T_label"]).rename(columns={"T_label": "T"})
    table.insert(3, "accuracy", [f"{100 * m:.2f} ± {100 * s:.2f}" if pd.notna(s) else f"{100 * m:.2f}"
                                 for m, s in zip(table["mean"], table["std"])])
    return (table, runs) if return_runs else table


def claim_verdict(a, b, kind: str = "better") -> dict:
    """Test a claim "``a`` is larger than ``b``" (``kind="better"``) or "``a`` is not smaller
    than ``b``" (``kind="not worse"``) on per-seed values, against seed noise.

    ``diff = mean(a) - mean(b)``; ``noise`` is the pooled sample std
    ``sqrt((var(a) + var(b)) / 2)`` (ddof=1). "better" holds when ``diff > noise``;
    "not worse" holds when ``diff >= -noise``. Returns ``{"diff", "noise", "holds"}``.
    """
    a = pd.Series(a, dtype=float)
    b = pd.Series(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("claim_verdict needs at least two seeds on each side")
    diff = a.mean() - b.mean()
    noise = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    if kind == "better":
        holds = diff > noise
    elif kind == "not worse":
        holds = diff >= -noise
    else:
        raise ValueError(f"kind must be 'better' or 'not worse', got {kind!r}")
    return {"diff": float(diff), "noise": float(noise), "holds": bool(holds)}


def overall_verdict(holds: Sequence[bool]) -> str:
    """"holds" when a claim holds in every case, "does not hold" in none, "mixed" otherwise."""
    holds = list(holds)
    if not holds:
        raise ValueError("no cases")
    if all(holds):
        return "holds"
    if not any(holds):
        return "does not hold"
    return "mixed"


# ------------------------------------------- several teachers in one sweep (chapters 3 and 4)
def _pick_teacher(teacher_logits, teacher_index, num_classes: int):
    """Slice ``teacher_index`` out of teacher logits concatenated along the class axis.

    ``teacher_logits`` has shape ``(..., batch, K * num_classes)``; ``teacher_index``
    is a Python number or, inside a stacked sweep, a tensor ``(k, 1, 1)`` with one
    index per member. Returns ``(..., batch, num_classes)``.
    """
    t = teacher_logits.unflatten(-1, (-1, num_classes))  # (..., batch, K, C)
    if isinstance(teacher_index, torch.Tensor):
        index = teacher_index.long().reshape(*teacher_index.shape, 1)
        index = index.expand(*t.shape[:-2], 1, num_classes)
        return t.gather(-2, index).squeeze(-2)
    return t[..., int(teacher_index), :]


_ROUTED: dict = {}


def routed_loss(loss, teacher_index: int, num_classes: int):
    """``loss`` (a loss object) reading its teacher from slice ``teacher_index`` of
    concatenated teacher logits (see :func:`run_students_multi`).

    The result is an instance of a subclass of ``type(loss)`` with the same
    hyperparameters plus ``teacher_index`` (stackable, so students of different
    teachers still train as one stacked model) and ``num_classes``. On the picked
    slice it computes exactly ``loss``'s formula.
    """
    from dataclasses import dataclass as _dataclass

    base = type(loss)
    if base not in _ROUTED:
        @_dataclass(frozen=True)
        class Routed(base):
            teacher_index: int = 0
            num_classes: int = 0
            stackable = base.stackable + ("teacher_index",)

            @staticmethod
            def per_sample(student_logits, teacher_logits, labels=None, label_mask=None, *,
                           teacher_index=0, num_classes=0, **hparams):
                if teacher_logits is not None:
                    teacher_logits = _pick_teacher(teacher_logits, teacher_index, num_classes)
                return base.per_sample(student_logits, teacher_logits, labels, label_mask, **hparams)

        Routed.__name__ = Routed.__qualname__ = "Routed" + base.__name__
        _ROUTED[base] = Routed
    return _ROUTED[base](**loss.hparams(), teacher_index=int(teacher_index), num_classes=int(num_classes))


def _tensor_digest(h, t: torch.Tensor) -> None:
    # Rounded to 1e-3 so that last-bit differences (e.g. thread count) keep the same key.
    h.update(str(tuple(t.shape)).encode())
    h.update(torch.round(t.detach().cpu().double() * 1000).to(torch.int64).numpy().tobytes())


def run_students_multi(data, teachers, student: str, plan: Sequence, seeds: Iterable[int],
                       epochs: int, *, width: int | None = None, depth: int | None = None,
                       lr: float = 1e-3, batch_size: int = 128, device="auto",
                       batched: bool | None = None, keep_logits: bool = False, cache=None,
                       use_cache: bool = True, progress: bool = False):
    """Distil students from several teachers in one stacked sweep, cached on disk.

    Parameters
    ----------
    teachers : mapping ``key -> TeacherLogits`` (e.g. ``{32: logits}``).
    plan : sequence of ``(teacher_key, loss)`` pairs; ``teacher_key`` may be
        ``None`` for a loss that ignores the teacher (``CE()``).
    seeds, epochs, width, depth, lr, batch_size, device, batched :
        as in :func:`run_students`; every pair of the plan is trained once per seed.
    keep_logits : also return every student's validation and test logits.
    cache, use_cache : the result is kept under :func:`cache_dir`, keyed by the
        data, a digest of every teacher's logits, the plan, the seeds and every
        training setting, so a second call with the same arguments (another
        chapter, another kernel) returns at once.

    The teachers' logits are concatenated along the class axis and each loss is
    wrapped by :func:`routed_loss`, so all the students, whatever their teacher,
    train as one stacked model (:func:`skdtutor.train.distill_sweep`): one call
    costs little more than a call with one teacher.

    Returns
    -------
    rows : DataFrame, one row per (pair, seed) in plan order, with ``teacher``
        (the key), the loss's hyperparameters, ``seed``, ``val_acc``,
        ``test_acc`` and the other test metrics (``test_agreement`` against the
        student's own teacher).
    logits : only with ``keep_logits``: a list, per row, of ``{"val": tensor, "test": tensor}``.
    """
    import hashlib

    from .losses import _Loss
    from .metrics import agreement
    from .train import predict

    seeds = [int(s) for s in seeds]
    plan = list(plan)
    if not plan or not seeds:
        raise ValueError("plan and seeds must be non-empty")
    keys = list(teachers)
    for key, loss in plan:
        if not isinstance(loss, _Loss):
            raise ValueError(f"plan items must be (teacher_key, loss object), got loss {loss!r}")
        if key is None and loss.needs_teacher:
            raise ValueError(f"the {loss.name!r} loss needs a teacher; its teacher_key is None")
        if key is not None and key not in teachers:
            raise ValueError(f"teacher key {key!r} is not among the teachers {keys!r}")
    if not keys:
        raise ValueError("teachers is empty; pass at least one TeacherLogits")
    h = hashlib.sha1(b"students-multi-v1")
    h.update(repr((data.name, data.seed, len(data.y_train), len(data.y_val), len(data.y_test),
                   student, width, depth, epochs, float(lr), batch_size, seeds,
                   resolve_device_type(device),
                   [(repr(k), type(l).__name__, l.hparams()) for k, l in plan])).encode())
    _tensor_digest(h, data.x_train)
    _tensor_digest(h, data.y_train.double())
    for key in keys:
        h.update(repr(key).encode())
        for split in (teachers[key].train, teachers[key].val, teachers[key].test):
            _tensor_digest(h, split)
    path = cache_dir(cache) / f"students-{data.name}-{h.hexdigest()[:16]}.pt"
    if use_cache and path.exists():
        state = torch.load(path, map_location="cpu", weights_only=False)
        rows = pd.DataFrame(state["rows"])
        return (rows, state["logits"]) if keep_logits else rows

    num_classes = data.num_classes
    concat = TeacherLogits(*(torch.cat([getattr(teachers[k], split) for k in keys], dim=-1)
                             for split in ("train", "val", "test")))
    index = {k: i for i, k in enumerate(keys)}
    routed = [loss if key is None else routed_loss(loss, index[key], num_classes)
              for key, loss in plan]

    # the same training path as run_students (stacked when possible), on the routed losses
    _, histories = run_students(data, concat, student, routed, seeds, epochs, width=width,
                                depth=depth, lr=lr, batch_size=batch_size, device=device,
                                batched=batched, progress=progress, return_histories=True)
    n_params = count_parameters(histories[0].model)
    rows, logits = [], []
    pairs = [(key, loss) for key, loss in plan for _ in seeds]
    for (key, loss), h_ in zip(pairs, histories):
        val = predict(h_.model, data.x_val, device=device)
        test = predict(h_.model, data.x_test, device=device)
        row = {k: v for k, v in h_.final.items() if k not in ("teacher_index", "num_classes")}
        row["teacher"] = key
        row["test_agreement"] = (float("nan") if key is None
                                 else agreement(test, teachers[key].test))
        row.update(student=student, student_params=n_params)
        rows.append(row)
        logits.append({"val": val, "test": test})
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"rows": rows, "logits": logits}, tmp)
        os.replace(tmp, path)
    rows = pd.DataFrame(rows)
    return (rows, logits) if keep_logits else rows


def resolve_device_type(device="auto") -> str:
    """``"cpu"`` or ``"cuda"``: the device type that ``device`` resolves to (for cache keys)."""
    from .train import resolve_device

    return resolve_device(device).type


@dataclass
class SKDStudy:
    """What :func:`skd_study` trained: the students, their logits and the teachers."""

    runs: pd.DataFrame      # one row per student (see run_students_multi)
    logits: list            # per row of ``runs``: {"val": logits, "test": logits}
    teachers: pd.DataFrame  # one row per teacher width: params, accuracy, confidence
    teacher_logits: dict    # width -> TeacherLogits
    default_width: int      # the teacher of the temperature, multiplier, Dice and ablation runs
    settings: dict          # every setting of the study

    def select(self, **conditions) -> pd.DataFrame:
        """Rows of ``runs`` whose columns equal the given values (``None`` matches NaN/None).

        ``study.select(method="kd", teacher=32)``; a list value matches any of its items.
        """
        mask = pd.Series(True, index=self.runs.index)
        for col, value in conditions.items():
            column = self.runs[col]
            if isinstance(value, (list, tuple)):
                mask &= column.isin(value)
            elif value is None:
                mask &= column.isna()
            else:
                mask &= column == value
        return self.runs[mask]


def skd_study(data, seeds: Sequence[int] = (0, 1, 2), *,
              temperatures: Sequence[float] = (1, 2, 4, 8, 16), T: float = 4.0,
              gamma: float = 0.9, multiplier: float = 2.0,
              multipliers: Sequence[float] = (0.5, 1, 2, 3, 4, 6),
              teacher_widths: Sequence[int] = (4, 8, 16, 32), ablation_temperatures=None,
              epochs: int | None = None, device="auto", cache=None,
              use_cache: bool = True) -> SKDStudy:
    """The students that chapters 3 and 4 compare, trained as one stacked sweep.

    With the dataset's default :class:`Setting` (teacher architecture, student,
    learning rate, batch size; ``epochs`` defaults to its student epochs), one
    student per seed for each of:

    * ``CE()``;
    * ``KD``, ``SKD`` (multiplier ``multiplier``) and ``DiceKD`` at every temperature
      of ``temperatures``, from the default-width teacher;
    * ``SKD`` at temperature ``T`` for every multiplier of ``multipliers``;
    * ``SKD(ce_on_raw=True)`` (the ablation) at every temperature of
      ``ablation_temperatures`` (default: ``T`` only);
    * ``KD`` and ``SKD`` at temperature ``T`` from a teacher of every width of
      ``teacher_widths`` (the capacity gap).

    Every teacher comes from :func:`get_teacher` (cached), the students from one
    :func:`run_students_multi` call (cached): chapter 4 calls this with the same
    arguments as chapter 3 and gets the same students back without training.
    """
    from .losses import CE, KD, SKD, DiceKD

    s = setting_for(data.name)
    epochs = epochs or s.student_epochs
    widths = sorted(set(int(w) for w in teacher_widths) | {int(s.teacher_width)})
    ablation_temperatures = (T,) if ablation_temperatures is None else tuple(ablation_temperatures)
    teacher_rows, teacher_logits = [], {}
    for w in widths:
        model, logits, _ = get_teacher(data, s.teacher, w, s.teacher_epochs, lr=s.lr,
                                       batch_size=s.batch_size, device=device, cache=cache,
                                       use_cache=use_cache)
        teacher_logits[w] = logits
        teacher_rows.append({"width": w, "params": count_parameters(model),
                             "test_acc": (logits.test.argmax(-1) == data.y_test).float().mean().item(),
                             "train_logit_norm": logits.train.norm(dim=-1).mean().item(),
                             "train_max_prob": torch.softmax(logits.train, -1).max(-1).values.mean().item()})
    d = int(s.teacher_width)
    plan = [(None, CE())]
    plan += [(d, KD(T=float(t), gamma=gamma)) for t in temperatures]
    plan += [(d, SKD(T=float(t), gamma=gamma, multiplier=float(multiplier))) for t in temperatures]
    plan += [(d, DiceKD(T=float(t), gamma=gamma)) for t in temperatures]
    plan += [(d, SKD(T=float(T), gamma=gamma, multiplier=float(m))) for m in multipliers]
    plan += [(d, SKD(T=float(t), gamma=gamma, multiplier=float(multiplier), ce_on_raw=True))
             for t in ablation_temperatures]
    for w in widths:
        plan += [(w, KD(T=float(T), gamma=gamma)),
                 (w, SKD(T=float(T), gamma=gamma, multiplier=float(multiplier)))]
    unique = []
    for item in plan:
        if item not in unique:
            unique.append(item)
    runs, logits = run_students_multi(
        data, teacher_logits, s.student, unique, seeds, epochs, width=s.student_width,
        depth=s.student_depth if s.student == "mlp" else None, lr=s.lr,
        batch_size=s.batch_size, device=device, keep_logits=True, cache=cache,
        use_cache=use_cache)
    runs.insert(0, "dataset", data.name)
    settings = dict(seeds=list(seeds), temperatures=list(temperatures), T=T, gamma=gamma,
                    multiplier=multiplier, multipliers=list(multipliers), teacher_widths=widths,
                    ablation_temperatures=list(ablation_temperatures), epochs=epochs,
                    teacher=s.teacher, teacher_epochs=s.teacher_epochs, student=s.student,
                    student_width=s.student_width, student_depth=s.student_depth, lr=s.lr,
                    batch_size=s.batch_size)
    return SKDStudy(runs, logits, pd.DataFrame(teacher_rows), teacher_logits, d, settings)
