"""Run → Find Learning Rate…: the range test's curve, its suggestion, and "Use this".

The sweep (`studio.training.lr_find`) runs on a background thread on a copy of the model;
its curve fills in as it goes (redrawn at 10 Hz from numbers the sweep appends), with a
progress bar and ETA. When it ends the plot marks the suggested rate and Smith's range;
*Use this* sets the project's learning rate as one undoable edit.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.commands import SetSettings
from studio.training.lr_find import STEPS, LRFindResult, find_lr
from ui.background import BackgroundJob
from ui.document import DocumentModel
from ui.plots import style
from ui.plots.base import PowerAxis

REDRAW_MS = 100


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


class LRFinderDialog(QDialog):
    def __init__(self, model: DocumentModel, base: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Find learning rate")
        self.model = model
        self.base = base
        self.result: LRFindResult | None = None
        self.stop_event = threading.Event()
        self._points: list[tuple[float, float]] = []  # appended by the sweep's thread
        self._progress = (0, STEPS)
        self._started = 0.0
        self.job = BackgroundJob("studio-lr-find", self, what="The sweep")
        self.job.done.connect(self._finished)

        current = model.project.training["optimizer"]
        intro = QLabel(
            f"A short sweep on a copy of the model ({current['name']}, now at lr "
            f"{current['lr']:g}): the learning rate grows from 10⁻⁷ to 10 over {STEPS} steps "
            "while the loss is recorded. Where the loss falls fastest is a good rate; where it "
            "runs away is too high. The project's weights and settings are not touched."
        )
        intro.setWordWrap(True)
        self.plot_widget = pg.PlotWidget(axisItems={"bottom": PowerAxis("bottom")})
        self.plot_widget.setMinimumSize(520, 300)
        plot = self.plot = self.plot_widget.getPlotItem()
        plot.setLogMode(x=True, y=False)
        plot.setLabel("bottom", "learning rate")
        plot.setLabel("left", "loss (smoothed)")
        plot.showGrid(x=True, y=True, alpha=0.15)
        plot.hideButtons()
        self.raw = plot.plot()
        self.curve = plot.plot()
        self.range = pg.LinearRegionItem(movable=False)
        self.range.hide()
        plot.addItem(self.range)
        self.marker = pg.InfiniteLine(angle=90, movable=False)
        self.marker.hide()
        plot.addItem(self.marker)

        self.progress = QProgressBar()
        self.progress.setRange(0, STEPS)
        self.status = QLabel("Building the model…")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop_event.set)
        self.use_button = QPushButton("Use this")
        self.use_button.setEnabled(False)
        self.use_button.setDefault(True)
        self.use_button.clicked.connect(self.use)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        buttons.addButton(self.stop_button, QDialogButtonBox.ActionRole)
        buttons.addButton(self.use_button, QDialogButtonBox.AcceptRole)

        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.plot_widget, 1)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(buttons)

        self.timer = QTimer(self)
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self._redraw)
        self._style()

    def _style(self) -> None:
        pal = style.palette()
        self.plot_widget.setBackground(pal.background)
        self.raw.setPen(style.pen(pal.train_raw, 1.0))
        self.curve.setPen(style.pen(pal.train, 2.0))
        self.marker.setPen(style.pen(pal.validation, 1.6, Qt.PenStyle.DashLine))
        self.range.setBrush(style.color(pal.lr, 0.12))
        for line in self.range.lines:
            line.setPen(style.pen(pal.lr, 1.0, alpha=0.5))

    # -- the sweep ------------------------------------------------------------------------
    def start(self) -> None:
        project = self.model.project.copy()
        self._started = time.monotonic()
        self.timer.start()

        def progress(step, steps, lr, loss):  # the sweep's thread: append only
            self._points.append((lr, loss))
            self._progress = (step, steps)

        self.job.start(
            lambda: {
                "result": find_lr(project, base=self.base, progress=progress, stop=self.stop_event)
            }
        )

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self.job.running and self.result is None and not self._started:
            self.start()

    def _redraw(self) -> None:
        points = list(self._points)
        done, total = self._progress
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        if points:
            lrs, losses = (np.array(v) for v in zip(*points))
            self.curve.setData(lrs, losses)
            elapsed = time.monotonic() - self._started
            left = (total - done) * elapsed / max(done, 1)
            self.status.setText(
                f"Step {done} of {total} · lr {lrs[-1]:.2g} · loss {losses[-1]:.4g} · "
                f"ETA {_duration(left)}"
            )

    def _finished(self, outcome: dict) -> None:
        self.timer.stop()
        self._redraw()
        self.stop_button.setEnabled(False)
        if "error" in outcome:
            self.status.setText(outcome["error"])
            return
        result = self.result = outcome["result"]
        self.raw.setData(result.lrs, result.losses)
        self.curve.setData(result.lrs[: len(result.smoothed)], result.smoothed)
        self.progress.setValue(self.progress.maximum())
        if not math.isfinite(result.suggestion):
            self.status.setText(f"The sweep stopped: {result.stopped}.")
            return
        self.marker.setPos(math.log10(result.suggestion))
        self.marker.show()
        self.range.setRegion((math.log10(result.low), math.log10(result.high)))
        self.range.show()
        finite = [v for v in result.smoothed if math.isfinite(v)]
        if finite:
            low, high = min(finite), sorted(finite)[int(0.9 * (len(finite) - 1))]
            self.plot.setYRange(low - 0.05 * (high - low), high, padding=0.02)
        self.status.setText(
            f"{result.summary()} The sweep ran {len(result.losses)} steps in "
            f"{_duration(result.seconds)}: {result.stopped}."
        )
        self.use_button.setText(f"Use {result.suggestion:.2g}")
        self.use_button.setEnabled(True)

    def use(self) -> None:
        """Set the project's learning rate to the suggestion: one undoable edit."""
        if self.result is None:
            return
        value = float(f"{self.result.suggestion:.2g}")
        self.model.push(
            SetSettings(
                self.model.project,
                {"training.optimizer.lr": value},
                text=f"Use learning rate {value:g} (learning-rate finder)",
            )
        )
        self.accept()

    def done(self, code: int) -> None:
        # Closing stops the sweep; its thread ends within a step.
        self.stop_event.set()
        self.timer.stop()
        self.job.wait()
        super().done(code)
