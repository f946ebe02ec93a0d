"""Per-layer probes that run inside the training step without changing its math.

Every probe keeps its results on the device; they are copied to the host when the engine
flushes at GUI rate, so steps where nothing is sent never synchronize (histogram ranges
are the exception: two numbers read when a histogram is taken). Gradient norms come from
one `torch._foreach_norm` call and are shared with gradient clipping. The signal probe
(`studio.training.signal`) records forward and back-propagated magnitudes per layer and
activation health on sampled steps; its hooks exist only on those steps and draw nothing
from the global RNG that dropout uses.

Each probe runs every `*_every` steps, stretched so its cost stays within its share of
`budget` (a fraction of the step time). The cost is what the probe really adds to a step:
a step's time minus the typical time of steps where no probe ran, split between the
probes that ran in proportion to their own timers (which alone miss work the probes cause
elsewhere: autograd hooks, allocations, cache misses). So the schedule adapts to the
machine it runs on. When a probe would run every step, one step in `QUIET_EVERY` runs none,
to keep measuring what a plain step costs. Until a run's first dead-unit window (a few
hundred samples) is full, the ReLU units are also counted on the steps between (one
reduction per ReLU layer), so units dead from the start are reported within a few steps.

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

from studio.training import events
from studio.training.callbacks import Callback
from studio.training.signal import Activation, SignalProbe, Watched
from studio.transfer.backbone import stages_of

HISTOGRAM_BINS = 40
PROBES = ("gradients", "weights", "histograms", "activations")
QUIET_EVERY = 50  # at most this many steps in a row with a probe, when a budget is set
# At most this many steps between two update-ratio measurements, whatever the budget: the
# diagnosis ("learning rate too low") needs a handful of them within a few hundred steps.
# On a tiny network the budget alone spaced them ~65 steps apart on an idle machine: five
# in a 270-step run, the rule's bare minimum, so it fired or not by chance.
WEIGHTS_MAX_GAP = 30


@dataclass
class Layer:
    """A node (or a backbone's stage) with trainable parameters, as the monitors see it."""

    name: str
    type: str
    params: list[nn.Parameter]
    weight: nn.Parameter | None  # the main weight, for histograms
    numel: int
    output: nn.Module  # the module whose output is this layer's output


def trainable_layers(model: nn.Module, node_types: dict[str, str]) -> list[Layer]:
    layers = []
    for node, block in model.layers.items():
        for name, named, output in _parts(node, block):
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
                Layer(
                    name,
                    node_types[node],
                    params,
                    weight,
                    sum(p.numel() for p in params),
                    output,
                )
            )
    return layers


def _last_part(stage: nn.Module) -> nn.Module:
    """The module whose output is a stage's output (a stage of several parts is a list)."""
    return stage[-1] if isinstance(stage, nn.ModuleList) else stage


def _parts(node: str, block: nn.Module) -> list[tuple[str, list, nn.Module]]:
    """A block's monitored parts: the whole block, or a backbone's stages ("node.stage")
    followed by whatever of the block lies outside them (named after the node)."""
    stages = stages_of(block)
    if stages is None:
        return [(node, list(block.named_parameters()), block)]
    parts, staged = [], set()
    for stage, module in stages:
        named = list(module.named_parameters())
        staged.update(id(p) for _, p in named)
        parts.append((f"{node}.{stage}", named, _last_part(module)))
    rest = [(n, p) for n, p in block.named_parameters() if id(p) not in staged]
    parts.append((node, rest, block))
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


def activation_layers(
    model: nn.Module, node_types: dict[str, str], activations: dict[str, str]
) -> list[Activation]:
    """Every layer whose output comes out of an activation, a backbone's ReLU stages too."""
    out = []
    for name, block in model.layers.items():
        found = activation_of(block, node_types[name], activations.get(name, "none"))
        if found:
            out.append(Activation(name, found[0], found[1]))
        stages = stages_of(block)
        if stages:
            layer = getattr(block, "layer", block)
            kinds = getattr(layer, "stage_activations", None) or [""] * len(stages)
            for (stage, module), kind in zip(stages, kinds):
                if kind:
                    out.append(Activation(f"{name}.{stage}", kind, _last_part(module)))
    return out


class Schedule:
    """When a probe runs next: every `every` steps, stretched to fit a time budget."""

    def __init__(self, every: int, budget: float, max_gap: int | None = None):
        self.every = every
        self.budget = budget
        self.max_gap = max_gap
        self.next_step = 0
        self.cost = 0.0  # seconds a run adds to a step, smoothed

    def due(self, step: int) -> bool:
        return step >= self.next_step

    def ran(self, step: int, seconds: float, step_seconds: float) -> None:
        first = self.cost == 0
        # A hiccup of a busy machine (the process descheduled mid-probe) is not the probe's
        # cost: it would push the next run hundreds of steps away and starve the diagnosis.
        # A lasting rise still gets through, doubling at most per run.
        self.cost = seconds if first else 0.8 * self.cost + 0.2 * min(seconds, 2 * self.cost)
        gap = self.every
        if self.budget > 0 and step_seconds > 0:
            gap = max(gap, math.ceil(self.cost / (self.budget * step_seconds)))
            if first:  # one sample, maybe a warm-up: measure again soon
                gap = min(gap, 4 * self.every)
            if self.max_gap is not None:
                gap = min(gap, max(self.every, self.max_gap))
        self.next_step = step + gap


class StepClock:
    """What a step costs with no probe in it (the budget's yardstick), and what each probe
    that ran in a step really added to it."""

    def __init__(self):
        self.plain = 0.0  # seconds of a step without probes, smoothed

    def plain_step(self, seconds: float) -> None:
        if self.plain == 0:
            self.plain = seconds
        else:
            # A hiccup of the machine (another process, a page fault) is not the step's
            # cost; a lasting slow-down still gets through, doubling at most per step.
            self.plain = 0.9 * self.plain + 0.1 * min(seconds, 2 * self.plain)

    def shares(self, seconds: float, direct: dict[str, float]) -> dict[str, float]:
        """Each probe's cost in a step that took `seconds`: the step's excess over a plain
        one, split by the probes' own timers, never less than what a timer saw."""
        total = sum(direct.values())
        if self.plain <= 0 or total <= 0:
            return dict(direct)
        extra = seconds - self.plain
        return {kind: max(t, extra * t / total) for kind, t in direct.items()}


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
    histograms: list[dict] = field(default_factory=list)


class Monitors:
    """All per-layer probes of one training run.

    Called per step through the training hooks (`Probing` below): `begin_step` before the
    forward pass, `forward_done` after it, `backward_done` after the backward pass, the
    gradient, weight and histogram probes where they are due, and `step_done` with the
    step's duration.
    """

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
        self.budget = settings["budget"]
        # One budget shared by the probes, not one each.
        share = self.budget / len(PROBES)
        self.schedules = {
            kind: Schedule(
                settings[f"{kind}_every"], share, WEIGHTS_MAX_GAP if kind == "weights" else None
            )
            for kind in PROBES
        }
        self.act_layers = activation_layers(model, node_types, activations)
        self.signal = SignalProbe(
            [Watched(layer.name, layer.output) for layer in self.layers], self.act_layers
        )
        self.clock = StepClock()
        self.pending = Pending()
        self._old_weights: list[torch.Tensor] | None = None
        self._norm_seconds = 0.0
        self._direct: dict[str, float] = {}  # probe → seconds its timers saw this step
        # Seconds each probe's numbers took to copy over at flushes, charged to its next run.
        self._flush_debt: dict[str, float] = {}
        self._quiet = False
        # The first step any probe is due at; before it a step skips the probes' hooks
        # (six calls a step, ~1% of a tiny network's step when each did its checks).
        self._next_due = 0
        self.probing = False  # whether this step may run a probe (set by begin_step)
        self._last_plain = -1  # the last step no probe ran in
        self._signal_step: int | None = None  # the step the signal probe is hooked into
        self._signal_kind = "activations"  # or "opening": counting ReLU units only
        self._spent = self._stepped = 0.0  # seconds: charged to probes, of all steps
        self._norms_step = -1  # the step `norms` computed `_norms` in
        self._norms: tuple = ([], [])
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
        return self.enabled and not self._quiet and self.schedules[kind].due(step)

    def _charge(self, kind: str, seconds: float) -> None:
        self._direct[kind] = self._direct.get(kind, 0.0) + seconds

    def begin_step(self, step: int) -> None:
        """Before the forward pass: decide whether this step is a plain one, and hook
        the signal probe in when it is due."""
        if self._direct:
            self._direct = {}
        self._signal_step = None
        self.probing = self.enabled and (step >= self._next_due or self.signal.opening)
        if not self.probing:
            self._quiet = False
            return
        self._quiet = (
            self.budget > 0
            and step - self._last_plain >= QUIET_EVERY
            and any(s.due(step) for s in self.schedules.values())
        )
        if self.signal.idle:
            return
        if self.wants("activations", step):
            self._signal_step = step
            self._signal_kind = "activations"
            self.signal.attach(step)
        elif self.enabled and not self._quiet and self.signal.opening:
            # Only the ReLU units, to fill the first dead-unit window; not a scheduled run.
            self._signal_step = step
            self._signal_kind = "opening"
            self.signal.attach(step, full=False)

    def forward_done(self) -> None:
        if self._signal_step is not None:
            self.signal.detach()

    def backward_done(self) -> None:
        if self._signal_step is not None:
            self._charge(self._signal_kind, self.signal.collect(self._signal_step))
            self._signal_step = None

    @property
    def share(self) -> float:
        """The part of the steps' time the probes took, by the same accounting."""
        return self._spent / self._stepped if self._stepped else 0.0

    def step_done(self, step: int, seconds: float) -> None:
        """After the step: what it cost sets when each probe that ran is due again."""
        self._stepped += seconds
        if not self._direct:
            self.clock.plain_step(seconds)
            self._last_plain = step
            return
        plain = self.clock.plain or seconds
        if self._flush_debt:
            # What the last flushes spent on this probe's numbers is part of its cost.
            for kind in self._direct.keys() & self._flush_debt.keys():
                self._direct[kind] += self._flush_debt.pop(kind)
        for kind, cost in self.clock.shares(seconds, self._direct).items():
            self._spent += cost
            if kind in self.schedules:  # the opening window's unit counts have none
                self.schedules[kind].ran(step, cost, plain)
        self._next_due = min(s.next_step for s in self.schedules.values())
        self._direct = {}

    # -- gradients (shared with clipping) ---------------------------------------------
    def norms(self, step: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """This step's per-parameter gradient norms, computed once for the gradient probe
        and gradient clipping together (gradient_norms)."""
        if self._norms_step != step:
            self._norms = self.gradient_norms()
            self._norms_step = step
        return self._norms

    def gradient_norms(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per-parameter gradient norms of parameters that have gradients."""
        started = time.perf_counter()
        # Frozen parameters have no gradient: _foreach_norm never sees a None.
        grads = [p.grad for p in self.active if p.grad is not None]
        out = grads, list(torch._foreach_norm(grads)) if grads else []
        self._norm_seconds = time.perf_counter() - started
        return out

    def record_gradients(self, step: int, per_param: list[torch.Tensor]) -> None:
        started = time.perf_counter()
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
        # The norms computed in gradient_norms() are this probe's cost too.
        self._charge("gradients", time.perf_counter() - started + self._norm_seconds)

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
            self._charge("weights", time.perf_counter() - started)

    def after_update(self, step: int) -> None:
        if self._old_weights is None:
            return
        started = time.perf_counter()
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
        self._charge("weights", time.perf_counter() - started)

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
        self._charge("histograms", time.perf_counter() - started)

    # -- flushing -----------------------------------------------------------------------
    def flush(self) -> list[events.Event]:
        """Copy what is pending to the host as plain numpy events."""
        # The signal first: the diagnosis judges gradients by the back-propagated profile
        # when it has one, and by the weight gradients alone otherwise.
        clock = time.perf_counter()
        p, out = self.pending, self.signal.flush(self.names)
        clock = self._owe("activations", clock, bool(out))
        if p.grad_norms:
            out.append(
                events.Gradients(
                    step=np.array(p.grad_steps),
                    norms=_host(p.grad_norms),
                    frozen=np.stack(p.grad_frozen),  # (steps, layers): NaN norm = frozen
                )
            )
            clock = self._owe("gradients", clock)
        if p.weight_norms:
            out.append(
                events.Weights(
                    step=np.array(p.weight_steps),
                    norms=_host(p.weight_norms),
                    update_ratio=_host(p.update_ratios),
                    frozen=np.stack(p.weight_frozen),
                )
            )
            clock = self._owe("weights", clock)
        for entry in p.histograms:
            out.append(
                events.Histograms(
                    step=entry["step"],
                    weights={k: _host_hist(v) for k, v in entry["weights"].items()},
                    gradients={k: _host_hist(v) for k, v in entry["gradients"].items()},
                )
            )
        if p.histograms:
            self._owe("histograms", clock)
        self.pending = Pending()
        return out

    def _owe(self, kind: str, since: float, sent: bool = True) -> float:
        """Charge the time since `since` (copying `kind`'s numbers over) to its next run."""
        now = time.perf_counter()
        if sent and self.budget > 0:
            self._flush_debt[kind] = self._flush_debt.get(kind, 0.0) + now - since
        return now


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


class Probing(Callback):
    """The monitors hooked into the training step (studio/training/callbacks.py)."""

    def __init__(self, monitors: Monitors):
        self.monitors = monitors

    def on_train_batch_start(self, trainer, step: int) -> None:
        self.monitors.begin_step(step)

    def on_before_backward(self, trainer, step: int, loss) -> None:
        self.monitors.forward_done()

    def on_step_skipped(self, trainer, step: int) -> None:
        self.monitors.backward_done()

    def on_after_backward(self, trainer, step: int) -> None:
        monitors = self.monitors
        if not monitors.probing:
            return
        monitors.backward_done()
        if monitors.wants("gradients", step):  # as back-propagated, before any clipping
            monitors.record_gradients(step, monitors.norms(step)[1])

    def on_before_optimizer_step(self, trainer, step: int) -> None:
        monitors = self.monitors
        if not monitors.probing:
            return
        if monitors.wants("histograms", step):  # the gradients the update will use
            monitors.record_histograms(step)
        monitors.before_update(step)

    def on_after_optimizer_step(self, trainer, step: int) -> None:
        self.monitors.after_update(step)

    def on_step_end(self, trainer, step: int) -> None:
        self.monitors.step_done(step, trainer.step_seconds)
