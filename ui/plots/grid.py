"""A light grid at the axes' major ticks, drawn by one cheap item behind the data.

pyqtgraph's own grid is drawn by the axis items, which then cover the whole view and are
repainted (text included) with every data update; measured, that cost ~5 ms of a 16 ms
frame on the gradient plot. This item asks the axes for their major tick values and
draws that handful of lines in device pixels.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QLineF, QPointF, QRectF
from PySide6.QtGui import QPen, QTransform


class TickGrid(pg.GraphicsObject):
    def __init__(self, plot: pg.PlotItem, x: bool = True, y: bool = True):
        super().__init__()
        self.plot = plot
        self.show_x, self.show_y = x, y
        self.pen = QPen()
        self.setZValue(-100)
        self.setFlag(self.GraphicsItemFlag.ItemIgnoresParentOpacity, True)
        plot.addItem(self, ignoreBounds=True)
        vb = plot.getViewBox()
        vb.sigRangeChanged.connect(self._changed)
        vb.sigResized.connect(self._changed)

    def setPen(self, pen: QPen) -> None:
        self.pen = QPen(pen)
        self.pen.setCosmetic(True)
        self.update()

    def _changed(self, *args) -> None:
        self.prepareGeometryChange()
        self.update()

    def boundingRect(self) -> QRectF:
        vb = self.plot.getViewBox()
        return vb.viewRect() if vb is not None else QRectF()

    def dataBounds(self, ax, frac=1.0, orthoRange=None):
        return None, None

    def _major(self, name: str, lo: float, hi: float, size: float) -> list[float]:
        axis = self.plot.getAxis(name)
        try:
            levels = axis.tickValues(lo, hi, size)
        except Exception:  # an axis mid-update: skip the grid for this frame
            return []
        if axis._tickLevels is not None:  # explicit ticks (e.g. layer names): first level
            levels = axis._tickLevels[:1]
            return [v for v, _ in levels[0]] if levels else []
        return list(levels[0][1]) if levels else []

    def paint(self, p, opt, widget) -> None:
        vb = self.plot.getViewBox()
        if vb is None:
            return
        (x0, x1), (y0, y1) = vb.viewRange()
        t = p.transform()
        p.setTransform(QTransform())
        p.setRenderHint(p.RenderHint.Antialiasing, False)
        p.setPen(self.pen)
        try:
            rect = vb.sceneBoundingRect()
            width, height = rect.width(), rect.height()
            top = t.map(QPointF(x0, y1)).y()
            bottom = t.map(QPointF(x0, y0)).y()
            left = t.map(QPointF(x0, y0)).x()
            right = t.map(QPointF(x1, y0)).x()
            lines = []
            if self.show_x:
                for v in self._major("bottom", x0, x1, width):
                    px = t.map(QPointF(v, y0)).x()
                    lines.append(QLineF(px, top, px, bottom))
            if self.show_y:
                for v in self._major("left", y0, y1, height):
                    py = t.map(QPointF(x0, v)).y()
                    lines.append(QLineF(left, py, right, py))
            if lines:
                p.drawLines(lines)
        finally:
            p.setTransform(t)
