"""Where samples come from. Each source returns raw samples as tensors plus a report.

Built-in sources register through the `studio.datasets` entry-point group, like plugins.
Image files are decoded once into memory (uint8 at the target size), in parallel threads,
so every source then trains through the same fast in-memory batch path; an unreadable
file is skipped, counted and named in the report instead of stopping the run.

Data that cannot train (a CSV line with the wrong number of cells, a NaN cell, text that
is not UTF-8, one class only, a device where a file should be) stops the load with one
sentence naming the file, line and column, before any training step.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import os
import stat
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from studio import free_memory
from studio.cpus import usable_cpus
from studio.data.decode import IMAGE_SUFFIXES, decode_or_why, header_or_why
from studio.errors import DataError


@dataclass
class RawData:
    """Samples before splitting and scaling."""

    x: torch.Tensor  # (N, *sample_shape), float32 or uint8
    y: torch.Tensor  # (N,) int64 class indices, or float32 targets
    classes: list[str]
    value_range: tuple[float, float] | None  # known pixel range (e.g. 0..255), None: from data
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    description: str = ""
    notes: list[str] = field(default_factory=list)  # sentences the person should read
    # Where each sample came from, in words a person can find it by: a file path, a CSV
    # line, a sample number (empty: "sample #i"). Evaluation names the samples it shows.
    origins: list[str] = field(default_factory=list)
    # Decoded into a disk cache (data.storage): x is the whole cache file (read a batch at
    # a time) and
    # rows says which of its rows each sample is; None: x holds the samples themselves.
    rows: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.y)


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
    return RawData(
        x,
        y,
        [str(c) for c in data.target_names],
        (0.0, 16.0),
        description=description,
        origins=[f"digits sample #{i}" for i in range(len(y))],
    )


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


def on_disk(storage: str, count: int, mode: str, hw: tuple[int, int]) -> bool:
    """Whether `data.storage` keeps the images out of RAM: disk (a decoded cache) or
    stream (the files themselves), or auto when the float samples would take more than a
    quarter of the RAM available (at most 2 GB; auto then picks the cache)."""
    if storage != "auto":
        return storage in ("disk", "stream")
    floats = count * (3 if mode == "RGB" else 1) * hw[0] * hw[1] * 4
    ram = free_memory.available_memory("cpu")[0]
    return floats > min(2 * 1024**3, ram // 4 if ram else 2 * 1024**3)


def load_images(
    paths: list[Path], request: SourceRequest, root: Path | None = None
) -> tuple[torch.Tensor, list[int], list[tuple[str, str]], str]:
    """Decode images in parallel; returns the stack, the indices that loaded, the skips,
    and how the stack is kept: "memory" (decoded here), or, given the folder or CSV file
    the images belong to (`root`), as data.storage says: "disk" (a decoded cache read a
    batch at a time, studio/data/cache.py) or "stream" (the files, decoded a batch at a
    time, studio/data/stream.py)."""
    from PIL import Image

    mode, hw = _image_geometry(request)
    workers = request.settings["workers"] or min(8, usable_cpus())

    storage = request.settings["storage"]
    # Streamed: the header now (is it an image, is it too large), the pixels per batch.
    stream = storage == "stream" and root is not None
    check = header_or_why if stream else decode_or_why

    def one(path: Path):
        return check(path, mode, hw)

    arrays, kept, skipped = [], [], []
    # PIL warns about a huge image and decodes it anyway; as an error it lands in the
    # skipped-files report instead. The filter is process-wide (warnings has no per-thread
    # filters before Python 3.14), so it is set only while these decoders run.
    if root is not None and not stream and on_disk(storage, len(paths), mode, hw):
        from studio.data import cache

        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return (*cache.decoded(root, paths, mode, hw, one, workers, request.progress), "disk")
    with (
        warnings.catch_warnings(),
        ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for i, (array, problem) in enumerate(pool.map(one, paths)):
            if array is None:
                skipped.append((str(paths[i]), problem))
            else:
                arrays.append(array)
                kept.append(i)
            if request.progress and (i % 64 == 0 or i == len(paths) - 1):
                request.progress(i + 1, len(paths))
    if stream:
        from studio.data.stream import FileImages

        return FileImages([paths[i] for i in kept], mode, hw), kept, skipped, "stream"
    channels = 3 if mode == "RGB" else 1
    x = (
        torch.from_numpy(np.stack(arrays))
        if arrays
        else torch.empty((0, channels, *hw), dtype=torch.uint8)
    )
    return x, kept, skipped, "memory"


def _resolve(request: SourceRequest, what: str) -> Path:
    raw = request.settings["path"]
    if not raw:
        raise DataError(f"Set data.path to the {what}.")
    path = Path(raw).expanduser()
    return path if path.is_absolute() else request.base / path


def _quoted(names: list[str], most: int = 5) -> str:
    """'a', 'b' and 'c': names for a sentence, the first few of a long list."""
    quoted = [f"'{n}'" for n in names[:most]]
    if len(names) > most:
        quoted.append(f"{len(names) - most} more")
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def _class_folders(root: Path) -> list[Path]:
    try:
        mode = root.stat().st_mode
        if not stat.S_ISDIR(mode):
            raise DataError(
                f"Image folder '{root}' is not a folder; set data.path to a folder with one "
                "subfolder per class."
            )
        entries = list(os.scandir(root))
    except FileNotFoundError:
        raise DataError(f"Image folder '{root}' does not exist.") from None
    except OSError as err:
        raise DataError(f"Cannot read image folder '{root}': {err.strerror or err}.") from None
    folders = []
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:  # a link that cannot be followed is no class
            is_dir = False
        if is_dir and not entry.name.startswith("."):
            folders.append(Path(entry.path))
    return sorted(folders, key=lambda folder: folder.name)


def _image_files(folder: Path, skipped: list[tuple[str, str]]) -> list[Path]:
    """Every file under a class folder with an image's suffix; the rest join `skipped`."""
    files, others = [], []

    def unreadable(err: OSError) -> None:
        others.append((err.filename or str(folder), f"folder cannot be read: {err.strerror}"))

    for parent, _, names in os.walk(folder, onerror=unreadable):
        for name in names:
            if name.startswith("."):
                continue
            file = Path(parent) / name
            if file.suffix.lower() in IMAGE_SUFFIXES:
                files.append(file)
            else:
                others.append((str(file), "not an image file type"))
    skipped.extend(sorted(others))
    return sorted(files)


@source("image_folder")
def image_folder(request: SourceRequest) -> RawData:
    root = _resolve(request, "image folder (one subfolder per class)")
    folders = _class_folders(root)
    if not folders:
        raise DataError(
            f"Image folder '{root}' has no class subfolders; put each class's images in its own subfolder."
        )
    paths, labels, skipped = [], [], []
    for index, folder in enumerate(folders):
        files = _image_files(folder, skipped)
        paths += files
        labels += [index] * len(files)
    x, kept, bad, kept_as = load_images(paths, request, root)
    counts = np.bincount([labels[i] for i in kept], minlength=len(folders))
    classes = [f.name for f, n in zip(folders, counts) if n]
    empty = [f.name for f, n in zip(folders, counts) if not n]
    if not classes:
        raise DataError(
            f"Image folder '{root}' has no readable images in its {len(folders)} class subfolder(s)."
        )
    if len(classes) == 1:
        none = f" ({_quoted(empty)} {'has' if len(empty) == 1 else 'have'} none)" if empty else ""
        raise DataError(
            f"Image folder '{root}' has images for only one class, '{classes[0]}'{none}; "
            "classification needs at least two classes, each a subfolder of images."
        )
    notes = []
    if empty:
        one = len(empty) == 1
        notes.append(
            f"{'Class folder' if one else 'Class folders'} {_quoted(empty)} in '{root}' "
            f"{'holds' if one else 'hold'} no readable images, so "
            f"{'it is not counted as a class' if one else 'they are not counted as classes'}."
        )
    # Class numbers count only the folders that hold images.
    number = np.cumsum(counts > 0) - 1
    y = torch.tensor([number[labels[i]] for i in kept], dtype=torch.int64)
    return RawData(
        x,
        y,
        classes,
        (0.0, 255.0),
        skipped + bad,
        description=f"{len(kept):,} images in {len(classes)} classes from {root}"
        + KEPT_AS[kept_as],
        notes=notes,
        origins=[str(paths[i]) for i in kept],
        rows=None if kept_as == "memory" else torch.arange(len(kept)),
    )


# How load_images kept the images, as the data's description says it.
KEPT_AS = {
    "memory": "",
    "disk": " (decoded into a disk cache)",
    "stream": " (read from the files a batch at a time)",
}


def _read_text(path: Path, what: str) -> str:
    """A regular file's text, strictly UTF-8 (a byte-order mark is allowed). A device or
    pipe is refused before it is opened: it could block, or never end (/dev/zero)."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise DataError(f"{what} '{path}' is a folder; set data.path to the file itself.")
        if not stat.S_ISREG(mode):
            raise DataError(
                f"{what} '{path}' is not a regular file (it is a device, pipe or socket); "
                "set data.path to a file."
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{what} '{path}' does not exist.") from None
    except OSError as err:
        raise DataError(f"Cannot read {what} '{path}': {err.strerror or err}.") from None
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as err:
        at = start + err.start
        line = data.count(b"\n", 0, at) + 1
        raise DataError(
            f"{what} '{path}' is not UTF-8 text: line {line} holds the byte 0x{data[at]:02x} "
            f'(byte {at} of the file); save it as UTF-8 (a spreadsheet\'s "CSV UTF-8").'
        ) from None


def _csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, cells) of each row that is not blank; a quoted cell may span lines,
    so the number is the line the row starts on."""
    reader = csv.reader(io.StringIO(_read_text(path, "CSV file"), newline=""))
    rows, line = [], 1
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                rows.append((line, cells))
            line = reader.line_num + 1
    except csv.Error as err:
        raise DataError(f"CSV file '{path}', line {reader.line_num}: {err}.") from None
    return rows


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _finite(value: float) -> bool:
    """A number float32 holds as a finite value (training turns NaN into a diverged loss)."""
    return math.isfinite(value) and abs(value) <= FLOAT32_MAX


def _not_finite(path: Path, line: int, column: str, cell: str) -> DataError:
    return DataError(
        f"CSV file '{path}', line {line}, column '{column}': {cell.strip()!r} is not a finite "
        "number (NaN, infinity or beyond ±3.4e38), which would wreck training; fill it in or "
        "remove the line."
    )


@source("csv")
def csv_table(request: SourceRequest) -> RawData:
    path = _resolve(request, "CSV file")
    rows = _csv_rows(path)
    if len(rows) < 2:
        raise DataError(f"CSV file '{path}' needs a header row and at least one data row.")
    header, body = [h.strip() for h in rows[0][1]], rows[1:]
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
    for line, cells in body:
        if len(cells) != len(header):
            raise DataError(
                f"CSV file '{path}', line {line}: expected {len(header)} cells (one per column of "
                f"the header on line {rows[0][0]}) but found {len(cells)}."
            )
    label_at = header.index(label)
    lines = [line for line, _ in body]
    raw_labels = [cells[label_at].strip() for _, cells in body]
    classes, y = _labels(raw_labels, lines, path, label)
    if image_column:
        at = header.index(image_column)
        paths = [(path.parent / cells[at].strip()) for _, cells in body]
        x, kept, skipped, kept_as = load_images(paths, request, path)
        return RawData(
            x,
            y[kept],
            classes,
            (0.0, 255.0),
            skipped,
            description=f"{len(kept):,} images listed in {path}" + KEPT_AS[kept_as],
            origins=[str(paths[i]) for i in kept],
            rows=None if kept_as == "memory" else torch.arange(len(kept)),
        )
    features = [i for i, h in enumerate(header) if i != label_at]
    values = np.empty((len(body), len(features)), dtype=np.float32)
    for r, (line, cells) in enumerate(body):
        for c, i in enumerate(features):
            try:
                value = float(cells[i])
            except ValueError:
                raise DataError(
                    f"CSV file '{path}', line {line}, column '{header[i]}': {cells[i]!r} is not a number."
                ) from None
            if not _finite(value):
                raise _not_finite(path, line, header[i], cells[i])
            values[r, c] = value
    return RawData(
        torch.from_numpy(values),
        y,
        classes,
        None,
        description=f"{len(body):,} rows × {len(features)} features from {path}",
        origins=[f"{path.name}, line {line}" for line, _ in body],
    )


def _labels(
    raw: list[str], lines: list[int], path: Path, column: str
) -> tuple[list[str], torch.Tensor]:
    if any(v == "" for v in raw):
        line = lines[raw.index("")]
        raise DataError(f"CSV file '{path}', line {line}: the label column '{column}' is empty.")
    try:
        numbers = [float(v) for v in raw]
    except ValueError:
        numbers = None
    if numbers is not None:
        for value, number, line in zip(raw, numbers, lines):
            if not _finite(number):
                raise _not_finite(path, line, column, value)
        if not all(n.is_integer() for n in numbers):
            # Real-valued targets: regression.
            return [], torch.tensor(numbers, dtype=torch.float32)
        keys = sorted({int(n) for n in numbers})
        names = [str(k) for k in keys]
        index = {k: i for i, k in enumerate(keys)}
        y = [index[int(n)] for n in numbers]
    else:
        names = sorted(set(raw))
        index = {k: i for i, k in enumerate(names)}
        y = [index[v] for v in raw]
    if len(names) == 1:
        raise DataError(
            f"CSV file '{path}': every row's '{column}' is '{names[0]}', so there is only one "
            "class; classification needs at least two classes."
        )
    return names, torch.tensor(y, dtype=torch.int64)


def register(registry: dict) -> None:
    """Entry point for the built-in sources (the `studio.datasets` group)."""
    registry.update(SOURCES)
