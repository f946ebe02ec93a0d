"""Transfer-learning strategies and the recommender that picks one.

The study notes' decision table, by how much data there is and how much it looks like
ImageNet:

                  low similarity                       high similarity
    little data   freeze the early low-level layers,   freeze the base, train only
                  train the rest and the classifier    the classifier
    much data     retrain everything                   train the top layers and the
                                                       classifier

A strategy is a freeze point for every backbone node; `strategy_command` sets them as one
undoable edit.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.commands import Command, Composite, SetNodeFields, SetSettings
from studio.document import Project
from studio.errors import StudioError
from studio.registry import Catalog, catalog

DATA_SIZES = ("little", "much")
SIMILARITIES = ("low", "high")

# Fewer training images than this per class is "little data": ImageNet's models learned
# from ~1,300 images per class, and with under ~1,000 retraining millions of pretrained
# weights overfits, so it pays to keep most of them fixed (the CS231n transfer-learning
# notes draw the line at the same order of size). Without a class count the total is
# compared with 10 classes' worth.
LITTLE_PER_CLASS = 1000
LITTLE_TOTAL = 10 * LITTLE_PER_CLASS


class TransferError(StudioError):
    """A strategy that cannot be applied; the message names the node or the choice."""


@dataclass(frozen=True)
class Strategy:
    key: str
    label: str
    explanation: str
    # Whether pretrained stages train (then two phases protect them from the new head).
    unfreezes: bool


STRATEGIES: dict[str, Strategy] = {
    s.key: s
    for s in (
        Strategy(
            "train_all",
            "Train the whole model",
            "Every stage of the backbone trains along with the new head; the pretrained "
            "weights are only the starting point, which pays off with plenty of data.",
            True,
        ),
        Strategy(
            "freeze_early",
            "Freeze the early stages",
            "The first half of the backbone's stages stays frozen (their edges and textures "
            "suit almost any images); the later stages and the head learn the new task.",
            True,
        ),
        Strategy(
            "train_top",
            "Train the top stage",
            "Everything but the backbone's last stage stays frozen; that stage and the head "
            "adapt the pretrained high-level features to the new classes.",
            True,
        ),
        Strategy(
            "feature_extraction",
            "Feature extraction",
            "The whole backbone stays frozen and only the new head trains, on the features "
            "the pretrained network already computes.",
            False,
        ),
    )
}


def freeze_point_for(strategy: str, n_stages: int) -> int:
    """How many stages, from the input on, the strategy freezes in a backbone of n_stages."""
    if strategy not in STRATEGIES:
        raise TransferError(f"'{strategy}' is not a strategy (known: {', '.join(STRATEGIES)}).")
    if strategy == "train_all":
        return 0
    if strategy == "freeze_early":
        # The first half, rounded down (ResNet: stem and layer1 of 5 stages). Yosinski et
        # al. 2014 found the first layers general to any images and transferability
        # falling from the middle on; with dissimilar data the middle must adapt too.
        return n_stages // 2
    if strategy == "train_top":
        return max(n_stages - 1, 0)
    return n_stages


@dataclass(frozen=True)
class Recommendation:
    strategy: str
    data_size: str
    similarity: str
    explanation: str
    # Train the head alone first, then the unfrozen stages at a lower rate.
    two_phase: bool = False


def data_size_for(samples: int, classes: int | None = None) -> str:
    """'little' or 'much', from the training sample count (per class when classes is known)."""
    if classes:
        return "little" if samples / classes < LITTLE_PER_CLASS else "much"
    return "little" if samples < LITTLE_TOTAL else "much"


_REASONS = {
    ("little", "low"): (
        "freeze_early",
        "With little data, retraining the whole network would overfit; but your images "
        "differ from ImageNet, so its later, task-specific features do not fit them. Keep "
        "the early stages, whose edges and textures suit any images, frozen, and retrain "
        "the rest with the classifier.",
    ),
    ("little", "high"): (
        "feature_extraction",
        "With little data, any retrained stage would overfit, and your images look like "
        "ImageNet's, so the pretrained features already describe them well. Freeze the whole "
        "base and train only the classifier on top of it.",
    ),
    ("much", "low"): (
        "train_all",
        "With plenty of data there is little risk of overfitting, and your images differ "
        "from ImageNet, so most of the pretrained features need to change. Retrain the "
        "whole network, starting from the pretrained weights rather than from random ones.",
    ),
    ("much", "high"): (
        "train_top",
        "Your images look like ImageNet's, so the pretrained features mostly fit already, "
        "and with plenty of data the top layers can be tuned to your classes without "
        "overfitting. Keep the base frozen and train the top stage and the classifier.",
    ),
}


def recommend(
    data_size: str | None,
    similarity: str,
    samples: int | None = None,
    *,
    classes: int | None = None,
) -> Recommendation:
    """The strategy the decision table gives; data_size None (or "auto") reads `samples`."""
    counted = ""
    if samples is not None:
        per_class = f" ({samples / classes:,.0f} per class)" if classes else ""
        limit = f"{LITTLE_PER_CLASS:,} per class" if classes else f"{LITTLE_TOTAL:,} in all"
        suggested = data_size_for(samples, classes)
        counted = (
            f" The training split has {samples:,} samples{per_class}, which counts as "
            f"{'little' if suggested == 'little' else 'much'} data (the line is {limit})."
        )
    if data_size in (None, "auto"):
        if samples is None:
            raise TransferError(
                "Say whether there is little or much data, or give the training sample count."
            )
        data_size = data_size_for(samples, classes)
    if data_size not in DATA_SIZES:
        raise TransferError(f"Data size must be 'little' or 'much', not '{data_size}'.")
    if similarity not in SIMILARITIES:
        raise TransferError(f"Similarity to ImageNet must be 'low' or 'high', not '{similarity}'.")
    strategy, reason = _REASONS[(data_size, similarity)]
    two_phase = STRATEGIES[strategy].unfreezes
    if two_phase:
        reason += (
            " Train in two phases: first the new head alone, then the unfrozen stages at a "
            "tenth of the learning rate, so the untrained head's large gradients do not "
            "wreck the pretrained weights."
        )
    return Recommendation(strategy, data_size, similarity, reason + counted, two_phase)


def backbone_nodes(project: Project, cat: Catalog | None = None) -> dict[str, list[str]]:
    """Each backbone node's stage names, by node id (file order)."""
    cat = cat or catalog()
    out = {}
    for nid, node in project.network.nodes.items():
        layer = cat.get(node.type)
        if layer is None or not layer.backbone:
            continue
        try:
            out[nid] = list(layer.stages(node.params))
        except StudioError as err:  # a RunBackbone whose run cannot be read
            raise TransferError(
                f"Node '{nid}' ({node.type}): its stages cannot be read: {err}"
            ) from None
    return out


def strategy_command(
    project: Project,
    strategy: str,
    node_ids: list[str] | None = None,
    *,
    two_phase: bool | None = None,
) -> Command:
    """One undoable command that sets the strategy's freeze point on the backbone nodes
    (all of them, or node_ids); with two_phase given, also sets training.fine_tuning.two_phase."""
    if strategy not in STRATEGIES:
        raise TransferError(f"'{strategy}' is not a strategy (known: {', '.join(STRATEGIES)}).")
    backbones = backbone_nodes(project)
    if node_ids is None:
        if not backbones:
            raise TransferError(
                "The network has no backbone node; add one from the Backbones group first."
            )
        node_ids = list(backbones)
    for nid in node_ids:
        if nid not in backbones:
            what = "does not exist" if nid not in project.network.nodes else "is not a backbone"
            raise TransferError(f"Node '{nid}' {what}, so no strategy applies to it.")
    changes = {
        nid: {"params": {"freeze_point": freeze_point_for(strategy, len(backbones[nid]))}}
        for nid in node_ids
    }
    label = STRATEGIES[strategy].label
    parts: list[Command] = [SetNodeFields(project, changes, f"Strategy: {label}")]
    if two_phase is not None:
        parts.append(SetSettings(project, {"training.fine_tuning.two_phase": two_phase}))
    return Composite(f"Strategy: {label.lower()}", parts)


def describe_freeze(strategy: str, stages: list[str]) -> str:
    """'stem, layer1 frozen; layer2, layer3, layer4 train' for a strategy on these stages."""
    k = freeze_point_for(strategy, len(stages))
    frozen, training = stages[:k], stages[k:]
    if not frozen:
        return "every stage trains"
    if not training:
        return "every stage is frozen"
    return f"{', '.join(frozen)} frozen; {', '.join(training)} train"
