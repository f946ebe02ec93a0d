"""Activations as layers of their own (each weighted layer also has an activation option)."""

from __future__ import annotations

import math

from studio.blocks import activation_module
from studio.registry import LayerType
from studio.schema import Param


class _Activation(LayerType):
    group = "Activation"
    function = "relu"

    def output_shape(self, params, inputs):
        return inputs[0]

    def build(self, params, inputs):
        return activation_module(self.function, inputs[0], params.get("negative_slope", 0.01))

    def macs(self, params, inputs, output):
        return math.prod(output)

    def key_params(self, params):
        return ""


class ReLU(_Activation):
    name = "ReLU"
    function = "relu"
    summary = "max(0, x): the default for hidden layers; units can die if pushed negative."


class LeakyReLU(_Activation):
    name = "LeakyReLU"
    function = "leaky_relu"
    summary = "Like ReLU but lets a small slope through for negatives, so units cannot die."
    params = (Param("negative_slope", "float", 0.01, "Slope for negative inputs.", 0.0, 1.0),)

    def key_params(self, params):
        return f"slope {params['negative_slope']:g}"


class GELU(_Activation):
    name = "GELU"
    function = "gelu"
    summary = "A smooth ReLU used by transformers."


class Sigmoid(_Activation):
    name = "Sigmoid"
    function = "sigmoid"
    summary = "Squashes to 0..1; saturates (and stops gradients) for large inputs."


class Tanh(_Activation):
    name = "Tanh"
    function = "tanh"
    summary = "Squashes to -1..1; zero-centred but saturates like the sigmoid."


class Softmax(_Activation):
    name = "Softmax"
    function = "softmax"
    summary = "Turns scores into probabilities that sum to 1 (multi-class output)."


LAYERS = (ReLU, LeakyReLU, GELU, Sigmoid, Tanh, Softmax)
