"""Diagnosis: the studio names vanishing and exploding gradients, saturation, dead units,
a bad learning rate and overfitting, suggests a change in its own controls, and stays
quiet on healthy networks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import EXAMPLES

from studio.cli import main
from studio.projectfile import load_project
from studio.training.diagnosis import Diagnosis
from studio.training.probe import probe

BY_NAME = {p.stem: p for p in EXAMPLES}


def test_the_deep_sigmoid_network_has_vanishing_gradients_within_50_steps():
    report = probe(load_project(BY_NAME["deep_sigmoid_mlp"]), steps=50)
    vanishing = next(f for f in report.findings if f.kind == "vanishing_gradients")
    assert vanishing.step <= 50
    assert vanishing.layers[0] == "dense1" and len(vanishing.layers) >= 10
    assert "sigmoid" in vanishing.message and "Kaiming" in vanishing.remedy
    fix = vanishing.fix["nodes"]["dense1"]
    assert fix["activation"] == "relu" and fix["initializer"]["name"] == "kaiming_normal"
    assert fix["normalization"]["kind"] == "batch"
    ratios = {row["layer"]: row["grad_vs_output"] for row in report.layers}
    assert ratios["dense1"] < 1e-6 < ratios["dense20"]


@pytest.mark.parametrize(
    "name",
    [
        "deep_relu_kaiming_bn",
        "digits_mlp",
        "digits_cnn",
        "residual_cnn",
        "inception_block",
        "digits_lstm",
    ],
)
def test_healthy_examples_raise_no_finding(name):
    report = probe(load_project(BY_NAME[name]), steps=60)
    assert report.findings == []
    assert report.loss_last < report.loss_first


def test_applying_the_suggested_fix_makes_the_deep_network_healthy():
    project = load_project(BY_NAME["deep_sigmoid_mlp"])
    vanishing = next(f for f in probe(project, steps=5).findings if f.kind == "vanishing_gradients")
    for node_id, changes in vanishing.fix["nodes"].items():
        node = project.network.nodes[node_id]
        node.activation = changes["activation"]
        node.initializer = {**changes["initializer"]}
        node.normalization = {**node.normalization, **changes["normalization"]}
    after = probe(project, steps=40)
    assert not any(f.kind == "vanishing_gradients" for f in after.findings)


def test_a_learning_rate_of_10_is_called_out_and_training_stops(capsys):
    code = main(
        ["diagnose", str(BY_NAME["digits_mlp"]), "--set", "training.optimizer.lr=10", "--json"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    kinds = {f["kind"] for f in report["findings"]}
    assert kinds & {"lr_too_high", "exploding_gradients"}
    finding = next(
        f for f in report["findings"] if f["kind"] in ("lr_too_high", "exploding_gradients")
    )
    assert finding["stop"] and finding["fix"]["training"]["optimizer.lr"] < 10


def feed(diagnosis: Diagnosis, events: list[dict]) -> list[str]:
    for event in events:
        diagnosis(event)
    return [f.kind for f in diagnosis.findings]


def test_rising_validation_loss_is_overfitting():
    diagnosis = Diagnosis(load_project(BY_NAME["digits_mlp"]))
    val = [1.0, 0.6, 0.5, 0.55, 0.6, 0.7]
    train = [1.0, 0.5, 0.3, 0.2, 0.1, 0.05]
    kinds = feed(
        diagnosis,
        [
            {
                "type": "epoch",
                "epoch": i + 1,
                "step": 10 * i,
                "train_loss": t,
                "val_loss": v,
                "train_accuracy": 0.9,
                "val_accuracy": 0.8,
            }
            for i, (t, v) in enumerate(zip(train, val))
        ],
    )
    assert kinds == ["overfitting"]
    finding = diagnosis.findings[0]
    assert finding.epoch == 6 and "early stopping" in finding.remedy
    assert finding.fix["training"]["early_stopping.enabled"] is True


def test_a_flat_loss_with_healthy_gradients_is_a_learning_rate_too_low():
    diagnosis = Diagnosis(load_project(BY_NAME["digits_mlp"]))
    kinds = feed(diagnosis, [{"type": "steps", "step": np.arange(200), "loss": np.full(200, 2.30)}])
    assert kinds == ["lr_too_low"]
    assert diagnosis.findings[0].fix["training"]["optimizer.lr"] == pytest.approx(0.01)


def test_saturated_tanh_and_dead_relu_layers_are_named():
    diagnosis = Diagnosis(load_project(BY_NAME["digits_mlp"]))
    event = {
        "type": "activations",
        "step": np.array([1, 2]),
        "layers": ["hidden1", "hidden2"],
        "kinds": ["tanh", "relu"],
        "mean": np.zeros((2, 2)),
        "std": np.ones((2, 2)),
        "saturated_or_dead": np.array([[0.8, 0.7], [0.9, 0.75]]),
    }
    kinds = feed(diagnosis, [event])
    assert sorted(kinds) == ["dead_relu", "saturation"]
    dead = next(f for f in diagnosis.findings if f.kind == "dead_relu")
    assert dead.layers == ["hidden2"] and dead.fix["nodes"]["hidden2"]["activation"] == "leaky_relu"


def test_quiet_when_nothing_is_wrong():
    diagnosis = Diagnosis(load_project(BY_NAME["digits_mlp"]))
    events = [
        {"type": "start", "layers": ["a", "b", "c", "d"], "layer_params": [100, 100, 100, 10]}
    ]
    events += [
        {"type": "gradients", "step": np.array([i]), "norms": np.array([[1.0, 1.1, 0.9, 0.3]])}
        for i in range(30)
    ]
    events += [{"type": "steps", "step": np.arange(300), "loss": np.linspace(2.3, 0.2, 300)}]
    assert feed(diagnosis, events) == []
