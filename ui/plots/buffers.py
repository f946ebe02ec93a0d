"""Growable numpy buffers that the live plots append training series to.

Events arrive in chunks of any size (one step, or a few hundred after a pause), so the
buffers over-allocate and double their capacity when full: appending is amortised O(k)
and the plots read contiguous views without copying. Each buffer counts its changes in
`version`, which lets a plot skip redrawing when nothing new arrived, and remembers
whether every value so far is finite, which lets pyqtgraph skip its finite check.

This module is Qt-free on purpose: the buffers are plain data, testable without a GUI.
"""

from __future__ import annotations

import numpy as np

_MIN_CAPACITY = 256


class SeriesBuffer:
    """A 1-D series (steps, losses, ...) that grows by appending arrays."""

    def __init__(self, dtype=np.float64, capacity: int = _MIN_CAPACITY):
        self._data = np.empty(max(int(capacity), 1), dtype=dtype)
        self.n = 0
        self.version = 0
        self.all_finite = True

    def __len__(self) -> int:
        return self.n

    @property
    def data(self) -> np.ndarray:
        """The filled part, as a view (valid until the next append)."""
        return self._data[: self.n]

    @property
    def last(self):
        return self._data[self.n - 1] if self.n else None

    def append(self, values) -> None:
        values = np.asarray(values, dtype=self._data.dtype).reshape(-1)
        k = len(values)
        if not k:
            return
        self._reserve(self.n + k)
        self._data[self.n : self.n + k] = values
        self.n += k
        if self.all_finite and self._data.dtype.kind == "f" and not np.isfinite(values).all():
            self.all_finite = False
        self.version += 1

    def clear(self) -> None:
        self.n = 0
        self.all_finite = True
        self.version += 1

    def _reserve(self, needed: int) -> None:
        if needed <= len(self._data):
            return
        capacity = len(self._data)
        while capacity < needed:
            capacity *= 2  # doubling keeps appends amortised O(1) per value
        grown = np.empty(capacity, dtype=self._data.dtype)
        grown[: self.n] = self._data[: self.n]
        self._data = grown


class LayerBuffer:
    """A per-layer series: `rows` layers × a growing number of steps.

    Stored layer-major (rows × steps) so that one layer's series is a contiguous row —
    what a curve's setData wants — and the whole array is already the layers × steps
    image a heatmap shows. Events deliver (steps × layers) chunks; `append` transposes.
    """

    def __init__(self, rows: int = 0, dtype=np.float32, capacity: int = _MIN_CAPACITY):
        self.rows = int(rows)
        self._data = np.empty((self.rows, max(int(capacity), 1)), dtype=dtype)
        self.n = 0
        self.version = 0
        self.all_finite = True

    def __len__(self) -> int:
        return self.n

    @property
    def data(self) -> np.ndarray:
        """The filled part, (rows, n), as a view (valid until the next append)."""
        return self._data[:, : self.n]

    def append(self, chunk) -> None:
        """Append a (k, rows) chunk — steps along the first axis, as events send them."""
        chunk = np.asarray(chunk)
        if chunk.ndim == 1:
            chunk = chunk.reshape(1, -1)
        if not len(chunk):
            return
        if self.n == 0 and chunk.shape[1] != self.rows:
            # The first chunk decides the width when the layers were not known up front.
            self.rows = chunk.shape[1]
            self._data = np.empty((self.rows, self._data.shape[1]), dtype=self._data.dtype)
        if chunk.shape[1] != self.rows:
            raise ValueError(f"expected {self.rows} layers per step, got {chunk.shape[1]}")
        self.write(self.n, chunk.T)

    def write(self, start: int, columns) -> None:
        """Overwrite from column `start` on (rows × k) and make that the end of the data.

        Used by the decimation pyramid, whose last block is rewritten while it fills.
        """
        columns = np.asarray(columns, dtype=self._data.dtype)
        k = columns.shape[1]
        end = start + k
        self._reserve(end)
        self._data[:, start:end] = columns
        self.n = end
        if self.all_finite and self._data.dtype.kind == "f" and not np.isfinite(columns).all():
            self.all_finite = False
        self.version += 1

    def clear(self, rows: int | None = None) -> None:
        if rows is not None and rows != self.rows:
            self.rows = int(rows)
            self._data = np.empty((self.rows, _MIN_CAPACITY), dtype=self._data.dtype)
        self.n = 0
        self.all_finite = True
        self.version += 1

    def _reserve(self, needed: int) -> None:
        if needed <= self._data.shape[1]:
            return
        capacity = self._data.shape[1]
        while capacity < needed:
            capacity *= 2
        grown = np.empty((self.rows, capacity), dtype=self._data.dtype)
        grown[:, : self.n] = self._data[:, : self.n]
        self._data = grown
