"""The Augmentation panel: the `data.augmentation` fields and a live preview grid.

Each row of the grid is one training sample: the original, then a few augmented draws,
made by the same code that augments training batches. Loading samples (decoding image
files) and drawing run in a short-lived thread, like the data preview; only numpy arrays
come back. Edits go through SetSettings, so they are undoable like any other setting.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from studio.data.augmentations import augmentation_catalog
from studio.data.label_meaning import label_warnings
from studio.shapes_text import describe_kind
from ui.background import BackgroundJob
from ui.document import DocumentModel
from ui.forms import ParamForm

ROWS = 4
DRAWS = 5
CELL = 56
DEBOUNCE_MS = 150
# Group headings that say more than the catalog's group name.
HEADINGS = {"Mixing": "Mixing (whole batches)"}


def load_samples(settings: dict, input_shape: tuple, seed: int, base: Path) -> dict:
    """A few training samples (one per class where it can), scaled 0..1, with labels."""
    import torch

    from studio.data.prepare import prepare_data

    data = prepare_data({**settings, "scaling": "unit"}, input_shape, seed, base)
    x, y = data.train.x, data.train.y
    picked: list[int] = []
    for cls in range(len(data.classes)):
        hits = (y == cls).nonzero().flatten()
        if len(hits):
            picked.append(int(hits[0]))
        if len(picked) == ROWS:
            break
    picked += [i for i in range(len(y)) if i not in picked][: ROWS - len(picked)]
    index = torch.tensor(picked, dtype=torch.long)
    classes = len(data.classes)
    return {"images": x[index], "labels": y[index] if classes else None, "classes": classes}


class AugmentPanel(QWidget):
    """Forms for each transform, above them the preview grid and a New draws button."""

    def __init__(self, model: DocumentModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.seed = 0
        self.grid_array: np.ndarray | None = None  # the latest preview, (rows, 1+draws, C, H, W)
        self._samples: tuple[str, dict] | None = None  # (data key, samples), worker-only
        self._pending = False
        self._stale = True  # nothing drawn yet
        self._job = BackgroundJob("studio-augment-preview", self)
        self._job.done.connect(self._show)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._refresh_if_seen)

        layout = QVBoxLayout(self)
        layout.addWidget(self._build_preview())
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #dc2626; font-weight: 600;")
        layout.addWidget(self.message)
        # Transforms that change what a label means on this data (flips on digits).
        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #b45309;")
        self.warning.hide()
        layout.addWidget(self.warning)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self._build_forms())
        layout.addWidget(scroll, 1)

        model.settings_changed.connect(self._settings_changed)
        model.project_replaced.connect(self._project_replaced)
        model.analysis_changed.connect(self._schedule)
        self.refresh()

    # -- building ------------------------------------------------------------------------
    def _build_preview(self) -> QWidget:
        box = QGroupBox("Preview")
        self.status = QLabel("Each row: a training sample, then augmented draws of it.")
        self.status.setWordWrap(True)
        self.new_draws = QPushButton("New draws")
        self.new_draws.setToolTip("Draw the random augmentations again")
        self.new_draws.clicked.connect(self.redraw)
        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.new_draws)
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setSpacing(2)
        self.grid.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        layout = QVBoxLayout(box)
        layout.addLayout(top)
        layout.addWidget(self.grid_host)
        return box

    def _build_forms(self) -> QWidget:
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setAlignment(Qt.AlignTop)
        self.forms: dict[str, ParamForm] = {}
        # Whatever is registered, built-in or from a plugin, grouped as the catalog says.
        for group, types in augmentation_catalog().by_group().items():
            label = QLabel(HEADINGS.get(group, group))
            label.setStyleSheet("font-weight: 600; margin-top: 6px;")
            layout.addWidget(label)
            for t in types:
                name = t.name
                form = ParamForm(t.params)
                form.setObjectName(name)
                form.edited.connect(lambda field, value, name=name: self._edit(name, field, value))
                box = QGroupBox(t.heading())
                box.setToolTip(t.summary)
                QVBoxLayout(box).addWidget(form)
                layout.addWidget(box)
                self.forms[name] = form
        return body

    # -- document --------------------------------------------------------------------------
    def values(self) -> dict:
        return self.model.project.data["augmentation"]

    def refresh(self) -> None:
        values = self.values()
        for name, form in self.forms.items():
            form.set_values(values[name])
        warnings = label_warnings(self.model.project.data)
        self.warning.setText("\n".join(f"⚠ {w}" for w in warnings))
        self.warning.setVisible(bool(warnings))

    def _edit(self, name: str, field: str, value) -> None:
        if self.model.try_set(f"data.augmentation.{name}.{field}", value, self._refused):
            self.message.clear()

    def _refused(self, sentence: str) -> None:
        self.message.setText(sentence)
        self.refresh()  # the form shows the value the document kept

    def _settings_changed(self, paths: list) -> None:
        if any(p.startswith("data.augmentation") or p == "data.source" for p in paths):
            self.refresh()
        if any(p.startswith("data") or p == "training.seed" for p in paths):
            self._schedule()

    def _project_replaced(self) -> None:
        self.refresh()
        self._schedule()

    # -- preview ---------------------------------------------------------------------------
    def can_be_seen(self) -> bool:
        # A dock behind another tab stays "visible", moved out of sight: ask what shows.
        return self.isVisible() and not self.visibleRegion().isEmpty()

    def _schedule(self, *_) -> None:
        """Refresh the preview once edits pause; a hidden panel waits until it is shown."""
        self._stale = True
        if self.can_be_seen():
            self._timer.start()

    def _refresh_if_seen(self) -> None:
        if self.can_be_seen():
            self.refresh_preview()

    def shown(self, visible: bool = True) -> None:
        """The panel came into view (its dock's tab was chosen): draw if anything changed."""
        if visible and self._stale:
            self._timer.start()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.shown()

    def redraw(self) -> None:
        self.seed += 1
        self.refresh_preview()

    def refresh_preview(self) -> None:
        analysis = self.model.analysis
        if analysis.input_id is None:
            self._clear("Add an Input layer first: its shape says how to load the data.")
            return
        shape = tuple(self.model.project.network.nodes[analysis.input_id].params["shape"])
        if len(shape) != 3:
            any_input = [t.name for t in augmentation_catalog() if not t.image_only]
            which = (
                f"Of these transforms only {' and '.join(any_input)} "
                f"{'applies' if len(any_input) == 1 else 'apply'} to such data."
                if any_input
                else "None of these transforms applies to such data."
            )
            self._clear(
                f"Each sample is {describe_kind(shape)}, not an image, so there is nothing to "
                f"picture. {which}"
            )
            return
        if self._job.running:
            self._pending = True  # one more round when this one ends, with the latest settings
            return
        project = self.model.project
        data = json.loads(json.dumps(project.data))
        settings = data.pop("augmentation")
        seed, draw_seed = project.training["seed"], self.seed
        base = self.model.path.parent if self.model.path else Path.cwd()
        key = json.dumps([data, shape, seed, str(base)], sort_keys=True)
        self.new_draws.setEnabled(False)
        self._stale = False

        def work() -> dict:
            from studio.data.augment import enabled_names, preview

            if self._samples is None or self._samples[0] != key:
                self._samples = (key, load_samples(data, shape, seed, base))
            s = self._samples[1]
            grid = preview(s["images"], settings, DRAWS, draw_seed, s["labels"], s["classes"])
            return {"grid": grid, "plain": not enabled_names(settings)}

        self._job.start(work)

    def wait(self, timeout: float = 30.0) -> None:
        """Block until the preview being drawn is done (tests, closing)."""
        self._job.wait(timeout)

    @Slot(object)
    def _show(self, result: dict) -> None:
        self.wait()  # the worker's last act was to send this; let it end
        self.new_draws.setEnabled(True)
        if self._pending:
            self._pending = False
            self.refresh_preview()
        if "error" in result:
            self._clear(result["error"])
            return
        self.grid_array = result["grid"]
        self.status.setText(
            "No augmentation is on, so the draws equal the originals."
            if result["plain"]
            else "Each row: a training sample, then augmented draws of it."
        )
        self._clear_tiles()
        for col, title in enumerate(["Original"] + [f"Draw {i + 1}" for i in range(DRAWS)]):
            header = QLabel(title)
            header.setAlignment(Qt.AlignCenter)
            self.grid.addWidget(header, 0, col)
        for row, samples in enumerate(self.grid_array, start=1):
            for col, sample in enumerate(samples):
                tile = QLabel()
                tile.setPixmap(_pixmap(sample))
                self.grid.addWidget(tile, row, col)

    def _clear(self, text: str) -> None:
        self.status.setText(text)
        self.grid_array = None
        self._clear_tiles()

    def _clear_tiles(self) -> None:
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget():
                item.widget().deleteLater()

    def tile_images(self) -> list[QImage]:
        """The pixmaps shown, row by row (for tests and screenshots)."""
        items = (self.grid.itemAt(i).widget() for i in range(self.grid.count()))
        return [w.pixmap().toImage() for w in items if w is not None and not w.pixmap().isNull()]


def _pixmap(sample: np.ndarray) -> QPixmap:
    """A (C, H, W) 0..1 image as a CELL-sized tile (crisp pixels for small images)."""
    c, h, w = sample.shape
    array = (np.clip(sample, 0, 1) * 255).astype(np.uint8)
    if c == 3:
        data, fmt, stride = (
            np.ascontiguousarray(array.transpose(1, 2, 0)),
            QImage.Format_RGB888,
            w * 3,
        )
    else:
        data, fmt, stride = np.ascontiguousarray(array[0]), QImage.Format_Grayscale8, w
    image = QImage(data.data, w, h, stride, fmt).copy()
    smooth = Qt.SmoothTransformation if max(h, w) > CELL else Qt.FastTransformation
    return QPixmap.fromImage(image).scaled(CELL, CELL, Qt.KeepAspectRatio, smooth)
