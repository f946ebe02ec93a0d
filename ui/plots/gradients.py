"""Per-layer gradient norms: one line per layer on a log scale, and a layer × step heatmap.

The lines show trends and spikes of individual layers; the heatmap shows the whole
network at once, which is where vanishing (a dark band growing from the input side) and
exploding gradients (a bright band) are obvious. Both read the same decimated window of
the history's log10 norms, so a redraw costs what the screen holds — about one column
per pixel — however long the run is. Clicking a line or a heatmap row reports the layer.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QFontMetrics

from ui.plots import style
from ui.plots.base import AXIS_WIDTH, LogAxis, Marks, PlotPanel, layer_ticks
from ui.plots.history import LayerSeries, RunHistory
from ui.plots.layer_lines import LayerLines, depth_colors, matching_rows, nearest_layer

COLORBAR_WIDTH = 12
COLORBAR_AXIS = 44  # px for the colour bar's tick labels
MAX_LABEL = 14  # characters of a layer name on the heatmap axis; the hover shows all
MAX_AXIS = 120  # px: the widest the layer-name axis gets


class _HeatImage(pg.ImageItem):
    """The heatmap image; a left click reports the row (layer) under the mouse."""

    def __init__(self, on_row, **kwargs):
        super().__init__(**kwargs)
        self.on_row = on_row

    def mouseClickEvent(self, ev):
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            # Item coordinates are image pixels: row r spans y in [r, r + 1).
            self.on_row(int(math.floor(ev.pos().y())))
        else:
            super().mouseClickEvent(ev)


class GradientNormPlot(PlotPanel):
    """Gradient norm per layer over steps: log-scale lines plus a layer × step heatmap."""

    layer_clicked = Signal(str)

    title = "Gradient norm per layer"
    value_label = "‖g‖"

    def __init__(self, history: RunHistory | None = None, parent=None):
        super().__init__(history, parent)
        self.selected: str | None = None
        self.lines_plot = self.add_plot(
            (self.title, self.title.removesuffix(" per layer")),
            self.value_label,
            log_y=True,
            stretch=3,
        )
        self.heat_plot = self.add_plot(
            "", "", stretch=2, left_axis=pg.AxisItem("left"), grid=(False, False)
        )
        self.link_x()
        self.lines = LayerLines(self.lines_plot, on_click=self._clicked)
        self.comparison_lines = LayerLines(self.lines_plot, comparison=True)

        self.image = _HeatImage(self._row_clicked, axisOrder="row-major")
        self.heat_plot.addItem(self.image)
        vb = self.heat_plot.getViewBox()
        vb.invertY(True)  # the first layer (input side) on top, as in the network
        vb.setMouseEnabled(x=True, y=False)
        # Room above the image for the colour bar's top label and the first layer name.
        self.heat_plot.layout.setContentsMargins(0, 8, 0, 0)
        self.colorbar = pg.ColorBarItem(
            values=(-8, 0), width=COLORBAR_WIDTH, interactive=False, colorMapMenu=False
        )
        self.colorbar.setImageItem(self.image, insert_in=self.heat_plot)
        self.colorbar.getAxis("right").setLogMode(True)
        self.colorbar.getAxis("right").logTickStrings = LogAxis.logTickStrings.__get__(
            self.colorbar.getAxis("right")
        )
        self.colorbar.getAxis("right").setWidth(COLORBAR_AXIS)
        # The colour bar takes width from the heatmap row; an empty right axis of the same
        # width on the lines plot keeps both x axes aligned to the pixel.
        self.lines_plot.showAxis("right")
        self.lines_plot.getAxis("right").setStyle(showValues=False, tickLength=0)
        self._align_right()

        self.row_lines = [
            pg.InfiniteLine(angle=0, movable=False),
            pg.InfiniteLine(angle=0, movable=False),
        ]
        for line in self.row_lines:
            line.hide()
            self.heat_plot.addItem(line, ignoreBounds=True)
        self.hover = pg.TextItem(anchor=(0, 1))
        self.hover.setZValue(100)
        self.hover.hide()
        self.lines_plot.addItem(self.hover, ignoreBounds=True)
        self.heat_hover = pg.TextItem(anchor=(0, 1))
        self.heat_hover.setZValue(100)
        self.heat_hover.hide()
        self.heat_plot.addItem(self.heat_hover, ignoreBounds=True)
        for widget, handler in (
            (self.widgets[0], self._hover_lines),
            (self.widgets[1], self._hover_heat),
        ):
            widget.scene().sigMouseMoved.connect(handler)
        self.marks = Marks([self.lines_plot, self.heat_plot], labelled=self.lines_plot)
        self.levels = (-8.0, 0.0)
        self.restyle()

    # -- which series ---------------------------------------------------------------------
    def series(self, history: RunHistory) -> LayerSeries:
        return history.gradients

    def _align_right(self) -> None:
        self.lines_plot.getAxis("right").setWidth(
            COLORBAR_WIDTH + COLORBAR_AXIS + int(self.heat_plot.layout.horizontalSpacing() or 0) + 6
        )

    # -- public API -----------------------------------------------------------------------
    def highlight_layer(self, name: str | None) -> None:
        """Emphasise one layer: thicker line on top, the others faded, its heatmap row framed."""
        self.selected = name
        self.lines.highlight(name)
        names = self.series(self.history).names
        if name in names:
            row = names.index(name)
            for line, y in zip(self.row_lines, (row, row + 1)):
                line.setValue(y)
                line.show()
        else:
            for line in self.row_lines:
                line.hide()

    def layer_at(self, y: float) -> str | None:
        """The layer of the heatmap row at view coordinate y (None outside the rows)."""
        names = self.series(self.history).names
        row = int(math.floor(y))
        return names[row] if 0 <= row < len(names) else None

    def heatmap(self) -> np.ndarray | None:
        """The image the heatmap shows now: layers × columns of log10 values."""
        return self.image.image

    # -- events ---------------------------------------------------------------------------
    def _clicked(self, name: str) -> None:
        self.highlight_layer(name)
        self.layer_clicked.emit(name)

    def _row_clicked(self, row: int) -> None:
        names = self.series(self.history).names
        if 0 <= row < len(names):
            self._clicked(names[row])

    # -- drawing --------------------------------------------------------------------------
    def _data_key(self, h: RunHistory):
        return self.series(h).version

    def _columns(self) -> int:
        return self.pixel_columns(self.lines_plot, len(self.series(self.history).names))

    def _view_key(self):
        return (self.x_window(self.lines_plot), self._columns())

    def _redraw(self) -> None:
        series = self.series(self.history)
        names = series.names
        colours = depth_colors(names, self.history.layers)
        self.lines.ensure(names, colours)
        self._set_layer_axis(names)
        if len(series) == 0:
            self.lines.clear()
            self.image.clear()
        else:
            lo, hi = self.x_window(self.lines_plot)
            window = series.window(lo, hi, self._columns())
            self.lines.set_window(window)
            self._draw_heatmap(series, window)
        self._draw_comparison(names, colours)
        self.marks.sync(self.history.marks)
        if self.selected is not None and self.lines.highlighted != self.selected:
            self.highlight_layer(self.selected)

    def _draw_heatmap(self, series: LayerSeries, window) -> None:
        image = window.mean
        if image.shape[1] == 0:
            self.image.clear()
            return
        finite = image[np.isfinite(image)]
        if finite.size:
            # Whole decades keep the colours steady while values wander within them.
            lo, hi = math.floor(float(finite.min())), math.ceil(float(finite.max()))
            self.levels = (lo, hi if hi > lo else lo + 1)
        steps, n = series.steps.data, len(series)
        x0 = float(window.x[0])
        end = int(window.start[-1] + window.block)
        if end < n:
            x1 = float(steps[end])
        else:
            gap = (steps[n - 1] - steps[0]) / (n - 1) if n > 1 else 1.0
            x1 = float(steps[n - 1] + max(gap, 1e-9))
        image = _on_step_grid(image, np.asarray(window.x, dtype=float), x0, x1)
        self.image.setImage(image, autoLevels=False, levels=self.levels)
        if self.colorbar.levels() != self.levels:  # re-lays out its axis: only on change
            self.colorbar.setLevels(self.levels)
        self.image.setRect(QRectF(x0, 0.0, max(x1 - x0, 1e-9), float(image.shape[0])))

    def _draw_comparison(self, names: list[str], colours) -> None:
        comp = self.comparison
        other = self.series(comp) if comp is not None else None
        if other is None or len(other) == 0:
            self.comparison_lines.ensure([], {})
            return
        # The comparison run's layers that the current run also has, in the current
        # run's colours; before the current run started, all of the other run's layers.
        shown = [n for n in names if n in other.names] if names else list(other.names)
        self.comparison_lines.ensure(shown, colours or depth_colors(shown))
        lo, hi = self.x_window(self.lines_plot)
        window = other.window(lo, hi, self._columns())
        self.comparison_lines.set_window(window, matching_rows(shown, other.names))

    def _set_layer_axis(self, names: list[str]) -> None:
        if getattr(self, "_axis_names", None) == names:
            return
        self._axis_names = list(names)
        short = [n if len(n) <= MAX_LABEL else n[: MAX_LABEL - 1] + "…" for n in names]
        self.heat_plot.getAxis("left").setTicks(layer_ticks(short))
        # pyqtgraph drops tick labels wider than the axis: make room for the names, and
        # give the lines plot the same width so both share their x positions.
        metrics = QFontMetrics(style.font(8))
        widest = max((metrics.horizontalAdvance(n) for n in short), default=0)
        self.set_left_width(int(min(MAX_AXIS, max(AXIS_WIDTH, widest + 18))))
        vb = self.heat_plot.getViewBox()
        if names:
            vb.setLimits(yMin=0, yMax=len(names))
            vb.setYRange(0, len(names), padding=0)

    def _restyle(self, pal: style.Palette) -> None:
        self.lines.restyle()
        self.comparison_lines.restyle()
        self.colorbar.setColorMap(pg.colormap.get(pal.heatmap))
        axis = self.colorbar.getAxis("right")
        axis.setPen(style.pen(pal.muted))
        axis.setTextPen(style.pen(pal.foreground))
        axis.setTickFont(style.font(8))
        self.colorbar.outline.setPen(style.pen(pal.muted)) if hasattr(
            self.colorbar, "outline"
        ) else None
        right = self.lines_plot.getAxis("right")
        right.setPen(style.pen(pal.background))
        for line in self.row_lines:
            line.setPen(style.pen(pal.foreground, 1.5))
        for hover in (self.hover, self.heat_hover):
            hover.fill = pg.mkBrush(style.color(pal.background, 0.85))
            hover.border = style.pen(pal.muted, alpha=0.6)
        self.marks.sync(self.history.marks, force=True)

    # -- hover ----------------------------------------------------------------------------
    def _describe(self, row: int, index: int) -> str:
        series = self.series(self.history)
        v = float(series.values.data[row, index])
        value = (
            style.format_power(10**v)
            if series.log and np.isfinite(v)
            else (f"{v:.3g}" if np.isfinite(v) else "0")
        )
        return f"{series.names[row]}\nstep {int(series.steps.data[index])}\n{self.value_label} = {value}"

    def _hover_lines(self, pos) -> None:
        series = self.series(self.history)
        vb = self.lines_plot.getViewBox()
        if not len(series) or not vb.sceneBoundingRect().contains(pos):
            self.hover.hide()
            return
        p = vb.mapSceneToView(pos)
        index = series.nearest(p.x())
        row = nearest_layer(series.values.data[:, index], p.y())
        if row is None:
            self.hover.hide()
            return
        self.hover.setText(self._describe(row, index), color=style.palette().foreground)
        self.hover.setPos(p.x(), p.y())
        self.hover.show()

    def _hover_heat(self, pos) -> None:
        series = self.series(self.history)
        vb = self.heat_plot.getViewBox()
        if not len(series) or not vb.sceneBoundingRect().contains(pos):
            self.heat_hover.hide()
            return
        p = vb.mapSceneToView(pos)
        row = int(math.floor(p.y()))
        if not 0 <= row < len(series.names):
            self.heat_hover.hide()
            return
        index = series.nearest(p.x())
        self.heat_hover.setText(self._describe(row, index), color=style.palette().foreground)
        self.heat_hover.setPos(p.x(), p.y())
        self.heat_hover.show()


def _on_step_grid(image: np.ndarray, starts: np.ndarray, x0: float, x1: float) -> np.ndarray:
    """Columns placed by step, not by sample: probes are not evenly spaced (the time budget
    stretches them; a fine-tuning phase unfreezes layers that cost more), and an image's
    pixels are. Each grid column shows the sample column that covers its step."""
    columns = image.shape[1]
    if columns < 2 or x1 <= x0:
        return image
    grid = x0 + (np.arange(columns) + 0.5) * ((x1 - x0) / columns)
    index = np.clip(np.searchsorted(starts, grid, side="right") - 1, 0, columns - 1)
    return image[:, index]
