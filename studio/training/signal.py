"""The signal through the network on sampled steps: forward and back-propagated.

For every monitored layer (a backbone's stages included) this probe records, on the steps
its schedule picks:
- the RMS of the layer's output (the forward signal), and
- the RMS of the loss gradient with respect to that output (the back-propagated signal,
  Glorot & Bengio 2010, Fig. 7): how much of the error reaches the layer. Under a poor
  initializer it shrinks layer by layer toward the input while the weight gradients can
  stay flat, so it shows what weight-gradient norms cannot.
For every layer with an activation it also records the activations' mean and std and the
fraction of saturated sigmoid/tanh outputs (from the batch's first samples), and, over the
whole batch, which ReLU units fired. A unit is dead only if it gave zero for every sample
of a window of at least `DEAD_WINDOW` samples; a window spans sampled steps, so the
fraction is never judged from one small batch.

Forward hooks exist only on sampled steps; a tensor hook on each output reads its
gradient during the backward pass. Hooks only read (no in-place change, no random draws),
so losses stay bit-identical. A hook costs one or two reductions: each result is a 0-d
tensor, a step's results are stacked in one op and stay on the device until `flush`,
where the arithmetic (means, stds, fractions) is done on the host.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from studio.training import events

SAMPLES = 8  # samples per batch for activation means, stds and saturation
DEAD_WINDOW = 256  # samples a ReLU unit must stay at zero for before it counts as dead
SATURATING = {
    "sigmoid": (0.5, 0.49),
    "tanh": (0.0, 0.98),
}  # centre, distance that counts as saturated
RECTIFIED = {"relu"}


@dataclass
class Watched:
    """A monitored layer's output: its name and the module that produces it."""

    name: str
    module: nn.Module


@dataclass
class Activation:
    """A layer whose output comes out of an activation function."""

    name: str
    kind: str  # relu, sigmoid, tanh, leaky_relu, gelu
    module: nn.Module  # whose output is the activation's output


@dataclass
class _Window:
    """Per ReLU layer, the per-unit maxima of the sampled steps since the window began."""

    first_step: int = -1
    samples: int = 0
    maxima: dict[int, list[torch.Tensor]] = field(default_factory=dict)


@dataclass
class _Pending:
    steps: list[int] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)  # one stacked vector per step
    counts: list[np.ndarray] = field(default_factory=list)  # elements behind each value
    dead: list[tuple[int, int, int, torch.Tensor]] = field(default_factory=list)


def _unit_maxima(a: torch.Tensor) -> torch.Tensor:
    """Per unit (image channel, or feature), the largest output over the batch."""
    if a.dim() == 4:  # batch, channels, height, width
        return a.amax(dim=(0, 2, 3))
    if a.dim() == 3:  # batch, steps, features
        return a.amax(dim=(0, 1))
    return a.reshape(a.shape[0], -1).amax(dim=0)


class SignalProbe:
    """Per sampled step, one vector of 0-d results laid out as: forward norm and gradient
    norm per layer, then sum, norm and saturated count per activation layer."""

    def __init__(self, watched: list[Watched], activations: list[Activation]):
        self.watched = watched
        self.activations = activations
        self.rectified = [i for i, a in enumerate(activations) if a.kind in RECTIFIED]
        self.pending = _Pending()
        self.window = _Window()
        self._hooks: list = []
        self._slots: list[torch.Tensor | None] = []
        self._counts = np.zeros(0)
        self._batch = 0
        self._nan: torch.Tensor | None = None
        self._seen: tuple | None = None  # (tensor, slot) the last activation hook read
        self._latest_dead: np.ndarray | None = None
        self._silent_before: list[torch.Tensor] | None = None  # the last window's silent units
        self._full = True  # whether this step's hooks record everything or units only
        self._windows = 0  # dead-unit windows completed
        self._seconds = 0.0  # what this step's hooks and bookkeeping took

    @property
    def idle(self) -> bool:
        return not self.watched and not self.activations

    @property
    def opening(self) -> bool:
        """True until the first dead-unit window is full: until then the ReLU units are
        counted on every step (`attach(full=False)` where the whole probe is not due), so
        units dead from the start are known within a few steps."""
        return bool(self.rectified) and self._windows == 0

    def _slot(self, kind: str, index: int) -> int:
        layers, acts = len(self.watched), len(self.activations)
        offsets = {
            "forward": 0,
            "backward": layers,
            "sum": 2 * layers,
            "norm": 2 * layers + acts,
            "special": 2 * layers + 2 * acts,
        }
        return offsets[kind] + index

    # -- one sampled step ----------------------------------------------------------------
    def attach(self, step: int, full: bool = True) -> None:
        """Before the forward pass of a sampled step (`full=False`: count ReLU units only)."""
        started = time.perf_counter()
        self._full = full
        size = 2 * len(self.watched) + 3 * len(self.activations)
        self._slots = [None] * size
        self._counts = np.zeros(size)
        self._batch = 0
        self._seen = None
        for i, a in enumerate(self.activations):
            if full:
                self._hooks.append(a.module.register_forward_hook(self._act_hook(i, a.kind)))
            elif a.kind in RECTIFIED:
                self._hooks.append(a.module.register_forward_hook(self._units_hook(i)))
        for i, w in enumerate(self.watched if full else ()):
            self._hooks.append(w.module.register_forward_hook(self._flow_hook(i)))
        self._seconds = time.perf_counter() - started

    def detach(self) -> None:
        """After the forward pass: the module hooks go; the tensor hooks wait for backward."""
        started = time.perf_counter()
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        self._seen = None
        self._seconds += time.perf_counter() - started

    def collect(self, step: int) -> float:
        """After the backward pass: this step's numbers join the pending ones. Returns the
        seconds the probe's own code took in this step (hooks included)."""
        started = time.perf_counter()
        present = [t for t in self._slots if t is not None]
        if not self._full:
            self._count_window(step)
        elif present:
            if self._nan is None or self._nan.device != present[0].device:
                self._nan = torch.full((), math.nan, device=present[0].device)
            values = torch.stack([self._nan if t is None else t for t in self._slots])
            self.pending.steps.append(step)
            self.pending.values.append(values)
            self.pending.counts.append(self._counts)
            self._count_window(step)
        self._slots = []
        return self._seconds + time.perf_counter() - started

    # -- hooks --------------------------------------------------------------------------
    def _flow_hook(self, index: int):
        slot = self._slot("forward", index)

        def hook(module, inputs, output):
            started = time.perf_counter()
            if isinstance(output, torch.Tensor) and output.is_floating_point() and output.numel():
                seen = self._seen
                if seen is not None and seen[0] is output:
                    # The block's output is its activation's: that hook measured it already.
                    self._slots[slot] = self._slots[seen[1]]
                    self._counts[slot] = self._counts[seen[1]]
                else:
                    a = output.detach()[:SAMPLES]
                    self._slots[slot] = torch.linalg.vector_norm(a, dtype=torch.float32)
                    self._counts[slot] = a.numel()
                if output.requires_grad:
                    output.register_hook(self._gradient_hook(index))
            self._seconds += time.perf_counter() - started

        return hook

    def _gradient_hook(self, index: int):
        slot = self._slot("backward", index)

        def hook(grad: torch.Tensor):
            started = time.perf_counter()
            if grad.numel():
                self._slots[slot] = torch.linalg.vector_norm(grad.detach(), dtype=torch.float32)
                self._counts[slot] = grad.numel()
            self._seconds += time.perf_counter() - started

        return hook

    def _act_hook(self, index: int, kind: str):
        total, norm, special = (self._slot(k, index) for k in ("sum", "norm", "special"))

        def hook(module, inputs, output):
            if not isinstance(output, torch.Tensor) or not output.numel():
                return
            started = time.perf_counter()
            full = output.detach()
            a = full[:SAMPLES]
            self._slots[total] = a.sum(dtype=torch.float32)
            self._slots[norm] = torch.linalg.vector_norm(a, dtype=torch.float32)
            self._counts[[total, norm, special]] = a.numel()
            if kind in SATURATING:
                centre, reach = SATURATING[kind]
                self._slots[special] = torch.count_nonzero((a - centre).abs() > reach).float()
            elif kind in RECTIFIED:
                self.window.maxima.setdefault(index, []).append(_unit_maxima(full))
                self._batch = full.shape[0]
            self._seen = (output, norm)
            self._seconds += time.perf_counter() - started

        return hook

    def _units_hook(self, index: int):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor) and output.numel():
                started = time.perf_counter()
                self.window.maxima.setdefault(index, []).append(_unit_maxima(output.detach()))
                self._batch = output.shape[0]
                self._seconds += time.perf_counter() - started

        return hook

    def _count_window(self, step: int) -> None:
        if not self.rectified or not self._batch:
            return
        w = self.window
        if w.first_step < 0:
            w.first_step = step
        w.samples += self._batch
        if w.samples < DEAD_WINDOW or len(w.maxima) < len(self.rectified):
            return
        silent = [torch.stack(w.maxima[i]).amax(0) <= 0 for i in self.rectified]
        before = self._silent_before
        if before is not None and [b.shape for b in before] == [s.shape for s in silent]:
            both = torch.stack([(s & b).float().mean() for s, b in zip(silent, before)])
        else:
            both = torch.full((len(silent),), float("nan"), device=silent[0].device)
        # One (2, layers) tensor, one copy to the host: silent now; silent in both windows.
        dead = torch.stack([torch.stack([s.float().mean() for s in silent]), both])
        self._silent_before = silent
        self.pending.dead.append((w.first_step, step, w.samples, dead))
        self.window = _Window()
        self._windows += 1

    # -- flushing -----------------------------------------------------------------------
    def flush(self, names: list[str]) -> list[events.Event]:
        p, out = self.pending, []
        self.pending = _Pending()
        dead_rows = []
        act_names = [a.name for a in self.activations]
        for first, last, samples, fractions in p.dead:
            values, persistent = fractions.cpu().numpy()
            dead_rows.append((last, values))
            out.append(
                events.DeadUnits(
                    step=last,
                    first_step=first,
                    samples=samples,
                    layers=[act_names[i] for i in self.rectified],
                    fraction=values,
                    persistent=persistent,
                )
            )
        if not p.values:
            return out
        values = torch.stack(p.values).cpu().numpy().astype(np.float64)
        counts = np.stack(p.counts)
        with np.errstate(all="ignore"):
            per_element = np.where(counts > 0, values, np.nan) / np.sqrt(
                np.where(counts > 0, counts, np.nan)
            )
        layers, acts = len(self.watched), len(self.activations)
        steps = np.array(p.steps)
        if layers:
            out.append(
                events.Flow(
                    step=steps,
                    layers=list(names),
                    forward_rms=per_element[:, :layers],
                    backprop_rms=per_element[:, layers : 2 * layers],
                )
            )
        if acts:
            base = 2 * layers
            with np.errstate(all="ignore"):
                n = counts[:, base : base + acts]
                mean = values[:, base : base + acts] / n
                rms = per_element[:, base + acts : base + 2 * acts]
                std = np.sqrt(np.clip(rms**2 - mean**2, 0, None))
                special = values[:, base + 2 * acts :] / n
            out.append(
                events.Activations(
                    step=steps,
                    layers=act_names,
                    kinds=[a.kind for a in self.activations],
                    mean=mean,
                    std=std,
                    saturated_or_dead=self._with_dead(special, p.steps, dead_rows),
                )
            )
        return out

    def _with_dead(self, special: np.ndarray, steps: list[int], dead_rows: list) -> np.ndarray:
        """A ReLU layer's value is the dead fraction of the newest complete window (none
        before the first window closes), never a guess from one batch."""
        special = special.copy()
        if not self.rectified:
            return special
        special[:, self.rectified] = np.nan
        latest, rows = self._latest_dead, iter(dead_rows)
        upcoming = next(rows, None)
        for k, step in enumerate(steps):
            while upcoming is not None and upcoming[0] <= step:
                latest, upcoming = upcoming[1], next(rows, None)
            if latest is not None:
                special[k, self.rectified] = latest
        self._latest_dead = latest
        return special
