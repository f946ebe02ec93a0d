"""One preview computed off the GUI thread (the data preview, the augmentation preview).

The work runs in a plain thread that first gives its OpenMP helpers up (a preview must not
start a second team of threads beside a training thread's), turns a StudioError into
{"error": sentence} (any other exception into a sentence that names it), and hands its
plain result to the GUI thread through a queued signal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from studio.errors import StudioError


class BackgroundJob(QObject):
    done = Signal(object)  # the work's dict, or {"error": sentence}

    def __init__(self, name: str, parent: QObject | None = None, what: str = "The preview"):
        super().__init__(parent)
        self.name = name
        self.what = what  # how the error sentence names the work
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, work: Callable[[], dict]) -> None:
        def run():
            from studio.training.threads import yield_cpus_to_workers

            yield_cpus_to_workers()
            try:
                result = work()
            except StudioError as err:
                result = {"error": str(err)}
            except Exception as err:  # a bug must not leave the window waiting forever
                result = {"error": f"{self.what} failed: {type(err).__name__}: {err}"}
            self.done.emit(result)

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()

    def wait(self, timeout: float = 30.0) -> None:
        """Block until the work is done (tests, closing)."""
        if self._thread is not None:
            self._thread.join(timeout)
