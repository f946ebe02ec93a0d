"""The studio's look: Fusion style with a light or dark palette, and line icons that take
the palette's text colour (so one SVG set serves both themes)."""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtCore import QByteArray, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

from studio.bundled import ICONS

ACCENT = "#3b82f6"

_LIGHT = {
    QPalette.Window: "#f3f4f6",
    QPalette.WindowText: "#1f2937",
    QPalette.Base: "#ffffff",
    QPalette.AlternateBase: "#f9fafb",
    QPalette.Text: "#1f2937",
    QPalette.Button: "#e5e7eb",
    QPalette.ButtonText: "#1f2937",
    QPalette.ToolTipBase: "#111827",
    QPalette.ToolTipText: "#f9fafb",
    QPalette.Highlight: ACCENT,
    QPalette.HighlightedText: "#ffffff",
    QPalette.PlaceholderText: "#9ca3af",
    QPalette.Mid: "#d1d5db",
    QPalette.Midlight: "#e5e7eb",
    QPalette.Dark: "#9ca3af",
}
_DARK = {
    QPalette.Window: "#1e2127",
    QPalette.WindowText: "#e5e7eb",
    QPalette.Base: "#16181d",
    QPalette.AlternateBase: "#1b1e24",
    QPalette.Text: "#e5e7eb",
    QPalette.Button: "#2a2e36",
    QPalette.ButtonText: "#e5e7eb",
    QPalette.ToolTipBase: "#f3f4f6",
    QPalette.ToolTipText: "#111827",
    QPalette.Highlight: ACCENT,
    QPalette.HighlightedText: "#ffffff",
    QPalette.PlaceholderText: "#6b7280",
    QPalette.Mid: "#3a3f4b",
    QPalette.Midlight: "#2f333c",
    QPalette.Dark: "#111317",
}


def apply_theme(app: QApplication, dark: bool) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    for role, colour in (_DARK if dark else _LIGHT).items():
        palette.setColor(role, QColor(colour))
    disabled = QColor("#6b7280" if dark else "#9ca3af")
    for role in (QPalette.Text, QPalette.ButtonText, QPalette.WindowText):
        palette.setColor(QPalette.Disabled, role, disabled)
    app.setPalette(palette)
    app.setProperty("studio_dark", dark)
    icon.cache_clear()
    app.setStyleSheet(
        "QToolBar { border: none; spacing: 2px; padding: 3px; }"
        "QDockWidget::title { padding: 5px 8px; font-weight: 600; }"
        "QGroupBox { font-weight: 600; border: 1px solid palette(mid); border-radius: 6px;"
        " margin-top: 10px; padding-top: 6px; }"
        "QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 3px; }"
        "QStatusBar QLabel { padding: 0 6px; }"
    )


def is_dark() -> bool:
    app = QApplication.instance()
    return bool(app and app.property("studio_dark"))


@lru_cache(maxsize=128)
def icon(name: str, colour: str | None = None) -> QIcon:
    """A resources/icons SVG drawn in the given colour (default: the palette's text colour)."""
    path = ICONS / f"{name}.svg"
    if not path.is_file():
        return QIcon()
    if colour is None:
        app = QApplication.instance()
        colour = app.palette().color(QPalette.WindowText).name() if app else "#1f2937"
    svg = path.read_text(encoding="utf-8").replace("#000", colour)
    renderer = QSvgRenderer(QByteArray(svg.encode()))
    result = QIcon()
    for size in (16, 24, 32, 48):
        pixmap = QPixmap(QSize(size, size))
        pixmap.fill(Qt.transparent)
        painter = QPainter(pixmap)
        renderer.render(painter)
        painter.end()
        result.addPixmap(pixmap)
    return result
