"""Backbone nodes: shapes, parameter counts, stages, the freeze point and frozen BatchNorm."""

from __future__ import annotations

import time

import pytest
import torch
from support import chain, project_of
from torch import nn

from studio.analysis import analyze
from studio.builder import build_model
from studio.registry import catalog
from studio.transfer.architectures import SPECS
from studio.transfer.backbone import Backbone
from studio.vision import torchvision

TYPES = list(SPECS)


def backbone_net(type_name: str, size: int = 64, channels: int = 3, **params):
    params.setdefault("weights", "none")
    return chain(
        {"id": "image", "type": "Input", "params": {"shape": [channels, size, size]}},
        {"id": "base", "type": type_name, "params": params},
        {"id": "head", "type": "Output", "params": {"units": 5}},
    )


def torchvision_params(type_name: str) -> tuple[int, int]:
    """(all parameters, the last classifier Linear's) of the model as torchvision builds it."""
    spec = SPECS[type_name]
    with torch.device("meta"):
        model = torchvision().models.get_model(spec.model, weights=None, **spec.build_kwargs)
    head = model.get_submodule(spec.classifier)
    assert isinstance(head, nn.Linear)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return count(model), count(head)


@pytest.mark.parametrize("type_name", TYPES)
def test_every_backbone_analyses_like_the_torchvision_model(type_name):
    spec = SPECS[type_name]
    analysis = analyze(backbone_net(type_name, size=224))
    assert analysis.ok, analysis.problems
    info = analysis.layers["base"]
    total, head = torchvision_params(type_name)
    assert info.output_shape == (spec.features,)
    assert info.params == total - head
    # Every parameter belongs to exactly one stage, so the freeze point reaches them all.
    assert sum(params for _, params, _ in info.stages) == info.params
    assert [name for name, _, _ in info.stages] == catalog().get(type_name).stages({})
    # The default freezes the whole base: only the new head trains.
    assert info.frozen == info.params
    assert analysis.trainable_params == analysis.layers["head"].params
    assert info.macs > 0


@pytest.mark.parametrize("type_name", TYPES)
def test_input_hint_comes_from_the_weights_transforms(type_name):
    hint = catalog().get(type_name).input_hint({})
    channels, height, width = hint["shape"]
    assert channels == 3 and height == width and hint["resize"] >= height
    assert len(hint["mean"]) == len(hint["std"]) == 3


def test_macs_grow_with_the_number_of_pixels():
    small = analyze(backbone_net("ResNet18", size=112)).layers["base"].macs
    large = analyze(backbone_net("ResNet18", size=224)).layers["base"].macs
    assert large == pytest.approx(4 * small, rel=0.01)


def test_resnet18_builds_and_runs_forward():
    net = backbone_net("ResNet18", freeze_point=0)
    model = build_model(project_of(net))
    block = model.layers["base"].layer
    assert isinstance(block, Backbone)
    assert block.stage_names == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert isinstance(block.net.fc, nn.Identity)
    y = model(torch.randn(2, 3, 64, 64))
    assert y.shape == (2, 5)
    real = sum(p.numel() for p in model.parameters())
    analysis = analyze(net)
    assert analysis.trainable_params + analysis.frozen_params == real
    assert model.weights_reports == {}


@pytest.mark.parametrize("freeze_point", [0, 2, 5])
def test_freeze_point_freezes_the_early_stages(freeze_point):
    net = backbone_net("ResNet18", freeze_point=freeze_point)
    model = build_model(project_of(net))
    block = model.layers["base"].layer
    stages = block.stage_modules()
    for i, stage in enumerate(stages):
        assert all(p.requires_grad == (i >= freeze_point) for p in stage.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    unfrozen = sum(p.numel() for s in stages[freeze_point:] for p in s.parameters())
    head = sum(p.numel() for p in model.layers["head"].parameters())
    assert trainable == unfrozen + head
    analysis = analyze(net)
    assert analysis.trainable_params == trainable
    assert [frozen for _, _, frozen in analysis.layers["base"].stages] == [
        i < freeze_point for i in range(len(stages))
    ]


def test_a_frozen_node_counts_every_parameter_as_frozen():
    net = backbone_net("ResNet18", freeze_point=0)
    net.nodes["base"].trainable = False
    info = analyze(net).layers["base"]
    assert info.frozen == info.params > 0
    assert all(frozen for _, _, frozen in info.stages)


def _batchnorms(module):
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


@pytest.mark.parametrize("update", [False, True])
def test_frozen_batchnorm_keeps_its_statistics_unless_asked(update):
    model = build_model(
        project_of(backbone_net("ResNet18", freeze_point=2, update_frozen_bn=update))
    )
    block = model.layers["base"].layer
    stages = block.stage_modules()
    model.train()
    for i, stage in enumerate(stages):
        for bn in _batchnorms(stage):
            assert bn.training == (update or i >= 2)
    frozen_bn = _batchnorms(stages[0])[0]
    before = frozen_bn.running_mean.clone()
    model(torch.randn(4, 3, 64, 64) * 3 + 1)
    assert torch.equal(frozen_bn.running_mean, before) != update
    model.eval()
    assert not any(bn.training for bn in _batchnorms(block))


def test_moving_the_freeze_point_updates_gradients_and_batchnorm_modes():
    model = build_model(project_of(backbone_net("ResNet18", freeze_point=5)))
    block = model.layers["base"].layer
    model.train()
    block.set_freeze_point(3)
    stages = block.stage_modules()
    assert all(p.requires_grad for p in stages[3].parameters())
    assert not any(p.requires_grad for p in stages[2].parameters())
    assert all(bn.training for bn in _batchnorms(stages[3]))
    assert not any(bn.training for bn in _batchnorms(stages[2]))
    with pytest.raises(ValueError):
        block.set_freeze_point(6)


@pytest.mark.parametrize(
    ("type_name", "shape", "words"),
    [
        ("ResNet18", [1, 64, 64], "3 channels"),
        ("VGG11_BN", [3, 16, 16], "at least 32×32"),
        ("GoogLeNet", [3, 14, 200], "at least 15×15"),
        ("ResNet18", [3, 64], "RGB image"),
    ],
)
def test_inputs_the_network_cannot_take_are_refused_with_advice(type_name, shape, words):
    net = chain(
        {"id": "image", "type": "Input", "params": {"shape": shape}},
        {"id": "base", "type": type_name, "params": {"weights": "none"}},
        {"id": "head", "type": "Output", "params": {"units": 5}},
    )
    problem = analyze(net).problem_for("base")
    assert problem and words in problem and "Node 'base'" in problem


def test_smallest_accepted_input_really_runs():
    for type_name in ("VGG11_BN", "GoogLeNet", "ConvNeXtTiny"):
        size = SPECS[type_name].min_size
        net = backbone_net(type_name, size=size)
        assert analyze(net).ok
        with torch.device("meta"):
            model = build_model(project_of(net))
            assert model(torch.zeros(2, 3, size, size)).shape == (2, 5)


def test_weights_file_mode_needs_a_path():
    problem = analyze(backbone_net("ResNet18", weights="file")).problem_for("base")
    assert problem and "weights_file" in problem


def test_key_params_say_weights_and_freeze_point():
    layer = catalog().get("ResNet18")
    params = backbone_net("ResNet18", weights="imagenet", freeze_point=3).nodes["base"].params
    assert layer.key_params(params) == "imagenet, freeze 3/5"
    params = {**params, "weights": "file", "weights_file": "weights/mine.pth"}
    assert layer.key_params(params) == "mine.pth, freeze 3/5"


def test_backbones_are_in_their_palette_group():
    group = catalog().by_group()["Backbones"]
    names = {layer.name for layer in group}
    assert set(TYPES) | {"RunBackbone"} <= names
    assert all(layer.backbone for layer in group)
    assert not any(layer.backbone for layer in catalog() if layer.group != "Backbones")


def test_analysing_a_resnet50_project_is_fast():
    net = backbone_net("ResNet50", size=224)
    analyze(net)  # the first call imports torchvision
    start = time.perf_counter()
    analyze(net)
    assert time.perf_counter() - start < 0.5
