"""The core's notices (an index rebuilt from the run folders, an older checkpoint used) in
the window's status bar: a logging handler that hands each sentence to the GUI thread."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal

from studio.errors import NOTICES


class NoticeRelay(QObject):
    said = Signal(str)  # queued to the GUI thread when a worker thread logs

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        relay = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                relay.said.emit(record.getMessage())

        self._handler = _Handler(logging.WARNING)
        logging.getLogger(NOTICES).addHandler(self._handler)
        self.destroyed.connect(lambda *_: logging.getLogger(NOTICES).removeHandler(self._handler))

    def close(self) -> None:
        logging.getLogger(NOTICES).removeHandler(self._handler)
