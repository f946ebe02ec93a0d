"""Small-data validation: which samples each run of an experiment trains and validates on.

`training.validation.method`:
  holdout         one run; data.validation is the fraction held out (the default)
  kfold           k runs; the samples are cut into k folds and each run validates on one
                  (stratified by class when every class has at least k samples)
  bootstrap       `repeats` runs; each trains on n samples drawn with replacement and
                  validates on the ones never drawn ("out of bag", about 37 % of them)
  leave_one_out   one run per sample, validating on that sample alone (k-fold with k = n:
                  n models to train, so for tiny data only)

The test split (data.test) is cut first and is the same for every run, so no run
validates or trains on a test sample. A fold is known by (method, number, count) and the
seed: each run finds its own samples again, the evaluation of a fold's run included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from studio.errors import DataError

METHODS = ("holdout", "kfold", "bootstrap", "leave_one_out")
# From this many runs on, an experiment says what it costs before it starts (leave-one-out
# always says so: it is k-fold with k = n).
COSTLY_RUNS = 50


@dataclass(frozen=True)
class Fold:
    """One run of an experiment: the `number`-th (from 0) of `count`."""

    method: str
    number: int
    count: int

    @property
    def label(self) -> str:
        """How the person reads it: "fold 2 of 5", "bootstrap 3 of 10", "sample 4 of 150"."""
        word = {"kfold": "fold", "bootstrap": "bootstrap", "leave_one_out": "sample"}
        return f"{word.get(self.method, self.method)} {self.number + 1} of {self.count}"

    def to_dict(self) -> dict:
        return {"method": self.method, "number": self.number, "count": self.count}

    @classmethod
    def from_dict(cls, raw: dict) -> Fold:
        return cls(str(raw["method"]), int(raw["number"]), int(raw["count"]))


def describe_method(method: str, count: int) -> str:
    """The experiment in words: "5-fold cross-validation", "bootstrap (10 repeats)"."""
    if method == "kfold":
        return f"{count}-fold cross-validation"
    if method == "bootstrap":
        return f"bootstrap ({count} repeats)"
    if method == "leave_one_out":
        return "leave-one-out cross-validation"
    return "holdout validation"


def run_count(validation: dict, samples: int) -> int:
    """How many runs `training.validation` asks for, given the samples left once the test
    split is out; refused in one sentence when the samples cannot make that many."""
    method = validation["method"]
    if method == "holdout":
        return 1
    if method == "leave_one_out":
        if samples < 2:
            raise DataError(
                f"Field 'training.validation.method': leave-one-out needs at least 2 samples "
                f"outside the test split; there are {samples}."
            )
        return samples
    if method == "kfold":
        folds = int(validation["folds"])
        if samples < 2:
            raise DataError(
                f"Field 'training.validation.method': k-fold needs at least 2 samples "
                f"outside the test split; there {'is' if samples == 1 else 'are'} {samples}: "
                "lower data.test or add data."
            )
        if folds > samples:
            raise DataError(
                f"Field 'training.validation.folds' is {folds} but only {samples} sample"
                f"{'s are' if samples != 1 else ' is'} left outside the test split; "
                f"use at most {samples} folds."
            )
        return folds
    if method == "bootstrap":
        if samples < 2:
            raise DataError(
                f"Field 'training.validation.method': the bootstrap needs at least 2 samples "
                f"outside the test split; there are {samples}."
            )
        return int(validation["repeats"])
    raise DataError(
        f"Field 'training.validation.method': unknown method '{method}' "
        f"(known: {', '.join(METHODS)})."
    )


def cost_warning(validation: dict, samples: int, epochs: int) -> str | None:
    """A sentence when the experiment trains many models (leave-one-out on more than a
    handful of samples), so nobody starts hours of work by accident."""
    method = validation["method"]
    if method == "holdout":
        return None
    runs = run_count(validation, samples)
    if method != "leave_one_out" and runs < COSTLY_RUNS:
        return None
    what = describe_method(method, runs)
    return (
        f"{what[:1].upper()}{what[1:]} trains {runs:,} models, each for {epochs} "
        f"epoch{'s' if epochs != 1 else ''}: about {runs:,}× the time of one run; 5- or "
        "10-fold cross-validation (training.validation.method = kfold) estimates the same "
        "far faster."
    )


def outside_test(samples: int, test: float) -> int:
    """The samples left once the test split (the fraction `test`) is cut, as
    prepare.split_indices cuts it (scikit-learn rounds the test part up)."""
    import math

    return samples - (math.ceil(samples * test) if test > 0 else 0)


def plan_sentence(validation: dict, samples: int, test: float) -> str:
    """What `training.validation` will do with `samples` samples (before the test split
    of the fraction `test` is cut), for `studio check`; refusals come as DataError."""
    rest = outside_test(samples, test)
    method = validation["method"]
    runs = run_count(validation, rest)
    where = f"the {rest:,} samples outside the test split" if test > 0 else f"the {rest:,} samples"
    if method == "kfold":
        size = rest // runs
        what = (
            f"{runs} runs, each validated on one fold (about {size:,} "
            f"sample{'s' if size != 1 else ''}) of {where}"
        )
    elif method == "bootstrap":
        what = (
            f"{runs} runs, each trained on {rest:,} draws with replacement from {where} and "
            "validated on those never drawn (about 37 %)"
        )
    else:
        what = f"{runs:,} runs, each validated on one of {where}"
    return f"Validation: {describe_method(method, runs)}: {what}; mean ± std over the runs."


def fold_samples(
    n: int, y: np.ndarray | None, fold: Fold, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(training positions, validation positions) of a fold among n samples with class
    labels `y` (None: no classes, so no stratification). Positions, not sample numbers:
    the caller maps them through the samples it has."""
    from sklearn.model_selection import KFold, StratifiedKFold

    positions = np.arange(n)
    if fold.method == "leave_one_out":
        return np.delete(positions, fold.number), positions[fold.number : fold.number + 1]
    if fold.method == "kfold":
        # Stratified when every class present can put a sample in every fold.
        counts = np.bincount(y) if y is not None else np.zeros(0, dtype=int)
        stratify = bool(len(counts)) and counts[counts > 0].min() >= fold.count
        splitter = (
            StratifiedKFold(fold.count, shuffle=True, random_state=seed)
            if stratify
            else KFold(fold.count, shuffle=True, random_state=seed)
        )
        for number, (train, val) in enumerate(splitter.split(positions, y if stratify else None)):
            if number == fold.number:
                return train, val
        raise DataError(f"There is no {fold.label}.")
    if fold.method == "bootstrap":
        # Each repeat draws from its own stream; a draw that happens to take every sample
        # (only likely for a handful of samples) leaves nothing to validate on: draw again.
        rng = np.random.default_rng([seed, fold.number])
        for _ in range(100):
            train = np.sort(rng.integers(0, n, n))
            out_of_bag = np.setdiff1d(positions, train)
            if len(out_of_bag):
                return train, out_of_bag
        raise DataError(
            f"The bootstrap could not leave a sample out of {fold.label} ({n} samples)."
        )
    raise DataError(f"Field 'training.validation.method': '{fold.method}' makes no folds.")
