"""The project's training as a plain PyTorch script (`train.py` of `studio export --pytorch`).

What a careful person would write by hand for the same settings: the data source (digits,
an image folder, a CSV file; its path written out whole), the classes kept, the split, the
scaling, the optimizer and schedule,
regularization, clipping, early stopping, the augmentations torchvision has, the loss and
class weights, keeping the best weights. Settings are written in as constants at the top;
nothing is imported from the studio. Its numbers are the studio's in kind, not bit for bit
(the split and the random draws are its own).
"""

from __future__ import annotations

import json
from pathlib import Path

from studio import __version__
from studio.document import Project

TEMPLATE = '''"""Train {name} as the studio does: {summary}

Written by Studio {version}; it imports nothing from the studio.

    python train.py                      # {epochs} epochs from model.py's initial weights
    python train.py --epochs 3 --weights weights.safetensors
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from torch import nn

INPUT_SHAPE = {input_shape}  # one sample, as model.py takes it
DATA = {data}
TRAINING = {training}
AUGMENTATION = {augmentation}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# -- data ------------------------------------------------------------------------------------
def load_data():
    """(values as float32 in the source's own units, labels, class names, value range)."""
    source = DATA["source"]
    if source == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = digits.images.reshape(-1, 1, 8, 8).astype(np.float32)
        if len(INPUT_SHAPE) == 3 and tuple(INPUT_SHAPE) != (1, 8, 8):
            # The Input wants other images (a pretrained backbone: RGB, more pixels): scale
            # the digits up and repeat the gray channel.
            images = torch.nn.functional.interpolate(
                torch.from_numpy(x), size=INPUT_SHAPE[1:], mode="bilinear", align_corners=False
            )
            x = images.expand(-1, INPUT_SHAPE[0], -1, -1).numpy().copy()
        return x, digits.target.astype(np.int64), [str(c) for c in digits.target_names], (0.0, 16.0)
    if source == "image_folder":
        from torchvision.datasets import ImageFolder

        channels, height, width = INPUT_SHAPE
        mode = "RGB" if channels == 3 else "L"
        folder = ImageFolder(DATA["path"])
        images, labels = [], []
        for path, label in folder.samples:
            with folder.loader(path) as image:  # a PIL image
                image = image.convert(mode).resize((width, height))
                pixels = np.asarray(image, dtype=np.float32).reshape(height, width, channels)
            images.append(pixels.transpose(2, 0, 1))
            labels.append(label)
        return np.stack(images), np.array(labels, dtype=np.int64), list(folder.classes), (0.0, 255.0)
    if source == "csv":
        import csv

        with open(DATA["path"], newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if row]
        header, body = [h.strip() for h in rows[0]], rows[1:]
        label = header.index(DATA["label_column"])
        features = [i for i in range(len(header)) if i != label]
        x = np.array([[float(row[i]) for i in features] for row in body], dtype=np.float32)
        raw = [row[label].strip() for row in body]
        if TASK == "regression":
            return x, np.array([float(v) for v in raw], dtype=np.float32), [], None
        try:  # numbers name their classes in numeric order, as the studio names them
            keys = sorted({{int(float(v)) for v in raw}})
            names, y = [str(k) for k in keys], [keys.index(int(float(v))) for v in raw]
        except ValueError:
            names = sorted(set(raw))
            y = [names.index(v) for v in raw]
        return x, np.array(y, dtype=np.int64), names, None
    raise SystemExit(f"train.py does not read the data source {{source!r}}")


def keep_classes(x, y, classes):
    """data.classes: only these classes (by number), renumbered in the order given."""
    keep = DATA["classes"]
    if not keep or not classes:
        return x, y, classes
    mask = np.isin(y, keep)
    renumber = {{old: new for new, old in enumerate(keep)}}
    return x[mask], np.array([renumber[v] for v in y[mask]], dtype=np.int64), [classes[k] for k in keep]


def split(y: np.ndarray, classify: bool):
    """Train / validation / test indices: shuffled with the seed, stratified by class."""
    rng = np.random.default_rng(TRAINING["seed"])
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if classify else [np.arange(len(y))]
    train, val, test = [], [], []
    for idx in groups:
        idx = rng.permutation(idx)
        n_test = round(len(idx) * DATA["test"])
        n_val = round(len(idx) * DATA["validation"])
        test += idx[:n_test].tolist()
        val += idx[n_test : n_test + n_val].tolist()
        train += idx[n_test + n_val :].tolist()
    return np.array(train), np.array(val), np.array(test)


def scaler(x_train: np.ndarray, value_range):
    """data.scaling, from the training split only: (multiply, add) per channel or feature."""
    kind = DATA["scaling"]
    axes = (0, 2, 3) if x_train.ndim == 4 else (0,)
    shape = (1, -1, 1, 1) if x_train.ndim == 4 else (1, -1)
    if kind == "none":
        return np.float32(1.0), np.float32(0.0)
    if kind == "zscore":
        mean = x_train.mean(axis=axes).reshape(shape)
        std = np.maximum(x_train.std(axis=axes, ddof=1).reshape(shape), 1e-6)
        return 1.0 / std, -mean / std
    lo, hi = value_range if value_range else (x_train.min(axis=0), x_train.max(axis=0))
    span = np.where(np.asarray(hi - lo) > 0, hi - lo, 1.0)
    multiply, add = 1.0 / span, -lo / span
    if kind == "symmetric":
        return multiply * 2, add * 2 - 1
    if kind == "imagenet":
        mean = np.array(IMAGENET_MEAN, dtype=np.float32).reshape(shape)
        std = np.array(IMAGENET_STD, dtype=np.float32).reshape(shape)
        return multiply / std, (add - mean) / std
    return multiply, add


# -- augmentation ------------------------------------------------------------------------------
def augmenter(classes: int):
    """The enabled augmentations torchvision has, applied to each training image; MixUp and
    CutMix to each batch."""
    on = {{k: v for k, v in AUGMENTATION.items() if isinstance(v, dict) and v.get("enabled")}}
    if not on:
        return None
    from torchvision.transforms import v2

    steps = []

    def maybe(transform, p):
        return transform if p >= 1.0 else v2.RandomApply([transform], p=p)

    if "horizontal_flip" in on:
        steps.append(v2.RandomHorizontalFlip(on["horizontal_flip"]["p"]))
    if "vertical_flip" in on:
        steps.append(v2.RandomVerticalFlip(on["vertical_flip"]["p"]))
    if "rotation" in on:
        r = on["rotation"]
        steps.append(maybe(v2.RandomRotation(r["degrees"]), r["p"]))
    if "affine" in on:
        f = on["affine"]
        affine = v2.RandomAffine(
            f["degrees"], (f["translate"], f["translate"]), (f["scale_min"], f["scale_max"]), f["shear"] or None
        )
        steps.append(maybe(affine, f["p"]))
    if "perspective" in on:
        steps.append(v2.RandomPerspective(on["perspective"]["distortion"], on["perspective"]["p"]))
    if "random_resized_crop" in on:
        c = on["random_resized_crop"]
        crop = v2.RandomResizedCrop(
            INPUT_SHAPE[1:], (c["scale_min"], c["scale_max"]), (c["ratio_min"], c["ratio_max"])
        )
        steps.append(maybe(crop, c["p"]))
    side = min(INPUT_SHAPE[1:])
    back = v2.Resize(INPUT_SHAPE[1:], antialias=True)  # the Input's size is fixed
    if "center_crop" in on:  # a zoom in
        c = on["center_crop"]
        size = c["size"] or max(1, round(side * 7 / 8))
        crop = [round(size * d / side) for d in INPUT_SHAPE[1:]]
        steps.append(maybe(v2.Compose([v2.CenterCrop(crop), back]), c["p"]))
    if "pad" in on:  # a zoom out
        p = on["pad"]
        steps.append(maybe(v2.Compose([v2.Pad(p["padding"], p["fill"], p["mode"]), back]), p["p"]))
    if "resize" in on:  # a lower resolution, at the same size
        r = on["resize"]
        shrink = v2.Resize(r["size"] or max(1, side // 2), antialias=True)
        steps.append(maybe(v2.Compose([shrink, back]), r["p"]))
    if "color_jitter" in on:
        j = on["color_jitter"]
        jitter = v2.ColorJitter(j["brightness"], j["contrast"], j["saturation"], j["hue"])
        steps.append(maybe(jitter, j["p"]))
    if "blur" in on:
        b = on["blur"]
        steps.append(maybe(v2.GaussianBlur(b["kernel_size"], (b["sigma_min"], b["sigma_max"])), b["p"]))
    if "noise" in on:
        steps.append(maybe(v2.GaussianNoise(sigma=on["noise"]["std"], clip=False), on["noise"]["p"]))
    if "random_erasing" in on:
        e = on["random_erasing"]
        steps.append(v2.RandomErasing(e["p"], (e["scale_min"], e["scale_max"]), (e["ratio_min"], e["ratio_max"]), 0))
    per_image = v2.Compose(steps) if steps else None
    mixers = []
    if "mixup" in on and classes:
        mixers.append(v2.MixUp(alpha=on["mixup"]["alpha"], num_classes=classes))
    if "cutmix" in on and classes:
        mixers.append(v2.CutMix(alpha=on["cutmix"]["alpha"], num_classes=classes))
    per_batch = v2.RandomChoice(mixers) if mixers else None

    def apply(x, y):
        if per_image is not None and x.dim() == 4:
            x = torch.stack([per_image(image) for image in x])
        if per_batch is not None:
            x, y = per_batch(x, y)
        return x, y

    return apply if (per_image or per_batch) else None


# -- training ----------------------------------------------------------------------------------
def make_optimizer(params):
    o = TRAINING["optimizer"]
    common = {{"lr": o["lr"], "weight_decay": o["weight_decay"]}}
    if o["name"] == "sgd":
        return torch.optim.SGD(params, **common)
    if o["name"] == "sgd_momentum":
        return torch.optim.SGD(params, momentum=o["momentum"], nesterov=o["nesterov"], **common)
    if o["name"] == "adagrad":
        return torch.optim.Adagrad(params, **common)
    if o["name"] == "rmsprop":
        return torch.optim.RMSprop(params, momentum=o["momentum"], **common)
    optimizer = torch.optim.AdamW if o["name"] == "adamw" else torch.optim.Adam
    return optimizer(params, betas=(o["beta1"], o["beta2"]), **common)


def make_schedule(optimizer, epochs: int, steps_per_epoch: int):
    """(scheduler, whether it steps per batch, whether it takes the monitored value)."""
    s = TRAINING["schedule"]
    sched = torch.optim.lr_scheduler
    if s["name"] == "step":
        return sched.StepLR(optimizer, s["step_size"], s["gamma"]), False, False
    if s["name"] == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=s["min_lr"]), False, False
    if s["name"] == "one_cycle":
        total = epochs * steps_per_epoch
        return sched.OneCycleLR(optimizer, max_lr=s["max_lr"], total_steps=total), True, False
    if s["name"] == "plateau":
        mode = "max" if "accuracy" in s["monitor"] else "min"
        plateau = sched.ReduceLROnPlateau(
            optimizer, mode, factor=s["factor"], patience=s["patience"], min_lr=s["min_lr"]
        )
        return plateau, False, True
    return None, False, False


def loss_function(classify: bool, classes: int, y_train: torch.Tensor):
    name = TRAINING["loss"]
    if name == "auto":
        name = "cross_entropy" if classify else "mse"
        if classify and classes == 2 and OUTPUTS == 1:
            name = "binary_cross_entropy"
    if name == "mse":
        mse = nn.MSELoss()
        return name, lambda out, y: mse(out.reshape(y.shape) if out.numel() == y.numel() else out, y.float())
    weight = None
    if TRAINING["class_weights"] == "auto":  # inverse class frequency of the training split
        counts = torch.bincount(y_train, minlength=classes).float().clamp_min(1)
        weight = counts.sum() / (classes * counts)
    if name == "binary_cross_entropy":
        pos = None if weight is None else weight[1:] / weight[:1]
        bce = nn.BCEWithLogitsLoss(pos_weight=pos)
        return name, lambda out, y: bce(out.reshape(-1), y.float().reshape(-1))
    return name, nn.CrossEntropyLoss(weight=weight)


def penalty(model) -> torch.Tensor | float:
    """L1 / L2 / elastic net on the weights (not biases or norms), as the studio adds it."""
    r = TRAINING["regularization"]
    l1 = r["l1"] + r["elastic_net"] * r["elastic_alpha"]
    l2 = r["l2"] + r["elastic_net"] * (1 - r["elastic_alpha"])
    if not l1 and not l2:
        return 0.0
    weights = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    total = 0.0
    if l1:
        total = total + l1 * sum(p.abs().sum() for p in weights)
    if l2:
        total = total + l2 * sum(p.pow(2).sum() for p in weights)
    return total


def evaluate(model, x, y, loss_name, loss_fn, classify, device, batch=512):
    model.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb, yb = x[i : i + batch].to(device), y[i : i + batch].to(device)
            out = model(xb)
            total += float(loss_fn(out, yb)) * len(xb)
            if classify:
                pred = (out.reshape(-1) > 0).long() if loss_name == "binary_cross_entropy" else out.argmax(1)
                correct += int((pred == yb).sum())
    model.train()
    n = max(len(x), 1)
    metrics = {{"loss": total / n}}
    if classify:
        metrics["accuracy"] = correct / n
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=TRAINING["epochs"])
    parser.add_argument("--weights", help="start from these weights (.safetensors)")
    parser.add_argument("--out", default="trained.safetensors", help="where the best weights go")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.manual_seed(TRAINING["seed"])
    device = torch.device(args.device)
    from model import Model  # model.py, beside this file

    x, y, classes, value_range = load_data()
    x, y, classes = keep_classes(x, y, classes)
    classify = bool(classes) and TASK != "regression"
    train_idx, val_idx, test_idx = split(y, classify)
    multiply, add = scaler(x[train_idx], value_range)
    x = ((x * multiply + add).astype(np.float32)).reshape(len(x), *INPUT_SHAPE)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    splits = {{"train": train_idx, "validation": val_idx, "test": test_idx}}
    print(f"{{len(train_idx)}} train, {{len(val_idx)}} validation, {{len(test_idx)}} test samples")

    model = Model().to(device)
    if args.weights:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(args.weights))
    loss_name, loss_fn = loss_function(classify, len(classes), y[train_idx])
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(trainable)
    batch = TRAINING["batch_size"]
    steps = math.ceil(len(train_idx) / batch)
    schedule, per_batch, takes_metric = make_schedule(optimizer, args.epochs, steps)
    augment = augmenter(len(classes))
    clip = TRAINING["clipping"]
    stop = TRAINING["early_stopping"]
    keep = TRAINING["checkpoint"]
    best, best_epoch, waited, stop_best = None, 0, 0, None
    generator = torch.Generator().manual_seed(TRAINING["seed"])

    for epoch in range(1, args.epochs + 1):
        order = train_idx[torch.randperm(len(train_idx), generator=generator).numpy()]
        seen, total = 0, 0.0
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            xb, yb = x[idx], y[idx]
            if augment is not None:
                xb, yb = augment(xb, yb)
            xb, yb = xb.to(device), yb.to(device)
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            (loss + penalty(model)).backward()
            if clip["max_norm"]:
                nn.utils.clip_grad_norm_(trainable, clip["max_norm"])
            if clip["max_value"]:
                nn.utils.clip_grad_value_(trainable, clip["max_value"])
            optimizer.step()
            if schedule is not None and per_batch:
                schedule.step()
            seen += len(idx)
            total += loss.item() * len(idx)
        metrics = {{"train_loss": total / max(seen, 1)}}
        for name in ("validation", "test") if epoch == args.epochs else ("validation",):
            idx = splits[name]
            if len(idx):
                prefix = "val" if name == "validation" else "test"
                found = evaluate(model, x[idx], y[idx], loss_name, loss_fn, classify, device)
                metrics.update({{f"{{prefix}}_{{k}}": v for k, v in found.items()}})
        print(f"epoch {{epoch}}/{{args.epochs}}  " + "  ".join(f"{{k}} {{v:.4f}}" for k, v in metrics.items()))
        if schedule is not None and takes_metric:
            schedule.step(metrics.get(TRAINING["schedule"]["monitor"], metrics["train_loss"]))
        elif schedule is not None and not per_batch:
            schedule.step()
        # The best weights by the checkpoint's monitor are kept.
        value = metrics.get(keep["monitor"], metrics["train_loss"])
        better = "accuracy" in keep["monitor"] if keep["mode"] == "auto" else keep["mode"] == "max"
        if best is None or (value > best if better else value < best):
            best, best_epoch = value, epoch
            from safetensors.torch import save_file

            save_file({{k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}}, args.out)
        if stop["enabled"]:
            value = metrics.get(stop["monitor"], metrics["train_loss"])
            higher = "accuracy" in stop["monitor"] if stop["mode"] == "auto" else stop["mode"] == "max"
            improved = stop_best is None or (
                value > stop_best + stop["min_delta"] if higher else value < stop_best - stop["min_delta"]
            )
            stop_best, waited = (value, 0) if improved else (stop_best, waited + 1)
            if waited > stop["patience"]:
                print(f"early stopping: {{stop['monitor']}} has not improved for {{waited}} epochs")
                break
    if best is None:
        print("no epochs trained; nothing written")
    else:
        print(f"best {{keep['monitor']}} {{best:.4f}} at epoch {{best_epoch}}; weights in {{args.out}}")


OUTPUTS = {outputs}
TASK = {task!r}  # the Output node's: multiclass, binary or regression

if __name__ == "__main__":
    main()
'''


def train_code(
    project: Project, outputs: int = 0, input_shape: tuple = (), base: Path = Path(".")
) -> str:
    """train.py for `project`: `outputs` units in its head, samples of `input_shape`,
    relative data paths starting at `base` (the project file's folder)."""
    data = {
        k: project.data.get(k)
        for k in ("source", "path", "label_column", "classes", "scaling", "validation", "test")
    }
    if data["path"]:  # relative to the project file: written out whole, to run from anywhere
        data["path"] = str((Path(base) / data["path"]).resolve())
    task = "multiclass"
    for node in project.network.nodes.values():
        if node.type == "Output":
            task = node.params.get("task", "multiclass")
    training = {
        k: project.training[k]
        for k in (
            "epochs",
            "batch_size",
            "seed",
            "loss",
            "class_weights",
            "optimizer",
            "schedule",
            "regularization",
            "clipping",
            "early_stopping",
            "checkpoint",
        )
    }
    augmentation = project.data.get("augmentation") or {}
    on = [k for k, v in augmentation.items() if isinstance(v, dict) and v.get("enabled")]
    o = project.training["optimizer"]
    summary = (
        f"{project.data['source']} data, {o['name']} at lr {o['lr']:g}, "
        f"batch {project.training['batch_size']}, {project.training['epochs']} epochs"
        + (f", augmented ({', '.join(on)})" if on else "")
        + "."
    )
    return TEMPLATE.format(
        name=project.name,
        summary=summary,
        version=__version__,
        epochs=project.training["epochs"],
        data=_literal(data),
        training=_literal(training),
        augmentation=_literal(augmentation),
        outputs=outputs,
        input_shape=tuple(int(d) for d in input_shape),
        task=task,
    )


def _literal(value) -> str:
    """A settings dict as a Python literal (JSON's true/false/null as Python's)."""
    text = json.dumps(value, indent=4)
    return (
        text.replace(": true", ": True").replace(": false", ": False").replace(": null", ": None")
    )
