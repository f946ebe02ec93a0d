"""One image file to pixels, or the reason it cannot be used, in the words the
skipped-files report uses: what loading into memory, the disk cache
(studio/data/cache.py) and streaming (studio/data/stream.py) all decode with."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def decode(path: Path, mode: str, hw: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        img = _eight_bit(img).convert(mode).resize((hw[1], hw[0]), Image.BILINEAR)
        array = np.asarray(img, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _eight_bit(img):
    """16-bit, 32-bit and float images brought to 0–255 (PIL's convert clips them: a
    16-bit scan came out all white, a float image in 0–1 all black). 16 bits are divided
    by 257; floats up to 1 are taken as 0–1; other wide integers are scaled to their
    largest value."""
    from PIL import Image

    if not (img.mode.startswith("I") or img.mode == "F"):
        return img
    values = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0)
    top = float(values.max()) if values.size else 0.0
    if img.mode.startswith("I;16") or (img.mode == "I" and 255 < top <= 65535):
        values = values / 257.0
    elif img.mode == "F" and 0.0 < top <= 1.0:
        values = values * 255.0
    elif top > 255:
        values = values * (255.0 / top)
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


def not_a_file(path: Path) -> str | None:
    """Why `path` cannot be opened as a file, or None; a pipe or device would block or
    never end, so only regular files are ever read."""
    try:
        mode = path.stat().st_mode
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if not stat.S_ISREG(mode):
        return "not a regular file (a device, pipe or socket)"
    return None


def too_large(err: Exception) -> str:
    found = re.search(r"\((\d+) pixels\)", str(err))
    size = f" ({int(found[1]) / 1e6:.3g} megapixels)" if found else ""
    return f"too large to open safely{size}"


def why_not(err: Exception) -> str:
    """A file's problem in the skipped-files report's words."""
    from PIL import Image

    if isinstance(err, (Image.DecompressionBombWarning, Image.DecompressionBombError)):
        return too_large(err)
    if isinstance(err, OSError) and err.strerror:
        return f"cannot be read: {err.strerror}"
    return f"{type(err).__name__}: {err}".splitlines()[0]


def decode_or_why(path: Path, mode: str, hw: tuple[int, int]):
    """(the file's pixels, None), or (None, why it cannot be used)."""
    try:
        problem = not_a_file(path)
        return (None, problem) if problem else (decode(path, mode, hw), None)
    except Exception as err:  # any decoder failure: skip the file, name it in the report
        return None, why_not(err)


def header_or_why(path: Path, mode: str, hw: tuple[int, int]):
    """(True, None) when the file opens as an image of a safe size (its header only, not
    its pixels: what data.storage=stream checks before training), else (None, why)."""
    from PIL import Image

    try:
        problem = not_a_file(path)
        if problem:
            return None, problem
        with Image.open(path) as img:
            img.size  # noqa: B018 (opening read the header; a bomb was refused there)
        return True, None
    except Exception as err:
        return None, why_not(err)


def named(path: str | Path) -> str:
    """A file as a report names it: its class folder and its name ("dog/001.png"), which
    tells apart the 001.png of every class."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name
