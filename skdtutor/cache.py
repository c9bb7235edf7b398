"""The one on-disk cache of the package: teachers, snapshots, student runs, study rows.

An entry is a file under :func:`cache_dir` whose name is a hash of its key (any
``repr``-able tuple), of :data:`SCHEMA_VERSION` and of the device type the
numbers were computed on. Entries hold plain containers only (tensors, numbers,
strings, lists, dicts; a DataFrame as :func:`frame_to_dict`) and are read with
``torch.load(..., weights_only=True)``, so loading a cache file runs no code.

* :func:`entry_path` — where an entry lives;
* :func:`load` — the stored object, or None when the file is missing or damaged
  (a damaged file warns once, naming it, and the caller recomputes);
* :func:`save` — atomic: a temporary file in the same folder, then ``os.replace``.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import torch

__all__ = ["SCHEMA_VERSION", "cache_dir", "entry_path", "load", "save", "frame_to_dict",
           "frame_from_dict", "tensor_digest"]

SCHEMA_VERSION = 2  # bump when the layout of any entry changes: old entries are then never read

_WARNED: set[str] = set()


def cache_dir(path=None) -> Path:
    """The cache folder: ``path``, else ``$SKDTUTOR_CACHE``, else ``~/.cache/skdtutor``."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get("SKDTUTOR_CACHE", Path.home() / ".cache" / "skdtutor"))


def entry_path(kind: str, key, cache=None, device="auto") -> Path:
    """The file of entry ``key`` of ``kind`` (``"teacher"``, ``"students"``, ...).

    The file name hashes ``(SCHEMA_VERSION, kind, device type, key)``: results
    computed on a GPU never stand in for CPU ones.
    """
    from .train import resolve_device

    text = repr((SCHEMA_VERSION, kind, resolve_device(device).type, key))
    return cache_dir(cache) / f"{kind}-{hashlib.sha1(text.encode()).hexdigest()[:20]}.pt"


def load(path):
    """The object stored at ``path``; None when it is missing or cannot be read (warned once)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable entry is recomputed
        if str(path) not in _WARNED:
            _WARNED.add(str(path))
            warnings.warn(f"ignoring damaged cache entry {path} ({type(exc).__name__}: {exc}); "
                          "it will be recomputed", RuntimeWarning, stacklevel=2)
        return None


def save(path, obj) -> None:
    """Write ``obj`` to ``path`` atomically (never a half-written entry)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def frame_to_dict(frame: pd.DataFrame) -> dict:
    """A DataFrame as plain lists (columns, values, dtypes) for :func:`save`."""
    columns = {str(c): [v.item() if hasattr(v, "item") else v for v in frame[c].tolist()]
               for c in frame.columns}
    return {"columns": columns, "dtypes": {str(c): str(t) for c, t in frame.dtypes.items()}}


def frame_from_dict(stored: dict) -> pd.DataFrame:
    """The DataFrame of :func:`frame_to_dict`, with its dtypes."""
    return pd.DataFrame(stored["columns"]).astype(stored["dtypes"])


def tensor_digest(*tensors) -> str:
    """A content hash of tensors for cache keys, rounded to 1e-3 so that last-bit
    differences (another thread count) keep the same key."""
    h = hashlib.sha1()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(torch.round(t.detach().cpu().double() * 1000).to(torch.int64).numpy().tobytes())
    return h.hexdigest()[:16]
