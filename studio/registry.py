"""The layer catalog: every layer type the studio knows, built-in or from a plugin.

Built-ins register through the `studio.layers` entry-point group, the very path a
third-party plugin takes (napari ships its readers the same way), so the plugin API is
exercised on every start. An entry point names a callable `register(catalog)`.
"""

from __future__ import annotations

import threading

from torch import nn

from studio.plugins import PluginCatalog
from studio.schema import Param

ENTRY_POINT_GROUP = "studio.layers"

Shape = tuple[int, ...]

# Palette groups, in the order the palette shows them.
GROUPS = (
    "Core",
    "Convolution",
    "Pooling",
    "Normalization",
    "Activation",
    "Regularization",
    "Merge",
    "Recurrent",
    "Backbones",
    "Plugins",
)


class LayerType:
    """A kind of layer: its schema, how it changes shapes, and how to build it.

    Subclass it (built-ins and plugins alike) and set the class attributes. Shapes never
    include the batch dimension: (features,), (steps, features) or (channels, height, width).
    """

    name: str = ""
    group: str = "Plugins"
    summary: str = ""
    params: tuple[Param, ...] = ()
    # Has weights a person may initialize (initializer control).
    weighted: bool = False
    # Takes the per-layer normalization / activation / dropout options.
    block_options: bool = False
    # The Input layer: no ports, shape from its own params.
    is_input: bool = False
    # A pretrained network as one node (studio/transfer/): it builds a Backbone split into
    # stages(), a freeze point freezes them from the input on, strategies and fine-tuning
    # plans apply to it. The one way the studio asks whether a layer is a backbone.
    backbone: bool = False

    def ports(self, params: dict) -> list[str]:
        """Names of the input ports, in the order build() receives them."""
        return [] if self.is_input else ["in"]

    def output_shape(self, params: dict, inputs: list[Shape]) -> Shape:
        """The output shape; raise ShapeError with advice if the inputs do not fit."""
        raise NotImplementedError

    def build(self, params: dict, inputs: list[Shape]) -> nn.Module:
        raise NotImplementedError

    def stages(self, params: dict) -> list[str]:
        """A backbone's stage names, input to output (none for other layers)."""
        return []

    def macs(self, params: dict, inputs: list[Shape], output: Shape) -> int:
        """Multiply-accumulates per sample (0 for layers whose cost is negligible)."""
        return 0

    def key_params(self, params: dict) -> str:
        """A short summary of the main parameters, for canvas nodes and tables."""
        return ", ".join(f"{p.name}={params[p.name]}" for p in self.params[:2] if p.name in params)

    def describe(self) -> dict:
        return {
            "type": self.name,
            "group": self.group,
            "summary": self.summary,
            "weighted": self.weighted,
            "block_options": self.block_options,
            "params": [p.to_dict() for p in self.params],
        }


class Catalog(PluginCatalog[LayerType]):
    """All registered layer types, looked up by name."""

    what = "layer type"
    groups = GROUPS
    builtin_entry = "studio.layers:register"

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        super().load_entry_points(group)


_catalog: Catalog | None = None
_lock = threading.Lock()


def catalog() -> Catalog:
    """The process-wide catalog, loaded from entry points on first use."""
    global _catalog
    with _lock:
        if _catalog is None:
            cat = Catalog()
            cat.load_entry_points()
            if "Linear" not in cat:  # a source tree never pip-installed: no entry points
                cat.load_builtin()
            _catalog = cat
        return _catalog
