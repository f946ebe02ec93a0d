"""Input, Linear, Flatten, Dropout and the output head."""

from __future__ import annotations

import math

from torch import nn

from studio.errors import ShapeError
from studio.registry import LayerType, Shape
from studio.schema import Param
from studio.shapes_text import describe, describe_kind


class Input(LayerType):
    name = "Input"
    group = "Core"
    summary = "Where data enters: one sample's shape, without the batch."
    is_input = True
    params = (
        Param(
            "shape",
            "shape",
            [1, 8, 8],
            "One sample's shape: [features], [steps, features] or [channels, height, width].",
        ),
    )

    def output_shape(self, params, inputs):
        return tuple(params["shape"])

    def build(self, params, inputs):
        return nn.Identity()

    def key_params(self, params):
        return describe(params["shape"])


def need_vector(layer: str, shape: Shape, allow_sequence: bool = False) -> None:
    if len(shape) == 1 or (allow_sequence and len(shape) == 2):
        return
    if len(shape) == 3:
        raise ShapeError(
            f"{layer} needs a flat vector but receives {describe_kind(shape)}; "
            "put a Flatten or GlobalAvgPool before it"
        )
    raise ShapeError(
        f"{layer} needs a flat vector but receives {describe_kind(shape)}; "
        "put a Flatten before it, or an LSTM/GRU that returns its last state"
    )


class Linear(LayerType):
    name = "Linear"
    group = "Core"
    summary = "Dense layer: every output is a weighted sum of every input."
    weighted = True
    block_options = True
    params = (
        Param("out_features", "int", 64, "Number of output units.", 1, 65536, label="Units"),
        Param("bias", "bool", True, "Learn an offset per unit."),
    )

    def output_shape(self, params, inputs):
        (shape,) = inputs
        need_vector("Linear", shape, allow_sequence=True)
        return (*shape[:-1], params["out_features"])

    def build(self, params, inputs):
        return nn.Linear(inputs[0][-1], params["out_features"], bias=params["bias"])

    def macs(self, params, inputs, output):
        return math.prod(output) * inputs[0][-1]

    def key_params(self, params):
        return f"{params['out_features']} units"


class Output(LayerType):
    name = "Output"
    group = "Core"
    summary = "The head: one unit per class (softmax for multi-class, sigmoid for binary)."
    weighted = True
    params = (
        Param(
            "units",
            "int",
            10,
            "Number of classes (1 for binary or a single regression target).",
            1,
            100000,
            label="Units",
        ),
        Param(
            "task",
            "choice",
            "multiclass",
            "multiclass: softmax + cross entropy; binary: sigmoid + binary cross entropy; "
            "regression: no activation + MSE.",
            choices=("multiclass", "binary", "regression"),
        ),
    )

    def output_shape(self, params, inputs):
        (shape,) = inputs
        need_vector("Output", shape)
        if params["task"] == "binary" and params["units"] != 1:
            raise ShapeError(
                "a binary head has exactly 1 unit (its sigmoid gives the probability); set units to 1"
            )
        return (params["units"],)

    def build(self, params, inputs):
        # The head emits logits: the loss applies softmax/sigmoid in a numerically stable way.
        return nn.Linear(inputs[0][-1], params["units"])

    def macs(self, params, inputs, output):
        return inputs[0][-1] * params["units"]

    def key_params(self, params):
        return f"{params['units']} {params['task']}"


class Flatten(LayerType):
    name = "Flatten"
    group = "Core"
    summary = "Lays an image or a sequence out as one long vector."

    def output_shape(self, params, inputs):
        return (math.prod(inputs[0]),)

    def build(self, params, inputs):
        return nn.Flatten(1)

    def key_params(self, params):
        return ""


class Dropout(LayerType):
    name = "Dropout"
    group = "Regularization"
    summary = "Zeroes a random fraction of values while training; a regularizer."
    params = (
        Param("rate", "float", 0.5, "Fraction of values set to zero during training.", 0.0, 0.95),
    )

    def output_shape(self, params, inputs):
        return inputs[0]

    def build(self, params, inputs):
        return nn.Dropout(params["rate"])

    def key_params(self, params):
        return f"p={params['rate']:g}"


LAYERS = (Input, Linear, Flatten, Output, Dropout)
