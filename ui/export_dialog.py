"""Export the model: ONNX (checked by onnxruntime right away) and safetensors weights."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths, Qt
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
from studio.export_code import export_pytorch
from studio.pretrained import without_weights
from studio.training.model_card import card_for
from studio.training.runs import export_checkpoint, list_runs
from studio.weights import fits, load_weights
from ui.document import DocumentModel

# The studio's own files (its checkout, or its installed package's folder): never a default
# place to write a user's exports.
INSTALLATION = Path(__file__).resolve().parent.parent


def _path_row(default: str, caption: str, pattern: str) -> tuple[QWidget, QLineEdit]:
    """A path field with a browse button; pattern "" browses for a folder."""
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    edit = QLineEdit(default)
    browse = QPushButton("…")
    browse.setFixedWidth(32)

    def pick():
        if pattern:
            path, _ = QFileDialog.getSaveFileName(row, caption, edit.text(), pattern)
        else:
            path = QFileDialog.getExistingDirectory(row, caption, str(Path(edit.text()).parent))
        if path:
            edit.setText(path)

    browse.clicked.connect(pick)
    layout.addWidget(edit)
    layout.addWidget(browse)
    return row, edit


def export_folder(model: DocumentModel) -> Path:
    """Where exports go by default: the folder used last, else the project's own folder
    (unless it is inside the studio's installation: the shipped examples, a checkout),
    else the user's documents."""
    remembered = QSettings().value("export/folder", "")
    if remembered and Path(remembered).is_dir():
        return Path(remembered)
    if model.path is not None:
        folder = model.path.parent.resolve()
        if not folder.is_relative_to(INSTALLATION):
            return folder
    documents = QStandardPaths.writableLocation(QStandardPaths.DocumentsLocation)
    return Path(documents or Path.home())


class ExportDialog(QDialog):
    def __init__(
        self,
        model: DocumentModel,
        runs_root: Path,
        parent: QWidget | None = None,
        run_path: Path | None = None,
    ):
        super().__init__(parent)
        self.model = model
        self.setWindowTitle("Export model")
        self.setMinimumWidth(520)
        name = model.project.name
        folder = export_folder(model)
        form = QFormLayout()
        self.source = QComboBox()
        self.source.addItem("Current weights (as built, untrained)", None)
        # Only runs whose weights fit the network as it is now can be chosen: after a fix
        # or an edit, older runs trained another network.
        try:
            with without_weights():
                current = build_model(model.project)
        except StudioError:
            current = None
        chosen = 0
        for row in reversed(list_runs(runs_root, name)):
            label = f"Run of {time.strftime('%b %d %H:%M', time.localtime(row['started']))}"
            label += f" ({row['status']}"
            if row["best_val_accuracy"] is not None:
                label += f", val acc {row['best_val_accuracy']:.2%}"
            fit = current is not None and fits(current, export_checkpoint(Path(row["path"])))
            self.source.addItem(label + (")" if fit else "; another network)"), row)
            if not fit:
                item = self.source.model().item(self.source.count() - 1)
                item.setEnabled(False)
                item.setToolTip("This run trained a network other than the open one.")
            elif not chosen or (run_path is not None and Path(row["path"]) == run_path):
                chosen = self.source.count() - 1
        self.source.setCurrentIndex(chosen)
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
        self.code_on = QCheckBox("PyTorch code")
        self.code_on.setToolTip(
            "model.py (the network as a plain nn.Module), train.py (the project's training "
            "loop), weights.safetensors and a README; nothing in them imports the studio."
        )
        code_row, self.code_path = _path_row(
            str(folder / f"{name}_pytorch"), "Folder for the code", ""
        )
        form.addRow(self.code_on, code_row)
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
                load_weights(model, export_checkpoint(Path(run_row["path"])))
            lines = []
            card = None
            if self.onnx_on.isChecked() or self.code_on.isChecked():
                run_folder = Path(run_row["path"]) if run_row else None
                card = card_for(
                    self.model.project, model.input_shape, folder or Path.cwd(), run_folder
                )
            if self.onnx_on.isChecked():
                report = export_onnx(
                    model,
                    self.onnx_path.text(),
                    self.opset.value(),
                    self.dynamic.isChecked(),
                    metadata=card,
                )
                verdict = "✔" if report.ok else "✘"
                lines.append(f"{verdict} {report.summary()}")
            if self.code_on.isChecked():
                source = f"run of {run_row['id']}" if run_row else "the project's initial weights"
                code = export_pytorch(
                    self.model.project,
                    model,
                    self.code_path.text(),
                    card,
                    source,
                    folder or Path.cwd(),
                )
                lines.append(f"{'✔' if code.ok else '✘'} {code.summary()}")
            if self.weights_on.isChecked():
                path = export_safetensors(
                    model, self.weights_path.text(), {"project": self.model.project.name}
                )
                lines.append(f"✔ Wrote {path}.")
            self.result.setText("\n".join(lines) or "Tick ONNX, safetensors and/or PyTorch code.")
            self.result.setStyleSheet("")
            QSettings().setValue("export/folder", str(Path(self.onnx_path.text()).parent))
        except StudioError as err:
            self.result.setText(str(err))
            self.result.setStyleSheet("color: #dc2626;")
        self._fit_result()

    def _fit_result(self) -> None:
        """Grow to fit a long result or error instead of squashing the form above it (a
        wrapped label's height depends on its width, which the dialog's minimum size does
        not see)."""
        layout = self.layout()
        layout.activate()
        needed = layout.totalHeightForWidth(self.width())
        if needed > self.height():
            self.resize(self.width(), needed)
