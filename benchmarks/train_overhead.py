"""The engine with every monitor on against a hand-written PyTorch loop.

    .venv/bin/python benchmarks/train_overhead.py [--steps N] [--pairs K]
        [--cases mlp,cnn,resnet18,deep] [--placements main,worker] [--gui-ms MS]

For each case both loops train the same model (`build_model(project)`, same seed), with
the same optimizer, loss and batches (`Batches`, same seed, `torch.manual_seed` first),
so their losses must match; the table gives the largest difference of any step's loss.
Runs are interleaved (raw, then each placement of the engine, then the next round in
reverse order) and the table shows medians of the per-round ratios of steps/s, since
this machine is noisy. The raw loop always runs in the main thread, like `studio train`
from the CLI. Steps per run default to 500 (mlp), 100 (cnn), 20 (resnet18), 200 (deep);
a default run takes about 3 minutes on 2 cores. Results: docs/benchmarks.md.

Placements of the engine:
  main     Trainer.fit() in the main thread (the CLI)
  worker   studio.training.threads.run_in_worker (the window's way)
  thread   a plain threading.Thread, no precautions (what the window must not do)
  process  a spawned process trains in its main thread and streams events over a pipe

The script re-executes itself with glibc's malloc tuned like `./dev` does
(MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_); --no-reexec keeps the environment.
"""

from __future__ import annotations

import argparse
import os
import sys

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "4294967296"}


def _reexec_with_malloc_env() -> None:
    if "--no-reexec" in sys.argv or all(os.environ.get(k) == v for k, v in MALLOC_ENV.items()):
        return
    os.environ.update(MALLOC_ENV)
    os.execv(sys.executable, [sys.executable, *sys.argv])


if __name__ == "__main__":
    _reexec_with_malloc_env()

# ruff: noqa: E402  (the imports follow the re-exec on purpose: glibc reads malloc env at start)
import platform
import queue
import statistics
import threading
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases import (
    CASES,
    DEFAULT_STEPS,
    Case,
    fit_timed,
    losses_of,
    make_case,
    make_trainer,
    raw_loop,
)

PLACEMENTS = ("main", "worker", "thread", "process")


PROBE_SHARES: dict[str, list[float]] = {}  # case → the monitors' own count, per timed run


def warm_then_fit(case: Case, steps: int, listener) -> float:
    """A short untimed fit, then the timed one, both in the calling thread.

    A thread's first steps pay one-off costs (its malloc arena's first pages, its OpenMP
    team, per-thread kernel caches): ~5 ms, 4% of a 300-step tiny-MLP run. A real run
    pays them once; warming up in the same thread measures the steady state.
    """
    fit_timed(make_trainer(case, max(10, steps // 5), lambda event: None))
    trainer = make_trainer(case, steps, listener)
    seconds = fit_timed(trainer)
    PROBE_SHARES.setdefault(case.name, []).append(trainer.monitors.share)
    return seconds


def engine_main(case: Case, steps: int) -> tuple[float, list[float]]:
    events: list[dict] = []
    return steps / warm_then_fit(case, steps, events.append), losses_of(events)


GUI = {"busy_ms": 0.0}  # --gui-ms: Python work per 30 Hz frame in the main thread


def gui_frame() -> None:
    """What a redraw costs the main thread: pure-Python work holding the GIL (--gui-ms)."""
    until = time.perf_counter() + GUI["busy_ms"] / 1000
    while time.perf_counter() < until:
        sum(i * i for i in range(200))


def _drain_like_a_gui(done: threading.Event, inbox: queue.SimpleQueue, events: list) -> None:
    """The main thread's share: wake ~60 times a second (30 with --gui-ms) for the events."""
    while not done.wait(1 / 30 if GUI["busy_ms"] else 1 / 60):
        while not inbox.empty():
            events.append(inbox.get())
        if GUI["busy_ms"]:
            gui_frame()
    while not inbox.empty():
        events.append(inbox.get())


def main_thread_uses_torch() -> None:
    """What a window's GUI thread does now and then (a model, a preview): a parallel op.

    It gives the main thread an OpenMP team, as the raw loop's runs also do; the worker
    placements must be fast regardless.
    """
    torch.ones(1 << 20).mul_(2).sum()


def engine_thread(case: Case, steps: int) -> tuple[float, list[float]]:
    """A plain threading.Thread that builds the Trainer and trains; nothing else."""
    main_thread_uses_torch()
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    events: list[dict] = []
    box: dict = {}
    done = threading.Event()

    def work():
        try:
            box["seconds"] = warm_then_fit(case, steps, inbox.put)
        finally:
            done.set()

    thread = threading.Thread(target=work, name="training")
    thread.start()
    _drain_like_a_gui(done, inbox, events)
    thread.join()
    return steps / box["seconds"], losses_of(events)


def engine_worker(case: Case, steps: int) -> tuple[float, list[float]]:
    from studio.training.threads import run_in_worker, training_threads

    main_thread_uses_torch()
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    events: list[dict] = []
    worker = run_in_worker(warm_then_fit, case, steps, inbox.put)
    _drain_like_a_gui(worker.done, inbox, events)
    seconds = worker.result()  # re-raises what the thread raised
    # run_in_worker left this thread at one intra-op thread, as a GUI thread stays; the
    # raw loop that runs here next is the CLI's, so give it its threads back.
    torch.set_num_threads(training_threads())
    return steps / seconds, losses_of(events)


PROCESS_STARTS: list[float] = []  # seconds from spawn to the first event


def engine_process(case: Case, steps: int) -> tuple[float, list[float]]:
    """A spawned process trains (in its main thread) and streams events over a pipe."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    started = time.perf_counter()
    child = ctx.Process(target=_process_job, args=(send, case.name, steps), daemon=True)
    child.start()
    send.close()
    events: list[dict] = []
    first_event, seconds, finished = None, float("nan"), False
    while not finished:
        receive.poll(1 / 30 if GUI["busy_ms"] else None)
        while receive.poll():
            try:
                event = receive.recv()
            except EOFError:
                finished = True
                break
            if first_event is None:
                first_event = time.perf_counter() - started
            if event.get("type") == "fit_seconds":
                seconds = event["seconds"]
            else:
                events.append(event)
        if GUI["busy_ms"] and not finished:
            gui_frame()
    child.join()
    PROCESS_STARTS.append(first_event or float("nan"))
    return steps / seconds, losses_of(events)


def _process_job(send, name: str, steps: int) -> None:
    send.send({"type": "spawned"})
    seconds = warm_then_fit(make_case(name), steps, send.send)
    send.send({"type": "fit_seconds", "seconds": seconds})
    send.close()


RUNNERS = {
    "main": engine_main,
    "worker": engine_worker,
    "thread": engine_thread,
    "process": engine_process,
}


def raw_main(case: Case, steps: int) -> tuple[float, list[float]]:
    seconds, losses = raw_loop(case, steps)
    return steps / seconds, losses


def max_diff(a: list[float], b: list[float]) -> float:
    if len(a) != len(b):
        return float("inf")
    return max((abs(x - y) for x, y in zip(a, b)), default=0.0)


def bench_case(case: Case, steps: int, pairs: int, placements: list[str], log) -> dict:
    # Warm-up: one untimed run of each, so first-touch costs hit neither side.
    warm = max(5, steps // 10)
    raw_main(case, warm)
    for p in placements:
        RUNNERS[p](case, warm)
    _, ref = raw_main(case, steps)
    rows = {p: {"ratios": [], "rates": [], "diff": 0.0} for p in placements}
    raw_rates = []
    for i in range(pairs):
        order = ["raw", *placements]
        if i % 2:
            order.reverse()
        got = {}
        for what in order:
            got[what] = (raw_main if what == "raw" else RUNNERS[what])(case, steps)
        raw_rate, raw_losses = got["raw"]
        raw_rates.append(raw_rate)
        for p in placements:
            rate, losses = got[p]
            rows[p]["ratios"].append(rate / raw_rate)
            rows[p]["rates"].append(rate)
            rows[p]["diff"] = max(rows[p]["diff"], max_diff(losses, raw_losses))
        rows_text = "  ".join(f"{p} {got[p][0] / raw_rate:.3f}" for p in placements)
        log(f"  {case.name} round {i + 1}/{pairs}: raw {raw_rate:8.1f} steps/s  {rows_text}")
    # The raw loop itself repeats exactly.
    raw_repeat = max_diff(ref, raw_main(case, steps)[1])
    return {
        "case": case,
        "steps": steps,
        "raw": statistics.median(raw_rates),
        "raw_repeat": raw_repeat,
        "rows": {
            p: {
                "ratio": statistics.median(r["ratios"]),
                "low": min(r["ratios"]),
                "high": max(r["ratios"]),
                "rate": statistics.median(r["rates"]),
                "diff": r["diff"],
            }
            for p, r in rows.items()
        },
    }


TARGETS = {"mlp": 0.90, "deep": 0.90, "cnn": 0.97, "resnet18": 0.97}


def table(results: list[dict], placements: list[str]) -> str:
    head = "| case | steps × rounds | raw steps/s |"
    rule = "| --- | --- | ---: |"
    for p in placements:
        head += f" {p} ÷ raw (min–max) | max abs loss diff ({p}) |"
        rule += " ---: | ---: |"
    head += " probes' share (own count) | target |"
    rule += " ---: | ---: |"
    lines = [head, rule]
    for r in results:
        case = r["case"]
        line = f"| {case.title} | {r['steps']} × {r['pairs']} | {r['raw']:.1f} |"
        for p in placements:
            row = r["rows"][p]
            mark = "" if row["ratio"] >= TARGETS[case.name] else " ✗"
            line += f" **{row['ratio']:.3f}**{mark} ({row['low']:.2f}–{row['high']:.2f}) | {row['diff']:.1e} |"
        shares = PROBE_SHARES.get(case.name)
        line += f" {statistics.median(shares):.1%} |" if shares else " |"
        line += f" ≥ {TARGETS[case.name]:.2f} |"
        lines.append(line)
    return "\n".join(lines)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} logical CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} intra-op threads), Python {platform.python_version()}, "
        f"{date.today().isoformat()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, help="steps per timed run (default: per case)")
    parser.add_argument("--pairs", type=int, default=9, help="interleaved rounds (default 9)")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--placements", default="main,worker")
    parser.add_argument(
        "--gui-ms",
        type=float,
        default=0.0,
        help="worker/thread/process placements: the main thread also spends this many ms of "
        "pure-Python work per 30 Hz frame, like plot redraws (default 0: it only takes events)",
    )
    parser.add_argument("--no-reexec", action="store_true", help="keep the malloc environment")
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    placements = [p for p in args.placements.split(",") if p]
    GUI["busy_ms"] = args.gui_ms
    for p in placements:
        if p not in PLACEMENTS:
            parser.error(f"unknown placement {p!r} (known: {', '.join(PLACEMENTS)})")

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    log(f"machine: {machine()}")
    log("malloc env: " + " ".join(f"{k}={os.environ.get(k, '-')}" for k in MALLOC_ENV))
    started = time.perf_counter()
    results = []
    for name in cases:
        case = make_case(name)
        steps = args.steps or DEFAULT_STEPS[name]
        result = bench_case(case, steps, args.pairs, placements, log)
        result["pairs"] = args.pairs
        results.append(result)
        log(f"  {name}: raw loop repeats to {result['raw_repeat']:.1e}")
    print(f"\n{machine()}; {time.perf_counter() - started:.0f} s\n")
    print(table(results, placements))
    if PROCESS_STARTS:
        print(
            f"\nprocess placement: spawn to the child's first event (imports done) "
            f"median {statistics.median(PROCESS_STARTS):.2f} s over {len(PROCESS_STARTS)} runs"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
