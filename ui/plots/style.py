"""Colours and pens of the live plots, for a light and a dark window.

Every plot asks `palette()` for its colours at the moment it styles itself, and
`apply_theme(dark)` tells the live plots to restyle, so one call switches all of them.
The tones match ui/theme.py's window palettes (same backgrounds and text greys) without
importing it, so the plots work in any window. Meaning is kept across plots: blue is
training, orange is validation, grey and dashed is the comparison run, and a layer has
the same colour everywhere: its depth on a perceptual colour map, so the colours read as
"input side" to "output side" even with a hundred layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPen


@dataclass(frozen=True)
class Palette:
    dark: bool
    background: str
    foreground: str  # tick labels and titles
    muted: str  # axis lines, secondary text
    grid: float  # grid line opacity
    train_raw: str
    train: str
    validation: str
    lr: str
    mark: str
    danger: str
    comparison: str
    threshold: str
    heatmap: str  # colour map name for magnitudes
    depth: tuple[str, float, float]  # colour map name and the slice of it used for layers


LIGHT = Palette(
    dark=False,
    background="#ffffff",
    foreground="#1f2937",
    muted="#6b7280",
    grid=0.12,
    train_raw="#bfd3f5",
    train="#2563eb",
    validation="#ea580c",
    lr="#059669",
    mark="#7c3aed",
    danger="#dc2626",
    comparison="#6b7280",
    threshold="#9ca3af",
    heatmap="viridis",
    depth=("plasma", 0.0, 0.82),  # the pale yellow end would vanish on white
)

DARK = Palette(
    dark=True,
    background="#16181d",
    foreground="#e5e7eb",
    muted="#9ca3af",
    grid=0.16,
    train_raw="#2b4670",
    train="#60a5fa",
    validation="#fb923c",
    lr="#34d399",
    mark="#a78bfa",
    danger="#f87171",
    comparison="#9ca3af",
    threshold="#6b7280",
    heatmap="viridis",
    depth=("plasma", 0.22, 1.0),  # the near-black purple end would vanish on dark
)


class _Notifier(QObject):
    changed = Signal()


_state = {"palette": LIGHT, "notifier": None}


def notifier() -> _Notifier:
    """The object whose `changed` signal tells live plots to restyle."""
    if _state["notifier"] is None:
        _state["notifier"] = _Notifier()
    return _state["notifier"]


def palette() -> Palette:
    return _state["palette"]


def apply_theme(dark: bool) -> None:
    """Switch every live plot (and plots created later) to the light or dark palette."""
    pal = DARK if dark else LIGHT
    _state["palette"] = pal
    # Defaults for pyqtgraph items made without explicit colours (menus, exported images).
    pg.setConfigOptions(background=pal.background, foreground=pal.foreground)
    notifier().changed.emit()


def depth_colors(positions) -> list[QColor]:
    """Colours for depths in [0, 1] (0: first layer, 1: last) from the depth colour map."""
    name, lo, hi = palette().depth
    positions = lo + (hi - lo) * np.clip(np.asarray(positions, dtype=float), 0.0, 1.0)
    if not len(positions):
        return []
    return list(pg.colormap.get(name).map(positions, mode="qcolor"))


def color(value: str, alpha: float = 1.0) -> QColor:
    c = QColor(value)
    c.setAlphaF(alpha)
    return c


def pen(
    value, width: float = 1.0, style: Qt.PenStyle = Qt.PenStyle.SolidLine, alpha: float = 1.0
) -> QPen:
    c = QColor(value)
    if alpha < 1.0:
        c.setAlphaF(c.alphaF() * alpha)
    p = QPen(c)
    p.setWidthF(width)
    p.setStyle(style)
    p.setCosmetic(True)  # width in screen pixels at any zoom
    return p


def font(size: float = 8.0, bold: bool = False) -> QFont:
    f = QFont()
    f.setPointSizeF(size)
    f.setBold(bold)
    return f


def superscript(exponent: int) -> str:
    return str(exponent).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


def format_power(value: float) -> str:
    """A magnitude as a person reads it: 3.2e-05 → '3.2·10⁻⁵', 0.5 → '0.5'."""
    if not np.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if 1e-2 <= abs(value) < 1e4:
        return f"{value:.3g}"
    exponent = int(np.floor(np.log10(abs(value))))
    mantissa = value / 10.0**exponent
    return f"{mantissa:.2g}·10{superscript(exponent)}"
