"""Where the example projects and icons are: `resources/` beside the packages in a
checkout, `studio/resources/` in an installed wheel (pyproject.toml maps the folder into
the package), or inside a PyInstaller bundle."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def resources() -> Path:
    candidates = [_HERE / "resources", _HERE.parent / "resources"]
    if getattr(sys, "_MEIPASS", None):  # a PyInstaller bundle unpacks its data here
        candidates.insert(0, Path(sys._MEIPASS) / "studio" / "resources")
    for folder in candidates:
        if (folder / "examples").is_dir():
            return folder
    return candidates[-1]


RESOURCES = resources()
EXAMPLES = RESOURCES / "examples"
ICONS = RESOURCES / "icons"
