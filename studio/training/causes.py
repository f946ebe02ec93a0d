"""Why a network's signal vanishes, explodes or dies, read from its own settings.

The diagnosis sees numbers (a back-propagated gradient shrinking layer by layer, units
that never fire); this module names what in the layers' settings does it, in the notes'
words (the study notes' rules: He init for ReLU, Glorot for sigmoid/tanh, batch
normalization, residual connections), and the change that removes it. A change never
repeats what a layer already has, and it covers every layer that shares the cause, not
only the layers the numbers flagged: a deep stack of sigmoid layers is fixed as a whole.
"""

from __future__ import annotations

from typing import NamedTuple

from studio.document import Node

SQUASHING = ("sigmoid", "tanh")
RECTIFIERS = ("relu", "leaky_relu", "gelu")
# Initializers with a fixed scale: they ignore the layer's width, so the signal's scale
# changes at every layer by a factor that depends on it.
PLAIN = ("normal", "uniform", "truncated_normal", "constant", "zeros", "ones", "sparse", "eye")

KAIMING = {"name": "kaiming_normal", "mode": "fan_in", "nonlinearity": "relu", "a": 0.0}
BATCH_NORM = {"kind": "batch", "position": "before_activation"}


def init_family(node: Node) -> str:
    name = node.initializer.get("name", "default")
    if name.startswith("kaiming"):
        return "kaiming"
    if name.startswith("xavier"):
        return "xavier"
    if name in PLAIN:
        return "plain"
    return name  # default, orthogonal, dirac


def describe_init(node: Node) -> str:
    init = node.initializer
    name = init.get("name", "default")
    if name == "default":
        return "PyTorch's default init (uniform ±1/√fan_in)"
    if name in ("normal", "truncated_normal"):
        mean = init.get("mean", 0.0)
        where = f"mean {mean:g}, " if mean else ""
        return f"the {name.replace('_', ' ')} init ({where}std {init.get('std', 0.05):g})"
    if name == "uniform":
        return f"the uniform init ({init.get('low', -0.05):g} to {init.get('high', 0.05):g})"
    if name == "constant":
        return f"the constant init ({init.get('value', 0.01):g})"
    if init_family(node) == "xavier":
        return "Xavier init"
    if init_family(node) == "kaiming":
        return "Kaiming init"
    return f"the {name} init"


def has_norm(node: Node) -> bool:
    return node.normalization.get("kind", "none") != "none"


def pattern(node: Node) -> tuple[str, str, bool]:
    """What decides how a layer passes the signal on: activation, init, normalization."""
    return node.activation, init_family(node), has_norm(node)


class Cure(NamedTuple):
    reason: str  # what in the settings causes it, as a sentence
    remedy: str  # what to change, as a sentence
    changes: dict  # node fields to set (empty: nothing mechanical to change)


def _kaiming_for(node: Node) -> dict:
    if node.activation == "leaky_relu":
        return {**KAIMING, "nonlinearity": "leaky_relu", "a": 0.01}
    return dict(KAIMING)


def vanishing_cause(nodes: list[Node], depth: int) -> Cure:
    """Reason, remedy and node changes for layers of one pattern losing the gradient."""
    node = nodes[0]
    act, family, normed = pattern(node)
    init = describe_init(node)
    if act in SQUASHING:
        share = "at most a quarter of" if act == "sigmoid" else "less of"
        reason = (
            f"Their {act} activations pass back {share} the gradient at every layer, and "
            "less where they saturate"
        )
        if family in ("plain", "default"):
            reason += f"; {init} does not keep the signal's scale from layer to layer"
        changes = {"activation": "relu", "initializer": dict(KAIMING)}
        wants = ["ReLU", "Kaiming (He) init"]
        if not normed:
            changes["normalization"] = dict(BATCH_NORM)
            wants.append("batch normalization")
        return Cure(reason + ".", f"Switch these layers to {_and(wants)}.", changes)
    if act in RECTIFIERS:
        if family == "xavier":
            return Cure(
                "Xavier init with ReLU halves the signal's variance at every layer; Kaiming "
                "keeps it.",
                "Use Kaiming (He) init in these layers.",
                {"initializer": _kaiming_for(node)},
            )
        if family != "kaiming":
            return Cure(
                f"With ReLU, {init} shrinks the signal at every layer; Kaiming init "
                "(variance 2/fan_in) keeps it.",
                "Use Kaiming (He) init in these layers.",
                {"initializer": _kaiming_for(node)},
            )
        if not normed:
            return Cure(
                f"These layers already use Kaiming init, yet over {depth} layers without "
                "normalization the signal's scale still drifts away.",
                "Add batch normalization to these layers.",
                {"normalization": dict(BATCH_NORM)},
            )
        return Cure(
            f"These layers already use Kaiming init and normalization; {depth} layers are "
            "too deep a path for the gradient.",
            "Add residual connections (output = F(x) + x, an Add node) so the gradient has a "
            "short way back.",
            {},
        )
    if family in ("plain", "default"):
        return Cure(
            f"Without an activation between them, {init} scales the signal by a fixed factor "
            "at every layer.",
            "Use Xavier (Glorot) init in these layers.",
            {"initializer": {"name": "xavier_normal", "gain": 1.0}},
        )
    return Cure(
        "The signal shrinks at every layer on its way back.",
        "Add batch normalization or residual connections.",
        {} if normed else {"normalization": dict(BATCH_NORM)},
    )


def exploding_cause(nodes: list[Node]) -> Cure:
    """Reason, remedy and node changes for layers of one pattern amplifying the gradient."""
    node = nodes[0]
    act, family, normed = pattern(node)
    init = describe_init(node)
    if family != "kaiming" and act in RECTIFIERS:
        return Cure(
            f"With ReLU, {init} amplifies the signal at every layer; Kaiming init keeps it.",
            "Use Kaiming (He) init in these layers.",
            {"initializer": _kaiming_for(node)},
        )
    if family not in ("xavier", "kaiming"):
        return Cure(
            f"{init[0].upper()}{init[1:]} amplifies the signal at every layer.",
            "Use Xavier (Glorot) init in these layers.",
            {"initializer": {"name": "xavier_normal", "gain": 1.0}},
        )
    if not normed:
        return Cure(
            "The signal grows from layer to layer.",
            "Add batch normalization to these layers.",
            {"normalization": dict(BATCH_NORM)},
        )
    return Cure("The signal grows from layer to layer.", "Clip the gradients.", {})


def dead_cause(nodes: list[Node], from_start: bool) -> Cure:
    """Reason, remedy and node changes for ReLU layers whose units stopped firing."""
    node = nodes[0]
    family = init_family(node)
    init = describe_init(node)
    mean = (
        node.initializer.get("mean", 0.0)
        if node.initializer.get("name")
        in (
            "normal",
            "truncated_normal",
        )
        else 0.0
    )
    if from_start and family != "kaiming":
        shifted = (
            f"{init[0].upper()}{init[1:]} pushes most inputs of the ReLU below zero"
            if mean < 0 or node.initializer.get("name") == "constant"
            else f"{init[0].upper()}{init[1:]} leaves many ReLU inputs below zero"
        )
        return Cure(
            f"{shifted} from the very first step, so they output zero and get no gradient.",
            "Use Kaiming (He) init (mean 0) in these layers.",
            {"initializer": _kaiming_for(node)},
        )
    if from_start:
        return Cure(
            "They gave zero from the first steps although the init is Kaiming: the inputs "
            "reaching them are mostly negative.",
            "Add batch normalization before the activation, or use LeakyReLU.",
            {"normalization": dict(BATCH_NORM)}
            if not has_norm(node)
            else {"activation": "leaky_relu"},
        )
    return Cure(
        "They fired at first and died during training: large updates pushed their inputs "
        "below zero for good.",
        "Use LeakyReLU in these layers (and a smaller learning rate).",
        {"activation": "leaky_relu"},
    )


def saturation_cause(nodes: list[Node]) -> Cure:
    node = nodes[0]
    family = init_family(node)
    changes: dict = {}
    wants = []
    reason = "the gradient is almost zero there, so these units stop learning"
    if family != "xavier":
        reason = f"{describe_init(node)} is too wide for them; " + reason
        changes["initializer"] = {"name": "xavier_normal", "gain": 1.0}
        wants.append("Xavier (Glorot) init")
    if not has_norm(node):
        changes["normalization"] = dict(BATCH_NORM)
        wants.append("batch normalization before the activation")
    remedy = (
        f"Use {_and(wants)} in these layers."
        if wants
        else "Lower the learning rate, or switch these layers to ReLU."
    )
    return Cure(reason[0].upper() + reason[1:] + ".", remedy, changes)


def group_by_pattern(nodes: list[Node]) -> list[list[Node]]:
    groups: dict[tuple, list[Node]] = {}
    for node in nodes:
        groups.setdefault(pattern(node), []).append(node)
    return list(groups.values())


def _and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
