"""Every colour, font and size the canvas draws with, in one place.

Colours are derived from the application palette (`QApplication.palette()`), so the canvas
follows the window's light or dark theme; only the palette-group header colours and the
error red are fixed, chosen to carry white text in both themes. The style is computed once
and cached; the view calls `refresh()` when the palette changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtGui import QColor, QFont, QFontDatabase, QPalette
from PySide6.QtWidgets import QApplication

# -- geometry (scene units; the graph flows top to bottom) -------------------------------
NODE_WIDTH = 184.0
HEADER_HEIGHT = 24.0
LINE_HEIGHT = 15.0
BODY_PAD = 5.0
BAND_HEIGHT = 19.0  # the bottom band with the params count and the output shape
STAGE_ROW_HEIGHT = 14.0  # one stage of an expanded backbone node
CORNER = 6.0
PORT_RADIUS = 4.5
PORT_HIT_RADIUS = 10.0  # generous: ports are small targets
PORT_SNAP = 22.0  # a connection drag snaps to a compatible port this close
GRID_MINOR = 20.0
GRID_MAJOR = 100.0
ZOOM_MIN, ZOOM_MAX = 0.15, 3.0
# Below READABLE_ZOOM a node's full face is too small to read (its body text, 8.3 pt, was
# ~7 px at 0.6): nodes then draw an overview face instead — filled in their group colour,
# type and id in text of a fixed size on screen — as Blender's and Unreal's node editors do
# when zoomed out. OVERVIEW_ZOOM is the least zoom at which that face still has room for a
# line of text (a long id cut in the middle: "br…x3"), and so the least at which Fit to
# View shows a whole network.
READABLE_ZOOM = 0.85
OVERVIEW_ZOOM = 0.28
OVERVIEW_TEXT_PX = 11  # the overview face's text, in screen pixels
OVERVIEW_LINE_PX = 13
# Where a node "appended after" another goes, and how pastes are offset.
APPEND_GAP = 110.0
PASTE_OFFSET = 40.0

# Header colour per palette group: mid-dark, calm tones that carry white text in both themes.
GROUP_COLOURS = {
    "Core": "#4b5d78",
    "Convolution": "#2f6bd0",
    "Pooling": "#0f8595",
    "Normalization": "#7457cf",
    "Activation": "#c0661f",
    "Regularization": "#b8466a",
    "Merge": "#2b8f5f",
    "Recurrent": "#a4479f",
    "Backbones": "#4a50c2",
    "Plugins": "#7a6a58",
}
FROZEN_HEADER = "#80868f"
DEFAULT_HIGHLIGHT = "#f59e0b"


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    """a blended towards b by t (0 = a, 1 = b)."""
    return QColor(
        round(a.red() + (b.red() - a.red()) * t),
        round(a.green() + (b.green() - a.green()) * t),
        round(a.blue() + (b.blue() - a.blue()) * t),
    )


@dataclass
class CanvasStyle:
    dark: bool
    background: QColor
    grid_minor: QColor
    grid_major: QColor
    node_body: QColor
    node_border: QColor
    band: QColor
    shadow: QColor
    text: QColor
    text_dim: QColor
    header_text: QColor
    edge: QColor
    edge_label_bg: QColor
    edge_label_text: QColor
    accent: QColor
    error: QColor
    port_fill: QColor
    port_ring: QColor
    title_font: QFont = field(default_factory=QFont)
    body_font: QFont = field(default_factory=QFont)
    small_font: QFont = field(default_factory=QFont)
    mono_font: QFont = field(default_factory=QFont)
    label_font: QFont = field(default_factory=QFont)
    frozen_row: QColor = field(default_factory=QColor)  # behind a backbone's frozen stages

    def group_colour(self, group: str) -> QColor:
        return QColor(GROUP_COLOURS.get(group, GROUP_COLOURS["Plugins"]))


def _build(palette: QPalette, base_font: QFont) -> CanvasStyle:
    window = palette.color(QPalette.Window)
    base = palette.color(QPalette.Base)
    text = palette.color(QPalette.Text)
    dark = window.lightness() < 128
    if dark:
        # Dark: a deep canvas with lifted nodes (Blender/Unreal).
        background = _mix(base, QColor("#000000"), 0.12)
        body = _mix(window, QColor("#ffffff"), 0.07)
        border = _mix(body, QColor("#ffffff"), 0.10)
        shadow = QColor(0, 0, 0, 110)
        error = QColor("#f87171")
    else:
        # Light: a soft grey canvas with white nodes (Netron).
        background = _mix(window, QColor("#ffffff"), 0.35)
        body = base
        border = _mix(base, text, 0.16)
        shadow = QColor(15, 23, 42, 34)
        error = QColor("#dc2626")
    title = QFont(base_font)
    title.setPointSizeF(9.0)
    title.setBold(True)
    body_font = QFont(base_font)
    body_font.setPointSizeF(8.3)
    small = QFont(base_font)
    small.setPointSizeF(7.6)
    mono = QFontDatabase.systemFont(QFontDatabase.FixedFont)
    mono.setPointSizeF(8.0)
    mono.setBold(True)
    label = QFontDatabase.systemFont(QFontDatabase.FixedFont)
    label.setPointSizeF(7.3)
    return CanvasStyle(
        dark=dark,
        background=background,
        grid_minor=_mix(background, text, 0.045),
        grid_major=_mix(background, text, 0.09),
        node_body=body,
        node_border=border,
        band=_mix(body, text, 0.06),
        shadow=shadow,
        text=text,
        text_dim=_mix(text, body, 0.42),
        header_text=QColor("#ffffff"),
        edge=_mix(background, text, 0.42),
        edge_label_bg=_mix(background, text, 0.02),
        edge_label_text=_mix(text, background, 0.25),
        accent=palette.color(QPalette.Highlight),
        error=error,
        port_fill=_mix(body, text, 0.55),
        port_ring=body,
        title_font=title,
        body_font=body_font,
        small_font=small,
        mono_font=mono,
        label_font=label,
        frozen_row=_mix(body, text, 0.10 if dark else 0.08),
    )


_current: CanvasStyle | None = None


def current() -> CanvasStyle:
    """The style for the application's palette now (cached until `refresh`)."""
    global _current
    if _current is None:
        app = QApplication.instance()
        palette = app.palette() if app is not None else QPalette()
        font = app.font() if app is not None else QFont()
        _current = _build(palette, font)
    return _current


def refresh() -> CanvasStyle:
    """Recompute after a palette or font change."""
    global _current
    _current = None
    return current()
