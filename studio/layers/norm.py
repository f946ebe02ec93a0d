"""Normalization as layers of their own (each weighted layer also has a normalization option)."""

from __future__ import annotations

import math

from studio.blocks import normalization_module
from studio.registry import LayerType
from studio.schema import Param


class _Norm(LayerType):
    group = "Normalization"
    kind = "batch"

    def output_shape(self, params, inputs):
        # Building the module checks that this kind fits the shape.
        normalization_module(self.kind, inputs[0], params.get("groups", 1))
        return inputs[0]

    def build(self, params, inputs):
        return normalization_module(self.kind, inputs[0], params.get("groups", 1))

    def macs(self, params, inputs, output):
        return 2 * math.prod(output)

    def key_params(self, params):
        return f"{params['groups']} groups" if "groups" in params else ""


class BatchNorm(_Norm):
    name = "BatchNorm"
    kind = "batch"
    summary = "Normalizes each channel over the batch; steadies and speeds up training."


class LayerNorm(_Norm):
    name = "LayerNorm"
    kind = "layer"
    summary = "Normalizes each sample over its features; independent of batch size."


class InstanceNorm(_Norm):
    name = "InstanceNorm"
    kind = "instance"
    summary = "Normalizes each channel of each sample on its own (style, contrast)."


class GroupNorm(_Norm):
    name = "GroupNorm"
    kind = "group"
    summary = "Normalizes groups of channels per sample; works with small batches."
    params = (
        Param(
            "groups", "int", 8, "Number of channel groups; must divide the channel count.", 1, 1024
        ),
    )


LAYERS = (BatchNorm, LayerNorm, InstanceNorm, GroupNorm)
