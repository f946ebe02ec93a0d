"""Diagnosis: rules that turn training numbers into plain advice.

A `Diagnosis` listens to the engine's events and raises findings, each with the step, the
layers, the evidence and a suggested change in the studio's own controls. Where the change
is mechanical, the finding carries a `fix`: node option changes and training settings that
the window applies as one undoable command and `studio diagnose --fix` writes into a copy
of the project (the study notes' remedies; `studio.training.causes` names the cause).

The rules, and what they read:
- vanishing / exploding gradients: the back-propagated gradient's RMS per layer (the
  `flow` events) from the first hidden layer to the last, and the weight gradients' RMS
  per parameter against the output layer's;
- dead ReLU units: windows of at least `signal.DEAD_WINDOW` samples in which a unit never
  fired (`dead_units` events);
- saturated sigmoid/tanh units: the fraction of outputs at their limits;
- a learning rate too low: updates that change the weights by far less than 1e-3 of
  their size while the loss moves less than its own batch-to-batch spread;
- a learning rate too high: a loss that climbs; a divergence (the engine's `diverged`);
- over- and underfitting: the epoch curves.
Every learning-rate suggestion of one run is the same number.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from studio.document import Project
from studio.registry import catalog
from studio.training import causes, events

VANISHING_BACKPROP = 1e-2  # first hidden layer's back-propagated RMS vs the last hidden's
EXPLODING_BACKPROP = 1e2
AFFECTED_BACKPROP = 1e-1
VANISHING_RATIO = 1e-3  # first layer's weight-gradient RMS vs the output layer's
AFFECTED_RATIO = 1e-2
EXPLODING_RATIO = 1e3  # a gradient norm a thousandfold above its early median
SATURATED = 0.5
DEAD = 0.5
LOW_UPDATE = 1e-4  # update/weight ratio far below the ~1e-3 of a network that learns
GOOD_UPDATE = 1e-3
FLAT_WINDOW = 100  # steps of loss the low-learning-rate test needs
# A loss climbing back counts only when it gives back this share of what training had
# gained. A network that has learned its data wobbles near zero by orders of magnitude with
# nothing lost (seen: 1.7e-9 → 2.4e-7, and 0 → 2.2e-4 after 0.14, 0.16% of the gain, both
# at 100% validation accuracy), while the overfitting demo's validation loss gives back
# 3.5% of its gain over 30 epochs.
GIVE_BACK = 0.01
# Fixes are applied in this order; the first finding to set a field of a node wins.
FIX_ORDER = (
    "diverged",
    "exploding_gradients",
    "lr_too_high",
    "vanishing_gradients",
    "dead_relu",
    "saturation",
    "lr_too_low",
    "overfitting",
)


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


def _gives_back(losses: list[float], best: int) -> bool:
    """Whether the newest loss has given back GIVE_BACK of what was gained from the first
    epoch to the best one (a climb from 1e-9 to 1e-7 gives back nothing a person can see)."""
    gained = losses[0] - losses[best]
    return losses[-1] - losses[best] > GIVE_BACK * gained


def _span(names: list[str]) -> str:
    """'dense1', 'dense1, dense4', or 'dense1–dense18 (18 layers)' for long runs of layers."""
    if len(names) <= 3:
        return ", ".join(names)
    return f"{names[0]}–{names[-1]} ({len(names)} layers)"


def _median_rows(rows) -> np.ndarray:
    stacked = np.stack(rows)
    with np.errstate(all="ignore"):
        out = np.full(stacked.shape[1], np.nan)
        for i in range(stacked.shape[1]):
            column = stacked[:, i]
            column = column[~np.isnan(column)]
            if column.size:
                out[i] = np.median(column)
    return out


def combined_fix(findings: list[Finding]) -> dict:
    """The changes of all findings together, in `FIX_ORDER`; the first to set a field wins."""
    rank = {kind: i for i, kind in enumerate(FIX_ORDER)}
    nodes: dict[str, dict] = {}
    training: dict = {}
    for finding in sorted(findings, key=lambda f: rank.get(f.kind, len(rank))):
        fix = finding.fix or {}
        for node, changes in fix.get("nodes", {}).items():
            target = nodes.setdefault(node, {})
            for key, value in changes.items():
                target.setdefault(key, value)
        for key, value in fix.get("training", {}).items():
            training.setdefault(key, value)
    return {"nodes": nodes, "training": training}


class Diagnosis:
    """Listens to training events; calls `on_finding` once per kind of problem."""

    def __init__(self, project: Project, on_finding: Callable[[Finding], None] | None = None):
        self.project = project
        self.on_finding = on_finding
        self.findings: list[Finding] = []
        self.layers: list[str] = []
        self.layer_params = np.ones(0)
        self.lr = project.training["optimizer"]["lr"]
        self._lower_lr: float | None = None  # one suggestion per run, once made
        self._grad_history: deque = deque(maxlen=20)
        self._backprop: deque = deque(maxlen=5)
        self._early_total: list[float] = []
        self._losses: list[float] = []
        self._updates: deque = deque(maxlen=30)  # typical update/weight ratio per sample
        self._epochs: list[dict] = []
        self._saturation: deque = deque(maxlen=3)
        self._dead_window: tuple[int, int] | None = None  # the last window's first step, samples
        self.classes = 10
        # Layers frozen now (fine-tuning): their gradient norms are NaN and are left out.
        self.frozen = np.zeros(0, dtype=bool)

    def __call__(self, event: dict) -> None:
        event = events.typed(event)
        handler = getattr(self, f"_on_{event.type}", None)
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

    # -- what the network is ----------------------------------------------------------
    def _node(self, name: str):
        return self.project.network.nodes.get(name)

    def _hidden(self) -> list[int]:
        """Indices of the layers between input and head that train now."""
        head = len(self.layers) - 1
        frozen = self.frozen if self.frozen.shape == (len(self.layers),) else None
        return [i for i in range(head) if frozen is None or not frozen[i]]

    def _depth(self) -> int:
        return len(self._hidden())

    def lower_lr(self, step: int) -> float:
        """The smaller learning rate every finding of this run suggests: a hundredth when
        the loss ran away within the first 50 steps, a tenth otherwise."""
        if self._lower_lr is None:
            self._lower_lr = self.lr / (100 if step < 50 else 10)
        return self._lower_lr

    def _calmer(self, step: int) -> dict:
        """A smaller learning rate and, unless it is on, gradient clipping."""
        training = {"optimizer.lr": self.lower_lr(step)}
        if not self.project.training["clipping"]["max_norm"]:
            training["clipping.max_norm"] = 1.0
        return {"nodes": {}, "training": training}

    def _calmer_text(self, step: int) -> str:
        text = f"Lower the learning rate (try {self.lower_lr(step):g})"
        if not self.project.training["clipping"]["max_norm"]:
            text += " and turn on gradient clipping (max norm 1.0)"
        return text

    # -- events -------------------------------------------------------------------------
    def _on_finding(self, event):
        """A finding the trainer raised itself (files that failed to decode): kept with
        the diagnosis' own, so the run's summary and findings.json count it. (The
        diagnosis' own findings come back here too, already kept.)"""
        if not self.raised(event.kind):
            fields = {k: v for k, v in event.to_dict().items() if k != "type"}
            self.findings.append(Finding(**fields))

    def _on_pretrained(self, event):
        """A backbone whose weights file did not cover it: the layers left out start from
        random values, which a person must know before trusting the run."""
        if not event.mismatched:
            return
        self._raise(
            Finding(
                kind="weights_mismatch",
                severity="warning",
                step=0,
                title="Weights only partly loaded",
                message=event.report,
                remedy="Check that the weights file was saved from this architecture; the "
                "layers it did not cover start from random values.",
                layers=[event.node],
            )
        )

    def _on_start(self, event):
        self.layers = list(event.layers)
        self.classes = len(event.classes or []) or 10
        self.layer_params = np.asarray(event.layer_params, dtype=float)
        self.frozen = np.zeros(len(self.layers), dtype=bool)

    def _on_gradients(self, event):
        norms = np.asarray(event.norms, dtype=float)
        frozen = event.frozen
        if frozen is None:
            frozen = np.zeros(norms.shape, dtype=bool)
        for step, row, mask in zip(event.step, norms, np.asarray(frozen, dtype=bool)):
            if mask.shape != self.frozen.shape or np.any(mask != self.frozen):
                # A new fine-tuning phase: its norms are compared with its own early values.
                self.frozen = mask
                self._grad_history.clear()
                self._backprop.clear()
                self._early_total.clear()
            self._grad_history.append(row)
            total = float(np.sqrt(np.nansum(row[~mask] ** 2)))
            if len(self._early_total) < 5:
                self._early_total.append(total)
            self._check_exploding_norm(int(step), row, total)
        self._check_signal(int(event.step[-1]))

    def _on_flow(self, event):
        for row in np.asarray(event.backprop_rms, dtype=float):
            self._backprop.append(row)
        self._check_signal(int(event.step[-1]))

    def _on_weights(self, event):
        for row in np.asarray(event.update_ratio, dtype=float):
            live = row[np.isfinite(row) & (row > 0)]
            if live.size:
                self._updates.append(float(np.median(live)))

    def _on_steps(self, event):
        self._losses.extend(float(v) for v in event.loss)
        step = int(event.step[-1])
        self._check_lr_too_high(step)
        self._check_lr_too_low(step)

    def _on_diverged(self, event):
        step = int(event.step)
        self._raise(
            Finding(
                kind="diverged",
                severity="error",
                step=step,
                title="Training diverged",
                message=f"{event.reason[0].upper()}{event.reason[1:]}.",
                remedy=self._calmer_text(step)
                + (
                    "; batch normalization also steadies deep networks."
                    if not self._any_norm()
                    else "."
                ),
                evidence={"loss": event.loss, "restored_step": event.restored_step},
                fix=self._calmer(step),
            )
        )

    def _any_norm(self) -> bool:
        return any(causes.has_norm(n) for n in self.project.network.nodes.values())

    def _on_activations(self, event):
        values = np.asarray(event.saturated_or_dead, dtype=float)
        kinds, layers = event.kinds, event.layers
        squashing = [i for i, k in enumerate(kinds) if k in causes.SQUASHING]
        if not squashing:
            return
        self._saturation.extend(values[:, squashing])
        if len(self._saturation) < 2:
            return
        level = np.nanmedian(np.stack(self._saturation), axis=0)
        saturated = [(layers[i], float(v)) for i, v in zip(squashing, level) if v > SATURATED]
        covered = self._covered_by_vanishing()
        saturated = [(n, v) for n, v in saturated if n not in covered]
        if not saturated:
            return
        names = [n for n, _ in saturated]
        worst = max(v for _, v in saturated)
        step = int(event.step[-1])
        nodes = [self._node(n) for n in names if self._node(n) is not None]
        reason, remedy, fix = "", "Use Xavier (Glorot) init and batch normalization.", None
        if nodes:
            cures = [causes.saturation_cause(group) for group in causes.group_by_pattern(nodes)]
            reason = " " + " ".join(c.reason for c in cures)
            remedy = " ".join(dict.fromkeys(c.remedy for c in cures))
            fix = self._fix_for(
                [
                    (group, cure.changes)
                    for group, cure in zip(causes.group_by_pattern(nodes), cures)
                ]
            )
        self._raise(
            Finding(
                kind="saturation",
                severity="warning",
                step=step,
                title="Saturated activations",
                message=f"In {_span(names)}, up to {worst:.0%} of the sigmoid/tanh outputs sit at "
                f"their limits.{reason}",
                remedy=remedy,
                layers=names,
                evidence={"saturated_fraction": {n: round(v, 3) for n, v in saturated}},
                fix=fix,
            )
        )

    def _covered_by_vanishing(self) -> set[str]:
        """Layers whose gradient vanishes and whose init or activation its fix replaces:
        their dead or saturated units are part of that cause, fixed with it."""
        covered: set[str] = set()
        for f in self.findings:
            if f.kind == "vanishing_gradients" and f.fix:
                covered |= set(f.fix["nodes"])
        return covered

    def _on_dead_units(self, event):
        first, last, samples = int(event.first_step), int(event.step), int(event.samples)
        before, self._dead_window = self._dead_window, (first, samples)
        from_start = first == 0
        fractions = np.asarray(event.fraction, dtype=float)
        if not from_start:
            # Units silent at initialization are dead by construction (a negative bias, a
            # bad init): one window says so. Units that fall silent while training often
            # wake again as the layers below them change (a deep plain ReLU net under Adam
            # has 30-50% of a layer silent for a window now and then, and learns): only
            # units silent in two windows in a row count.
            fractions = np.asarray(
                event.persistent if event.persistent is not None else np.nan, dtype=float
            )
            fractions = np.broadcast_to(fractions, (len(event.layers),))
            if before is not None:
                first, samples = before[0], before[1] + samples
        covered = self._covered_by_vanishing()
        dead = [
            (n, float(v)) for n, v in zip(event.layers, fractions) if v > DEAD and n not in covered
        ]
        if not dead:
            return
        names = [n for n, _ in dead]
        worst = max(v for _, v in dead)
        span = f"steps {first + 1}–{last + 1}" if last > first else f"step {last + 1}"

        nodes = [self._node(n) for n in names if self._node(n) is not None]
        reason = ""
        remedy = "Use LeakyReLU in these layers, or batch normalization before the activation."
        fix = None
        if nodes:
            groups = causes.group_by_pattern(nodes)
            cures = [causes.dead_cause(group, from_start) for group in groups]
            reason = " " + " ".join(dict.fromkeys(c.reason for c in cures))
            remedy = " ".join(dict.fromkeys(c.remedy for c in cures))
            fix = self._fix_for([(g, c.changes) for g, c in zip(groups, cures)], spread=True)
        self._raise(
            Finding(
                kind="dead_relu",
                severity="warning",
                step=int(event.step),
                title="Dead ReLU units",
                message=f"In {_span(names)}, up to {worst:.0%} of the units gave zero for every "
                f"one of the {samples} samples seen in {span}: a dead ReLU gets no gradient."
                + reason,
                remedy=remedy,
                layers=names,
                evidence={
                    "dead_fraction": {n: round(v, 3) for n, v in dead},
                    "samples": samples,
                    "first_step": first,
                    "step": last,
                },
                fix=fix,
            )
        )

    def _on_epoch(self, event):
        self._epochs.append(event)
        self._check_overfitting(event)
        self._check_unstable(event)
        self._check_underfitting(event)

    # -- fixes --------------------------------------------------------------------------
    def _fix_for(self, groups: list[tuple[list, dict]], spread: bool = True) -> dict | None:
        """Node changes for each group of layers; with `spread`, every layer that shares a
        group's pattern gets its changes too (a whole stack is fixed, not just part)."""
        hidden = [self._node(self.layers[i]) for i in self._hidden()] if self.layers else []
        hidden = [n for n in hidden if n is not None]
        nodes: dict[str, dict] = {}
        for group, changes in groups:
            if not changes:
                continue
            members = list(group)
            if spread:
                shape = causes.pattern(group[0])
                members += [n for n in hidden if causes.pattern(n) == shape]
            for node in members:
                wanted = self._allowed(node, changes)
                if wanted:
                    nodes[node.id] = wanted
        return {"nodes": nodes, "training": {}} if nodes else None

    def _allowed(self, node, changes: dict) -> dict:
        """The changes limited to the options this node's layer type takes."""
        layer = catalog().get(node.type)
        if layer is None:
            return {}
        wanted = {}
        if layer.weighted and "initializer" in changes:
            wanted["initializer"] = changes["initializer"]
        if layer.block_options:
            for key in ("normalization", "activation"):
                if key in changes and not (
                    key == "activation" and node.activation in ("none", "softmax")
                ):
                    wanted[key] = changes[key]
        return wanted

    # -- rules --------------------------------------------------------------------------
    def _check_signal(self, step: int) -> None:
        """Vanishing or exploding gradients, from the back-propagated profile and the
        weight gradients."""
        if self.raised("vanishing_gradients") and self.raised("exploding_gradients"):
            return
        hidden = self._hidden()
        if len(hidden) < 3:
            return
        backprop = _median_rows(self._backprop) if self._backprop else None
        profile = None
        if backprop is not None and backprop.shape == (len(self.layers),):
            live = [i for i in hidden if np.isfinite(backprop[i]) and backprop[i] > 0]
            if len(live) >= 3:
                profile = (live, backprop[live] / backprop[live[-1]])
        weights = None
        if self._grad_history:
            history = np.stack(self._grad_history)
            if history.shape[1] == len(self.layers):
                rms = _median_rows(history) / np.sqrt(np.maximum(self.layer_params, 1))
                out = rms[-1]
                if out > 0 and np.isfinite(out):
                    # A layer with no gradient at all has lost its path (dead units), which
                    # the dead-unit rule explains; it is not a gradient that shrank.
                    live = [i for i in hidden if np.isfinite(rms[i]) and rms[i] > 0]
                    if len(live) >= 3:
                        weights = (live, rms[live] / out)
        vanishing = (profile is not None and profile[1][0] < VANISHING_BACKPROP) or (
            weights is not None and weights[1][0] < VANISHING_RATIO
        )
        exploding = profile is not None and profile[1][0] > EXPLODING_BACKPROP
        if vanishing and not self.raised("vanishing_gradients"):
            self._raise_vanishing(step, profile, weights)
        elif exploding and not self.raised("exploding_gradients"):
            self._raise_exploding_profile(step, profile)

    def _raise_vanishing(self, step, profile, weights) -> None:
        affected: list[str] = []
        if profile is not None and profile[1][0] < VANISHING_BACKPROP:
            live, ratio = profile
            for i, r in zip(live, ratio):
                if r >= AFFECTED_BACKPROP:
                    break
                affected.append(self.layers[i])
            last = self.layers[live[-1]]
            evidence_text = (
                f"The gradient reaching {affected[0]} is {_power(ratio[0])} of what reaches "
                f"{last} (the loss gradient with respect to each layer's output)"
            )
            evidence = {
                "backprop_vs_last_hidden": {
                    self.layers[i]: float(f"{r:.3g}") for i, r in zip(live, ratio)
                }
            }
        else:
            live, ratio = weights
            for i, r in zip(live, ratio):
                if r >= AFFECTED_RATIO:
                    break
                affected.append(self.layers[i])
            evidence_text = (
                f"The weight gradients of {affected[0]} are {_power(ratio[0])} of the output "
                "layer's (per weight)"
            )
            evidence = {
                "ratio_to_output": {self.layers[i]: float(f"{r:.3g}") for i, r in zip(live, ratio)}
            }
        if weights is not None:
            evidence["weight_grad_vs_output"] = {
                self.layers[i]: float(f"{r:.3g}") for i, r in zip(*weights)
            }
        nodes = [self._node(n) for n in affected if self._node(n) is not None]
        groups = causes.group_by_pattern(nodes)
        cures = [causes.vanishing_cause(g, self._depth()) for g in groups]
        reason = " ".join(dict.fromkeys(c.reason for c in cures)) or (
            "The signal shrinks at every layer on its way back."
        )
        remedy = " ".join(dict.fromkeys(c.remedy for c in cures)) or (
            "Add batch normalization or residual connections."
        )
        self._raise(
            Finding(
                kind="vanishing_gradients",
                severity="error",
                step=step,
                title="Vanishing gradients",
                message=f"{evidence_text}, so {_span(affected)} barely learn. {reason}",
                remedy=remedy,
                layers=affected,
                evidence=evidence,
                fix=self._fix_for([(g, c.changes) for g, c in zip(groups, cures)]),
            )
        )

    def _raise_exploding_profile(self, step, profile) -> None:
        live, ratio = profile
        affected = [self.layers[i] for i, r in zip(live, ratio) if r > 1 / AFFECTED_BACKPROP]
        nodes = [self._node(n) for n in affected if self._node(n) is not None]
        groups = causes.group_by_pattern(nodes)
        cures = [causes.exploding_cause(g) for g in groups]
        reason = " ".join(dict.fromkeys(c.reason for c in cures))
        remedy = " ".join(dict.fromkeys(c.remedy for c in cures))
        fix = self._fix_for([(g, c.changes) for g, c in zip(groups, cures)]) or {
            "nodes": {},
            "training": {},
        }
        if not self.project.training["clipping"]["max_norm"]:
            fix["training"]["clipping.max_norm"] = 1.0
            remedy += " Turn on gradient clipping (max norm 1.0)."
        self._exploding(
            step,
            f"The gradient reaching {affected[0]} is {_power(ratio[0])} times what reaches "
            f"{self.layers[live[-1]]}: it grows at every layer on its way back. " + reason,
            remedy.strip(),
            affected,
            {
                "backprop_vs_last_hidden": {
                    self.layers[i]: float(f"{r:.3g}") for i, r in zip(live, ratio)
                }
            },
            fix,
        )

    def _exploding(
        self, step: int, message: str, remedy: str, layers: list, evidence: dict, fix: dict
    ) -> None:
        self._raise(
            Finding(
                kind="exploding_gradients",
                severity="error",
                step=step,
                title="Exploding gradients",
                message=message,
                remedy=remedy,
                layers=layers,
                evidence=evidence,
                fix=fix,
            )
        )

    def _check_exploding_norm(self, step: int, row: np.ndarray, total: float) -> None:
        live = ~self.frozen if self.frozen.shape == row.shape else np.ones(row.shape, bool)
        if not np.all(np.isfinite(row[live])):
            bad = [n for n, v, keep in zip(self.layers, row, live) if keep and not math.isfinite(v)]
            self._exploding(
                step,
                f"Gradients became infinite or NaN in {_span(bad)} at step {step + 1}.",
                self._calmer_text(step) + ".",
                bad,
                {"step": step},
                self._calmer(step),
            )
            return
        if len(self._early_total) < 5:
            return
        baseline = float(np.median(self._early_total))
        if baseline > 0 and total > EXPLODING_RATIO * baseline:
            self._exploding(
                step,
                f"The gradient norm reached {total:.3g} at step {step + 1}, "
                f"{total / baseline:.0f} times its early value of {baseline:.3g}.",
                self._calmer_text(step) + ".",
                list(self.layers),
                {"norm": total, "early_norm": baseline},
                self._calmer(step),
            )

    def _check_lr_too_high(self, step: int) -> None:
        if len(self._losses) < 30 or self.raised("diverged"):
            return
        start = float(np.mean(self._losses[:5]))
        now = float(np.mean(self._losses[-10:]))
        if math.isfinite(now) and now > 1.5 * start and now > start + 0.5:
            self._raise(
                Finding(
                    kind="lr_too_high",
                    severity="error",
                    step=step,
                    title="Learning rate too high",
                    message=f"The loss rose from {start:.3g} to {now:.3g} over the first "
                    f"{len(self._losses)} steps instead of falling.",
                    remedy=self._calmer_text(step) + ".",
                    evidence={"first_loss": start, "recent_loss": now},
                    fix=self._calmer(step),
                )
            )

    def _check_unstable(self, event: dict) -> None:
        """The training loss climbing back up after a better epoch: updates overshoot."""
        train = [e["train_loss"] for e in self._epochs]
        if len(train) < 4 or self.raised("lr_too_high") or self.raised("diverged"):
            return
        best = int(np.argmin(train))
        # Well beyond an epoch's noise: half as high again as the best, two epochs running.
        if (
            len(train) - 1 - best >= 2
            and train[-1] > 1.5 * train[best]
            and train[-2] > 1.2 * train[best]
            and _gives_back(train, best)
        ):
            step = int(event["step"])
            self._raise(
                Finding(
                    kind="lr_too_high",
                    severity="error",
                    step=step,
                    title="Learning rate too high",
                    message=f"The training loss climbed back from {train[best]:.3g} at epoch "
                    f"{self._epochs[best]['epoch']} to {train[-1]:.3g} at epoch {event['epoch']}: "
                    "the updates overshoot.",
                    remedy=self._calmer_text(step) + ".",
                    evidence={"best_train_loss": train[best], "train_loss": train[-1]},
                    epoch=event["epoch"],
                    fix=self._calmer(step),
                )
            )

    def typical_update(self) -> float | None:
        """The median update/weight ratio of recent steps (None until measured)."""
        return float(np.median(self._updates)) if len(self._updates) >= 5 else None

    def loss_is_flat(self) -> tuple[bool, float, float]:
        """Over the recent steps, whether the loss fell by less than its own spread; with
        the fall and the spread (least squares: the fitted line's drop over the window,
        and the residuals' standard deviation)."""
        window = np.asarray(self._losses[-max(FLAT_WINDOW, len(self._losses) // 2) :])
        window = window[np.isfinite(window)]
        if len(window) < FLAT_WINDOW:
            return False, math.nan, math.nan
        x = np.arange(len(window), dtype=float)
        slope, intercept = np.polyfit(x, window, 1)
        spread = float(np.std(window - (slope * x + intercept)))
        fall = float(-slope * (len(window) - 1))
        return fall < max(spread, 1e-3 * abs(float(np.mean(window)))), fall, spread

    def _check_lr_too_low(self, step: int, epoch: int | None = None) -> None:
        if self.raised("lr_too_low") or self.raised("vanishing_gradients"):
            return
        update = self.typical_update()
        if update is None or update >= LOW_UPDATE:
            return
        flat, fall, spread = self.loss_is_flat()
        if not flat:
            return
        # Updates scale with the learning rate: aim for ~1e-3 of the weights per step.
        factor = 10 ** min(4, max(1, round(math.log10(GOOD_UPDATE / max(update, 1e-12)))))
        suggested = float(f"{self.lr * factor:.2g}")
        self._raise(
            Finding(
                kind="lr_too_low",
                severity="warning",
                step=step,
                title="Learning rate too low",
                message=f"Each update changes the weights by about {update:.1e} of their size "
                f"(networks that learn move ~1e-3), and over the last {FLAT_WINDOW}+ steps the "
                f"loss fell by {fall:.2g}, less than its own step-to-step spread of {spread:.2g}.",
                remedy=f"Raise the learning rate to {suggested:g} ({factor:g}× the current "
                f"{self.lr:g}), or measure one with Run → Find Learning Rate (studio lr-find).",
                evidence={"update_ratio": update, "loss_fall": fall, "loss_spread": spread},
                epoch=epoch,
                fix={"nodes": {}, "training": {"optimizer.lr": suggested}},
            )
        )

    def _check_overfitting(self, event: dict) -> None:
        # With early stopping on, the run stops at the turn and keeps the best weights.
        if self.project.training["early_stopping"]["enabled"]:
            return
        history = [e for e in self._epochs if "val_loss" in e]
        if len(history) < 4:
            return
        val = [e["val_loss"] for e in history]
        train = [e["train_loss"] for e in history]
        best = int(np.argmin(val))
        since = val[best:]
        # Climbing since its best for 3+ epochs: a noisy climb counts (the fitted line goes
        # up and the last two epochs sit 10% above the best), a single spike does not; and
        # the model fits its training data clearly better than it generalizes (noisy
        # training whose validation swings around its training loss is not overfitting).
        rising = (
            len(since) >= 4
            and np.polyfit(np.arange(len(since)), since, 1)[0] > 0
            and min(val[-2:]) > 1.1 * val[best]
            and _gives_back(val, best)
        )
        if rising and train[-1] < train[best] and val[-1] > 1.5 * train[-1]:
            gap = ""
            if "val_accuracy" in history[-1]:
                gap = (
                    f" Training accuracy is {history[-1]['train_accuracy']:.1%}, validation "
                    f"{history[-1]['val_accuracy']:.1%}."
                )
            self._raise(
                Finding(
                    kind="overfitting",
                    severity="warning",
                    step=event["step"],
                    title="Overfitting",
                    message=f"Validation loss has risen for {len(val) - 1 - best} epochs since its "
                    f"best ({val[best]:.3g} at epoch {history[best]['epoch']}) while training loss "
                    f"keeps falling.{gap}",
                    remedy="Turn on early stopping, add dropout or L2 regularization, augment the "
                    "data, get more data, or use a smaller model.",
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
        explained = ("vanishing_gradients", "lr_too_high", "lr_too_low", "dead_relu", "saturation")
        if (
            any(self.raised(kind) for kind in explained)
            or len(self._epochs) < 5
            or "train_accuracy" not in event
        ):
            return
        recent = [e["train_loss"] for e in self._epochs[-3:]]
        # A plateau: three epochs that took less than 3% off the loss.
        if not (event["train_accuracy"] < 0.6 and recent[-1] > 0.97 * recent[0]):
            return
        update = self.typical_update()
        if update is None and self.project.training["monitors"]["enabled"]:
            return  # how far the weights move is not measured yet: no verdict before it is
        if update is not None and update < LOW_UPDATE:
            # The model is not too small: its weights barely move.
            self._check_lr_too_low(event["step"], event["epoch"])
            return
        chance = 1.0 / max(2, self.classes)
        accuracy = event["train_accuracy"]
        if accuracy < 1.5 * chance:
            # Nothing learned at all: not a model too small for the data.
            kind, title = "not_learning", "Not learning"
            message = (
                f"After {event['epoch']} epochs the model gets {accuracy:.1%} of the training "
                f"data right, no better than chance ({chance:.0%}), and the loss has stopped "
                "falling."
            )
            remedy = (
                "Check that the labels match the inputs, and measure a learning rate with "
                "Run → Find Learning Rate (studio lr-find)."
            )
        else:
            kind, title = "underfitting", "Underfitting"
            message = (
                f"After {event['epoch']} epochs the model gets only {accuracy:.1%} of the "
                f"training data right (chance is about {chance:.0%}) and the training loss has "
                "stopped falling."
            )
            remedy = (
                "Use a larger model (more units or layers), train longer, or lower the "
                "regularization."
            )
        self._raise(
            Finding(
                kind=kind,
                severity="warning",
                step=event["step"],
                title=title,
                message=message,
                remedy=remedy,
                evidence={"train_accuracy": accuracy, "update_ratio": update},
                epoch=event["epoch"],
            )
        )
