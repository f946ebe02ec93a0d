"""Weight and gradient histograms of one layer, and how they moved during training.

The newest histogram is drawn filled (stepMode="center": bars between bin edges); up to
six earlier ones, spread evenly over the run, are drawn behind it as outlines that fade
with age. Each snapshot keeps its own bin edges (the trainer bins between the tensor's
min and max), so overlaid outlines show the distribution widening, collapsing or drifting
in value — clearer than an image over time, which would need a common binning and would
turn a shrinking gradient distribution into a single bright row.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from ui.plots import style
from ui.plots.base import PlotPanel, show_title
from ui.plots.history import RunHistory, Snapshots

EARLIER = 6  # faded snapshots drawn behind the newest


class HistogramPlot(PlotPanel):
    """Histograms of the selected layer's weights and gradients over time."""

    layer_selected = Signal(str)  # the user picked a layer in the box

    def __init__(self, history: RunHistory | None = None, parent=None):
        super().__init__(history, parent)
        self.layer: str | None = None
        header = QWidget(self)
        header.setObjectName("plotHeader")
        row = QHBoxLayout(header)
        row.setContentsMargins(8, 4, 8, 0)
        self.caption = QLabel("Histograms of layer")
        self.picker = QComboBox()
        # A fixed width: filling the list when a run starts must not re-lay out the whole
        # plot grid (measured: a 150 ms stall of the window on 2 cores).
        self.picker.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.picker.setMinimumContentsLength(14)
        self.picker.activated.connect(self._picked)
        row.addWidget(self.caption)
        row.addWidget(self.picker)
        row.addStretch(1)
        self._layout.addWidget(header)
        self.header = header
        self.plots_by_kind = {
            # 40 bins need no data reduction, and clipping breaks stepMode (x is one longer).
            "weights": self.add_plot(
                "Weights", "count", x_label="weight value", reduce=False, si_prefix_x=True
            ),
            "gradients": self.add_plot(
                "Gradients", "count", x_label="gradient value", reduce=False, si_prefix_x=True
            ),
        }
        self.latest: dict[str, pg.PlotDataItem] = {}
        self.earlier: dict[str, list[pg.PlotDataItem]] = {}
        self.shown_steps: dict[str, list[int]] = {}
        for kind, plot in self.plots_by_kind.items():
            self.earlier[kind] = [self.curve(plot, stepMode="center") for _ in range(EARLIER)]
            self.latest[kind] = self.curve(plot, stepMode="center", fillLevel=0)
            self.shown_steps[kind] = []
        self._picker_layers: list[str] = []
        self.restyle()

    # -- public API -----------------------------------------------------------------------
    def set_layer(self, name: str | None) -> None:
        """Show this layer's histograms (kept per layer, so switching is instant)."""
        self.layer = name
        self._sync_picker()
        self.refresh(force=True)

    def layers(self) -> list[str]:
        return self.history.histogram_layers()

    # -- drawing --------------------------------------------------------------------------
    def _picked(self, index: int) -> None:
        name = self.picker.itemText(index)
        if name and name != self.layer:
            self.set_layer(name)
            self.layer_selected.emit(name)

    def _sync_picker(self) -> None:
        names = self.layers()
        if names != self._picker_layers:
            self.picker.blockSignals(True)
            self.picker.clear()
            self.picker.addItems(names)
            self.picker.blockSignals(False)
            self._picker_layers = names
        if self.layer in names:
            self.picker.setCurrentIndex(names.index(self.layer))

    def current_layer(self) -> str | None:
        """The layer shown: the selected one, else the first that has histograms."""
        names = self.layers()
        if self.layer is not None:
            return self.layer
        return names[0] if names else None

    def _data_key(self, h: RunHistory):
        return h.histogram_version

    def _view_key(self):
        return (self.layer,)

    def _redraw(self) -> None:
        self._sync_picker()
        layer = self.current_layer()
        if layer is not None and self.layer is None and self.picker.count():
            self.picker.setCurrentIndex(max(0, self.picker.findText(layer)))
        for kind, plot in self.plots_by_kind.items():
            snaps = self.history.histograms[kind].get(layer) if layer else None
            self._draw(kind, plot, snaps, layer)

    def _draw(
        self, kind: str, plot: pg.PlotItem, snaps: Snapshots | None, layer: str | None
    ) -> None:
        title = "Weights" if kind == "weights" else "Gradients"
        latest, earlier = self.latest[kind], self.earlier[kind]
        if not snaps:
            latest.clear()
            for item in earlier:
                item.clear()
            self.shown_steps[kind] = []
            show_title(plot, (f"{title} · {layer}: none yet", title) if layer else title)
            return
        n = len(snaps)
        latest.setData(snaps.edges[-1], snaps.counts[-1], stepMode="center", fillLevel=0)
        # Earlier snapshots spread evenly from the first to just before the newest.
        older = (
            sorted(set(np.linspace(0, n - 2, min(EARLIER, n - 1)).round().astype(int).tolist()))
            if n > 1
            else []
        )
        pal = style.palette()
        for slot, item in enumerate(earlier):
            if slot < len(older):
                i = older[slot]
                item.setData(snaps.edges[i], snaps.counts[i], stepMode="center")
                age = (slot + 1) / (len(older) + 1)  # 0: oldest … 1: newest
                item.setPen(style.pen(pal.muted, 1.0, alpha=0.15 + 0.55 * age))
            else:
                item.clear()
        self.shown_steps[kind] = [snaps.steps[i] for i in older] + [snaps.steps[-1]]
        span = f", outlines from step {snaps.steps[older[0]]}" if older else ""
        step = f"step {snaps.steps[-1]}"
        show_title(
            plot,
            (
                f"{title} · {layer} · {step}{span}",
                f"{title} · {layer} · {step}",
                f"{title} · {step}",
            ),
        )

    def _restyle(self, pal: style.Palette) -> None:
        for kind, item in self.latest.items():
            colour = pal.train if kind == "weights" else pal.validation
            item.setPen(style.pen(colour, 1.4))
            item.setBrush(pg.mkBrush(style.color(colour, 0.35)))
        self.caption.setStyleSheet(f"color: {pal.foreground}; font-weight: 600;")
        self.header.setStyleSheet(f"QWidget#plotHeader {{ background: {pal.background}; }}")
