"""Per-layer probes that run inside the training step without changing its math.

Every probe keeps its results on the device; nothing is copied to the host until the
engine flushes at GUI rate, so steps where nothing is sent never synchronize. Gradient
norms come from one `torch._foreach_norm` call and are shared with gradient clipping.
Activation statistics use forward hooks that exist only on sampled steps and look at the
first 8 samples of the batch (no random sampling, so the global RNG that dropout uses is
untouched). Each probe is scheduled by its configured interval and, when a budget is set,
stretched so its measured cost stays under that fraction of the step time.

A pretrained backbone node shows as one layer per stage, named "node.stage". Fine-tuning
freezes and unfreezes stages during a run; the layer list stays fixed (every layer that
may train), and a layer frozen at the moment reports NaN for its gradient norm and
update ratio, with a `frozen` mask in the event, so plots draw a gap and the diagnosis
leaves it out.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from studio.training.finetune import stages_of

SAMPLES = 8
HISTOGRAM_BINS = 40
SATURATING = {
    "sigmoid": (0.5, 0.49),
    "tanh": (0.0, 0.98),
}  # centre, distance that counts as saturated
RECTIFIED = {"relu"}


@dataclass
class Layer:
    """A node with trainable parameters, as the monitors see it."""

    name: str
    type: str
    params: list[nn.Parameter]
    weight: nn.Parameter | None  # the main weight, for histograms
    numel: int


def trainable_layers(model: nn.Module, node_types: dict[str, str]) -> list[Layer]:
    layers = []
    for node, block in model.layers.items():
        for name, named in _parts(node, block):
            params = [p for _, p in named if p.requires_grad]
            if not params:
                continue
            weight = next(
                (
                    p
                    for n, p in named
                    if n.rsplit(".", 1)[-1].startswith("weight") and p.requires_grad
                ),
                None,
            )
            layers.append(
                Layer(name, node_types[node], params, weight, sum(p.numel() for p in params))
            )
    return layers


def _parts(node: str, block: nn.Module) -> list[tuple[str, list[tuple[str, nn.Parameter]]]]:
    """A block's monitored parts: the whole block, or a backbone's stages ("node.stage")
    followed by whatever of the block lies outside them (named after the node)."""
    stages = stages_of(block)
    if stages is None:
        return [(node, list(block.named_parameters()))]
    parts, staged = [], set()
    for stage, module in stages:
        named = list(module.named_parameters())
        staged.update(id(p) for _, p in named)
        parts.append((f"{node}.{stage}", named))
    parts.append((node, [(n, p) for n, p in block.named_parameters() if id(p) not in staged]))
    return parts


def activation_of(block: nn.Module, node_type: str, option: str) -> tuple[str, nn.Module] | None:
    """Which activation a block applies and the module whose output shows it."""
    standalone = {
        "ReLU": "relu",
        "Sigmoid": "sigmoid",
        "Tanh": "tanh",
        "LeakyReLU": "leaky_relu",
        "GELU": "gelu",
    }
    if node_type in standalone:
        return standalone[node_type], block
    if option not in ("none", "softmax") and getattr(block, "act", None) is not None:
        return option, block.act
    return None


class Schedule:
    """When a probe runs next: every `every` steps, stretched to fit a time budget."""

    def __init__(self, every: int, budget: float):
        self.every = every
        self.budget = budget
        self.next_step = 0
        self.cost = 0.0  # seconds, smoothed

    def due(self, step: int) -> bool:
        return step >= self.next_step

    def ran(self, step: int, seconds: float, step_seconds: float) -> None:
        self.cost = seconds if self.cost == 0 else 0.8 * self.cost + 0.2 * seconds
        gap = self.every
        if self.budget > 0 and step_seconds > 0:
            gap = max(gap, math.ceil(self.cost / (self.budget * step_seconds)))
        self.next_step = step + gap


@dataclass
class Pending:
    """Device tensors waiting for the next flush."""

    grad_steps: list[int] = field(default_factory=list)
    grad_norms: list[torch.Tensor] = field(default_factory=list)
    grad_frozen: list[np.ndarray] = field(default_factory=list)
    weight_steps: list[int] = field(default_factory=list)
    weight_norms: list[torch.Tensor] = field(default_factory=list)
    update_ratios: list[torch.Tensor] = field(default_factory=list)
    weight_frozen: list[np.ndarray] = field(default_factory=list)
    act_steps: list[int] = field(default_factory=list)
    act_stats: list[torch.Tensor] = field(default_factory=list)
    histograms: list[dict] = field(default_factory=list)


class Monitors:
    """All per-layer probes of one training run."""

    def __init__(
        self,
        model: nn.Module,
        node_types: dict[str, str],
        activations: dict[str, str],
        settings: dict,
    ):
        self.model = model
        self.layers = trainable_layers(model, node_types)
        self.names = [layer.name for layer in self.layers]
        self.params = [p for layer in self.layers for p in layer.params]
        # Parameter → layer index, to sum per-parameter norms into per-layer norms.
        self.owner = torch.tensor(
            [i for i, layer in enumerate(self.layers) for _ in layer.params], dtype=torch.long
        )
        self.weights = [p for layer in self.layers for p in layer.params if p.dim() > 1]
        self.weight_owner = torch.tensor(
            [i for i, layer in enumerate(self.layers) for p in layer.params if p.dim() > 1],
            dtype=torch.long,
        )
        self.enabled = settings["enabled"]
        # One budget shared by the four probes, not one each.
        budget = settings["budget"] / 4
        self.schedules = {
            "gradients": Schedule(settings["gradients_every"], budget),
            "weights": Schedule(settings["weights_every"], budget),
            "histograms": Schedule(settings["histograms_every"], budget),
            "activations": Schedule(settings["activations_every"], budget),
        }
        self.act_layers: list[tuple[str, str, nn.Module]] = []
        for name, block in model.layers.items():
            found = activation_of(block, node_types[name], activations.get(name, "none"))
            if found:
                self.act_layers.append((name, found[0], found[1]))
        self.pending = Pending()
        self.step_seconds = 0.0
        self._hooks: list = []
        self._act_values: list[torch.Tensor] = []
        self._old_weights: list[torch.Tensor] | None = None
        self._norm_seconds = 0.0
        self._clone_seconds = 0.0
        self.training_changed()

    def training_changed(self) -> None:
        """Re-read which parameters train now (fine-tuning freezes and unfreezes stages)."""
        active = [i for i, p in enumerate(self.params) if p.requires_grad]
        self.active = [self.params[i] for i in active]
        moving = [i for i, w in enumerate(self.weights) if w.requires_grad]
        self.active_weights = [self.weights[i] for i in moving]
        index = torch.tensor(active, dtype=torch.long)
        trains = torch.zeros(len(self.layers), dtype=torch.bool)
        trains[self.owner[index]] = True
        self.frozen = (~trains).numpy()
        self._index = {
            "owner": self.owner[index],
            "weight_owner": self.weight_owner,
            "moving_owner": self.weight_owner[torch.tensor(moving, dtype=torch.long)],
            "frozen": torch.nonzero(~trains).flatten(),
        }
        self._on_device: dict[str, torch.Tensor] = {}

    # -- scheduling -------------------------------------------------------------------
    def wants(self, kind: str, step: int) -> bool:
        return self.enabled and self.schedules[kind].due(step)

    def _ran(self, kind: str, step: int, started: float) -> None:
        self.schedules[kind].ran(step, time.perf_counter() - started, self.step_seconds)

    # -- gradients (shared with clipping) ---------------------------------------------
    def gradient_norms(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per-parameter gradient norms of parameters that have gradients."""
        started = time.perf_counter()
        # Frozen parameters have no gradient: _foreach_norm never sees a None.
        grads = [p.grad for p in self.active if p.grad is not None]
        out = grads, list(torch._foreach_norm(grads)) if grads else []
        self._norm_seconds = time.perf_counter() - started
        return out

    def record_gradients(self, step: int, per_param: list[torch.Tensor]) -> None:
        # Charge the norms computed in gradient_norms() to this probe too.
        started = time.perf_counter() - self._norm_seconds
        if per_param and len(per_param) == len(self.active):
            owner = self._index_on("owner", per_param[0].device)
            squares = torch.stack(per_param).float().square()
            per_layer = (
                torch.zeros(len(self.layers), device=squares.device)
                .index_add_(0, owner, squares)
                .sqrt()
            )
            self.pending.grad_steps.append(step)
            self.pending.grad_norms.append(self._frozen_to_nan(per_layer))
            self.pending.grad_frozen.append(self.frozen)
        self._ran("gradients", step, started)

    def _index_on(self, name: str, device: torch.device) -> torch.Tensor:
        cached = self._on_device.get(name)
        if cached is None or cached.device != device:
            cached = self._on_device[name] = self._index[name].to(device)
        return cached

    def _frozen_to_nan(self, per_layer: torch.Tensor) -> torch.Tensor:
        if not self.frozen.any():
            return per_layer
        return per_layer.index_fill(0, self._index_on("frozen", per_layer.device), math.nan)

    # -- weights: norms and update-to-weight ratio --------------------------------------
    def before_update(self, step: int) -> None:
        if self.wants("weights", step) and self.active_weights:
            started = time.perf_counter()
            self._old_weights = [w.detach().clone() for w in self.active_weights]
            self._clone_seconds = time.perf_counter() - started

    def after_update(self, step: int) -> None:
        if self._old_weights is None:
            return
        started = time.perf_counter() - self._clone_seconds
        current = [w.detach() for w in self.weights]
        moving = [w.detach() for w in self.active_weights]
        deltas = torch._foreach_sub(moving, self._old_weights)
        w_norms = torch.stack(torch._foreach_norm(current)).float().square()
        d_norms = torch.stack(torch._foreach_norm(deltas)).float().square()
        device = w_norms.device
        per_w = (
            torch.zeros(len(self.layers), device=device)
            .index_add_(0, self._index_on("weight_owner", device), w_norms)
            .sqrt()
        )
        per_d = (
            torch.zeros(len(self.layers), device=device)
            .index_add_(0, self._index_on("moving_owner", device), d_norms)
            .sqrt()
        )
        self.pending.weight_steps.append(step)
        self.pending.weight_norms.append(per_w)
        self.pending.update_ratios.append(self._frozen_to_nan(per_d / per_w.clamp_min(1e-12)))
        self.pending.weight_frozen.append(self.frozen)
        self._old_weights = None
        self._ran("weights", step, started)

    # -- histograms ---------------------------------------------------------------------
    def record_histograms(self, step: int) -> None:
        started = time.perf_counter()
        entry: dict = {"step": step, "weights": {}, "gradients": {}}
        for layer in self.layers:
            w = layer.weight
            if w is None:
                continue
            entry["weights"][layer.name] = _histogram(w.detach())
            if w.grad is not None:
                entry["gradients"][layer.name] = _histogram(w.grad.detach())
        self.pending.histograms.append(entry)
        self._ran("histograms", step, started)

    # -- activations --------------------------------------------------------------------
    def attach_activation_hooks(self, step: int) -> None:
        if not self.act_layers or not self.wants("activations", step):
            return
        self._act_started = time.perf_counter()
        self._act_values = []
        for _, kind, module in self.act_layers:
            self._hooks.append(module.register_forward_hook(self._stats_hook(kind)))

    def _stats_hook(self, kind: str):
        def hook(module, inputs, output):
            a = output[:SAMPLES].detach().float()
            n = a.numel()
            mean = a.sum() / n
            std = (a.square().sum() / n - mean.square()).clamp_min(0).sqrt()
            if kind in SATURATING:
                centre, reach = SATURATING[kind]
                special = ((a - centre).abs() > reach).sum() / n
            elif kind in RECTIFIED:
                # A unit (feature or channel) is dead when it is zero for every sample.
                per_unit = (
                    a.abs().sum(dim=[d for d in range(a.dim()) if d != 1])
                    if a.dim() > 2
                    else a.abs().sum(0)
                )
                special = (per_unit == 0).sum() / per_unit.numel()
            else:
                special = torch.zeros((), device=a.device)
            self._act_values.append(torch.stack([mean, std, special]))

        return hook

    def detach_activation_hooks(self, step: int) -> None:
        if not self._hooks:
            return
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        if len(self._act_values) == len(self.act_layers):
            self.pending.act_steps.append(step)
            self.pending.act_stats.append(torch.stack(self._act_values))
        self._act_values = []
        self.schedules["activations"].ran(
            step, time.perf_counter() - self._act_started, self.step_seconds
        )

    # -- flushing -----------------------------------------------------------------------
    def flush(self) -> list[dict]:
        """Copy what is pending to the host as plain numpy events."""
        p, events = self.pending, []
        if p.grad_norms:
            events.append(
                {
                    "type": "gradients",
                    "step": np.array(p.grad_steps),
                    "norms": _host(p.grad_norms),
                    "frozen": np.stack(p.grad_frozen),  # (steps, layers): NaN norm = frozen
                }
            )
        if p.weight_norms:
            events.append(
                {
                    "type": "weights",
                    "step": np.array(p.weight_steps),
                    "norms": _host(p.weight_norms),
                    "update_ratio": _host(p.update_ratios),
                    "frozen": np.stack(p.weight_frozen),
                }
            )
        if p.act_stats:
            stats = _host(p.act_stats)  # (k, layers, 3)
            events.append(
                {
                    "type": "activations",
                    "step": np.array(p.act_steps),
                    "layers": [a[0] for a in self.act_layers],
                    "kinds": [a[1] for a in self.act_layers],
                    "mean": stats[:, :, 0],
                    "std": stats[:, :, 1],
                    "saturated_or_dead": stats[:, :, 2],
                }
            )
        for entry in p.histograms:
            events.append(
                {
                    "type": "histograms",
                    "step": entry["step"],
                    "weights": {k: _host_hist(v) for k, v in entry["weights"].items()},
                    "gradients": {k: _host_hist(v) for k, v in entry["gradients"].items()},
                }
            )
        self.pending = Pending()
        return events


def _histogram(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    t = t.float().flatten()
    bounds = torch.aminmax(t)
    lo, hi = (float(v) for v in torch.stack(bounds).tolist())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = -1.0, 1.0
        t = torch.nan_to_num(t, nan=0.0, posinf=hi, neginf=lo)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return torch.histc(t, HISTOGRAM_BINS, lo, hi), torch.tensor([lo, hi])


def _host(tensors: list[torch.Tensor]) -> np.ndarray:
    return torch.stack(tensors).cpu().numpy()


def _host_hist(pair) -> tuple[np.ndarray, np.ndarray]:
    counts, bounds = pair
    lo, hi = bounds.tolist()
    return counts.cpu().numpy(), np.linspace(lo, hi, HISTOGRAM_BINS + 1)
