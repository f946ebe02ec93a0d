"""Class balance: how many samples each class has, whether that is lopsided enough to
matter, and the two remedies the training settings offer.

`training.class_weights=auto` weights the cross-entropy by inverse class frequency of the
training split; `training.sampling=balanced` draws every class equally often. Both are
counted on the training split only, like the scaling statistics, so nothing about the
validation data leaks into training. `read_labels` counts the classes without decoding a
sample (for `studio check`, which must stay fast).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from studio.errors import DataError

IMBALANCED = 3.0  # largest class / smallest class from which a remedy is suggested
SHOWN = 12  # classes named in the summary; more are counted, not named


@dataclass(frozen=True)
class ClassBalance:
    """Samples per class of some data (`where` says which, for the sentence)."""

    names: tuple[str, ...]
    counts: tuple[int, ...]
    where: str = "the data"

    @classmethod
    def of(cls, y: torch.Tensor, names: list[str], where: str = "the data") -> ClassBalance:
        counts = torch.bincount(y.cpu(), minlength=len(names))[: len(names)]
        return cls(tuple(names), tuple(int(c) for c in counts), where)

    @property
    def ratio(self) -> float:
        """Largest class count / smallest (infinite when a class has no sample)."""
        small = min(self.counts)
        return max(self.counts) / small if small else float("inf")

    @property
    def imbalanced(self) -> bool:
        return self.ratio >= IMBALANCED

    def summary(self) -> str:
        shown = ", ".join(f"'{n}' {c:,}" for n, c in zip(self.names, self.counts))
        if len(self.names) > SHOWN:
            shown = ", ".join(
                f"'{n}' {c:,}" for n, c in zip(self.names[:SHOWN], self.counts[:SHOWN])
            )
            shown += f" and {len(self.names) - SHOWN} more"
        return (
            f"Samples per class in {self.where}: {shown} "
            f"(imbalance ratio {self._ratio_text()}, largest class / smallest)."
        )

    def suggestion(self, training: dict | None = None) -> str | None:
        """A sentence when the classes are imbalanced: what to set, or what already copes."""
        if not self.imbalanced:
            return None
        big = int(np.argmax(self.counts))
        small = int(np.argmin(self.counts))
        said = (
            f"Classes are imbalanced (ratio {self._ratio_text()}: '{self.names[big]}' "
            f"{self.counts[big]:,} samples, '{self.names[small]}' {self.counts[small]:,})"
        )
        training = training or {}
        weighted = training.get("class_weights", "none") != "none"
        if weighted and training.get("sampling", "shuffle") == "balanced":
            return (
                f"{said}; training.class_weights=auto and training.sampling=balanced each make "
                "up for it, so together the small classes outweigh the big ones: keep one."
            )
        if weighted:
            return f"{said}; training.class_weights={training['class_weights']} makes up for it."
        if training.get("sampling", "shuffle") == "balanced":
            return f"{said}; training.sampling=balanced draws every class equally often."
        return f"{said}: consider training.class_weights=auto or training.sampling=balanced."

    def _ratio_text(self) -> str:
        return "∞" if self.ratio == float("inf") else f"{self.ratio:.1f}"


def class_weights(y: torch.Tensor, classes: int) -> torch.Tensor:
    """Inverse class frequency, normalized so the weights average 1 over the samples
    (scikit-learn's "balanced": n_samples / (n_classes * count)). A class with no training
    sample is rarer than the rarest, so it gets the largest weight."""
    counts = torch.bincount(y.cpu(), minlength=classes)[:classes].double()
    present = counts > 0
    weights = torch.zeros(classes, dtype=torch.float64)
    weights[present] = counts.sum() / (int(present.sum()) * counts[present])
    weights[~present] = weights[present].max()
    return weights.float()


class BalancedDraws:
    """An epoch's order where every class is drawn equally often: a class uniformly at
    random, then one of its samples uniformly at random (with replacement), as torch's
    WeightedRandomSampler with inverse-frequency weights does. Every number comes from the
    generator given (the batches' private one), so a run, and a resumed run, repeats."""

    def __init__(self, y: torch.Tensor):
        y = y.cpu()
        counts = torch.bincount(y)
        self.by_class = torch.argsort(y, stable=True)
        self.starts = torch.cumsum(counts, 0) - counts
        self.counts = counts
        self.present = torch.nonzero(counts).reshape(-1)

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        pick = torch.randint(len(self.present), (n,), generator=generator)
        cls = self.present[pick]
        within = (torch.rand(n, generator=generator, dtype=torch.float64) * self.counts[cls]).long()
        within = torch.minimum(within, self.counts[cls] - 1)
        return self.by_class[self.starts[cls] + within]


def read_labels(settings: dict, base: Path) -> ClassBalance | None:
    """Samples per class of a project's data, read without decoding a sample: the digits'
    targets, a CSV's label column, an image folder's files per class folder (counted by
    name, so an unreadable image still counts). None when the data has no classes
    (regression), comes from a plugin, or cannot be read (training says why)."""
    # The loaders' own readers, so a file reads here as it will when training.
    from studio.data import sources

    request = sources.SourceRequest(settings, base, ())
    try:
        if settings["source"] == "digits":
            from sklearn.datasets import load_digits

            data = load_digits()
            names = [str(c) for c in data.target_names]
            counts = np.bincount(data.target, minlength=len(names)).tolist()
        elif settings["source"] == "csv":
            path = sources._resolve(request, "CSV file")
            rows = sources._csv_rows(path)
            header = [h.strip() for h in rows[0][1]] if rows else []
            label = settings["label_column"]
            if len(rows) < 2 or label not in header:
                return None
            at = header.index(label)
            body = [(line, cells) for line, cells in rows[1:] if len(cells) == len(header)]
            names, y = sources._labels(
                [cells[at].strip() for _, cells in body], [line for line, _ in body], path, label
            )
            counts = torch.bincount(y, minlength=len(names)).tolist() if names else []
        elif settings["source"] == "image_folder":
            root = sources._resolve(request, "image folder")
            folders = sources._class_folders(root)
            files = [len(sources._image_files(folder, [])) for folder in folders]
            # As the loader does, a folder without images is no class.
            names = [folder.name for folder, n in zip(folders, files) if n]
            counts = [n for n in files if n]
        else:
            return None
    except (DataError, OSError):
        return None
    if len(names) < 2:
        return None
    keep = settings.get("classes") or []
    if keep:
        if any(k >= len(names) for k in keep) or len(set(keep)) < 2:
            return None  # training says what is wrong with data.classes
        return ClassBalance(tuple(names[k] for k in keep), tuple(counts[k] for k in keep))
    return ClassBalance(tuple(names), tuple(counts))
