"""How long the GUI event loop stalls while a CNN trains in the window.

Opens the main window offscreen with a project (default: the digits CNN, run long), starts
training exactly as the Train button does, and measures the gaps between ticks of a 5 ms
timer in the GUI thread for a while. A gap is how long the event loop could not respond:
the target is under 50 ms at all times. Prints the distribution and the training speed.

    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296 \\
    .venv/bin/python benchmarks/gui_latency.py [--seconds 20] [--project PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--project", default=str(ROOT / "resources/examples/digits_cnn.json"))
    args = parser.parse_args()
    os.environ["STUDIO_RUNS"] = tempfile.mkdtemp(prefix="studio-latency-")

    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    app.setApplicationName("StudioBenchmark")
    from studio.projectfile import load_project
    from ui.window import MainWindow

    path = Path(args.project)
    from studio.training.threads import import_training_modules

    import_training_modules()  # as ui.app.main does before it shows the window
    window = MainWindow(load_project(path, ["training.epochs=1000"]), path)
    window.resize(1600, 1000)
    window.show()

    clock = QElapsedTimer()
    gaps: list[float] = []
    last = [0.0]
    steps = [0, 0.0]

    def tick():
        now = clock.nsecsElapsed() / 1e6
        if last[0]:
            gaps.append(now - last[0])
        last[0] = now

    def on_events(events):
        for e in events:
            if e["type"] == "steps":
                steps[0] = int(e["step"][-1]) + 1
                steps[1] = time.monotonic()

    window.training.events.connect(on_events)
    ticker = QTimer()
    ticker.setInterval(5)
    ticker.timeout.connect(tick)

    def begin():
        # The clock starts before the Train press, so the press itself counts as a gap.
        clock.start()
        ticker.start()
        tick()
        window.train()
        QTimer.singleShot(int(args.seconds * 1000), finish)

    started = [0.0]

    def finish():
        ticker.stop()
        window.training.stop(wait=True)
        window.model.undo_stack.setClean()
        window.close()
        app.quit()

    QTimer.singleShot(300, begin)
    started[0] = time.monotonic()
    app.exec()

    import numpy as np

    g = np.array(gaps)
    print(
        f"project {path.name}, {args.seconds:.0f} s of training, {len(g)} timer ticks (5 ms timer)"
    )
    print(
        f"event-loop gap: median {np.median(g):.1f} ms, p99 {np.percentile(g, 99):.1f} ms, "
        f"max {g.max():.1f} ms; gaps over 50 ms: {(g > 50).sum()}"
    )
    print(
        f"training: {steps[0]} steps ({steps[0] / args.seconds:.0f} steps/s while the window drew)"
    )
    return 0 if g.max() < 50 else 1


if __name__ == "__main__":
    raise SystemExit(main())
