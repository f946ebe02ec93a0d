"""Training beside other busy processes: one intra-op thread or all of them?

    .venv/bin/python benchmarks/threads_under_load.py [--loads 0,0.25,0.5,1,2]
        [--threads 1,2] [--seconds 4] [--rounds 2] [--projects digits_cnn,deep_sigmoid_mlp]

For each load, spinner processes keep that many CPUs' worth of time busy (a load of 0.5:
one process spinning 10 ms of every 20); meanwhile `studio train`'s loop (the engine in a
fresh process's main thread, OMP_NUM_THREADS fixing its thread count) trains each project
for `--seconds`, thread counts taking turns (1, 2, then 2, 1 …). The table gives the
median steps/s of the rounds, and what `studio.cpus.busy_elsewhere` saw of the load and
the thread count `free_threads` picks from it (what a run starting then would use).
Results: docs/benchmarks.md ("Training beside busy processes").
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LATENCY = ROOT / "benchmarks" / "gui_latency.py"  # its --headless mode is the CLI's loop
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
PERIOD = 0.02  # a spinner's cycle: busy for duty × PERIOD, then asleep


def spin(duty: float) -> None:
    while True:
        start = time.perf_counter()
        while time.perf_counter() - start < duty * PERIOD:
            pass
        if duty < 1:
            time.sleep((1 - duty) * PERIOD)


def spinners(load: float) -> list[multiprocessing.Process]:
    count = math.ceil(load - 1e-9)
    procs = [
        multiprocessing.Process(target=spin, args=(load / count,), daemon=True)
        for _ in range(count)
    ]
    for p in procs:
        p.start()
    return procs


def steps_per_second(project: Path, threads: int, seconds: float) -> float:
    env = {**os.environ, **MALLOC_ENV, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(
        [sys.executable, str(LATENCY), "--headless", "--project", str(project)]
        + ["--seconds", str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", default="0,0.25,0.5,1,2")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--projects", default="digits_cnn,deep_sigmoid_mlp")
    args = parser.parse_args()
    from studio.cpus import busy_elsewhere, free_threads, usable_cpus

    loads = [float(x) for x in args.loads.split(",")]
    counts = [int(x) for x in args.threads.split(",")]
    projects = [ROOT / "resources/examples" / f"{p}.json" for p in args.projects.split(",")]
    print(f"{usable_cpus()} usable CPUs; {args.seconds:.0f} s per run, {args.rounds} rounds")
    header = ["load", "seen", "picks"] + [f"{p.stem} {t} thr" for p in projects for t in counts]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for load in loads:
        procs = spinners(load) if load > 0 else []
        try:
            time.sleep(0.5)
            seen = busy_elsewhere(looks=10)
            picks = free_threads(max(counts), seen)
            cells = []
            for project in projects:
                rates: dict[int, list[float]] = {t: [] for t in counts}
                for r in range(args.rounds):
                    for t in counts if r % 2 == 0 else reversed(counts):
                        rates[t].append(steps_per_second(project, t, args.seconds))
                cells += [f"{statistics.median(rates[t]):.0f}" for t in counts]
        finally:
            for p in procs:
                p.terminate()
        print(f"| {load:g} | {seen:.2f} | {picks} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
