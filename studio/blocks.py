"""The per-layer options every weighted layer carries: normalization, activation, dropout.

A node like Conv2d becomes a `Block`: the layer itself, then normalization, activation and
dropout in the order the notes give (normalize before the activation by default, dropout
last so it does not disturb batch statistics). The child names (`layer`, `norm`, `act`,
`drop`) are part of the parameter names, which keeps checkpoints loadable when an option
is toggled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from studio.errors import ShapeError
from studio.shapes_text import describe

if TYPE_CHECKING:  # annotations only: the document and the catalog sit above the blocks
    from studio.document import Node
    from studio.registry import LayerType, Shape

ACTIVATIONS = ("none", "relu", "leaky_relu", "gelu", "sigmoid", "tanh", "softmax")
NORMALIZATIONS = ("none", "batch", "layer", "instance", "group")
NORM_POSITIONS = ("before_activation", "after_activation")


def activation_module(
    name: str, shape: tuple[int, ...], negative_slope: float = 0.01
) -> nn.Module | None:
    if name == "none":
        return None
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    if name == "gelu":
        return nn.GELU()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "tanh":
        return nn.Tanh()
    if name == "softmax":
        # Over channels for images, over features otherwise.
        return nn.Softmax(dim=1 if len(shape) == 3 else -1)
    raise ValueError(name)


class FeaturesFirst(nn.Module):
    """Runs a channel-wise module on a (batch, steps, features) sequence."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.transpose(1, 2)).transpose(1, 2)


def normalization_module(kind: str, shape: tuple[int, ...], groups: int = 8) -> nn.Module | None:
    """The torch module for a normalization kind on tensors of this shape (batch excluded)."""
    if kind == "none":
        return None
    rank = len(shape)
    channels = shape[0] if rank == 3 else shape[-1]
    if kind == "group" and channels % groups:
        raise ShapeError(
            f"group normalization splits {channels} channels into {groups} groups, which does not "
            f"divide evenly; pick a group count that divides {channels}"
        )
    positions = shape[1] * shape[2] if rank == 3 else shape[0] if rank == 2 else 0
    if kind == "instance" and rank >= 2 and positions < 2:
        raise ShapeError(
            f"instance normalization needs more than one position per channel, but this layer outputs "
            f"{describe(shape)}; use batch or group normalization"
        )
    if rank == 3:
        return {
            "batch": lambda: nn.BatchNorm2d(channels),
            # Layer norm over channels and space with one scale per channel.
            "layer": lambda: nn.GroupNorm(1, channels),
            "instance": lambda: nn.InstanceNorm2d(channels, affine=True),
            "group": lambda: nn.GroupNorm(groups, channels),
        }[kind]()
    if rank == 2:
        if kind == "layer":
            return nn.LayerNorm(channels)
        return FeaturesFirst(
            {
                "batch": lambda: nn.BatchNorm1d(channels),
                "instance": lambda: nn.InstanceNorm1d(channels, affine=True),
                "group": lambda: nn.GroupNorm(groups, channels),
            }[kind]()
        )
    if kind == "instance":
        raise ShapeError(
            f"instance normalization needs an image or a sequence, but this layer outputs a flat "
            f"vector of {describe(shape)}; use batch or layer normalization"
        )
    return {
        "batch": lambda: nn.BatchNorm1d(channels),
        "layer": lambda: nn.LayerNorm(channels),
        "group": lambda: nn.GroupNorm(groups, channels),
    }[kind]()


class Block(nn.Module):
    """layer → normalization → activation → dropout (normalization may follow the activation)."""

    def __init__(
        self,
        layer: nn.Module,
        norm: nn.Module | None = None,
        act: nn.Module | None = None,
        drop: nn.Module | None = None,
        norm_after_activation: bool = False,
    ):
        super().__init__()
        self.layer = layer
        self.norm = norm
        self.act = act
        self.drop = drop
        self.norm_after_activation = norm_after_activation

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        y = self.layer(*inputs)
        if self.norm is not None and not self.norm_after_activation:
            y = self.norm(y)
        if self.act is not None:
            y = self.act(y)
        if self.norm is not None and self.norm_after_activation:
            y = self.norm(y)
        if self.drop is not None:
            y = self.drop(y)
        return y


def build_block(node: Node, layer: LayerType, inputs: list[Shape], output: Shape) -> Block:
    """A node's layer plus its normalization, activation and dropout options."""
    module = layer.build(node.params, inputs)
    if not layer.block_options:
        return Block(module)
    norm = normalization_module(node.normalization["kind"], output, node.normalization["groups"])
    act = activation_module(node.activation, output)
    drop = nn.Dropout(node.dropout) if node.dropout > 0 else None
    return Block(module, norm, act, drop, node.normalization["position"] == "after_activation")
