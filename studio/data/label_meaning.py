"""Augmentations that change what a label means on the data they are applied to.

A mirrored 2, 3, 4, 5 or 7 is no digit at all, and a 6 turned upside down reads 9: on
handwritten digits, flips and large rotations teach the model wrong labels, where on
photographs of objects they are harmless. The window shows these sentences beside the
augmentation settings; the rule lives here so that the CLI can say it too.
"""

from __future__ import annotations

# Data whose classes depend on orientation (left-right and up-down).
ORIENTED = {"digits": "digits"}
ROTATION_LIMIT = 30.0  # degrees: beyond this a 6 and a 9 start to trade places


def label_warnings(data: dict) -> list[str]:
    """One sentence per enabled augmentation that changes labels on this data."""
    what = ORIENTED.get(data.get("source", ""))
    if what is None:
        return []
    augmentation = data.get("augmentation", {})
    out = []
    for name, words in (
        ("horizontal_flip", "Mirroring"),
        ("vertical_flip", "Flipping upside down"),
    ):
        if augmentation.get(name, {}).get("enabled"):
            out.append(
                f"{words} changes what some {what} mean (a mirrored 2 or 7 is no digit; an "
                f"upside-down 6 reads 9): turn {name.replace('_', ' ')} off for {what}."
            )
    rotation = augmentation.get("rotation", {})
    degrees = abs(float(rotation.get("degrees", 0) or 0))
    if rotation.get("enabled") and degrees > ROTATION_LIMIT:
        out.append(
            f"Rotating {what} by up to {degrees:g}° turns some into others (6 and 9): keep "
            f"rotation within {ROTATION_LIMIT:g}°."
        )
    return out
