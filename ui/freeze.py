"""The freeze point of one backbone node: a slider over its stages, the stages with their
parameter counts and state, and what would train.

Dragging the slider previews the split (stage list and counts follow live); releasing it
makes one SetNodeFields edit, so one drag is one undo step. Arrow keys and clicks on the
track edit at once. The widget never keeps model state: it redraws from the document and
the analysis on `refresh()`.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSlider,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.commands import SetNodeFields
from studio.registry import catalog
from studio.report import human_count
from studio.transfer.stages import StageRow, freeze_point, split_counts, stage_rows
from ui.document import DocumentModel

# The node fields this panel edits; the inspector leaves them out of the generic form.
FIELDS = ("freeze_point", "update_frozen_bn")


class FreezePanel(QWidget):
    def __init__(self, model: DocumentModel, node_id: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.node_id = node_id
        self.rows: list[StageRow] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)

        self.slider = QSlider(Qt.Horizontal)
        self.slider.setTickPosition(QSlider.TicksBelow)
        self.slider.setTickInterval(1)
        self.slider.setSingleStep(1)
        self.slider.setPageStep(1)
        self.slider.setToolTip(
            "Stages left of the handle are frozen (their weights stay as loaded); the ones "
            "right of it train with the head."
        )
        ends = QHBoxLayout()
        self.left_end = QLabel("nothing frozen")
        self.right_end = QLabel("whole base frozen")
        for label in (self.left_end, self.right_end):
            label.setStyleSheet("color: palette(placeholder-text); font-size: 8pt;")
        ends.addWidget(self.left_end)
        ends.addStretch(1)
        ends.addWidget(self.right_end)
        self.summary = QLabel()
        self.summary.setWordWrap(True)

        self.table = QTreeWidget()
        self.table.setColumnCount(3)
        self.table.setHeaderLabels(["Stage", "Parameters", "State"])
        self.table.setRootIsDecorated(False)
        self.table.setSelectionMode(QTreeWidget.NoSelection)
        self.table.setFocusPolicy(Qt.NoFocus)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        header = self.table.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeToContents)

        self.update_bn = QCheckBox("Update frozen BatchNorm statistics")
        self.update_bn.setToolTip(
            "Off (usual for small data): BatchNorm layers in frozen stages keep their "
            "pretrained statistics. On: they keep adapting to this data while training."
        )
        self.counts = QLabel()
        self.counts.setWordWrap(True)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #dc2626;")

        layout.addWidget(self.slider)
        layout.addLayout(ends)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)
        layout.addWidget(self.update_bn)
        layout.addWidget(self.counts)
        layout.addWidget(self.message)

        self.slider.valueChanged.connect(self._moved)
        self.slider.sliderReleased.connect(lambda: self._commit(self.slider.value()))
        self.update_bn.clicked.connect(self._set_update_bn)
        self.refresh()

    # -- reading the document ------------------------------------------------------------
    def _node(self):
        return self.model.project.network.nodes.get(self.node_id)

    def refresh(self) -> None:
        """Show the node as the document and the latest analysis have it."""
        node = self._node()
        if node is None:
            return
        info = self.model.analysis.layers.get(self.node_id)
        self.rows = stage_rows(node, catalog().get(node.type), info)
        n = len(self.rows)
        self.slider.setEnabled(n > 0 and node.trainable)
        if not self.slider.isSliderDown():  # never yank the handle out of a person's hand
            blocker = QSignalBlocker(self.slider)
            self.slider.setRange(0, n)
            self.slider.setValue(freeze_point(node, n))
            del blocker
        blocker = QSignalBlocker(self.update_bn)
        self.update_bn.setChecked(bool(node.params.get("update_frozen_bn", False)))
        del blocker
        self._show(self.slider.value())

    def _show(self, point: int) -> None:
        """The stage list, summary and counts as they would be with this freeze point."""
        node = self._node()
        info = self.model.analysis.layers.get(self.node_id)
        rows = [
            StageRow(r.name, r.params, not node.trainable or i < point)
            for i, r in enumerate(self.rows)
        ]
        n = len(rows)
        if not n:
            self.summary.setText("The stages are not known yet: fix the node's problem first.")
        elif not node.trainable:
            self.summary.setText(
                "The whole node is frozen ('Trainable' is off below); tick it to use the "
                "freeze point."
            )
        else:
            frozen = [r.name for r in rows if r.frozen]
            training = [r.name for r in rows if not r.frozen]
            if not frozen:
                text = "Nothing frozen: every stage trains with the head (train the whole model)."
            elif not training:
                text = f"All {n} stages frozen: only the head trains (feature extraction)."
            else:
                text = (
                    f"{point} of {n} stages frozen ({_span(frozen)}); {_span(training)} "
                    "train with the head."
                )
            self.summary.setText(text)
        self._fill_table(rows)
        total = info.params if info is not None else 0
        trainable, held = split_counts(rows, total, point, node.trainable)
        analysis = self.model.analysis
        now = info.frozen if info is not None else 0
        model_frozen = analysis.frozen_params - now + held
        model_trainable = analysis.trainable_params + now - held
        self.counts.setText(
            f"<b>Trainable {human_count(trainable)} / frozen {human_count(held)}</b> parameters "
            f"in this backbone<br>Whole model: {human_count(model_trainable)} trainable / "
            f"{human_count(model_frozen)} frozen"
        )

    def _fill_table(self, rows: list[StageRow]) -> None:
        self.table.clear()
        dim = self.palette().color(QPalette.PlaceholderText)
        for row in rows:
            count = "?" if row.params is None else f"{row.params:,}"
            item = QTreeWidgetItem([row.name, count, "frozen" if row.frozen else "trains"])
            item.setTextAlignment(1, Qt.AlignRight | Qt.AlignVCenter)
            if row.frozen:
                for column in range(3):
                    item.setForeground(column, dim)
            self.table.addTopLevelItem(item)
        # Tall enough for every stage: the list never scrolls inside the inspector.
        height = self.table.header().sizeHint().height() + 6
        if rows:
            height += self.table.sizeHintForRow(0) * len(rows)
        self.table.setFixedHeight(height)

    # -- editing -------------------------------------------------------------------------
    def _moved(self, value: int) -> None:
        self._show(value)
        if not self.slider.isSliderDown():  # keys, wheel, a click on the track
            self._commit(value)

    def _commit(self, value: int) -> None:
        node = self._node()
        if node is None or value == node.params.get("freeze_point"):
            return
        n = len(self.rows)
        self._push(
            {"params": {"freeze_point": int(value)}},
            f"Freeze {value} of {n} stages of {self.node_id}",
        )

    def _set_update_bn(self, checked: bool) -> None:
        verb = "Update" if checked else "Fix"
        self._push(
            {"params": {"update_frozen_bn": bool(checked)}},
            f"{verb} frozen BatchNorm statistics of {self.node_id}",
        )

    def _push(self, fields: dict, text: str) -> None:
        changes = {self.node_id: fields}
        if self.model.try_push(
            lambda: SetNodeFields(self.model.project, changes, text), self._refused
        ):
            self.message.clear()

    def _refused(self, sentence: str) -> None:
        self.message.setText(sentence)
        self.refresh()  # the slider shows the freeze point the document kept


def _span(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]} to {names[-1]}"
