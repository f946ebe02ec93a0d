"""Example augmentation plugin: invert the colours of some training images (1 − x)."""

from __future__ import annotations

import torch

from studio.data.augmentations import AugmentationType, chance_param, enabled_param


class Invert(AugmentationType):
    name = "invert"
    group = "Pixels"
    summary = "Swap black and white (1 − x), as v2.RandomInvert (plugin)."
    # After the built-in noise (42), before random erasing (50).
    order = 43
    params = (enabled_param("a colour inversion (a negative)"), chance_param(0.5))

    def apply(self, x, chosen, g, settings):
        # x is 0..1 here (black..white of the training data), whatever its scaling.
        return torch.where(chosen.view(-1, 1, 1, 1).to(x.device), 1 - x, x)


def register(catalog) -> None:
    catalog.register(Invert())
