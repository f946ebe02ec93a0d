"""Gradient flow through the network: Glorot & Bengio's Figure 7 as a live plot.

Layers run along the x axis in network order (input side left); the y axis is a log
scale. For each layer it shows how large its output is (the forward signal) and how large
the loss gradient reaching that output is (the back-propagated signal): dashed as the
network was initialized (step 0), solid as it is now. A back-propagated line that falls
toward the input is a vanishing gradient, one that climbs an exploding one; a flat line
is a network whose every layer hears the error. Clicking a point selects its layer.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal

from ui.plots import style
from ui.plots.base import PlotPanel, show_title
from ui.plots.history import RunHistory

FORWARD, BACKWARD = "forward", "backward"


def _log(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(values)
    out[~np.isfinite(out)] = np.nan
    return out


class GradientFlowPlot(PlotPanel):
    layer_clicked = Signal(str)

    def __init__(self, history: RunHistory | None = None, parent=None):
        super().__init__(history, parent)
        self.selected: str | None = None
        self._steps: tuple[int, int] | None = None  # first and newest step drawn
        self.plot = self.add_plot(
            "Gradient flow (RMS per layer)", "RMS", log_y=True, x_label="layer", reduce=False
        )
        self.plot.getViewBox().setMouseEnabled(x=True, y=False)
        # The colours are named in the title and the steps in the axis label: a legend
        # box would sit on the lines, which span the whole height.
        self.curves = {}
        for kind in (BACKWARD, FORWARD):
            start = self.curve(self.plot)
            now = self.curve(self.plot, symbol="o", symbolSize=5)
            now.sigPointsClicked.connect(self._clicked)
            self.curves[kind] = (start, now)
        self.selected_line = pg.InfiniteLine(angle=90, movable=False)
        self.selected_line.hide()
        self.plot.addItem(self.selected_line, ignoreBounds=True)
        self.empty = pg.TextItem("no gradient flow yet", anchor=(0.5, 0.5))
        self.plot.addItem(self.empty, ignoreBounds=True)
        self.restyle()

    # -- public API -----------------------------------------------------------------------
    def highlight_layer(self, name: str | None) -> None:
        self.selected = name
        self.refresh()

    def _clicked(self, item, points, *args) -> None:
        layers = self.history.flow_layers
        if len(points):
            index = int(round(points[0].pos().x()))
            if 0 <= index < len(layers):
                self.highlight_layer(layers[index])
                self.layer_clicked.emit(layers[index])

    # -- drawing --------------------------------------------------------------------------
    def _data_key(self, h: RunHistory):
        return (h.flow_version, tuple(h.flow_layers))

    def _view_key(self):
        return (self.selected, int(self.plot.getViewBox().width()))

    def _redraw(self) -> None:
        h = self.history
        layers = h.flow_layers
        first, last = h.flow_first, h.flow_last
        if last is None or not layers:
            for start, now in self.curves.values():
                start.setData([], [])
                now.setData([], [])
            self.selected_line.hide()
            self._label_steps(None)
            (x0, x1), (y0, y1) = self.plot.getViewBox().viewRange()
            self.empty.setPos((x0 + x1) / 2, (y0 + y1) / 2)
            self.empty.show()
            return
        self.empty.hide()
        x = np.arange(len(layers), dtype=np.float64)
        for kind, (start, now) in self.curves.items():
            values = {FORWARD: "forward", BACKWARD: "backprop"}[kind]
            for item, sample in ((start, first), (now, last)):
                y = _log(getattr(sample, values)) if sample is not None else np.full(len(x), np.nan)
                if len(y) != len(x):
                    y = np.full(len(x), np.nan)
                item.setData(x, y, connect="finite")
        self.plot.getAxis("bottom").setTicks(self._ticks(layers))
        if self.selected in layers:
            self.selected_line.setPos(layers.index(self.selected))
            self.selected_line.show()
        else:
            self.selected_line.hide()
        self._label_steps((first.step if first is not None else last.step, last.step))

    def _ticks(self, layers: list[str]) -> list[list[tuple[float, str]]]:
        """Layer names along x, as many as fit side by side in the plot's width."""
        width = self.plot.getViewBox().width() or 300
        longest = max(len(n) for n in layers)
        fit = max(2, int(width // (6.5 * longest + 12)))
        stride = 1
        while len(layers) / stride > fit:
            stride += 1
        return [[(float(i), layers[i]) for i in range(0, len(layers), stride)]]

    def _label_steps(self, steps: tuple[int, int] | None) -> None:
        self._steps = steps
        pal = style.palette()
        where = f"Flow at step {steps[1] + 1}" if steps else "Gradient flow"
        key = (
            f"<span style='color:{pal.validation}'>gradient in</span>"
            f" · <span style='color:{pal.train}'>output</span>"
        )
        title = (f"{where}: {key}", f"Step {steps[1] + 1}: {key}" if steps else key, key)
        if self.plot._studio["titles"] != title:
            show_title(self.plot, title)
        text = f"layer (dashed: step {steps[0] + 1})" if steps else "layer"
        if self.plot._studio["x_label"] != text:
            self.plot._studio["x_label"] = text
            self.plot.setLabel("bottom", text, color=pal.muted, **{"font-size": "8pt"})
            # pyqtgraph centres an axis label only when the axis resizes: a longer text
            # grew rightward from where "layer" was centred and ran off the plot.
            self.plot.getAxis("bottom").resizeEvent()

    def _restyle(self, pal: style.Palette) -> None:
        self.plot._studio["titles"] = ()  # the title's colours are the palette's
        self._label_steps(self._steps)
        colours = {BACKWARD: pal.validation, FORWARD: pal.train}
        for kind, (start, now) in self.curves.items():
            colour = colours[kind]
            start.setPen(style.pen(colour, 1.4, Qt.PenStyle.DashLine, alpha=0.7))
            now.setPen(style.pen(colour, 2.0))
            now.setSymbolBrush(pg.mkBrush(colour))
            now.setSymbolPen(style.pen(pal.background, 1.0))
        self.selected_line.setPen(style.pen(pal.mark, 1.2, Qt.PenStyle.DotLine))
        self.empty.setColor(pal.muted)
