"""PNG pictures of an evaluation for the run folder (no plotting library needed): the
confusion matrix, normalized per true class with the counts written in, and the reliability
diagram (accuracy against confidence per bin, the diagonal being perfect calibration)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

CELL = 36
MARGIN = 110


def _blue(share: float) -> tuple[int, int, int]:
    share = max(0.0, min(1.0, share))
    return (int(255 - 220 * share), int(255 - 160 * share), int(255 - 60 * share))


def confusion_png(report: dict, path: Path) -> None:
    matrix, classes = report["confusion_matrix"], report["classes"]
    n = len(classes)
    size = MARGIN + n * CELL + 20
    image = Image.new("RGB", (size, size + 30), "white")
    draw = ImageDraw.Draw(image)
    draw.text(
        (MARGIN, 8),
        f"Confusion matrix ({report['split']}): rows true, columns predicted",
        fill="black",
    )
    for i in range(n):
        total = max(1, sum(matrix[i]))
        draw.text((8, MARGIN + i * CELL + CELL // 3), classes[i][:14], fill="black")
        draw.text((MARGIN + i * CELL + 4, MARGIN - 20), classes[i][:5], fill="black")
        for j in range(n):
            share = matrix[i][j] / total
            x, y = MARGIN + j * CELL, MARGIN + i * CELL
            draw.rectangle((x, y, x + CELL - 1, y + CELL - 1), fill=_blue(share), outline="#ccc")
            if matrix[i][j]:
                draw.text(
                    (x + 6, y + CELL // 3),
                    str(matrix[i][j]),
                    fill="white" if share > 0.5 else "black",
                )
    image.save(path)


def reliability_png(report: dict, path: Path) -> None:
    width = height = 320
    left, top, side = 50, 30, 240
    image = Image.new("RGB", (width, height + 20), "white")
    draw = ImageDraw.Draw(image)
    ece = report["calibration"]["ece"]
    draw.text((left, 8), f"Reliability ({report['split']}), ECE {ece:.3f}", fill="black")
    draw.rectangle((left, top, left + side, top + side), outline="black")
    draw.line((left, top + side, left + side, top), fill="#999")  # perfect calibration
    for b in report["calibration"]["bins"]:
        if not b["count"]:
            continue
        x0 = left + b["low"] * side
        x1 = left + b["high"] * side
        y = top + side - b["accuracy"] * side
        draw.rectangle((x0 + 1, y, x1 - 1, top + side), fill="#60a5fa", outline="#2563eb")
    draw.text((left, top + side + 6), "confidence 0 … 1", fill="black")
    draw.text((4, top), "accuracy", fill="black")
    image.save(path)


def saliency_png(sample, heat, path: Path, scale: int = 16) -> None:
    """The sample (grey; its mean over channels) with the map over it in red, side by side."""
    import numpy as np

    if sample.ndim == 3:
        sample = sample.mean(0)
    if sample.ndim != 2:  # a vector: one row
        sample, heat = sample.reshape(1, -1), heat.reshape(1, -1)
    lo, hi = float(sample.min()), float(sample.max())
    grey = ((sample - lo) / (hi - lo or 1) * 255).astype(np.uint8)
    red = heat / (heat.max() or 1)
    base = np.stack([grey] * 3, -1).astype(np.float64)
    over = base * (1 - 0.6 * red[..., None]) + np.array([255, 0, 0]) * 0.6 * red[..., None]
    h, w = grey.shape
    left = Image.fromarray(base.astype(np.uint8)).resize((w * scale, h * scale), Image.NEAREST)
    right = Image.fromarray(over.astype(np.uint8)).resize((w * scale, h * scale), Image.NEAREST)
    image = Image.new("RGB", (2 * w * scale + 10, h * scale), "white")
    image.paste(left, (0, 0))
    image.paste(right, (w * scale + 10, 0))
    image.save(path)
