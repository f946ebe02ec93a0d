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
        # What happened to the fix, under the buttons (a long button text would widen the
        # card past the panel).
        self.note = QLabel()
        self.note.hide()
        for label in (title, message, remedy, self.note):
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
        layout.addWidget(self.note)
        self.settled = False

    def settle(self, button: str, note: str = "") -> None:
        """The fix is no longer to be applied from here (applied, covered, impossible)."""
        if self.fix_button is not None:
            self.fix_button.setText(button)
            self.fix_button.setEnabled(False)
            self.settled = True
        if note:
            self.note.setText(note)
            self.note.show()

    def set_fixable(self, fixable: bool, why: str = "") -> None:
        """Enable the fix button (unless settled); `why` says why not."""
        if self.fix_button is not None and not self.settled:
            self.fix_button.setEnabled(fixable)
            self.fix_button.setToolTip(self.fix_button.toolTip() if fixable else why)


STOP_FIRST = "Stop training first: the run trains the network as it was when it started."


class FindingsPanel(QScrollArea):
    """The findings of the current run, and those of the run before it (kept, below a
    heading, until the next run or another project)."""

    show_layers = Signal(list)
    fix_applied = Signal(str)
    find_lr_requested = Signal()
    count_changed = Signal(int)  # findings of the current run

    def __init__(self, model: DocumentModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.setWidgetResizable(True)
        # Cards wrap their text to the panel's width; nothing scrolls sideways.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        body = QWidget()
        self._layout = QVBoxLayout(body)
        self._layout.setAlignment(Qt.AlignTop)
        self.empty = QLabel(
            "No findings yet. Train (Ctrl+Enter): problems with gradients, activations or "
            "the learning rate appear here while it runs, each with a suggested fix."
        )
        self.empty.setWordWrap(True)
        self._layout.addWidget(self.empty)
        self.earlier_heading = QLabel()
        self.earlier_heading.setWordWrap(True)
        self.earlier_heading.hide()
        self._layout.addWidget(self.earlier_heading)
        self.setWidget(body)
        self.cards: list[FindingCard] = []  # this run's
        self.earlier: list[FindingCard] = []  # the previous run's
        self._training = False

    def clear(self) -> None:
        """Forget every finding (another project)."""
        for card in self.cards + self.earlier:
            card.deleteLater()
        self.cards, self.earlier = [], []
        self.earlier_heading.hide()
        self.empty.show()
        self.count_changed.emit(0)

    def new_run(self) -> None:
        """A run starts: this run's findings become the previous run's, kept below."""
        for card in self.earlier:
            card.deleteLater()
        self.earlier = self.cards
        self.cards = []
        for card in self.earlier:
            card.settle("From the previous run")
            self._layout.removeWidget(card)
            self._layout.addWidget(card)  # after the heading
        self.earlier_heading.setText(
            f"<span style='color: gray'>The previous run's {len(self.earlier)} finding(s):</span>"
        )
        self.earlier_heading.setVisible(bool(self.earlier))
        self.empty.show()
        self.count_changed.emit(0)

    def set_training(self, training: bool) -> None:
        """While a run trains, fixes wait: the canvas would show a network other than
        the one training."""
        self._training = training
        for card in self.cards:
            card.set_fixable(not training, STOP_FIRST)

    def add(self, finding: dict) -> None:
        self.empty.hide()
        tip = "\n".join(describe_fix(self.model.project, finding.get("fix") or {}))
        card = FindingCard(
            finding, self._apply, self.show_layers.emit, self.find_lr_requested.emit, tip
        )
        card.set_fixable(not self._training, STOP_FIRST)
        self._layout.insertWidget(self._layout.indexOf(self.earlier_heading), card)
        self.cards.append(card)
        self.count_changed.emit(len(self.cards))

    def _apply(self, card: FindingCard) -> None:
        fix, title = card.finding["fix"], card.finding["title"]
        if not self.model.try_push(
            lambda: apply_fix(self.model.project, fix, title),
            lambda sentence: card.settle("Cannot apply", sentence),
        ):
            return
        card.settle("Fix applied", "Ctrl+Z undoes it. Train again to compare the runs.")
        # A fix whose layers this one already changed (a vanishing fix turns sigmoid layers
        # into ReLU ones; their saturation fix would not fit them any more).
        changed = set(card.finding["fix"].get("nodes", {}))
        for other in self.cards:
            nodes = set((other.finding.get("fix") or {}).get("nodes", {}))
            if other is not card and other.fix_button is not None and nodes and nodes <= changed:
                other.settle("Covered", f"Covered by the fix for '{card.finding['title']}'.")
        self.fix_applied.emit(card.finding["title"])
