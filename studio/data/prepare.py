"""From a project's data section to ready batches: load, filter, split, scale, reshape.

Scaling statistics (z-score mean/std, CSV min/max) come from the training split only, so
nothing about the validation or test data leaks into training.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from studio.data.balance import BalancedDraws
from studio.data.decode import named
from studio.data.loader import WorkerBatches, can_fork, make_batch
from studio.data.resampling import Fold, fold_samples
from studio.data.sources import DataError, RawData, SourceRequest
from studio.shapes_text import describe

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_sources: dict | None = None
_lock = threading.Lock()


def data_sources() -> dict:
    """Every data source's load function, built-in or from a plugin, by name.

    They come from the dataset catalog (studio/data/datasets.py), where a broken plugin is
    recorded and skipped as a broken layer or augmentation plugin is.
    """
    global _sources
    with _lock:
        if _sources is None:
            from studio.data.datasets import dataset_catalog

            _sources = {source.name: source.load for source in dataset_catalog()}
        return _sources


class Samples:
    """Samples decoded as uint8 into a disk cache (data.storage, studio/data/cache.py),
    made float, scaled and shaped a batch at a time: RAM holds the batch, not the split.

    It answers what training and evaluation ask of a split's samples tensor: indexing
    (a number, a slice or sample numbers), len, shape, per-channel amin/amax (computed
    in chunks) and numpy() (the whole split: for small previews only).
    """

    dtype = torch.float32
    device = torch.device("cpu")
    CHUNK = 1024

    def __init__(self, storage: torch.Tensor, rows: torch.Tensor, scale, sample_shape):
        self.storage, self.rows, self.scale = storage, rows, scale
        self.sample_shape = tuple(sample_shape)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.sample_shape)

    def dim(self) -> int:
        return 1 + len(self.sample_shape)

    def numel(self) -> int:
        return int(np.prod(self.shape))

    def element_size(self) -> int:
        return 4

    def __getitem__(self, idx) -> torch.Tensor:
        one = isinstance(idx, (int, np.integer)) or (torch.is_tensor(idx) and idx.dim() == 0)
        rows = self.rows[idx].reshape(-1)
        x = self.scale(self.storage[rows]).reshape(len(rows), *self.sample_shape)
        return x[0] if one else x

    def read(self, idx) -> tuple[torch.Tensor, list[tuple[int, str, str]]]:
        """The samples, and [(position, file, why)] for those whose file failed to decode
        (streamed images: studio/data/stream.py); theirs are zeros, for the caller to drop."""
        rows = self.rows[idx].reshape(-1)
        # A cache or the files (studio/data/cache.py ImageRows); a plugin's plain tensor.
        read = getattr(self.storage, "read", None)
        pixels, problems = read(rows) if read is not None else (self.storage[rows], [])
        return self.scale(pixels).reshape(len(rows), *self.sample_shape), problems

    def _reduce(self, fn, dims) -> torch.Tensor:
        parts = [fn(self[i : i + self.CHUNK], dims) for i in range(0, len(self), self.CHUNK)]
        return fn(torch.stack(parts), 0)

    def amin(self, dims) -> torch.Tensor:
        return self._reduce(torch.amin, dims)

    def amax(self, dims) -> torch.Tensor:
        return self._reduce(torch.amax, dims)

    def numpy(self) -> np.ndarray:
        return self[:].numpy()


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor
    # Each sample's position in the data before splitting (PreparedData.origins names it).
    index: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Scaling:
    """The affine map from the source's values to the network's input: input = value ×
    multiply + add, per channel (images) or feature (tables), or one number for all."""

    kind: str  # data.scaling: none | unit | symmetric | zscore | imagenet
    multiply: list[float]
    add: list[float]
    per: str  # "channel", "feature" or "all"
    value_range: tuple[float, float] | None = None  # the source's values (pixels: 0–255)

    @classmethod
    def of(cls, kind: str, scale, sample_shape: tuple[int, ...], value_range) -> Scaling:
        """Read off the scaler itself (every scaling is affine): f(0) is what it adds,
        f(1) - f(0) what it multiplies by."""
        zero = scale(torch.zeros(1, *sample_shape)).reshape(sample_shape).double()
        one = scale(torch.ones(1, *sample_shape)).reshape(sample_shape).double()
        mul, add = one - zero, zero
        if (mul == mul.flatten()[0]).all() and (add == add.flatten()[0]).all():
            per, mul, add = "all", mul.flatten()[:1], add.flatten()[:1]
        elif len(sample_shape) == 3 and _constant_within_channels(mul, add):
            per, mul, add = "channel", mul[:, 0, 0], add[:, 0, 0]
        else:
            per, mul, add = "feature", mul.flatten(), add.flatten()
        span = None if value_range is None else (float(value_range[0]), float(value_range[1]))
        return cls(kind, [float(v) for v in mul], [float(v) for v in add], per, span)


def _constant_within_channels(mul: torch.Tensor, add: torch.Tensor) -> bool:
    return bool((mul == mul[:, :1, :1]).all() and (add == add[:, :1, :1]).all())


@dataclass
class PreparedData:
    train: Split
    validation: Split
    test: Split
    classes: list[str]
    sample_shape: tuple[int, ...]
    description: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)  # per sample before splitting
    scaling: Scaling | None = None  # what turns the source's values into the network's input

    def origin(self, split: Split, i: int) -> str:
        """Where the i-th sample of a split came from (a file, a CSV line, a number)."""
        at = int(split.index[i]) if split.index is not None else i
        return self.origins[at] if at < len(self.origins) else f"sample #{at}"

    @property
    def is_classification(self) -> bool:
        return bool(self.classes)

    def report(self) -> str:
        """The first line says what the data is and how it is split; each further line (a
        note, the skipped files) is one the person must see even when output is quiet."""
        lines = [
            f"{self.description}. Split: {len(self.train):,} train, {len(self.validation):,} validation, "
            f"{len(self.test):,} test; samples {describe(self.sample_shape)}.",
            *self.notes,
        ]
        if self.skipped:
            names = "; ".join(f"{named(f)} ({why})" for f, why in self.skipped[:5])
            more = f" and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
            lines.append(f"Skipped {len(self.skipped)} file(s): {names}{more}.")
        return "\n".join(lines)


def load_raw(
    settings: dict,
    input_shape: tuple[int, ...],
    base: Path = Path("."),
    progress: Callable[[int, int], None] | None = None,
) -> RawData:
    """The data as its source gives it, classes kept as data.classes says, checked usable:
    what every run of an experiment shares (loaded once for all of them)."""
    sources = data_sources()
    if settings["source"] not in sources:
        raise DataError(
            f"Field 'data.source': unknown source '{settings['source']}' (known: {', '.join(sources)})."
        )
    raw = sources[settings["source"]](SourceRequest(settings, base, tuple(input_shape), progress))
    raw = _keep_classes(raw, settings["classes"])
    _check_usable(raw, settings["source"])
    return raw


def prepare_data(
    settings: dict,
    input_shape: tuple[int, ...],
    seed: int,
    base: Path = Path("."),
    progress: Callable[[int, int], None] | None = None,
    *,
    raw: RawData | None = None,
    fold: Fold | None = None,
) -> PreparedData:
    """Ready splits. `fold`: one run of a k-fold, bootstrap or leave-one-out experiment
    (studio/data/resampling.py): the test split is cut as always, and the fold picks the
    training and validation samples from the rest, in place of data.validation."""
    if raw is None:
        raw = load_raw(settings, input_shape, base, progress)
    classify = bool(raw.classes)
    if fold is None:
        train_idx, val_idx, test_idx = split_indices(
            raw.y, settings["validation"], settings["test"], seed, classify
        )
    else:
        rest, _, test_idx = split_indices(raw.y, 0.0, settings["test"], seed, classify)
        labels = raw.y[rest].numpy() if classify else None
        train_at, val_at = fold_samples(len(rest), labels, fold, seed)
        train_idx, val_idx = rest[train_at], rest[val_at]
    if raw.rows is not None:  # decoded into a disk cache: scaled a batch at a time
        shape = _shape_for(tuple(raw.x.shape[1:]), input_shape, settings["source"])
        scale = _lazy_scaler(settings["scaling"], raw.x, raw.rows[train_idx], raw.value_range)

        def part(idx) -> Split:
            idx = torch.as_tensor(idx, dtype=torch.int64)
            return Split(Samples(raw.x, raw.rows[idx], scale, shape), raw.y[idx], idx)

    else:
        x = raw.x.float()
        scale = _scaler(settings["scaling"], x[train_idx], raw.value_range)
        x = _reshape(scale(x), input_shape, settings["source"])

        def part(idx) -> Split:
            return Split(x[idx], raw.y[idx], torch.as_tensor(idx, dtype=torch.int64))

    return PreparedData(
        part(train_idx),
        part(val_idx),
        part(test_idx),
        raw.classes,
        tuple(input_shape),
        raw.description,
        raw.skipped,
        raw.notes,
        list(raw.origins),
        Scaling.of(settings["scaling"], scale, tuple(raw.x.shape[1:]), raw.value_range),
    )


def _check_usable(raw: RawData, source: str) -> None:
    """What the built-in sources refuse with a file and line, refused for any source
    (plugins included), by sample number: one class, or a value training cannot use."""
    if len(raw.classes) == 1:
        raise DataError(
            f"The {source} data ({raw.description}) has only one class, '{raw.classes[0]}'; "
            "classification needs at least two classes."
        )
    for name, values in (("sample", raw.x), ("target", raw.y)):
        if values.is_floating_point() and not bool(torch.isfinite(values).all()):
            bad = (~torch.isfinite(values)).reshape(len(values), -1).any(1).nonzero()[0, 0]
            raise DataError(
                f"The {source} data ({raw.description}) has a NaN or infinite value in {name} "
                f"{int(bad)} (counting from 0); training needs finite numbers."
            )


def _keep_classes(raw: RawData, keep: list[int]) -> RawData:
    if not keep:
        return raw
    missing = [k for k in keep if k >= len(raw.classes)]
    if missing:
        raise DataError(
            f"Field 'data.classes': class {missing[0]} does not exist; the data has {len(raw.classes)} classes."
        )
    if len(set(keep)) == 1:
        raise DataError(
            f"Field 'data.classes' keeps only class {keep[0]} ('{raw.classes[keep[0]]}'); "
            "classification needs at least two classes."
        )
    mask = torch.isin(raw.y, torch.tensor(keep))
    remap = torch.full((len(raw.classes),), -1, dtype=torch.int64)
    remap[torch.tensor(keep)] = torch.arange(len(keep))
    if raw.rows is not None:  # a disk cache: the same file, fewer rows
        return replace(
            raw,
            y=remap[raw.y[mask]],
            rows=raw.rows[mask],
            classes=[raw.classes[k] for k in keep],
            description=raw.description + f" (classes {', '.join(raw.classes[k] for k in keep)})",
            origins=[o for o, m in zip(raw.origins, mask.tolist()) if m] if raw.origins else [],
        )
    return RawData(
        raw.x[mask],
        remap[raw.y[mask]],
        [raw.classes[k] for k in keep],
        raw.value_range,
        raw.skipped,
        raw.description + f" (classes {', '.join(raw.classes[k] for k in keep)})",
        raw.notes,
        [o for o, m in zip(raw.origins, mask.tolist()) if m] if raw.origins else [],
    )


def split_indices(y: torch.Tensor, validation: float, test: float, seed: int, stratify: bool):
    """Train/validation/test indices; stratified by class so small classes appear in each."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    if validation + test >= 0.95:
        raise DataError(
            "Fields 'data.validation' + 'data.test' leave almost nothing to train on; keep their sum below 0.95."
        )
    everything = np.arange(n)
    labels = y.numpy() if stratify else None

    def cut(idx, fraction, state):
        if fraction <= 0:
            return idx, idx[:0]
        strat = (
            labels[idx]
            if labels is not None and np.bincount(labels[idx]).min(initial=2) >= 2
            else None
        )
        return train_test_split(idx, test_size=fraction, random_state=state, stratify=strat)

    rest, test_idx = cut(everything, test, seed)
    train_idx, val_idx = cut(rest, validation / (1 - test) if validation else 0, seed + 1)
    return (
        torch.as_tensor(np.sort(train_idx)),
        torch.as_tensor(np.sort(val_idx)),
        torch.as_tensor(np.sort(test_idx)),
    )


def _lazy_scaler(kind: str, storage: torch.Tensor, train_rows: torch.Tensor, value_range):
    """The scaling of a disk-cached split, as _scaler scales (z-score statistics summed
    over the training rows a chunk at a time): uint8 in, float out, one multiply-add
    per channel done in place, so a batch costs one copy."""
    channels = storage.shape[1]
    lo, hi = value_range if value_range is not None else (0.0, 255.0)
    span = (hi - lo) or 1.0
    if kind == "none":
        scale, shift = torch.ones(channels), torch.zeros(channels)
    elif kind in ("unit", "symmetric", "imagenet"):
        scale, shift = torch.full((channels,), 1 / span), torch.full((channels,), -lo / span)
        if kind == "symmetric":
            scale, shift = scale * 2, shift * 2 - 1
        elif kind == "imagenet":
            _scaler(kind, storage[train_rows[:1]].float(), value_range)  # its refusals
            mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
            scale, shift = scale / std, (shift - mean) / std
    elif kind == "zscore":
        mean, std = _channel_stats(storage, train_rows)
        scale, shift = 1 / std, -mean / std
    else:
        raise DataError(f"Field 'data.scaling': unknown scaling '{kind}'.")
    view = (-1,) + (1,) * (storage.dim() - 2)
    scale, shift = scale.float().view(view), shift.float().view(view)

    def apply(x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float32).mul_(scale).add_(shift)

    return apply


def _channel_stats(storage: torch.Tensor, rows: torch.Tensor) -> tuple:
    """Per-channel mean and standard deviation (n - 1) of the given rows, a chunk at a time."""
    total = torch.zeros(storage.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    count = 0
    dims = (0, *range(2, storage.dim()))
    for start in range(0, len(rows), Samples.CHUNK):
        chunk = storage[torch.sort(rows[start : start + Samples.CHUNK]).values].double()
        total += chunk.sum(dims)
        squares += (chunk * chunk).sum(dims)
        count += chunk.numel() // chunk.shape[1]
    mean = total / max(count, 1)
    var = (squares / max(count, 1) - mean * mean).clamp_min(0) * count / max(count - 1, 1)
    return mean, var.sqrt().clamp_min(1e-6)


def _scaler(kind: str, train_x: torch.Tensor, value_range):
    if kind == "none":
        return lambda x: x
    if value_range is not None:
        lo, hi = value_range
    else:  # tables: per-feature range of the training split
        lo, hi = train_x.amin(0), train_x.amax(0)
    span = hi - lo
    span = torch.where(torch.as_tensor(span) > 0, torch.as_tensor(span), torch.ones(()))

    def unit(x):
        return (x - lo) / span

    if kind == "unit":
        return unit
    if kind == "symmetric":
        return lambda x: unit(x) * 2 - 1
    if kind == "zscore":
        # Per channel for images, per feature otherwise.
        dims = (0, 2, 3) if train_x.dim() == 4 else (0,)
        mean = train_x.mean(dims, keepdim=True)[0]
        std = train_x.std(dims, keepdim=True)[0].clamp_min(1e-6)
        return lambda x: (x - mean) / std
    if kind == "imagenet":
        if train_x.dim() != 4 or train_x.shape[1] != 3:
            raise DataError(
                "Field 'data.scaling': imagenet statistics need RGB images (3 channels); use unit or zscore."
            )
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        return lambda x: (unit(x) - mean) / std
    raise DataError(f"Field 'data.scaling': unknown scaling '{kind}'.")


def _reshape(x: torch.Tensor, input_shape: tuple[int, ...], source: str) -> torch.Tensor:
    shape = _shape_for(tuple(x.shape[1:]), input_shape, source)
    return x.reshape(len(x), *shape).contiguous()


def _shape_for(sample: tuple[int, ...], input_shape: tuple[int, ...], source: str) -> tuple:
    """The shape samples take for the Input layer: theirs, or the Input's when only the
    layout differs (e.g. digits 1×8×8 read as 64 features or 8 steps of 8)."""
    if sample == tuple(input_shape) or int(np.prod(sample)) == int(np.prod(input_shape)):
        return tuple(input_shape)
    raise DataError(
        f"The Input layer expects samples of {describe(input_shape)} but the {source} data gives "
        f"{describe(sample)} ({int(np.prod(sample))} values); set the Input shape to {list(sample)}."
    )


def on_device(
    data: PreparedData, device: torch.device, free_bytes: int | None = None
) -> PreparedData:
    """The splits moved to a GPU once, when they take at most a quarter of its free memory.

    Every source decodes into memory, so a GPU run would otherwise copy each batch from
    pageable host memory (a synchronous copy per step, the bulk of a small model's step).
    Too big, or on the CPU: the data as it was.
    """
    if device.type == "cpu" or isinstance(data.train.x, Samples):
        return data  # (a disk cache's batches are copied to the GPU one at a time)
    splits = (data.train, data.validation, data.test)
    size = sum(s.x.numel() * s.x.element_size() + s.y.numel() * s.y.element_size() for s in splits)
    if free_bytes is None:
        free_bytes = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else 0
    if size > free_bytes // 4:
        return data
    moved = [Split(s.x.to(device), s.y.to(device), s.index) for s in splits]
    return replace(data, train=moved[0], validation=moved[1], test=moved[2])


class Batches:
    """Mini-batches from in-memory tensors, shuffled by a private generator.

    The generator is private so that shuffling never touches the global RNG (which
    dropout uses); its state at the start of an epoch is what a resumed run needs to
    replay the same order.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        shuffle: bool,
        seed: int,
        transform: Callable[[torch.Tensor, torch.Tensor, int], tuple] | None = None,
        balanced: bool = False,
        world=None,
        workers: int = 0,
        pin: bool = False,
    ):
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        # Training batches only (augmentation): transform(x, y, seed) -> (x, y).
        self.transform = transform
        # training.sampling=balanced: every class drawn equally often, from this generator.
        self.balanced = BalancedDraws(split.y) if balanced else None
        # Several data-parallel processes (studio/training/distributed.py): every one
        # draws the same order and takes its shard of each batch, as DistributedSampler
        # shards an epoch; batch_size is the batch of all of them together.
        self.world = world
        # data.workers: processes that read, decode and augment the batches of data kept
        # out of RAM (studio/data/loader.py); in-memory data is sliced faster here.
        self.workers = workers if isinstance(split.x, Samples) and can_fork() else 0
        self.pin = pin
        self._pool = None
        # Files that failed to decode while training (streamed images): path -> why.
        self.unreadable: dict[str, str] = {}
        self.next_number = 0

    def __len__(self) -> int:
        return (len(self.split) + self.batch_size - 1) // self.batch_size

    def epoch(self, skip: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.split)
        # Each batch's transform seed follows from the epoch's generator state (read, not
        # drawn from, so the shuffle order is the same with or without a transform), and
        # a run resumed mid-epoch draws the same augmentations for the batches it replays.
        key = _state_key(self.generator) if self.transform else 0
        if self.balanced is not None:
            order = self.balanced.draw(n, self.generator)
        else:
            if self.transform is not None and not self.shuffle:
                torch.rand((), generator=self.generator)  # move on: the next epoch draws anew
            order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.split.x.device)  # data kept on a GPU is indexed there
        # Each process its own augmentation stream (rank 0's is a lone process's).
        rank = self.world.rank if self.world is not None else 0
        plan = []
        for number, start in enumerate(range(skip * self.batch_size, n, self.batch_size), skip):
            idx = order[start : start + self.batch_size]
            if self.world is not None and self.world.active:
                idx = self.world.shard(idx)
            seed = (key + number) ^ (rank << 40) if self.transform is not None else None
            plan.append((number, idx, seed))
        if self.workers:
            if self._pool is None:
                self._pool = WorkerBatches(self.split, self.transform, self.workers, self.pin)
            made = self._pool.run(plan)
        else:
            made = (make_batch(self.split, self.transform, item) for item in plan)
        for (number, _, _), (x, y, problems) in zip(plan, made):
            # The planned batch after this one: where a resumed run picks up, even when
            # batches whose files all failed were passed over.
            self.next_number = number + 1
            if problems:
                self.unreadable.update(problems)
                if not len(y) and not (self.world is not None and self.world.active):
                    continue  # every file of the batch failed (with several processes,
                    # an empty shard still takes its part in the step)
            yield x, y

    def close(self) -> None:
        """End the worker processes, if any (they persist from epoch to epoch)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def _state_key(generator: torch.Generator) -> int:
    digest = hashlib.blake2b(generator.get_state().numpy().tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 2  # below 2**62: room to add batch numbers
