"""TrainingPlots: every live plot of a run in one widget, fed from the trainer's events.

The window connects the training controller's event batches to `feed_events` and calls
`refresh()` after each batch; the controller's ticks are paced by the GUI thread's measured
cost (`ui.pacing.Pacer`, shared with this widget). Feeding only appends to the shared
RunHistory; `refresh()` redraws one panel whose data or view changed, and is free when
nothing did. All plots read one
history, so a layer clicked in one (a gradient line or heatmap row, an update-ratio or
activation line) is selected in all of them and announced with `layer_clicked`.
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QScrollArea, QSplitter, QVBoxLayout, QWidget

from ui.pacing import Pacer
from ui.plots import style
from ui.plots.activations import ActivationPlot
from ui.plots.flow import GradientFlowPlot
from ui.plots.gradients import GradientNormPlot
from ui.plots.histograms import HistogramPlot
from ui.plots.history import RunHistory
from ui.plots.loss import LossPlot
from ui.plots.lr import LearningRatePlot
from ui.plots.step_axes import StepAxes
from ui.plots.weights import WeightPlot

SECONDARY_INTERVAL = 0.25  # s at least between redraws of the plots sampled less often


def as_history(data) -> RunHistory | None:
    """A comparison run from what the caller has: a RunHistory or a list of its events
    (a saved run's: `studio.training.series.replay`)."""
    if data is None or isinstance(data, RunHistory):
        return data
    return RunHistory.from_events(data)


class TrainingPlots(QWidget):
    """Loss/accuracy, learning rate, gradient norms (+ heatmap), update ratios, gradient
    flow, histograms and activation health of the running (or last) training run."""

    layer_clicked = Signal(str)

    def __init__(
        self, parent: QWidget | None = None, link_steps: bool = True, pacer: Pacer | None = None
    ):
        super().__init__(parent)
        self.pacer = pacer or Pacer()
        self.history = RunHistory()
        self.selected: str | None = None
        self.loss = LossPlot(self.history)
        self.lr = LearningRatePlot(self.history)
        self.gradients = GradientNormPlot(self.history)
        self.flow = GradientFlowPlot(self.history)
        self.weights = WeightPlot(self.history)
        self.histograms = HistogramPlot(self.history)
        self.activations = ActivationPlot(self.history)
        self.panels = [
            self.loss,
            self.lr,
            self.gradients,
            self.flow,
            self.weights,
            self.histograms,
            self.activations,
        ]
        self.secondary = (self.flow, self.weights, self.histograms, self.activations)
        # Throttled plots must still catch up when the window's timer stops (run over).
        self._catch_up = QTimer(self)
        self._catch_up.setSingleShot(True)
        self._catch_up.timeout.connect(self._catch_up_now)

        columns = QSplitter(Qt.Orientation.Horizontal)
        for stack, sizes in (
            ((self.loss, self.lr), (3, 1)),
            ((self.gradients, self.weights), (5, 2)),
            ((self.flow,), (1,)),
            # Side by side, not stacked: four plots in one column need a taller dock than
            # a 1366x768 (or even 1920x1080) window gives them.
            ((self.histograms,), (1,)),
            ((self.activations,), (1,)),
        ):
            column = QSplitter(Qt.Orientation.Vertical)
            for panel in stack:
                column.addWidget(panel)
            for i, stretch in enumerate(sizes):
                column.setStretchFactor(i, stretch)
            column.setChildrenCollapsible(False)
            columns.addWidget(column)
        for i in range(columns.count()):
            columns.setStretchFactor(i, 1)
        columns.setChildrenCollapsible(False)
        # Plots keep a readable minimum height; a dock shorter than that scrolls instead of
        # squashing them into overlapping tick labels (1366x768, issue 10).
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(columns)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)
        self.splitter = columns
        self.scroll = scroll

        for panel in (self.gradients, self.flow, self.weights, self.activations):
            panel.layer_clicked.connect(self._layer_clicked)
        self.histograms.layer_selected.connect(self._layer_clicked)
        self.steps: StepAxes | None = None
        if link_steps:
            # One step axis: zooming any step plot zooms them all (the histograms' and the
            # flow's x axes are values and layers, not steps).
            self.steps = StepAxes(
                [
                    (self.loss, self.loss.loss_plot),
                    (self.lr, self.lr.plot),
                    (self.gradients, self.gradients.lines_plot),
                    (self.weights, self.weights.plot),
                    (self.activations, self.activations.fraction_plot),
                ]
            )
        style.notifier().changed.connect(self._restyle)
        self._restyle()

    # -- events ---------------------------------------------------------------------------
    def start(self, event: dict) -> None:
        """A run starts: everything is reset (marks included); the comparison stays."""
        self.history.feed(event)
        self.selected = None
        for panel in (self.gradients, self.flow, self.weights, self.activations):
            panel.highlight_layer(None)
        self.histograms.set_layer(None)

    def feed(self, event: dict) -> None:
        """Buffer one trainer event (cheap; nothing is drawn until `refresh`)."""
        if event.get("type") == "start":
            self.start(event)
        else:
            self.history.feed(event)

    def feed_events(self, events: Iterable[dict]) -> None:
        for event in events:
            self.feed(event)

    def refresh(self, force: bool = False) -> None:
        """Redraw what changed: one panel per call, paced by the GUI thread's measured cost.

        Unforced, one call redraws at most one panel: the visible panel with new data
        whose turn has come (`Pacer.due`: a panel waits in proportion to what its last
        redraw and paint cost, and the update-ratio, histogram, flow and activation plots,
        sampled every 10–50 steps, at least SECONDARY_INTERVAL), the longest-waiting
        first. Panels that cannot be seen (a hidden tab, a collapsed splitter) never draw;
        they catch up when shown. `force` redraws every changed panel now (tests,
        screenshots, a comparison just chosen).
        """
        if force:
            for panel in self.panels:
                panel.refresh()
            self._align_axes()
            return
        if not self.isVisible():
            return  # a hidden tab costs nothing; it catches up when shown
        waits = {}
        for panel in self.panels:
            if panel.stale() and panel.on_screen():
                floor = SECONDARY_INTERVAL if panel in self.secondary else 0.0
                waits[panel] = self.pacer.due(panel, floor, panels=len(self.panels))
        best = min(waits, key=waits.get, default=None)
        if best is not None and waits[best] <= 0:
            best.refresh()
            self.pacer.drew(best)
            self._align_axes()
            del waits[best]
        if waits and not self._catch_up.isActive():
            # The ticks stop when a run ends: what still waits catches up on its own.
            delay = max(self.pacer.interval, min(waits.values()))
            self._catch_up.start(int(1000 * delay) + 1)

    def _catch_up_now(self) -> None:
        if self.pacer.ticking:
            return  # the next tick draws what waits, within the measured budget
        self.refresh()

    def _align_axes(self) -> None:
        if self.gradients.left_width() != self.weights.left_width():
            self.weights.set_left_width(self.gradients.left_width())

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh(force=True)

    def clear(self, draw_now: bool = True) -> None:
        """Forget the run (not the comparison) and empty every plot; with `draw_now`
        False the plots empty one per tick (a run starting: all seven at once would hold
        the GUI thread for ~70 ms on 2 cores)."""
        self.start({"type": "start"})
        self.history.status = "idle"
        self.refresh(force=draw_now)

    # -- which plots show -----------------------------------------------------------------
    NAMES = {
        "loss": "Loss and accuracy",
        "lr": "Learning rate",
        "gradients": "Gradient norms",
        "flow": "Gradient flow",
        "weights": "Update / weight ratios",
        "histograms": "Histograms",
        "activations": "Activation health",
    }

    def set_shown(self, name: str, shown: bool) -> None:
        """Show or hide one plot panel (its space goes to the others; hidden, it never
        draws). A column whose panels are all hidden goes too."""
        panel = getattr(self, name)
        panel.setVisible(shown)
        for i in range(self.splitter.count()):
            column = self.splitter.widget(i)
            column.setVisible(any(not column.widget(j).isHidden() for j in range(column.count())))
        if shown:
            self.refresh()

    def shown(self) -> dict[str, bool]:
        return {name: not getattr(self, name).isHidden() for name in self.NAMES}

    # -- layers ---------------------------------------------------------------------------
    def select_layer(self, name: str | None) -> None:
        """Emphasise a layer everywhere (e.g. the node selected on the canvas); does not
        emit layer_clicked."""
        self.selected = name
        for panel in (self.gradients, self.flow, self.weights, self.activations):
            panel.highlight_layer(name)
        if name is None or name in self.history.histogram_layers() or name in self.history.layers:
            self.histograms.set_layer(name)

    def _layer_clicked(self, name: str) -> None:
        self.select_layer(name)
        self.layer_clicked.emit(name)

    # -- phases and comparison ------------------------------------------------------------
    def mark(self, step: float, label: str) -> None:
        """A vertical marker at `step` on the step plots (e.g. a fine-tuning phase)."""
        self.history.add_mark(step, label)
        self.refresh()

    def set_comparison(self, data, label: str = "") -> None:
        """Overlay another run, dashed and faded: its smoothed loss and validation loss,
        and its per-layer gradient norms (layers matched by name). `data` is a
        RunHistory or a list of its events; None removes the overlay."""
        history = as_history(data)
        for panel in self.panels:
            panel.set_comparison(history, label)
        self.refresh()

    def clear_comparison(self) -> None:
        self.set_comparison(None)

    @property
    def comparison(self) -> RunHistory | None:
        return self.loss.comparison

    def _restyle(self) -> None:
        pal = style.palette()
        self.splitter.setStyleSheet(
            f"QSplitter {{ background: {pal.background}; }}"
            f"QSplitter::handle {{ background: {'#2a2e36' if pal.dark else '#e5e7eb'}; }}"
        )
        self.splitter.setHandleWidth(3)
