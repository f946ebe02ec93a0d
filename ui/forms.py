"""Forms generated from parameter schemas (`studio.schema.Param`).

The inspector and the data/training panels are all built from the same schemas that
validate a project file, so a field a person can type in is a field the file can hold.
Widgets report edits; they never write to the document themselves.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QEvent, QObject, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QDoubleValidator, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from studio.schema import Param

MIXED = object()  # several selected layers disagree on this value


class ProjectUndoInFields(QObject):
    """Ctrl+Z / Ctrl+Shift+Z in a field undo the project, not the field's text.

    A committed field (its text is what the project holds) hands undo and redo to the
    window's actions; only typing not yet committed is undone inside the field, as in any
    text box. Without this a QLineEdit took Ctrl+Z for itself: the field showed the old
    text while the node kept the new value, and leaving the field committed it again.
    """

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and (
            event.matches(QKeySequence.StandardKey.Undo)
            or event.matches(QKeySequence.StandardKey.Redo)
        ):
            typing = isinstance(watched, QLineEdit) and watched.isModified()
            if not typing:
                event.ignore()  # not overridden: the window's shortcut runs
                return True
        return False


_UNDO_FILTER = ProjectUndoInFields()


class ParamForm(QWidget):
    """A form for a tuple of Params; emits edited(name, value) when a person changes one."""

    edited = Signal(str, object)

    def __init__(self, params: tuple[Param, ...], parent: QWidget | None = None):
        super().__init__(parent)
        self.params = {p.name: p for p in params}
        self.widgets: dict[str, QWidget] = {}
        self._shown: dict[str, Any] = {}  # what set_values last showed, per field
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        for p in params:
            widget = self._make(p)
            widget.setToolTip(p.help)
            widget.setObjectName(p.name)
            label = QLabel(p.title)
            label.setToolTip(p.help)
            layout.addRow(label, widget)
            self.widgets[p.name] = widget
            editor = widget.lineEdit() if isinstance(widget, QComboBox) else widget
            if editor is not None:
                editor.installEventFilter(_UNDO_FILTER)

    def set_row_visible(self, name: str, visible: bool) -> None:
        """Hide a field that does not apply (group count without group normalization)."""
        self.layout().setRowVisible(self.widgets[name], visible)

    def _make(self, p: Param) -> QWidget:
        if p.kind == "bool":
            w = QCheckBox()
            w.toggled.connect(lambda v, n=p.name: self.edited.emit(n, bool(v)))
            return w
        if p.kind == "choice":
            w = QComboBox()
            w.addItems(list(p.choices))
            w.activated.connect(lambda i, n=p.name, c=p.choices: self.edited.emit(n, c[i]))
            return w
        if p.kind == "int":
            w = QSpinBox()
            w.setRange(
                int(p.minimum if p.minimum is not None else -(2**31)),
                int(min(p.maximum or 2**31 - 1, 2**31 - 1)),
            )
            w.setKeyboardTracking(False)  # one edit per finished number, not per keystroke
            w.valueChanged.connect(lambda v, n=p.name: self.edited.emit(n, int(v)))
            return w
        if p.kind == "int_or_choice":
            w = QComboBox()
            w.setEditable(True)
            w.addItems(list(p.choices))
            w.lineEdit().editingFinished.connect(
                lambda n=p.name, w=w: self._commit(n, w.lineEdit())
            )
            w.activated.connect(lambda i, n=p.name, w=w: self._emit_text(n, w.currentText()))
            return w
        w = QLineEdit()
        if p.kind == "float":
            validator = QDoubleValidator()
            validator.setNotation(QDoubleValidator.ScientificNotation)
            w.setValidator(validator)
        if p.kind in ("shape", "int_list"):
            w.setPlaceholderText(
                "e.g. 1, 8, 8" if p.kind == "shape" else "e.g. 0, 1, 2 (empty: all)"
            )
        w.editingFinished.connect(lambda n=p.name, w=w: self._commit(n, w))
        return w

    def _commit(self, name: str, field: QLineEdit) -> None:
        # Committed: from now on Ctrl+Z in this field undoes the project (see above).
        field.setModified(False)
        self._emit_text(name, field.text())

    def _emit_text(self, name: str, text: str) -> None:
        p = self.params[name]
        text = text.strip()
        value: Any = text
        if p.kind == "float":
            try:
                value = float(text)
            except ValueError:
                value = text
        elif p.kind in ("shape", "int_list"):
            try:
                value = json.loads(f"[{text}]")
            except json.JSONDecodeError:
                value = text
        elif p.kind == "int_or_choice" and text not in p.choices:
            try:
                value = int(text)
            except ValueError:
                value = text
        if name in self._shown and value == self._shown[name]:
            return  # leaving a field that was not changed is not an edit
        self.edited.emit(name, value)

    def set_values(self, values: dict[str, Any]) -> None:
        """Show values (MIXED: the selected layers disagree) without emitting edits."""
        for name, widget in self.widgets.items():
            if name not in values:
                continue
            value = values[name]
            self._shown[name] = value
            blocker = QSignalBlocker(widget)
            if isinstance(widget, QCheckBox):
                widget.setTristate(value is MIXED)
                widget.setCheckState(
                    Qt.PartiallyChecked if value is MIXED else Qt.Checked if value else Qt.Unchecked
                )
            elif isinstance(widget, QComboBox) and not widget.isEditable():
                widget.setCurrentIndex(-1 if value is MIXED else widget.findText(str(value)))
            elif isinstance(widget, QComboBox):
                widget.setEditText("" if value is MIXED else str(value))
            elif isinstance(widget, QSpinBox):
                widget.setSpecialValueText("")
                if value is not MIXED:
                    widget.setValue(int(value))
            elif isinstance(widget, QLineEdit):
                widget.setText("" if value is MIXED else _text(value))
                widget.setPlaceholderText(
                    "(differs)" if value is MIXED else widget.placeholderText()
                )
            del blocker


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
