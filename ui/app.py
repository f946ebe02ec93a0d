"""Starting the window: `studio launch` finds this through the `studio.gui` entry point."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication, QMessageBox

from studio.errors import StudioError
from studio.projectfile import load_project
from studio.training.threads import import_training_modules


def main(argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("Studio")
    app.setOrganizationName("Studio")
    from ui.theme import apply_theme, icon
    from ui.window import MainWindow

    dark = QSettings().value("dark", False, type=bool)
    apply_theme(app, dark)
    from ui.plots import apply_theme as apply_plot_theme

    apply_plot_theme(dark)
    app.setWindowIcon(icon("app", "#3b82f6"))
    # Before the window shows: these imports would otherwise stall it during the first run.
    import_training_modules()
    from ui.gc_guard import collect_in_gui_thread

    collect_in_gui_thread()  # after the imports: they are frozen out of every collection
    window = MainWindow()
    if argv:
        path = Path(argv[0])
        try:
            window.model.replace(load_project(path), path)
            window._remember(path.resolve())
        except StudioError as err:
            QMessageBox.warning(window, "Cannot open project", str(err))
    window.show()
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
