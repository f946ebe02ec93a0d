"""The findings panel: diagnosis findings as they arrive, each with its evidence, the
layers it concerns (highlighted on the canvas) and a button that applies the suggested
change as one undoable command."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from studio.commands import apply_fix
from studio.errors import ProjectError
from ui.document import DocumentModel
from ui.theme import icon

SEVERITY_COLOURS = {"error": "#dc2626", "warning": "#d97706"}


class FindingCard(QFrame):
    def __init__(self, finding: dict, on_fix, on_show, parent: QWidget | None = None):
        super().__init__(parent)
        self.finding = finding
        colour = SEVERITY_COLOURS.get(finding["severity"], "#6b7280")
        self.setObjectName("finding")
        self.setStyleSheet(
            f"QFrame#finding {{ border: 1px solid palette(mid); border-left: 4px solid {colour};"
            " border-radius: 6px; }"
        )
        layout = QVBoxLayout(self)
        step = f"step {finding['step'] + 1}" + (
            f", epoch {finding['epoch']}" if finding.get("epoch") else ""
        )
        title = QLabel(f"<b>{finding['title']}</b> <span style='color: gray'>({step})</span>")
        message = QLabel(finding["message"])
        remedy = QLabel(f"→ {finding['remedy']}")
        for label in (message, remedy):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(title)
        layout.addWidget(message)
        layout.addWidget(remedy)
        buttons = QHBoxLayout()
        if finding.get("layers"):
            show = QPushButton(f"Show {len(finding['layers'])} layer(s)")
            show.clicked.connect(lambda: on_show(finding["layers"]))
            buttons.addWidget(show)
        fix = finding.get("fix") or {}
        if fix.get("nodes") or fix.get("training"):
            self.fix_button = QPushButton(icon("fix"), "Apply suggested fix")
            self.fix_button.setToolTip(_describe_fix(fix))
            self.fix_button.clicked.connect(lambda: on_fix(self))
            buttons.addWidget(self.fix_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)


def _describe_fix(fix: dict) -> str:
    lines = []
    nodes = fix.get("nodes", {})
    if nodes:
        fields = sorted({k for changes in nodes.values() for k in changes})
        lines.append(
            f"Set {', '.join(fields)} on {len(nodes)} layer(s): {', '.join(list(nodes)[:6])}"
            + ("…" if len(nodes) > 6 else "")
        )
    for path, value in fix.get("training", {}).items():
        lines.append(f"training.{path} = {value}")
    return "\n".join(lines)


class FindingsPanel(QScrollArea):
    show_layers = Signal(list)
    fix_applied = Signal(str)

    def __init__(self, model: DocumentModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.setWidgetResizable(True)
        body = QWidget()
        self._layout = QVBoxLayout(body)
        self._layout.setAlignment(Qt.AlignTop)
        self.empty = QLabel(
            "No findings yet. Train or run Check → Diagnose; problems with gradients, "
            "activations or the learning rate appear here with a suggested fix."
        )
        self.empty.setWordWrap(True)
        self._layout.addWidget(self.empty)
        self.setWidget(body)
        self.cards: list[FindingCard] = []

    def clear(self) -> None:
        for card in self.cards:
            card.deleteLater()
        self.cards = []
        self.empty.show()

    def add(self, finding: dict) -> None:
        self.empty.hide()
        card = FindingCard(finding, self._apply, self.show_layers.emit)
        self._layout.addWidget(card)
        self.cards.append(card)

    def _apply(self, card: FindingCard) -> None:
        try:
            command = apply_fix(self.model.project, card.finding["fix"], card.finding["title"])
        except ProjectError as err:
            card.fix_button.setText(f"Cannot apply: {err}")
            card.fix_button.setEnabled(False)
            return
        self.model.push(command)
        card.fix_button.setText("Fix applied (Ctrl+Z to undo) — train again to compare")
        card.fix_button.setEnabled(False)
        self.fix_applied.emit(card.finding["title"])
