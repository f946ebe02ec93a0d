"""Each layer's health at a glance, from the newest signal and activation numbers.

The canvas marks every node with it so a person sees where the signal dies without
reading plots: the back-propagated gradient's RMS compared with the last hidden layer's
(the diagnosis's own yardstick and thresholds), and the share of dead ReLU units or of
saturated sigmoid/tanh outputs. A backbone node shows its worst stage. Qt-free: the
window calls it with numbers from the events and draws the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from studio.training.diagnosis import (
    AFFECTED_BACKPROP,
    DEAD,
    EXPLODING_BACKPROP,
    SATURATED,
    VANISHING_BACKPROP,
)

LEVELS = ("good", "weak", "bad")
NOTICE = 0.1  # a dead or saturated share worth printing on the node


@dataclass(frozen=True)
class Health:
    level: str  # good, weak, bad (or "" when nothing is known)
    backprop: float = math.nan  # RMS of the loss gradient w.r.t. the layer's output
    relative: float = math.nan  # ... over the last hidden layer's
    forward: float = math.nan  # RMS of the layer's output
    dead: float = math.nan  # share of ReLU units dead over a window
    saturated: float = math.nan  # share of sigmoid/tanh outputs at their limits
    reference: str = ""  # the layer `relative` compares with

    @property
    def label(self) -> str:
        """The few characters drawn on the node: 'dead 40%', 'sat 77%', '10⁻⁴'."""
        if self.dead >= NOTICE:
            return f"dead {self.dead:.0%}"
        if self.saturated >= NOTICE:
            return f"sat {self.saturated:.0%}"
        if math.isfinite(self.relative) and self.level != "good":
            return _power(self.relative)
        return ""

    def describe(self) -> str:
        """The numbers behind the mark, one per line (the node's tooltip)."""
        lines = []
        if math.isfinite(self.backprop):
            text = f"Back-propagated gradient RMS {self.backprop:.2g}"
            if math.isfinite(self.relative) and self.reference:
                text += f" ({self.relative:.2g}× {self.reference}'s)"
            lines.append(text)
        if math.isfinite(self.forward):
            lines.append(f"Output RMS {self.forward:.2g}")
        if math.isfinite(self.dead):
            lines.append(f"Dead ReLU units {self.dead:.0%} (zero for every sample of a window)")
        if math.isfinite(self.saturated):
            lines.append(f"Saturated outputs {self.saturated:.0%}")
        lines.extend(self._verdicts())
        return "\n".join(lines)

    def _verdicts(self) -> list[str]:
        """What the mark means, in words: each cause that made it weak or bad (a gradient
        ten times the last hidden layer's is not "weak", it grows toward the input)."""
        if self.level == "good":
            return ["The signal reaches this layer."]
        said = []
        flow = _flow_level(self.relative)
        if flow in ("weak", "bad"):
            shrinks = self.relative < 1
            said.append(
                {
                    ("bad", True): "The back-propagated signal dies before it reaches this layer.",
                    ("bad", False): "The back-propagated signal blows up on its way to this layer.",
                    ("weak", True): "The back-propagated signal reaching this layer is weak.",
                    ("weak", False): "The back-propagated signal grows on its way to this layer.",
                }[flow, shrinks]
            )
        for share, limit, what in (
            (self.dead, DEAD, "of its ReLU units are dead"),
            (self.saturated, SATURATED, "of its outputs are saturated"),
        ):
            if share > limit:
                said.append(f"Too many {what}.")
            elif share >= NOTICE:
                said.append(f"Some {what}.")
        return said


def _power(x: float) -> str:
    exponent = round(math.log10(x)) if x > 0 else 0
    digits = str(exponent).replace("-", "⁻").translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"10{digits}"


def _flow_level(relative: float) -> str:
    if not math.isfinite(relative):
        return ""
    if relative < VANISHING_BACKPROP or relative > EXPLODING_BACKPROP:
        return "bad"
    if relative < AFFECTED_BACKPROP or relative > 1 / AFFECTED_BACKPROP:
        return "weak"
    return "good"


def _worse(a: str, b: str) -> str:
    order = {"": -1, **{level: i for i, level in enumerate(LEVELS)}}
    return a if order[a] >= order[b] else b


def layer_health(
    layers: list[str],
    backprop: np.ndarray | None,
    forward: np.ndarray | None,
    activations: dict[str, tuple[str, float]],
) -> dict[str, Health]:
    """Per monitored layer. `backprop`/`forward`: the newest flow row (the head last);
    `activations`: layer → (kind, newest saturated-or-dead share)."""
    out: dict[str, Health] = {}
    reference, ref_name = math.nan, ""
    if backprop is not None and len(backprop) == len(layers) and len(layers) > 1:
        hidden = [i for i in range(len(layers) - 1) if np.isfinite(backprop[i]) and backprop[i] > 0]
        if hidden:
            reference, ref_name = float(backprop[hidden[-1]]), layers[hidden[-1]]
    for i, name in enumerate(layers):
        back = float(backprop[i]) if backprop is not None and i < len(backprop) else math.nan
        fwd = float(forward[i]) if forward is not None and i < len(forward) else math.nan
        head = i == len(layers) - 1
        relative = back / reference if reference > 0 and not head else math.nan
        level = _flow_level(relative) if not head else ("good" if back > 0 else "")
        dead = saturated = math.nan
        kind, share = activations.get(name, ("", math.nan))
        if kind == "relu":
            dead = share
            if share > DEAD:
                level = "bad"
            elif share >= NOTICE:
                level = _worse(level, "weak")
        elif kind in ("sigmoid", "tanh"):
            saturated = share
            if share > SATURATED:
                level = "bad"
            elif share >= NOTICE:
                level = _worse(level, "weak")
        out[name] = Health(level, back, relative, fwd, dead, saturated, ref_name)
    for name, (kind, share) in activations.items():
        if name in out or not math.isfinite(share):
            continue
        # A parameter-free activation node (a ReLU after an Add): its units only.
        if kind == "relu":
            level = "bad" if share > DEAD else "weak" if share >= NOTICE else "good"
            out[name] = Health(level, dead=share)
        elif kind in ("sigmoid", "tanh"):
            level = "bad" if share > SATURATED else "weak" if share >= NOTICE else "good"
            out[name] = Health(level, saturated=share)
    return out


def node_health(by_layer: dict[str, Health]) -> dict[str, Health]:
    """Per node: a backbone's stages ("node.stage") fold into their node, worst first."""
    out: dict[str, Health] = {}
    for name, health in by_layer.items():
        node = name.split(".", 1)[0]
        held = out.get(node)
        if held is None or _worse(health.level, held.level) != held.level:
            out[node] = health
    return out
