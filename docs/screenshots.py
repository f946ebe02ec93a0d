"""Write the README's screenshots of the window at two screen sizes.

Opens the deep sigmoid example (the vanishing-gradient demo) in the main window at
1366×768 and at 1920×1080, trains it until the first findings and health marks are in,
and saves docs/window-1366x768.png and docs/window-1920x1080.png. Run it under a display
(xvfb-run -a -s "-screen 0 1920x1080x24") or offscreen:

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots.py [--seconds 12]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SIZES = ((1366, 768), (1920, 1080))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="training before the shot")
    parser.add_argument("--project", default=str(ROOT / "resources/examples/deep_sigmoid_mlp.json"))
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    os.environ["STUDIO_RUNS"] = tempfile.mkdtemp(prefix="studio-shots-")

    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    app.setApplicationName("StudioScreenshots")
    QSettings.setDefaultFormat(QSettings.IniFormat)
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, tempfile.mkdtemp())
    from studio.projectfile import load_project
    from studio.training.threads import import_training_modules
    from ui.gc_guard import collect_in_gui_thread
    from ui.window import MainWindow

    import_training_modules()
    collect_in_gui_thread()
    path = Path(args.project)
    written = []
    for width, height in SIZES:
        QSettings().clear()  # each size starts as a first start would, not in the last layout
        window = MainWindow(load_project(path), path)
        window.resize(width, height)
        window.show()
        done = []

        def shoot(window=window, width=width, height=height, done=done):
            window.training.stop(wait=True)
            window.plots.refresh(force=True)
            app.processEvents()
            out = Path(args.out) / f"window-{width}x{height}.png"
            window.grab().save(str(out))
            written.append(out)
            window.model.undo_stack.setClean()
            window.close()
            done.append(True)
            app.quit()

        QTimer.singleShot(500, window.train)
        QTimer.singleShot(int(500 + args.seconds * 1000), shoot)
        app.exec()
    for out in written:
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
