"""What every live plot widget shares: styled pyqtgraph plots, a history, cheap refresh.

A panel is a QWidget holding one or more pyqtgraph PlotWidgets stacked vertically (so a
hidden plot gives its space to the others) with a fixed left-axis width (so stacked plots
share their x positions pixel for pixel). Curves are created once and updated with
setData; `refresh()` redraws only when the history or the visible range changed since
the last redraw, so a 30 Hz timer costs nothing while nothing new arrives.
"""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

from ui.plots import style
from ui.plots.grid import TickGrid
from ui.plots.history import RunHistory

AXIS_WIDTH = 58  # px; the same on every stacked plot so their x axes line up
# A plot shorter than this stacks its y tick labels on top of each other (seen at 90 px).
MIN_PLOT_HEIGHT = 105
LEGEND_ROW = 16  # px per row of a legend under a plot
LINE_BUDGET = 48_000  # lines × columns drawn per per-layer plot redraw


class PowerAxis(pg.AxisItem):
    """An axis whose log mode labels decades as 10ⁿ (pyqtgraph mixes 0.001 and 10⁻⁵)."""

    def logTickValues(self, minVal, maxVal, size, stdTicks):
        # Whole decades only (every 2nd, 3rd... when the range is wide): the 2…9 minor
        # ticks pyqtgraph adds would each draw a grid line, ~100 lines that cost more to
        # paint than all the curves, and a log plot reads by decades anyway.
        lo, hi = math.ceil(minVal), math.floor(maxVal)
        if hi - lo < 1:
            # Less than a decade in view: label 1, 2 and 5 of each decade (all of 1…9 only
            # if those leave fewer than two), one level, so the labels never pile up.
            decades = range(math.floor(minVal), math.ceil(maxVal) + 1)
            for mantissas in ((1, 2, 5), range(1, 10)):
                values = [
                    d + math.log10(m)
                    for d in decades
                    for m in mantissas
                    if minVal <= d + math.log10(m) <= maxVal
                ]
                if len(values) >= 2:
                    break
            return [(1.0, values)]
        target = max(2, int(size / 28))  # about one label per 28 px
        stride = 1
        while (hi - lo) / stride > target:
            stride += 1
        first = lo + (-lo) % stride
        return [(float(stride), list(np.arange(first, hi + 1, stride, dtype=float)))]

    def logTickStrings(self, values, scale, spacing):
        out = []
        for v in values:
            if abs(v - round(v)) < 1e-6:
                out.append("10" + style.superscript(int(round(v))))
            else:
                mantissa = 10 ** (v - np.floor(v))
                out.append(f"{mantissa:.0f}")  # 2…9 within a decade, beside its 10ⁿ
        return out


class LogAxis(PowerAxis):
    """An axis for data that is already log10: ticks read as powers of ten.

    The plots store log10 values (cheaper than pyqtgraph's per-redraw log of every
    point, and shared with the heatmap), so only the labels need the log treatment.
    """

    def __init__(self, orientation: str = "left", **kwargs):
        super().__init__(orientation, **kwargs)
        self.setLogMode(True)


class StepHeadroom(pg.GraphicsObject):
    """An invisible item that makes a following step axis grow in steps, not every frame.

    While a run trains, the step axis follows the newest step. Grown by a few steps every
    redraw, its range changes every frame, and every plot linked to it (TrainingPlots
    shares one step axis) repaints: measured on 2 cores, a loss-plot redraw then cost
    ~75 ms instead of ~12. This item claims the x range up to the next round number above
    the newest step (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10ⁿ), so the axis changes
    about every 20% of growth.
    """

    STEPS = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)

    def __init__(self, plot: pg.PlotItem):
        super().__init__()
        self.end = 0.0
        self.plot = plot
        plot.addItem(self)  # counted by auto-range (not ignoreBounds)

    @classmethod
    def ceiling(cls, step: float) -> float:
        if step <= 0:
            return 0.0
        decade = 10.0 ** math.floor(math.log10(step))
        return next(m * decade for m in cls.STEPS if m * decade >= step)

    def follow(self, last_step: float) -> None:
        end = self.ceiling(last_step)
        if end != self.end:
            self.end = end
            self.informViewBoundsChanged()
            if end == 0:  # a new run, nothing yet: an empty axis, not the last run's range
                self.plot.getViewBox().setRange(xRange=(0, 100), disableAutoRange=False)

    def dataBounds(self, ax, frac=1.0, orthoRange=None):
        return (0.0, self.end) if ax == 0 and self.end > 0 else (None, None)

    def boundingRect(self):
        return QRectF()

    def paint(self, p, opt, widget) -> None:
        pass


def layer_ticks(names: list[str], offset: float = 0.5) -> list[list[tuple[float, str]]]:
    """Tick levels for a layer axis: a sparse top level always drawn, finer levels that
    pyqtgraph adds only where there is room, so 100 layer names never overlap."""
    n = len(names)
    if not n:
        return [[]]
    stride = 1
    while n / stride > 8:
        stride *= 2
    levels, taken = [], set()
    while stride >= 1:
        level = [(i + offset, names[i]) for i in range(0, n, stride) if i not in taken]
        taken.update(range(0, n, stride))
        levels.append(level)
        stride //= 2
    return levels


class PlotPanel(QWidget):
    """Base of the live plot widgets (LossPlot, GradientNormPlot, ...)."""

    def __init__(self, history: RunHistory | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.history = history if history is not None else RunHistory()
        self.comparison: RunHistory | None = None
        self.comparison_label = ""
        self.plots: list[pg.PlotItem] = []
        self.widgets: list[pg.PlotWidget] = []
        self._seen = None
        self.headroom: StepHeadroom | None = None  # set when its step axis follows the run
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(0)
        # A zoom or pan needs a new decimation of what is now visible even when no
        # training is running (no timer ticking): coalesce range changes into one redraw.
        self._range_timer = QTimer(self)
        self._range_timer.setSingleShot(True)
        self._range_timer.setInterval(15)
        self._range_timer.timeout.connect(self.refresh)
        style.notifier().changed.connect(self.restyle)

    # -- building ---------------------------------------------------------------------------
    def add_plot(
        self,
        title: str | tuple[str, ...] = "",
        y_label: str = "",
        log_y: bool = False,
        stretch: int = 1,
        left_axis: pg.AxisItem | None = None,
        x_label: str = "step",
        grid: tuple[bool, bool] = (True, True),
        reduce: bool = True,
        si_prefix_x: bool = False,
    ) -> pg.PlotItem:
        axes = {"left": left_axis or (LogAxis("left") if log_y else pg.AxisItem("left"))}
        widget = pg.PlotWidget(axisItems=axes)
        widget.setMinimumHeight(MIN_PLOT_HEIGHT)
        plot = widget.getPlotItem()
        plot.setLabel("left", y_label)
        plot.setLabel("bottom", x_label)
        # Peak downsampling and clipping are pyqtgraph's own guards for long series; the
        # per-layer plots decimate before setData, so these stay cheap no-ops for them.
        if reduce:
            plot.setDownsampling(auto=True, mode="peak")
            plot.setClipToView(True)
        plot.getAxis("left").setWidth(AXIS_WIDTH)
        # Major x ticks only: the minor level adds ~50 grid lines that cost ~2 ms a
        # paint and make the plot busier without helping to read it.
        plot.getAxis("bottom").setStyle(maxTickLevel=0)
        # "accuracy (x0.001)" over 60…140 reads worse than 0.06…0.14; only value axes
        # that span many orders (histograms of tiny gradients) keep the SI prefix.
        plot.getAxis("left").enableAutoSIPrefix(False)
        plot.getAxis("bottom").enableAutoSIPrefix(si_prefix_x)
        plot.hideButtons()  # the "A" auto-range button; double-click does the same
        plot.getViewBox().sigXRangeChanged.connect(self._range_changed)
        if log_y:
            # The data is log10 already: pyqtgraph's own log toggle would log it twice.
            plot.ctrl.logYCheck.setEnabled(False)
        grid_item = TickGrid(plot, *grid) if any(grid) else None
        plot._studio = {
            "y_label": y_label,
            "x_label": x_label,
            "grid_item": grid_item,
        }
        show_title(plot, title)
        plot.getViewBox().sigResized.connect(lambda _box: _fit_title(plot))
        self._layout.addWidget(widget, stretch)
        self.plots.append(plot)
        self.widgets.append(widget)
        return plot

    def legend_below(self, plot: pg.PlotItem, columns: int = 3) -> pg.LegendItem:
        """A legend in a row under the plot's x axis: never over the data (issue 10). Curves
        added with a name afterwards join it."""
        legend = pg.LegendItem(labelTextSize="8pt", colCount=columns, verSpacing=-6, frame=False)
        legend.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        plot.layout.addItem(legend, 4, 1, Qt.AlignmentFlag.AlignHCenter)
        plot.legend = legend
        widget = next(w for w in self.widgets if w.getPlotItem() is plot)
        widget.setMinimumHeight(MIN_PLOT_HEIGHT + LEGEND_ROW * 2)
        return legend

    def set_left_width(self, pixels: int) -> None:
        """Left-axis width of every plot here (to line up with plots in other panels)."""
        for plot in self.plots:
            if plot.getAxis("left").width() != pixels:
                plot.getAxis("left").setWidth(pixels)

    def left_width(self) -> int:
        return int(self.plots[0].getAxis("left").width()) if self.plots else AXIS_WIDTH

    def curve(self, plot: pg.PlotItem, **opts) -> pg.PlotDataItem:
        item = pg.PlotDataItem(**opts)
        plot.addItem(item)
        return item

    def link_x(self) -> None:
        for plot in self.plots[1:]:
            plot.setXLink(self.plots[0])

    # -- styling ----------------------------------------------------------------------------
    def restyle(self) -> None:
        pal = style.palette()
        for widget, plot in zip(self.widgets, self.plots):
            widget.setBackground(pal.background)
            info = getattr(plot, "_studio", {})
            info["shown"] = None  # the colour changed: set the title again
            _fit_title(plot)
            for name in ("left", "bottom"):
                axis = plot.getAxis(name)
                axis.setPen(style.pen(pal.muted))
                axis.setTextPen(style.pen(pal.foreground))
                axis.setTickFont(style.font(8))
                label = info.get("y_label" if name == "left" else "x_label", "")
                axis.setLabel(label, color=pal.muted, **{"font-size": "8pt"})
                axis.showLabel(bool(label))  # no label, no empty row under the ticks
            grid = info.get("grid_item")
            if grid is not None:
                grid.setPen(style.pen(pal.foreground, alpha=pal.grid))
            legend = plot.legend
            if legend is not None:
                legend.setLabelTextColor(pal.foreground)
                # pyqtgraph only records the colour; existing labels keep the old one (dark
                # text on a dark theme) until their text is set again.
                for _, label in legend.items:
                    label.setText(label.text, color=pal.foreground)
                legend.setBrush(style.color(pal.background, 0.75))
                legend.setPen(style.pen(pal.muted, alpha=0.4))
        self._restyle(pal)
        self._seen = None  # colours live in pens set at redraw time too
        self.refresh()

    def _restyle(self, pal: style.Palette) -> None:
        """Subclasses set their curves' pens here."""

    # -- data -------------------------------------------------------------------------------
    def set_history(self, history: RunHistory) -> None:
        self.history = history
        self._seen = None

    def set_comparison(self, history: RunHistory | None, label: str = "") -> None:
        self.comparison = history
        self.comparison_label = label
        self._seen = None

    def start(self, event: dict) -> None:
        self.history.feed(event)

    def feed(self, event: dict) -> None:
        self.history.feed(event)

    def clear(self) -> None:
        self.history.feed({"type": "start"})
        self.refresh(force=True)

    def stale(self) -> bool:
        """Whether `refresh()` would redraw (its data or view changed since the last)."""
        return (self._key(), self._view_key()) != self._seen

    def on_screen(self) -> bool:
        """Whether any of it can be seen (not hidden, collapsed, or behind another tab)."""
        # Not visibleRegion(): the plots cover their panel, which then has none itself.
        return self.isVisible() and self.width() > 0 and self.height() > 0

    def refresh(self, force: bool = False) -> bool:
        """Redraw from the buffers if anything changed; True when it redrew."""
        key = (self._key(), self._view_key())
        if not force and key == self._seen:
            return False
        self._seen = key
        if self.headroom is not None:  # a step plot following the run (StepAxes)
            step = self.history.step.data
            self.headroom.follow(float(step[-1]) if len(step) else 0.0)
        self._redraw()
        return True

    def _key(self):
        """What the drawing depends on; redraw only when it changed."""
        h, comp = self.history, self.comparison
        return (
            id(h),
            h.generation,
            h.marks_version,
            self._data_key(h),
            id(comp),
            (comp.generation, self._data_key(comp)) if comp is not None else None,
        )

    def _data_key(self, history: RunHistory):
        """The versions of the buffers this plot draws (default: any change at all)."""
        return history.version

    def _view_key(self):
        return ()

    def _redraw(self) -> None:
        raise NotImplementedError

    def _range_changed(self, *args) -> None:
        if self._view_key():
            self._range_timer.start()

    # -- helpers for subclasses -----------------------------------------------------------
    @staticmethod
    def x_window(plot: pg.PlotItem) -> tuple[float | None, float | None]:
        """The visible step range, or (None, None) while the x axis follows the data.

        A plot whose x axis is linked to another (TrainingPlots shares one step axis)
        follows when the one it is linked to does: its own range is only updated from
        that one at the next paint, and decimating to a stale range would lag a frame.
        """
        vb = plot.getViewBox()
        linked = vb.linkedView(vb.XAxis)
        if vb.autoRangeEnabled()[0] or (linked is not None and linked.autoRangeEnabled()[0]):
            return None, None
        lo, hi = vb.viewRange()[0]
        return lo, hi

    @staticmethod
    def pixel_columns(plot: pg.PlotItem, lines: int = 1) -> int:
        """Columns to decimate to: one per pixel, within a budget of lines × columns.

        Painting costs per vertex, and past ~30 overlapping lines a column every 2–3
        pixels looks the same as one per pixel; the budget keeps a 100-layer redraw
        within a frame while small networks get full resolution.
        """
        width = int(plot.getViewBox().width())
        width = width if width > 16 else 800
        return max(min(width, 160), min(width, LINE_BUDGET // max(lines, 1)))


class Marks:
    """The history's vertical markers (phase changes, divergence) drawn on some plots."""

    def __init__(self, plots: list[pg.PlotItem], labelled: pg.PlotItem | None = None):
        """`labelled`: the one plot whose line carries the text (None: no text)."""
        self.plots = plots
        self.labelled = labelled
        self.lines: list[tuple[pg.PlotItem, pg.InfiniteLine]] = []
        self.drawn: list[tuple] = []

    def sync(self, marks: list[tuple[float, str, str]], force: bool = False) -> None:
        if marks == self.drawn and not force:
            return
        for plot, line in self.lines:
            plot.removeItem(line)
        self.lines = []
        pal = style.palette()
        for step, label, kind in marks:
            colour = pal.danger if kind == "danger" else pal.mark
            for plot in self.plots:
                opts = {}
                if plot is self.labelled and label:
                    opts = {
                        "label": _short(label),
                        "labelOpts": {
                            "position": 0.92,
                            "color": colour,
                            "anchors": [(0, 0), (0, 0)],
                        },
                    }
                line = pg.InfiniteLine(
                    pos=step, angle=90, pen=style.pen(colour, 1.2, Qt.PenStyle.DashLine), **opts
                )
                if label:
                    line.setToolTip(f"step {step:g}: {label}")
                plot.addItem(line, ignoreBounds=True)
                self.lines.append((plot, line))
        self.drawn = list(marks)


MARK_LABEL_CHARS = 22  # longer labels (a fine-tuning phase's sentence) would overlap


def _short(label: str) -> str:
    """What a mark's line says on the plot: 'Phase 2' for 'Phase 2: layer3, … train';
    the whole label is in the line's tooltip."""
    if len(label) <= MARK_LABEL_CHARS:
        return label
    head = label.split(":", 1)[0]
    return head if len(head) <= MARK_LABEL_CHARS else label[: MARK_LABEL_CHARS - 1] + "…"


def show_title(plot: pg.PlotItem, title: str | tuple[str, ...]) -> None:
    """A plot's title: the first of `title`'s wordings (longest first) that fits the plot's
    width, or the last one cut short with "…"; the whole title is the plot's tooltip when
    it does not fit. A narrow plot (1366x768) clipped its title mid-word (issue 10)."""
    variants = (title,) if isinstance(title, str) else tuple(title)
    info = plot._studio
    info["titles"] = variants
    info["title"] = variants[0] if variants else ""
    _fit_title(plot)


def _plain(text: str) -> str:
    return re.sub(r"<[^>]+>", "", text)


@functools.cache
def _title_metrics() -> QFontMetrics:
    """The titles' font metrics, made once (titles are fitted on every histogram redraw)."""
    return QFontMetrics(style.font(9, bold=True))


def _fit_title(plot: pg.PlotItem) -> None:
    info = plot._studio
    variants = info.get("titles") or ("",)
    if not variants[0]:
        if info.get("shown") != "":
            info["shown"] = ""
            plot.setTitle(None)
        return
    width = plot.getViewBox().geometry().width() - 8  # the title spans the data's column
    metrics = _title_metrics()
    chosen = next((v for v in variants if metrics.horizontalAdvance(_plain(v)) <= width), None)
    if chosen is None:
        chosen = metrics.elidedText(_plain(variants[-1]), Qt.TextElideMode.ElideRight, int(width))
    if info.get("shown") == chosen:
        return
    info["shown"] = chosen
    plot.setTitle(chosen, color=style.palette().foreground, size="9pt", bold=True)
    view = plot.getViewWidget()
    if view is not None:
        view.setToolTip("" if chosen == variants[0] else _plain(variants[0]))
