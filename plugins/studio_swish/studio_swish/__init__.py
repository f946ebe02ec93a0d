"""Example plugin: a Swish activation (x · sigmoid(β·x)) whose β can be learned."""

from __future__ import annotations

import math

import torch
from torch import nn

from studio.registry import LayerType
from studio.schema import Param


class SwishModule(nn.Module):
    def __init__(self, beta: float, learnable: bool):
        super().__init__()
        value = torch.tensor(float(beta))
        if learnable:
            self.beta = nn.Parameter(value)
        else:
            self.register_buffer("beta", value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta * x)


class Swish(LayerType):
    name = "Swish"
    group = "Activation"
    summary = "x · sigmoid(β·x): a smooth ReLU-like activation; β can be learned (plugin)."
    params = (
        Param("beta", "float", 1.0, "Slope of the sigmoid gate (1 gives SiLU).", 0.0, 10.0),
        Param("learnable", "bool", False, "Learn β during training."),
    )

    def output_shape(self, params, inputs):
        return inputs[0]

    def build(self, params, inputs):
        return SwishModule(params["beta"], params["learnable"])

    def macs(self, params, inputs, output):
        return 2 * math.prod(output)

    def key_params(self, params):
        return f"β={params['beta']:g}" + (" (learned)" if params["learnable"] else "")


def register(catalog) -> None:
    catalog.register(Swish())
