"""A run folder's weight files, and which one to use.

A run saves `checkpoints/best.safetensors` (where its monitored metric was best) and
`checkpoints/last.safetensors` (the latest weights). Exporting a run and reusing it as a
backbone both want one and take the other when it is missing (a run stopped before its
first validation has no best); both ask here.
"""

from __future__ import annotations

from pathlib import Path

CHECKPOINTS = "checkpoints"


def weights_file(run_path: str | Path, prefer: str = "best") -> Path | None:
    """The run's `prefer` ('best' or 'last') weights file, else the other; None when the
    run saved neither."""
    folder = Path(run_path) / CHECKPOINTS
    for name in (prefer, "last" if prefer == "best" else "best"):
        path = folder / f"{name}.safetensors"
        if path.is_file():
            return path
    return None
