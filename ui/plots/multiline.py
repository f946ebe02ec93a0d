"""A pyqtgraph item that draws many lines (one per layer) in a single paint call.

With 100 layers, 100 PlotCurveItems cost more than their pixels: each is a scene item
with its own setData bookkeeping, QPainterPath, bounds query and paint call, and a
clickable curve makes the scene stroke its whole path to hit-test every mouse move. This
item keeps the lines as one (layers × points) array that shares its x, maps them to
device pixels with one numpy multiply-add per paint, and draws each as a polyline from a
reused QPolygonF buffer. It answers auto-range with its precomputed bounds, and a click
picks the nearest line at the clicked x (within a few pixels), which is also easier to
hit than a one-pixel line.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from pyqtgraph import functions as fn
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QPen, QTransform

PICK_PIXELS = 8  # how far from a line a click still selects it
_FAR = 1e5  # device pixels; farther points are clamped (the raster engine's int range)


class MultiLineItem(pg.GraphicsObject):
    def __init__(self, on_pick: Callable[[int], None] | None = None):
        super().__init__()
        self.on_pick = on_pick
        self.x = np.zeros(0)
        self.y = np.zeros((0, 0), dtype=np.float32)
        self.pens: list[QPen] = []
        self.order: list[int] = []  # paint order (a highlighted line last, on top)
        self.all_finite = True
        self._rect = QRectF()
        self._bounds = (None, None, None, None)
        self._poly = None
        self._poly_view = None

    # -- data -----------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self.y)

    def setData(self, x: np.ndarray, y: np.ndarray, all_finite: bool | None = None) -> None:
        """x: (n,), y: (lines × n)."""
        self.prepareGeometryChange()
        self.x = np.asarray(x, dtype=np.float64)
        self.y = np.asarray(y)
        if self.y.ndim != 2 or self.y.shape[1] != len(self.x):
            self.y = np.zeros((len(self.y) if self.y.ndim == 2 else 0, len(self.x)), np.float32)
        self.all_finite = bool(np.isfinite(self.y).all()) if all_finite is None else all_finite
        self._update_bounds()
        if len(self.x) and (self._poly is None or len(self._poly_view) != len(self.x)):
            self._poly = fn.create_qpolygonf(len(self.x))
            self._poly_view = fn.ndarray_from_qpolygonf(self._poly)
        self.informViewBoundsChanged()
        self.update()

    def clear(self) -> None:
        self.setData(np.zeros(0), np.zeros((len(self.y), 0), dtype=np.float32))

    def setPens(self, pens: list[QPen], order: list[int] | None = None) -> None:
        self.pens = list(pens)
        self.order = list(order) if order is not None else list(range(len(pens)))
        self.update()

    def _update_bounds(self) -> None:
        if not len(self.x) or not self.y.size:
            self._bounds = (None, None, None, None)
            self._rect = QRectF()
            return
        x0, x1 = float(self.x[0]), float(self.x[-1])
        if self.all_finite:
            y0, y1 = float(self.y.min()), float(self.y.max())
        else:
            finite = np.isfinite(self.y)
            if not finite.any():
                self._bounds = (x0, x1, None, None)
                self._rect = QRectF(x0, 0, x1 - x0, 0)
                return
            y0, y1 = float(self.y[finite].min()), float(self.y[finite].max())
        self._bounds = (x0, x1, y0, y1)
        self._rect = QRectF(x0, y0, max(x1 - x0, 1e-12), max(y1 - y0, 1e-12))

    # -- pyqtgraph / Qt protocol ------------------------------------------------------------
    def boundingRect(self) -> QRectF:
        return self._rect

    def dataBounds(self, ax, frac=1.0, orthoRange=None):
        x0, x1, y0, y1 = self._bounds
        return (x0, x1) if ax == 0 else (y0, y1)

    def paint(self, p, opt, widget) -> None:
        if not len(self.x) or not self.count or not self.pens:
            return
        t = p.transform()
        if t.m12() != 0 or t.m21() != 0:  # rotated: never in these plots, but be correct
            self._paint_paths(p)
            return
        px = self.x * t.m11() + t.dx()
        py = np.clip(self.y * t.m22() + t.dy(), -_FAR, _FAR)
        p.setTransform(QTransform())  # draw in device pixels: no per-point transform
        p.setRenderHint(p.RenderHint.Antialiasing, False)
        try:
            view = self._poly_view
            view[:, 0] = np.clip(px, -_FAR, _FAR)
            for i in self.order:
                if i >= len(py) or i >= len(self.pens):
                    continue
                p.setPen(self.pens[i])
                row = py[i]
                if self.all_finite:
                    view[:, 1] = row
                    p.drawPolyline(self._poly)
                else:
                    # NaN (a zero norm) breaks the line: draw the finite runs as a path.
                    p.drawPath(pg.arrayToQPath(view[:, 0].copy(), row, connect="finite"))
        finally:
            p.setTransform(t)

    def _paint_paths(self, p) -> None:
        for i in self.order:
            if i < len(self.y) and i < len(self.pens):
                p.setPen(self.pens[i])
                p.drawPath(pg.arrayToQPath(self.x, self.y[i], connect="finite"))

    # -- picking ----------------------------------------------------------------------------
    def nearest(self, pos: QPointF, max_pixels: float = PICK_PIXELS) -> int | None:
        """The line closest to `pos` (item coordinates) at that x, if within max_pixels."""
        if not len(self.x) or not self.count:
            return None
        i = int(np.clip(np.searchsorted(self.x, pos.x()), 0, len(self.x) - 1))
        lo, hi = max(0, i - 2), min(len(self.x), i + 2)
        # Every point near the clicked x, so both ends of an envelope column count.
        values = self.y[:, lo:hi]
        if not np.isfinite(values).any():
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a line that is all NaN here
            distance = np.nanmin(np.abs(values - pos.y()), axis=1)
        best = int(np.nanargmin(distance))
        vb = self.getViewBox()
        if vb is not None and max_pixels is not None:
            pixel = vb.viewPixelSize()[1]  # view units per device pixel along y
            if pixel > 0 and distance[best] / pixel > max_pixels:
                return None
        return best

    def mouseClickEvent(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or self.on_pick is None:
            ev.ignore()
            return
        best = self.nearest(ev.pos())
        if best is None:
            ev.ignore()
            return
        ev.accept()
        self.on_pick(best)
