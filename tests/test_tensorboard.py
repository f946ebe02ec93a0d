"""TensorBoard logs (issue 14): `studio train --tensorboard` writes the run's scalars,
gradient norms, histograms and graph into the run folder, and TensorBoard's own reader
finds them with the values the run kept."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import EXAMPLES

from studio.cli import main

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

CNN = next(p for p in EXAMPLES if p.stem == "digits_cnn")


def read(folder) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def test_a_run_with_tensorboard_writes_what_tensorboard_reads_back(tmp_path, capsys):
    runs = tmp_path / "runs"
    settings = [
        "--set=training.epochs=2",
        "--set=training.monitors.histograms_every=10",
        "--quiet",
    ]
    assert main(["train", str(CNN), "--out", str(runs), "--tensorboard", *settings]) == 0
    [run] = [p.parent for p in runs.glob("*/*/project.json")]
    acc = read(run / "tensorboard")
    tags = acc.Tags()
    # Every step's loss, as the run's own series keeps it.
    series = np.load(run / "series.npz")
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == series["step"].tolist()
    assert np.allclose([e.value for e in loss], series["loss"], rtol=1e-6)
    assert {"train/accuracy", "train/lr", "epoch/val_loss", "epoch/val_accuracy"} <= set(
        tags["scalars"]
    )
    # Each epoch's metrics at the epoch's last step.
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = acc.Scalars("epoch/val_loss")
    assert [e.step for e in val] == [m["step"] for m in metrics]
    assert np.allclose([e.value for e in val], [m["val_loss"] for m in metrics], rtol=1e-6)
    # Per-layer gradient norms, the same numbers as the series.
    layers = series["layers"].tolist()
    first = acc.Scalars(f"gradient_norm/{layers[0]}")
    assert np.allclose([e.value for e in first], series["grad_norms"][: len(first), 0], rtol=1e-6)
    assert any(t.startswith("update_ratio/") for t in tags["scalars"])
    # Weight and gradient histograms at the monitors' rate, and the model's graph.
    weights = [t for t in tags["histograms"] if t.startswith("weights/")]
    assert weights and any(t.startswith("gradients/") for t in tags["histograms"])
    hist = acc.Histograms(weights[0])
    assert len(hist) >= 2 and hist[0].histogram_value.num > 0
    assert tags["graph"]


def test_without_the_option_nothing_is_written(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", str(CNN), "--out", str(runs), "--set=training.epochs=1", "--quiet"]) == 0
    [run] = [p.parent for p in runs.glob("*/*/project.json")]
    assert not (run / "tensorboard").exists()


def test_without_tensorboard_installed_the_run_is_refused_in_one_sentence(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(__import__("sys").modules, "torch.utils.tensorboard", None)
    runs = tmp_path / "runs"
    code = main(["train", str(CNN), "--out", str(runs), "--tensorboard", "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and "pip install tensorboard" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not list(runs.glob("*/*/project.json"))  # nothing made before the refusal
