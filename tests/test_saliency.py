"""Saliency on a case with a known answer (issue 12): images whose class is decided by one
quadrant alone, the other quadrants carrying distractors. Trained networks must put at least
60% of their attention there."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import EXAMPLES
from torch import nn

from studio.builder import build_model
from studio.projectfile import load_project
from studio.saliency import saliency

SIZE = 16


def quadrant_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 1: a bright 4x4 square somewhere in the top-left quadrant; class 0: none there.
    Both classes have 1-2 bright squares in the other quadrants, and noise everywhere."""
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.rand(n, 1, SIZE, SIZE, generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    half = SIZE // 2
    for i in range(n):
        for _ in range(int(torch.randint(1, 3, (), generator=g))):
            quadrant = int(torch.randint(1, 4, (), generator=g))  # never the top-left
            r0 = (quadrant // 2) * half + int(torch.randint(0, half - 3, (), generator=g))
            c0 = (quadrant % 2) * half + int(torch.randint(0, half - 3, (), generator=g))
            x[i, 0, r0 : r0 + 4, c0 : c0 + 4] = 1.0
        if y[i] == 1:
            r0, c0 = (int(torch.randint(0, half - 3, (), generator=g)) for _ in range(2))
            x[i, 0, r0 : r0 + 4, c0 : c0 + 4] = 1.0
    return x, y


def fit(model: nn.Module, steps: int = 300) -> nn.Module:
    torch.manual_seed(0)
    x, y = quadrant_images(512, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        i = torch.randint(0, len(y), (64,))
        loss = nn.functional.cross_entropy(model(x[i]), y[i])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test_x, test_y = quadrant_images(200, seed=2)
    with torch.no_grad():
        assert (model(test_x).argmax(1) == test_y).float().mean() > 0.9  # it learned the rule
    return model


def top_left_share(model: nn.Module, method: str) -> tuple[float, str]:
    x, y = quadrant_images(40, seed=3)
    shares, used = [], ""
    for sample in x[y == 1]:
        heat, used, _ = saliency(model, sample, target=1, method=method)
        assert heat.shape == (SIZE, SIZE) and heat.min() >= 0 and heat.sum() == pytest.approx(1)
        shares.append(heat[: SIZE // 2, : SIZE // 2].sum())
    return float(np.mean(shares)), used


def test_grad_cam_looks_at_the_quadrant_that_decides():
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, padding=1),
        nn.ReLU(),
        # Flattened, not pooled globally: where a square is must matter to the classifier.
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * (SIZE // 2) ** 2, 2),
    )
    share, used = top_left_share(fit(cnn, steps=200), "auto")
    assert used == "grad_cam" and share >= 0.6


def test_integrated_gradients_look_at_it_too_without_convolutions():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 64), nn.ReLU(), nn.Linear(64, 2))
    share, used = top_left_share(fit(mlp, steps=400), "auto")
    assert used == "integrated_gradients" and share >= 0.6


def test_a_studio_network_gets_a_map_of_its_input_size():
    project = load_project(next(p for p in EXAMPLES if p.stem == "digits_cnn"))
    model = build_model(project)
    heat, used, target = saliency(model, torch.rand(1, 8, 8))
    assert heat.shape == (8, 8) and used == "grad_cam" and 0 <= target < 10
