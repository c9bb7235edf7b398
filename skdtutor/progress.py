"""Progress bars: one bar per long call, shown only where a person is watching.

Every trainer and every long call (:func:`skdtutor.runs.run_students`,
:func:`skdtutor.regime.regime_map`, :func:`skdtutor.skd_study.skd_study`,
:func:`skdtutor.semi_study.semi_supervised`, :func:`skdtutor.teachers.get_teacher`)
takes ``progress``:

* ``True`` — show a bar; ``False`` — never;
* ``"auto"`` (the default) — show one when :func:`show_progress` says a person is watching:
  an interactive Jupyter/Colab/VS Code kernel (the cell's execute request accepts keyboard
  input, which headless runners such as nbclient, nbconvert, papermill and the book build
  never do) or a terminal; never in a book build, a test or a pipe.

The environment variable ``SKDTUTOR_NO_PROGRESS=1`` turns every bar off (even ``True``);
``SKDTUTOR_PROGRESS=1`` turns ``"auto"`` on everywhere.

A long call opens one bar for everything trained inside it (:func:`one_bar`): the inner
trainers add their epochs to it instead of opening bars of their own. tqdm is imported only
when a bar is shown (the notebook bar only where ipywidgets is installed), so a run without
a bar never meets tqdm's ``TqdmWarning``. This module imports neither torch nor tqdm.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import inspect
import os
import sys

__all__ = ["show_progress", "progress_bar", "progress_scope", "one_bar", "in_interactive_kernel"]

_OFF = object()  # the active scope decided: no bar
_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("skdtutor_progress", default=None)


def _env_on(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _kernel():
    """The running IPython kernel, or None (plain Python, a terminal IPython)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if hasattr(ipython, "get_ipython") else None
    return getattr(shell, "kernel", None)


def in_interactive_kernel() -> bool:
    """Whether this runs in an IPython kernel with a person at the frontend.

    Jupyter, JupyterLab, VS Code and Colab send each cell's execute request with
    ``allow_stdin`` true (``input()`` works); headless executors (nbclient, hence
    nbconvert ``--execute``, papermill, myst-nb/jupyter-cache in the book build) send it false.
    """
    kernel = _kernel()
    if kernel is None:
        return False
    try:
        parent = kernel.get_parent() if hasattr(kernel, "get_parent") else kernel._parent_header
    except Exception:  # noqa: BLE001 - an ipykernel without either: assume headless
        return False
    return bool((parent or {}).get("content", {}).get("allow_stdin", False))


def show_progress(progress="auto") -> bool:
    """Whether ``progress`` (True, False or ``"auto"``) shows a bar here (see the module doc)."""
    if isinstance(progress, str) and progress != "auto":
        raise ValueError(f"progress must be True, False or 'auto', got {progress!r}")
    if _env_on("SKDTUTOR_NO_PROGRESS") or not progress:
        return False
    if progress != "auto":
        return True
    if _env_on("SKDTUTOR_PROGRESS"):
        return True
    if _kernel() is not None:
        return in_interactive_kernel()
    stream = sys.stderr
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


class _NoBar:
    """What a hidden bar is: every call does nothing (and tqdm is never imported)."""

    total = n = 0

    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass


class _Shared(_NoBar):
    """An inner trainer's view of its long call's bar: adds its epochs, never closes it."""

    def __init__(self, bar, total):
        self.bar = bar
        bar.total = (bar.total or 0) + int(total)
        bar.refresh()

    def update(self, n=1):
        self.bar.update(n)

    def set_postfix(self, *args, **kwargs):
        self.bar.set_postfix(*args, **kwargs)


def _tqdm(total, desc):
    """A notebook bar in a kernel with ipywidgets, else a text bar on stderr."""
    if _kernel() is not None and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(total=total, desc=desc, leave=False)


def progress_bar(total, desc, enabled="auto"):
    """A bar over ``total`` steps: the active long call's shared bar when there is one, else
    a bar of its own when :func:`show_progress` allows, else a no-op object."""
    active = _ACTIVE.get()
    if active is _OFF or enabled is False or enabled is None or _env_on("SKDTUTOR_NO_PROGRESS"):
        return _NoBar()
    if active is not None:
        return _Shared(active, total)
    return _tqdm(total, desc) if show_progress(enabled) else _NoBar()


@contextlib.contextmanager
def progress_scope(progress="auto", desc="skdtutor"):
    """One bar for everything trained inside the block (nested scopes join the outer one)."""
    if _ACTIVE.get() is not None:
        yield
        return
    bar = _tqdm(0, desc) if show_progress(progress) else _OFF
    token = _ACTIVE.set(bar)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
        if bar is not _OFF:
            bar.close()


def one_bar(desc: str):
    """Decorator: the call's ``progress`` argument opens one :func:`progress_scope`."""
    def decorate(fn):
        sig = inspect.signature(fn)
        default = sig.parameters["progress"].default

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            progress = sig.bind_partial(*args, **kwargs).arguments.get("progress", default)
            with progress_scope(progress, desc):
                return fn(*args, **kwargs)
        return wrapper
    return decorate
