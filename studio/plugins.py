"""What the layer catalog and the augmentation catalog share: named things registered from
entry points, built-ins first, a broken plugin recorded instead of taking the studio down.

Built-ins register through the very entry-point group a third-party plugin uses (napari
ships its readers the same way), so the plugin path is exercised on every start. An entry
point names a callable `register(catalog)`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class PluginCatalog(Generic[T]):
    """Registered items (anything with a `name` and a `group`), in registration order."""

    what = "item"  # in messages: "layer type", "augmentation"
    groups: tuple[str, ...] = ()  # display order of groups; others go last
    builtin_entry = ""  # the built-ins' entry point value, loaded before any plugin

    def __init__(self) -> None:
        self._types: dict[str, T] = {}
        self.sources: dict[str, str] = {}
        self.failed_plugins: dict[str, str] = {}
        self._loading_from = ""

    def validate(self, item: T) -> None:
        """Raise ValueError if the item cannot be registered (beyond name clashes)."""

    def register(self, item: T, source: str = "") -> None:
        name = item.name
        if not name:
            raise ValueError(f"{type(item).__name__} has no name")
        if name in self._types:
            raise ValueError(
                f"{self.what} '{name}' from {source or 'a plugin'} is already registered "
                f"by {self.sources[name] or 'another plugin'}"
            )
        self.validate(item)
        self._types[name] = item
        self.sources[name] = source or self._loading_from

    def get(self, name: str) -> T | None:
        return self._types.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[T]:
        return iter(self._types.values())

    def names(self) -> list[str]:
        return list(self._types)

    def by_group(self) -> dict[str, list[T]]:
        out: dict[str, list[T]] = {}
        for item in self._types.values():
            out.setdefault(item.group, []).append(item)
        order = self.groups
        return {
            g: out[g]
            for g in sorted(out, key=lambda g: order.index(g) if g in order else len(order))
        }

    def load_builtin(self) -> None:
        """Register the built-ins by their entry point's value (`module:function`), loaded
        as an entry point is: for a source tree that was never pip-installed, which has no
        entry points. By name, so that no catalog imports what it lists (a built-in layer
        may need the builder, which needs the catalog)."""
        module, _, function = self.builtin_entry.partition(":")
        self._loading_from = "studio:builtin"
        try:
            getattr(importlib.import_module(module), function)(self)
        finally:
            self._loading_from = ""

    def load_entry_points(self, group: str) -> None:
        # Built-ins first, so a plugin cannot shadow them by loading earlier.
        eps: Iterable = sorted(
            entry_points(group=group), key=lambda ep: ep.value != self.builtin_entry
        )
        for ep in eps:
            source = f"{ep.dist.name if ep.dist else '?'}:{ep.name}"
            self._loading_from = source
            try:
                ep.load()(self)
            except Exception as err:  # a broken plugin must not take the studio down
                self.failed_plugins[source] = f"{type(err).__name__}: {err}"
                log.warning("%s plugin %s failed to load: %s", self.what, source, err)
            finally:
                self._loading_from = ""
