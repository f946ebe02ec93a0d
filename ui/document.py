"""The open project as the window sees it: the Qt-free project, its undo stack, the latest
shape analysis and the selection, with Qt signals for the views.

Views never hold model state: the canvas, inspector and status bar read `project` and
`analysis` and edit only through `push(command)`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from studio.analysis import Analysis, analyze
from studio.commands import Command, SetSettings
from studio.document import Project
from studio.errors import ProjectError
from studio.pretrained import project_folder


class _QtCommand(QUndoCommand):
    """Wraps a Qt-free command so that QUndoStack can run it."""

    def __init__(self, command: Command, model: DocumentModel):
        super().__init__(command.text)
        self.command = command
        self.model = model

    def redo(self):
        with self.model.one_analysis():
            self.command.redo()

    def undo(self):
        with self.model.one_analysis():
            self.command.undo()

    def id(self):
        # QUndoStack only tries to merge commands that share an id.
        return 1 if self.command.merge_key is not None else -1

    def mergeWith(self, other):
        return self.command.merge(other.command)


class DocumentModel(QObject):
    analysis_changed = Signal()
    selection_changed = Signal(list)
    project_replaced = Signal()
    settings_changed = Signal(list)
    positions_changed = Signal(list)

    def __init__(self, project: Project, path: Path | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self.project = project
        self.path = path
        self.selection: list[str] = []
        self._batching = False
        self._stale = False
        self.analysis: Analysis = self._analyze()
        self._connect()

    # -- the project ------------------------------------------------------------------
    def replace(self, project: Project, path: Path | None) -> None:
        """Open another project: the undo history starts afresh."""
        self._disconnect()
        self.project = project
        self.path = path
        self.undo_stack.clear()
        self.selection = []
        self._connect()
        self.analysis = self._analyze()
        self.project_replaced.emit()
        self.analysis_changed.emit()
        self.selection_changed.emit([])

    def _connect(self) -> None:
        self.project.network.changed.connect(self._on_network_changed)
        self.project.settings_changed.connect(self._on_settings)
        self.project.view.moved.connect(self._on_moved)

    def _disconnect(self) -> None:
        self.project.network.changed.disconnect(self._on_network_changed)
        self.project.settings_changed.disconnect(self._on_settings)
        self.project.view.moved.disconnect(self._on_moved)

    @contextmanager
    def one_analysis(self):
        """Run shape inference once after a command, not once per node or edge it touches."""
        self._batching = True
        self._stale = False
        try:
            yield
        finally:
            self._batching = False
            if self._stale:
                self._reanalyze()

    def _on_network_changed(self) -> None:
        if self._batching:
            self._stale = True
        else:
            self._reanalyze()

    def _analyze(self) -> Analysis:
        # Relative paths in the project (weight files, earlier runs) are relative to its file.
        with project_folder(self.path.parent if self.path else None):
            return analyze(self.project.network)

    def _reanalyze(self) -> None:
        self.analysis = self._analyze()
        kept = [n for n in self.selection if n in self.project.network.nodes]
        self.analysis_changed.emit()
        if kept != self.selection:
            self.selection = kept
            self.selection_changed.emit(list(kept))

    def _on_settings(self, paths) -> None:
        self.settings_changed.emit(list(paths))

    def _on_moved(self, ids) -> None:
        self.positions_changed.emit(list(ids))

    # -- editing ----------------------------------------------------------------------
    def push(self, command: Command) -> None:
        """Run a command and put it on the undo stack."""
        self.undo_stack.push(_QtCommand(command, self))

    def try_push(self, make: Callable[[], Command], refused: Callable[[str], None]) -> bool:
        """Make a command from a person's edit and push it. A value the document refuses
        (a ProjectError, raised while the command is made, before anything changed) goes
        to `refused` as its sentence instead: every panel says it where the edit was made.
        True when the command was pushed."""
        try:
            command = make()
        except ProjectError as err:
            refused(str(err))
            return False
        self.push(command)
        return True

    def try_set(self, path: str, value, refused: Callable[[str], None]) -> bool:
        """try_push of one setting ("training.optimizer.lr")."""
        return self.try_push(lambda: SetSettings(self.project, {path: value}), refused)

    def select(self, ids: list[str]) -> None:
        ids = [i for i in ids if i in self.project.network.nodes]
        if ids != self.selection:
            self.selection = ids
            self.selection_changed.emit(list(ids))

    @property
    def dirty(self) -> bool:
        return not self.undo_stack.isClean()
