"""Transfer → Fine-tuning Strategy…: how much of the pretrained backbone trains.

Two halves: the recommender (how much data, how close to ImageNet's photos) shows the
cell of the study notes' decision table it picks and why; the presets below it are the
three strategies, preselected from the recommendation but free to change. OK applies the
chosen one to the backbone nodes (and the two-phase setting) as one undo step.

The table and every sentence come from `studio.transfer`; this dialog only asks and shows.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLayout,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from studio.commands import Command
from studio.errors import StudioError
from studio.transfer import strategies as transfer
from studio.transfer.stages import freeze_point
from ui.document import DocumentModel

SIZES = (("little", "Little data"), ("much", "Much data"))
SIMILARITIES = (("low", "Low similarity"), ("high", "High similarity"))
SIMILARITY_HELP = (
    "High: everyday photos like ImageNet's (animals, objects, scenes). Low: medical or "
    "satellite images, spectrograms, drawings, handwriting."
)


class StrategyDialog(QDialog):
    def __init__(
        self, model: DocumentModel, samples: int | None = None, parent: QWidget | None = None
    ):
        super().__init__(parent)
        self.setWindowTitle("Fine-tuning strategy")
        self.model = model
        self.samples = samples
        self.applied_text = ""
        self.recommendation = None
        problem = ""
        try:
            self.stages = transfer.backbone_nodes(model.project)  # node id → stage names
        except StudioError as err:  # a RunBackbone whose run folder is gone
            self.stages, problem = {}, str(err)
        self.backbones = list(self.stages)

        layout = QVBoxLayout(self)
        # The dialog takes its layout's size, so wrapped sentences are never cut off and it
        # grows or shrinks with the explanation shown.
        layout.setSizeConstraint(QLayout.SetFixedSize)
        intro = QLabel(self._intro())
        intro.setWordWrap(True)
        layout.addWidget(intro)
        layout.addWidget(self._recommender())
        layout.addWidget(self._presets())
        self.message = QLabel(problem)
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #dc2626;")
        layout.addWidget(self.message)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Apply")
        self.buttons.accepted.connect(self.apply)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(bool(self.backbones))
        self._select_current()
        if samples is not None:
            self._pick_size_from_samples()
        self._update()

    # -- building ------------------------------------------------------------------------
    def _intro(self) -> str:
        if not self.backbones:
            return (
                "This project has no pretrained backbone. Drop one from the Backbones group "
                "of the palette (or use a past run as a backbone from the Runs panel) first."
            )
        nodes = self.model.project.network.nodes
        parts = [
            f"{nid} ({nodes[nid].type}, {freeze_point(nodes[nid], len(names))} of "
            f"{len(names)} stages frozen now)"
            for nid, names in self.stages.items()
        ]
        return "Applies to " + ", ".join(parts) + "."

    def _recommender(self) -> QGroupBox:
        box = QGroupBox("Recommend from your data")
        grid = QGridLayout(box)
        self.size_group = QButtonGroup(self)
        self.similarity_group = QButtonGroup(self)
        self.size_buttons: dict[str, QRadioButton] = {}
        self.similarity_buttons: dict[str, QRadioButton] = {}
        row = QHBoxLayout()
        row.addWidget(QLabel("Data:"))
        for key, text in SIZES:
            button = QRadioButton(text)
            self.size_group.addButton(button)
            self.size_buttons[key] = button
            row.addWidget(button)
        samples = QLabel(
            f"(this project: {self.samples:,} training samples)"
            if self.samples is not None
            else "(sample count not known yet)"
        )
        samples.setStyleSheet("color: palette(placeholder-text);")
        row.addWidget(samples)
        row.addStretch(1)
        grid.addLayout(row, 0, 0, 1, 3)
        row = QHBoxLayout()
        row.addWidget(QLabel("Similarity to ImageNet:"))
        for key, text in SIMILARITIES:
            button = QRadioButton(text.split()[0])
            button.setToolTip(SIMILARITY_HELP)
            self.similarity_group.addButton(button)
            self.similarity_buttons[key] = button
            row.addWidget(button)
        row.addStretch(1)
        grid.addLayout(row, 1, 0, 1, 3)
        hint = QLabel(SIMILARITY_HELP)
        hint.setWordWrap(True)
        hint.setStyleSheet("color: palette(placeholder-text);")
        grid.addWidget(hint, 2, 0, 1, 3)

        # The decision table, each cell filled by asking the recommender itself.
        self.cells: dict[tuple[str, str], QLabel] = {}
        for c, (_, text) in enumerate(SIMILARITIES, start=1):
            head = QLabel(f"<b>{text}</b>")
            head.setAlignment(Qt.AlignCenter)
            grid.addWidget(head, 3, c)
        for r, (size, text) in enumerate(SIZES, start=4):
            grid.addWidget(QLabel(f"<b>{text}</b>"), r, 0)
            for c, (similarity, _) in enumerate(SIMILARITIES, start=1):
                strategy = transfer.recommend(size, similarity).strategy
                cell = QLabel(transfer.STRATEGIES[strategy].label)
                cell.setWordWrap(True)
                cell.setAlignment(Qt.AlignCenter)
                cell.setFrameShape(QFrame.StyledPanel)
                cell.setMargin(6)
                cell.setProperty("strategy", strategy)
                grid.addWidget(cell, r, c)
                self.cells[(size, similarity)] = cell
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(2, 1)
        self.explanation = QLabel()
        self.explanation.setWordWrap(True)
        self.explanation.setMinimumWidth(600)
        grid.addWidget(self.explanation, 6, 0, 1, 3)
        self.size_group.buttonClicked.connect(lambda _: self._update(recommend=True))
        self.similarity_group.buttonClicked.connect(lambda _: self._update(recommend=True))
        return box

    def _presets(self) -> QGroupBox:
        box = QGroupBox("Strategy")
        layout = QVBoxLayout(box)
        self.strategy_group = QButtonGroup(self)
        self.strategy_buttons: dict[str, QRadioButton] = {}
        self.strategy_notes: dict[str, QLabel] = {}
        for key in transfer.STRATEGIES:
            button = QRadioButton(transfer.STRATEGIES[key].label)
            font = button.font()
            font.setBold(True)
            button.setFont(font)
            note = QLabel()
            note.setWordWrap(True)
            note.setContentsMargins(22, 0, 0, 4)
            self.strategy_group.addButton(button)
            self.strategy_buttons[key] = button
            self.strategy_notes[key] = note
            layout.addWidget(button)
            layout.addWidget(note)
        self.strategy_group.buttonClicked.connect(lambda _: self._update())
        self.two_phase = QCheckBox("Train the new head first, then fine-tune (two phases)")
        self.two_phase.setToolTip(
            "Phase 1 trains only the head with the backbone frozen; phase 2 unfreezes down to "
            "the freeze point at a lower learning rate (Training → fine tuning)."
        )
        self.two_phase.setChecked(self._settings().get("two_phase", False))
        self.two_phase.setVisible("fine_tuning" in self.model.project.training)
        layout.addWidget(self.two_phase)
        return box

    # -- state ---------------------------------------------------------------------------
    def _settings(self) -> dict:
        return self.model.project.training.get("fine_tuning", {})

    def _select_current(self) -> None:
        """Preselect the strategy the backbones follow now (if they agree on one)."""
        nodes = self.model.project.network.nodes
        current = set()
        for nid, names in self.stages.items():
            n = len(names)
            point = freeze_point(nodes[nid], n)
            current |= {k for k in transfer.STRATEGIES if transfer.freeze_point_for(k, n) == point}
        for key in transfer.STRATEGIES:
            if key in current:
                self.strategy_buttons[key].setChecked(True)
                break

    def _pick_size_from_samples(self) -> None:
        self.size_buttons[transfer.data_size_for(self.samples)].setChecked(True)

    def choice(self) -> tuple[str | None, str | None]:
        size = next((k for k, b in self.size_buttons.items() if b.isChecked()), None)
        similarity = next((k for k, b in self.similarity_buttons.items() if b.isChecked()), None)
        return size, similarity

    def strategy(self) -> str | None:
        return next((k for k, b in self.strategy_buttons.items() if b.isChecked()), None)

    def choose(self, data_size: str, similarity: str) -> None:
        """Pick a table cell, as clicking its two answers would."""
        self.size_buttons[data_size].setChecked(True)
        self.similarity_buttons[similarity].setChecked(True)
        self._update(recommend=True)

    def _update(self, recommend: bool = False) -> None:
        size, similarity = self.choice()
        self.recommendation = None
        if size and similarity:
            self.recommendation = transfer.recommend(size, similarity, samples=self.samples)
            self.explanation.setText(self.recommendation.explanation)
            if recommend:
                self.strategy_buttons[self.recommendation.strategy].setChecked(True)
                self.two_phase.setChecked(self.recommendation.two_phase)
        else:
            self.explanation.setText(
                "Answer both questions to see which cell of the table fits your data."
            )
        chosen = (
            (self.recommendation.data_size, self.recommendation.similarity)
            if (self.recommendation)
            else None
        )
        for key, cell in self.cells.items():
            on = key == chosen
            cell.setStyleSheet(
                "background: palette(highlight); color: palette(highlighted-text); "
                "font-weight: 600;"
                if on
                else ""
            )
        for key, note in self.strategy_notes.items():
            where = [
                f"{nid}: {transfer.describe_freeze(key, names)}"
                for nid, names in self.stages.items()
            ]
            note.setText(
                transfer.STRATEGIES[key].explanation
                + (f"  <i>({'; '.join(where)})</i>" if where else "")
            )

    # -- applying ------------------------------------------------------------------------
    def command(self) -> Command | None:
        """The one undoable edit that OK makes (None: nothing to apply)."""
        strategy = self.strategy()
        if strategy is None or not self.backbones:
            return None
        two = self.two_phase.isChecked()
        changed = "fine_tuning" in self.model.project.training and two != self._settings().get(
            "two_phase"
        )
        return transfer.strategy_command(
            self.model.project, strategy, self.backbones, two_phase=two if changed else None
        )

    def apply(self) -> None:
        try:
            command = self.command()
        except StudioError as err:
            self.message.setText(str(err))
            return
        if command is None:
            self.message.setText("Pick a strategy first.")
            return
        self.model.push(command)
        self.applied_text = f"{command.text}. Undo (Ctrl+Z) to go back."
        self.accept()
