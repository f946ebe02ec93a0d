"""Augmentation of training batches: the `data.augmentation` settings as a batch transform.

Every sample of a batch gets its own random draw, as if each went through torchvision's
transforms.v2 alone, but the work is done for the whole batch at once: one v2 call on a
batch draws a single set of parameters for all of its samples, and a loop of v2 calls,
one per sample, costs 3-6 ms per batch of 32 digits (8×8), as much as the CNN's whole
training step, where this takes 0.3-0.5 ms. So:

- resize, center crop and pad have no randomness and run as v2 functional calls on the
  samples that drew them;
- the geometric transforms (random resized crop, rotation, affine, perspective) become
  one matrix per sample, composed, and one `grid_sample` warps the batch — one
  interpolation instead of one per transform; flips are exact index flips;
- colour jitter, blur, noise and erasing are the v2 formulas with per-sample factors
  (the tests check the geometry, jitter and blur against torchvision's functional ops);
- mixup and cutmix mix the batch with itself rolled by one, one weight per batch, as
  v2.MixUp / v2.CutMix do, and give soft labels (batch, classes).

Randomness comes only from a private generator reseeded for every batch (the batch's
seed comes from the shuffling generator, itself seeded from the training seed), so a
run, and a resumed run, repeats exactly and the global generator that dropout uses is
never touched: nothing here calls the v2 random classes, which draw from it.

Pixel work happens in a 0..1 range (black..white per channel, read from the training
images) whatever the data's scaling, so "black" fill, noise strength and colour clamps
mean the same on unit, z-score or ImageNet-scaled data.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as nnf

from studio.data.sources import DataError
from studio.shapes_text import describe_kind

GEOMETRY = ("random_resized_crop", "rotation", "affine", "perspective")
RESOLUTION = ("center_crop", "pad", "resize")
FLIPS = ("horizontal_flip", "vertical_flip")
PIXELS = ("color_jitter", "blur", "noise")
OCCLUSION = ("random_erasing",)
MIXING = ("mixup", "cutmix")
# Transforms that need an image (channels, height, width); mixup works on any sample.
IMAGE_ONLY = (*RESOLUTION, *FLIPS, *GEOMETRY, *PIXELS, *OCCLUSION, "cutmix")
ERASE_VALUES = {"black": 0.0, "gray": 0.5, "white": 1.0}


def _v2():
    from studio.vision import torchvision

    torchvision()
    from torchvision.transforms.v2 import functional

    return functional


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
    image = len(sample_shape) == 3
    for name in names:
        if name in IMAGE_ONLY and not image:
            advice = " (mixup works on any input)" if name != "mixup" else ""
            raise DataError(
                f"Field 'data.augmentation.{name}' transforms images, but each sample is "
                f"{describe_kind(tuple(sample_shape))}; turn it off{advice}."
            )
        if name in MIXING and classes < 2:
            raise DataError(
                f"Field 'data.augmentation.{name}' mixes class labels, but the data has "
                "real-valued targets; turn it off."
            )
    _check_ranges(settings, names, sample_shape)
    if image and train_x is not None and len(train_x):
        lo = train_x.amin((0, 2, 3)).view(-1, 1, 1)
        hi = train_x.amax((0, 2, 3)).view(-1, 1, 1)
    else:
        lo, hi = torch.zeros(()), torch.ones(())
    return Augmentation(settings, names, tuple(sample_shape), classes, lo.float(), hi.float())


def _check_ranges(settings: dict, names: list[str], shape: tuple[int, ...]) -> None:
    for name in names:
        s = settings[name]
        for low in [k for k in s if k.endswith("_min")]:
            high = low[:-4] + "_max"
            if s[low] > s[high]:
                raise DataError(
                    f"Field 'data.augmentation.{name}.{low}' ({s[low]:g}) is above "
                    f"'{high}' ({s[high]:g}); swap them."
                )
    if len(shape) != 3:
        return
    side = min(shape[1:])
    where = "Field 'data.augmentation."
    if "blur" in names:
        k = settings["blur"]["kernel_size"]
        if k % 2 == 0 or k >= 2 * side:
            raise DataError(
                f"{where}blur.kernel_size' must be odd and below {2 * side} for "
                f"{side}-pixel images, got {k}."
            )
    if "center_crop" in names and settings["center_crop"]["size"] > side:
        raise DataError(
            f"{where}center_crop.size' ({settings['center_crop']['size']}) is larger than the "
            f"{side}-pixel image; use at most {side}."
        )
    pad = settings["pad"]
    if "pad" in names and pad["mode"] in ("reflect", "symmetric") and pad["padding"] >= side:
        raise DataError(
            f"{where}pad.padding' must be below the image side ({side}) to {pad['mode']}; "
            f"got {pad['padding']}."
        )


class Augmentation:
    """Applies the enabled transforms to a training batch: (x, y, seed) -> (x, y).

    x is (batch, *sample_shape) as the network takes it; y the class indices. With
    mixup or cutmix on, y comes back as probabilities (batch, classes).
    """

    def __init__(self, settings, names, sample_shape, classes, lo, hi):
        self.settings = settings
        self.names = set(names)
        self.sample_shape = sample_shape
        self.classes = classes
        self.lo, self.span = lo, (hi - lo).clamp_min(1e-12)
        self.generator = torch.Generator()
        self.image = len(sample_shape) == 3
        self.mixes = bool(self.names & set(MIXING))
        self._grids: dict = {}

    def __call__(self, x: torch.Tensor, y: torch.Tensor, seed: int):
        g = self.generator.manual_seed(int(seed))
        if self.image and self.names - set(MIXING):
            lo, span = self.lo.to(x.device), self.span.to(x.device)
            unit = (x - lo) / span
            unit = self._images(unit, g)
            x = unit * span + lo
        if self.mixes:
            x, y = self._mix(x, y, g)
        return x, y

    # -- images in 0..1 -----------------------------------------------------------------
    def _images(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for name in RESOLUTION:
            if name in self.names:
                x = self._resolution(name, x, g)
        for name, dim in zip(FLIPS, (-1, -2)):
            if name in self.names:
                x = _apply_to(x, self._chosen(name, len(x), g), lambda part, d=dim: part.flip(d))
        if self.names & set(GEOMETRY):
            x = self._geometry(x, g)
        if "color_jitter" in self.names:
            x = self._jitter(x, g)
        if "blur" in self.names:
            x = self._blur(x, g)
        if "noise" in self.names:
            std = self.settings["noise"]["std"]

            def noisy(part):
                noise = torch.randn(part.shape, generator=g).to(part.device)
                return (part + noise * std).clamp(0, 1)

            x = _apply_to(x, self._chosen("noise", len(x), g), noisy)
        if "random_erasing" in self.names:
            x = self._erase(x, g)
        return x

    def _chosen(self, name: str, n: int, g: torch.Generator) -> torch.Tensor:
        """Which samples get this transform (each with the transform's probability)."""
        return torch.rand(n, generator=g) < self.settings[name]["p"]

    def _resolution(self, name: str, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        idx = self._chosen(name, len(x), g).nonzero().flatten().to(x.device)
        if len(idx) == 0:
            return x
        f = _v2()
        h, w = x.shape[-2:]
        side = min(h, w)
        s = self.settings[name]
        part = x.index_select(0, idx)
        if name == "center_crop":
            size = s["size"] or max(1, round(side * 7 / 8))
            # The crop keeps the image's proportions; size is its shorter side.
            part = f.center_crop(part, [round(size * h / side), round(size * w / side)])
        elif name == "pad":
            part = f.pad(part, [s["padding"]], fill=s["fill"], padding_mode=s["mode"])
        else:
            part = f.resize(part, s["size"] or max(1, side // 2), antialias=True)
        part = f.resize(part, [h, w], antialias=True)
        return x.index_copy(0, idx, part.clamp(0, 1))

    # -- geometry: one matrix per sample, one warp ------------------------------------
    def _geometry(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, (h, w) = len(x), x.shape[-2:]
        matrix, any_drawn, identity = None, torch.zeros(n, dtype=torch.bool), torch.eye(3)
        # Inverse maps (output pixel -> input pixel), so they compose first to last.
        for name in GEOMETRY:
            if name not in self.names:
                continue
            chosen = self._chosen(name, n, g)
            step = getattr(self, f"_{name}")(n, h, w, g)
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
        xy = points[..., :2] / points[..., 2:] if "perspective" in self.names else points[..., :2]
        # align_corners=False: -1 and 1 are the outer edges of the border pixels.
        xy = xy * torch.tensor([2 / w, 2 / h])
        return xy.reshape(len(matrix), h, w, 2)

    def _random_resized_crop(self, n, h, w, g):
        s = self.settings["random_resized_crop"]
        area = _uniform(n, s["scale_min"], s["scale_max"], g) * h * w
        ratio = torch.exp(_uniform(n, math.log(s["ratio_min"]), math.log(s["ratio_max"]), g))
        cw = torch.sqrt(area * ratio).clamp(max=w)
        ch = torch.sqrt(area / ratio).clamp(max=h)
        ox = _uniform(n, -1, 1, g) * (w - cw) / 2
        oy = _uniform(n, -1, 1, g) * (h - ch) / 2
        m = torch.eye(3).repeat(n, 1, 1)
        m[:, 0, 0], m[:, 1, 1], m[:, 0, 2], m[:, 1, 2] = cw / w, ch / h, ox, oy
        return m

    def _rotation(self, n, h, w, g):
        degrees = self.settings["rotation"]["degrees"]
        return _affine_inverse(
            _uniform(n, -degrees, degrees, g), torch.zeros(n, 2), torch.ones(n), torch.zeros(n)
        )

    def _affine(self, n, h, w, g):
        s = self.settings["affine"]
        angle = _uniform(n, -s["degrees"], s["degrees"], g)
        # Whole-pixel shifts, as torchvision's RandomAffine draws them.
        shift = torch.round(
            _uniform(n * 2, -1, 1, g).view(n, 2) * s["translate"] * torch.tensor([w, h])
        )
        scale = _uniform(n, s["scale_min"], s["scale_max"], g)
        shear = _uniform(n, -s["shear"], s["shear"], g)
        return _affine_inverse(angle, shift, scale, shear)

    def _perspective(self, n, h, w, g):
        """Each output corner moves inward by up to distortion × half the side, as in
        v2.RandomPerspective; the map takes those corners back to the image's corners."""
        d = self.settings["perspective"]["distortion"]
        corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
        half = torch.tensor([(w - 1) / 2, (h - 1) / 2])
        start = (corners * half).expand(n, 4, 2)
        inward = _uniform(n * 8, 0, 1, g).view(n, 4, 2) * d * torch.tensor([w / 2, h / 2])
        end = start - corners * inward
        return _homography(end, start)

    # -- pixels -------------------------------------------------------------------------
    def _jitter(self, x, g):
        s, n = self.settings["color_jitter"], len(x)
        chosen = self._chosen("color_jitter", n, g)
        colour = x.shape[1] == 3  # saturation and hue need colour; grayscale skips them
        keys = ("brightness", "contrast", "saturation") if colour else ("brightness", "contrast")
        factors = [_uniform(n, max(0.0, 1 - s[k]), 1 + s[k], g)[chosen] for k in keys]
        if colour:
            factors.append(_uniform(n, -s["hue"], s["hue"], g)[chosen])
        return _apply_to(x, chosen, lambda part: color_jitter(part, *factors))

    def _blur(self, x, g):
        s = self.settings["blur"]
        chosen = self._chosen("blur", len(x), g)
        sigma = _uniform(len(x), s["sigma_min"], s["sigma_max"], g)[chosen]
        return _apply_to(x, chosen, lambda part: gaussian_blur(part, s["kernel_size"], sigma))

    def _erase(self, x, g):
        """A rectangle per sample, as v2.RandomErasing draws it (area, log-uniform aspect)."""
        s, n, (h, w) = self.settings["random_erasing"], len(x), x.shape[-2:]
        chosen = self._chosen("random_erasing", n, g)
        area = _uniform(n, s["scale_min"], s["scale_max"], g) * h * w
        ratio = torch.exp(_uniform(n, math.log(s["ratio_min"]), math.log(s["ratio_max"]), g))
        eh = torch.sqrt(area * ratio).round().clamp(0, h)
        ew = torch.sqrt(area / ratio).round().clamp(0, w)
        top = torch.floor(torch.rand(n, generator=g) * (h - eh + 1))
        left = torch.floor(torch.rand(n, generator=g) * (w - ew + 1))
        rows, cols = torch.arange(h), torch.arange(w)
        in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None]) & chosen[:, None]
        in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])
        inside = (in_rows[:, None, :, None] & in_cols[:, None, None, :]).to(x.device, x.dtype)
        if s["value"] == "random":
            value = torch.rand(x.shape, generator=g).to(x.device)
        else:
            value = torch.full((), ERASE_VALUES[s["value"]], device=x.device)
        return torch.lerp(x, value, inside)  # exactly x outside, exactly value inside

    # -- mixing -------------------------------------------------------------------------
    def _mix(self, x, y, g):
        both = {"mixup", "cutmix"} <= self.names
        share = self.settings["cutmix"]["share"]
        pick_cutmix = torch.rand((), generator=g).item() < share
        use = "cutmix" if (pick_cutmix if both else "cutmix" in self.names) else "mixup"
        # Beta draws come from numpy, seeded from the private generator (torch's Beta
        # sampler would draw from the global generator).
        beta = np.random.default_rng(int(torch.randint(0, 2**62, (), generator=g)))
        alpha = self.settings[use]["alpha"]
        lam = float(beta.beta(alpha, alpha))
        labels = nnf.one_hot(y.long(), self.classes).to(x.dtype)
        if use == "mixup":
            x = x * lam + x.roll(1, 0) * (1 - lam)
        else:
            x, lam = _cutmix(x, lam, g)
        return x, labels * lam + labels.roll(1, 0) * (1 - lam)


def _cutmix(x: torch.Tensor, lam: float, g: torch.Generator) -> tuple[torch.Tensor, float]:
    """v2.CutMix's box: centred anywhere, sides sqrt(1 - lam) of the image, clipped."""
    h, w = x.shape[-2:]
    cx = int(torch.randint(0, w, (), generator=g))
    cy = int(torch.randint(0, h, (), generator=g))
    r = 0.5 * math.sqrt(1.0 - lam)
    rw, rh = int(r * w), int(r * h)
    x1, y1, x2, y2 = max(cx - rw, 0), max(cy - rh, 0), min(cx + rw, w), min(cy + rh, h)
    out = x.clone()
    out[..., y1:y2, x1:x2] = x.roll(1, 0)[..., y1:y2, x1:x2]
    return out, 1.0 - (x2 - x1) * (y2 - y1) / (w * h)


def color_jitter(x, brightness, contrast, saturation=None, hue=None) -> torch.Tensor:
    """v2's adjust_brightness/contrast/saturation/hue with one factor per sample
    (tensors of shape (batch,)), in that order; x is 0..1."""

    def per_sample(f):
        return f.view(-1, 1, 1, 1).to(x.device, x.dtype)

    x = (x * per_sample(brightness)).clamp(0, 1)
    f = per_sample(contrast)
    x = (f * x + (1 - f) * _gray(x).mean((-3, -2, -1), keepdim=True)).clamp(0, 1)
    if saturation is not None:
        f = per_sample(saturation)
        x = (f * x + (1 - f) * _gray(x)).clamp(0, 1)
    if hue is not None and bool((hue != 0).any()):
        # torchvision's own colour-space conversions (private helpers of adjust_hue).
        from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv

        hsv = _rgb_to_hsv(x)
        hsv[:, 0] = (hsv[:, 0] + hue.view(-1, 1, 1).to(x.device)).remainder(1.0)
        x = _hsv_to_rgb(hsv)
    return x


def gaussian_blur(x: torch.Tensor, kernel_size: int, sigma: torch.Tensor) -> torch.Tensor:
    """v2's gaussian_blur (reflect padding) with one sigma per sample, as one grouped
    convolution per direction."""
    k, (m, c, h, w) = kernel_size, x.shape
    t = torch.linspace(-(k - 1) / 2, (k - 1) / 2, k)
    kernel = torch.exp(-0.5 * (t / sigma.view(-1, 1)) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0).to(x.device, x.dtype)
    flat = nnf.pad(x.reshape(1, m * c, h, w), [k // 2] * 4, mode="reflect")
    flat = nnf.conv2d(flat, kernel.view(m * c, 1, 1, k), groups=m * c)
    flat = nnf.conv2d(flat, kernel.view(m * c, 1, k, 1), groups=m * c)
    return flat.view(m, c, h, w)


def _apply_to(x: torch.Tensor, chosen: torch.Tensor, fn) -> torch.Tensor:
    """x with fn applied to the chosen samples only (cheaper than a masked select)."""
    idx = chosen.nonzero().flatten().to(x.device)
    if len(idx) == 0:
        return x
    return x.index_copy(0, idx, fn(x.index_select(0, idx)))


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """v2's luminance for RGB; the mean of the channels otherwise."""
    if x.shape[1] == 3:
        r, gr, b = x.unbind(1)
        return (0.2989 * r + 0.587 * gr + 0.114 * b).unsqueeze(1)
    return x.mean(1, keepdim=True)


def _affine_inverse(angle, shift, scale, shear) -> torch.Tensor:
    """Inverse of torchvision's affine (angle clockwise in degrees, x-shear in degrees):
    forward p' = shift + R(angle) · scale · Shear_x(shear) · p about the centre, whose
    2×2 part [[c, -c·t - s], [s, c - s·t]]·scale has determinant scale²."""
    a, sx = torch.deg2rad(angle), torch.deg2rad(shear)
    cos, sin, tan = torch.cos(a), torch.sin(a), torch.tan(sx)
    i00, i01, i10, i11 = (
        (cos - sin * tan) / scale,
        (cos * tan + sin) / scale,
        -sin / scale,
        cos / scale,
    )
    tx, ty = shift[:, 0], shift[:, 1]
    zeros, ones = torch.zeros_like(a), torch.ones_like(a)
    rows = [i00, i01, -(i00 * tx + i01 * ty), i10, i11, -(i10 * tx + i11 * ty), zeros, zeros, ones]
    return torch.stack(rows, 1).view(-1, 3, 3)


def _homography(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """3×3 maps taking the four src points of each sample onto its four dst points."""
    n = len(src)
    x, y = src[..., 0], src[..., 1]
    X, Y = dst[..., 0], dst[..., 1]
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_x = torch.stack([x, y, ones, zeros, zeros, zeros, -X * x, -X * y], -1)
    rows_y = torch.stack([zeros, zeros, zeros, x, y, ones, -Y * x, -Y * y], -1)
    a = torch.cat([rows_x, rows_y], 1)
    b = torch.cat([X, Y], 1)
    coeffs = torch.linalg.solve(a.double(), b.double()).float()
    return torch.cat([coeffs, torch.ones(n, 1)], 1).view(n, 3, 3)


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
