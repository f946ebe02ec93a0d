"""How much memory this machine can give training now: free GPU memory, or the RAM
available within the process's cgroup limit (a CI runner's, a container's).

Below everything that asks (the estimate in studio/memory.py, data.storage's choice in
studio/data/sources.py), so asking imports nothing else of the studio.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def available_memory(device: str = "cpu") -> tuple[int | None, str]:
    """Bytes free for training on `device`: free GPU memory, or RAM within a cgroup limit."""
    if device.startswith("cuda"):
        import torch

        try:
            free, _ = torch.cuda.mem_get_info(torch.device(device))
            return int(free), "GPU memory"
        except (RuntimeError, AssertionError):
            return None, "GPU memory"
    return _ram_available(), "RAM"


def _ram_available() -> int | None:
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        with contextlib.suppress(ValueError, OSError, AttributeError):
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    # A container's limit (CI runners, cgroup v2 then v1) is what the process can really get.
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            cap = int(Path(limit).read_text().strip())
            used = int(Path(usage).read_text().strip())
        except (OSError, ValueError):
            continue
        if cap < 1 << 60:  # "max", or v1's "no limit" sentinel, are not limits
            found.append(max(0, cap - used))
        break
    return min(found) if found else None
