"""Joining branches: Add (residual connections) and Concat (Inception-style branches)."""

from __future__ import annotations

import math

import torch
from torch import nn

from studio.errors import ShapeError
from studio.registry import LayerType
from studio.schema import Param
from studio.shapes_text import describe

_INPUTS = Param("inputs", "int", 2, "How many branches join here.", 2, 8)


def _ports(params) -> list[str]:
    return [f"in{i}" for i in range(params["inputs"])]


class Sum(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Cat(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.dim)


class Add(LayerType):
    name = "Add"
    group = "Merge"
    summary = "Adds branches element-wise: output = F(x) + x, the residual connection."
    params = (_INPUTS,)

    def ports(self, params):
        return _ports(params)

    def output_shape(self, params, inputs):
        first = inputs[0]
        for port, shape in zip(_ports(params)[1:], inputs[1:]):
            if shape != first:
                hint = (
                    "make both branches end with the same number of channels and size "
                    "(e.g. a 1×1 Conv2d with the same stride on the shortcut)"
                    if len(first) == 3
                    else "make both branches end with the same number of units"
                )
                raise ShapeError(
                    f"Add needs equal shapes but gets {describe(first)} on in0 and "
                    f"{describe(shape)} on {port}; {hint}"
                )
        return first

    def build(self, params, inputs):
        return Sum()

    def macs(self, params, inputs, output):
        return (len(inputs) - 1) * math.prod(output)

    def key_params(self, params):
        return ""


class Concat(LayerType):
    name = "Concat"
    group = "Merge"
    summary = "Stacks branches along channels (images) or features: the Inception module's join."
    params = (_INPUTS,)

    def ports(self, params):
        return _ports(params)

    def output_shape(self, params, inputs):
        first = inputs[0]
        names = _ports(params)
        for port, shape in zip(names[1:], inputs[1:]):
            if len(shape) != len(first):
                raise ShapeError(
                    f"Concat joins tensors of one kind, but gets {describe(first)} on in0 and "
                    f"{describe(shape)} on {port}; flatten both or neither"
                )
            if len(first) == 3 and shape[1:] != first[1:]:
                raise ShapeError(
                    f"Concat stacks images along channels, so height and width must match, but in0 is "
                    f"{describe(first)} and {port} is {describe(shape)}; give both branches the same "
                    "strides and padding 'same'"
                )
            if len(first) == 2 and shape[0] != first[0]:
                raise ShapeError(
                    f"Concat stacks sequences along features, so the step counts must match, but in0 "
                    f"is {describe(first)} and {port} is {describe(shape)}"
                )
        if len(first) == 3:
            return (sum(s[0] for s in inputs), first[1], first[2])
        return (*first[:-1], sum(s[-1] for s in inputs))

    def build(self, params, inputs):
        return Cat(1 if len(inputs[0]) == 3 else -1)

    def key_params(self, params):
        return ""


LAYERS = (Add, Concat)
