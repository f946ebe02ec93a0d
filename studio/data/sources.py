"""Where samples come from. Each source returns raw samples as tensors plus a report.

Built-in sources register through the `studio.datasets` entry-point group, like plugins.
Image files are decoded once into memory (uint8 at the target size), in parallel threads,
so every source then trains through the same fast in-memory batch path; an unreadable
file is skipped, counted and named in the report instead of stopping the run.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from studio.errors import StudioError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


class DataError(StudioError):
    """Data that cannot be used; the message names the file, folder or column."""


@dataclass
class RawData:
    """Samples before splitting and scaling."""

    x: torch.Tensor  # (N, *sample_shape), float32 or uint8
    y: torch.Tensor  # (N,) int64 class indices, or float32 targets
    classes: list[str]
    value_range: tuple[float, float] | None  # known pixel range (e.g. 0..255), None: from data
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    description: str = ""


@dataclass
class SourceRequest:
    settings: dict
    base: Path  # folder that relative paths are resolved against (the project's)
    sample_shape: tuple[int, ...]  # what the Input layer wants
    progress: Callable[[int, int], None] | None = None


SOURCES: dict[str, Callable[[SourceRequest], RawData]] = {}


def source(name: str):
    def add(fn):
        SOURCES[name] = fn
        return fn

    return add


@source("digits")
def digits(request: SourceRequest) -> RawData:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8), values 0..16
    y = torch.tensor(data.target, dtype=torch.int64)
    description = "scikit-learn digits: 1,797 grayscale 8×8 images of 10 digits"
    shape = request.sample_shape
    if len(shape) == 3 and shape != (1, 8, 8):
        # An Input that wants other images (a pretrained backbone wants RGB and more than
        # 8×8 pixels): scale the digits up and repeat the gray channel.
        mode, (h, w) = _image_geometry(request)
        x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        if mode == "RGB":
            x = x.expand(-1, 3, -1, -1)
        description += f", scaled to {h}×{w}" + (" RGB" if mode == "RGB" else "")
    return RawData(x, y, [str(c) for c in data.target_names], (0.0, 16.0), description=description)


def _image_geometry(request: SourceRequest) -> tuple[str, tuple[int, int]]:
    """PIL mode and (height, width) to decode to, from the settings or the Input layer."""
    shape, settings = request.sample_shape, request.settings
    channels = shape[0] if len(shape) == 3 else 1
    color = settings["color"]
    if color == "auto":
        color = "rgb" if channels == 3 else "grayscale"
    size = settings["image_size"]
    if size:
        hw = (size, size)
    elif len(shape) == 3:
        hw = (shape[1], shape[2])
    else:
        raise DataError(
            "Set data.image_size: the Input layer is not an image, so it cannot say what size to load."
        )
    return ("RGB" if color == "rgb" else "L"), hw


def _decode(path: Path, mode: str, hw: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert(mode).resize((hw[1], hw[0]), Image.BILINEAR)
        array = np.asarray(img, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def load_images(
    paths: list[Path], request: SourceRequest
) -> tuple[torch.Tensor, list[int], list[tuple[str, str]]]:
    """Decode images in parallel; returns the stack, the indices that loaded, and skips."""
    mode, hw = _image_geometry(request)
    workers = request.settings["workers"] or min(8, os.cpu_count() or 1)

    def one(path: Path):
        try:
            return _decode(path, mode, hw), None
        except Exception as err:  # any decoder failure: skip the file, name it in the report
            return None, f"{type(err).__name__}: {err}".splitlines()[0]

    arrays, kept, skipped = [], [], []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, (array, problem) in enumerate(pool.map(one, paths)):
            if array is None:
                skipped.append((str(paths[i]), problem))
            else:
                arrays.append(array)
                kept.append(i)
            if request.progress and (i % 64 == 0 or i == len(paths) - 1):
                request.progress(i + 1, len(paths))
    channels = 3 if mode == "RGB" else 1
    x = (
        torch.from_numpy(np.stack(arrays))
        if arrays
        else torch.empty((0, channels, *hw), dtype=torch.uint8)
    )
    return x, kept, skipped


def _resolve(request: SourceRequest, what: str) -> Path:
    raw = request.settings["path"]
    if not raw:
        raise DataError(f"Set data.path to the {what}.")
    path = Path(raw).expanduser()
    return path if path.is_absolute() else request.base / path


@source("image_folder")
def image_folder(request: SourceRequest) -> RawData:
    root = _resolve(request, "image folder (one subfolder per class)")
    if not root.is_dir():
        raise DataError(f"Image folder '{root}' does not exist.")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(
            f"Image folder '{root}' has no class subfolders; put each class's images in its own subfolder."
        )
    paths, labels, skipped = [], [], []
    for index, name in enumerate(classes):
        for file in sorted((root / name).rglob("*")):
            if not file.is_file() or file.name.startswith("."):
                continue
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append((str(file), "not an image file type"))
                continue
            paths.append(file)
            labels.append(index)
    x, kept, bad = load_images(paths, request)
    if not kept:
        raise DataError(f"Image folder '{root}' has no readable images.")
    y = torch.tensor([labels[i] for i in kept], dtype=torch.int64)
    return RawData(
        x,
        y,
        classes,
        (0.0, 255.0),
        skipped + bad,
        description=f"{len(kept):,} images in {len(classes)} classes from {root}",
    )


@source("csv")
def csv_table(request: SourceRequest) -> RawData:
    path = _resolve(request, "CSV file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except OSError as err:
        raise DataError(f"Cannot read CSV file '{path}': {err.strerror}.") from None
    if len(rows) < 2:
        raise DataError(f"CSV file '{path}' needs a header row and at least one data row.")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    label = request.settings["label_column"]
    if label not in header:
        raise DataError(
            f"CSV file '{path}' has no column '{label}' (its columns: {', '.join(header)}); "
            "set data.label_column to the one that holds the labels."
        )
    image_column = request.settings["image_column"]
    if image_column and image_column not in header:
        raise DataError(
            f"CSV file '{path}' has no image column '{image_column}' (its columns: {', '.join(header)})."
        )
    label_at = header.index(label)
    raw_labels = [row[label_at].strip() if label_at < len(row) else "" for row in body]
    classes, y = _labels(raw_labels, path, label)
    if image_column:
        at = header.index(image_column)
        paths = [(path.parent / row[at].strip()) for row in body]
        x, kept, skipped = load_images(paths, request)
        return RawData(
            x,
            y[kept],
            classes,
            (0.0, 255.0),
            skipped,
            description=f"{len(kept):,} images listed in {path}",
        )
    features = [i for i, h in enumerate(header) if i != label_at]
    values = np.empty((len(body), len(features)), dtype=np.float32)
    for r, row in enumerate(body, start=2):
        for c, i in enumerate(features):
            try:
                values[r - 2, c] = float(row[i])
            except (ValueError, IndexError):
                cell = row[i] if i < len(row) else ""
                raise DataError(
                    f"CSV file '{path}', row {r}, column '{header[i]}': {cell!r} is not a number."
                ) from None
    return RawData(
        torch.from_numpy(values),
        y,
        classes,
        None,
        description=f"{len(body):,} rows × {len(features)} features from {path}",
    )


def _labels(raw: list[str], path: Path, column: str) -> tuple[list[str], torch.Tensor]:
    if any(v == "" for v in raw):
        row = raw.index("") + 2
        raise DataError(f"CSV file '{path}', row {row}: the label column '{column}' is empty.")
    try:
        numbers = [float(v) for v in raw]
    except ValueError:
        numbers = None
    if numbers is not None and not all(n.is_integer() for n in numbers):
        # Real-valued targets: regression.
        return [], torch.tensor(numbers, dtype=torch.float32)
    if numbers is not None:
        keys = sorted({int(n) for n in numbers})
        names = [str(k) for k in keys]
        index = {k: i for i, k in enumerate(keys)}
        return names, torch.tensor([index[int(n)] for n in numbers], dtype=torch.int64)
    names = sorted(set(raw))
    index = {k: i for i, k in enumerate(names)}
    return names, torch.tensor([index[v] for v in raw], dtype=torch.int64)


def register(registry: dict) -> None:
    """Entry point for the built-in sources (the `studio.datasets` group)."""
    registry.update(SOURCES)
