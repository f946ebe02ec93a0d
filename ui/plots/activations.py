"""Activation health per layer: saturated (sigmoid, tanh) or dead (ReLU) units over steps,
and the activations' mean ± std.

A sigmoid or tanh unit pinned near its limits passes almost no gradient; a ReLU unit that
is zero for every sample is dead. Either fraction creeping up layer after layer is the
usual story behind vanishing gradients, so the top plot uses the same depth colours as
the gradient plot. The bottom plot shows every layer's mean faintly and the selected
layer's mean with a ± std band.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtGui import QColor

from ui.plots import style
from ui.plots.base import PlotPanel, show_title
from ui.plots.history import RunHistory
from ui.plots.layer_lines import LayerLines, depth_colors

SATURATING = {"sigmoid", "tanh"}
RECTIFIED = {"relu"}


def fraction_title(kinds: list[str]) -> str:
    saturating = any(k in SATURATING for k in kinds)
    rectified = any(k in RECTIFIED for k in kinds)
    if saturating and rectified:
        return "Saturated (sigmoid/tanh) and dead (ReLU) units"
    if rectified:
        return "Dead ReLU units"
    if saturating:
        return "Saturated units"
    return "Saturated / dead units"


class ActivationPlot(PlotPanel):
    layer_clicked = Signal(str)

    def __init__(self, history: RunHistory | None = None, parent=None):
        super().__init__(history, parent)
        self.selected: str | None = None
        self.fraction_plot = self.add_plot("Saturated / dead units", "fraction")
        self.mean_plot = self.add_plot("Activation mean ± std", "activation")
        self.link_x()
        # Activation statistics are estimates from 8 samples every few dozen steps: a
        # column's mean is a better reading than its noisy extremes (and far cheaper
        # to paint than 100 envelopes of noise).
        self.fractions = LayerLines(self.fraction_plot, on_click=self._clicked, peaks=False)
        self.means = LayerLines(self.mean_plot, on_click=self._clicked, alpha=0.45, peaks=False)
        self.band_top = pg.PlotDataItem()
        self.band_bottom = pg.PlotDataItem()
        self.band = pg.FillBetweenItem(self.band_top, self.band_bottom)
        self.selected_mean = pg.PlotDataItem()
        for item in (self.band, self.band_top, self.band_bottom, self.selected_mean):
            self.mean_plot.addItem(item)
        self.selected_mean.setZValue(20)
        self.band.setZValue(15)
        self.empty = pg.TextItem("no activation statistics yet", anchor=(0.5, 0.5))
        self.fraction_plot.addItem(self.empty, ignoreBounds=True)
        self.fraction_plot.getViewBox().setLimits(yMin=-0.02, yMax=1.02)
        self.fraction_plot.setYRange(0, 1, padding=0.02)
        self.restyle()

    # -- public API -----------------------------------------------------------------------
    def highlight_layer(self, name: str | None) -> None:
        self.selected = name
        self.fractions.highlight(name)
        self.means.highlight(name)
        self.refresh()

    def _clicked(self, name: str) -> None:
        self.highlight_layer(name)
        self.layer_clicked.emit(name)

    # -- drawing --------------------------------------------------------------------------
    def _data_key(self, h: RunHistory):
        return (h.act_fraction.version, tuple(h.act_fraction.names))

    def _view_key(self):
        names = self.history.act_fraction.names
        columns = self.pixel_columns(self.fraction_plot, len(names))
        return (self.x_window(self.fraction_plot), columns, self.selected)

    def _fraction_rows(self, names: list[str]) -> list[int | None]:
        kinds = self.history.activation_kinds
        # Layers whose activation has neither statistic (GELU, leaky ReLU) report 0: leave
        # them out rather than draw a misleading flat line.
        return [
            i if i < len(kinds) and (kinds[i] in SATURATING or kinds[i] in RECTIFIED) else None
            for i in range(len(names))
        ]

    def _redraw(self) -> None:
        h = self.history
        names = h.act_fraction.names
        colours = depth_colors(names, h.layers)
        self.fractions.ensure(names, colours)
        self.means.ensure(names, colours)
        title = fraction_title(h.activation_kinds)
        if self.fraction_plot._studio["title"] != title:
            show_title(self.fraction_plot, title)
        if len(h.act_fraction) == 0:
            self.fractions.clear()
            self.means.clear()
            self._band(None)
            (x0, x1), (y0, y1) = self.fraction_plot.getViewBox().viewRange()
            self.empty.setPos((x0 + x1) / 2, (y0 + y1) / 2)
            self.empty.setText(
                # Only a run's start says which layers it watches (a cleared plot has none).
                "no activation layers"
                if h.start and "activation_layers" in h.start and not names
                else "no activation statistics yet"
            )
            self.empty.show()
            return
        self.empty.hide()
        lo, hi = self.x_window(self.fraction_plot)
        columns = self.pixel_columns(self.fraction_plot, len(names))
        self.fractions.set_window(
            h.act_fraction.window(lo, hi, columns), self._fraction_rows(names)
        )
        means = h.act_mean.window(lo, hi, columns)
        self.means.set_window(means)
        selected = self.selected if self.selected in names else None
        stds = h.act_std.window(lo, hi, columns) if selected is not None else None
        self._band(selected, means, stds, colours.get(selected))

    def _band(self, name, means=None, stds=None, colour=None) -> None:
        """The selected layer's mean ± std, from the same decimated window as the lines
        (per-column means: a band over raw noisy samples is a self-crossing polygon that
        takes Qt hundreds of milliseconds to fill)."""
        if name is None or means is None or stds is None or len(stds) != len(means):
            for item in (self.band_top, self.band_bottom, self.selected_mean):
                item.setData([], [])
            self.band.hide()
            return
        row = self.history.act_mean.names.index(name)
        x = means.x.astype(np.float64)
        mean = means.mean[row].astype(np.float64)
        std = stds.mean[row].astype(np.float64)
        self.band_top.setData(x, mean + std)
        self.band_bottom.setData(x, mean - std)
        self.selected_mean.setData(x, mean)
        colour = colour if colour is not None else style.palette().train
        self.selected_mean.setPen(style.pen(colour, 2.0))
        self.band.setBrush(pg.mkBrush(_with_alpha(colour, 0.25)))
        for item in (self.band_top, self.band_bottom):
            item.setPen(style.pen(colour, 1.0, alpha=0.6))
        self.band.show()

    def _restyle(self, pal: style.Palette) -> None:
        self.fractions.restyle()
        self.means.restyle()
        self.empty.setColor(pal.muted)


def _with_alpha(colour, alpha: float):
    c = QColor(colour)
    c.setAlphaF(alpha)
    return c
