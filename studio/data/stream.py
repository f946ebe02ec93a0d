"""Images read from their files a batch at a time (data.storage = stream).

Nothing is decoded ahead and nothing is kept: each batch decodes the files it holds,
in the trainer or, with data.workers, in DataLoader worker processes
(studio/data/loader.py). RAM and disk hold no copy of the data, at the price of decoding
every image every epoch; the disk cache (studio/data/cache.py) decodes once instead.

At load time every file is only opened (its header read: is it an image, is it too
large), so a folder of 50,000 files is ready in seconds; a file whose pixels turn out
damaged when a batch decodes it is left out of that batch and named by `read`, and the
trainer reports it as a finding.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from studio.data.cache import ImageRows
from studio.data.decode import decode_or_why


class FileImages(ImageRows):
    """Image files, indexed by row number like a decoded stack: uint8 (C, H, W) each."""

    def __init__(self, paths: list[Path], mode: str, hw: tuple[int, int]):
        self.paths = [str(p) for p in paths]
        self.mode, self.hw = mode, tuple(hw)
        self.shape = (len(self.paths), 3 if mode == "RGB" else 1, *self.hw)

    def read(self, rows) -> tuple[torch.Tensor, list[tuple[int, str, str]]]:
        """(the rows' pixels, [(position in `rows`, file, why) for files that failed]);
        a failed file's pixels are zeros."""
        from PIL import Image

        rows = torch.as_tensor(rows).reshape(-1).tolist()
        out = np.zeros((len(rows), *self.shape[1:]), dtype=np.uint8)
        problems = []
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            for i, row in enumerate(rows):
                pixels, why = decode_or_why(Path(self.paths[row]), self.mode, self.hw)
                if pixels is None:
                    problems.append((i, self.paths[row], why))
                else:
                    out[i] = pixels
        return torch.from_numpy(out), problems

    def __getitem__(self, rows) -> torch.Tensor:
        return self.read(rows)[0]
