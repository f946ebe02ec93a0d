"""The Evaluation panel: what the selected run gets wrong, one loop in one place.

The confusion matrix (counts, or shares of each true class) — click a cell and the samples
it holds appear with their confidence; click a sample and its saliency map and top
predictions appear. Beside it the per-class table (sortable) and the reliability diagram.

The evaluation itself (studio.evaluation) and every saliency map run in a background
thread; only plain CPU data (the report, the split's samples as numpy arrays, the map)
comes back to the GUI thread. The panel fills when a run finishes without raising itself.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.background import BackgroundJob
from ui.plots import style as plot_style

THUMB = 48


def _pixmap(sample: np.ndarray, heat: np.ndarray | None = None, size: int = THUMB) -> QPixmap:
    """A sample as a grey picture (mean over channels), the map over it in red."""
    image = sample.mean(0) if sample.ndim == 3 else sample.reshape(1, -1)
    lo, hi = float(image.min()), float(image.max())
    grey = (image - lo) / (hi - lo or 1.0)
    rgb = np.stack([grey] * 3, -1)
    if heat is not None:
        red = (heat / (heat.max() or 1.0)).reshape(grey.shape)[..., None]
        rgb = rgb * (1 - 0.6 * red) + np.array([1.0, 0.0, 0.0]) * 0.6 * red
    data = np.ascontiguousarray((rgb * 255).astype(np.uint8))
    h, w = grey.shape
    qimage = QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(qimage).scaled(
        size, size if h > 1 else max(8, size // 4), Qt.AspectRatioMode.IgnoreAspectRatio
    )


class EvaluationPanel(QWidget):
    evaluated = Signal(str)  # the run id, when its report is on screen

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.report: dict | None = None
        self._loaded = None  # the run's model and data; used in background jobs only
        self.samples: np.ndarray | None = None
        self.run = None
        self.headline = QLabel("Finish a training run, or right-click one in Runs → Evaluate.")
        self.headline.setWordWrap(True)
        self.normalized = QCheckBox("Shares of each true class")
        self.normalized.toggled.connect(self._fill_matrix)
        self.matrix = QTableWidget()
        self.matrix.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.matrix.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.matrix.cellClicked.connect(self.open_cell)
        self.matrix.setToolTip(
            "Rows: true class; columns: predicted. Click a cell for its samples."
        )
        self.cell_title = QLabel("")
        self.cell_samples = QListWidget()
        self.cell_samples.setViewMode(QListWidget.ViewMode.IconMode)
        self.cell_samples.setIconSize(QSize(THUMB, THUMB))
        self.cell_samples.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.cell_samples.itemClicked.connect(lambda item: self.open_sample(item.data(Qt.UserRole)))
        self.saliency = QLabel()
        self.saliency.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.sample_text = QLabel("")
        self.sample_text.setWordWrap(True)
        self.per_class = QTableWidget()
        self.per_class.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.per_class.setSortingEnabled(True)
        self.reliability = pg.PlotWidget()
        self.reliability.setMinimumHeight(140)
        plot = self.reliability.getPlotItem()
        self._restyle()
        plot_style.notifier().changed.connect(self._restyle)
        plot.setLabel("bottom", "confidence")
        plot.setLabel("left", "accuracy")
        plot.setXRange(0, 1)
        plot.setYRange(0, 1)
        plot.hideButtons()

        left = QWidget()
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.normalized)
        column.addWidget(self.matrix, 1)
        middle = QWidget()
        column = QVBoxLayout(middle)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.cell_title)
        column.addWidget(self.cell_samples, 2)
        row = QHBoxLayout()
        row.addWidget(self.saliency)
        row.addWidget(self.sample_text, 1)
        column.addLayout(row, 1)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.per_class)
        right.addWidget(self.reliability)
        parts = QSplitter(Qt.Orientation.Horizontal)
        for w in (left, middle, right):
            parts.addWidget(w)
        layout = QVBoxLayout(self)
        layout.addWidget(self.headline)
        layout.addWidget(parts, 1)
        self._job = BackgroundJob("studio-evaluation", self, what="The evaluation")
        self._job.done.connect(self._show)
        self._saliency_job = BackgroundJob("studio-saliency", self, what="The saliency map")
        self._saliency_job.done.connect(self._show_saliency)

    def _restyle(self, *_) -> None:
        """The plot follows the studio's theme (light or dark), like the live plots."""
        pal = plot_style.palette()
        self.reliability.setBackground(pal.background)
        for name in ("left", "bottom"):
            axis = self.reliability.getPlotItem().getAxis(name)
            axis.setPen(plot_style.pen(pal.muted))
            axis.setTextPen(plot_style.pen(pal.foreground))
        if self.report is not None and self.report.get("task") == "classification":
            self._fill_reliability()  # its title's colour
            self._fill_matrix()

    # -- evaluating ----------------------------------------------------------------------
    def show_run(self, run) -> None:
        """Evaluate a run (in the background) and show it."""
        if self._job.running:
            self._job.wait()
        self.run = run
        self.headline.setText(f"Evaluating run {run.id}…")

        def work() -> dict:
            from studio.evaluation import evaluate_run, load_for_evaluation

            # Loaded once per run, here in the background; the saliency jobs reuse it and
            # only ever touch it from their own thread, one job at a time.
            loaded = load_for_evaluation(run)
            self._loaded = (run.id, loaded)
            report = evaluate_run(run, loaded=loaded)
            if report.get("task") != "classification":
                return {"report": report, "samples": None}
            return {"report": report, "samples": loaded[2].x.numpy()}

        self._job.start(work)

    def wait(self) -> None:
        self._job.wait()
        self._saliency_job.wait()

    def _show(self, result: dict) -> None:
        self._job.wait()
        if "error" in result:
            self.headline.setText(result["error"])
            return
        self.report, self.samples = result["report"], result["samples"]
        r = self.report
        if r["task"] != "classification":
            res = r["residuals"]
            self.headline.setText(
                f"Run {r['run']}, {r['samples']:,} {r['split']} samples: RMSE {res['rmse']:.4g}, "
                f"MAE {res['mae']:.4g}."
            )
            return
        top = f", top-5 {r['top5_accuracy']:.1%}" if "top5_accuracy" in r else ""
        self.headline.setText(
            f"Run {r['run']}, {r['samples']:,} {r['split']} samples ({r['checkpoint']} weights): "
            f"accuracy {r['accuracy']:.1%}{top}, macro F1 {r['macro']['f1']:.3f}, calibration "
            f"error {r['calibration']['ece']:.3f}. Click a cell to see its samples."
        )
        self._fill_matrix()
        self._fill_per_class()
        self._fill_reliability()
        self.cell_samples.clear()
        self.cell_title.setText("")
        self.saliency.clear()
        self.sample_text.setText("")
        self.evaluated.emit(r["run"])

    def _fill_matrix(self, *_):
        if self.report is None or self.report["task"] != "classification":
            return
        matrix = np.array(self.report["confusion_matrix"], dtype=float)
        classes = self.report["classes"]
        shares = matrix / np.maximum(1, matrix.sum(1, keepdims=True))
        self.matrix.setRowCount(len(classes))
        self.matrix.setColumnCount(len(classes))
        self.matrix.setHorizontalHeaderLabels(classes)
        self.matrix.setVerticalHeaderLabels(classes)
        for i in range(len(classes)):
            for j in range(len(classes)):
                text = (
                    f"{shares[i, j]:.0%}" if self.normalized.isChecked() else f"{int(matrix[i, j])}"
                )
                item = QTableWidgetItem(text if matrix[i, j] else "")
                share = shares[i, j]
                if matrix[i, j]:  # empty cells keep the table's (the theme's) background
                    blue = QColor("#2563eb")
                    blue.setAlphaF(0.15 + 0.85 * share)
                    item.setBackground(QBrush(blue))
                    if share > 0.5:
                        item.setForeground(QBrush(QColor("white")))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.matrix.setItem(i, j, item)
        self.matrix.resizeColumnsToContents()

    def _fill_per_class(self) -> None:
        rows = self.report["per_class"]
        names = ("class", "precision", "recall", "F1", "support")
        self.per_class.setSortingEnabled(False)
        self.per_class.setRowCount(len(rows))
        self.per_class.setColumnCount(len(names))
        self.per_class.setHorizontalHeaderLabels(names)
        for i, row in enumerate(rows):
            values = (row["class"], row["precision"], row["recall"], row["f1"], row["support"])
            for j, value in enumerate(values):
                item = QTableWidgetItem()
                if isinstance(value, str):
                    item.setText(value)
                else:  # numbers sort as numbers
                    item.setData(
                        Qt.ItemDataRole.DisplayRole,
                        round(value, 3) if isinstance(value, float) else value,
                    )
                self.per_class.setItem(i, j, item)
        self.per_class.setSortingEnabled(True)
        self.per_class.resizeColumnsToContents()

    def _fill_reliability(self) -> None:
        plot = self.reliability.getPlotItem()
        plot.clear()
        bins = [b for b in self.report["calibration"]["bins"] if b["count"]]
        plot.addItem(
            pg.BarGraphItem(
                x=[(b["low"] + b["high"]) / 2 for b in bins],
                height=[b["accuracy"] for b in bins],
                width=0.09,
                brush="#60a5fa",
            )
        )
        plot.plot([0, 1], [0, 1], pen=pg.mkPen("#999", style=Qt.PenStyle.DashLine))
        plot.setTitle(
            f"Reliability (ECE {self.report['calibration']['ece']:.3f})",
            size="9pt",
            color=plot_style.palette().foreground,
        )

    # -- cells and samples ---------------------------------------------------------------
    def open_cell(self, true: int, predicted: int) -> None:
        """The samples of class `true` that the model called `predicted`."""
        if self.report is None or self.samples is None:
            return
        classes = self.report["classes"]
        members = [
            i
            for i, (t, p, _) in enumerate(self.report["predictions"])
            if t == true and p == predicted
        ]
        self.cell_title.setText(
            f"{len(members)} sample(s) of class {classes[true]} predicted as {classes[predicted]}"
            + (" (sorted by confidence)" if members else "")
        )
        self.cell_samples.clear()
        members.sort(key=lambda i: -self.report["predictions"][i][2])
        for i in members[:200]:
            confidence = self.report["predictions"][i][2]
            item = QListWidgetItem(QIcon(_pixmap(self.samples[i])), f"{confidence:.0%}")
            item.setData(Qt.UserRole, i)
            item.setToolTip(f"sample {i}: {confidence:.0%} sure")
            self.cell_samples.addItem(item)

    def open_sample(self, index: int) -> None:
        """Its saliency map (computed in the background) and its top predictions."""
        if self.report is None or self.run is None:
            return
        classes = self.report["classes"]
        tops = ", ".join(f"{classes[k]} {p:.0%}" for k, p in self.report["top_predictions"][index])
        self.sample_text.setText(f"Sample {index}: top predictions {tops}. Computing saliency…")
        run, sample = self.run, index

        # The run on screen's; another run's (one still evaluating) would not match.
        loaded = self._loaded[1] if self._loaded and self._loaded[0] == run.id else None

        def work() -> dict:
            from studio.evaluation import load_for_evaluation
            from studio.saliency import saliency

            model, data, part, _ = loaded or load_for_evaluation(run)
            heat, method, target = saliency(model, part.x[sample])
            return {
                "index": sample,
                "heat": heat,
                "method": method,
                "target": target,
                "origin": data.origin(part, sample),
            }

        if self._saliency_job.running:
            self._saliency_job.wait()
        self._saliency_job.start(work)

    def _show_saliency(self, result: dict) -> None:
        self._saliency_job.wait()
        if "error" in result:
            self.sample_text.setText(result["error"])
            return
        i = result["index"]
        self.saliency.setPixmap(_pixmap(self.samples[i], result["heat"], size=4 * THUMB))
        classes = self.report["classes"]
        tops = ", ".join(f"{classes[k]} {p:.0%}" for k, p in self.report["top_predictions"][i])
        name = "Grad-CAM" if result["method"] == "grad_cam" else "integrated gradients"
        self.sample_text.setText(
            f"{result['origin']}: true class {classes[self.report['predictions'][i][0]]}; "
            f"top predictions {tops}. Red: what the model looked at for "
            f"{classes[result['target']]} ({name})."
        )
