"""The one on-disk cache of the package: teachers, snapshots, student runs, study rows.

An entry is a file under :func:`cache_dir` whose name is a hash of its key (any
``repr``-able tuple), of :data:`SCHEMA_VERSION`, of the code that computed it
(this package's and torch's versions) and of the device type the numbers were
computed on. Its guarantees:

* **No code runs on load.** Entries hold plain containers only (tensors, numbers,
  strings, lists, dicts; a DataFrame as :func:`frame_to_dict`) and are read with
  ``torch.load(..., weights_only=True)``: a planted pickle is refused, never run.
* **Integrity.** The file starts with a header, ``MAGIC``, the payload's length and
  its SHA-256, then the payload (what ``torch.save`` wrote). :func:`read` checks
  all three before unpickling anything.
* **Atomic writes.** :func:`save` writes a temporary file in the same folder, then
  ``os.replace``: a reader (another process included) sees the old entry, the new
  one or none, never half of one, even when the writer is killed mid-save. Two runs
  writing one entry at once both write complete files; the last rename wins.
* **Damage is recomputed.** :func:`load` returns None for a missing entry and for
  a damaged one (unreadable, wrong checksum, refused by ``weights_only``, or
  rejected by the caller's ``validate``, e.g. a state dict that does not fit the
  model): it warns once, naming the file, and the caller recomputes and replaces it.

:func:`read` is the strict form (raises :class:`DamagedEntry`), used for checkpoints.
:func:`check_writable` fails early, before any training, when the folder cannot
hold entries.

**Under torchrun** (:mod:`skdtutor.distributed`) only rank 0 touches an entry:
:func:`load` reads the file on rank 0 and hands its bytes to every rank, which all
check and decode the same bytes (so all ranks agree on a hit or a miss, even while
another run writes the entry); :func:`save` writes on rank 0 and returns on every
rank once the entry is in place (or raises on every rank when rank 0 could not write it).
"""
from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from . import distributed

__all__ = ["SCHEMA_VERSION", "DamagedEntry", "cache_dir", "check_writable", "entry_path", "read",
           "load", "save", "frame_to_dict", "frame_from_dict", "tensor_digest"]

# Bump when the layout of any entry changes: old entries are then never read.
# 3: checksummed header; package and torch versions in the key.
SCHEMA_VERSION = 3

MAGIC = b"SKDTCACHE1\n"
_HEADER = struct.Struct(">Q32s")  # payload length, SHA-256 of the payload
_STALE_TMP_S = 3600  # temporary files of a killed writer older than this are removed by save()

_WARNED: set[str] = set()


class DamagedEntry(ValueError):
    """A cache entry or checkpoint that cannot be trusted (its message names the file)."""


def cache_dir(path=None) -> Path:
    """The cache folder: ``path``, else ``$SKDTUTOR_CACHE``, else ``~/.cache/skdtutor``."""
    if path is not None:
        return Path(path)
    return Path(os.environ.get("SKDTUTOR_CACHE", Path.home() / ".cache" / "skdtutor"))


def check_writable(cache=None) -> Path:
    """The cache folder, created if needed; a ValueError naming it when it cannot hold entries
    (a file, an unwritable folder). Call it before training so no work is lost."""
    folder = cache_dir(cache)
    fix = "pass another folder (--cache-dir / cache=) or turn the cache off (--no-cache / use_cache=False)"
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"cache folder {str(folder)!r} is a file, not a folder; {fix}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"cache folder {str(folder)!r} is not writable ({exc.strerror or exc}); "
                         f"{fix}") from None
    return folder


def _code_version() -> tuple:
    from . import __version__

    return (__version__, ".".join(torch.__version__.split("+")[0].split(".")[:2]))


def entry_path(kind: str, key, cache=None, device="auto") -> Path:
    """The file of entry ``key`` of ``kind`` (``"teacher"``, ``"students"``, ...).

    The file name hashes ``(SCHEMA_VERSION, code version, kind, device type, key)``:
    results of older code, or computed on a GPU, never stand in for current CPU ones.
    """
    from .steps import resolve_device

    text = repr((SCHEMA_VERSION, _code_version(), kind, resolve_device(device).type, key))
    return cache_dir(cache) / f"{kind}-{hashlib.sha1(text.encode()).hexdigest()[:20]}.pt"


def _encode(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    return MAGIC + _HEADER.pack(len(payload), hashlib.sha256(payload).digest()) + payload


def read(path, what: str = "cache entry"):
    """The object stored at ``path`` by :func:`save`; :class:`DamagedEntry` (naming the file)
    when it is empty, truncated, altered, not written by :func:`save`, or would run code."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise DamagedEntry(f"{what} {str(path)!r} cannot be read ({exc.strerror or exc})") from None
    return _decode(blob, path, what)


def _decode(blob: bytes, path: Path, what: str = "cache entry"):
    """The object in the bytes ``blob`` of file ``path`` (see :func:`read`)."""
    head = len(MAGIC) + _HEADER.size
    if len(blob) < head or not blob.startswith(MAGIC):
        raise DamagedEntry(f"{what} {str(path)!r} is empty, truncated or not a skdtutor file "
                           f"({len(blob)} bytes)")
    length, digest = _HEADER.unpack(blob[len(MAGIC):head])
    payload = blob[head:]
    if len(payload) != length:
        raise DamagedEntry(f"{what} {str(path)!r} is truncated ({len(payload)} of {length} bytes)")
    if hashlib.sha256(payload).digest() != digest:
        raise DamagedEntry(f"{what} {str(path)!r} fails its checksum (the file was altered)")
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - weights_only refusal or a corrupt archive
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DamagedEntry(f"{what} {str(path)!r} holds something other than plain tensors and "
                           f"containers, refused unread ({type(exc).__name__}: {reason[:200]})") from None


def warn_damaged(path, reason: str) -> None:
    """Warn once per file that a cache entry is ignored and will be recomputed."""
    if str(path) not in _WARNED:
        _WARNED.add(str(path))
        warnings.warn(f"ignoring damaged cache entry {path} ({reason}); it will be recomputed "
                      "and replaced", RuntimeWarning, stacklevel=3)


def load(path, validate: Callable | None = None):
    """The object stored at ``path``; None when it is missing or damaged (warned once).

    ``validate(obj)`` may check that the entry fits its use (shapes, keys) and
    raise any exception when it does not: the entry is then treated as damaged.
    It may also return a converted object (returning None keeps ``obj``).
    """
    path = Path(path)
    blob = distributed.broadcast_object(_file_bytes(path) if distributed.rank() == 0 else None)
    if blob is None:
        return None
    try:
        if isinstance(blob, str):  # rank 0 could not read the file
            raise DamagedEntry(f"cache entry {str(path)!r} cannot be read ({blob})")
        obj = _decode(blob, path)
        if validate is not None:
            converted = validate(obj)
            obj = obj if converted is None else converted
        return obj
    except DamagedEntry as exc:
        warn_damaged(path, str(exc).replace(f"cache entry {str(path)!r} ", ""))
    except Exception as exc:  # noqa: BLE001 - the entry does not fit: recompute it
        warn_damaged(path, f"does not fit: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                     if str(exc) else type(exc).__name__)
    return None


def _file_bytes(path: Path):
    """The file's bytes, None when it does not exist, or why it cannot be read (a string)."""
    if not path.exists():
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        return str(exc.strerror or exc)


def _remove_stale_temporaries(path: Path) -> None:
    """Temporary files of writers killed mid-save (SIGKILL leaves them behind)."""
    now = time.time()
    for tmp in path.parent.glob(path.name + ".*.tmp"):
        try:
            if now - tmp.stat().st_mtime > _STALE_TMP_S:
                tmp.unlink()
        except OSError:
            pass


def save(path, obj) -> None:
    """Write ``obj`` to ``path`` atomically (never a half-written entry), with its checksum.

    Under torchrun rank 0 writes and every rank returns once the file is in place."""
    path, error = Path(path), None
    if distributed.rank() == 0:
        try:
            _write(path, obj)
        except Exception as exc:  # noqa: BLE001 - every rank must hear of it, then raise
            error = exc
    failure = distributed.broadcast_object(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    if failure is not None:
        raise OSError(f"rank 0 could not write cache entry {str(path)!r} ({failure})")


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = _encode(obj)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _remove_stale_temporaries(path)


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
