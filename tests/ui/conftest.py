"""Qt test setup: offscreen, isolated settings and runs folder, and a check that no test
leaves a thread running (napari's dangling-thread check)."""

from __future__ import annotations

import gc
import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def garbage_in_gui_thread(qapp):
    """As the app does (ui.gc_guard): a collection in a worker thread that frees a Qt
    object deadlocks with the GUI thread."""
    from ui.gc_guard import collect_in_gui_thread

    collect_in_gui_thread()
    yield
    gc.enable()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch, qapp):
    monkeypatch.setenv("STUDIO_RUNS", str(tmp_path / "runs"))
    qapp.setOrganizationName("StudioTests")
    qapp.setApplicationName("StudioTests")
    QSettings.setDefaultFormat(QSettings.IniFormat)
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(tmp_path / "settings"))
    before = {t.ident for t in threading.enumerate()}
    yield
    # tqdm's monitor is a library-owned daemon that the ONNX exporter may start; it is not ours.
    leaked = [
        t
        for t in threading.enumerate()
        if t.ident not in before and t.is_alive() and t.name != "tqdm_monitor"
    ]
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"
    gc.collect()  # this test's closed widgets go in this (the GUI) thread


@pytest.fixture(scope="session")
def mlp_events() -> list[dict]:
    """A real run: digits MLP, one epoch (45 steps, 3 layers, ReLU, with validation)."""
    from support import ROOT

    from studio.projectfile import load_project
    from studio.training.engine import Trainer

    events: list[dict] = []
    # budget 0: probes run exactly at their intervals, so the steps do not depend on timing.
    project = load_project(
        ROOT / "resources" / "examples" / "digits_mlp.json",
        ["training.monitors.budget=0", "training.epochs=1"],
    )
    Trainer(project, listeners=[events.append]).fit()
    return events
