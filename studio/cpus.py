"""How many CPUs this process may really use: its affinity, its cgroup's CPU quota, and
(where a person starts a run) what other processes leave free.

`os.cpu_count()` and torch's default intra-op thread count see the machine's cores, not
a container's `--cpus=1` or a cgroup's `cpu.max`. Training with two OpenMP threads on one
core's worth of quota spends the quota in libgomp's spin-waits: on the 2-core test
machine with a 1-CPU quota the digits CNN trained at 32 steps/s with two threads and 134
with one, and the window's event loop stalled twice as long (docs/benchmarks.md). So
the count follows the quota, as joblib's loky and Go's automaxprocs do; OMP_NUM_THREADS,
when set, is the person's choice and wins. Other processes' load is read off /proc/stat
when a run starts (`threads_for_a_run`): a thread that shares its core with a busy
process holds up every parallel op of the team.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path
from typing import NamedTuple

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def _affinity() -> set[int] | None:
    """The numbers of the CPUs the scheduler lets this process run on; None where the
    system does not say (macOS, Windows)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def affinity_cpus() -> int:
    """How many CPUs the scheduler lets this process run on."""
    mine = _affinity()
    return max(1, len(mine) if mine else os.cpu_count() or 1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _ancestors(mount: Path, group: str) -> list[Path]:
    """The process's group folder under `mount` and every folder above it, up to the
    mount itself (a container sees its own group as the mount's root)."""
    parts = [p for p in group.strip("/").split("/") if p]
    folders = [mount.joinpath(*parts[:n]) for n in range(len(parts), 0, -1)]
    return [*folders, mount]


def _v2_quota(folder: Path) -> float | None:
    text = _read(folder / "cpu.max")  # "max 100000" or "150000 100000"
    if not text:
        return None
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_quota(folder: Path) -> float | None:
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    try:
        q, p = int(quota or ""), int(period or "")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None  # -1: no limit


def cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """CPUs' worth of time per second this process's cgroups allow (the least of its
    group's and every enclosing group's limit); None where there is no limit or no cgroup
    (not Linux, an unreadable /proc)."""
    lines = _read(proc_cgroup)
    if not lines:
        return None
    found: list[float] = []
    for line in lines.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, group = rest.partition(":")
        if hierarchy == "0" and controllers == "":  # cgroup v2: one unified tree
            mount, read = root, _v2_quota
            if not (root / "cgroup.controllers").exists():
                mount = root / "unified"  # a hybrid host mounts v2 beside the v1 trees
        elif "cpu" in controllers.split(","):
            mount = next(
                (
                    root / name
                    for name in (controllers, "cpu", "cpu,cpuacct")
                    if (root / name).is_dir()
                ),
                root / "cpu",
            )
            read = _v1_quota
        else:
            continue
        for folder in _ancestors(mount, group):
            quota = read(folder)
            if quota is not None:
                found.append(quota)
    return min(found) if found else None


def usable_cpus() -> int:
    """The CPUs training should use: the affinity, lowered to a CPU quota (rounded down,
    at least one: a thread that often waits on the quota is worse than one fewer)."""
    cpus = affinity_cpus()
    quota = cpu_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota + 1e-9)))
    return cpus


def fit_torch_threads() -> int:
    """Lower torch's intra-op thread count in the calling thread (and the default for
    threads started later) to `usable_cpus()`, unless OMP_NUM_THREADS is set; returns the
    count in use. Call it before the first parallel op."""
    import torch

    if not os.environ.get("OMP_NUM_THREADS"):
        usable = usable_cpus()
        if usable < torch.get_num_threads():
            torch.set_num_threads(usable)
    return torch.get_num_threads()


# -- other processes' load ---------------------------------------------------------------
PROC_STAT = Path("/proc/stat")
# How a run's start watches the CPUs: LOOKS spells of LOOK_SECONDS, and the median of
# what they saw, so a burst (a process busy 60 ms of a second) does not decide a run.
LOOKS, LOOK_SECONDS = 5, 0.1
# The CPU time, in CPUs, that must be free for each intra-op thread past the first. An
# OpenMP team waits at every parallel op for its slowest thread; one whose core another
# process holds keeps the whole team waiting for a time slice (benchmarks/threads_under_load.py).
FREE_FOR_A_THREAD = 0.8


def _cpu_ticks(stat: Path = PROC_STAT) -> dict[int, tuple[int, int]] | None:
    """Per CPU of /proc/stat, (busy, all) clock ticks since boot. Busy is everything but
    idle and I/O wait; steal counts as busy (a VM's host gave the time to someone else)."""
    text = _read(stat)
    if not text:
        return None
    out: dict[int, tuple[int, int]] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        try:
            index = int(name[3:])
            ticks = [int(x) for x in rest.split()[:8]]
        except ValueError:
            continue
        if len(ticks) >= 5:
            out[index] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))
    return out or None


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system  # every thread of this process


def _busy_between(before: dict, after: dict, mine: set[int] | None) -> float:
    """Busy clock ticks between two reads, over the CPUs in both (a CPU may come or go
    between them) and of this process's affinity; all of them where the affinity's numbers
    are not in /proc/stat (a container whose /proc renumbers its CPUs)."""
    both = before.keys() & after.keys()
    chosen = both & mine if mine else both
    return float(sum(after[c][0] - before[c][0] for c in (chosen or both)))


def busy_elsewhere(
    looks: int = LOOKS, seconds: float = LOOK_SECONDS, stat: Path = PROC_STAT
) -> float | None:
    """CPUs' worth of time other processes kept busy, on the CPUs this process may run on
    (0.0: they were idle, 1.0: one was taken): the median of `looks` spells of `seconds`;
    None where /proc/stat cannot be read (not Linux)."""
    mine = _affinity()
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    seen: list[float] = []
    before, own, start = _cpu_ticks(stat), _own_seconds(), time.monotonic()
    for _ in range(max(1, looks)):
        if before is None:
            return None
        time.sleep(seconds)
        after, own_now, now = _cpu_ticks(stat), _own_seconds(), time.monotonic()
        if after is None or now <= start:
            return None
        busy = _busy_between(before, after, mine) / hz - (own_now - own)
        seen.append(max(0.0, busy / (now - start)))
        before, own, start = after, own_now, now
    return statistics.median(seen)


def free_threads(ceiling: int, busy: float | None, cpus: int | None = None) -> int:
    """Intra-op threads for a run: `ceiling`, fewer where other processes keep CPUs busy
    (each thread past the first needs FREE_FOR_A_THREAD of a CPU free), at least one.
    With more CPUs than `ceiling` (torch counts cores, the affinity hyper-threads), a
    busy CPU takes its share of the ceiling, not a whole thread."""
    cpus = cpus if cpus is not None else affinity_cpus()
    if busy is None or ceiling <= 1:
        return max(1, min(ceiling, cpus))
    if cpus > ceiling:
        busy = busy * ceiling / cpus
    free = min(ceiling, cpus) - busy
    return max(1, min(ceiling, cpus, math.floor(free + 1 - FREE_FOR_A_THREAD + 1e-9)))


class RunThreads(NamedTuple):
    threads: int
    said: str = ""  # when busy CPUs took some: how many are left, and what keeps them busy
    why: str = ""  # ... and why that costs


def _cpus_text(busy: float) -> str:
    if busy < 0.95:
        return f"{busy:.1f} of a CPU"
    return "1 CPU" if busy < 1.05 else f"{busy:.1f} CPUs"


def threads_for_a_run(
    deterministic: bool = False, full: int | None = None, on_cpu: bool = True
) -> RunThreads:
    """Where a person starts training (`studio train`, the window's Train): set the calling
    thread's intra-op thread count for a run starting now, `full` (default: torch's,
    lowered to `usable_cpus`) less what other processes keep busy; returns it and, when
    busy CPUs took some, two sentences that say so and why.

    Beside one busy process the digits CNN trained at 69 steps/s on two threads and 205
    on one (benchmarks/threads_under_load.py). The thread count changes a run's sums in
    their last digits, so a project that asks for exact repeats (training.deterministic)
    keeps the full count, and OMP_NUM_THREADS, when set, is the person's choice. A run on
    a GPU (`on_cpu` False) keeps it too: its CPU threads only feed the device. The Python
    API (`studio.training.session.train`) keeps the full count: two runs of a script
    compare exactly whatever else the machine does."""
    import torch

    full = fit_torch_threads() if full is None else full
    cpus = affinity_cpus()
    fitting = max(1, min(full, cpus))  # a count cached before the affinity shrank
    threads, busy = fitting, None
    if on_cpu and not (deterministic or fitting <= 1 or os.environ.get("OMP_NUM_THREADS")):
        busy = busy_elsewhere()
        threads = free_threads(fitting, busy, cpus)
    torch.set_num_threads(threads)
    if busy is None or threads >= fitting:  # every thread it may use
        return RunThreads(threads)
    return RunThreads(
        threads,
        f"Using {threads} of {fitting} CPU threads: other processes keep {_cpus_text(busy)} busy.",
        "A thread that waits for a busy CPU holds back every step; a run started when "
        "the CPUs are free takes them all.",
    )
