"""Update-to-weight ratio per layer: how much one optimizer step changes each layer.

‖Δw‖ / ‖w‖ around 10⁻³ is the classic rule of thumb for a healthy learning rate (drawn
dashed): far below, the layer barely learns (rate too low, or frozen by vanishing
gradients); far above, its weights are being thrown around (rate too high).
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal

from ui.plots import style
from ui.plots.base import Marks, PlotPanel
from ui.plots.history import RunHistory
from ui.plots.layer_lines import LayerLines, depth_colors

RULE_OF_THUMB = -3.0  # log10 of the 1e-3 ratio


class WeightPlot(PlotPanel):
    layer_clicked = Signal(str)

    def __init__(self, history: RunHistory | None = None, parent=None):
        super().__init__(history, parent)
        self.selected: str | None = None
        self.plot = self.add_plot(
            ("Update / weight ratio per layer", "Update / weight ratio"), "‖Δw‖/‖w‖", log_y=True
        )
        self.lines = LayerLines(self.plot, on_click=self._clicked)
        self.rule = pg.InfiniteLine(
            pos=RULE_OF_THUMB,
            angle=0,
            label="10⁻³",
            labelOpts={"position": 0.99, "anchors": [(1, 1), (1, 1)]},
        )
        self.plot.addItem(self.rule)  # in the bounds, so 10⁻³ is always in view
        self.marks = Marks([self.plot])
        self.restyle()

    def highlight_layer(self, name: str | None) -> None:
        self.selected = name
        self.lines.highlight(name)

    def _clicked(self, name: str) -> None:
        self.highlight_layer(name)
        self.layer_clicked.emit(name)

    def _data_key(self, h: RunHistory):
        return h.update_ratio.version

    def _view_key(self):
        names = self.history.update_ratio.names
        return (self.x_window(self.plot), self.pixel_columns(self.plot, len(names)))

    def _redraw(self) -> None:
        series = self.history.update_ratio
        self.lines.ensure(series.names, depth_colors(series.names, self.history.layers))
        if len(series) == 0:
            self.lines.clear()
        else:
            lo, hi = self.x_window(self.plot)
            self.lines.set_window(
                series.window(lo, hi, self.pixel_columns(self.plot, len(series.names)))
            )
        if self.selected is not None and self.lines.highlighted != self.selected:
            self.lines.highlight(self.selected)
        self.marks.sync(self.history.marks)

    def _restyle(self, pal: style.Palette) -> None:
        self.lines.restyle()
        self.rule.setPen(style.pen(pal.threshold, 1.2, Qt.PenStyle.DashLine))
        self.rule.label.setColor(pal.muted)
        self.marks.sync(self.history.marks, force=True)
