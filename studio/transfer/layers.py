"""Backbone layer types: a pretrained network as one node, image in, feature vector out.

Each has a freeze point over its stages (studio/transfer/backbone.py: 0 = train
everything, len(stages) = the whole base frozen, i.e. feature extraction) and keeps the
BatchNorm statistics of frozen stages fixed unless update_frozen_bn. The new head is the
downstream Output node. They register with the built-in layers (studio/layers).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from studio import pretrained
from studio.builder import build_model
from studio.errors import ShapeError
from studio.registry import LayerType
from studio.schema import Param
from studio.shapes_text import describe
from studio.transfer import runs
from studio.transfer.architectures import (
    SPECS,
    Spec,
    build_torchvision,
    check_image,
    default_weights,
    is_meta,
    macs,
)
from studio.transfer.backbone import Backbone

WEIGHTS = ("imagenet", "none", "file")


def _freeze_params(whole: str, default: int, maximum: int) -> tuple[Param, ...]:
    return (
        Param(
            "freeze_point",
            "int",
            default,
            f"How many stages, from the input on, stay frozen: 0 trains everything, {whole} "
            "freezes the whole base so only the head trains (feature extraction).",
            0,
            maximum,
            label="Frozen stages",
        ),
        Param(
            "update_frozen_bn",
            "bool",
            False,
            "Let BatchNorm layers in frozen stages keep updating their statistics while "
            "training (off: they keep the pretrained ones, usually better for small data).",
            label="Update frozen BatchNorm",
        ),
    )


class TorchvisionBackbone(LayerType):
    """A torchvision classifier minus its last Linear; subclasses name the Spec."""

    group = "Backbones"
    backbone = True
    spec: Spec

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        spec = cls.spec
        n = len(spec.stages)
        cls.name = spec.type_name
        cls.summary = (
            f"{spec.label} from torchvision, pretrained on ImageNet: image → {spec.features} "
            "features; freeze its early stages and put an Output head after it."
        )
        cls.params = (
            Param(
                "weights",
                "choice",
                "imagenet",
                "imagenet: torchvision's pretrained weights (downloaded once into torch hub's "
                "cache); none: random start; file: a .pth/.pt/.safetensors state dict.",
                choices=WEIGHTS,
            ),
            Param(
                "weights_file",
                "str",
                "",
                "With weights 'file': the state dict's path, relative to the project file.",
                label="Weights file",
            ),
            *_freeze_params(str(n), n, n),
        )

    def stages(self, params: dict) -> list[str]:
        return self.spec.stage_names

    def output_shape(self, params, inputs):
        (shape,) = inputs
        check_image(self.spec, shape)
        if params["weights"] == "file" and not params["weights_file"].strip():
            raise ShapeError(
                "weights is 'file' but field 'weights_file' is empty; give the path of a "
                ".pth/.pt/.safetensors state dict, or pick 'imagenet' or 'none'"
            )
        return (self.spec.features,)

    def build(self, params, inputs):
        spec = self.spec
        net = build_torchvision(spec, transform_input=params["weights"] != "none")
        stages = [(name, list(paths)) for name, paths in spec.stages]
        module = Backbone(
            net,
            stages,
            params["freeze_point"],
            params["update_frozen_bn"],
            stage_activations=spec.stage_activations,
        )
        # The analysis builds on the meta device: no files there.
        if params["weights"] != "none" and not is_meta() and pretrained.loading_enabled():
            module.weights_report = self._load(net, params)
        return module

    def _load(self, net: nn.Module, params: dict) -> str:
        label = f"The {self.name} backbone"
        if params["weights"] == "imagenet":
            state, source = pretrained.imagenet_state(default_weights(self.spec), label)
        else:
            path = pretrained.resolve(params["weights_file"])
            state, source = pretrained.read_state(path, label), f"'{path.name}'"
        return pretrained.load_into(
            net,
            state,
            source=source,
            label=label,
            dropped=(f"{self.spec.classifier}.", *self.spec.dropped),
        )

    def macs(self, params, inputs, output):
        return macs(self.spec, inputs[0][1], inputs[0][2])

    def input_hint(self, params: dict) -> dict | None:
        """Image size and normalization the ImageNet weights were trained with."""
        transforms = default_weights(self.spec).transforms()
        crop = int(transforms.crop_size[0])
        return {
            "shape": (3, crop, crop),
            "resize": int(transforms.resize_size[0]),
            "mean": tuple(float(m) for m in transforms.mean),
            "std": tuple(float(s) for s in transforms.std),
        }

    def key_params(self, params):
        weights = params["weights"]
        if weights == "file":
            weights = Path(params["weights_file"]).name or "file"
        return f"{weights}, freeze {params['freeze_point']}/{len(self.spec.stages)}"


def _ends_in_relu(block: nn.Module) -> str:
    """ "relu" when a studio block's output is its ReLU's (dropout after it keeps zeros
    zero; a normalization after it does not)."""
    act = getattr(block, "act", None)
    if isinstance(act, nn.ReLU) and not (block.norm is not None and block.norm_after_activation):
        return "relu"
    return ""


def _torchvision_type(type_name: str) -> type[TorchvisionBackbone]:
    return type(type_name, (TorchvisionBackbone,), {"spec": SPECS[type_name]})


class RunBackbone(LayerType):
    """The network of an earlier studio run, minus its head, with the run's weights."""

    name = "RunBackbone"
    group = "Backbones"
    summary = (
        "A network trained in an earlier run, without its head: reuse what it learned as "
        "features for a new Output head."
    )
    backbone = True
    params = (
        Param(
            "run",
            "str",
            "",
            "The run's folder (runs/<project>/<run id>), relative to the project file.",
            label="Run folder",
        ),
        Param(
            "checkpoint",
            "choice",
            "best",
            "Which of the run's weights: best (by its monitored metric) or last.",
            choices=("best", "last"),
        ),
        # The real maximum is the run's stage count, checked in output_shape.
        *_freeze_params("the number of stages", 0, 1000),
    )

    def stages(self, params: dict) -> list[str]:
        return list(self._source(params).stages)

    def _source(self, params) -> runs.RunSource:
        try:
            return runs.run_source(params["run"], "The RunBackbone")
        except pretrained.PretrainedError as err:
            # In the analysis the node is named by the analyzer; keep the sentence's advice.
            raise ShapeError(str(err).split(": ", 1)[-1].rstrip(".")) from None

    def output_shape(self, params, inputs):
        source = self._source(params)
        (shape,) = inputs
        if tuple(shape) != source.input_shape:
            raise ShapeError(
                f"run '{source.path.name}' was trained on inputs of {describe(source.input_shape)} "
                f"but this node receives {describe(shape)}; set the Input to "
                f"{list(source.input_shape)}"
            )
        if params["freeze_point"] > len(source.stages):
            raise ShapeError(
                f"freeze_point is {params['freeze_point']} but the run's network has only "
                f"{len(source.stages)} stages (layers with weights); set it to at most "
                f"{len(source.stages)}"
            )
        return source.features

    def build(self, params, inputs):
        source = self._source(params)
        # The run's checkpoint holds every weight, so nested backbones need not load theirs.
        with pretrained.without_weights():
            net = build_model(source.project)
        _drop_head(net, source)
        load = not is_meta() and pretrained.loading_enabled()
        report = ""
        if load:
            label = "The RunBackbone"
            path, what = runs.run_checkpoint(source, params["checkpoint"], label)
            report = pretrained.load_into(
                net,
                pretrained.read_state(path, label),
                source=what,
                label=label,
                dropped=(f"layers.{source.head}.",),
                replaced="head replaced",
            )
        stages = [(nid, [f"layers.{nid}"]) for nid in source.stages]
        # A stage is an earlier node: its output is a ReLU's when that node ends in one.
        kinds = [_ends_in_relu(net.layers[nid]) for nid in source.stages]
        module = Backbone(
            net,
            stages,
            params["freeze_point"],
            params["update_frozen_bn"],
            stage_activations=kinds,
        )
        module.weights_report = report
        return module

    def macs(self, params, inputs, output):
        return self._source(params).macs

    def input_hint(self, params: dict) -> dict | None:
        return None

    def key_params(self, params):
        try:
            n = len(self._source(params).stages)
        except ShapeError:
            return "no run chosen" if not params["run"] else "run not found"
        return f"{Path(params['run']).name}, freeze {params['freeze_point']}/{n}"


def _drop_head(net: nn.Module, source: runs.RunSource) -> None:
    """Turn the run's GraphModel into one that ends at the features."""
    del net.layers[source.head]
    net.steps = [step for step in net.steps if step[0] != source.head]
    net.output_id = source.feature_node
    net.output_shape = source.features


LAYERS = (*(_torchvision_type(name) for name in SPECS), RunBackbone)
