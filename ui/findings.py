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
from studio.fixes import describe_fix
from ui.document import DocumentModel
from ui.theme import icon

SEVERITY_COLOURS = {"error": "#dc2626", "warning": "#d97706"}
# Findings about the learning rate: their card offers the learning-rate finder.
LEARNING_RATE = {"lr_too_low", "lr_too_high", "diverged", "exploding_gradients", "not_learning"}


class FindingCard(QFrame):
    def __init__(
        self, finding: dict, on_fix, on_show, on_find_lr, tip: str, parent: QWidget | None = None
    ):
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
        self.fix_button: QPushButton | None = None
        if fix.get("nodes") or fix.get("training"):
            self.fix_button = QPushButton(icon("fix"), "Apply suggested fix")
            self.fix_button.setToolTip(tip)
            self.fix_button.clicked.connect(lambda: on_fix(self))
            buttons.addWidget(self.fix_button)
        if finding.get("kind") in LEARNING_RATE:
            finder = QPushButton("Find learning rate…")
            finder.setToolTip("Run → Find Learning Rate: measure a rate on a copy of the model")
            finder.clicked.connect(on_find_lr)
            buttons.addWidget(finder)
        buttons.addStretch(1)
        layout.addLayout(buttons)

    def settle(self, text: str) -> None:
        """The fix is no longer to be applied from here (applied, covered, impossible)."""
        if self.fix_button is not None:
            self.fix_button.setText(text)
            self.fix_button.setEnabled(False)


class FindingsPanel(QScrollArea):
    show_layers = Signal(list)
    fix_applied = Signal(str)
    find_lr_requested = Signal()

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
        tip = "\n".join(describe_fix(self.model.project, finding.get("fix") or {}))
        card = FindingCard(
            finding, self._apply, self.show_layers.emit, self.find_lr_requested.emit, tip
        )
        self._layout.addWidget(card)
        self.cards.append(card)

    def _apply(self, card: FindingCard) -> None:
        try:
            command = apply_fix(self.model.project, card.finding["fix"], card.finding["title"])
        except ProjectError as err:
            card.settle(f"Cannot apply: {err}")
            return
        self.model.push(command)
        card.settle("Fix applied (Ctrl+Z to undo) — train again to compare")
        # A fix whose layers this one already changed (a vanishing fix turns sigmoid layers
        # into ReLU ones; their saturation fix would not fit them any more).
        changed = set(card.finding["fix"].get("nodes", {}))
        for other in self.cards:
            nodes = set((other.finding.get("fix") or {}).get("nodes", {}))
            if other is not card and other.fix_button is not None and nodes and nodes <= changed:
                other.settle(f"Covered by the fix for '{card.finding['title']}'")
        self.fix_applied.emit(card.finding["title"])
