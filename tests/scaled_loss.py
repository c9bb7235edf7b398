"""A test loss that can make one member diverge: CE times ``scale`` (``scale=inf`` diverges in
the first step). Module level, so that a sweep worker process can unpickle it. Importing it
leaves the method registry as it was (the CLI's method names must not change); a test that
needs the name registered runs under :func:`registered`."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ClassVar

from skdtutor.losses import CE, METHODS, DistillLoss


@dataclass(frozen=True)
class ScaledCE(DistillLoss):
    scale: float = 1.0
    name: ClassVar[str] = "scaled-ce-test"
    stackable: ClassVar[tuple[str, ...]] = ("scale",)
    needs_teacher: ClassVar[bool] = False

    @staticmethod
    def per_sample(student_logits, teacher_logits=None, labels=None, label_mask=None, *, scale):
        # scale is a number, or (members, 1, 1) in a stacked sweep: broadcast like the logits
        return (CE.per_sample(student_logits, None, labels, label_mask).unsqueeze(-1) * scale).squeeze(-1)


METHODS.pop(ScaledCE.name, None)


@contextlib.contextmanager
def registered():
    """``ScaledCE`` in the method registry for the duration of the block."""
    METHODS[ScaledCE.name] = ScaledCE
    try:
        yield ScaledCE
    finally:
        METHODS.pop(ScaledCE.name, None)
