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
        img = img.convert(mode).resize((hw[1], hw[0]), Image.BILINEAR)
        array = np.asarray(img, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


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
