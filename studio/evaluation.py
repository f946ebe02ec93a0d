"""Evaluate a trained run: what the model gets wrong, and how sure it was.

Predictions of a run's weights (best or last checkpoint) on its validation or test split —
the same split training used (same data settings, same seed) — and from them, with
scikit-learn's metrics: the confusion matrix; per-class precision, recall, F1 and support;
accuracy with macro and weighted averages; top-5 accuracy when there are more than five
classes; calibration (expected calibration error over ten confidence bins, the bins being
the reliability diagram); the most confidently wrong samples (highest loss) with where each
came from (a file, a CSV line, a sample number). For regression: residual statistics.

`evaluate_run` writes it all to the run folder (`evaluation-<split>.json`, and PNG pictures
of the matrix and the reliability diagram) so `studio runs` and the window can show it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from studio.data.decode import named
from studio.data.loader import fetch
from studio.errors import StudioError

BINS = 10  # confidence bins of the reliability diagram
WORST = 25  # confidently wrong samples kept
TOP_K = 5


class EvaluationError(StudioError):
    pass


def split_name(split: str) -> str:
    """'val' (the command line's word) or 'validation', 'test': the data's own name."""
    name = {"val": "validation"}.get(split, split)
    if name not in ("validation", "test"):
        raise EvaluationError(f"--split must be 'val' or 'test', not '{split}'.")
    return name


def load_for_evaluation(run, split: str = "validation", checkpoint: str = "best"):
    """(model with the run's weights, prepared data, the split, the weights file): the very
    split training used (same data settings, same seed)."""
    from studio.builder import build_model
    from studio.data.prepare import prepare_data
    from studio.pretrained import project_folder, without_weights
    from studio.weights import load_weights

    split = split_name(split)
    project = run.project()
    weights = run.path / "checkpoints" / f"{checkpoint}.safetensors"
    if not weights.is_file() and checkpoint == "best":
        weights = run.path / "checkpoints" / "last.safetensors"
    if not weights.is_file():
        raise EvaluationError(f"Run '{run.id}' has no '{checkpoint}' weights ({weights}).")
    folder = project_base(run)
    with project_folder(folder), without_weights():
        model = build_model(project, base=folder)
    load_weights(model, weights)
    # A fold of an experiment: the fold's own validation samples.
    data = prepare_data(
        project.data, model.input_shape, project.training["seed"], folder, fold=run.fold()
    )
    part = getattr(data, split)
    if len(part) == 0:
        raise EvaluationError(
            f"Run '{run.id}' has no {split} samples: set data.{split} above 0 and train again."
        )
    return model, data, part, weights


def evaluate_run(
    run, split: str = "validation", checkpoint: str = "best", device: str = "cpu", loaded=None
):
    """Evaluate a run's checkpoint on a split; saves and returns the report (a dict).
    `loaded`: what `load_for_evaluation` returned for the same split and checkpoint, when
    the caller needs the model and data again (a saliency map) and loads them once."""
    model, data, part, weights = loaded or load_for_evaluation(run, split, checkpoint)
    split = split_name(split)
    project = run.project()
    model = model.to(device).eval()
    outputs, targets, kept, unreadable = [], [], [], {}
    with torch.no_grad():
        for start in range(0, len(part), 256):
            # Streamed files that fail to decode are left out and named, not scored as
            # black images the model would be blamed for.
            x, y, problems = fetch(part, slice(start, start + 256))
            unreadable.update(problems)
            failed = {f for f, _ in problems}
            kept += [
                i
                for i in range(start, min(start + 256, len(part)))
                if data.origin(part, i) not in failed
            ]
            if len(y):
                outputs.append(model(x.to(device)).float().cpu())
                targets.append(y)
    if not outputs:
        raise EvaluationError(
            f"Run '{run.id}': none of its {split} samples' files could be decoded "
            f"({'; '.join(f'{named(f)} ({why})' for f, why in list(unreadable.items())[:3])})."
        )
    out, y = torch.cat(outputs), torch.cat(targets)
    report = (
        classification_report(out, y, data.classes, [data.origin(part, i) for i in kept])
        if data.is_classification
        else regression_report(out, y)
    )
    if unreadable:
        report["unreadable"] = [{"file": f, "why": why} for f, why in unreadable.items()]
    report.update(
        {
            "run": run.id,
            "project": project.name,
            "split": split,
            "checkpoint": weights.stem,
            "samples": len(kept),
        }
    )
    save(report, run.path)
    return report


def saliency_picture(
    run, index: int, split: str = "validation", checkpoint: str = "best", loaded=None
):
    """The saliency of one sample of a split, as a PNG in the run folder: (path, method,
    the class it explains, where the sample came from). `loaded`: as for evaluate_run."""
    from studio.evaluation_pictures import saliency_png
    from studio.saliency import saliency

    model, data, part, _ = loaded or load_for_evaluation(run, split, checkpoint)
    if not 0 <= index < len(part):
        raise EvaluationError(
            f"--saliency {index}: the {split} split has samples 0 to {len(part) - 1}."
        )
    heat, method, target = saliency(model, part.x[index])
    split = split_name(split)
    path = run.path / f"saliency-{split}-{index}.png"
    saliency_png(part.x[index].numpy(), heat, path)
    label = data.classes[target] if data.classes else str(target)
    return path, method, label, data.origin(part, index)


def project_base(run) -> Path:
    """Relative data paths are the project's: the folder the project file was trained from,
    recorded in the summary, else the working directory."""
    try:
        summary = json.loads((run.path / "summary.json").read_text(encoding="utf-8"))
        if summary.get("base"):
            return Path(summary["base"])
    except (OSError, ValueError):
        pass
    return Path.cwd()


def classification_report(
    logits: torch.Tensor, y: torch.Tensor, classes: list[str], origins: list[str]
) -> dict:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    if logits.shape[1] == 1:  # one output unit: a binary head (sigmoid)
        p1 = torch.sigmoid(logits[:, 0])
        probs = torch.stack([1 - p1, p1], 1)
    else:
        probs = torch.softmax(logits, 1)
    probs_np = probs.numpy().astype(np.float64)
    truth = y.numpy().astype(int)
    predicted = probs_np.argmax(1)
    confidence = probs_np.max(1)
    labels = list(range(len(classes)))
    matrix = confusion_matrix(truth, predicted, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0
    )
    weights = support / max(1, support.sum())
    loss = -np.log(np.clip(probs_np[np.arange(len(truth)), truth], 1e-12, 1.0))
    wrong = np.flatnonzero(predicted != truth)
    worst = wrong[np.argsort(-loss[wrong], kind="stable")][:WORST]
    report = {
        "task": "classification",
        "classes": list(classes),
        "accuracy": float((predicted == truth).mean()),
        "confusion_matrix": matrix.tolist(),
        "per_class": [
            {
                "class": classes[i],
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in labels
        ],
        "macro": {
            "precision": float(precision.mean()),
            "recall": float(recall.mean()),
            "f1": float(f1.mean()),
        },
        "weighted": {
            "precision": float((precision * weights).sum()),
            "recall": float((recall * weights).sum()),
            "f1": float((f1 * weights).sum()),
        },
        "mean_loss": float(loss.mean()),
        # Every sample's true class, predicted class and confidence: what a confusion
        # matrix cell holds (the window opens a cell's samples from these).
        "predictions": [
            [int(t), int(p), round(float(c), 4)] for t, p, c in zip(truth, predicted, confidence)
        ],
        "top_predictions": [
            [[int(k), round(float(probs_np[i, k]), 4)] for k in np.argsort(-probs_np[i])[:3]]
            for i in range(len(truth))
        ],
        "calibration": calibration(confidence, predicted == truth),
        "confidently_wrong": [
            {
                "sample": int(i),
                "origin": origins[i] if i < len(origins) else f"sample #{i}",
                "true": classes[truth[i]],
                "predicted": classes[predicted[i]],
                "confidence": float(confidence[i]),
                "loss": float(loss[i]),
            }
            for i in worst
        ],
    }
    if len(classes) > TOP_K:
        top = np.argsort(-probs_np, 1)[:, :TOP_K]
        report[f"top{TOP_K}_accuracy"] = float((top == truth[:, None]).any(1).mean())
    return report


def calibration(confidence: np.ndarray, correct: np.ndarray) -> dict:
    """Expected calibration error over equal-width confidence bins, and the bins (the
    reliability diagram: how often the model was right at each confidence)."""
    edges = np.linspace(0.0, 1.0, BINS + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, BINS - 1)
    bins, ece = [], 0.0
    for b in range(BINS):
        inside = which == b
        count = int(inside.sum())
        if count:
            acc, conf = float(correct[inside].mean()), float(confidence[inside].mean())
            ece += count / len(confidence) * abs(acc - conf)
        else:
            acc = conf = None
        bins.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": count,
                "accuracy": acc,
                "confidence": conf,
            }
        )
    return {"ece": float(ece), "bins": bins}


def regression_report(out: torch.Tensor, y: torch.Tensor) -> dict:
    predicted = out.reshape(len(y), -1).squeeze(1).numpy().astype(np.float64)
    truth = y.numpy().astype(np.float64).reshape(predicted.shape)
    residual = predicted - truth
    worst = np.argsort(-np.abs(residual).reshape(len(residual), -1).max(1))[:WORST]
    total = float(((truth - truth.mean()) ** 2).sum())
    return {
        "task": "regression",
        "residuals": {
            "mean": float(residual.mean()),
            "std": float(residual.std()),
            "mae": float(np.abs(residual).mean()),
            "rmse": float(math.sqrt((residual**2).mean())),
            "max_abs": float(np.abs(residual).max()),
            "r2": float(1 - (residual**2).sum() / total) if total > 0 else None,
        },
        "largest_errors": [
            {"sample": int(i), "residual": float(np.abs(residual[i]).max())} for i in worst
        ],
    }


def headline(report: dict) -> str:
    """One phrase for `studio runs`."""
    if report.get("task") == "classification":
        return f"{report['split'][:3]} acc {report['accuracy']:.1%}, F1 {report['macro']['f1']:.3f}"
    return f"{report['split'][:3]} RMSE {report['residuals']['rmse']:.3g}"


def save(report: dict, folder: Path) -> None:
    split = report["split"]
    tmp = folder / f"evaluation-{split}.tmp"
    tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")
    tmp.replace(folder / f"evaluation-{split}.json")
    if report.get("task") == "classification":
        from studio.evaluation_pictures import confusion_png, reliability_png

        confusion_png(report, folder / f"confusion-{split}.png")
        reliability_png(report, folder / f"reliability-{split}.png")


def load(folder: Path) -> dict | None:
    """The newest evaluation saved in a run folder (validation first), if any."""
    for split in ("validation", "test"):
        path = Path(folder) / f"evaluation-{split}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return None
