"""Past runs of the open project, with their headline numbers; tick two to overlay them."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.data.resampling import Fold
from studio.errors import StudioError
from studio.training.runs import Run, delete_run, list_runs, rename_run


def _open_folder(path: Path) -> None:
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


COLUMNS = ("run", "status", "epochs", "val acc", "val loss", "time", "findings")


def run_name(row: dict) -> str:
    """The name a run was given, else when it started."""
    return row.get("label") or time.strftime("%b %d %H:%M", time.localtime(row["started"]))


def run_label(row: dict) -> str:
    """How the window names a run: its name; a run of an experiment by its fold first
    ("fold 2 of 5 · Nov 29 22:40")."""
    if row.get("experiment") and row.get("fold") is not None:
        fold = Fold(row["method"], int(row["fold"]), int(row["folds"] or 0))
        return f"{fold.label} · {run_name(row)}"
    return run_name(row)


class RunsPanel(QWidget):
    compare_requested = Signal(list)  # [Run, ...]
    use_as_backbone = Signal(object)  # the run's folder (Path): reuse its model, minus its head
    export_requested = Signal(object)  # the run's folder (Path)
    evaluate_requested = Signal(object)  # the Run

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.root: Path | None = None
        self.project_name = ""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        where = QHBoxLayout()
        self.location = QLabel()
        self.location.setTextInteractionFlags(Qt.TextSelectableByMouse)
        open_root = QPushButton("Open folder")
        open_root.clicked.connect(lambda: self.root and _open_folder(self.root))
        where.addWidget(self.location, 1)
        where.addWidget(open_root)
        layout.addLayout(where)
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
        self.location.setText(f"Runs are kept in {root}")
        self.refresh()

    def refresh(self) -> None:
        from studio.training.experiment import group_rows

        runs = list_runs(self.root, self.project_name) if self.root else []
        # Newest first; an experiment (k-fold, bootstrap, leave-one-out) is one row with
        # its runs under it, in fold order.
        self.rows = []
        for item in reversed(group_rows(runs)):
            self.rows.append(item)
            if item["kind"] == "experiment":
                self.rows.extend(item["runs"])
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            if row["kind"] == "experiment":
                self._experiment_row(r, row)
                continue
            cells = (
                ("    " if row.get("experiment") else "") + run_label(row),
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
                if c == 1 and row["status"] == "interrupted":
                    item.setToolTip(
                        "Its training process died before the run ended"
                        + (
                            f"; `studio train --resume {row['id']}` continues it."
                            if row.get("resumable")
                            else "."
                        )
                    )
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()

    def _experiment_row(self, r: int, row: dict) -> None:
        """An experiment's row: what it was, how many runs finished, and each validation
        metric as mean ± std (the 95 % confidence interval in the tooltip)."""
        from studio.training.experiment import experiment_lines

        s = row["summary"]
        stats = s["metrics"]

        def spread(metric: str) -> str:
            if metric not in stats:
                return ""
            m = stats[metric]
            percent = metric.endswith("accuracy")
            text = f"{m['mean']:.2%}" if percent else f"{m['mean']:.4f}"
            if m["std"] is not None:
                text += f" ± {m['std']:.2%}" if percent else f" ± {m['std']:.3f}"
            return text

        cells = (
            f"{s['title'][:1].upper()}{s['title'][1:]}",
            f"{s['runs_done']} of {s['runs_planned']} runs",
            "",
            spread("val_accuracy"),
            spread("val_loss"),
            f"{s['seconds']:.0f} s",
            str(len(s["findings"])),
        )
        tip = "\n".join(experiment_lines(s)[1:]) or "No run has finished yet."
        bold = self.font()
        bold.setBold(True)
        for c, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setFont(bold)
            item.setToolTip(tip)
            self.table.setItem(r, c, item)

    def ticked(self) -> list[Run]:
        out = []
        for r, row in enumerate(self.rows):
            if row["kind"] == "run" and self.table.item(r, 0).checkState() == Qt.Checked:
                out.append(Run(self.root, Path(row["path"]), row["id"]))
        return out

    def _menu(self, pos) -> None:
        row = self.table.rowAt(pos.y())
        if 0 <= row < len(self.rows):
            self.context_menu(row).exec(self.table.viewport().mapToGlobal(pos))

    def context_menu(self, row: int) -> QMenu:
        """What right-clicking a run offers (an experiment's row: deleting all its runs)."""
        menu = QMenu(self)
        if self.rows[row]["kind"] == "experiment":
            menu.addAction("Delete experiment…", lambda: self.delete(row))
            return menu
        path = Path(self.rows[row]["path"])
        menu.addAction(
            "Evaluate",
            lambda: self.evaluate_requested.emit(Run(self.root, path, self.rows[row]["id"])),
        )
        menu.addAction("Open folder", lambda: _open_folder(path))
        menu.addAction("Rename…", lambda: self.rename(row))
        menu.addAction("Export…", lambda: self.export_requested.emit(path))
        action = menu.addAction("Use as backbone", lambda: self.use_as_backbone.emit(path))
        action.setStatusTip(
            "Put this run's trained network, minus its head, between the Input and the Output"
        )
        menu.addSeparator()
        menu.addAction("Delete…", lambda: self.delete(row))
        return menu

    def rename(self, row: int, name: str | None = None) -> None:
        """Name a run (asks when `name` is None)."""
        if name is None:
            name, ok = QInputDialog.getText(
                self, "Rename run", "Name:", text=run_name(self.rows[row])
            )
            if not ok:
                return
        rename_run(self.root, self.rows[row]["id"], name)
        self.refresh()

    def delete(self, row: int, confirm: bool = True) -> None:
        """Delete a run and its files (an experiment: all its runs), after asking."""
        item = self.rows[row]
        runs = item["runs"] if item["kind"] == "experiment" else [item]
        if confirm:
            what = (
                f"the experiment '{item['title']}' and its {len(runs)} runs"
                if item["kind"] == "experiment"
                else f"the run '{run_label(item)}'"
            )
            answer = QMessageBox.question(
                self,
                "Delete run",
                f"Delete {what} and their checkpoints? This cannot be undone."
                if item["kind"] == "experiment"
                else f"Delete {what} and its checkpoints? This cannot be undone.",
                QMessageBox.Yes | QMessageBox.Cancel,
                QMessageBox.Cancel,
            )
            if answer != QMessageBox.Yes:
                return
        try:
            for run in runs:
                delete_run(self.root, run["id"])
        except StudioError as err:
            QMessageBox.warning(self, "Cannot delete the run", str(err))
        self.refresh()

    def _compare(self) -> None:
        runs = self.ticked()
        if len(runs) < 1:
            self.hint.setText("Tick one or two runs first.")
            return
        self.compare_requested.emit(runs[:2])
