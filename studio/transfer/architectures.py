"""The torchvision networks a backbone node can be: how each is built, split into stages,
and measured.

A backbone is a torchvision classifier whose last Linear is replaced by nn.Identity, so it
turns an image into a feature vector; the new head is the downstream Output node. Its
layers are split into stages (input → output order) so a person can freeze the early,
generic part and fine-tune the rest (studio/transfer/backbone.py).

The architectures are torchvision's own builders, never rewritten here. Modules are built
with weights=None (on the meta device during analysis, which never touches files); the
pretrained weights are loaded afterwards by studio.pretrained.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from studio.errors import ShapeError
from studio.shapes_text import describe_kind
from studio.vision import torchvision


@dataclass(frozen=True)
class Spec:
    """How the studio uses one torchvision model."""

    type_name: str  # the layer type, e.g. "ResNet18"
    model: str  # torchvision's name, e.g. "resnet18"
    label: str
    # (stage name, dotted paths of the modules in it), input → output order.
    stages: tuple[tuple[str, tuple[str, ...]], ...]
    classifier: str  # the last Linear, replaced by nn.Identity
    features: int  # the feature vector's length
    # Smallest height/width the architecture accepts, found by trying sizes on CPU.
    min_size: int
    # Keys in the weight files that are dropped on purpose besides the classifier's.
    dropped: tuple[str, ...] = ()
    build_kwargs: dict = field(default_factory=dict)
    # Every stage's output comes out of a ReLU (ResNet blocks, VGG's conv blocks and hidden
    # FCs, Inception's concatenated ReLU branches), so their dead units can be counted.
    # MobileNet, EfficientNet and ConvNeXt stages end in linear bottlenecks or norms.
    rectified: bool = False

    @property
    def stage_names(self) -> list[str]:
        return [name for name, _ in self.stages]

    @property
    def stage_activations(self) -> list[str]:
        """Per stage, "relu" when its output comes out of a ReLU, else ""."""
        return ["relu" if self.rectified else ""] * len(self.stages)


def _features(*indices: int) -> tuple[str, ...]:
    return tuple(f"features.{i}" for i in indices)


_RESNET_STAGES = (
    ("stem", ("conv1", "bn1", "relu", "maxpool")),
    ("layer1", ("layer1",)),
    ("layer2", ("layer2",)),
    ("layer3", ("layer3",)),
    ("layer4", ("layer4",)),
)


def _vgg_stages(blocks: list[range]) -> tuple:
    # The five conv blocks end at their MaxPool; the hidden FCs (Linear-ReLU-Dropout ×2) last.
    convs = tuple((f"block{i + 1}", _features(*r)) for i, r in enumerate(blocks))
    return (*convs, ("fc", tuple(f"classifier.{i}" for i in range(6))))


def _split(lengths: list[int]) -> list[range]:
    out, start = [], 0
    for n in lengths:
        out.append(range(start, start + n))
        start += n
    return out


SPECS: dict[str, Spec] = {
    spec.type_name: spec
    for spec in (
        Spec("ResNet18", "resnet18", "ResNet-18", _RESNET_STAGES, "fc", 512, 1, rectified=True),
        Spec("ResNet34", "resnet34", "ResNet-34", _RESNET_STAGES, "fc", 512, 1, rectified=True),
        Spec("ResNet50", "resnet50", "ResNet-50", _RESNET_STAGES, "fc", 2048, 1, rectified=True),
        # VGG-BN blocks: (conv, BN, ReLU) × n then MaxPool.
        Spec(
            "VGG11_BN",
            "vgg11_bn",
            "VGG-11 (BN)",
            _vgg_stages(_split([4, 4, 7, 7, 7])),
            "classifier.6",
            4096,
            32,
            rectified=True,
        ),
        Spec(
            "VGG16_BN",
            "vgg16_bn",
            "VGG-16 (BN)",
            _vgg_stages(_split([7, 7, 10, 10, 10])),
            "classifier.6",
            4096,
            32,
            rectified=True,
        ),
        # MobileNet/EfficientNet: `features` grouped by the resolution they work at; the
        # last 1×1 conv (and the hidden classifier Linear where there is one) is "top".
        Spec(
            "MobileNetV3Small",
            "mobilenet_v3_small",
            "MobileNetV3-Small",
            (
                ("stem", _features(0)),
                ("stage1", _features(1)),
                ("stage2", _features(2, 3)),
                ("stage3", _features(4, 5, 6, 7, 8)),
                ("stage4", _features(9, 10, 11)),
                ("top", (*_features(12), "classifier.0", "classifier.1", "classifier.2")),
            ),
            "classifier.3",
            1024,
            1,
        ),
        Spec(
            "MobileNetV3Large",
            "mobilenet_v3_large",
            "MobileNetV3-Large",
            (
                ("stem", _features(0, 1)),
                ("stage1", _features(2, 3)),
                ("stage2", _features(4, 5, 6)),
                ("stage3", _features(7, 8, 9, 10, 11, 12)),
                ("stage4", _features(13, 14, 15)),
                ("top", (*_features(16), "classifier.0", "classifier.1", "classifier.2")),
            ),
            "classifier.3",
            1280,
            1,
        ),
        Spec(
            "EfficientNetB0",
            "efficientnet_b0",
            "EfficientNet-B0",
            (
                ("stem", _features(0, 1)),
                ("stage1", _features(2)),
                ("stage2", _features(3)),
                ("stage3", _features(4, 5)),
                ("stage4", _features(6, 7)),
                ("top", _features(8)),
            ),
            "classifier.1",
            1280,
            1,
        ),
        Spec(
            "GoogLeNet",
            "googlenet",
            "GoogLeNet (Inception v1)",
            (
                ("stem", ("conv1", "maxpool1", "conv2", "conv3", "maxpool2")),
                ("inception3", ("inception3a", "inception3b", "maxpool3")),
                ("inception4", tuple(f"inception4{c}" for c in "abcde") + ("maxpool4",)),
                ("inception5", ("inception5a", "inception5b")),
            ),
            "fc",
            1024,
            15,
            # The ImageNet file also holds the two auxiliary classifiers, unused here.
            dropped=("aux1.", "aux2."),
            build_kwargs={"aux_logits": False, "init_weights": True},
            rectified=True,
        ),
        Spec(
            "ConvNeXtTiny",
            "convnext_tiny",
            "ConvNeXt-Tiny",
            (
                ("stem", _features(0)),
                ("stage1", _features(1)),
                ("stage2", _features(2, 3)),
                ("stage3", _features(4, 5)),
                # The classifier's LayerNorm belongs with the last stage it normalizes.
                ("stage4", (*_features(6, 7), "classifier.0")),
            ),
            "classifier.2",
            768,
            32,
        ),
    )
}


def is_meta() -> bool:
    """True while the analysis builds blocks on the meta device (no data, no files)."""
    return torch.get_default_device().type == "meta"


def check_image(spec: Spec, shape) -> None:
    """Refuse inputs the network cannot take, saying what to change."""
    if len(shape) != 3:
        raise ShapeError(
            f"{spec.label} needs an RGB image (3×height×width) but receives {describe_kind(shape)}; "
            "feed it from an image Input"
        )
    channels, height, width = shape
    if channels != 3:
        raise ShapeError(
            f"{spec.label} takes RGB images with 3 channels but receives {channels}; set the "
            "Input to [3, height, width] (grayscale images repeated to 3 channels), or put a "
            "1×1 Conv2d with 3 filters before it"
        )
    if min(height, width) < spec.min_size:
        raise ShapeError(
            f"{spec.label} needs images of at least {spec.min_size}×{spec.min_size} pixels but "
            f"receives {height}×{width}; resize the images (its ImageNet weights were trained "
            "on 224×224)"
        )


def build_torchvision(spec: Spec, transform_input: bool = False) -> nn.Module:
    """The torchvision model with random (or meta) weights and its classifier removed.

    transform_input only matters for GoogLeNet: its ImageNet weights expect the input
    rescaled as torchvision does when it loads them itself.
    """
    tv = torchvision()
    kwargs = dict(spec.build_kwargs)
    if spec.model == "googlenet":
        kwargs["transform_input"] = transform_input
    net = tv.models.get_model(spec.model, weights=None, **kwargs)
    net.set_submodule(spec.classifier, nn.Identity())
    return net


def default_weights(spec: Spec):
    """torchvision's DEFAULT weights enum entry for the model (no file is read)."""
    return torchvision().models.get_model_weights(spec.model).DEFAULT


def macs(spec: Spec, height: int, width: int) -> int:
    """An estimate of multiply-accumulates per image.

    torchvision's weights meta `_ops` is the GFLOPS figure at 224×224, counted as
    multiply-adds (ResNet-50: 4.09). Convolution cost grows with the number of pixels, so
    it is scaled by (H·W)/(224·224); the fixed-size parts (the removed classifier, VGG's
    FCs behind its adaptive pooling) are small next to the convolutions, so are not
    separated out.
    """
    gops = default_weights(spec).meta["_ops"]
    return int(gops * 1e9 * height * width / (224 * 224))
