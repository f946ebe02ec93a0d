"""One process against N data-parallel processes (torchrun) on the same project.

    .venv/bin/python benchmarks/data_parallel.py [--project P] [--epochs E]
        [--batch B] [--nproc 2,4] [--device cpu]

Runs `studio train` as a person would (a fresh interpreter each, so start-up counts in
"wall"), once in one process and once per N in --nproc, all with the same global batch
in deterministic mode, and prints per run: wall seconds, training seconds (summary.json),
steps/s of training, and the final validation loss (the same for every N, within
float rounding, when the project has no dropout). Results: docs/scaling.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(project: str, out: Path, nproc: int, epochs: int, batch: int, device: str) -> dict:
    argv = [
        sys.executable,
        "-m",
        "studio",
        "train",
        project,
        "--out",
        str(out),
        "--json",
        f"--set=training.epochs={epochs}",
        f"--set=training.batch_size={batch}",
        f"--set=training.device={device}",
        "--set=training.deterministic=true",
    ]
    if nproc > 1:
        argv += ["--nproc", str(nproc)]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{nproc} process(es) failed:\n{done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    return {
        "processes": nproc,
        "wall": wall,
        "train": summary["seconds"],
        "steps": summary["steps"],
        "val_loss": summary["history"][-1]["val_loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", default=str(ROOT / "resources/examples/digits_cnn.json"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--nproc", default="2")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    counts = [1, *(int(n) for n in args.nproc.split(","))]
    print(
        f"{Path(args.project).stem}, {args.epochs} epochs, global batch {args.batch}, "
        f"{args.device}, deterministic"
    )
    print(f"{'processes':>9} {'wall s':>8} {'train s':>8} {'steps/s':>8} {'val loss':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            r = run(args.project, Path(tmp) / str(n), n, args.epochs, args.batch, args.device)
            print(
                f"{r['processes']:>9} {r['wall']:>8.1f} {r['train']:>8.1f} "
                f"{r['steps'] / r['train']:>8.1f} {r['val_loss']:>10.6f}"
            )


if __name__ == "__main__":
    main()
