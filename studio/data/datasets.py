"""The dataset catalog: every data source, built-in or from a plugin, by name.

Sources register through the `studio.datasets` entry-point group and load through the same
PluginCatalog as layers and augmentations: built-ins first, and a plugin that fails to
import or whose `register` raises is recorded in `failed_plugins` and skipped, so it cannot
stop training on the data that works. An entry point names a callable `register(catalog)`;
the catalog also takes the dict a dataset plugin was first written against
(`catalog["name"] = load`, `catalog.update({...})`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from studio.plugins import PluginCatalog

ENTRY_POINT_GROUP = "studio.datasets"
BUILTIN = "studio.data.sources:register"


@dataclass(frozen=True)
class DataSource:
    """A named source: `load(SourceRequest) -> RawData` (see studio/data/sources.py)."""

    name: str
    load: Callable
    group: str = "Datasets"


class DatasetCatalog(PluginCatalog[DataSource]):
    """All registered data sources, looked up by name, in registration order."""

    what = "dataset"
    builtin_entry = BUILTIN

    def validate(self, source: DataSource) -> None:
        if not callable(source.load):
            raise ValueError(f"dataset '{source.name}' is not a function of a request")

    def __setitem__(self, name: str, load: Callable) -> None:
        self.register(DataSource(name, load))

    def update(self, sources: Mapping[str, Callable]) -> None:
        for name, load in sources.items():
            self[name] = load

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        super().load_entry_points(group)


_catalog: DatasetCatalog | None = None
_lock = threading.Lock()


def dataset_catalog() -> DatasetCatalog:
    """The process-wide catalog, loaded from entry points on first use."""
    global _catalog
    with _lock:
        if _catalog is None:
            cat = DatasetCatalog()
            cat.load_entry_points()
            if "digits" not in cat:  # a source tree never pip-installed: no entry points
                cat.load_builtin()
            _catalog = cat
        return _catalog
