"""Augmentation of training batches: the `data.augmentation` settings as a batch transform.

Every sample of a batch gets its own random draw, as if each went through torchvision's
transforms.v2 alone, but the work is done for the whole batch at once: one v2 call on a
batch draws a single set of parameters for all of its samples, and a loop of v2 calls,
one per sample, costs 3-6 ms per batch of 32 digits (8×8), as much as the CNN's whole
training step, where this takes 0.3-0.5 ms. So each transform is an AugmentationType
from the catalog (built-ins in studio/data/augment_builtins.py, plugins alike) with the
hook its kind needs, and this module runs the enabled ones in their order:

- "sample" transforms change the samples that drew them (resize, crop, pad, flips,
  colour, blur, noise, erasing);
- consecutive "geometry" transforms (random resized crop, rotation, affine, perspective)
  each give one matrix per sample; they are composed and one `grid_sample` warps the
  batch — one interpolation instead of one per transform;
- "mix" transforms (mixup, cutmix) run last, one of them per batch, and give soft labels
  (batch, classes).

Randomness comes only from a private generator reseeded for every batch (the batch's
seed comes from the shuffling generator, itself seeded from the training seed), so a
run, and a resumed run, repeats exactly and the global generator that dropout uses is
never touched: nothing here calls the v2 random classes, which draw from it.

Pixel work happens in a 0..1 range (black..white per channel, read from the training
images) whatever the data's scaling, so "black" fill, noise strength and colour clamps
mean the same on unit, z-score or ImageNet-scaled data.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as nnf

from studio.data.augment_builtins import register
from studio.data.augmentations import AugmentationType, augmentation_catalog
from studio.errors import DataError
from studio.shapes_text import describe_kind

__all__ = ["Augmentation", "build_augmentation", "enabled_names", "preview", "register"]


def enabled_names(settings: dict) -> list[str]:
    return [
        name
        for name, section in settings.items()
        if isinstance(section, dict) and section["enabled"]
    ]


def build_augmentation(
    settings: dict,
    sample_shape: tuple[int, ...],
    classes: int,
    train_x: torch.Tensor | None = None,
) -> Augmentation | None:
    """The transform for training batches, or None when no augmentation is enabled.

    settings is the `data.augmentation` section; classes the number of classes (0 for
    real-valued targets); train_x the training images, whose per-channel minimum and
    maximum are taken as black and white (without it the data is taken to be 0..1).
    """
    names = enabled_names(settings)
    if not names:
        return None
    cat = augmentation_catalog()
    types = [cat[name] for name in names]
    image = len(sample_shape) == 3
    for t in types:
        if t.image_only and not image:
            raise DataError(
                f"Field 'data.augmentation.{t.name}' transforms images, but each sample is "
                f"{describe_kind(tuple(sample_shape))}; turn it off{_any_input_advice()}."
            )
        if t.kind == "mix" and classes < 2:
            raise DataError(
                f"Field 'data.augmentation.{t.name}' mixes class labels, but the data has "
                "real-valued targets; turn it off."
            )
    _check_ranges(settings, types, sample_shape)
    if image and train_x is not None and len(train_x):
        lo = train_x.amin((0, 2, 3)).view(-1, 1, 1)
        hi = train_x.amax((0, 2, 3)).view(-1, 1, 1)
    else:
        lo, hi = torch.zeros(()), torch.ones(())
    return Augmentation(settings, types, tuple(sample_shape), classes, lo.float(), hi.float())


def _any_input_advice() -> str:
    """The advice ' (mixup works on any input)', naming the transforms that take any data."""
    names = [t.name for t in augmentation_catalog() if not t.image_only]
    if not names:
        return ""
    verb = "works" if len(names) == 1 else "work"
    return f" ({' and '.join(names)} {verb} on any input)"


def _check_ranges(settings: dict, types: list[AugmentationType], shape: tuple[int, ...]) -> None:
    for t in types:
        s = settings[t.name]
        for low in [k for k in s if k.endswith("_min")]:
            high = low[:-4] + "_max"
            if high in s and s[low] > s[high]:
                raise DataError(
                    f"Field 'data.augmentation.{t.name}.{low}' ({s[low]:g}) is above "
                    f"'{high}' ({s[high]:g}); swap them."
                )
    if len(shape) == 3:
        for t in types:
            t.check(settings[t.name], shape)


class Augmentation:
    """Applies the enabled transforms to a training batch: (x, y, seed) -> (x, y).

    x is (batch, *sample_shape) as the network takes it; y the class indices. With a
    mixing transform on, y comes back as probabilities (batch, classes).
    """

    def __init__(self, settings, types, sample_shape, classes, lo, hi):
        self.settings = settings
        self.names = {t.name for t in types}
        self.sample_shape = sample_shape
        self.classes = classes
        self.lo, self.span = lo, (hi - lo).clamp_min(1e-12)
        self.generator = torch.Generator()
        self.image = len(sample_shape) == 3
        ordered = sorted((t for t in types if t.kind != "mix"), key=lambda t: t.order)
        # One step per sample transform; consecutive geometry shares one step (one warp).
        self.steps: list[AugmentationType | list[AugmentationType]] = []
        for t in ordered:
            if t.kind == "geometry" and self.steps and isinstance(self.steps[-1], list):
                self.steps[-1].append(t)
            else:
                self.steps.append([t] if t.kind == "geometry" else t)
        self.projective = any(t.projective for t in ordered if t.kind == "geometry")
        self.mixers = sorted((t for t in types if t.kind == "mix"), key=lambda t: t.order)
        self.mixes = bool(self.mixers)
        self._grids: dict = {}

    def __call__(self, x: torch.Tensor, y: torch.Tensor, seed: int):
        g = self.generator.manual_seed(int(seed))
        if self.image and self.steps:
            lo, span = self.lo.to(x.device), self.span.to(x.device)
            unit = (x - lo) / span
            unit = self._images(unit, g)
            x = unit * span + lo
        if self.mixes:
            x, y = self._mix(x, y, g)
        return x, y

    # -- images in 0..1 -----------------------------------------------------------------
    def _images(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for step in self.steps:
            if isinstance(step, list):
                x = self._geometry(step, x, g)
            else:
                x = step.apply(x, self._chosen(step, len(x), g), g, self.settings[step.name])
        return x

    def _chosen(self, t: AugmentationType, n: int, g: torch.Generator) -> torch.Tensor:
        """Which samples get this transform (each with the transform's probability)."""
        return torch.rand(n, generator=g) < self.settings[t.name].get("p", 1.0)

    # -- geometry: one matrix per sample, one warp ------------------------------------
    def _geometry(self, types, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, (h, w) = len(x), x.shape[-2:]
        matrix, any_drawn, identity = None, torch.zeros(n, dtype=torch.bool), torch.eye(3)
        # Inverse maps (output pixel -> input pixel), so they compose first to last.
        for t in types:
            chosen = self._chosen(t, n, g)
            step = t.matrices(n, h, w, g, self.settings[t.name])
            step = torch.where(chosen.view(-1, 1, 1), step, identity)
            matrix = step if matrix is None else matrix @ step
            any_drawn |= chosen
        idx = any_drawn.nonzero().flatten()
        if len(idx) == 0:
            return x
        grid = self._grid(matrix[idx], h, w).to(x.device)
        idx = idx.to(x.device)
        warped = nnf.grid_sample(
            x.index_select(0, idx), grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        return x.index_copy(0, idx, warped)

    def _grid(self, matrix: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Sampling positions for grid_sample from inverse maps in centred pixel units."""
        if (h, w) not in self._grids:
            v, u = torch.meshgrid(
                torch.arange(h) - (h - 1) / 2, torch.arange(w) - (w - 1) / 2, indexing="ij"
            )
            self._grids[(h, w)] = torch.stack([u, v, torch.ones_like(u)], -1).reshape(-1, 3)
        points = torch.einsum("pk,njk->npj", self._grids[(h, w)], matrix)
        xy = points[..., :2] / points[..., 2:] if self.projective else points[..., :2]
        # align_corners=False: -1 and 1 are the outer edges of the border pixels.
        xy = xy * torch.tensor([2 / w, 2 / h])
        return xy.reshape(len(matrix), h, w, 2)

    # -- mixing -------------------------------------------------------------------------
    def _mix(self, x, y, g):
        mixer = self._pick_mixer(torch.rand((), generator=g).item())
        labels = nnf.one_hot(y.long(), self.classes).to(x.dtype)
        return mixer.mix(x, labels, g, self.settings[mixer.name])

    def _pick_mixer(self, u: float) -> AugmentationType:
        """One mixer per batch. With several on, a mixer with a `share` field takes that
        share of the batches (cutmix beside mixup); the first without one takes the rest."""
        if len(self.mixers) == 1:
            return self.mixers[0]
        upto = 0.0
        for t in self.mixers:
            share = self.settings[t.name].get("share")
            if share is not None:
                upto += share
                if u < upto:
                    return t
        rest = [t for t in self.mixers if "share" not in self.settings[t.name]]
        return rest[0] if rest else self.mixers[-1]


def preview(
    images: torch.Tensor,
    settings: dict,
    draws: int = 4,
    seed: int = 0,
    labels: torch.Tensor | None = None,
    classes: int = 0,
) -> np.ndarray:
    """Originals beside augmented draws, through the training code path.

    images are (rows, C, H, W) scaled 0..1; the result is (rows, 1 + draws, C, H, W) in
    0..1, column 0 the originals. Without labels each row counts as its own class, so
    mixup and cutmix show which rows blend. Raises DataError like build_augmentation.
    """
    if labels is None:
        labels, classes = torch.arange(len(images)), max(len(images), 2)
    augment = build_augmentation(settings, tuple(images.shape[1:]), classes)
    columns = [images]
    for draw in range(draws):
        x = images
        if augment is not None:
            x, _ = augment(images, labels, _draw_seed(seed, draw))
        columns.append(x)
    return torch.stack(columns, 1).clamp(0, 1).numpy()


def _draw_seed(seed: int, draw: int) -> int:
    return (seed * 1_000_003 + draw) % 2**62
