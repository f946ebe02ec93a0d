"""`studio install-desktop`: the studio in the desktop's application menu (freedesktop).

Writes a `.desktop` entry to $XDG_DATA_HOME/applications (default ~/.local/share) and the
studio's icon to the hicolor theme there, for the current user only; `--remove` takes
both away again. The entry starts the window with the Python (or the bundled app) that ran
this command, so it opens the same studio the person installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from studio.bundled import ICONS
from studio.errors import StudioError

NAME = "studio"  # the entry's and the icon's file name
ICON_COLOUR = "#3b82f6"


def data_home() -> Path:
    """$XDG_DATA_HOME, unless unset or relative (the XDG spec says to ignore it then)."""
    chosen = os.environ.get("XDG_DATA_HOME", "")
    if chosen and Path(chosen).is_absolute():
        return Path(chosen)
    return Path.home() / ".local" / "share"


def entry_path() -> Path:
    return data_home() / "applications" / f"{NAME}.desktop"


def icon_path() -> Path:
    return data_home() / "icons" / "hicolor" / "scalable" / "apps" / f"{NAME}.svg"


def command() -> list[str]:
    """What the entry runs: the bundled app itself, the `studio-window` script beside this
    Python, or this Python running the studio."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    script = Path(sys.executable).with_name("studio-window")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "studio", "launch"]


def _quoted(arg: str) -> str:
    """An Exec argument as the Desktop Entry specification quotes it."""
    if not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`"):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return f'"{escaped}"'


def entry_text() -> str:
    exec_line = " ".join(_quoted(a) for a in command())
    return "\n".join(
        [
            "[Desktop Entry]",
            "Type=Application",
            "Name=Studio",
            "GenericName=Neural network studio",
            "Comment=Build, train and diagnose PyTorch networks",
            f"Exec={exec_line} %f",
            f"Icon={NAME}",
            "Terminal=false",
            "Categories=Development;Science;Education;",
            "Keywords=PyTorch;neural network;deep learning;training;",
            "StartupWMClass=Studio",
            "",
        ]
    )


def install() -> list[Path]:
    """Write the entry and the icon; returns what was written."""
    entry, icon = entry_path(), icon_path()
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        icon.parent.mkdir(parents=True, exist_ok=True)
        svg = (ICONS / "app.svg").read_text(encoding="utf-8")
        icon.write_text(svg.replace('stroke="#000"', f'stroke="{ICON_COLOUR}"'), encoding="utf-8")
        entry.write_text(entry_text(), encoding="utf-8")
    except OSError as err:
        raise StudioError(
            f"Cannot write the menu entry in '{err.filename or data_home()}': "
            f"{err.strerror or err}."
        ) from None
    _refresh(entry.parent)
    return [entry, icon]


def remove() -> list[Path]:
    """Delete the entry and the icon; returns what was there."""
    gone = []
    for path in (entry_path(), icon_path()):
        try:
            path.unlink()
            gone.append(path)
        except FileNotFoundError:
            continue
        except OSError as err:
            raise StudioError(f"Cannot remove '{path}': {err.strerror or err}.") from None
    _refresh(entry_path().parent)
    return gone


def _refresh(folder: Path) -> None:
    """Menus that cache entries re-read them (where the tool exists; harmless otherwise)."""
    tool = shutil.which("update-desktop-database")
    if tool and folder.is_dir():
        subprocess.run([tool, str(folder)], capture_output=True, check=False, timeout=30)
