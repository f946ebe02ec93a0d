"""Where should training run? The raw PyTorch loop, placed in different threads/processes.

    .venv/bin/python benchmarks/omp_threads.py [--cases mlp,deep,cnn] [--rounds 4]
        [--variants main,thread,...]

Each variant runs in a fresh process (OpenMP's state is per process and never shrinks on
its own), doing a warm-up and then `--runs` timed runs of the hand-written loop from
cases.py; the parent interleaves the processes (main, v1, v2, …, then reversed) and reports
the median over rounds of variant ÷ main steps/s. `main` is the CLI: the loop in the
process's main thread.

Variants:
  main          loop in the main thread (the reference)
  main-1        main thread, torch.set_num_threads(1)
  main-passive  main thread, OMP_WAIT_POLICY=PASSIVE (OpenMP threads sleep at once)
  thread        main thread prepares the data (parallel torch ops), a threading.Thread trains
  thread-clean  main thread runs no torch op at all; the thread prepares and trains
  thread-active  thread, with OMP_WAIT_POLICY=ACTIVE
  thread-spin   thread, with GOMP_SPINCOUNT=30000000
  thread-1      thread, torch.set_num_threads(1) in the training thread
  thread-pause  thread, the main thread calls omp_pause_resource_all() before starting it
  thread-again  thread-clean, but a first training thread ran and ended before this one
  worker        studio.training.threads.run_in_worker after the main thread's torch ops
                (yield_cpus_to_workers in the main thread, use_all_cpus in the new one)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
ENV = {
    "main-passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "thread-active": {"OMP_WAIT_POLICY": "ACTIVE"},
    "thread-spin": {"GOMP_SPINCOUNT": "30000000"},
}
VARIANTS = (
    "main",
    "main-1",
    "main-passive",
    "thread",
    "thread-clean",
    "thread-active",
    "thread-spin",
    "thread-1",
    "thread-pause",
    "thread-again",
    "worker",
)
STEPS = {"mlp": 300, "deep": 80, "cnn": 40, "resnet18": 8}


# ------------------------------------------------------------------------------- child


def child(variant: str, case_name: str, steps: int, runs: int) -> dict:
    import threading

    import torch

    sys.path.insert(0, str(HERE.parent))
    from cases import make_case, raw_loop

    def measure(case) -> list[float]:
        raw_loop(case, max(3, steps // 10))  # warm-up
        return [steps / raw_loop(case, steps)[0] for _ in range(runs)]

    def in_thread(fn) -> list[float]:
        box: dict = {}

        def work():
            box["rates"] = fn()

        t = threading.Thread(target=work)
        t.start()
        t.join()
        return box["rates"]

    if variant.startswith("main"):
        if variant == "main-1":
            torch.set_num_threads(1)
        rates = measure(make_case(case_name))
    elif variant in ("thread", "thread-active", "thread-spin", "thread-1", "thread-pause"):
        case = make_case(case_name)  # parallel ops in the main thread: its OpenMP team exists
        if variant == "thread-pause":
            from studio.training.threads import release_openmp_threads

            release_openmp_threads()

        def work():
            if variant == "thread-1":
                torch.set_num_threads(1)
            return measure(case)

        rates = in_thread(work)
    elif variant == "thread-clean":
        rates = in_thread(lambda: measure(make_case(case_name)))
    elif variant == "thread-again":
        in_thread(lambda: measure(make_case("mlp")))
        rates = in_thread(lambda: measure(make_case(case_name)))
    elif variant == "worker":
        from studio.training.threads import run_in_worker

        case = make_case(case_name)
        rates = run_in_worker(lambda: measure(case)).result()
    else:
        raise SystemExit(f"unknown variant {variant}")
    return {"rate": statistics.median(rates), "rates": rates}


# ------------------------------------------------------------------------------ parent


def run_child(variant: str, case: str, steps: int, runs: int) -> float:
    env = {**os.environ, **MALLOC_ENV, **ENV.get(variant, {})}
    for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS"):
        if key not in ENV.get(variant, {}):
            env.pop(key, None)
    out = subprocess.run(
        [sys.executable, str(HERE), "--child", variant, case, str(steps), str(runs)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"{variant}/{case} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["rate"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="mlp,deep,cnn")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "CASE", "STEPS", "RUNS"))
    args = parser.parse_args()
    if args.child:
        variant, case, steps, runs = args.child
        print(json.dumps(child(variant, case, int(steps), int(runs))))
        return 0
    variants = [v for v in args.variants.split(",") if v and v != "main"]
    started = time.perf_counter()
    table = {}
    for case in args.cases.split(","):
        ratios: dict[str, list[float]] = {v: [] for v in variants}
        base_rates = []
        for r in range(args.rounds):
            order = ["main", *variants]
            if r % 2:
                order.reverse()
            got = {v: run_child(v, case, STEPS[case], args.runs) for v in order}
            base_rates.append(got["main"])
            for v in variants:
                ratios[v].append(got[v] / got["main"])
            print(
                f"{case} round {r + 1}: main {got['main']:.1f} steps/s; "
                + ", ".join(f"{v} {got[v] / got['main']:.2f}" for v in variants),
                file=sys.stderr,
                flush=True,
            )
        table[case] = (statistics.median(base_rates), {v: ratios[v] for v in variants})
    print(f"\n{time.perf_counter() - started:.0f} s; medians of per-round ratios to main\n")
    cases = list(table)
    print("| variant | " + " | ".join(cases) + " |")
    print("| --- |" + " ---: |" * len(cases))
    print("| main (steps/s) | " + " | ".join(f"{table[c][0]:.1f}" for c in cases) + " |")
    for v in variants:
        cells = []
        for c in cases:
            values = table[c][1][v]
            cells.append(f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})")
        print(f"| {v} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
