"""The live explorer (ipywidgets) for a reader with a running kernel: :func:`live_explorer`.

Pick any test sample, a temperature ``T`` and a sphere multiplier ``m``; see the input, the
teacher's distribution ``softmax(z / T)`` and on the sphere ``softmax(sphere(z, m) / T)``,
the same for a trained student, and that student's test accuracy at the sweep's ``T``
nearest the slider. The same call returns the kernel-free
:class:`~skdtutor.explorer.SoftmaxExplorer` where no one can move a widget (the static book,
a headless build, no ipywidgets), so a chapter cell works in both. ipywidgets and matplotlib
are imported only when the widget is built.
"""
from __future__ import annotations

import io
import math
import operator
from typing import Mapping

import numpy as np
import torch

from .explorer import SoftmaxExplorer, panel_html, softmax_explorer
from .style import COLORS, checked_index, checked_temperature, positive_number

__all__ = ["live_explorer", "LiveExplorer"]


def _test_logits(logits, n: int, what: str) -> torch.Tensor:
    z = getattr(logits, "test", logits)  # TeacherLogits -> its test split
    z = torch.as_tensor(z).detach().to("cpu", torch.float64)
    if z.dim() != 2 or z.shape[0] != n:
        raise ValueError(f"{what} must be the test split's logits, shape ({n}, classes); "
                         f"got {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return z


def _nearest(values, T: float) -> float:
    """The value of ``values`` nearest ``T`` on a log scale."""
    return min(values, key=lambda v: abs(math.log(v) - math.log(T)))


class LiveExplorer:
    """The widget of :func:`live_explorer`: ``.widget`` (display it, or display this object),
    the sliders ``.sample``, ``.temperature``, ``.multiplier``, and ``.shown``: what the
    panels show now (``"teacher"``, ``"teacher_sphere"`` and, with a student, ``"student"``,
    ``"student_sphere"`` probabilities; ``"student_T"``; ``"accuracy"``, the line of text)."""

    def __init__(self, data, teacher, students, runs, method, temperature, multiplier, sample,
                 t_range, m_range):
        import ipywidgets as w

        self.data, self.teacher, self.students, self.runs, self.method = data, teacher, students, runs, method
        n = teacher.shape[0]
        self.sample = w.IntSlider(value=sample, min=0, max=n - 1, description="test sample",
                                  continuous_update=False)
        self.temperature = w.FloatLogSlider(value=temperature, base=10, min=math.log10(t_range[0]),
                                            max=math.log10(t_range[1]), step=0.01, description="T",
                                            readout_format=".3g")
        self.multiplier = w.FloatSlider(value=multiplier, min=m_range[0], max=m_range[1], step=0.05,
                                        description="m (sphere)")
        self.image = w.Image(format="png", layout=w.Layout(width="150px"))
        self.bars, self.info = w.HTML(), w.HTML()
        self.widget = w.VBox([w.HBox([self.sample, self.temperature, self.multiplier]),
                              w.HBox([self.image, self.bars]), self.info])
        self._image_of = None
        for slider in (self.sample, self.temperature, self.multiplier):
            slider.observe(lambda change: self.update(), names="value")
        self.update()

    def probabilities(self, sample=None, temperature=None, multiplier=None) -> dict:
        """The panels' distributions for a sample, T and m (default: the sliders' values)."""
        from .losses import sphere

        i = self.sample.value if sample is None else operator.index(sample)
        T = checked_temperature(self.temperature.value if temperature is None else temperature)
        m = positive_number(self.multiplier.value if multiplier is None else multiplier, "multiplier")
        out, student_T = {}, None
        rows = {"teacher": self.teacher[i:i + 1]}
        if self.students:
            student_T = _nearest(self.students, T)
            rows["student"] = self.students[student_T][i:i + 1]
        for who, z in rows.items():
            out[who] = torch.softmax(z / T, dim=1)[0].numpy()
            out[f"{who}_sphere"] = torch.softmax(sphere(z, m) / T, dim=1)[0].numpy()
        out["student_T"] = student_T
        return out

    def accuracy_text(self, T: float) -> str:
        """The student's test accuracy (mean ± std over seeds) at the sweep's T nearest ``T``."""
        from .stats import mean_pm_std

        if self.runs is None:
            return ""
        rows = self.runs[self.runs["method"].str.lower() == self.method]
        grid = sorted(float(t) for t in rows["T"].dropna().unique() if t > 0)
        if not grid:
            return f"the sweep has no {self.method} rows"
        t = _nearest(grid, T)
        acc = rows.loc[np.isclose(rows["T"].astype(float), t), "test_acc"].dropna()
        return (f"{self.method} students trained at T = {t:g}: test accuracy "
                f"{mean_pm_std(acc.mean(), acc.std())} % over {len(acc)} seed(s)")

    def _draw_input(self, i: int) -> bytes:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from .viz import show_input

        fig = Figure(figsize=(1.6, 1.6), dpi=100)
        FigureCanvasAgg(fig)
        show_input(self.data.x_test[i], ax=fig.add_subplot(1, 1, 1))
        fig.tight_layout(pad=0.2)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()

    def update(self) -> None:
        """Recompute and redraw from the sliders' values (called on every slider change)."""
        i, T, m = self.sample.value, self.temperature.value, self.multiplier.value
        shown = self.probabilities()
        if self._image_of != i:
            self.image.value, self._image_of = self._draw_input(i), i
        y = int(self.data.y_test[i])
        names = [str(c) for c in self.data.class_names]
        who = [("teacher", "teacher")]
        if "student" in shown:
            who.append(("student", f"student (trained at T={shown['student_T']:g})"))
        panels = []
        for key, name in who:
            panels.append('<div style="display:flex;gap:18px;flex-wrap:wrap">'
                          + panel_html("raw", f"{name}, raw: softmax(z / T)", COLORS["kd"],
                                        shown[key], names, y, 20)
                          + panel_html("spherical", f"{name}, on the sphere (m = {m:.2f})",
                                        COLORS["skd"], shown[f"{key}_sphere"], names, y, 20)
                          + "</div>")
        self.bars.value = "".join(panels)
        accuracy = self.accuracy_text(T)
        self.info.value = (f"test sample {i}: label <b>{names[y]}</b> (highlighted), T = {T:.3g}"
                           + (f"; {accuracy}" if accuracy else ""))
        self.shown = {**shown, "accuracy": accuracy}

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def live_explorer(data, teacher_logits, student_logits=None, *, runs=None, method: str = "kd",
                  temperature: float = 4.0, multiplier: float = 2.0, sample: int = 0,
                  t_range=(0.25, 32.0), m_range=(0.5, 6.0), static_samples: int = 8,
                  live: bool | None = None):
    """A live explorer of a teacher (and a student) on ``data``'s test split.

    Parameters
    ----------
    data : a DataBundle (:func:`skdtutor.data.load`); its test split is explored.
    teacher_logits : the teacher's TeacherLogits (or its test logits, ``(n_test, C)``).
    student_logits : None, one trained student's test logits ``(n_test, C)``, or a mapping
        ``T -> logits`` of students trained at each T (the one nearest the slider is shown).
    runs : a sweep's rows (``method``, ``T``, ``test_acc``, ``seed``): the line under the
        panels gives ``method``'s accuracy at the sweep's T nearest the slider.
    temperature, multiplier, sample : the sliders' first values (T within ``t_range``,
        m within ``m_range``).
    live : None: the widget when ipywidgets is installed and a person is at the kernel
        (:func:`skdtutor.progress.in_interactive_kernel`), else the kernel-free explorer;
        True: always the widget; False: always the kernel-free explorer.

    Returns
    -------
    :class:`LiveExplorer`, or (kernel-free) a :class:`~skdtutor.explorer.SoftmaxExplorer` of
    the teacher's logits on ``static_samples`` test samples from ``sample`` on, with the
    sphere panel at ``multiplier``; display either in a cell.
    """
    import importlib.util

    from .progress import in_interactive_kernel

    n = len(data.y_test)
    teacher = _test_logits(teacher_logits, n, "teacher_logits")
    if student_logits is None:
        students = {}
    elif isinstance(student_logits, Mapping):
        students = {checked_temperature(float(t)): _test_logits(z, n, f"student_logits[{t!r}]")
                    for t, z in student_logits.items()}
    else:
        students = {checked_temperature(temperature): _test_logits(student_logits, n, "student_logits")}
    if students and next(iter(students.values())).shape[1] != teacher.shape[1]:
        raise ValueError("the student's and the teacher's logits have different numbers of classes")
    sample = checked_index(sample, n, within="the test split")
    method = str(method).lower()
    if live is None:
        live = importlib.util.find_spec("ipywidgets") is not None and in_interactive_kernel()
    if not live:
        rows = [(sample + k) % n for k in range(min(static_samples, n))]
        names = [str(c) for c in data.class_names]
        return softmax_explorer(teacher[rows], names, temperature=temperature, t_range=t_range,
                                multiplier=multiplier, m_range=m_range,
                                labels=[f"test #{i} (label {names[int(data.y_test[i])]})" for i in rows],
                                highlight=[int(data.y_test[i]) for i in rows],
                                title="The teacher's softened distribution")
    # the same checks the kernel-free explorer makes
    SoftmaxExplorer(teacher[:1], temperature=temperature, t_range=t_range, multiplier=multiplier,
                    m_range=m_range)
    return LiveExplorer(data, teacher, students, runs, method, float(temperature), float(multiplier),
                        sample, tuple(map(float, t_range)), tuple(map(float, m_range)))
