"""A preview of the project's data: a few samples per class and how many samples each
class has (with a suggestion when they are imbalanced), loaded off the GUI thread.

Loading decodes images and runs tensor ops, so it happens in a short-lived thread (its
OpenMP team ends with it) and only numpy arrays come back to the GUI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QGridLayout, QGroupBox, QLabel, QPushButton, QVBoxLayout, QWidget

from ui.background import BackgroundJob
from ui.document import DocumentModel

PER_CLASS = 6
MAX_CLASSES = 10
CELL = 44


def sample_grid(settings: dict, input_shape: tuple, seed: int, base) -> dict:
    """A few training samples per class as uint8 images, the data report, and the
    training split's samples per class (None for real-valued targets)."""
    from studio.data.balance import ClassBalance
    from studio.data.prepare import prepare_data

    data = prepare_data({**settings, "scaling": "unit"}, input_shape, seed, base)
    import torch

    x, y = data.train.x, data.train.y.numpy()
    samples = []
    for index, name in enumerate(data.classes[:MAX_CLASSES]):
        # Indexed, not copied whole: a disk-cached split gives just these few.
        picked = np.flatnonzero(y == index)[:PER_CLASS]
        chosen = x[torch.as_tensor(picked)].numpy() if len(picked) else []
        samples.append((name, [_as_image(s) for s in chosen]))
    balance = (
        ClassBalance.of(data.train.y, data.classes, "the training split")
        if data.is_classification
        else None
    )
    return {"report": data.report(), "samples": samples, "image": x.ndim == 4, "balance": balance}


def _as_image(sample: np.ndarray) -> np.ndarray:
    if sample.ndim == 3:
        array = sample.transpose(1, 2, 0) if sample.shape[0] in (1, 3) else sample[..., :1]
    elif sample.ndim == 2:
        array = sample[..., None]
    else:
        side = int(np.ceil(np.sqrt(sample.size)))
        array = np.zeros(side * side)
        array[: sample.size] = sample
        array = array.reshape(side, side, 1)
    return (np.clip(array, 0, 1) * 255).astype(np.uint8)


class DataPreview(QGroupBox):
    def __init__(self, model: DocumentModel, parent: QWidget | None = None):
        super().__init__("Preview", parent)
        self.model = model
        self.button = QPushButton("Show samples")
        self.button.clicked.connect(self.load)
        self.report = QLabel("A few training samples per class, as the network will see them.")
        self.report.setWordWrap(True)
        # Samples per class; the suggestion follows the training settings as they change.
        self.balance = QLabel()
        self.balance.setWordWrap(True)
        self.balance.hide()
        self.balance_advice = QLabel()
        self.balance_advice.setWordWrap(True)
        self.balance_advice.setStyleSheet("color: #b45309;")
        self.balance_advice.hide()
        self.class_balance = None
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setSpacing(2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.button)
        layout.addWidget(self.report)
        layout.addWidget(self.balance)
        layout.addWidget(self.balance_advice)
        layout.addWidget(self.grid_host)
        self._job = BackgroundJob("studio-data-preview", self)
        self._job.done.connect(self._show)
        model.settings_changed.connect(self._show_balance)
        model.project_replaced.connect(self._forget_balance)

    def load(self) -> None:
        analysis = self.model.analysis
        if analysis.input_id is None:
            self.report.setText("Add an Input layer first: its shape says how to load the data.")
            return
        shape = self.model.project.network.nodes[analysis.input_id].params["shape"]
        project = self.model.project
        base = self.model.path.parent if self.model.path else None
        self.button.setEnabled(False)
        self.report.setText("Loading…")

        data, seed = dict(project.data), project.training["seed"]
        self._job.start(lambda: sample_grid(data, tuple(shape), seed, base or Path.cwd()))

    def wait(self, timeout: float = 30.0) -> None:
        self._job.wait(timeout)

    @Slot(object)
    def _show(self, result: dict) -> None:
        self.button.setEnabled(True)
        self.button.setText("Refresh samples")
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        if "error" in result:
            self.report.setText(result["error"])
            self._forget_balance()
            return
        self.report.setText(result["report"])
        self.class_balance = result["balance"]
        self._show_balance()
        for row, (name, images) in enumerate(result["samples"]):
            label = QLabel(name)
            label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
            self.grid.addWidget(label, row, 0)
            for col, array in enumerate(images, start=1):
                tile = QLabel()
                tile.setPixmap(_pixmap(array))
                self.grid.addWidget(tile, row, col)
        self.samples = result["samples"]

    def _show_balance(self, *_) -> None:
        balance = self.class_balance
        if balance is None:
            self._forget_balance()
            return
        self.balance.setText(balance.summary())
        self.balance.show()
        suggestion = balance.suggestion(self.model.project.training)
        self.balance_advice.setText(f"⚠ {suggestion}" if suggestion else "")
        self.balance_advice.setVisible(bool(suggestion))

    def _forget_balance(self, *_) -> None:
        self.class_balance = None
        self.balance.hide()
        self.balance_advice.hide()


def _pixmap(array: np.ndarray) -> QPixmap:
    h, w, c = array.shape
    data = np.ascontiguousarray(array if c == 3 else array[..., 0])
    fmt = QImage.Format_RGB888 if c == 3 else QImage.Format_Grayscale8
    image = QImage(data.data, w, h, w * c, fmt).copy()
    return QPixmap.fromImage(image).scaled(CELL, CELL, Qt.KeepAspectRatio, Qt.FastTransformation)
