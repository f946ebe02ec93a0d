"""Downloading a weights file with progress, checked and written atomically.

torch.hub's downloader only draws its own tqdm bar; the window needs the numbers (bytes
done, bytes in all) to draw a progress bar with an ETA, so this reads the response in
chunks and reports each one. The file appears under its final name only when complete and,
where the name carries a hash prefix (torchvision's `resnet18-f37072fd.pth`), only when its
SHA-256 starts with it.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

CHUNK = 1 << 20
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.\w+$")

Progress = Callable[[int, int], None]  # (bytes done, bytes in all or 0 when unknown)


class DownloadError(OSError):
    """The file could not be fetched or is not the file expected."""


def hash_prefix(name: str) -> str | None:
    match = HASH_IN_NAME.search(name)
    return match.group(1) if match else None


def download(url: str, dest: Path, progress: Progress | None = None, timeout: float = 30) -> Path:
    """Fetch url to dest, reporting progress; raises DownloadError and leaves nothing behind."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = hash_prefix(dest.name)
    digest = hashlib.sha256()
    fd, temp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            if progress:
                progress(0, total)
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        if expected and not digest.hexdigest().startswith(expected):
            raise DownloadError(
                f"the downloaded {dest.name} has SHA-256 {digest.hexdigest()[:12]}…, not "
                f"{expected}… as its name says (a broken or different file)"
            )
        os.replace(temp, dest)
        return dest
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
