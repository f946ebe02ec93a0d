"""Dataset plugins load through the same PluginCatalog as layer and augmentation plugins:
a broken one is recorded, reported by `studio layers`, and skipped, so training on the
built-in data still works."""

from __future__ import annotations

from importlib import metadata
from importlib.metadata import EntryPoint

import pytest
from support import EXAMPLES

from studio import plugins
from studio.cli import main
from studio.data import prepare

GROUP = "studio.datasets"
MLP = next(p for p in EXAMPLES if p.stem == "digits_mlp")
REAL_ENTRY_POINTS = metadata.entry_points


def register_raising(registry) -> None:
    raise RuntimeError("this dataset plugin is broken")


def register_tiny(registry) -> None:
    # The dict a dataset plugin was written against keeps working.
    registry["tiny"] = lambda request: None
    registry.update({"tinier": lambda request: None})


def register_over_digits(registry) -> None:
    registry["digits"] = lambda request: None


BUILTIN = EntryPoint("builtin", "studio.data.sources:register", GROUP)
BROKEN = [
    EntryPoint("missing", "no_such_module_xyz:register", GROUP),
    EntryPoint("raising", f"{__name__}:register_raising", GROUP),
]


@pytest.fixture
def dataset_plugins(monkeypatch):
    """Install fake `studio.datasets` entry points (other groups stay real) and forget the
    sources loaded so far, so the next use loads them again."""
    from studio.data import datasets

    def install(*fake):
        def entry_points(group=None, **kwargs):
            return list(fake) if group == GROUP else REAL_ENTRY_POINTS(group=group, **kwargs)

        monkeypatch.setattr(plugins, "entry_points", entry_points)
        # Where an older loader looked them up, if it still does.
        monkeypatch.setattr(prepare, "entry_points", entry_points, raising=False)
        monkeypatch.setattr(prepare, "_sources", None)
        monkeypatch.setattr(datasets, "_catalog", None)

    return install


def test_a_broken_dataset_plugin_is_recorded_and_skipped(dataset_plugins):
    from studio.data.datasets import dataset_catalog

    dataset_plugins(*BROKEN, BUILTIN)
    cat = dataset_catalog()
    assert cat.names()[:3] == ["digits", "image_folder", "csv"], "built-ins load first"
    assert cat.sources["digits"] == "?:builtin"  # a fake entry point has no distribution
    assert len(cat.failed_plugins) == 2
    errors = " ".join(f"{k} {v}" for k, v in cat.failed_plugins.items())
    assert "missing" in errors and "ModuleNotFoundError" in errors
    assert "raising" in errors and "this dataset plugin is broken" in errors
    assert set(prepare.data_sources()) == {"digits", "image_folder", "csv"}


def test_studio_layers_reports_the_broken_dataset_plugin(dataset_plugins, capsys):
    dataset_plugins(*BROKEN, BUILTIN)
    assert main(["layers"]) == 0
    err = capsys.readouterr().err
    assert "dataset plugin ?:raising failed to load: RuntimeError: this dataset plugin" in err
    assert "dataset plugin ?:missing failed to load: ModuleNotFoundError" in err


def test_training_on_digits_works_with_a_broken_dataset_plugin(dataset_plugins, tmp_path, capsys):
    dataset_plugins(*BROKEN, BUILTIN)
    sets = ["training.epochs=1", "training.monitors.enabled=false", "training.device=cpu"]
    args = ["train", str(MLP), "--quiet", "--out", str(tmp_path / "runs")]
    code = main([*args, *(a for s in sets for a in ("--set", s))])
    assert code == 0, capsys.readouterr().err
    assert "completed" in capsys.readouterr().out


def test_a_plugin_registers_like_a_dict_but_cannot_replace_a_built_in(dataset_plugins):
    from studio.data.datasets import dataset_catalog

    over = EntryPoint("over", f"{__name__}:register_over_digits", GROUP)
    tiny = EntryPoint("tiny", f"{__name__}:register_tiny", GROUP)
    dataset_plugins(over, tiny, BUILTIN)
    cat = dataset_catalog()
    assert cat.sources["digits"] == "?:builtin"
    assert cat.sources["tiny"] == cat.sources["tinier"] == "?:tiny"
    ((source, error),) = cat.failed_plugins.items()
    assert source == "?:over" and "already registered by ?:builtin" in error
