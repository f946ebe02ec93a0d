"""Training from the window: the Qt-free engine runs in a worker QObject on a QThread.

The GUI thread hands its OpenMP threads to the worker first (`yield_cpus_to_workers`), so
training here is as fast as from the command line. Only plain CPU data crosses to the
GUI: the engine's listener (running in the worker thread) appends events to a deque, and a
timer in the GUI thread drains it at most 30 times a second, less often when the GUI's own
work grows costly (`ui.pacing.Pacer`), so the plots never redraw per batch and no widget
is touched from the worker. Pause and stop are threading.Events the engine checks between
batches; closing the window or starting another run stops the worker and waits for its
thread.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer, Signal, Slot

from studio.cpus import threads_for_a_run
from studio.document import Project
from studio.errors import StudioError
from studio.training.setup import trains_on_cpu
from studio.training.threads import training_threads, use_all_cpus, yield_cpus_to_workers
from ui.pacing import Pacer

REFRESH_HZ = 30


class _Worker(QObject):
    finished = Signal(dict)  # the run summary, or {"status": "failed", "error": sentence}
    note = Signal(str, str)  # fewer CPU threads: a sentence for the status bar, and why

    def __init__(
        self,
        project: Project,
        runs_root: Path,
        base: Path,
        queue: deque,
        stop: threading.Event,
        pause: threading.Event,
        force: bool = False,
    ):
        super().__init__()
        self.project, self.runs_root, self.base = project, runs_root, base
        self.queue, self.stop, self.pause = queue, stop, pause
        self.force = force  # train although the memory estimate says it will not fit

    @Slot()
    def run(self) -> None:
        from studio.training.experiment import run_experiment

        # This thread trains with every CPU (the GUI thread gave its OpenMP team back),
        # or fewer while other processes keep some busy.
        use_all_cpus()
        try:
            settings = self.project.training
            chosen = threads_for_a_run(
                settings["deterministic"], training_threads(), trains_on_cpu(settings["device"])
            )
            if chosen.said:
                self.note.emit(chosen.said, chosen.why)
            # One run, or one per fold (k-fold, bootstrap, leave-one-out validation).
            outcome = run_experiment(
                self.project,
                runs_root=self.runs_root,
                base=self.base,
                listeners=[self.queue.append],
                stop=self.stop,
                pause=self.pause,
                emit_hz=REFRESH_HZ,
                force=self.force,
            )
            self.finished.emit(outcome.summary)
        except StudioError as err:
            self.finished.emit({"status": "failed", "error": str(err)})
        except Exception as err:  # a bug must not take the window down; say what happened
            traceback.print_exc()
            self.finished.emit(
                {"status": "failed", "error": f"Training failed: {type(err).__name__}: {err}"}
            )


class TrainingController(QObject):
    """Starts, pauses, resumes and stops training; delivers events to the GUI at ~30 Hz."""

    started = Signal()
    events = Signal(list)  # a batch of plain event dicts, in order
    finished = Signal(dict)
    state_changed = Signal(str)  # idle, running, paused, stopping
    note = Signal(str, str)  # news of the run for the status bar, and more on it

    def __init__(self, parent: QObject | None = None, pacer: Pacer | None = None):
        super().__init__(parent)
        self.pacer = pacer or Pacer()
        self.queue: deque = deque()
        self.stop_event = threading.Event()
        self.pause_event = threading.Event()
        self.thread: QThread | None = None
        self.worker: _Worker | None = None
        self.state = "idle"
        self.timer = QTimer(self)
        self.timer.setInterval(int(1000 * self.pacer.fastest))
        self.timer.timeout.connect(self.drain)

    @property
    def running(self) -> bool:
        return self.thread is not None

    def start(self, project: Project, runs_root: Path, base: Path, force: bool = False) -> None:
        if self.running:
            self.stop(wait=True)
        self.queue.clear()
        self.stop_event.clear()
        self.pause_event.clear()
        self.thread = QThread()
        self.thread.setObjectName("studio-training")
        # The worker trains on its own copy: edits made while it runs do not reach it.
        self.worker = _Worker(
            project.copy(), runs_root, base, self.queue, self.stop_event, self.pause_event, force
        )
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        # Without this a CPU run in the worker is 15-84% slower than from the CLI: the GUI
        # thread's idle OpenMP team makes libgomp sleep between parallel ops
        # (docs/benchmarks.md, "Where training runs").
        yield_cpus_to_workers()
        # Queued to this (GUI-thread) object: the slot runs in the GUI thread.
        self.worker.finished.connect(self._on_finished)
        self.worker.note.connect(self.note)
        self.thread.start()
        self.pacer.reset()
        self.timer.start()
        self._set_state("running")
        self.started.emit()

    def pause(self) -> None:
        if self.running and not self.pause_event.is_set():
            self.pause_event.set()
            self._set_state("paused")

    def resume(self) -> None:
        if self.running and self.pause_event.is_set():
            self.pause_event.clear()
            self._set_state("running")

    def stop(self, wait: bool = False, timeout_s: float = 30.0) -> None:
        if not self.running:
            return
        self.stop_event.set()
        self.pause_event.clear()
        self._set_state("stopping")
        if wait:
            deadline = time.monotonic() + timeout_s
            while self.thread is not None and time.monotonic() < deadline:
                # Let the queued finished signal arrive and clean up.
                QCoreApplication.processEvents()
                if self.thread is not None and self.thread.wait(20):
                    QCoreApplication.processEvents()

    @Slot()
    def drain(self) -> None:
        # What the GUI did since the last tick (these events' plots, their paint) sets
        # when the next tick comes.
        self.timer.setInterval(round(1000 * self.pacer.tick()))
        if not self.queue:
            return
        batch = []
        while self.queue:
            batch.append(self.queue.popleft())
        self.events.emit(batch)

    @Slot(dict)
    def _on_finished(self, summary: dict) -> None:
        self.drain()
        self.timer.stop()
        self.pacer.reset()  # no more ticks: the plots catch up on their own
        if self.thread is not None:
            self.thread.quit()
            self.thread.wait()
            self.thread.deleteLater()
        if self.worker is not None:
            self.worker.deleteLater()
        self.thread = None
        self.worker = None
        self._set_state("idle")
        self.finished.emit(summary)

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)
