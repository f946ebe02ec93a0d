"""Page faults per training step in the main thread and in other threads (glibc arenas).

    .venv/bin/python benchmarks/heap_faults.py [--case resnet18] [--steps 10]

A thread other than the main one allocates from its own malloc arena, whose 64 MiB heaps
are unmapped as soon as they are free again, whatever MALLOC_TRIM_THRESHOLD_ says; so a
training thread faults its activation memory in again every step. Measured with
getrusage(RUSAGE_THREAD) around a warm fit (the engine, all monitors on). Re-executes itself
with ./dev's malloc settings, like train_overhead.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
if __name__ == "__main__" and any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
    os.environ.update(MALLOC_ENV)
    os.execv(sys.executable, [sys.executable, *sys.argv])

# ruff: noqa: E402  (imports after the re-exec on purpose)
import resource
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases import fit_timed, make_case, make_trainer


def measure(case, steps: int) -> tuple[float, float]:
    """(page faults, milliseconds) per step of a fit, after a warm-up fit in this thread."""
    fit_timed(make_trainer(case, 15, lambda event: None))
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    seconds = fit_timed(make_trainer(case, steps, lambda event: None))
    faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before
    return faults / steps, 1000 * seconds / steps


def in_thread(fn, *args):
    """Run fn in a new thread, with the OpenMP fix of run_in_worker but not the heap one."""
    import torch

    from studio.training.threads import training_threads, yield_cpus_to_workers

    yield_cpus_to_workers()
    box: dict = {}

    def work():
        torch.set_num_threads(training_threads())
        box["value"] = fn(*args)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    torch.set_num_threads(training_threads())  # the main thread's full count back
    return box["value"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="resnet18")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    case = make_case(args.case)
    from studio.training.threads import keep_thread_heaps

    rows = [("main thread", measure(case, args.steps))]
    rows.append(("thread, OpenMP fix only", in_thread(measure, case, args.steps)))
    keep_thread_heaps()  # the rest of what run_in_worker does (process-wide, for good)
    rows.append(("thread, OpenMP fix + keep_thread_heaps()", in_thread(measure, case, args.steps)))
    rows.append(("main thread again", measure(case, args.steps)))
    print(f"{case.title}, {args.steps} steps after a warm-up, {time.strftime('%Y-%m-%d')}\n")
    print("| where | page faults / step | ms / step |\n| --- | ---: | ---: |")
    for name, (faults, ms) in rows:
        print(f"| {name} | {faults:,.0f} | {ms:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
