"""Plugins register layers and augmentations through the same entry-point groups as the
built-ins; a broken plugin is reported, never fatal."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint

import numpy as np
import torch
from support import EXAMPLES, chain

from studio import plugins, registry
from studio.analysis import analyze
from studio.builder import build_model
from studio.data import augmentations
from studio.data.augment import build_augmentation
from studio.data.augmentations import AugmentationCatalog, augmentation_catalog
from studio.projectfile import load_project, save_project
from studio.registry import Catalog, catalog
from studio.settings import DATA, augmentation_schema, defaults
from studio.training.engine import Trainer

CNN = next(p for p in EXAMPLES if p.stem == "digits_cnn")


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
    monkeypatch.setattr(plugins, "entry_points", lambda group: [bad, good])
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


# -- augmentation plugins (the example plugin's "invert") ---------------------------------
def test_the_example_augmentation_is_discovered_and_becomes_settings():
    cat = augmentation_catalog()
    assert cat.sources["invert"] == "studio-swish:invert"
    assert cat.sources["rotation"] == "studio:builtin", "built-ins take the same path"
    section = DATA["augmentation"]
    assert list(section)[-1] == "invert", "plugins come after the built-ins"
    assert set(section["invert"]) == {"enabled", "p"}
    assert "invert" not in augmentation_schema(builtin_only=True)
    assert defaults(DATA)["augmentation"]["invert"] == {"enabled": False, "p": 0.5}


def test_the_plugin_augmentation_inverts_within_the_datas_range():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 8, 8, generator=g) * 4 - 1  # data scaled -1..3, not 0..1
    settings = defaults(DATA)["augmentation"]
    settings["invert"] = {"enabled": True, "p": 1.0}
    out, y = build_augmentation(settings, (1, 8, 8), 0, train_x=x)(x, torch.zeros(6), seed=1)
    assert torch.allclose(out, x.min() + x.max() - x, atol=1e-5)
    settings["invert"]["p"] = 0.5
    out, _ = build_augmentation(settings, (1, 8, 8), 0, train_x=x)(x, torch.zeros(6), seed=1)
    inverted = (out - x).abs().flatten(1).amax(1) > 1e-4
    assert 0 < int(inverted.sum()) < 6, "p=0.5 picks some samples, not all"


def test_a_project_enabling_the_plugin_augmentation_trains_and_saves_it(tmp_path):
    sets = ["training.epochs=1", "training.monitors.enabled=false", "training.device=cpu"]
    plain = load_project(CNN, sets)
    inverted = load_project(CNN, [*sets, "data.augmentation.invert.enabled=true"])

    def losses(project):
        out = []
        listen = lambda e: e["type"] == "steps" and out.extend(e["loss"].tolist())  # noqa: E731
        Trainer(project, listeners=[listen], emit_hz=0).fit()
        return np.array(out)

    a, b = losses(plain), losses(inverted)
    assert np.isfinite(b).all() and len(a) == len(b)
    assert not np.array_equal(a, b), "the inverted images changed training"
    # Untouched, the plugin's section stays out of the file (it opens without the plugin);
    # used, it is saved and read back.
    save_project(plain, tmp_path / "plain.json")
    save_project(inverted, tmp_path / "inverted.json")
    assert "invert" not in json.loads((tmp_path / "plain.json").read_text())["data"]["augmentation"]
    again = load_project(tmp_path / "inverted.json")
    assert again.data["augmentation"]["invert"] == {"enabled": True, "p": 0.5}


class Nameless(augmentations.AugmentationType):
    """A plugin's mistake: no name."""


def register_nameless(cat) -> None:
    cat.register(Nameless())


def test_a_broken_augmentation_plugin_is_reported_and_the_rest_still_load(monkeypatch):
    group = augmentations.ENTRY_POINT_GROUP
    good = EntryPoint("builtin", augmentations.BUILTIN, group)
    bad = EntryPoint("broken", "no_such_module_xyz:register", group)

    nameless = EntryPoint("nameless", f"{__name__}:register_nameless", group)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [bad, nameless, good])
    cat = AugmentationCatalog()
    cat.load_entry_points()
    assert "rotation" in cat and cat.names()[0] == "horizontal_flip", "built-ins load first"
    assert len(cat.failed_plugins) == 2
    errors = " ".join(f"{k} {v}" for k, v in cat.failed_plugins.items())
    assert "broken" in errors and "ModuleNotFoundError" in errors
    assert "nameless" in errors and "has no name" in errors
