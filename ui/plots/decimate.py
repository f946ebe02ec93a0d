"""Min/max/mean decimation of per-layer series, kept up to date as steps arrive.

A redraw must not touch every sample: 100 layers × 100,000 steps is ten million values,
and a reduction over all of them costs more than a frame. The pyramid keeps the series
reduced at block sizes 4, 16, 64, ... (minimum, maximum and mean of each block). An
append only recomputes the blocks it touched, and a redraw reads the coarsest level that
still has about one block per pixel column, then merges at most 4 blocks per column:
work proportional to the screen, not to the run.

Minimum and maximum keep spikes visible (the "peak" decimation pyqtgraph does, done
once instead of per frame); the mean colours the heatmap. Values are log10 already, so
the mean of a block is the log of the geometric mean, the honest average of magnitudes.
NaN marks a missing value (a zero norm has no logarithm) and is ignored by every
reduction unless a whole block is NaN.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ui.plots.buffers import LayerBuffer

FACTOR = 4  # samples per block from one level to the next
_TOP = 64  # stop adding levels once the coarsest has at most this many blocks


@dataclass
class Window:
    """A decimated piece of a per-layer series, ready to draw.

    `start[i]` is the base index of column i's first sample and `x[i]` its step; a column
    covers `block` base samples. `low`, `high`, `mean` are (layers × columns).
    """

    x: np.ndarray
    start: np.ndarray
    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    block: int
    all_finite: bool

    def __len__(self) -> int:
        return len(self.x)


def _groups(values: np.ndarray, r: int) -> np.ndarray:
    """(rows, n) → (rows, ceil(n / r), r), the short last group padded with NaN."""
    rows, n = values.shape
    groups = -(-n // r)
    if groups * r != n:
        padded = np.full((rows, groups * r), np.nan, dtype=values.dtype)
        padded[:, :n] = values
        values = padded
    return values.reshape(rows, groups, r)


def _strided(values: np.ndarray, r: int, op) -> np.ndarray:
    """op over consecutive groups of r columns of a NaN-free (rows, n) array.

    For the small r used here, r elementwise passes over strided views beat numpy's
    reduction over a short last axis (which also copies a non-contiguous slice first)
    several times over. The ragged last group takes what it has.
    """
    groups = -(-values.shape[1] // r)
    out = values[:, 0::r].copy()
    for k in range(1, r):
        part = values[:, k::r]
        width = part.shape[1]
        if width == groups:
            op(out, part, out=out)
        else:  # the last group is short and has no column k
            op(out[:, :width], part, out=out[:, :width])
    return out


def _mean_strided(values: np.ndarray, r: int) -> np.ndarray:
    groups = -(-values.shape[1] // r)
    total = values[:, 0::r].astype(np.float32, copy=True)
    count = np.ones(groups, dtype=np.float32)
    for k in range(1, r):
        part = values[:, k::r]
        width = part.shape[1]
        total[:, :width] += part
        count[:width] += 1
    return total / count


def _reduce3(low, high, mean, r: int, finite: bool):
    """Merge consecutive groups of r columns: min of lows, max of highs, mean of means."""
    if r == 1:
        return low, high, mean
    if finite:
        return (
            _strided(low, r, np.minimum),
            _strided(high, r, np.maximum),
            _mean_strided(mean, r),
        )
    # fmin/fmax ignore NaN (padding, zero norms) unless a whole group is NaN.
    return (
        np.fmin.reduce(_groups(low, r), axis=2),
        np.fmax.reduce(_groups(high, r), axis=2),
        _nanmean(_groups(mean, r)),
    )


def _nanmean(g: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        # An all-NaN block has no mean: NaN is the right answer, the warning is noise.
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(g, axis=2)


class _Level:
    def __init__(self, rows: int, block: int):
        self.block = block
        self.low = LayerBuffer(rows)
        self.high = LayerBuffer(rows)
        self.mean = LayerBuffer(rows)

    @property
    def n(self) -> int:
        return self.low.n


class Pyramid:
    """Keeps a LayerBuffer decimated at block sizes FACTOR**1, FACTOR**2, ..."""

    def __init__(self, base: LayerBuffer):
        self.base = base
        self.levels: list[_Level] = []
        self._synced = 0  # base samples already folded into the levels
        self._version = -1

    def clear(self) -> None:
        self.levels = []
        self._synced = 0
        self._version = -1

    def update(self) -> None:
        """Fold samples appended to the base since the last call into every level."""
        if self._version == self.base.version:
            return
        self._version = self.base.version
        n = self.base.n
        if n < self._synced:  # the base was cleared
            self.clear()
            self._version = self.base.version
        src_low = src_high = src_mean = self.base.data
        changed, src_n = self._synced, n
        self._synced = n
        for depth in range(64):
            if depth == len(self.levels):
                if src_n <= _TOP:
                    break
                self.levels.append(_Level(self.base.rows, FACTOR ** (depth + 1)))
                changed = 0  # a new level is built from the whole level below
            level = self.levels[depth]
            first = changed // FACTOR  # the block holding the first changed sample
            part = slice(first * FACTOR, src_n)
            lo, hi, mid = _reduce3(
                src_low[:, part], src_high[:, part], src_mean[:, part], FACTOR, finite=False
            )
            if lo.shape[1]:
                level.low.write(first, lo)
                level.high.write(first, hi)
                level.mean.write(first, mid)
            src_low, src_high, src_mean = level.low.data, level.high.data, level.mean.data
            changed, src_n = first, level.n

    def window(self, i0: int, i1: int, columns: int, steps: np.ndarray) -> Window:
        """Base samples [i0, i1) reduced to at most `columns` columns (about one per pixel)."""
        self.update()
        n = self.base.n
        i0, i1 = max(0, int(i0)), min(n, int(i1))
        columns = max(int(columns), 1)
        finite = self.base.all_finite
        if i1 <= i0:
            empty = np.zeros((self.base.rows, 0), dtype=np.float32)
            return Window(np.zeros(0), np.zeros(0, dtype=np.int64), empty, empty, empty, 1, True)
        # The finest level with at most FACTOR × columns blocks in the window; the last
        # step merges r of its blocks per column, aligned to multiples of r so columns do
        # not shift (and shimmer) as the window slides.
        block, low, high, mean = 1, self.base.data, self.base.data, self.base.data
        for level in self.levels:
            if math.ceil(i1 / block) - i0 // block <= FACTOR * columns:
                break
            block, low, high, mean = level.block, level.low.data, level.high.data, level.mean.data
        b0, b1 = i0 // block, math.ceil(i1 / block)
        r = max(1, math.ceil((b1 - b0) / columns))
        b0 = b0 // r * r
        b1 = min(low.shape[1], -(-b1 // r) * r)  # whole groups, unless the data ends
        lo, hi, mid = _reduce3(low[:, b0:b1], high[:, b0:b1], mean[:, b0:b1], r, finite)
        start = (b0 + np.arange(lo.shape[1]) * r) * block
        return Window(steps[start], start, lo, hi, mid, block * r, finite)


def envelope(window: Window) -> tuple[np.ndarray, np.ndarray]:
    """x and (layers × 2·columns) y tracing each column's maximum then minimum.

    The same shape pyqtgraph's peak downsampling draws; when a column is one sample the
    two points coincide and the line is the plain series.
    """
    rows, cols = window.low.shape
    if window.block == 1:
        return window.x.astype(np.float64), window.mean
    x = np.repeat(window.x.astype(np.float64), 2)
    y = np.empty((rows, cols, 2), dtype=window.low.dtype)
    y[:, :, 0] = window.high
    y[:, :, 1] = window.low
    return x, y.reshape(rows, cols * 2)
