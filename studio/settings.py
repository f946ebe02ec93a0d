"""Schemas for the project's data and training sections.

Like layer parameters, every setting is a `Param` with a default, a range and help text,
so the GUI panels render from the same schema that validates a file and `--set`.
"""

from __future__ import annotations

import copy
from typing import Any

from studio.errors import ProjectError, clip, kind_of
from studio.schema import Param, fill_params

Section = dict[str, "Param | Section"]

MONITORS = ("val_loss", "val_accuracy", "train_loss", "train_accuracy")
MODES = ("auto", "min", "max")


def augmentation_schema(builtin_only: bool = False) -> Section:
    """The `data.augmentation` section: one sub-section per registered augmentation
    (built-in or plugin, see studio/data/augmentations.py), in registration order."""
    from studio.data.augmentations import augmentation_catalog

    return augmentation_catalog().section(builtin_only)


def stored_data(data: dict) -> dict:
    """A copy of the data values as a project file stores them (a plugin augmentation
    left at its defaults is left out, so the file opens without that plugin)."""
    from studio.data.augmentations import saved_section

    out = copy.deepcopy(data)
    if "augmentation" in out:
        out["augmentation"] = saved_section(out["augmentation"])
    return out


def __getattr__(name: str) -> Any:
    # DATA and AUGMENTATION are built on first use: the augmentation catalog loads
    # entry points (and torch), which a plain `import studio.settings` should not pay for.
    if name == "AUGMENTATION":
        value = augmentation_schema()
    elif name == "DATA":
        value = {**_DATA, "augmentation": __getattr__("AUGMENTATION")}
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


# Without "augmentation", which comes from the augmentation catalog (see __getattr__).
_DATA: Section = {
    "source": Param(
        "source",
        "choice",
        "digits",
        "digits: the 8×8 handwritten digits that ship with scikit-learn; image_folder: "
        "one subfolder per class; csv: a table of numbers with a label column.",
        choices=("digits", "image_folder", "csv"),
    ),
    "path": Param(
        "path", "str", "", "Folder (image_folder) or file (csv), relative to the project file."
    ),
    "label_column": Param(
        "label_column", "str", "label", "CSV column holding the class or target."
    ),
    "image_column": Param("image_column", "str", "", "CSV column holding image paths (optional)."),
    "image_size": Param(
        "image_size",
        "int",
        0,
        "Images are resized to this many pixels square (0: the Input layer's size).",
        0,
        1024,
    ),
    "color": Param(
        "color",
        "choice",
        "auto",
        "Load images as grayscale, RGB, or whatever the Input asks for.",
        choices=("auto", "grayscale", "rgb"),
    ),
    "classes": Param("classes", "int_list", [], "Keep only these class indices (empty: all)."),
    "scaling": Param(
        "scaling",
        "choice",
        "unit",
        "Pixel scaling: unit 0..1, symmetric -1..1, zscore from the training data, or imagenet "
        "mean/std (for pretrained backbones).",
        choices=("unit", "symmetric", "zscore", "imagenet", "none"),
    ),
    "validation": Param(
        "validation",
        "float",
        0.2,
        "Fraction held out for validation (with training.validation.method holdout; "
        "k-fold, bootstrap and leave-one-out choose their own validation samples).",
        0.0,
        0.9,
    ),
    "test": Param("test", "float", 0.0, "Fraction held out for a final test.", 0.0, 0.9),
    "shuffle": Param("shuffle", "bool", True, "Shuffle training samples every epoch."),
    "storage": Param(
        "storage",
        "choice",
        "auto",
        "Where the decoded images of an image folder (or a CSV's image column) are kept. "
        "memory: in RAM (fastest to start, needs 4 bytes a pixel). disk: decoded once "
        "into a cache file (~/.cache/studio/decoded), so RAM use stays flat however many "
        "images, and later runs skip decoding. stream: nothing kept; each batch decodes "
        "its files (no RAM or disk for the data, every epoch decodes anew: give it "
        "data.workers). auto: disk when the images would take more than a quarter of the "
        "free RAM (or 2 GB), memory otherwise.",
        choices=("auto", "memory", "disk", "stream"),
    ),
    "workers": Param(
        "workers",
        "int",
        0,
        "Worker processes that read, decode and augment training batches of images "
        "kept on disk or streamed (data.storage), while the trainer trains; 0: the "
        "trainer reads them itself. Decoding an image folder once uses this many threads "
        "(0: one per core, at most 8).",
        0,
        32,
    ),
}

TRAINING: Section = {
    "epochs": Param("epochs", "int", 10, "Passes over the training data.", 1, 100000),
    "batch_size": Param(
        "batch_size", "int", 32, "Samples per step (the notes find 8–32 often best).", 1, 65536
    ),
    "seed": Param("seed", "int", 0, "Seed for weights, shuffling and dropout.", 0, 2**31 - 1),
    "deterministic": Param(
        "deterministic", "bool", False, "Use deterministic kernels (slower; exact repeats)."
    ),
    "device": Param(
        "device",
        "choice",
        "auto",
        "Where to train: auto picks CUDA, then MPS, then CPU.",
        choices=("auto", "cpu", "cuda", "mps"),
    ),
    "processes": Param(
        "processes",
        "int_or_choice",
        1,
        "Data-parallel processes (torchrun; docs/scaling.md). 1: train in one process. N: "
        "train in N processes, one per GPU (on the CPU they share the cores), "
        "training.batch_size being their batch together. auto: one per GPU when there "
        "are several, else 1.",
        1,
        256,
        choices=("auto",),
    ),
    "tensorboard": Param(
        "tensorboard",
        "bool",
        False,
        "Also write TensorBoard logs into the run folder (tensorboard --logdir RUNS): "
        "losses, accuracies, learning rate, gradient norms, histograms and the graph.",
        label="TensorBoard logs",
    ),
    "precision": Param(
        "precision",
        "choice",
        "fp32",
        "Mixed precision (GPU only): bf16 or fp16 autocast.",
        choices=("fp32", "bf16", "fp16"),
    ),
    "loss": Param(
        "loss",
        "choice",
        "auto",
        "auto follows the Output head's task.",
        choices=("auto", "cross_entropy", "binary_cross_entropy", "mse"),
    ),
    "class_weights": Param(
        "class_weights",
        "choice",
        "none",
        "For classes with very different numbers of samples. auto weights each sample's loss "
        "by how rare its class is in the training split (a class with 8× fewer samples "
        "counts 8× more; on average a sample still counts 1), so the big classes cannot "
        "drown out the small ones. The loss shown, validation included, is then the "
        "weighted one. none: every sample counts the same.",
        choices=("none", "auto"),
    ),
    "sampling": Param(
        "sampling",
        "choice",
        "shuffle",
        "How each epoch picks its training samples. shuffle: every sample once, in random "
        "order. balanced: every class equally often, drawing samples of small classes "
        "several times and skipping some of big ones (an epoch keeps its length; "
        "data.shuffle is not used).",
        choices=("shuffle", "balanced"),
    ),
    "validation": {
        "method": Param(
            "method",
            "choice",
            "holdout",
            "How the model is validated. holdout: one run, validated on the data.validation "
            "fraction. kfold: one run per fold, each validated on one fold and trained on the "
            "others (for small data: every sample validates once). bootstrap: one run per "
            "repeat, trained on samples drawn with replacement and validated on those never "
            "drawn. leave_one_out: one run per sample (k-fold with k = n; slow). The runs "
            "are grouped as one experiment with mean ± std and a 95 % confidence interval; "
            "data.test is held out from all of them.",
            choices=("holdout", "kfold", "bootstrap", "leave_one_out"),
        ),
        "folds": Param("folds", "int", 5, "Folds, so runs, of kfold (5 or 10 are usual).", 2, 1000),
        "repeats": Param("repeats", "int", 10, "Runs of bootstrap.", 2, 1000),
    },
    "optimizer": {
        "name": Param(
            "name",
            "choice",
            "adam",
            "The update rule.",
            choices=("sgd", "sgd_momentum", "adagrad", "rmsprop", "adam", "adamw"),
        ),
        "lr": Param("lr", "float", 0.001, "Learning rate.", 0.0, 100.0, label="Learning rate"),
        "momentum": Param(
            "momentum", "float", 0.9, "Momentum (sgd_momentum, rmsprop).", 0.0, 0.999
        ),
        "nesterov": Param("nesterov", "bool", False, "Nesterov momentum (sgd_momentum)."),
        "weight_decay": Param(
            "weight_decay", "float", 0.0, "Decoupled (adamw) or coupled weight decay.", 0.0, 1.0
        ),
        "beta1": Param("beta1", "float", 0.9, "Adam's first-moment decay.", 0.0, 0.9999),
        "beta2": Param("beta2", "float", 0.999, "Adam's second-moment decay.", 0.0, 0.99999),
    },
    "schedule": {
        "name": Param(
            "name",
            "choice",
            "none",
            "How the learning rate changes over training.",
            choices=("none", "step", "cosine", "one_cycle", "plateau"),
        ),
        "step_size": Param("step_size", "int", 10, "Epochs between drops (step).", 1, 100000),
        "gamma": Param("gamma", "float", 0.1, "Factor at each drop (step).", 0.0, 1.0),
        "max_lr": Param("max_lr", "float", 0.01, "Peak learning rate (one_cycle).", 0.0, 100.0),
        "factor": Param(
            "factor", "float", 0.5, "Factor when the monitored value stalls (plateau).", 0.0, 1.0
        ),
        "patience": Param(
            "patience", "int", 3, "Epochs without improvement before reducing (plateau).", 0, 1000
        ),
        "min_lr": Param("min_lr", "float", 1e-6, "Lower bound on the learning rate.", 0.0, 100.0),
        "monitor": Param(
            "monitor", "choice", "val_loss", "What plateau watches.", choices=MONITORS
        ),
    },
    # Only pretrained backbone nodes are affected; without one these change nothing.
    "fine_tuning": {
        "two_phase": Param(
            "two_phase",
            "bool",
            False,
            "First train only the new head with the whole backbone frozen, then unfreeze the "
            "backbone down to its freeze point at a lower learning rate. The untrained head's "
            "large, random gradients then cannot wreck the pretrained weights.",
            label="Two phases",
        ),
        "head_epochs": Param(
            "head_epochs",
            "int",
            3,
            "Epochs of phase 1 (only the head trains) when two phases are on.",
            1,
            100000,
            label="Head-only epochs",
        ),
        "phase2_lr_factor": Param(
            "phase2_lr_factor",
            "float",
            0.1,
            "In phase 2 every learning rate, the head's included, is multiplied by this, so "
            "the pretrained weights move in small steps.",
            0.0001,
            1.0,
            label="Phase 2 learning rate ×",
        ),
        "stage_lr_decay": Param(
            "stage_lr_decay",
            "float",
            1.0,
            "Discriminative learning rates: each backbone stage learns at this fraction of "
            "the rate of the stage above it (the head at the full rate). Early stages hold "
            "generic edges and textures that need little change. 1 = off.",
            0.01,
            1.0,
            label="Stage learning rate decay",
        ),
        "unfreeze_every": Param(
            "unfreeze_every",
            "int",
            0,
            "Gradual unfreezing: start with the backbone frozen and unfreeze one more stage, "
            "from the top down to the freeze point, every this many epochs (0 = off).",
            0,
            100000,
            label="Unfreeze a stage every (epochs)",
        ),
    },
    "regularization": {
        "l1": Param(
            "l1",
            "float",
            0.0,
            "L1 (lasso) penalty λ on weights: pushes weights to exactly 0.",
            0.0,
            10.0,
        ),
        "l2": Param(
            "l2", "float", 0.0, "L2 (ridge) penalty λ on weights: keeps weights small.", 0.0, 10.0
        ),
        "elastic_net": Param(
            "elastic_net", "float", 0.0, "Elastic net λ: mixes L1 and L2.", 0.0, 10.0
        ),
        "elastic_alpha": Param(
            "elastic_alpha", "float", 0.5, "Elastic net mix: 1 = all L1, 0 = all L2.", 0.0, 1.0
        ),
    },
    "clipping": {
        "max_norm": Param(
            "max_norm", "float", 0.0, "Clip the global gradient L2 norm to this (0: off).", 0.0, 1e6
        ),
        "max_value": Param(
            "max_value", "float", 0.0, "Clip each gradient value to ±this (0: off).", 0.0, 1e6
        ),
    },
    "early_stopping": {
        "enabled": Param(
            "enabled", "bool", False, "Stop when the monitored value stops improving."
        ),
        "monitor": Param("monitor", "choice", "val_loss", "What to watch.", choices=MONITORS),
        "patience": Param("patience", "int", 5, "Epochs to wait for an improvement.", 0, 1000),
        "mode": Param(
            "mode",
            "choice",
            "auto",
            "min for losses, max for accuracies; auto knows.",
            choices=MODES,
        ),
        "min_delta": Param(
            "min_delta", "float", 0.0, "Smallest change that counts as improvement.", 0.0, 1e6
        ),
    },
    "checkpoint": {
        "monitor": Param(
            "monitor",
            "choice",
            "val_loss",
            "Keep the weights where this was best.",
            choices=MONITORS,
        ),
        "mode": Param(
            "mode",
            "choice",
            "auto",
            "min for losses, max for accuracies; auto knows.",
            choices=MODES,
        ),
    },
    "monitors": {
        "enabled": Param("enabled", "bool", True, "Record per-layer statistics while training."),
        "gradients_every": Param(
            "gradients_every", "int", 1, "Steps between per-layer gradient norms.", 1, 100000
        ),
        "weights_every": Param(
            "weights_every", "int", 10, "Steps between weight norms and update ratios.", 1, 100000
        ),
        "histograms_every": Param(
            "histograms_every", "int", 50, "Steps between weight/gradient histograms.", 1, 100000
        ),
        "activations_every": Param(
            "activations_every",
            "int",
            25,
            "Steps between activation statistics and gradient flow (forward and "
            "back-propagated RMS per layer).",
            1,
            100000,
        ),
        "budget": Param(
            "budget",
            "float",
            0.02,
            "Most of the step time the probes may take, as a fraction (0: no limit, exact intervals).",
            0.0,
            1.0,
        ),
    },
}


def fill_section(schema: Section, given: Any, where: str) -> dict:
    """Validate a section (recursively) and fill in defaults; ProjectError names the field."""
    if not isinstance(given, dict):
        raise ProjectError(f"Field '{where}' must be an object, got {kind_of(given)}.")
    flat = {k: v for k, v in schema.items() if isinstance(v, Param)}
    nested = {k: v for k, v in schema.items() if isinstance(v, dict)}
    unknown = [k for k in given if k not in schema]
    if unknown:
        raise ProjectError(
            f"Field '{where}.{clip(str(unknown[0]))}' is not a setting (known: {', '.join(schema)})."
        )
    out: dict = {}
    try:
        out.update(
            fill_params(
                tuple(flat.values()),
                {k: v for k, v in given.items() if k in flat},
                f"Field '{where}'",
            )
        )
    except ValueError as err:
        raise ProjectError(
            str(err).replace("Field '" + where + "', field '", "Field '" + where + ".")
        ) from None
    for key, sub in nested.items():
        out[key] = fill_section(sub, given.get(key, {}), f"{where}.{key}")
    return out


def defaults(schema: Section) -> dict:
    return fill_section(schema, {}, "defaults")
