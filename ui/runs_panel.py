"""Past runs of the open project, with their headline numbers; tick two to overlay them."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.training.runs import Run, list_runs

COLUMNS = ("run", "status", "epochs", "val acc", "val loss", "time", "findings")


class RunsPanel(QWidget):
    compare_requested = Signal(list)  # [Run, ...]
    use_as_backbone = Signal(object)  # the run's folder (Path): reuse its model, minus its head

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.root: Path | None = None
        self.project_name = ""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setContextMenuPolicy(Qt.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._menu)
        self.hint = QLabel(
            "Tick two runs and press Compare to overlay their loss and gradient norms."
        )
        self.hint.setWordWrap(True)
        buttons = QHBoxLayout()
        self.compare = QPushButton("Compare ticked runs")
        self.compare.clicked.connect(self._compare)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        buttons.addWidget(self.compare)
        buttons.addWidget(refresh)
        buttons.addStretch(1)
        layout.addWidget(self.table)
        layout.addWidget(self.hint)
        layout.addLayout(buttons)
        self.rows: list[dict] = []

    def show_project(self, root: Path, project_name: str) -> None:
        self.root, self.project_name = root, project_name
        self.refresh()

    def refresh(self) -> None:
        self.rows = list(reversed(list_runs(self.root, self.project_name))) if self.root else []
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            started = time.strftime("%b %d %H:%M", time.localtime(row["started"]))
            cells = (
                started,
                row["status"],
                str(row["epochs"] or 0),
                f"{row['best_val_accuracy']:.2%}" if row["best_val_accuracy"] is not None else "",
                f"{row['best_val_loss']:.4f}" if row["best_val_loss"] is not None else "",
                f"{row['seconds']:.0f} s" if row["seconds"] is not None else "",
                str(row["findings"] or 0),
            )
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 0:
                    item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
                    item.setCheckState(Qt.Unchecked)
                    item.setToolTip(row["path"])
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()

    def ticked(self) -> list[Run]:
        out = []
        for r, row in enumerate(self.rows):
            if self.table.item(r, 0).checkState() == Qt.Checked:
                out.append(Run(self.root, Path(row["path"]), row["id"]))
        return out

    def _menu(self, pos) -> None:
        row = self.table.rowAt(pos.y())
        if 0 <= row < len(self.rows):
            self.context_menu(row).exec(self.table.viewport().mapToGlobal(pos))

    def context_menu(self, row: int) -> QMenu:
        """What right-clicking a run offers."""
        menu = QMenu(self)
        action = menu.addAction(
            "Use as backbone",
            lambda: self.use_as_backbone.emit(Path(self.rows[row]["path"])),
        )
        action.setStatusTip(
            "Put this run's trained network, minus its head, between the Input and the Output"
        )
        return menu

    def _compare(self) -> None:
        runs = self.ticked()
        if len(runs) < 1:
            self.hint.setText("Tick one or two runs first.")
            return
        self.compare_requested.emit(runs[:2])
