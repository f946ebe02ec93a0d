"""The layer catalog: every layer type the studio knows, built-in or from a plugin.

Built-ins register through the `studio.layers` entry-point group, the very path a
third-party plugin takes (napari ships its readers the same way), so the plugin API is
exercised on every start. An entry point names a callable `register(catalog)`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from importlib.metadata import entry_points

from torch import nn

from studio.schema import Param

log = logging.getLogger(__name__)

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

    def ports(self, params: dict) -> list[str]:
        """Names of the input ports, in the order build() receives them."""
        return [] if self.is_input else ["in"]

    def output_shape(self, params: dict, inputs: list[Shape]) -> Shape:
        """The output shape; raise ShapeError with advice if the inputs do not fit."""
        raise NotImplementedError

    def build(self, params: dict, inputs: list[Shape]) -> nn.Module:
        raise NotImplementedError

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


class Catalog:
    """All registered layer types, looked up by name."""

    def __init__(self) -> None:
        self._types: dict[str, LayerType] = {}
        self.sources: dict[str, str] = {}
        self.failed_plugins: dict[str, str] = {}
        self._loading_from = ""

    def register(self, layer: LayerType, source: str = "") -> None:
        if not layer.name:
            raise ValueError(f"{type(layer).__name__} has no name")
        if layer.name in self._types:
            raise ValueError(
                f"layer type '{layer.name}' from {source or 'a plugin'} is already registered "
                f"by {self.sources[layer.name] or 'another plugin'}"
            )
        self._types[layer.name] = layer
        self.sources[layer.name] = source or self._loading_from

    def get(self, name: str) -> LayerType | None:
        return self._types.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        return list(self._types)

    def by_group(self) -> dict[str, list[LayerType]]:
        out: dict[str, list[LayerType]] = {}
        for layer in self._types.values():
            out.setdefault(layer.group, []).append(layer)
        return {
            g: out[g]
            for g in sorted(out, key=lambda g: GROUPS.index(g) if g in GROUPS else len(GROUPS))
        }

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        # Built-ins first, so a plugin cannot shadow them by loading earlier.
        eps: Iterable = sorted(
            entry_points(group=group), key=lambda ep: ep.value != "studio.layers:register"
        )
        for ep in eps:
            source = f"{ep.dist.name if ep.dist else '?'}:{ep.name}"
            self._loading_from = source
            try:
                ep.load()(self)
            except Exception as err:  # a broken plugin must not take the studio down
                self.failed_plugins[source] = f"{type(err).__name__}: {err}"
                log.warning("plugin %s failed to load: %s", source, err)
            finally:
                self._loading_from = ""


_catalog: Catalog | None = None
_lock = threading.Lock()


def catalog() -> Catalog:
    """The process-wide catalog, loaded from entry points on first use."""
    global _catalog
    with _lock:
        if _catalog is None:
            cat = Catalog()
            cat.load_entry_points()
            if "Linear" not in cat:
                # Running from a source tree that was never pip-installed: no entry points.
                from studio.layers import register

                register(cat)
            _catalog = cat
        return _catalog
