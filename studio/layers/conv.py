"""Convolution and pooling over images shaped channels × height × width."""

from __future__ import annotations

from torch import nn

from studio.errors import ShapeError
from studio.registry import LayerType
from studio.schema import Param
from studio.shapes_text import describe, describe_kind


def need_image(layer: str, shape) -> None:
    if len(shape) != 3:
        raise ShapeError(
            f"{layer} needs an image (channels×height×width) but receives {describe_kind(shape)}; "
            "feed it from an image Input or a layer that keeps the image shape"
        )


def sliding_size(
    layer: str, size: int, kernel: int, stride: int, padding: int, dilation: int = 1
) -> int:
    span = dilation * (kernel - 1) + 1
    out = (size + 2 * padding - span) // stride + 1
    if out < 1:
        raise ShapeError(
            f"{layer}'s {kernel}×{kernel} window does not fit the {size + 2 * padding}-pixel padded input; "
            "use a smaller kernel, more padding, or fewer pooling layers before it"
        )
    return out


class Conv2d(LayerType):
    name = "Conv2d"
    group = "Convolution"
    summary = "2-D convolution: slides learned filters over an image (kernel 1 = a 1×1 conv)."
    weighted = True
    block_options = True
    params = (
        Param(
            "out_channels",
            "int",
            16,
            "Number of filters, i.e. output channels.",
            1,
            4096,
            label="Filters",
        ),
        Param(
            "kernel_size", "int", 3, "Width and height of each filter (1 for a 1×1 conv).", 1, 31
        ),
        Param("stride", "int", 1, "Step between filter positions; 2 halves the size.", 1, 8),
        Param(
            "padding",
            "int_or_choice",
            "same",
            "'same' keeps height and width (stride 1 only), 'valid' adds none, or a number of pixels.",
            0,
            15,
            choices=("same", "valid"),
        ),
        Param("dilation", "int", 1, "Spacing between filter taps (atrous convolution).", 1, 8),
        Param(
            "groups",
            "int",
            1,
            "Split channels into independent groups (depthwise when = channels).",
            1,
            4096,
        ),
        Param("bias", "bool", True, "Learn an offset per filter (off when a BatchNorm follows)."),
    )

    def _padding(self, params) -> int:
        pad = params["padding"]
        if pad == "valid":
            return 0
        if pad == "same":
            if params["stride"] != 1:
                raise ShapeError(
                    "padding 'same' only works with stride 1; set padding to a number "
                    f"(e.g. {params['kernel_size'] // 2}) to use stride {params['stride']}"
                )
            span = params["dilation"] * (params["kernel_size"] - 1)
            if span % 2:
                raise ShapeError(
                    "padding 'same' needs an odd kernel size (with this dilation) to pad both sides "
                    "equally; use an odd kernel_size"
                )
            return span // 2
        return pad

    def output_shape(self, params, inputs):
        (shape,) = inputs
        need_image("Conv2d", shape)
        channels, height, width = shape
        groups = params["groups"]
        if channels % groups or params["out_channels"] % groups:
            raise ShapeError(
                f"groups={groups} must divide both the {channels} input channels and the "
                f"{params['out_channels']} filters"
            )
        pad = self._padding(params)
        k, s, d = params["kernel_size"], params["stride"], params["dilation"]
        return (
            params["out_channels"],
            sliding_size("Conv2d", height, k, s, pad, d),
            sliding_size("Conv2d", width, k, s, pad, d),
        )

    def build(self, params, inputs):
        return nn.Conv2d(
            inputs[0][0],
            params["out_channels"],
            params["kernel_size"],
            stride=params["stride"],
            padding=self._padding(params),
            dilation=params["dilation"],
            groups=params["groups"],
            bias=params["bias"],
        )

    def macs(self, params, inputs, output):
        in_per_group = inputs[0][0] // params["groups"]
        return output[0] * output[1] * output[2] * in_per_group * params["kernel_size"] ** 2

    def key_params(self, params):
        k = params["kernel_size"]
        text = f"{params['out_channels']}, {k}×{k}"
        if params["stride"] != 1:
            text += f", stride {params['stride']}"
        return text


class _Pool(LayerType):
    group = "Pooling"
    params = (
        Param("kernel_size", "int", 2, "Width and height of the pooling window.", 1, 16),
        Param(
            "stride", "int", 0, "Step between windows; 0 means the same as the kernel size.", 0, 16
        ),
        Param("padding", "int", 0, "Pixels added on each side (at most half the kernel).", 0, 8),
    )
    module = nn.MaxPool2d

    def _geometry(self, params):
        k = params["kernel_size"]
        return k, params["stride"] or k, params["padding"]

    def output_shape(self, params, inputs):
        (shape,) = inputs
        need_image(self.name, shape)
        k, s, p = self._geometry(params)
        if p > k // 2:
            raise ShapeError(
                f"padding {p} is more than half the {k}×{k} window; use at most {k // 2}"
            )
        return (
            shape[0],
            sliding_size(self.name, shape[1], k, s, p),
            sliding_size(self.name, shape[2], k, s, p),
        )

    def build(self, params, inputs):
        k, s, p = self._geometry(params)
        return self.module(k, s, p)

    def key_params(self, params):
        k, s, _ = self._geometry(params)
        return f"{k}×{k}" + (f", stride {s}" if s != k else "")


class MaxPool2d(_Pool):
    name = "MaxPool2d"
    summary = "Keeps the largest value in each window; shrinks the image."
    module = nn.MaxPool2d


class AvgPool2d(_Pool):
    name = "AvgPool2d"
    summary = "Averages each window; shrinks the image."
    module = nn.AvgPool2d


class GlobalAverage(nn.Module):
    """Mean over every position: height and width for images, steps for sequences."""

    def __init__(self, dims: tuple[int, ...]):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.mean(dim=self.dims)


class GlobalAvgPool(LayerType):
    name = "GlobalAvgPool"
    group = "Pooling"
    summary = "Averages each channel over the whole image: channels×H×W → channels."

    def output_shape(self, params, inputs):
        (shape,) = inputs
        if len(shape) == 1:
            raise ShapeError(
                f"GlobalAvgPool averages over image positions or sequence steps, but receives a flat "
                f"vector of {describe(shape)}; remove it or move it before the Flatten"
            )
        return (shape[0],) if len(shape) == 3 else (shape[1],)

    def build(self, params, inputs):
        return GlobalAverage((2, 3) if len(inputs[0]) == 3 else (1,))

    def key_params(self, params):
        return ""


LAYERS = (Conv2d, MaxPool2d, AvgPool2d, GlobalAvgPool)
