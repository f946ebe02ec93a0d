"""Augmentation: every transform changes training images and keeps their shape, each
matches torchvision's own op, the default path is untouched, validation is never
augmented, runs repeat exactly without touching the global generator, and mixup/cutmix
train with soft labels."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from support import EXAMPLES, train_stopped_and_resumed

from studio.data.augment import build_augmentation, preview
from studio.data.augment_builtins import (
    _affine_inverse,
    _homography,
    color_jitter,
    gaussian_blur,
)
from studio.data.prepare import Batches, Split
from studio.data.sources import DataError
from studio.projectfile import load_project
from studio.settings import DATA, defaults
from studio.training.engine import Trainer
from studio.training.setup import correct_count, loss_function
from studio.vision import torchvision
from studio.weights import read_state_dict

CNN = next(p for p in EXAMPLES if p.stem == "digits_cnn")
LSTM = next(p for p in EXAMPLES if p.stem == "digits_lstm")
# On the CPU: GPU kernels need not repeat bit for bit, and these compare exact losses.
CPU = "training.device=cpu"
ONE_EPOCH = ["training.epochs=1", "training.monitors.enabled=false", CPU]
PER_SAMPLE = [
    "horizontal_flip",
    "vertical_flip",
    "rotation",
    "affine",
    "perspective",
    "random_resized_crop",
    "center_crop",
    "pad",
    "resize",
    "color_jitter",
    "blur",
    "noise",
    "random_erasing",
]


def settings_with(*names: str, **changes) -> dict:
    """The augmentation section with these transforms on at p=1 (changes: 'name.field')."""
    s = copy.deepcopy(defaults(DATA)["augmentation"])
    for name in names:
        s[name]["enabled"] = True
        if "p" in s[name]:
            s[name]["p"] = 1.0
    for path, value in changes.items():
        name, field = path.split("__")
        s[name][field] = value
    return s


def images(n: int = 16, shape=(1, 8, 8), seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Smooth-ish shapes rather than noise, so blurs and flips visibly change them.
    x = torch.rand(n, *shape, generator=g)
    return torch.nn.functional.avg_pool2d(x, 3, 1, 1)


def v2f():
    torchvision()
    from torchvision.transforms.v2 import InterpolationMode, functional

    return functional, InterpolationMode.BILINEAR


# -- each transform ------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 12, 10)], ids=["gray", "rgb"])
@pytest.mark.parametrize("name", [*PER_SAMPLE, "mixup", "cutmix"])
def test_each_transform_changes_images_and_keeps_their_shape(name, shape):
    x, y = images(16, shape), torch.arange(16) % 4
    augment = build_augmentation(settings_with(name), shape, 4, train_x=x)
    out, labels = augment(x, y, seed=3)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert out.min() >= x.min() - 1e-6 and out.max() <= x.max() + 1e-6, "stays in the data's range"
    changed = (out != x).flatten(1).any(1)
    assert changed.float().mean() >= 0.5, f"{name} left most samples as they were"
    if name in ("mixup", "cutmix"):
        assert labels.shape == (16, 4) and torch.allclose(labels.sum(1), torch.ones(16))
    else:
        assert torch.equal(labels, y)


@pytest.mark.parametrize(
    "name", [n for n in PER_SAMPLE if n not in ("center_crop", "pad", "resize")]
)
def test_each_sample_of_a_batch_gets_its_own_draw(name):
    same = images(1).repeat(8, 1, 1, 1)
    settings = settings_with(name, **({f"{name}__p": 0.5} if "flip" in name else {}))
    out, _ = build_augmentation(settings, (1, 8, 8), 4)(same, torch.zeros(8), seed=1)
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) >= 2 if "flip" in name else len(distinct) == 8


def test_p_is_the_chance_per_sample():
    x = images(400)
    out, _ = build_augmentation(
        settings_with("vertical_flip", vertical_flip__p=0.25), (1, 8, 8), 0
    )(x, torch.zeros(400), seed=0)
    flipped = (out != x).flatten(1).any(1).float().mean().item()
    assert 0.18 < flipped < 0.32


def test_pixel_work_uses_the_datas_own_black_and_white():
    # z-scored images: black is a negative number, and an erased patch must be that black.
    scaled = (images(8) - 0.4) / 0.2
    settings = settings_with(
        "random_erasing", random_erasing__scale_min=0.3, random_erasing__scale_max=0.3
    )
    out, _ = build_augmentation(settings, (1, 8, 8), 0, train_x=scaled)(
        scaled, torch.zeros(8), seed=0
    )
    erased = (out - scaled).abs() > 1e-4  # the rest only went to 0..1 and back
    assert erased.flatten(1).sum(1).min() >= 15
    assert torch.allclose(out[erased], scaled.min().expand(int(erased.sum())), atol=1e-5)


# -- the same maths as torchvision ---------------------------------------------------------
def _warp(x: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    augment = build_augmentation(settings_with("rotation"), tuple(x.shape[1:]), 0)
    grid = augment._grid(inverse, *x.shape[-2:])
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", align_corners=False)


def test_the_geometry_matches_torchvision_functional_ops():
    f, bilinear = v2f()
    x = images(1, (3, 16, 12))
    affine = _affine_inverse(
        torch.tensor([20.0]), torch.tensor([[2.0, -1.0]]), torch.tensor([1.1]), torch.tensor([10.0])
    )
    expected = f.affine(x, 20.0, [2, -1], 1.1, [10.0, 0.0], interpolation=bilinear)
    assert torch.allclose(_warp(x, affine), expected, atol=1e-5)
    rotation = _affine_inverse(
        torch.tensor([-30.0]), torch.zeros(1, 2), torch.ones(1), torch.zeros(1)
    )
    expected = f.rotate(x, 30.0, interpolation=bilinear)
    assert torch.allclose(_warp(x, rotation), expected, atol=1e-5)
    # torchvision's perspective points are continuous coordinates (pixel centres at +0.5).
    start, end = [[0, 0], [11, 0], [11, 15], [0, 15]], [[1, 2], [10, 0], [11, 13], [2, 15]]
    centre = torch.tensor([6.0, 8.0])
    perspective = _homography(
        (torch.tensor(end, dtype=torch.float) - centre)[None],
        (torch.tensor(start, dtype=torch.float) - centre)[None],
    )
    expected = f.perspective(x, start, end, interpolation=bilinear)
    assert torch.allclose(_warp(x, perspective), expected, atol=1e-5)


def test_colour_jitter_and_blur_match_torchvision_per_sample():
    f, _ = v2f()
    x = images(3, (3, 10, 10))
    b, c, s, h = (
        torch.tensor(v)
        for v in ([0.7, 1.2, 1.0], [1.3, 0.8, 1.0], [0.5, 1.5, 1.0], [0.1, -0.2, 0.0])
    )
    ours = color_jitter(x, b, c, s, h)
    for i in range(3):
        expected = f.adjust_brightness(x[i], b[i].item())
        expected = f.adjust_contrast(expected, c[i].item())
        expected = f.adjust_saturation(expected, s[i].item())
        expected = f.adjust_hue(expected, h[i].item())
        assert torch.allclose(ours[i], expected, atol=1e-5)
    sigma = torch.tensor([0.5, 1.0, 2.0])
    ours = gaussian_blur(x, 5, sigma)
    for i in range(3):
        expected = f.gaussian_blur(x[i], [5, 5], [sigma[i].item()] * 2)
        assert torch.allclose(ours[i], expected, atol=1e-5)


def test_mixup_labels_weigh_each_sample_by_its_share():
    x, y = images(8), torch.arange(8) % 3
    out, labels = build_augmentation(settings_with("mixup"), (1, 8, 8), 3)(x, y, seed=5)
    # Neighbours differ in class, so each label row holds lam (own) and 1 - lam (the
    # rolled-in neighbour), and the images blend in the same proportion.
    lam = labels[torch.arange(8), y]
    assert torch.allclose(lam, lam[0]) and torch.allclose(labels.sum(1), torch.ones(8))
    assert torch.allclose(out, x * lam[0] + x.roll(1, 0) * (1 - lam[0]), atol=1e-6)
    out, labels = build_augmentation(settings_with("cutmix"), (1, 8, 8), 3)(x, y, seed=5)
    pasted = (out != x).flatten(1).any(0).view(8, 8)
    # The label share of the pasted-in neighbour is the area of the box.
    area = (pasted.nonzero().amax(0) - pasted.nonzero().amin(0) + 1).prod().item() / 64
    assert 0 < area < 1
    assert torch.allclose(labels[torch.arange(8), y.roll(1, 0)], torch.full((8,), area))


# -- the default path, validation, and randomness ------------------------------------------
def losses(project, **kwargs):
    out = []
    listen = lambda e: e["type"] == "steps" and out.extend(e["loss"].tolist())  # noqa: E731
    result = Trainer(project, listeners=[listen], emit_hz=0, **kwargs).fit()
    return np.array(out), result


def test_nothing_enabled_leaves_training_exactly_as_before():
    assert build_augmentation(defaults(DATA)["augmentation"], (1, 8, 8), 10) is None
    # Off (the default), off with changed parameters, and on at p=0: the same losses, so
    # neither the shuffle order nor the global generator moved.
    off, _ = losses(load_project(CNN, ONE_EPOCH))
    tweaked, _ = losses(load_project(CNN, [*ONE_EPOCH, "data.augmentation.rotation.degrees=90"]))
    never = [
        "data.augmentation.rotation.enabled=true",
        "data.augmentation.rotation.p=0",
        "data.augmentation.noise.enabled=true",
        "data.augmentation.noise.p=0",
    ]
    unused, _ = losses(load_project(CNN, [*ONE_EPOCH, *never]))
    assert len(off) > 40
    assert np.array_equal(off, tweaked) and np.array_equal(off, unused)


def test_without_a_transform_the_batches_are_the_plain_shuffle():
    split = Split(torch.arange(10.0).view(10, 1), torch.arange(10))
    batches = Batches(split, 4, shuffle=True, seed=7)
    reference = torch.Generator().manual_seed(7)
    for _ in range(2):
        order = torch.randperm(10, generator=reference)
        got = torch.cat([y for _, y in batches.epoch()])
        assert torch.equal(got, order)


def test_only_training_batches_are_augmented():
    project = load_project(
        CNN,
        [
            *ONE_EPOCH,
            "data.augmentation.random_erasing.enabled=true",
            "data.augmentation.random_erasing.p=1",
        ],
    )
    trainer = Trainer(project, emit_hz=0)
    calls, original = [], trainer.batches.transform

    def counted(x, y, seed):
        calls.append(len(x))
        return original(x, y, seed)

    trainer.batches.transform = counted
    result = trainer.fit()
    assert sum(calls) == len(trainer.data.train) and len(calls) == len(trainer.batches)
    model = trainer.model.eval()
    with torch.no_grad():
        val = trainer.data.validation
        expected = trainer.loss_fn(model(val.x), val.y).item()
    assert result.history[-1]["val_loss"] == pytest.approx(expected, rel=1e-5)


def test_a_seed_gives_the_same_batch_and_the_global_generator_is_untouched():
    x, y = images(16, (3, 12, 12)), torch.arange(16) % 4
    every = settings_with(*PER_SAMPLE, "mixup", "cutmix", color_jitter__hue=0.1)
    augment = build_augmentation(every, (3, 12, 12), 4)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = augment(x, y, seed=11)
    b = build_augmentation(every, (3, 12, 12), 4)(x, y, seed=11)
    c = augment(x, y, seed=12)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_an_augmented_run_resumes_exactly(tmp_path):
    sets = [
        "training.epochs=2",
        "training.batch_size=64",
        "training.deterministic=true",
        CPU,
        "data.augmentation.affine.enabled=true",
        "data.augmentation.random_erasing.enabled=true",
        "data.augmentation.mixup.enabled=true",
    ]
    whole, part, resumed = train_stopped_and_resumed(CNN, sets, tmp_path)  # mid-epoch 2
    assert part.result.status == "stopped"
    a = read_state_dict(whole.run.path / "checkpoints" / "last.safetensors")
    b = read_state_dict(resumed.run.path / "checkpoints" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


# -- mixing trains -------------------------------------------------------------------------
@pytest.mark.parametrize("mix", ["mixup", "cutmix"])
def test_mixed_batches_train_the_digits_cnn(mix):
    project = load_project(
        CNN,
        [
            "training.epochs=3",
            "training.monitors.enabled=false",
            CPU,
            f"data.augmentation.{mix}.enabled=true",
        ],
    )
    steps, result = losses(project)
    assert np.isfinite(steps).all()
    assert steps[-20:].mean() < steps[:10].mean() * 0.6
    history = result.history
    assert 0.5 < history[-1]["train_accuracy"] <= 1.0
    assert history[-1]["val_accuracy"] > 0.85


def test_soft_labels_count_by_their_largest_share():
    out = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0]])
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.6, 0.4, 0.0], [0.0, 0.2, 0.8]])
    assert correct_count("cross_entropy", out, soft).item() == 2
    assert correct_count("cross_entropy", out, torch.tensor([0, 1, 2])).item() == 3
    # Cross entropy takes the probabilities; one-hot labels give the usual value.
    ce = loss_function("cross_entropy")
    hard = torch.tensor([0, 1, 2])
    assert torch.allclose(ce(out, torch.eye(3)[hard]), ce(out, hard))
    bce = loss_function("binary_cross_entropy")
    logits = torch.tensor([[0.5], [-1.0]])
    assert torch.allclose(
        bce(logits, torch.tensor([[0.2, 0.8], [1.0, 0.0]])), bce(logits, torch.tensor([0.8, 0.0]))
    )


def test_mixup_works_on_sequences_too():
    project = load_project(LSTM, [*ONE_EPOCH, "data.augmentation.mixup.enabled=true"])
    steps, result = losses(project)
    assert np.isfinite(steps).all() and steps[-10:].mean() < steps[:10].mean()
    assert 0 <= result.history[-1]["train_accuracy"] <= 1


# -- errors --------------------------------------------------------------------------------
def test_image_transforms_on_vectors_name_the_field():
    with pytest.raises(DataError, match=r"'data\.augmentation\.rotation'.*a vector of 64.*mixup"):
        build_augmentation(settings_with("rotation"), (64,), 10)
    project = load_project(LSTM, [*ONE_EPOCH, "data.augmentation.horizontal_flip.enabled=true"])
    with pytest.raises(DataError, match=r"data\.augmentation\.horizontal_flip"):
        Trainer(project)


def test_mixing_needs_classes_and_ranges_must_make_sense():
    with pytest.raises(DataError, match=r"'data\.augmentation\.mixup'.*real-valued"):
        build_augmentation(settings_with("mixup"), (1, 8, 8), 0)
    with pytest.raises(DataError, match=r"affine\.scale_min.*swap"):
        build_augmentation(settings_with("affine", affine__scale_min=2.0), (1, 8, 8), 0)
    with pytest.raises(DataError, match=r"blur\.kernel_size.*odd"):
        build_augmentation(settings_with("blur", blur__kernel_size=4), (1, 8, 8), 0)
    with pytest.raises(DataError, match=r"center_crop\.size.*at most 8"):
        build_augmentation(settings_with("center_crop", center_crop__size=9), (1, 8, 8), 0)


# -- preview -------------------------------------------------------------------------------
def test_preview_shows_originals_beside_draws():
    x = images(3, (3, 12, 12))
    grid = preview(x, settings_with("rotation", "color_jitter"), draws=4, seed=2)
    assert grid.shape == (3, 5, 3, 12, 12)
    assert np.allclose(grid[:, 0], x.numpy())
    assert not np.allclose(grid[:, 1], grid[:, 2])
    assert np.array_equal(
        grid, preview(x, settings_with("rotation", "color_jitter"), draws=4, seed=2)
    )
    assert not np.array_equal(
        grid, preview(x, settings_with("rotation", "color_jitter"), draws=4, seed=3)
    )
    plain = preview(x, defaults(DATA)["augmentation"], draws=2)
    assert np.allclose(plain[:, 1], x.numpy())
