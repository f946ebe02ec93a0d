"""Training batches read, decoded and augmented in DataLoader worker processes.

Batches (studio/data/prepare.py) decides every batch in the trainer: which samples (the
shuffled, balanced or sharded order of the epoch) and which augmentation seed. What the
workers do is the work itself, batch by batch: read the rows from the disk cache or
decode the files (data.storage), scale them and augment them. So a batch holds the same
samples, augmented the same way, whether one process reads it or four, and a resumed run
replays the same batches. This is torch's DataLoader as it is: automatic batching off
(each item is a whole batch), persistent workers, pinned memory when a GPU takes the
batches (the trainer copies them with non_blocking=True).

Workers are forked, so the data and the augmentation need no pickling; where fork is not
the platform's way (macOS, Windows) the trainer reads the batches itself.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from studio.errors import DataError

# An item of an epoch's plan: (batch number, sample indices, augmentation seed or None).
Item = tuple[int, torch.Tensor, int | None]
Problems = list[tuple[str, str]]  # (file, why) for images that failed to decode


def fetch(split, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Problems]:
    """A batch's samples and targets; samples whose file could not be decoded (streamed
    images) are left out and named."""
    read = getattr(split.x, "read", None)
    if read is None:
        return split.x[idx], split.y[idx], []
    x, problems = read(idx)
    y = split.y[idx]
    if problems:
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[[at for at, _, _ in problems]] = False
        x, y = x[keep], y[keep]
    return x, y, [(file, why) for _, file, why in problems]


def make_batch(split, transform: Callable | None, item: Item):
    number, idx, seed = item
    x, y, problems = fetch(split, idx)
    if transform is not None and len(y):
        x, y = transform(x, y, seed)
    return x, y, problems


class WorkerStopped(DataError):
    """A data.workers process died while the trainer waited for its batch."""


def worker_stopped(err: BaseException, reading: bool = False) -> str | None:
    """The sentence for a worker process that died (killed, out of memory), however torch
    reports it; None for other errors. `reading`: raised by the next batch itself, where
    a broken connection can only be a worker's (elsewhere it may be another process's)."""
    text = str(err).strip()
    if isinstance(err, WorkerStopped):
        return text
    if isinstance(err, RuntimeError) and text.startswith("DataLoader worker"):
        what = text.splitlines()[0].rstrip(". ")
    elif reading and isinstance(err, (ConnectionError, EOFError)):
        what = f"its connection broke: {type(err).__name__}"
    else:
        return None
    return (
        f"A data.workers process stopped while reading batches ({what}); lower "
        "data.workers, or set it to 0 to read the batches in the trainer."
    )


def can_fork() -> bool:
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


class _Failed:
    """An error a worker met, handed to the trainer as it was (DataLoader would wrap it
    in its own message and traceback), so the person reads the sentence it carries."""

    def __init__(self, error: Exception):
        self.error = error


class _Batch(Dataset):
    def __init__(self, split, transform):
        self.split, self.transform = split, transform

    def __getitem__(self, item: Item):
        try:
            return make_batch(self.split, self.transform, item)
        except Exception as err:
            return _Failed(err)


class _Plan(Sampler):
    """The epoch's items, set by the trainer before each epoch (iterated there)."""

    def __init__(self):
        self.items: list[Item] = []

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def _iterate(loader: DataLoader):
    """iter(loader), without torch's SIGCHLD handler: in the main thread it raises a dead
    worker's error from whatever line the process is on (a log's close, the CLI's own
    print), where no one can turn it into a sentence. Without it torch finds the dead
    worker when the next batch does not come, and says so from next()."""
    with warnings.catch_warnings():
        # More workers than cores is the person's choice (data.workers); torch's
        # multi-line advice about it would only clutter the run's output.
        warnings.filterwarnings("ignore", "This DataLoader will create", UserWarning)
        if threading.current_thread() is not threading.main_thread():
            return iter(loader)  # torch installs no handler outside the main thread
        before = signal.getsignal(signal.SIGCHLD)
        batches = iter(loader)
        signal.signal(signal.SIGCHLD, before)
        return batches


def _quiet_worker(worker_id: int) -> None:
    """In a worker: Ctrl-C is the trainer's to handle (it stops the run and ends the
    workers); a worker that inherited the CLI's handler would say so once more each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class WorkerBatches:
    """A persistent pool of `workers` processes making the batches of a plan, in order."""

    def __init__(self, split, transform, workers: int, pin: bool):
        self.plan = _Plan()
        self.loader = DataLoader(
            _Batch(split, transform),
            batch_size=None,
            sampler=self.plan,
            num_workers=workers,
            pin_memory=pin,
            persistent_workers=True,
            prefetch_factor=2,
            multiprocessing_context="fork",
            worker_init_fn=_quiet_worker,
            # Its own generator: otherwise each epoch's workers draw their seed from the
            # global generator, which dropout draws from, and a run with workers would
            # train differently from one without (and resume differently).
            generator=torch.Generator(),
        )

    def run(self, items: list[Item]) -> Iterator:
        self.plan.items = items
        batches = _iterate(self.loader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (RuntimeError, ConnectionError, EOFError) as err:  # a worker killed or crashed
                sentence = worker_stopped(err, reading=True)
                if sentence is None:
                    raise
                raise WorkerStopped(sentence) from None
            if isinstance(batch, _Failed):
                raise batch.error
            yield batch

    def close(self) -> None:
        self.loader = None  # the persistent workers end with their iterator
