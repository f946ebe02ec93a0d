"""The builder: real modules that match shape inference, seeded weights, stable names,
and the per-layer initializer / normalization / dropout / freeze choices."""

from __future__ import annotations

import pytest
import torch
from support import EXAMPLES, chain
from torch import nn

from studio.analysis import analyze
from studio.builder import build_model
from studio.document import Edge, Node
from studio.projectfile import load_project

VECTOR = {"id": "x", "type": "Input", "params": {"shape": [32]}}


def dense(nid, init=None, **extra):
    node = {"id": nid, "type": "Linear", "params": {"out_features": 32}, **extra}
    if init:
        node["initializer"] = init
    return node


def test_every_example_runs_and_matches_shape_inference(example_path):
    project = load_project(example_path)
    analysis = analyze(project.network)
    model = build_model(project).eval()
    seen = {}
    for nid, block in model.layers.items():
        block.register_forward_hook(
            lambda m, i, o, nid=nid: seen.__setitem__(nid, tuple(o.shape[1:]))
        )
    with torch.no_grad():
        out = model(torch.randn(3, *model.input_shape))
    assert tuple(out.shape) == (3, *analysis.output_shape)
    for nid, shape in seen.items():
        assert shape == analysis.layers[nid].output_shape, nid
        assert (
            sum(p.numel() for p in model.layers[nid].parameters()) == analysis.layers[nid].params
        ), nid


def test_same_seed_same_weights_other_seed_other_weights(example_path):
    project = load_project(example_path)
    a, b = build_model(project, seed=3).state_dict(), build_model(project, seed=3).state_dict()
    c = build_model(project, seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if k.endswith("weight"))


def test_building_does_not_disturb_the_global_random_stream():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    build_model(load_project(EXAMPLES[0]))
    assert torch.equal(torch.rand(3), expected)


def test_parameter_names_and_weights_survive_an_edit_elsewhere():
    network = chain(
        VECTOR, dense("a"), dense("b"), {"id": "head", "type": "Output", "params": {"units": 4}}
    )
    before = build_model(network, seed=1).state_dict()
    # Insert a new layer between a and b: a, b and head keep their names and their weights.
    network.remove_edge(Edge("a", "b"))
    network.add_node(Node("extra", "Linear", {"out_features": 32, "bias": True}))
    network.add_edge(Edge("a", "extra"))
    network.add_edge(Edge("extra", "b"))
    after = build_model(network, seed=1).state_dict()
    assert set(before) < set(after)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert "layers.a.layer.weight" in after


@pytest.mark.parametrize(
    ("init", "check"),
    [
        ({"name": "zeros"}, lambda w: torch.count_nonzero(w) == 0),
        ({"name": "ones"}, lambda w: bool((w == 1).all())),
        ({"name": "constant", "value": 0.3}, lambda w: torch.allclose(w, torch.full_like(w, 0.3))),
        ({"name": "eye"}, lambda w: torch.equal(w, torch.eye(32))),
        ({"name": "uniform", "low": 0.5, "high": 0.7}, lambda w: w.min() >= 0.5 and w.max() <= 0.7),
        ({"name": "normal", "mean": 2.0, "std": 0.01}, lambda w: abs(w.mean() - 2.0) < 0.01),
        ({"name": "truncated_normal", "std": 0.1}, lambda w: w.abs().max() <= 0.2 + 1e-6),
        (
            {"name": "sparse", "sparsity": 0.5, "std": 0.1},
            lambda w: (w == 0).float().mean() >= 0.45,
        ),
        ({"name": "orthogonal"}, lambda w: torch.allclose(w @ w.T, torch.eye(32), atol=1e-4)),
        ({"name": "xavier_uniform"}, lambda w: w.abs().max() <= (6 / 64) ** 0.5 + 1e-6),
        ({"name": "xavier_normal"}, lambda w: abs(w.std() - (2 / 64) ** 0.5) < 0.03),
        (
            {"name": "kaiming_normal", "mode": "fan_in", "nonlinearity": "relu"},
            lambda w: abs(w.std() - 0.25) < 0.03,
        ),
        (
            {"name": "kaiming_uniform", "nonlinearity": "relu"},
            lambda w: w.abs().max() <= (6 / 32) ** 0.5 + 1e-6,
        ),
    ],
    ids=lambda v: v["name"] if isinstance(v, dict) else "",
)
def test_each_initializer_shapes_the_weights_and_zeroes_the_bias(init, check):
    model = build_model(chain(VECTOR, dense("a", init)))
    layer = model.layers["a"].layer
    assert check(layer.weight.detach())
    assert torch.count_nonzero(layer.bias) == 0


def test_dirac_makes_a_convolution_pass_its_input_through():
    network = chain(
        {"id": "img", "type": "Input", "params": {"shape": [4, 6, 6]}},
        {
            "id": "c",
            "type": "Conv2d",
            "params": {"out_channels": 4},
            "initializer": {"name": "dirac"},
        },
    )
    model = build_model(network)
    x = torch.randn(2, 4, 6, 6)
    assert torch.allclose(model(x), x, atol=1e-6)


def test_block_options_compose_in_the_documented_order():
    node = dense("a", activation="relu", dropout=0.25, normalization={"kind": "batch"})
    block = build_model(chain(VECTOR, node)).layers["a"]
    assert isinstance(block.norm, nn.BatchNorm1d) and isinstance(block.act, nn.ReLU)
    assert block.drop.p == 0.25 and not block.norm_after_activation
    block.eval()
    x = torch.randn(5, 32)
    expected = torch.relu(block.norm(block.layer(x)))
    assert torch.allclose(block(x), expected)


@pytest.mark.parametrize(
    ("shape", "kind", "module"),
    [
        ([3, 8, 8], "batch", nn.BatchNorm2d),
        ([3, 8, 8], "instance", nn.InstanceNorm2d),
        ([3, 8, 8], "group", nn.GroupNorm),
        ([3, 8, 8], "layer", nn.GroupNorm),
        ([32], "layer", nn.LayerNorm),
        ([5, 32], "batch", nn.Module),
    ],
)
def test_normalization_fits_the_shape(shape, kind, module):
    first = (
        {
            "id": "c",
            "type": "Conv2d",
            "params": {"out_channels": 8},
            "normalization": {"kind": kind, "groups": 4},
        }
        if len(shape) == 3
        else dense("c", normalization={"kind": kind})
    )
    model = build_model(
        chain({"id": "x", "type": "Input", "params": {"shape": shape}}, first)
    ).train()
    assert isinstance(model.layers["c"].norm, module)
    out = model(torch.randn(4, *shape))
    assert out.shape[0] == 4 and torch.isfinite(out).all()


def test_a_frozen_node_gets_no_gradients_and_is_counted_as_frozen():
    network = chain(VECTOR, dense("a", trainable=False), dense("b"))
    analysis = analyze(network)
    assert analysis.frozen_params == 32 * 32 + 32 and analysis.trainable_params == 32 * 32 + 32
    model = build_model(network)
    model(torch.randn(4, 32)).sum().backward()
    assert model.layers["a"].layer.weight.grad is None
    assert model.layers["b"].layer.weight.grad is not None
