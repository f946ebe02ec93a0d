"""The augmentation catalog: every transform of training batches, built-in or from a plugin.

Built-ins register through the `studio.augmentations` entry-point group, the very path a
third-party plugin takes (as layers do through `studio.layers`). An entry point names a
callable `register(catalog)`. Each registered type becomes one sub-section of the
`data.augmentation` settings, in registration order, and one box of the Augmentation
panel.

This module stays cheap to import (no torch): the settings schema is built from it.
"""

from __future__ import annotations

import threading
from typing import Any

from studio.plugins import PluginCatalog
from studio.schema import Param

ENTRY_POINT_GROUP = "studio.augmentations"
BUILTIN = "studio.data.augment:register"

# Panel groups, in the order the Augmentation panel shows them.
GROUPS = ("Spatial", "Crop and size", "Pixels", "Occlusion", "Mixing", "Plugins")

# How a type takes part in a batch (see AugmentationType).
KINDS = ("sample", "geometry", "mix")


def enabled_param(what: str) -> Param:
    """The on/off field every transform has ("Apply <what> to training batches.")."""
    return Param("enabled", "bool", False, f"Apply {what} to training batches.")


def chance_param(default: float) -> Param:
    """The per-sample probability field of per-sample and geometry transforms."""
    return Param(
        "p",
        "float",
        default,
        "Chance that a training sample gets this transform (drawn for each sample).",
        0.0,
        1.0,
        label="Probability",
    )


class AugmentationType:
    """A transform of training batches: its settings, and the hook its kind needs.

    Subclass it (built-ins and plugins alike) and set the class attributes. Its `params`
    are the fields of `data.augmentation.<name>`; `enabled` is required, and `p` (the
    chance per sample, drawn before the hook runs) for the sample and geometry kinds.

    Images reach the hooks as (batch, channels, height, width) scaled 0..1 (black..white
    of the training data); draw every random number from the generator `g` (never the
    global one), so runs repeat. Enabled transforms run by ascending `order`; mixers run
    last, on the batch in the data's own scaling.
    """

    name: str = ""
    group: str = "Plugins"
    summary: str = ""
    # The panel's box title (default: the name with spaces, capitalized).
    title: str = ""
    params: tuple[Param, ...] = ()
    # "sample": apply() changes the chosen samples; "geometry": matrices() gives one
    # inverse map per sample, composed with the other geometry and warped once;
    # "mix": mix() blends the batch with itself and mixes the labels (needs classes).
    kind: str = "sample"
    # Needs images (channels, height, width); False works on any sample shape.
    image_only: bool = True
    # Where it runs among the enabled transforms (built-ins: resolution 10s, flips 20s,
    # geometry 30s, pixels 40s, occlusion 50s, mixing 60s).
    order: float = 45.0
    # Geometry whose maps are projective (a perspective): the warp divides by w.
    projective: bool = False

    def heading(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()

    def check(self, settings: dict, shape: tuple[int, ...]) -> None:
        """Raise DataError naming the field if these settings cannot work on images of
        this shape (channels, height, width). Called only when enabled."""

    def apply(self, x, chosen, g, settings: dict):
        """kind "sample": x with the transform applied to the samples where chosen
        (a bool tensor (batch,)) is True; the others exactly as they were."""
        raise NotImplementedError

    def matrices(self, n: int, h: int, w: int, g, settings: dict):
        """kind "geometry": (n, 3, 3) inverse maps (output pixel -> input pixel) in pixel
        units centred on the image, one per sample (unchosen ones are replaced by the
        identity afterwards)."""
        raise NotImplementedError

    def mix(self, x, labels, g, settings: dict):
        """kind "mix": (x, labels) blended; labels are probabilities (batch, classes)."""
        raise NotImplementedError

    def describe(self) -> dict:
        return {
            "name": self.name,
            "group": self.group,
            "summary": self.summary,
            "kind": self.kind,
            "image_only": self.image_only,
            "params": [p.to_dict() for p in self.params],
        }


class AugmentationCatalog(PluginCatalog[AugmentationType]):
    """All registered augmentation types, looked up by name, in registration order."""

    what = "augmentation"
    groups = GROUPS
    builtin_entry = BUILTIN

    def validate(self, augmentation: AugmentationType) -> None:
        name = augmentation.name
        if augmentation.kind not in KINDS:
            raise ValueError(
                f"augmentation '{name}' has kind '{augmentation.kind}', not one of {KINDS}"
            )
        if "enabled" not in [p.name for p in augmentation.params]:
            raise ValueError(f"augmentation '{name}' has no 'enabled' field")

    def __getitem__(self, name: str) -> AugmentationType:
        return self._types[name]

    def is_builtin(self, name: str) -> bool:
        return self.sources.get(name, "").startswith("studio:")

    def section(self, builtin_only: bool = False) -> dict[str, dict[str, Param]]:
        """The `data.augmentation` schema: one sub-section per type."""
        return {
            t.name: {p.name: p for p in t.params}
            for t in self._types.values()
            if not builtin_only or self.is_builtin(t.name)
        }

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        super().load_entry_points(group)


_catalog: AugmentationCatalog | None = None
_loading = False
_lock = threading.RLock()


def augmentation_catalog() -> AugmentationCatalog:
    """The process-wide catalog, loaded from entry points on first use."""
    global _catalog, _loading
    with _lock:
        if _catalog is None:
            if _loading:
                # A plugin asked for the catalog while registering (through the settings,
                # say); failing here reports that plugin instead of recursing.
                raise RuntimeError("the augmentation catalog was asked for while it loads")
            _loading = True
            try:
                cat = AugmentationCatalog()
                cat.load_entry_points()
                if not any(cat.is_builtin(name) for name in cat.names()):
                    cat.load_builtin()  # a source tree never pip-installed: no entry points
                _catalog = cat
            finally:
                _loading = False
        return _catalog


def saved_section(section: dict[str, Any]) -> dict[str, Any]:
    """The `data.augmentation` values as a project file stores them: a plugin's transform
    left at its defaults is left out, so the file still opens where that plugin is not
    installed (and files saved before it was installed round-trip unchanged)."""
    cat = augmentation_catalog()
    out = {}
    for name, values in section.items():
        t = cat.get(name)
        untouched = t is not None and values == {p.name: p.default for p in t.params}
        if untouched and not cat.is_builtin(name):
            continue
        out[name] = values
    return out
