"""The data and training panels, generated from the settings schemas.

Each section of `studio.settings.DATA` / `TRAINING` becomes a group of fields; an edit
becomes a SetSettings command (typing in one field merges into one undo step).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGroupBox, QLabel, QScrollArea, QVBoxLayout, QWidget

from studio.schema import Param
from ui.document import DocumentModel
from ui.forms import ParamForm

TITLES = {
    "general": "General",
    "optimizer": "Optimizer",
    "schedule": "Learning-rate schedule",
    "regularization": "Regularization",
    "clipping": "Gradient clipping",
    "early_stopping": "Early stopping",
    "checkpoint": "Checkpoint",
    "monitors": "Monitors",
    "validation": "Validation (holdout, k-fold, bootstrap)",
}


class SettingsPanel(QScrollArea):
    """One scrollable column of grouped forms for a settings section ("data" or "training")."""

    def __init__(
        self,
        model: DocumentModel,
        section: str,
        schema: dict,
        parent: QWidget | None = None,
        extra: QWidget | None = None,
    ):
        super().__init__(parent)
        self.model, self.section, self.schema = model, section, schema
        self.setWidgetResizable(True)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setAlignment(Qt.AlignTop)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #dc2626; font-weight: 600;")
        layout.addWidget(self.message)
        self.forms: dict[str, ParamForm] = {}
        flat = tuple(v for v in schema.values() if isinstance(v, Param))
        groups = [("general", flat)] + [
            (k, tuple(v.values())) for k, v in schema.items() if isinstance(v, dict)
        ]
        for key, params in groups:
            if not params:
                continue
            form = ParamForm(params)
            form.edited.connect(lambda name, value, key=key: self._edit(key, name, value))
            box = QGroupBox(TITLES.get(key, key.replace("_", " ").capitalize()))
            QVBoxLayout(box).addWidget(form)
            layout.addWidget(box)
            self.forms[key] = form
        if extra is not None:
            layout.addWidget(extra)
        self.setWidget(body)
        model.settings_changed.connect(self.refresh)
        model.project_replaced.connect(self.refresh)
        self.refresh()

    def values(self) -> dict:
        return getattr(self.model.project, self.section)

    def refresh(self, *_):
        values = self.values()
        for key, form in self.forms.items():
            form.set_values(values if key == "general" else values[key])
        if "validation" in self.forms and self.section == "training":
            # Folds count for k-fold only, repeats for the bootstrap only.
            method = values["validation"]["method"]
            self.forms["validation"].set_row_visible("folds", method == "kfold")
            self.forms["validation"].set_row_visible("repeats", method == "bootstrap")

    def _edit(self, group: str, name: str, value) -> None:
        path = f"{self.section}.{name}" if group == "general" else f"{self.section}.{group}.{name}"
        if self.model.try_set(path, value, self._refused):
            self.message.clear()

    def _refused(self, sentence: str) -> None:
        self.message.setText(sentence)
        self.refresh()  # the form shows the value the document kept
