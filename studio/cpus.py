"""How many CPUs this process may really use: its affinity and its cgroup's CPU quota.

`os.cpu_count()` and torch's default intra-op thread count see the machine's cores, not
a container's `--cpus=1` or a cgroup's `cpu.max`. Training with two OpenMP threads on one
core's worth of quota spends the quota in libgomp's spin-waits: on the 2-core test
machine with a 1-CPU quota the digits CNN trained at 32 steps/s with two threads and 134
with one, and the window's event loop stalled twice as long (docs/benchmarks.md). So
the count follows the quota, as joblib's loky and Go's automaxprocs do; OMP_NUM_THREADS,
when set, is the person's choice and wins.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def affinity_cpus() -> int:
    """The CPUs the scheduler lets this process run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


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
