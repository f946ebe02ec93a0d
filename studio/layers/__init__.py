"""The built-in layer types. They register through the `studio.layers` entry point, the same
path a plugin takes (see pyproject.toml)."""

from __future__ import annotations

from studio.layers import activation, conv, core, merge, norm, recurrent
from studio.transfer import layers as backbones

MODULES = (core, conv, norm, activation, merge, recurrent, backbones)


def register(catalog) -> None:
    for module in MODULES:
        for layer_type in module.LAYERS:
            catalog.register(layer_type())
