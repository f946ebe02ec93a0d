"""Decoded images on disk: an image folder decoded once into a uint8 array file.

With `data.storage` = disk (or auto, for data too big for RAM), an image folder's images
are decoded once, with a progress bar, into `<cache>/<folder key>-<content key>.npy` (a
plain .npy) beside a small JSON of which files loaded and which were
skipped and why. Later runs, and later epochs, read the decoded pixels from it at the
speed of memory (the operating system keeps the pages it can), while the process holds
only the batch it reads (studio/data/cache.py CachedImages), so RAM use stays flat
however many images there are.

The content key covers every file's path, size and modification time and the decoding
geometry (colour mode, height × width): a file added, removed or changed, or another
image size, builds a new cache, and the older one of the same folder is deleted. The
cache lives in $STUDIO_CACHE, else $XDG_CACHE_HOME/studio/decoded, else
~/.cache/studio/decoded; deleting it is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from studio.errors import DataError


def cache_root() -> Path:
    if os.environ.get("STUDIO_CACHE"):
        return Path(os.environ["STUDIO_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "studio" / "decoded"


def keys(root: Path, paths: list[Path], mode: str, hw: tuple[int, int]) -> tuple[str, str]:
    """(the folder's key, the content's key): see the module's docstring."""
    # fsencode: a file name that is not UTF-8 is bytes the file system holds, not an error.
    folder = hashlib.sha1(os.fsencode(Path(root).resolve())).hexdigest()[:12]
    content = hashlib.sha1(f"{mode} {hw[0]}x{hw[1]}\n".encode())
    for path in paths:
        try:
            st = path.stat()
            content.update(os.fsencode(path) + f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            content.update(os.fsencode(path) + b"\0missing\n")
    return folder, content.hexdigest()[:16]


def decoded(
    root: Path,
    paths: list[Path],
    mode: str,
    hw: tuple[int, int],
    decode_one: Callable[[Path], tuple[np.ndarray | None, str | None]],
    workers: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, list[int], list[tuple[str, str]]]:
    """(the decoded images as CachedImages, the indices of `paths` that
    loaded, the skipped files with why): from the cache when it is current, else decoded
    into it now."""
    folder_key, content_key = keys(root, paths, mode, hw)
    where = cache_root()
    array_path = where / f"{folder_key}-{content_key}.npy"
    meta_path = where / f"{folder_key}-{content_key}.json"
    meta = _read_meta(meta_path)
    images = _open(array_path, meta)  # None: missing, or damaged (cut short, not .npy)
    if images is None:
        try:
            meta = _build(array_path, meta_path, paths, mode, hw, decode_one, workers, progress)
        except OSError as err:
            for tmp in where.glob(f"{folder_key}-{content_key}.tmp{os.getpid()}*"):
                tmp.unlink(missing_ok=True)
            raise DataError(
                f"Cannot write the decoded-image cache in '{where}': "
                f"{err.strerror or err}; "
                + ("free some space there, " if err.errno == 28 else "")
                + "point STUDIO_CACHE elsewhere, or set data.storage to memory."
            ) from None
        for old in where.glob(f"{folder_key}-*"):  # an older cache of the same folder
            if not old.name.startswith(f"{folder_key}-{content_key}."):
                old.unlink(missing_ok=True)
        images = CachedImages(array_path, meta["rows"])
    elif progress:
        progress(len(paths), len(paths))
    skipped = [(str(f), str(why)) for f, why in meta["skipped"]]
    return images, list(meta["kept"]), skipped


def _open(path: Path, meta: dict | None):
    """The cache file, if it is whole: a readable .npy holding every row its JSON says."""
    if meta is None:
        return None
    try:
        images = CachedImages(path, meta["rows"])
    except (OSError, ValueError, EOFError):
        return None
    if path.stat().st_size < images.offset + images.row_bytes * len(images):
        return None
    return images


class ImageRows:
    """Images kept out of RAM, read by row numbers as a decoded uint8 stack (N, C, H, W)
    would be: what Samples (studio/data/prepare.py) scales a batch at a time. Subclasses
    set `shape` and answer `__getitem__` (and `read`, when a row can fail)."""

    dtype = torch.uint8
    shape: tuple[int, ...]

    def __len__(self) -> int:
        return self.shape[0]

    def dim(self) -> int:
        return len(self.shape)

    def is_floating_point(self) -> bool:
        return False

    def read(self, rows) -> tuple[torch.Tensor, list[tuple[int, str, str]]]:
        """The rows, and [(position, file, why)] for rows that failed (none here)."""
        return self[rows], []


class CachedImages(ImageRows):
    """A decoded-image cache file's rows, read with pread a batch at a time.

    Not memory-mapped into the process: mapped pages, once touched, count in the
    process's resident memory (1.4 GB after an epoch of 50,000 images of 64×64), while
    read pages stay in the operating system's page cache, which gives them up when others
    need the memory. Indexed by row numbers, it answers uint8 tensors."""

    def __init__(self, path: Path, rows: int):
        header = np.load(path, mmap_mode="r")
        self.path, self.offset = Path(path), int(header.offset)
        self.shape = (rows, *header.shape[1:])
        del header
        self.row_bytes = int(np.prod(self.shape[1:]))
        self._fd = os.open(self.path, os.O_RDONLY)

    def __getitem__(self, rows) -> torch.Tensor:
        rows = torch.as_tensor(rows).reshape(-1).tolist()
        out = np.empty((len(rows), self.row_bytes), dtype=np.uint8)
        for i in sorted(range(len(rows)), key=rows.__getitem__):  # forwards through the file
            if (
                os.preadv(self._fd, [out[i]], self.offset + rows[i] * self.row_bytes)
                != self.row_bytes
            ):
                raise DataError(
                    f"The decoded-image cache file '{self.path}' was cut short while training "
                    "(something else wrote to or truncated it); train again or resume the run: "
                    "the cache is built anew when it is not whole."
                )
        return torch.from_numpy(out.reshape(len(rows), *self.shape[1:]))

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)


def _read_meta(path: Path) -> dict | None:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not {"rows", "kept", "skipped"} <= meta.keys():
        return None
    return meta


def _build(array_path, meta_path, paths, mode, hw, decode_one, workers, progress) -> dict:
    """Decode every file into a new cache: rows in file order, skipped files left out;
    written under temporary names and renamed when whole, the JSON last."""
    array_path.parent.mkdir(parents=True, exist_ok=True)
    channels = 3 if mode == "RGB" else 1
    # Named by process: data-parallel processes starting on a cold cache build it side by
    # side, and each renames its own whole file into place (the same bytes).
    tmp = array_path.with_name(f"{array_path.stem}.tmp{os.getpid()}.npy")
    array = np.lib.format.open_memmap(
        tmp, mode="w+", dtype=np.uint8, shape=(max(len(paths), 1), channels, *hw)
    )
    kept, skipped, row = [], [], 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, (pixels, problem) in enumerate(pool.map(decode_one, paths)):
            if pixels is None:
                skipped.append((str(paths[i]), problem))
            else:
                array[row] = pixels
                kept.append(i)
                row += 1
            if progress and (i % 64 == 0 or i == len(paths) - 1):
                progress(i + 1, len(paths))
    array.flush()
    del array
    os.replace(tmp, array_path)
    meta = {"rows": row, "kept": kept, "skipped": skipped}
    tmp_meta = meta_path.with_suffix(f".tmp{os.getpid()}")
    tmp_meta.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp_meta, meta_path)
    return meta
