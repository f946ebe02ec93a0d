"""Image folders too big for RAM: peak memory and speed of data.storage memory, disk
and stream, with and without DataLoader worker processes (data.workers).

    .venv/bin/python benchmarks/data_throughput.py [--sizes 5000,20000,50000]
        [--epochs 1] [--folder DIR] [--workers 1] [--cases memory,disk cold,...]

Generates RGB 64×64 PNG images in 10 class folders (once per size, kept in --folder,
default a temporary folder), then for each size trains a small CNN (conv-pool twice,
linear head, batch 64) in a fresh process:

  memory      decoded into RAM, as floats (the in-memory path)
  disk cold   data.storage=disk with an empty cache: decodes into the cache (first epoch)
  disk warm   data.storage=disk again: the cache is read, nothing is decoded
  disk warm+w the same, read (and scaled) by --workers worker processes
  stream      data.storage=stream: every batch decodes its files, in the trainer
  stream+w    the same, decoded by --workers worker processes

and prints, per run, the peak resident memory of the process (ru_maxrss) and of its
largest worker, the time to load the data, the first epoch's images/s including
loading, and training steps/s; then steps/s of the warm disk cache ÷ in memory. The training processes get glibc's malloc
tuned as `./dev` tunes it. Results: docs/scaling.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WORKER = r"""
import json, resource, sys, time
from studio.projectfile import load_project
from studio.training.engine import Trainer
project = load_project(sys.argv[1])
started = time.perf_counter()
trainer = Trainer(project)
loaded = time.perf_counter() - started
result = trainer.fit()
total = time.perf_counter() - started
print(json.dumps({
    "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "worker_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
    "load": loaded, "total": total, "train": result.seconds, "steps": result.steps,
    "images": len(trainer.data.train), "epochs": result.epochs,
}))
"""


def make_images(folder: Path, count: int) -> Path:
    from PIL import Image

    root = folder / f"images-{count}"
    done = root / ".complete"
    if done.is_file():
        return root
    rng = np.random.default_rng(count)
    for c in range(10):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        c = i % 10
        pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        pixels[:8, :8] = c * 25  # a corner says the class
        Image.fromarray(pixels).save(root / f"class{c}" / f"{i:06}.png", compress_level=1)
    done.touch()
    return root


def project(images: Path, storage: str, epochs: int, path: Path, workers: int = 0) -> Path:
    def conv(i, channels):
        return {
            "id": f"conv{i}",
            "type": "Conv2d",
            "params": {"out_channels": channels, "kernel_size": 3, "padding": 1},
            "activation": "relu",
        }

    nodes = [
        {"id": "image", "type": "Input", "params": {"shape": [3, 64, 64]}},
        conv(1, 16),
        {"id": "pool1", "type": "MaxPool2d", "params": {"kernel_size": 4}},
        conv(2, 32),
        {"id": "pool2", "type": "MaxPool2d", "params": {"kernel_size": 4}},
        {"id": "flatten", "type": "Flatten"},
        {"id": "classes", "type": "Output", "params": {"units": 10}},
    ]
    ids = [n["id"] for n in nodes]
    raw = {
        "version": 0,
        "name": f"throughput-{storage}",
        "network": {
            "nodes": nodes,
            "edges": [{"source": a, "target": b} for a, b in zip(ids, ids[1:])],
        },
        "data": {
            "source": "image_folder",
            "path": str(images),
            "storage": storage,
            "workers": workers,
        },
        "training": {"epochs": epochs, "batch_size": 64, "device": "cpu"},
    }
    from studio.document import FORMAT_VERSION

    raw["version"] = FORMAT_VERSION
    path.write_text(json.dumps(raw))
    return path


# label: (data.storage, with --workers worker processes)
CASES = {
    "memory": ("memory", False),
    "disk cold": ("disk", False),
    "disk warm": ("disk", False),
    "disk warm+w": ("disk", True),
    "stream": ("stream", False),
    "stream+w": ("stream", True),
}

# glibc's malloc tuned as `./dev` tunes it: without it every batch's fresh tensors are
# mmap'd and page-faulted anew, which slowed the disk cache's steps by a quarter here.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "4294967296"}


def run(project_path: Path, cache: Path) -> dict:
    env = {**os.environ, **MALLOC_ENV, "STUDIO_CACHE": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(project_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    if done.returncode != 0:
        sys.exit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="5000,20000,50000")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--folder", default="")
    parser.add_argument("--workers", type=int, default=1, help="for the +w cases")
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="studio-images-"))
    print(f"RGB 64×64 PNGs, small CNN, batch 64, {args.epochs} epoch(s), cpu; images in {folder}")
    print(
        f"{'images':>7} {'storage':<12} {'peak RSS':>9} {'worker RSS':>10} {'load s':>7} "
        f"{'epoch-1 img/s':>13} {'steps/s':>8}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        started = time.perf_counter()
        images = make_images(folder, size)
        made = time.perf_counter() - started
        if made > 1:
            print(f"(made {size:,} images in {made:.0f} s)")
        cache = folder / f"cache-{size}"
        results = {}
        for label in args.cases.split(","):
            storage, pooled = CASES[label]
            if label == "disk cold" and cache.exists():
                for f in cache.iterdir():
                    f.unlink()
            workers = args.workers if pooled else 0
            r = run(project(images, storage, args.epochs, folder / "p.json", workers), cache)
            results[label] = r
            first = r["images"] / (r["load"] + r["train"] / r["epochs"])
            worker = f"{r['worker_rss'] / 1e9:>7.2f} GB" if workers else f"{'–':>10}"
            print(
                f"{size:>7,} {label:<12} {r['rss'] / 1e9:>7.2f} GB {worker} {r['load']:>7.1f} "
                f"{first:>13,.0f} {r['steps'] / r['train']:>8.1f}",
                flush=True,
            )
        memory = results.get("memory")
        for label in ("disk warm", "disk warm+w", "stream", "stream+w"):
            if memory and label in results:
                r = results[label]
                ratio = (r["steps"] / r["train"]) / (memory["steps"] / memory["train"])
                print(f"{size:>7,} steps/s {label} ÷ memory: {ratio:.2f}")


if __name__ == "__main__":
    main()
