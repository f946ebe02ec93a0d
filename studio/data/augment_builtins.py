"""The built-in augmentations: each transform's settings and how it changes a batch.

They register through the `studio.augmentations` entry point like any plugin (see
studio/data/augmentations.py for the hooks). Their `order` keeps the sequence the
studio has always used: resolution (center crop, pad, resize), flips, geometry (one
warp for random resized crop, rotation, affine and perspective), pixels (colour jitter,
blur, noise), occlusion, then mixing. The network's input shape is fixed, so every
transform gives back an image of the Input's size. Pixel values are given as fractions
of the data's range: 0 black, 1 white.

Every sample gets its own draw, computed for the whole batch at once: the geometry is
one matrix per sample, colour jitter, blur, noise and erasing are the v2 formulas with
per-sample factors (the tests check them against torchvision's functional ops), and
mixup and cutmix mix the batch with itself rolled by one, as v2.MixUp / v2.CutMix do.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as nnf

from studio.data.augmentations import AugmentationType, chance_param, enabled_param
from studio.errors import DataError
from studio.schema import Param

ERASE_VALUES = {"black": 0.0, "gray": 0.5, "white": 1.0}
FIELD = "Field 'data.augmentation."


def _v2():
    from studio.vision import torchvision

    torchvision()
    from torchvision.transforms.v2 import functional

    return functional


# -- flips ---------------------------------------------------------------------------------
class _Flip(AugmentationType):
    group = "Spatial"
    dim = -1

    def apply(self, x, chosen, g, settings):
        return _apply_to(x, chosen, lambda part: part.flip(self.dim))


class HorizontalFlip(_Flip):
    name = "horizontal_flip"
    summary = "Mirror left to right."
    order = 20
    dim = -1
    params = (enabled_param("a left-right mirror"), chance_param(0.5))


class VerticalFlip(_Flip):
    name = "vertical_flip"
    summary = "Mirror upside down."
    order = 21
    dim = -2
    params = (enabled_param("an upside-down mirror"), chance_param(0.5))


# -- geometry: inverse maps, composed and warped once by the pipeline ----------------------
class Rotation(AugmentationType):
    name = "rotation"
    group = "Spatial"
    summary = "Rotate by a random angle around the centre."
    kind = "geometry"
    order = 31
    params = (
        enabled_param("a random rotation"),
        chance_param(1.0),
        Param(
            "degrees",
            "float",
            15.0,
            "Rotate by an angle drawn from −degrees to +degrees around the centre; corners "
            "that come in are black.",
            0.0,
            180.0,
        ),
    )

    def matrices(self, n, h, w, g, settings):
        degrees = settings["degrees"]
        return _affine_inverse(
            _uniform(n, -degrees, degrees, g), torch.zeros(n, 2), torch.ones(n), torch.zeros(n)
        )


class Affine(AugmentationType):
    name = "affine"
    group = "Spatial"
    summary = "Shift, zoom, rotate and shear at random, as v2.RandomAffine."
    kind = "geometry"
    order = 32
    params = (
        enabled_param("a random shift, zoom, rotation and shear"),
        chance_param(1.0),
        Param(
            "translate",
            "float",
            0.1,
            "Largest shift as a fraction of the width and height (whole pixels).",
            0.0,
            1.0,
        ),
        Param("scale_min", "float", 0.9, "Smallest zoom factor (below 1 shrinks).", 0.1, 10.0),
        Param("scale_max", "float", 1.1, "Largest zoom factor (above 1 enlarges).", 0.1, 10.0),
        Param("degrees", "float", 0.0, "Rotate by an angle from −degrees to +degrees.", 0.0, 180.0),
        Param(
            "shear",
            "float",
            0.0,
            "Slant sideways by an angle from −shear to +shear degrees.",
            0.0,
            80.0,
        ),
    )

    def matrices(self, n, h, w, g, settings):
        s = settings
        angle = _uniform(n, -s["degrees"], s["degrees"], g)
        # Whole-pixel shifts, as torchvision's RandomAffine draws them.
        shift = torch.round(
            _uniform(n * 2, -1, 1, g).view(n, 2) * s["translate"] * torch.tensor([w, h])
        )
        scale = _uniform(n, s["scale_min"], s["scale_max"], g)
        shear = _uniform(n, -s["shear"], s["shear"], g)
        return _affine_inverse(angle, shift, scale, shear)


class Perspective(AugmentationType):
    name = "perspective"
    group = "Spatial"
    summary = "A view from a random angle: the corners move inward, as v2.RandomPerspective."
    kind = "geometry"
    order = 33
    projective = True
    params = (
        enabled_param("a random perspective (a view from an angle)"),
        chance_param(0.5),
        Param(
            "distortion",
            "float",
            0.3,
            "How far each corner may move toward the centre, as a fraction of half the side "
            "(0 none, 1 all the way).",
            0.0,
            1.0,
        ),
    )

    def matrices(self, n, h, w, g, settings):
        """Each output corner moves inward by up to distortion × half the side, as in
        v2.RandomPerspective; the map takes those corners back to the image's corners."""
        d = settings["distortion"]
        corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
        half = torch.tensor([(w - 1) / 2, (h - 1) / 2])
        start = (corners * half).expand(n, 4, 2)
        inward = _uniform(n * 8, 0, 1, g).view(n, 4, 2) * d * torch.tensor([w / 2, h / 2])
        end = start - corners * inward
        return _homography(end, start)


class RandomResizedCrop(AugmentationType):
    name = "random_resized_crop"
    group = "Crop and size"
    summary = "A random crop of random area and aspect, resized back to the Input's size."
    kind = "geometry"
    order = 30
    params = (
        enabled_param("a random crop resized back to the Input's size"),
        chance_param(1.0),
        Param(
            "scale_min",
            "float",
            0.5,
            "Smallest crop area as a fraction of the image (torchvision's default is 0.08, "
            "harsh for small images). The crop is resized back to the Input's size.",
            0.01,
            1.0,
        ),
        Param(
            "scale_max", "float", 1.0, "Largest crop area as a fraction of the image.", 0.01, 1.0
        ),
        Param("ratio_min", "float", 0.75, "Narrowest crop: width / height.", 0.1, 10.0),
        Param("ratio_max", "float", 1.3333, "Widest crop: width / height.", 0.1, 10.0),
    )

    def matrices(self, n, h, w, g, settings):
        s = settings
        area = _uniform(n, s["scale_min"], s["scale_max"], g) * h * w
        ratio = torch.exp(_uniform(n, math.log(s["ratio_min"]), math.log(s["ratio_max"]), g))
        cw = torch.sqrt(area * ratio).clamp(max=w)
        ch = torch.sqrt(area / ratio).clamp(max=h)
        ox = _uniform(n, -1, 1, g) * (w - cw) / 2
        oy = _uniform(n, -1, 1, g) * (h - ch) / 2
        m = torch.eye(3).repeat(n, 1, 1)
        m[:, 0, 0], m[:, 1, 1], m[:, 0, 2], m[:, 1, 2] = cw / w, ch / h, ox, oy
        return m


# -- resolution: v2 functional calls on the chosen samples, resized back -------------------
class _Resolution(AugmentationType):
    group = "Crop and size"

    def apply(self, x, chosen, g, settings):
        h, w = x.shape[-2:]
        side = min(h, w)

        def change(part):
            f = _v2()
            part = self.change(f, part, h, w, side, settings)
            return f.resize(part, [h, w], antialias=True).clamp(0, 1)

        return _apply_to(x, chosen, change)

    def change(self, f, part, h, w, side, settings):
        raise NotImplementedError


class CenterCrop(_Resolution):
    name = "center_crop"
    summary = "Keep the middle of the image and resize it back: a zoom in."
    order = 10
    params = (
        enabled_param("a crop around the centre, resized back (a zoom in)"),
        chance_param(1.0),
        Param(
            "size",
            "int",
            0,
            "Pixels kept around the centre along the shorter side (0: 7/8 of it), in the "
            "image's proportions. The network's input shape is fixed, so the crop is resized "
            "back to it: a zoom in.",
            0,
            4096,
        ),
    )

    def check(self, settings, shape):
        side = min(shape[1:])
        if settings["size"] > side:
            raise DataError(
                f"{FIELD}center_crop.size' ({settings['size']}) is larger than the "
                f"{side}-pixel image; use at most {side}."
            )

    def change(self, f, part, h, w, side, settings):
        size = settings["size"] or max(1, round(side * 7 / 8))
        # The crop keeps the image's proportions; size is its shorter side.
        return f.center_crop(part, [round(size * h / side), round(size * w / side)])


class Pad(_Resolution):
    name = "pad"
    summary = "Add a border and resize back: a zoom out."
    order = 11
    params = (
        enabled_param("a border, resized back (a zoom out)"),
        chance_param(1.0),
        Param(
            "padding",
            "int",
            2,
            "Pixels added on each side; the network's input shape is fixed, so the padded "
            "image is resized back to it and its content shrinks.",
            1,
            1024,
        ),
        Param(
            "mode",
            "choice",
            "constant",
            "constant: fill the border with the fill value; edge: repeat the edge pixels; "
            "reflect / symmetric: mirror the image into the border.",
            choices=("constant", "edge", "reflect", "symmetric"),
        ),
        Param("fill", "float", 0.0, "Border value for constant mode (0 black, 1 white).", 0.0, 1.0),
    )

    def check(self, settings, shape):
        side = min(shape[1:])
        if settings["mode"] in ("reflect", "symmetric") and settings["padding"] >= side:
            raise DataError(
                f"{FIELD}pad.padding' must be below the image side ({side}) to "
                f"{settings['mode']}; got {settings['padding']}."
            )

    def change(self, f, part, h, w, side, settings):
        s = settings
        return f.pad(part, [s["padding"]], fill=s["fill"], padding_mode=s["mode"])


class Resize(_Resolution):
    name = "resize"
    summary = "Shrink and resize back: the image keeps its size and loses detail."
    order = 12
    params = (
        enabled_param("a lower resolution"),
        chance_param(1.0),
        Param(
            "size",
            "int",
            0,
            "Shrink so the shorter side has this many pixels (0: half), then resize back to "
            "the Input's size (its shape is fixed): the image keeps its size, loses detail.",
            0,
            4096,
        ),
    )

    def change(self, f, part, h, w, side, settings):
        return f.resize(part, settings["size"] or max(1, side // 2), antialias=True)


# -- pixels --------------------------------------------------------------------------------
class ColorJitter(AugmentationType):
    name = "color_jitter"
    group = "Pixels"
    summary = "Random brightness, contrast, saturation and hue, as v2.ColorJitter."
    order = 40
    params = (
        enabled_param("random brightness, contrast, saturation and hue"),
        chance_param(1.0),
        Param(
            "brightness",
            "float",
            0.2,
            "Multiply the brightness by a factor from 1 − this to 1 + this.",
            0.0,
            1.0,
        ),
        Param(
            "contrast",
            "float",
            0.2,
            "Scale the contrast by a factor from 1 − this to 1 + this.",
            0.0,
            1.0,
        ),
        Param(
            "saturation",
            "float",
            0.2,
            "Scale the colour saturation by a factor from 1 − this to 1 + this (colour "
            "images only; grayscale images skip it).",
            0.0,
            1.0,
        ),
        Param(
            "hue",
            "float",
            0.0,
            "Turn the hue by up to ± this fraction of the colour wheel (colour images only; "
            "grayscale images skip it).",
            0.0,
            0.5,
        ),
    )

    def apply(self, x, chosen, g, settings):
        s, n = settings, len(x)
        colour = x.shape[1] == 3  # saturation and hue need colour; grayscale skips them
        keys = ("brightness", "contrast", "saturation") if colour else ("brightness", "contrast")
        factors = [_uniform(n, max(0.0, 1 - s[k]), 1 + s[k], g)[chosen] for k in keys]
        if colour:
            factors.append(_uniform(n, -s["hue"], s["hue"], g)[chosen])
        return _apply_to(x, chosen, lambda part: color_jitter(part, *factors))


class Blur(AugmentationType):
    name = "blur"
    group = "Pixels"
    summary = "A Gaussian blur of random strength, as v2.GaussianBlur."
    order = 41
    params = (
        enabled_param("a Gaussian blur"),
        chance_param(0.5),
        Param(
            "kernel_size",
            "int",
            3,
            "Width of the blur kernel in pixels (odd: 3, 5, 7 …).",
            1,
            63,
        ),
        Param(
            "sigma_min", "float", 0.1, "Smallest blur strength (standard deviation).", 0.01, 20.0
        ),
        Param("sigma_max", "float", 1.0, "Largest blur strength (standard deviation).", 0.01, 20.0),
    )

    def check(self, settings, shape):
        side, k = min(shape[1:]), settings["kernel_size"]
        if k % 2 == 0 or k >= 2 * side:
            raise DataError(
                f"{FIELD}blur.kernel_size' must be odd and below {2 * side} for "
                f"{side}-pixel images, got {k}."
            )

    def apply(self, x, chosen, g, settings):
        s = settings
        sigma = _uniform(len(x), s["sigma_min"], s["sigma_max"], g)[chosen]
        return _apply_to(x, chosen, lambda part: gaussian_blur(part, s["kernel_size"], sigma))


class Noise(AugmentationType):
    name = "noise"
    group = "Pixels"
    summary = "Gaussian noise added to every pixel."
    order = 42
    params = (
        enabled_param("Gaussian pixel noise"),
        chance_param(1.0),
        Param(
            "std",
            "float",
            0.05,
            "Noise standard deviation as a fraction of the pixel range.",
            0.0,
            1.0,
        ),
    )

    def apply(self, x, chosen, g, settings):
        std = settings["std"]

        def noisy(part):
            noise = torch.randn(part.shape, generator=g).to(part.device)
            return (part + noise * std).clamp(0, 1)

        return _apply_to(x, chosen, noisy)


# -- occlusion -----------------------------------------------------------------------------
class RandomErasing(AugmentationType):
    name = "random_erasing"
    group = "Occlusion"
    title = "Random erasing (cutout)"
    summary = "Erase a random rectangle, as v2.RandomErasing."
    order = 50
    params = (
        enabled_param("a random erased rectangle (cutout)"),
        chance_param(0.5),
        Param(
            "scale_min",
            "float",
            0.02,
            "Smallest erased area, as a fraction of the image.",
            0.0,
            1.0,
        ),
        Param(
            "scale_max", "float", 0.33, "Largest erased area, as a fraction of the image.", 0.0, 1.0
        ),
        Param("ratio_min", "float", 0.3, "Narrowest rectangle: height / width.", 0.01, 100.0),
        Param("ratio_max", "float", 3.3, "Widest rectangle: height / width.", 0.01, 100.0),
        Param(
            "value",
            "choice",
            "black",
            "What fills the rectangle: black, gray, white, or random noise.",
            choices=("black", "gray", "white", "random"),
        ),
    )

    def apply(self, x, chosen, g, settings):
        """A rectangle per sample, as v2.RandomErasing draws it (area, log-uniform aspect)."""
        s, n, (h, w) = settings, len(x), x.shape[-2:]
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


# -- mixing --------------------------------------------------------------------------------
class Mixup(AugmentationType):
    name = "mixup"
    group = "Mixing"
    title = "Mixup"
    summary = "Blend samples of a batch and their labels, as v2.MixUp."
    kind = "mix"
    image_only = False
    order = 60
    params = (
        Param(
            "enabled",
            "bool",
            False,
            "Blend each training sample with another one of its batch, and their labels in the "
            "same proportion (works for any input, needs classes).",
        ),
        Param(
            "alpha",
            "float",
            0.2,
            "The blend weight is drawn from Beta(alpha, alpha) once per batch: small alpha "
            "keeps samples nearly whole, 1 blends evenly often.",
            0.01,
            100.0,
        ),
    )

    def mix(self, x, labels, g, settings):
        lam = beta_weight(settings["alpha"], g)
        x = x * lam + x.roll(1, 0) * (1 - lam)
        return x, labels * lam + labels.roll(1, 0) * (1 - lam)


class CutMix(AugmentationType):
    name = "cutmix"
    group = "Mixing"
    title = "CutMix"
    summary = "Paste a rectangle from another sample and mix the labels by area, as v2.CutMix."
    kind = "mix"
    order = 61
    params = (
        Param(
            "enabled",
            "bool",
            False,
            "Paste a rectangle from another sample of the batch into each training image, and "
            "mix the labels by area.",
        ),
        Param(
            "alpha",
            "float",
            1.0,
            "The kept area is drawn from Beta(alpha, alpha) once per batch.",
            0.01,
            100.0,
        ),
        Param(
            "share",
            "float",
            0.5,
            "When mixup is on too, each batch uses one of the two: cutmix with this chance, "
            "mixup otherwise.",
            0.0,
            1.0,
            label="Share of batches (with mixup)",
        ),
    )

    def mix(self, x, labels, g, settings):
        x, lam = _cutmix(x, beta_weight(settings["alpha"], g), g)
        return x, labels * lam + labels.roll(1, 0) * (1 - lam)


# Registration order is the order of the `data.augmentation` fields in project files.
BUILTINS = (
    HorizontalFlip,
    VerticalFlip,
    Rotation,
    Affine,
    Perspective,
    RandomResizedCrop,
    CenterCrop,
    Pad,
    Resize,
    ColorJitter,
    Blur,
    Noise,
    RandomErasing,
    Mixup,
    CutMix,
)


def register(catalog) -> None:
    for kind in BUILTINS:
        catalog.register(kind())


# -- the maths -----------------------------------------------------------------------------
def beta_weight(alpha: float, g: torch.Generator) -> float:
    """A draw from Beta(alpha, alpha). It comes from numpy, seeded from the private
    generator (torch's Beta sampler would draw from the global generator)."""
    beta = np.random.default_rng(int(torch.randint(0, 2**62, (), generator=g)))
    return float(beta.beta(alpha, alpha))


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
