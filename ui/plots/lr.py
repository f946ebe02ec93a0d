"""The learning rate over steps: schedules, warm-up and decays at a glance.

A schedule that spans more than a decade (step decay, cosine to near zero) switches the
y axis to a log scale, where each decay is an equal step; a constant or gently varying
rate stays linear, where its value reads directly.
"""

from __future__ import annotations

import numpy as np

from ui.plots import style
from ui.plots.base import Marks, PlotPanel, PowerAxis
from ui.plots.history import RunHistory

LOG_SPAN = 20.0  # max / min above which the axis goes logarithmic


class LearningRatePlot(PlotPanel):
    def __init__(self, history: RunHistory | None = None, parent=None):
        super().__init__(history, parent)
        self.plot = self.add_plot("Learning rate", "lr", left_axis=PowerAxis("left"))
        self.lr = self.curve(self.plot)
        self.marks = Marks([self.plot], labelled=self.plot)
        self.log = False
        self._pinned = False  # the y range was set here for a constant rate
        self.restyle()

    def _data_key(self, h: RunHistory):
        return h.lr.version

    def _redraw(self) -> None:
        h = self.history
        lr = h.lr.data
        positive = lr[np.isfinite(lr) & (lr > 0)]
        log = bool(positive.size) and float(positive.max()) / float(positive.min()) > LOG_SPAN
        if log != self.log:
            self.log = log
            # pyqtgraph maps the data itself; one curve of at most one point per step.
            self.plot.setLogMode(x=False, y=log)
        if log:
            lr = np.where(lr > 0, lr, np.nan)
        finite = bool(np.isfinite(lr).all())
        self.lr.setData(
            h.step.data,
            lr,
            connect="all" if finite else "finite",
            skipFiniteCheck=finite,
        )
        vb = self.plot.getViewBox()
        if positive.size and float(positive.max()) == float(positive.min()) and not log:
            # A constant rate: show it against zero instead of a range of rounding noise.
            value = float(positive.max())
            vb.setYRange(0.0, value * 1.6, padding=0)
            self._pinned = True
        elif self._pinned:
            vb.enableAutoRange(y=True)
            self._pinned = False
        self.marks.sync(h.marks)

    def _restyle(self, pal: style.Palette) -> None:
        self.lr.setPen(style.pen(pal.lr, 1.6))
        self.marks.sync(self.history.marks, force=True)
