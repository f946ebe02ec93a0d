"""Export the model: ONNX (checked by onnxruntime right away) and safetensors weights."""

from __future__ import annotations

import contextlib
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.builder import build_model
from studio.errors import StudioError
from studio.export import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, export_onnx, export_safetensors
from studio.pretrained import without_weights
from studio.training.runs import Run, list_runs
from studio.weights import load_weights
from ui.document import DocumentModel


def _path_row(default: str, caption: str, pattern: str) -> tuple[QWidget, QLineEdit]:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    edit = QLineEdit(default)
    browse = QPushButton("…")
    browse.setFixedWidth(32)

    def pick():
        path, _ = QFileDialog.getSaveFileName(row, caption, edit.text(), pattern)
        if path:
            edit.setText(path)

    browse.clicked.connect(pick)
    layout.addWidget(edit)
    layout.addWidget(browse)
    return row, edit


class ExportDialog(QDialog):
    def __init__(self, model: DocumentModel, runs_root: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.setWindowTitle("Export model")
        self.setMinimumWidth(520)
        name = model.project.name
        folder = model.path.parent if model.path else Path.cwd()
        form = QFormLayout()
        self.source = QComboBox()
        self.source.addItem("Current weights (as built, untrained)", None)
        for row in reversed(list_runs(runs_root, name)):
            label = f"Run {row['id']} ({row['status']}"
            if row["best_val_accuracy"] is not None:
                label += f", val acc {row['best_val_accuracy']:.2%}"
            self.source.addItem(label + ")", row)
        if self.source.count() > 1:
            self.source.setCurrentIndex(1)
        self.runs_root = runs_root
        self.onnx_on = QCheckBox("ONNX")
        self.onnx_on.setChecked(True)
        onnx_row, self.onnx_path = _path_row(
            str(folder / f"{name}.onnx"), "ONNX file", "ONNX (*.onnx)"
        )
        self.opset = QSpinBox()
        self.opset.setRange(MIN_OPSET, MAX_OPSET)
        self.opset.setValue(DEFAULT_OPSET)
        self.dynamic = QCheckBox("Dynamic batch size")
        self.dynamic.setChecked(True)
        self.weights_on = QCheckBox("safetensors weights")
        weights_row, self.weights_path = _path_row(
            str(folder / f"{name}.safetensors"), "Weights file", "safetensors (*.safetensors)"
        )
        form.addRow("Weights from", self.source)
        form.addRow(self.onnx_on, onnx_row)
        form.addRow("Opset", self.opset)
        form.addRow("", self.dynamic)
        form.addRow(self.weights_on, weights_row)
        self.result = QLabel()
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.export_button = buttons.addButton("Export", QDialogButtonBox.AcceptRole)
        buttons.accepted.connect(self.export)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.result)
        layout.addWidget(buttons)

    def export(self) -> None:
        """Export what is ticked; the result (or the one-sentence error) shows in the dialog."""
        try:
            run_row = self.source.currentData()
            folder = self.model.path.parent if self.model.path else None
            # A run's checkpoint holds every weight: no need to load pretrained backbones.
            with contextlib.nullcontext() if not run_row else without_weights():
                model = build_model(self.model.project, base=folder)
            if run_row:
                run = Run(self.runs_root, Path(run_row["path"]), run_row["id"])
                checkpoints = run.path / "checkpoints"
                best = checkpoints / "best.safetensors"
                load_weights(model, best if best.is_file() else checkpoints / "last.safetensors")
            lines = []
            if self.onnx_on.isChecked():
                report = export_onnx(
                    model, self.onnx_path.text(), self.opset.value(), self.dynamic.isChecked()
                )
                verdict = "✔" if report.ok else "✘"
                lines.append(f"{verdict} {report.summary()}")
            if self.weights_on.isChecked():
                path = export_safetensors(
                    model, self.weights_path.text(), {"project": self.model.project.name}
                )
                lines.append(f"✔ Wrote {path}.")
            self.result.setText("\n".join(lines) or "Tick ONNX and/or safetensors.")
            self.result.setStyleSheet("")
        except StudioError as err:
            self.result.setText(str(err))
            self.result.setStyleSheet("color: #dc2626;")
