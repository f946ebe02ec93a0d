"""Diagnosis: rules that turn training numbers into plain advice.

A `Diagnosis` listens to the engine's events and raises findings, each with the step, the
layers, the evidence and a suggested change in the studio's own controls. Where the change
is mechanical, the finding carries a `fix`: node option changes and training settings that
the window applies as one undoable command (CONCEPTS §4's remedies).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from studio.document import Project
from studio.registry import catalog

VANISHING_RATIO = 1e-3  # first layer vs output layer: a thousandfold smaller
AFFECTED_RATIO = 1e-2
EXPLODING_RATIO = 1e3  # a gradient norm a thousandfold above its early median
SATURATED = 0.5
DEAD = 0.5


@dataclass
class Finding:
    kind: str
    severity: str  # "warning" or "error"
    step: int
    title: str
    message: str
    remedy: str
    layers: list[str] = field(default_factory=list)
    evidence: dict = field(default_factory=dict)
    epoch: int | None = None
    # {"nodes": {node_id: {field: value}}, "training": {"dotted.path": value}}
    fix: dict | None = None
    # Training cannot recover from this: the engine stops (keeping the last good checkpoint).
    stop: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        return f"{self.title}: {self.message} {self.remedy}"


def _power(x: float) -> str:
    """10⁻⁷ style, for ratios a person can read at a glance."""
    if x <= 0 or not math.isfinite(x):
        return str(x)
    exponent = round(math.log10(x))
    digits = str(exponent).replace("-", "⁻").translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"10{digits}"


def _span(names: list[str]) -> str:
    """'dense1', 'dense1, dense4', or 'dense1–dense18 (18 layers)' for long runs of layers."""
    if len(names) <= 3:
        return ", ".join(names)
    return f"{names[0]}–{names[-1]} ({len(names)} layers)"


class Diagnosis:
    """Listens to training events; calls `on_finding` once per kind of problem."""

    def __init__(self, project: Project, on_finding: Callable[[Finding], None] | None = None):
        self.project = project
        self.on_finding = on_finding
        self.findings: list[Finding] = []
        self.layers: list[str] = []
        self.layer_params = np.ones(0)
        self.lr = project.training["optimizer"]["lr"]
        self._grad_history: deque = deque(maxlen=20)
        self._early_total: list[float] = []
        self._losses: list[float] = []
        self._epochs: list[dict] = []
        self._act_history: deque = deque(maxlen=3)
        self.classes = 10
        # Layers frozen now (fine-tuning): their gradient norms are NaN and are left out.
        self.frozen = np.zeros(0, dtype=bool)

    def __call__(self, event: dict) -> None:
        handler = getattr(self, f"_on_{event['type']}", None)
        if handler:
            handler(event)

    def raised(self, kind: str) -> bool:
        return any(f.kind == kind for f in self.findings)

    def _raise(self, finding: Finding) -> None:
        if self.raised(finding.kind):
            return
        self.findings.append(finding)
        if self.on_finding:
            self.on_finding(finding)

    # -- events -------------------------------------------------------------------------
    def _on_start(self, event):
        self.layers = list(event["layers"])
        self.classes = len(event.get("classes") or []) or 10
        self.layer_params = np.asarray(event["layer_params"], dtype=float)
        self.frozen = np.zeros(len(self.layers), dtype=bool)

    def _on_gradients(self, event):
        norms = np.asarray(event["norms"], dtype=float)
        frozen = event.get("frozen")
        if frozen is None:
            frozen = np.zeros(norms.shape, dtype=bool)
        for step, row, mask in zip(event["step"], norms, np.asarray(frozen, dtype=bool)):
            if mask.shape != self.frozen.shape or np.any(mask != self.frozen):
                # A new fine-tuning phase: its norms are compared with its own early values.
                self.frozen = mask
                self._grad_history.clear()
                self._early_total.clear()
            self._grad_history.append(row)
            total = float(np.sqrt(np.sum(row[~mask] ** 2)))
            if len(self._early_total) < 5:
                self._early_total.append(total)
            self._check_exploding(int(step), row, total)
        self._check_vanishing(int(event["step"][-1]))

    def _on_steps(self, event):
        self._losses.extend(float(v) for v in event["loss"])
        step = int(event["step"][-1])
        self._check_lr_too_high(step)
        self._check_lr_too_low(step)

    def _on_diverged(self, event):
        self._raise(
            Finding(
                "exploding_gradients",
                "error",
                int(event["step"]),
                "Training diverged",
                f"The loss became {event['loss']} at step {event['step'] + 1}, so training stopped; the last good "
                "weights were kept.",
                f"Lower the learning rate (try {self.lr / 10:g}) and turn on gradient clipping (max norm 1.0); "
                "batch normalization also steadies deep networks.",
                evidence={"loss": event["loss"]},
                fix=self._calmer(10),
            )
        )

    def _on_activations(self, event):
        self._act_history.extend(np.asarray(event["saturated_or_dead"], dtype=float))
        if len(self._act_history) < min(2, self._act_history.maxlen):
            return
        level = np.median(np.stack(self._act_history), axis=0)
        step = int(event["step"][-1])
        kinds, layers = event["kinds"], event["layers"]
        saturated = [
            (n, v)
            for n, k, v in zip(layers, kinds, level)
            if k in ("sigmoid", "tanh") and v > SATURATED
        ]
        dead = [(n, v) for n, k, v in zip(layers, kinds, level) if k == "relu" and v > DEAD]
        if saturated:
            names = [n for n, _ in saturated]
            worst = max(v for _, v in saturated)
            self._raise(
                Finding(
                    "saturation",
                    "warning",
                    step,
                    "Saturated activations",
                    f"In {_span(names)}, up to {worst:.0%} of the sigmoid/tanh outputs sit at their limits, where "
                    "the gradient is almost zero, so these units stop learning.",
                    "Use Xavier/Glorot init for these layers and normalize before the activation "
                    "(batch normalization), or lower the learning rate.",
                    names,
                    {"saturated_fraction": {n: round(float(v), 3) for n, v in saturated}},
                    fix=self._node_fix(
                        names,
                        initializer={"name": "xavier_normal", "gain": 1.0},
                        normalization={"kind": "batch", "position": "before_activation"},
                    ),
                )
            )
        if dead:
            names = [n for n, _ in dead]
            worst = max(v for _, v in dead)
            self._raise(
                Finding(
                    "dead_relu",
                    "warning",
                    step,
                    "Dead ReLU units",
                    f"In {_span(names)}, up to {worst:.0%} of the units output zero for every sample: "
                    "a dead ReLU gets no gradient and never recovers.",
                    "Switch these layers to LeakyReLU, use Kaiming init, or lower the learning rate.",
                    names,
                    {"dead_fraction": {n: round(float(v), 3) for n, v in dead}},
                    fix=self._node_fix(names, activation="leaky_relu"),
                )
            )

    def _on_epoch(self, event):
        self._epochs.append(event)
        self._check_overfitting(event)
        self._check_underfitting(event)

    # -- rules --------------------------------------------------------------------------
    def _check_vanishing(self, step: int) -> None:
        if len(self.layers) < 4 or not self._grad_history:
            return
        history = np.stack(self._grad_history)
        # Only layers training now: a frozen one has no gradient to vanish.
        live = ~self.frozen if self.frozen.shape == history.shape[1:] else np.ones(0, bool)
        if live.sum() < 4:
            return
        layers = [n for n, keep in zip(self.layers, live) if keep]
        rms = np.median(history[:, live], axis=0) / np.sqrt(self.layer_params[live])
        output = rms[-1]
        if not output > 0:
            return
        ratio = rms / output
        if ratio[0] >= VANISHING_RATIO:
            return
        affected = []
        for name, r in zip(layers[:-1], ratio[:-1]):
            if r >= AFFECTED_RATIO:
                break
            affected.append(name)
        cause, fix = self._vanishing_cause(affected)
        self._raise(
            Finding(
                "vanishing_gradients",
                "error",
                step,
                "Vanishing gradients",
                f"Layers {_span(affected)} receive gradients {_power(ratio[0])} to {_power(ratio[len(affected) - 1])} "
                f"times smaller than the output layer's, so they barely learn. {cause}",
                "Try ReLU with Kaiming (He) init and batch normalization in these layers, or residual connections.",
                affected,
                {"ratio_to_output": {n: float(f"{r:.3g}") for n, r in zip(layers, ratio)}},
                fix=fix,
            )
        )

    def _vanishing_cause(self, affected: list[str]) -> tuple[str, dict]:
        nodes = [self.project.network.nodes[n] for n in affected if n in self.project.network.nodes]
        squashing = [n for n in nodes if n.activation in ("sigmoid", "tanh")]
        inits = sorted({n.initializer.get("name", "default") for n in nodes})
        parts = []
        if squashing:
            parts.append(
                f"Their {squashing[0].activation} activations pass back at most "
                f"{'a quarter' if squashing[0].activation == 'sigmoid' else 'all'} of the gradient, and less when saturated"
            )
        if any(i in ("normal", "uniform", "truncated_normal", "constant") for i in inits):
            parts.append(
                f"the plain {'/'.join(inits)} initializer does not keep the signal's scale from layer to layer"
            )
        cause = (
            ("; ".join(parts) + ".")
            if parts
            else "The signal shrinks at every layer on its way back."
        )
        cause = cause[0].upper() + cause[1:]
        changes = {
            "initializer": {
                "name": "kaiming_normal",
                "mode": "fan_in",
                "nonlinearity": "relu",
                "a": 0.0,
            },
            "normalization": {"kind": "batch", "position": "before_activation"},
        }
        fix = self._node_fix(affected, activation="relu", **changes)
        return cause, fix

    def _check_exploding(self, step: int, row: np.ndarray, total: float) -> None:
        if not np.all(np.isfinite(row) | self.frozen):
            bad = [
                n
                for n, v, f in zip(self.layers, row, self.frozen)
                if not f and not math.isfinite(v)
            ]
            self._raise(
                Finding(
                    "exploding_gradients",
                    "error",
                    step,
                    "Exploding gradients",
                    f"Gradients became infinite or NaN in {_span(bad)} at step {step + 1}.",
                    f"Lower the learning rate (try {self.lr / 10:g}) and turn on gradient clipping (max norm 1.0).",
                    bad,
                    {"step": step},
                    fix=self._calmer(10),
                    stop=True,
                )
            )
            return
        if len(self._early_total) < 5:
            return
        baseline = float(np.median(self._early_total))
        if baseline > 0 and total > EXPLODING_RATIO * baseline:
            self._raise(
                Finding(
                    "exploding_gradients",
                    "error",
                    step,
                    "Exploding gradients",
                    f"The gradient norm reached {total:.3g} at step {step + 1}, {total / baseline:.0f} times its early "
                    f"value of {baseline:.3g}.",
                    f"Turn on gradient clipping (max norm 1.0) and lower the learning rate (try {self.lr / 10:g}).",
                    self.layers,
                    {"norm": total, "early_norm": baseline},
                    fix=self._calmer(10),
                    stop=True,
                )
            )

    def _smoothed(self, values: list[float], window: int = 10) -> float:
        return float(np.mean(values[-window:]))

    def _check_lr_too_high(self, step: int) -> None:
        if len(self._losses) >= 2:
            first, peak = self._losses[0], max(self._losses[1:])
            at = int(np.argmax(self._losses[1:])) + 1
            if math.isfinite(peak) and peak > 10 * first and peak > first + 5:
                self._raise(
                    Finding(
                        "lr_too_high",
                        "error",
                        step,
                        "Training diverged",
                        f"The loss jumped from {first:.3g} to {peak:.3g} at step {at + 1}: each update overshoots.",
                        f"Lower the learning rate (try {self.lr / 100:g}) and turn on gradient clipping (max norm 1.0).",
                        evidence={"first_loss": first, "peak_loss": peak, "peak_step": at},
                        fix=self._calmer(100),
                        stop=True,
                    )
                )
                return
        if len(self._losses) < 30:
            return
        start = float(np.mean(self._losses[:5]))
        now = self._smoothed(self._losses)
        if math.isfinite(now) and now > 1.5 * start and now > start + 0.5:
            self._raise(
                Finding(
                    "lr_too_high",
                    "error",
                    step,
                    "Learning rate too high",
                    f"The loss rose from {start:.3g} to {now:.3g} over the first {len(self._losses)} steps instead of falling.",
                    f"Lower the learning rate (try {self.lr / 10:g}); gradient clipping also helps.",
                    evidence={"first_loss": start, "recent_loss": now},
                    fix={"nodes": {}, "training": {"optimizer.lr": self.lr / 10}},
                )
            )

    def _check_lr_too_low(self, step: int) -> None:
        if (
            len(self._losses) < 200
            or self.raised("vanishing_gradients")
            or self.raised("lr_too_low")
        ):
            return
        start, now = float(np.mean(self._losses[:20])), float(np.mean(self._losses[180:200]))
        if start > 0 and abs(start - now) < 0.01 * start:
            self._raise(
                Finding(
                    "lr_too_low",
                    "warning",
                    step,
                    "Learning rate too low",
                    f"After 200 steps the loss is still {now:.3g} (it started at {start:.3g}): training barely moves.",
                    f"Raise the learning rate (try {self.lr * 10:g}), or use Adam.",
                    evidence={"first_loss": start, "loss_at_200": now},
                    fix={"nodes": {}, "training": {"optimizer.lr": self.lr * 10}},
                )
            )

    def _check_overfitting(self, event: dict) -> None:
        history = [e for e in self._epochs if "val_loss" in e]
        if len(history) < 4:
            return
        val = [e["val_loss"] for e in history]
        train = [e["train_loss"] for e in history]
        best = int(np.argmin(val))
        rising = len(val) - 1 - best >= 3 and all(
            val[i + 1] >= val[i] * 0.995 for i in range(best, len(val) - 1)
        )
        if rising and train[-1] < train[best] and val[-1] > 1.1 * val[best]:
            gap = ""
            if "val_accuracy" in history[-1]:
                gap = (
                    f" Training accuracy is {history[-1]['train_accuracy']:.1%}, validation "
                    f"{history[-1]['val_accuracy']:.1%}."
                )
            self._raise(
                Finding(
                    "overfitting",
                    "warning",
                    event["step"],
                    "Overfitting",
                    f"Validation loss has risen for {len(val) - 1 - best} epochs since its best ({val[best]:.3g} at "
                    f"epoch {history[best]['epoch']}) while training loss keeps falling.{gap}",
                    "Turn on early stopping, add dropout or L2 regularization, augment the data, get more data, "
                    "or use a smaller model.",
                    evidence={
                        "best_val_loss": val[best],
                        "val_loss": val[-1],
                        "best_epoch": history[best]["epoch"],
                    },
                    epoch=event["epoch"],
                    fix={
                        "nodes": {},
                        "training": {
                            "early_stopping.enabled": True,
                            "early_stopping.patience": 3,
                            "regularization.l2": 1e-4,
                        },
                    },
                )
            )

    def _check_underfitting(self, event: dict) -> None:
        if (
            self.raised("vanishing_gradients")
            or len(self._epochs) < 5
            or "train_accuracy" not in event
        ):
            return
        recent = [e["train_loss"] for e in self._epochs[-3:]]
        chance = 1.0 / max(2, self.classes)
        if event["train_accuracy"] < 0.6 and recent[-1] > 0.9 * recent[0]:
            self._raise(
                Finding(
                    "underfitting",
                    "warning",
                    event["step"],
                    "Underfitting",
                    f"After {event['epoch']} epochs the model gets only {event['train_accuracy']:.1%} of the training "
                    f"data right (chance is about {chance:.0%}) and the training loss has stopped falling.",
                    "Use a larger model (more units or layers), train longer, raise the learning rate, or lower the "
                    "regularization.",
                    evidence={"train_accuracy": event["train_accuracy"]},
                    epoch=event["epoch"],
                    fix={"nodes": {}, "training": {"optimizer.lr": self.lr * 3}},
                )
            )

    # -- fixes --------------------------------------------------------------------------
    def _calmer(self, factor: float) -> dict:
        """A smaller learning rate and gradient clipping: the cure for divergence."""
        return {
            "nodes": {},
            "training": {"optimizer.lr": self.lr / factor, "clipping.max_norm": 1.0},
        }

    def _node_fix(self, names: list[str], **changes) -> dict:
        """Changes for the named nodes, limited to the options each node's layer type takes."""
        cat = catalog()
        nodes = {}
        for name in names:
            node = self.project.network.nodes.get(name)
            layer = cat.get(node.type) if node else None
            if layer is None:
                continue
            wanted = {}
            if layer.weighted and "initializer" in changes:
                wanted["initializer"] = changes["initializer"]
            if layer.block_options:
                for key in ("normalization", "activation"):
                    if key in changes and not (
                        key == "activation" and node.activation in ("none", "softmax")
                    ):
                        wanted[key] = changes[key]
            if wanted:
                nodes[name] = wanted
        return {"nodes": nodes, "training": {}}
