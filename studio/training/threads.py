"""Running training off the calling thread at full speed: `run_in_worker`.

PyTorch's CPU kernels run on OpenMP (GNU libgomp in the Linux wheels), and libgomp keeps
one team of helper threads per thread that ever ran a parallel region. Once the main
thread has run a parallel torch op (preparing data, building a model, anything on more
than ~32k elements), its helpers stay alive; a training thread then makes a second team,
libgomp's count of its threads exceeds the CPUs, and every wait drops from ~300,000 spins
(~3 ms) to 100 before sleeping in the kernel, so the training thread's helpers must be
woken by a syscall for every parallel op. Small models, which run many short parallel ops
a step, then train 3-7x slower than in the main thread; OMP_WAIT_POLICY and
GOMP_SPINCOUNT cannot lift that cap (benchmarks/omp_threads.py, docs/benchmarks.md).

glibc's malloc adds a second, smaller cost: a thread other than the main one allocates
from its own arena of 64 MiB heaps, and a heap whose memory is all free again is unmapped
at once (MALLOC_TRIM_THRESHOLD_ only governs the main arena). A training step frees its
activations, so the next step faults the same pages in again: ~2,300 page faults a step on
resnet18 at 64x64, 2-3% of its speed. A top pad of one heap keeps them mapped.

`run_in_worker(fn)` is how the window (or anything else) should start training: it gives
the calling thread's OpenMP helpers back to the system, keeps that thread's own torch ops
on one thread from then on (they are small: a GUI's previews), keeps thread heaps mapped,
and runs `fn` in a new thread with the intra-op thread count the process started with.
Training there runs as fast as in the CLI's main thread, and its losses are bit-identical.
On Linux that thread also gives way to the GUI thread when both want a core
(`yield_to_the_gui`: SCHED_BATCH), which a machine short of CPU needs to keep painting.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable
from typing import Any

import torch

from studio.cpus import fit_torch_threads

OMP_PAUSE_SOFT = 1
M_TOP_PAD = -2  # mallopt parameter (glibc malloc.h)
HEAP_PAD = 64 << 20  # glibc's per-thread heaps are at most 64 MiB: keep a whole one

_lock = threading.Lock()
_training_threads: int | None = None


def _libgomp_paths() -> list[str]:
    """Paths of the GNU OpenMP runtimes loaded in this process (torch's, and any other)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            found = {
                line.split(None, 5)[5].strip()
                for line in maps
                if "libgomp" in line and len(line.split(None, 5)) == 6
            }
    except OSError:  # not Linux: no libgomp (macOS wheels use libomp, Windows MSVC's)
        return []
    return sorted(p for p in found if os.path.basename(p).startswith("libgomp"))


def release_openmp_threads() -> int:
    """End the calling thread's idle OpenMP helper threads; returns how many runtimes did.

    `omp_pause_resource_all(omp_pause_soft)` (OpenMP 5.0) frees the calling thread's
    team; it is recreated if that thread runs a parallel region again. Must not be called
    inside a parallel region (it then does nothing).
    """
    released = 0
    for path in _libgomp_paths():
        try:
            lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_LOCAL)
            pause = lib.omp_pause_resource_all
        except (OSError, AttributeError):
            continue
        pause.argtypes = [ctypes.c_int]
        pause.restype = ctypes.c_int
        if pause(OMP_PAUSE_SOFT) == 0:
            released += 1
    return released


def training_threads() -> int:
    """The intra-op thread count training threads get: torch's, as first seen here,
    lowered to a CPU quota (`studio.cpus.fit_torch_threads`)."""
    global _training_threads
    with _lock:
        if _training_threads is None:
            _training_threads = fit_torch_threads()
        return _training_threads


def yield_cpus_to_workers() -> None:
    """Keep the calling thread's torch ops on one thread and free its OpenMP helpers.

    Afterwards only training threads own OpenMP teams, so libgomp keeps spinning instead
    of sleeping between their parallel ops. The calling thread can still use torch. Call
    it first in any other thread that uses torch while training runs (a data preview):
    `use_all_cpus` in the training thread makes the full count the default again.
    """
    training_threads()  # remember the full count before lowering it
    torch.set_num_threads(1)  # this thread's OpenMP and MKL counts (and the default)
    torch.get_num_threads()  # this thread's lazy init is done: it stays at 1
    release_openmp_threads()


def keep_thread_heaps() -> bool:
    """Stop glibc from unmapping a thread's freed malloc heaps (M_TOP_PAD); False: no glibc.

    Process-wide and harmless in the main arena, which then keeps up to 64 MiB of free
    memory at its top instead of returning it (./dev's MALLOC_TRIM_THRESHOLD_ keeps more).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, Windows)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(M_TOP_PAD, HEAP_PAD) == 1


def use_all_cpus() -> None:
    """Set up the calling (training) thread: all intra-op threads, heaps kept, and second
    place to the GUI when both want a CPU (`yield_to_the_gui`); call it first."""
    keep_thread_heaps()
    yield_to_the_gui()
    torch.set_num_threads(training_threads())


def yield_to_the_gui() -> None:
    """Linux: the calling thread, and the threads it starts (its OpenMP helpers, data
    workers), run as SCHED_BATCH: the same share of the CPU against other processes as
    before, but a GUI thread that wakes up no longer waits for their time slice to end.
    On a machine with less CPU than training wants (a 2-core laptop; one core's worth of
    quota over two cores, measured) a paint waited behind training's threads: event-loop
    stalls of 180-240 ms, 100 ms with this. Elsewhere, or where it is refused, nothing."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_BATCH, os.sched_param(0))


class Worker:
    """A started `run_in_worker` thread: `done` is set when `fn` returned or raised."""

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict, name: str):
        self.done = threading.Event()
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._value: Any = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            use_all_cpus()
            self._value = self._fn(*self._args, **self._kwargs)
        except BaseException as err:  # handed to whoever asks for the result
            self._error = err
        finally:
            self.done.set()

    def result(self, timeout: float | None = None) -> Any:
        """Wait for `fn` and return its value, or raise what it raised."""
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError(f"{self.thread.name} is still running")
        if self._error is not None:
            raise self._error
        return self._value

    def is_alive(self) -> bool:
        return self.thread.is_alive()


def run_in_worker(
    fn: Callable[..., Any], *args: Any, name: str = "studio-training", **kwargs: Any
) -> Worker:
    """Run `fn(*args, **kwargs)` in a new thread set up for fast torch, and return at once.

    Call it from the thread that stays responsive (the GUI thread): that thread keeps one
    intra-op thread from now on and its OpenMP helpers are freed (`yield_cpus_to_workers`);
    the new thread gets the process's full intra-op count (`use_all_cpus`). A Trainer
    built in `fn` calls its listeners in the new thread: hand events to the GUI thread
    (a queue, a queued Qt signal) instead of touching widgets there. With a QThread of
    your own, call `yield_cpus_to_workers()` before starting it and `use_all_cpus()`
    first thing in it: that is all this function adds.
    """
    yield_cpus_to_workers()
    worker = Worker(fn, args, kwargs, name)
    worker.thread.start()
    return worker


def import_training_modules() -> None:
    """Import, in the calling thread, what a first training run would import in its worker.

    A module import that loads a C extension holds the GIL until it is done: importing
    torch._dynamo (which the first optimizer pulls in) and scikit-learn's dataset and split
    modules took ~1.6 s of the worker's first seconds, in stretches that froze the window's
    event loop for 130-230 ms. The window calls this before it shows itself.
    """
    import safetensors.torch  # noqa: F401  (run folders)
    import sklearn.datasets  # noqa: F401  (the digits sample)
    import sklearn.model_selection  # noqa: F401  (splits)

    # The optimizer's first construction imports torch._dynamo; do it on a scalar.
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
