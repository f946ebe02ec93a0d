"""Plugins register layers through the same entry-point group as the built-ins."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import torch
from support import chain

from studio import registry
from studio.analysis import analyze
from studio.builder import build_model
from studio.registry import Catalog, catalog


def test_the_example_plugin_is_discovered_through_its_entry_point():
    cat = catalog()
    assert "Swish" in cat
    assert cat.sources["Swish"] == "studio-swish:swish"
    assert cat.sources["Linear"] == "studio:builtin", "built-ins take the same path"


def test_a_plugin_layer_builds_trains_and_counts_its_parameters():
    network = chain(
        {"id": "x", "type": "Input", "params": {"shape": [8]}},
        {"id": "act", "type": "Swish", "params": {"beta": 2.0, "learnable": True}},
        {"id": "head", "type": "Output", "params": {"units": 3}},
    )
    assert analyze(network).layers["act"].params == 1
    model = build_model(network)
    x = torch.randn(4, 8)
    model(x).sum().backward()
    assert model.layers["act"].layer.beta.grad is not None
    assert torch.allclose(model.layers["act"](x), x * torch.sigmoid(2 * x))


def test_a_broken_plugin_is_reported_and_the_rest_still_load(monkeypatch):
    good = EntryPoint("builtin", "studio.layers:register", registry.ENTRY_POINT_GROUP)
    bad = EntryPoint("broken", "no_such_module_xyz:register", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [bad, good])
    cat = Catalog()
    cat.load_entry_points()
    assert "Linear" in cat
    ((source, error),) = cat.failed_plugins.items()
    assert "broken" in source and "ModuleNotFoundError" in error


def test_a_plugin_cannot_replace_a_built_in(monkeypatch):
    class FakeLinear(registry.LayerType):
        name = "Linear"

    cat = Catalog()
    cat.register(FakeLinear(), "studio:builtin")
    try:
        cat.register(FakeLinear(), "evil:plugin")
    except ValueError as err:
        assert "already registered by studio:builtin" in str(err)
    else:
        raise AssertionError("a second 'Linear' was accepted")
