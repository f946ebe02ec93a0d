"""Python's cyclic garbage collector runs only in the GUI thread while Qt is up.

Left automatic, the collector runs in whichever thread happens to allocate when a
threshold is crossed: a training or preview thread. If the garbage holds a Qt object (a
closed dialog's widgets in a reference cycle with their Python wrappers), Qt destroys it
from that thread: QObject's destructor takes a Qt lock and then waits for the GIL, while the
GUI thread holds the GIL and waits for the same lock. Seen as a test run that hung forever
(py-spy: `gc_collect_main → QObject::~QObject → Shiboken::GilState::acquire` in the
learning-rate finder's thread, `QObject::~QObject → QBasicMutex::lockInternal` in the
GUI thread). pyqtgraph ships the field's answer, `GarbageCollector`: automatic collection
off, the same generational thresholds checked on a timer in the GUI thread.

Objects alive at start-up (modules, classes: most of the heap) are moved out of the
collector's sight with `gc.freeze()`, so a full collection in the GUI thread stays short.
"""

from __future__ import annotations

import gc

from pyqtgraph.util.garbage_collector import GarbageCollector

INTERVAL = 0.1  # s between threshold checks in the GUI thread: small, quick collections

_collector: GarbageCollector | None = None


def collect_in_gui_thread() -> GarbageCollector:
    """Call once from the GUI thread after QApplication exists (idempotent)."""
    global _collector
    if _collector is None:
        gc.collect()
        gc.freeze()
        _collector = GarbageCollector(interval=INTERVAL)
    return _collector
