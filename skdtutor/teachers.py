"""Teachers, trained once per setting and kept in the cache (:mod:`skdtutor.cache`).

* :func:`get_teacher` / :func:`default_teacher` — weights on disk, logits in memory;
* :func:`teacher_snapshots` — the teacher's logits after every epoch;
* :func:`labelled_mask`, :func:`subset_teacher`, :func:`hard_targets` — teachers
  for distillation with few labels.

What to build and how to train it default to the dataset's
:class:`~skdtutor.config.Setting` (``setting.teacher`` and ``setting.teacher_train``).
"""
from __future__ import annotations

import math

import pandas as pd
import torch

from . import cache as cache_mod
from .config import ModelSpec, TrainConfig, setting_for
from .data import stratified_split
from .progress import one_bar
from .steps import TeacherLogits, compute_teacher_logits
from .train import train_teacher

__all__ = ["get_teacher", "default_teacher", "teacher_snapshots", "labelled_mask",
           "subset_teacher", "hard_targets"]

_LOGITS: dict[tuple, TeacherLogits] = {}  # path -> logits, so chapters share them in one kernel


def _resolve(data, spec, config, overrides) -> tuple[ModelSpec, TrainConfig]:
    s = setting_for(data.name)
    spec = s.teacher if spec is None else spec
    config = (s.teacher_train if config is None else config).replace(**overrides)
    if not isinstance(spec, ModelSpec):
        raise ValueError(f"spec must be a ModelSpec (e.g. ModelSpec('cnn', width=32)), got {spec!r}")
    return spec, config


def _key(data, spec: ModelSpec, cfg: TrainConfig) -> tuple:
    """Every setting that changes the weights (and, for a subset, which samples it keeps)."""
    key = (data.name, data.seed, len(data.y_train), spec, cfg.epochs, cfg.seed, cfg.lr,
           cfg.batch_size, cfg.weight_decay)
    if "train_subset" in data.info:  # two subsets of one size must not share a cache entry
        key += (cache_mod.tensor_digest(data.x_train, data.y_train.double()),)
    return key


def _fits(state: dict, model) -> None:
    """Raise when a stored state dict does not fit ``model`` (keys, shapes) or is not finite."""
    want = model.state_dict()
    if not isinstance(state, dict) or set(state) != set(want):
        raise ValueError(f"its weights have keys {sorted(state)[:4]}..., the model {sorted(want)[:4]}...")
    for k, v in want.items():
        if not isinstance(state[k], torch.Tensor) or state[k].shape != v.shape:
            raise ValueError(f"weight {k!r} has shape {tuple(getattr(state[k], 'shape', ()))}, "
                             f"the model's is {tuple(v.shape)}")
        if state[k].is_floating_point() and not torch.isfinite(state[k]).all():
            raise ValueError(f"weight {k!r} holds NaN or infinite values")


def _logits_fit(logits, data) -> None:
    """Raise when stored (train, val, test) logits do not fit ``data``'s splits or are not finite."""
    for t, split in zip(logits, ("train", "val", "test")):
        n = len(getattr(data, f"y_{split}"))
        if not isinstance(t, torch.Tensor) or t.shape != (n, data.num_classes):
            raise ValueError(f"{split} logits of shape {tuple(getattr(t, 'shape', ()))}, "
                             f"expected ({n}, {data.num_classes})")
        if not torch.isfinite(t).all():
            raise ValueError(f"{split} logits hold NaN or infinite values")


@one_bar("teacher")
def get_teacher(data, spec: ModelSpec | None = None, config: TrainConfig | None = None, *,
                cache=None, use_cache: bool = True, progress="auto", **overrides):
    """Train (or load from the cache) a teacher; return ``(model, TeacherLogits, history_df)``.

    ``spec`` (what to build) and ``config`` (how to train; ``**overrides`` change
    its fields, e.g. ``epochs=2``) default to the dataset's setting. The weights
    are built and shuffled with ``config.seed``. The cache key holds every setting
    that changes the weights: dataset, its split seed, the spec and the training
    settings (and, for a :meth:`~skdtutor.data.DataBundle.subset`, a digest of the
    kept samples).
    """
    spec, cfg = _resolve(data, spec, config, overrides)
    path = cache_mod.entry_path("teacher", _key(data, spec, cfg), cache, device=cfg.device)
    if use_cache:
        cache_mod.check_writable(cache)
    model = spec.build(data, seed=cfg.seed)

    def fits(stored):
        _fits(stored["model"], model)
        return {"model": stored["model"], "history": pd.DataFrame(stored["history"])}

    stored = cache_mod.load(path, validate=fits) if use_cache else None
    if stored is not None:
        model.load_state_dict(stored["model"])
        history = stored["history"]
    else:
        hist = train_teacher(model, data, config=cfg, progress=progress)
        history = hist.df
        if use_cache:
            cache_mod.save(path, {"model": {k: v.cpu() for k, v in model.state_dict().items()},
                                  "history": hist.rows})
    model.eval()
    if (path, use_cache) not in _LOGITS or not use_cache or stored is None:
        _LOGITS[(path, use_cache)] = compute_teacher_logits(model, data, device=cfg.device)
    return model, _LOGITS[(path, use_cache)], history


def default_teacher(data, *, cache=None, use_cache: bool = True, progress="auto", **overrides):
    """:func:`get_teacher` with the dataset's default setting (what every chapter shares)."""
    return get_teacher(data, cache=cache, use_cache=use_cache, progress=progress, **overrides)


def teacher_snapshots(data, spec: ModelSpec | None = None, config: TrainConfig | None = None, *,
                      cache=None, use_cache: bool = True, **overrides):
    """Train a teacher and keep its logits on every split after every epoch.

    Returns ``(snapshots, history_df)`` where ``snapshots[e]`` is the
    :class:`TeacherLogits` after epoch ``e`` (1-based; ``snapshots[0]`` is the
    untrained model). Arguments as in :func:`get_teacher`; cached the same way
    (the logits, not the weights).
    """
    spec, cfg = _resolve(data, spec, config, overrides)
    path = cache_mod.entry_path("snapshots", _key(data, spec, cfg), cache, device=cfg.device)
    if use_cache:
        cache_mod.check_writable(cache)

    def fits(stored):
        snaps = stored["snapshots"]
        if len(snaps) != cfg.epochs + 1:
            raise ValueError(f"{len(snaps)} snapshots, expected {cfg.epochs + 1}")
        for t in snaps:
            _logits_fit(t, data)
        return [TeacherLogits(*t) for t in snaps], pd.DataFrame(stored["history"])

    stored = cache_mod.load(path, validate=fits) if use_cache else None
    if stored is not None:
        return stored
    model = spec.build(data, seed=cfg.seed)
    snapshots = [compute_teacher_logits(model, data, device=cfg.device)]

    def keep(epoch, m):
        snapshots.append(compute_teacher_logits(m, data, device=cfg.device))

    hist = train_teacher(model, data, config=cfg, progress=False, callback=keep)
    if use_cache:
        cache_mod.save(path, {"snapshots": [[t.train, t.val, t.test] for t in snapshots],
                              "history": hist.rows})
    return snapshots, hist.df


def labelled_mask(data, fraction: float, seed: int = 0) -> torch.Tensor:
    """Boolean mask over the training split that keeps the labels of ``fraction`` of every class.

    Deterministic in ``seed``; the kept samples of a smaller fraction are not
    necessarily among those of a larger one.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    y = data.y_train.cpu().numpy()
    _, kept = stratified_split(y, fraction, seed)
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
                   cache=None, use_cache: bool = True, progress="auto", **overrides):
    """A teacher trained on the labelled part only (as in the few-label study).

    The labels of ``fraction`` of every class are kept (:func:`labelled_mask`); a
    teacher of the dataset's default spec trains on those samples alone
    (:meth:`~skdtutor.data.DataBundle.subset`) for ``ceil(teacher_steps / batches
    per epoch)`` epochs, cached like :func:`get_teacher` (``**overrides`` change the
    other training settings, e.g. ``device``). Returns ``(mask, model, logits,
    epochs)``, the logits (:class:`TeacherLogits`) on the *whole* training split,
    unlabelled samples included.
    """
    cfg = setting_for(data.name).teacher_train.replace(**overrides)
    mask = labelled_mask(data, fraction, subset_seed)
    epochs = max(1, math.ceil(teacher_steps / math.ceil(int(mask.sum()) / cfg.batch_size)))
    model, _, _ = get_teacher(data.subset(torch.nonzero(mask).flatten()), config=cfg.replace(epochs=epochs),
                              cache=cache, use_cache=use_cache, progress=progress)
    return mask, model, compute_teacher_logits(model, data, device=cfg.device), epochs
