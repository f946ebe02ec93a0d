"""Diagnosis: the studio names vanishing and exploding gradients, saturation, dead units,
a bad learning rate, divergence and overfitting, names what in the network causes them,
suggests a change that covers the whole cause, and stays quiet on healthy networks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from support import EXAMPLES, image_folder, mlp_project, resnet18_on_images

from studio.cli import main
from studio.document import Project
from studio.projectfile import load_project
from studio.training.callbacks import Callback
from studio.training.causes import vanishing_cause
from studio.training.diagnosis import Diagnosis, Finding, combined_fix
from studio.training.engine import Trainer
from studio.training.probe import probe
from studio.training.session import train

BY_NAME = {p.stem: p for p in EXAMPLES}


def test_the_deep_sigmoid_network_has_vanishing_gradients_fixed_in_all_20_layers():
    report = probe(load_project(BY_NAME["deep_sigmoid_mlp"]), steps=20)
    vanishing = next(f for f in report.findings if f.kind == "vanishing_gradients")
    assert vanishing.layers[0] == "dense1" and len(vanishing.layers) >= 10
    assert "sigmoid" in vanishing.message and "normal init (std 0.1)" in vanishing.message
    # The fix covers the pattern, not only the flagged layers: all 20 sigmoid layers.
    assert sorted(vanishing.fix["nodes"]) == sorted(f"dense{i}" for i in range(1, 21))
    for changes in vanishing.fix["nodes"].values():
        assert changes["activation"] == "relu"
        assert changes["initializer"]["name"] == "kaiming_normal"
        assert changes["normalization"]["kind"] == "batch"
    rows = {row["layer"]: row for row in report.layers}
    assert rows["dense1"]["grad_vs_output"] < 1e-6 < rows["dense20"]["grad_vs_output"]
    assert rows["dense1"]["backprop_vs_output"] < 1e-6 < rows["dense20"]["backprop_vs_output"]
    # Its saturated layers belong to the same cause: no second, conflicting fix.
    assert "saturation" not in {f.kind for f in report.findings}


def relu30(init: str) -> Project:
    return mlp_project(30, 256, "relu", {"name": init})


@pytest.mark.parametrize(
    "name",
    [
        "deep_relu_kaiming_bn",
        "digits_mlp",
        "digits_cnn",
        "residual_cnn",
        "inception_block",
        "digits_lstm",
        "relu30_kaiming_no_norm",
    ],
)
def test_healthy_networks_raise_no_finding(name):
    project = relu30("kaiming_normal") if name.startswith("relu30") else load_project(BY_NAME[name])
    report = probe(project, steps=60)
    assert report.findings == []
    assert report.loss_last < report.loss_first


def test_a_resnet18_from_scratch_on_generated_images_raises_no_finding(tmp_path):
    folder = image_folder(tmp_path / "images", classes=4, per_class=40, size=32)
    project = resnet18_on_images(folder, classes=4, freeze_point=0)
    project.data.update(validation=0.0)
    project.training.update(batch_size=16)
    report = probe(project, steps=16)
    assert report.findings == []
    rows = {row["layer"]: row for row in report.layers}
    # Every stage reports its signal, and its dead units over whole windows of samples.
    for stage in ("stem", "layer1", "layer2", "layer3", "layer4"):
        row = rows[f"backbone.{stage}"]
        assert row["backprop_rms"] > 0 and row["forward_rms"] > 0
        assert row["dead"] < 0.5 and row["dead_samples"] >= 256


def test_dead_units_from_a_negative_init_are_named_with_their_cause():
    report = probe(load_project(BY_NAME["dead_relu_mlp"]), steps=10)
    (dead,) = report.findings
    assert dead.kind == "dead_relu" and dead.layers == ["dense1", "dense2", "dense3"]
    assert dead.evidence["samples"] >= 256 and dead.evidence["first_step"] == 0
    assert "mean -0.1" in dead.message and "learning rate" not in dead.remedy + dead.message
    assert all(c["initializer"]["name"] == "kaiming_normal" for c in dead.fix["nodes"].values())


def test_dead_units_are_judged_over_windows_of_samples_not_one_batch():
    # 30 Kaiming ReLU layers: some units sit at zero for any 8 samples, few for 256.
    report = probe(relu30("kaiming_normal"), steps=8)
    dead = [row["dead"] for row in report.layers if "dead" in row]
    assert len(dead) == 30 and max(dead) < 0.5
    assert all(row["dead_samples"] >= 256 for row in report.layers if "dead" in row)


def test_units_that_die_while_training_are_dead_only_after_two_silent_windows():
    # Adam at 0.05 kills most ReLU units of a small MLP within a few dozen steps; a deep
    # Kaiming net has half a layer silent for one window now and then, and learns (above).
    report = probe(
        mlp_project(
            4, 128, "relu", {"name": "kaiming_normal"}, optimizer={"name": "adam", "lr": 0.05}
        ),
        steps=60,
    )
    (dead,) = [f for f in report.findings if f.kind == "dead_relu"]
    assert dead.evidence["first_step"] > 0 and dead.evidence["samples"] >= 512
    assert max(dead.evidence["dead_fraction"].values()) > 0.5
    assert "died during training" in dead.message


def test_a_learning_rate_of_1e_6_is_too_low_and_the_fix_raises_it_by_decades(capsys):
    code = main(["diagnose", str(BY_NAME["lr_too_low_sgd"]), "--steps", "220", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    (low,) = report["findings"]
    assert low["kind"] == "lr_too_low" and low["evidence"]["update_ratio"] < 1e-5
    assert low["fix"]["training"]["optimizer.lr"] >= 1e-6 * 100
    assert "lr-find" in low["remedy"]


def test_training_at_1e_6_is_called_a_low_learning_rate_not_underfitting():
    project = load_project(BY_NAME["lr_too_low_sgd"], ["training.epochs=6"])
    kinds = [f.kind for f in train(project, runs_root=None).findings]
    assert kinds == ["lr_too_low"]


def test_a_slow_but_learning_sgd_run_is_not_a_learning_rate_too_low():
    project = load_project(BY_NAME["lr_too_low_sgd"], ["training.optimizer.lr=0.003"])
    assert probe(project, steps=220).findings == []


class Weights(Callback):
    """The model's weights after `steps` updates."""

    def __init__(self, steps: int):
        self.steps, self.state = steps, None

    def on_step_end(self, trainer, step):
        if step + 1 == self.steps:
            self.state = {k: v.clone() for k, v in trainer.model.state_dict().items()}


@pytest.mark.parametrize("lr", ["10", "5"])
def test_divergence_stops_at_the_same_step_every_run_and_keeps_the_last_proven_weights(lr):
    sets = [f"training.optimizer.lr={lr}", "training.deterministic=true"]
    stops, trainers = set(), []
    for emit_hz in (0, 30, 1e6):  # the listener's timing must not matter
        events = []
        trainer = Trainer(load_project(BY_NAME["lr_too_high_sgd"], sets), emit_hz=emit_hz)
        trainer.listeners.append(events.append)
        assert trainer.fit().status == "diverged"
        (diverged,) = [e for e in events if e["type"] == "diverged"]
        stops.add((diverged["step"], diverged["restored_step"]))
        trainers.append(trainer)
    ((step, restored),) = stops
    assert restored < step
    # The weights left in the model are exactly those after `restored` sound updates.
    if restored:
        replay = Weights(restored)
        Trainer(load_project(BY_NAME["lr_too_high_sgd"], sets), callbacks=[replay]).fit()
        expected = replay.state
    else:
        expected = Trainer(load_project(BY_NAME["lr_too_high_sgd"], sets)).model.state_dict()
    for key, value in trainers[0].model.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_every_finding_of_a_run_suggests_the_same_learning_rate():
    diagnosis = Diagnosis(load_project(BY_NAME["digits_mlp"]))
    diagnosis({"type": "start", "layers": ["a", "b", "c", "d"], "layer_params": [10] * 4})
    diagnosis(
        {
            "type": "gradients",
            "step": np.array([4]),
            "norms": np.array([[np.nan, 1.0, 1.0, 1.0]]),
        }
    )
    diagnosis({"type": "steps", "step": np.arange(40), "loss": np.linspace(2, 9, 40)})
    suggested = {f.fix["training"]["optimizer.lr"] for f in diagnosis.findings}
    assert [f.kind for f in diagnosis.findings] == ["exploding_gradients", "lr_too_high"]
    assert len(suggested) == 1


def test_vanishing_advice_never_repeats_what_a_layer_already_has():
    project = mlp_project(4, 16, "relu", {"name": "kaiming_normal"})
    nodes = [project.network.nodes[f"dense{i}"] for i in range(1, 5)]
    cure = vanishing_cause(nodes, 4)
    assert "already use Kaiming" in cure.reason and "Kaiming" not in cure.remedy
    assert cure.changes == {"normalization": {"kind": "batch", "position": "before_activation"}}
    xavier = mlp_project(4, 16, "relu", {"name": "xavier_uniform"})
    cure = vanishing_cause([xavier.network.nodes["dense1"]], 4)
    assert "Xavier init with ReLU halves" in cure.reason
    assert cure.changes["initializer"]["name"] == "kaiming_normal"


def feed(diagnosis: Diagnosis, events: list[dict]) -> list[str]:
    for event in events:
        diagnosis(event)
    return [f.kind for f in diagnosis.findings]


def epochs(train_losses, val_losses):
    return [
        {
            "type": "epoch",
            "epoch": i + 1,
            "step": 10 * (i + 1),
            "train_loss": t,
            "val_loss": v,
            "train_accuracy": 0.9,
            "val_accuracy": 0.8,
        }
        for i, (t, v) in enumerate(zip(train_losses, val_losses))
    ]


def test_a_noisy_climb_of_the_validation_loss_is_overfitting():
    diagnosis = Diagnosis(load_project(BY_NAME["digits_mlp"]))
    val = [1.0, 0.5, 0.40, 0.43, 0.42, 0.47, 0.46, 0.50]
    train_ = [1.0, 0.5, 0.3, 0.2, 0.15, 0.1, 0.08, 0.05]
    assert feed(diagnosis, epochs(train_, val)) == ["overfitting"]
    # Noisy training whose validation loss swings around its training loss is not.
    noisy_train = [1.0, 0.7, 0.6, 0.66, 0.66, 0.52, 0.5, 0.5]
    noisy_val = [0.9, 0.5, 0.33, 0.39, 0.35, 0.49, 0.45, 0.48]
    assert (
        feed(Diagnosis(load_project(BY_NAME["digits_mlp"])), epochs(noisy_train, noisy_val)) == []
    )
    finding = diagnosis.findings[0]
    assert finding.fix["training"]["early_stopping.enabled"] is True
    # With early stopping on, the run stops at the turn: nothing to say.
    guarded = load_project(BY_NAME["digits_mlp"], ["training.early_stopping.enabled=true"])
    assert feed(Diagnosis(guarded), epochs(train_, val)) == []


def test_a_training_loss_that_climbs_back_is_a_learning_rate_too_high():
    diagnosis = Diagnosis(load_project(BY_NAME["digits_mlp"]))
    kinds = feed(diagnosis, epochs([2.0, 1.2, 0.8, 0.7, 0.9, 1.2], [1.0] * 6))
    assert kinds == ["lr_too_high"]
    assert diagnosis.findings[0].fix["training"]["optimizer.lr"] < diagnosis.lr


def test_a_loss_near_zero_that_wobbles_is_neither_too_high_a_rate_nor_overfitting():
    """A network that has learned its data (the loss at 1e-9) wobbles by orders of
    magnitude relative to itself while giving back nothing: seen in the window on a
    separable image folder, where it was called a learning rate too high."""
    train_ = [0.138, 1.7e-9, 2e-9, 1.74e-9, 5e-8, 2.39e-7, 3e-7]
    val = [1e-3, 2e-10, 1e-10, 3e-10, 5e-9, 2e-8, 4e-8]
    assert feed(Diagnosis(load_project(BY_NAME["digits_mlp"])), epochs(train_, val)) == []
    # Seen too, in the dark theme's run of the same data: from 0 back to 2.2e-4.
    again = [0.138, 1e-5, 0.0, 0.0, 1.2e-4, 1.9e-4, 2.18e-4]
    assert feed(Diagnosis(load_project(BY_NAME["digits_mlp"])), epochs(again, [0.0] * 7)) == []
    # The same shapes at the scale of a loss that matters are still found.
    scaled = [2.0, 0.5, 0.45, 0.40, 0.65, 0.9, 1.0]
    found = feed(Diagnosis(load_project(BY_NAME["digits_mlp"])), epochs(scaled, [1.0] * 7))
    assert found == ["lr_too_high"]


def test_a_model_at_chance_is_not_learning_rather_than_too_small():
    # The weights move as in a network that learns (update/weight ~1e-3).
    moving = {"type": "weights", "step": np.arange(6), "update_ratio": np.full((6, 3), 1e-3)}
    stuck = [dict(e, train_accuracy=0.1) for e in epochs([2.3] * 6, [2.3] * 6)]
    # Before anything says how far the weights move, no verdict.
    assert feed(Diagnosis(load_project(BY_NAME["digits_mlp"])), stuck) == []
    diagnosis = Diagnosis(load_project(BY_NAME["digits_mlp"]))
    assert feed(diagnosis, [moving, *stuck]) == ["not_learning"]
    low = Diagnosis(load_project(BY_NAME["digits_mlp"]))
    plateau = [dict(e, train_accuracy=0.45) for e in epochs([1.5] * 6, [1.5] * 6)]
    assert feed(low, [moving, *plateau]) == ["underfitting"]
    assert "learning rate" not in low.findings[0].remedy


def test_combined_fixes_let_the_more_fundamental_finding_win():
    def finding(kind, nodes, training=None):
        return Finding(
            kind=kind,
            severity="warning",
            step=0,
            title=kind,
            message="",
            remedy="",
            fix={"nodes": nodes, "training": training or {}},
        )

    fix = combined_fix(
        [
            finding("saturation", {"d1": {"initializer": {"name": "xavier_normal"}}}),
            finding(
                "vanishing_gradients",
                {"d1": {"initializer": {"name": "kaiming_normal"}, "activation": "relu"}},
            ),
            finding("diverged", {}, {"optimizer.lr": 0.1}),
        ]
    )
    assert fix["nodes"]["d1"] == {"initializer": {"name": "kaiming_normal"}, "activation": "relu"}
    assert fix["training"] == {"optimizer.lr": 0.1}


def test_quiet_when_nothing_is_wrong():
    diagnosis = Diagnosis(load_project(BY_NAME["digits_mlp"]))
    events = [
        {"type": "start", "layers": ["a", "b", "c", "d"], "layer_params": [100, 100, 100, 10]}
    ]
    events += [
        {"type": "gradients", "step": np.array([i]), "norms": np.array([[1.0, 1.1, 0.9, 0.3]])}
        for i in range(30)
    ]
    events += [
        {
            "type": "flow",
            "step": np.array([i]),
            "backprop_rms": np.array([[0.8, 0.9, 1.0, 3.0]]),
            "forward_rms": np.ones((1, 4)),
        }
        for i in range(5)
    ]
    events += [{"type": "steps", "step": np.arange(300), "loss": np.linspace(2.3, 0.2, 300)}]
    assert feed(diagnosis, events) == []
