"""Garbage is collected in the GUI thread only (ui.gc_guard): a collection in a worker
thread that frees a Qt object deadlocks with the GUI thread (seen as a hung test run)."""

from __future__ import annotations

import gc
import threading

from ui.gc_guard import collect_in_gui_thread


def test_a_worker_thread_never_collects_and_the_gui_thread_does(qtbot):
    collect_in_gui_thread()
    where: list[str] = []

    def seen(phase, info):
        if phase == "start":
            where.append(threading.current_thread().name)

    gc.callbacks.append(seen)
    try:

        def make_cycles():
            for _ in range(50_000):  # far past every generation's threshold
                a: list = []
                a.append(a)

        worker = threading.Thread(target=make_cycles, name="worker")
        worker.start()
        worker.join()
        assert "worker" not in where
        qtbot.waitUntil(lambda: threading.main_thread().name in where, timeout=5000)
    finally:
        gc.callbacks.remove(seen)
