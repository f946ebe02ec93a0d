"""Evaluation of a trained run (issue 12, part 1): the numbers are the ones a hand count
gives, on the very split training used."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from support import EXAMPLES

from studio.builder import build_model
from studio.cli import main
from studio.data.prepare import prepare_data
from studio.evaluation import calibration, classification_report, evaluate_run, regression_report
from studio.projectfile import load_project
from studio.training.session import train
from studio.weights import load_weights

MLP = next(p for p in EXAMPLES if p.stem == "digits_mlp")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    outcome = train(load_project(MLP, ["training.epochs=2"]), runs_root=runs)
    return runs, outcome


def by_hand(outcome):
    """The validation split's predictions and per-sample losses, computed here."""
    project = outcome.run.project()
    model = build_model(project)
    load_weights(model, outcome.run.path / "checkpoints" / "best.safetensors")
    data = prepare_data(project.data, model.input_shape, project.training["seed"])
    with torch.no_grad():
        logits = model.eval()(data.validation.x)
    loss = torch.nn.functional.cross_entropy(logits, data.validation.y, reduction="none")
    return data, logits.argmax(1).numpy(), data.validation.y.numpy(), loss.numpy()


def test_the_matrix_and_the_worst_samples_are_a_hand_count(trained):
    runs, outcome = trained
    report = evaluate_run(outcome.run)
    data, predicted, truth, loss = by_hand(outcome)
    matrix = np.array(report["confusion_matrix"])
    assert matrix.sum() == len(data.validation) == report["samples"]
    expected = np.zeros_like(matrix)
    for t, p in zip(truth, predicted):
        expected[t, p] += 1
    assert np.array_equal(matrix, expected)
    assert report["accuracy"] == pytest.approx((predicted == truth).mean())
    # The same numbers training reported for its best epoch: the same split, the same weights.
    best = max(h["val_accuracy"] for h in outcome.result.history)
    assert report["accuracy"] == pytest.approx(best)
    wrong = np.flatnonzero(predicted != truth)
    worst = wrong[np.argsort(-loss[wrong])][: len(report["confidently_wrong"])]
    assert [w["sample"] for w in report["confidently_wrong"]] == worst.tolist()
    assert report["confidently_wrong"][0]["loss"] == pytest.approx(loss[worst[0]], rel=1e-4)
    first = report["confidently_wrong"][0]
    assert first["origin"] == data.origin(data.validation, worst[0]).strip()
    assert first["origin"].startswith("digits sample #")
    per_class = {c["class"]: c for c in report["per_class"]}
    zero = per_class["0"]
    assert zero["support"] == (truth == 0).sum()
    assert zero["recall"] == pytest.approx(
        ((predicted == 0) & (truth == 0)).sum() / (truth == 0).sum()
    )
    saved = json.loads((outcome.run.path / "evaluation-validation.json").read_text())
    assert saved["confusion_matrix"] == report["confusion_matrix"]
    assert (outcome.run.path / "confusion-validation.png").stat().st_size > 0


def test_the_command_line_prints_the_report_and_runs_shows_its_headline(trained, capsys):
    runs, outcome = trained
    assert main(["evaluate", outcome.run.id, "--out", str(runs), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "classification" and "top5_accuracy" in report
    assert main(["evaluate", str(MLP), "--out", str(runs)]) == 0  # a project: its newest run
    text = capsys.readouterr().out
    assert "Confusion matrix" in text and "Most confidently wrong" in text
    assert main(["runs", "--out", str(runs)]) == 0
    assert f"val acc {report['accuracy']:.1%}" in capsys.readouterr().out
    assert main(["evaluate", "nope", "--out", str(runs)]) != 0
    assert "unexpected" not in capsys.readouterr().err


def test_calibration_error_is_the_gap_between_confidence_and_accuracy():
    confidence = np.full(100, 0.9)
    correct = np.arange(100) < 50
    result = calibration(confidence, correct)
    assert result["ece"] == pytest.approx(0.4)
    (full,) = [b for b in result["bins"] if b["count"]]
    assert full["count"] == 100 and full["accuracy"] == 0.5


def test_a_sure_wrong_answer_ranks_above_an_unsure_one():
    logits = torch.tensor([[5.0, 0.0], [0.2, 0.0], [0.0, 3.0]])
    report = classification_report(logits, torch.tensor([1, 1, 1]), ["a", "b"], ["x", "y", "z"])
    assert [w["origin"] for w in report["confidently_wrong"]] == ["x", "y"]
    assert report["confusion_matrix"] == [[0, 0], [2, 1]]


def test_regression_reports_its_residuals():
    out = torch.tensor([[1.0], [2.0], [5.0]])
    report = regression_report(out, torch.tensor([1.0, 2.0, 3.0]))
    assert report["residuals"]["max_abs"] == pytest.approx(2.0)
    assert report["residuals"]["rmse"] == pytest.approx((4 / 3) ** 0.5)
    assert report["largest_errors"][0]["sample"] == 2


def test_the_saliency_of_a_sample_is_pictured_in_the_run_folder(trained, capsys):
    runs, outcome = trained
    assert main(["evaluate", outcome.run.id, "--out", str(runs), "--saliency", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    sal = report["saliency"]
    assert sal["method"] == "integrated_gradients"  # an MLP: no convolution to look into
    assert sal["origin"].startswith("digits sample #")
    from PIL import Image

    assert Image.open(sal["picture"]).size[0] > 0
    assert main(["evaluate", outcome.run.id, "--out", str(runs), "--saliency", "100000"]) != 0
    err = capsys.readouterr().err
    assert "--saliency 100000" in err and "unexpected" not in err
