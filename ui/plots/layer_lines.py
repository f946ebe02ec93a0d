"""One line per layer on a plot, drawn from a decimated window of a LayerSeries.

Shared by the gradient-norm, update-ratio and activation plots. The lines are set up
once per run (when the layer names are known) and then only get setData; a layer keeps
its depth colour everywhere, a highlighted layer is drawn thicker and on top while the
others fade, and clicking near a line reports its layer. All lines of a plot live in one
MultiLineItem (see multiline.py for why not one PlotCurveItem each).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from ui.plots import style
from ui.plots.decimate import Window, envelope
from ui.plots.multiline import MultiLineItem

WIDTH = 1.0
HIGHLIGHT_WIDTH = 2.6
FADED = 0.28  # opacity of the other layers while one is highlighted


class LayerLines:
    def __init__(
        self,
        plot: pg.PlotItem,
        on_click: Callable[[str], None] | None = None,
        comparison: bool = False,
        alpha: float = 1.0,
        peaks: bool = True,
    ):
        self.plot = plot
        self.alpha = alpha  # below 1: context lines drawn faintly
        # peaks: trace each column's min and max (spikes stay visible); otherwise its
        # mean, for context lines and for sampled, noisy estimates.
        self.peaks = peaks and not comparison
        self.on_click = on_click
        self.comparison = comparison
        self.names: list[str] = []
        self.colors: dict[str, object] = {}
        self.highlighted: str | None = None
        self.item = MultiLineItem(on_pick=self._picked if on_click and not comparison else None)
        self.item.setZValue(-5 if comparison else 0)
        plot.addItem(self.item)

    # -- layers ---------------------------------------------------------------------------
    def ensure(self, names: list[str], colors: dict[str, object]) -> None:
        """Have one line per name, in these colours (cheap when nothing changed)."""
        if list(names) == self.names and colors == self.colors:
            return
        if list(names) != self.names:
            self.names = list(names)
            self.item.setData(np.zeros(0), np.zeros((len(self.names), 0), dtype=np.float32))
        self.colors = colors
        self.restyle()

    def _picked(self, index: int) -> None:
        if self.on_click is not None and 0 <= index < len(self.names):
            self.on_click(self.names[index])

    # -- data -----------------------------------------------------------------------------
    def set_window(self, window: Window, rows: list[int | None] | None = None) -> None:
        """Draw a decimated window; rows[i] is the window row of line i (None: no data)."""
        if not self.names:
            return
        if not self.peaks:
            x, y = window.x.astype(np.float64), window.mean
        else:
            x, y = envelope(window)
        finite = window.all_finite
        if rows is not None:
            picked = np.full((len(rows), y.shape[1]), np.nan, dtype=np.float32)
            for i, row in enumerate(rows):
                if row is not None and row < len(y):
                    picked[i] = y[row]
            y = picked
            finite = finite and all(r is not None for r in rows)
        elif len(y) != len(self.names):
            return
        self.item.setData(x, y, all_finite=None if not finite else True)

    def clear(self) -> None:
        self.item.setData(np.zeros(0), np.zeros((len(self.names), 0), dtype=np.float32))

    def data(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The x and y this layer's line draws now (None for an unknown layer)."""
        if name not in self.names or len(self.item.y) != len(self.names):
            return None
        return self.item.x, self.item.y[self.names.index(name)]

    @property
    def count(self) -> int:
        return len(self.names)

    # -- looks ----------------------------------------------------------------------------
    def highlight(self, name: str | None) -> None:
        self.highlighted = name if name in self.names else None
        self.restyle()

    def restyle(self) -> None:
        pens, order = [], []
        for i, name in enumerate(self.names):
            colour = self.colors.get(name, style.palette().muted)
            if self.comparison:
                pens.append(style.pen(colour, 1.2, Qt.PenStyle.DashLine, alpha=0.55))
            elif self.highlighted is None:
                pens.append(style.pen(colour, WIDTH, alpha=self.alpha))
            elif name == self.highlighted:
                pens.append(style.pen(colour, HIGHLIGHT_WIDTH))
            else:
                pens.append(style.pen(colour, WIDTH, alpha=FADED * self.alpha))
            if name != self.highlighted:
                order.append(i)
        if self.highlighted in self.names:
            order.append(self.names.index(self.highlighted))  # drawn last: on top
        self.item.setPens(pens, order)


def depth_colors(names: list[str], reference: list[str] | None = None) -> dict[str, object]:
    """Each name's depth colour: its position in `reference` (the run's trainable layers)
    when it is there, so a layer has one colour in every plot; else its position here."""
    ref = {n: i for i, n in enumerate(reference or [])}
    positions = []
    for i, name in enumerate(names):
        if name in ref:
            positions.append(ref[name] / max(len(ref) - 1, 1))
        else:
            positions.append(i / max(len(names) - 1, 1))
    return dict(zip(names, style.depth_colors(positions)))


def matching_rows(names: list[str], other: list[str]) -> list[int | None]:
    """For each of `names`, its row in `other` (or None): overlays match layers by name."""
    where = {n: i for i, n in enumerate(other)}
    return [where.get(n) for n in names]


def nearest_layer(values: np.ndarray, y: float) -> int | None:
    """The row whose value is closest to y (ignoring NaN), for hover labels."""
    if values.size == 0 or not np.isfinite(values).any():
        return None
    return int(np.nanargmin(np.abs(values - y)))
