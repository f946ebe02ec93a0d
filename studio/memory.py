"""Limits known before training: the memory one training step needs, against the machine.

From the analysis alone (no model is built, so a 3-trillion-parameter layer is caught before
it is allocated): parameters, their gradients and the optimizer's state, and the activations
a step keeps for the backward pass at the batch size. Compared with the memory the machine
can give (RAM, within a cgroup limit; free GPU memory when training there), it tells `check`,
`train` and the window's status bar whether a step will fit, naming the biggest layer.

It is an estimate ("about"): activations inside a pretrained backbone are counted by its
output only, and allocator overheads are left out, so it refuses only what clearly cannot fit.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

from studio.analysis import Analysis
from studio.document import Project
from studio.free_memory import available_memory

FLOAT_BYTES = 4  # fp32 parameters and activations (mixed precision still keeps fp32 masters)
OPTIMIZER_COPIES = {"adam": 2, "adamw": 2, "rmsprop": 1, "sgd": 1, "adagrad": 1}


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int  # bytes: parameters + gradients + optimizer state
    activations: int  # bytes kept for one step's backward pass
    batch_size: int
    biggest: str  # the node holding the most memory (weights or activations)
    biggest_bytes: int
    available: int | None  # bytes the machine can give, None when unknown
    where: str  # "RAM" or "GPU memory"
    data: int = 0  # bytes the whole dataset takes as tensors (the studio holds it in RAM)
    requested_batch: int = 0  # training.batch_size, when larger than the training split

    @property
    def total(self) -> int:
        return self.weights + self.activations + (self.data if self.where == "RAM" else 0)

    @property
    def fits(self) -> bool:
        return self.available is None or self.total <= self.available

    def sentence(self) -> str:
        need = f"Training needs about {human_bytes(self.total)}"
        data = f", {human_bytes(self.data)} of data" if self.data and self.where == "RAM" else ""
        whole = (
            f" (the whole training split; {self.requested_batch:,} asked)"
            if self.requested_batch > self.batch_size
            else ""
        )
        parts = (
            f"({human_bytes(self.weights)} for weights, gradients and optimizer state, "
            f"{human_bytes(self.activations)} of activations at batch size {self.batch_size:,}"
            f"{whole}{data})"
        )
        if self.available is None:
            return f"{need} {parts}."
        if self.fits:
            return f"{need} {parts} of the {human_bytes(self.available)} of {self.where} free."
        if self.where == "RAM" and self.data > self.weights + self.activations:
            return (
                f"{need} {parts} but this machine has {human_bytes(self.available)} of "
                "RAM free: it will not fit, mostly for the data; use fewer or smaller "
                "samples (data.image_size, data.classes), or keep an image folder on disk "
                "(data.storage = disk) (train --force tries anyway)."
            )
        return (
            f"{need} {parts} but this machine has {human_bytes(self.available)} of "
            f"{self.where} free: it will not fit. The biggest layer is '{self.biggest}' "
            f"({human_bytes(self.biggest_bytes)}); make it smaller or lower "
            "training.batch_size (train --force tries anyway)."
        )


def estimate(
    project: Project, analysis: Analysis, device: str = "cpu", base: Path | None = None
) -> MemoryEstimate:
    batch = requested = int(project.training["batch_size"])
    # A batch is never larger than the training split (digits at batch size 65,536 trains
    # in batches of 1,437): counted so, when the data's size can be told.
    samples = data_samples(project, base)
    if samples:
        held_out = float(project.data.get("validation", 0)) + float(project.data.get("test", 0))
        batch = max(1, min(batch, math.ceil(samples * max(0.0, 1.0 - held_out))))
    optimizer = str(project.training["optimizer"]["name"]).lower()
    copies = OPTIMIZER_COPIES.get(optimizer, 2)
    weights = activations = 0
    per_node: dict[str, int] = {}
    for nid in analysis.order:
        info = analysis.layers.get(nid)
        if info is None:
            continue
        trainable = info.params - info.frozen if info.trainable else 0
        node_weights = (info.params + trainable * (1 + copies)) * FLOAT_BYTES
        # What autograd keeps: the layer's output, and as much again for each of its
        # normalization, activation and dropout (each saves its own input or mask).
        node = project.network.nodes.get(nid)
        extras = 0
        if node is not None:
            extras += node.normalization.get("kind", "none") != "none"
            extras += node.activation not in ("none", None)
            extras += bool(node.dropout)
        out = math.prod(info.output_shape) if info.output_shape else 0
        node_acts = out * batch * FLOAT_BYTES * (1 + extras)
        weights += node_weights
        activations += node_acts
        per_node[nid] = node_weights + node_acts
    biggest = max(per_node, key=per_node.get, default="")
    available, where = available_memory(device)
    return MemoryEstimate(
        weights,
        activations,
        batch,
        biggest,
        per_node.get(biggest, 0),
        available,
        where,
        data_bytes(project, analysis, base),
        requested,
    )


def data_bytes(project: Project, analysis: Analysis, base: Path | None = None) -> int:
    """The dataset as the studio holds it (float32 tensors of the Input's shape), counted
    without reading it: samples (files, CSV lines, or the sample's size) x sample size.
    0 when it cannot be told cheaply (a plugin's source, a path not there)."""
    info = analysis.layers.get(analysis.input_id or "")
    if info is None or not info.output_shape:
        return 0
    samples, size = data_samples(project, base), math.prod(info.output_shape)
    if project.data.get("source") == "image_folder":
        from studio.data.sources import on_disk

        if on_disk(project.data.get("storage", "auto"), samples, "L", (1, size)):
            return 0  # a disk cache, read a batch at a time: no copy is held
    return samples * size * FLOAT_BYTES


def data_samples(project: Project, base: Path | None = None) -> int:
    """Samples in the dataset, counted without reading it (0: cannot be told cheaply)."""
    source, path = project.data.get("source"), str(project.data.get("path") or "")
    if source == "digits":
        return 1797
    where = Path(path) if Path(path).is_absolute() or base is None else Path(base) / path
    try:
        stamp = where.stat().st_mtime_ns
    except OSError:
        return 0
    return _samples(str(source), str(where), stamp)


@functools.lru_cache(maxsize=16)
def _samples(source: str, where: str, stamp: int) -> int:
    """Samples in a CSV file (its lines) or an image folder (its image files); cached by
    the path's modification time, as the window asks again after every edit."""
    path = Path(where)
    try:
        if source == "csv" and path.is_file():
            with open(path, "rb") as f:
                lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
            return max(0, lines - 1)
        if source == "image_folder" and path.is_dir():
            from studio.data.decode import IMAGE_SUFFIXES

            return sum(
                1
                for _, _, names in os.walk(path)
                for name in names
                if Path(name).suffix.lower() in IMAGE_SUFFIXES
            )
    except OSError:
        pass
    return 0


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def is_out_of_memory(err: BaseException) -> bool:
    """torch's CPU allocator, CUDA, and Python itself each say it differently."""
    if isinstance(err, MemoryError):
        return True
    import torch

    if isinstance(err, getattr(torch, "OutOfMemoryError", ())):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and (
        "DefaultCPUAllocator" in text
        or "can't allocate memory" in text
        or "out of memory" in text.lower()
    )


def out_of_memory_sentence(
    project: Project, analysis: Analysis, device: str = "cpu", run: bool = True
) -> str:
    e = estimate(project, analysis, device)
    where = "GPU memory" if device.startswith("cuda") else "memory"
    return (
        f"Training ran out of {where} at batch size {e.batch_size:,} (one step needs about "
        f"{human_bytes(e.total)}; the biggest layer is '{e.biggest}', "
        f"{human_bytes(e.biggest_bytes)}): lower training.batch_size or make '{e.biggest}' "
        "smaller." + (" The run is marked failed; its last checkpoint is kept." if run else "")
    )
