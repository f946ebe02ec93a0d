"""The training engine: it learns, monitors do not change the math, it resumes exactly,
it stops cleanly on divergence, and its settings do what they say."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import EXAMPLES, train_stopped_and_resumed

from studio.projectfile import load_project
from studio.training.callbacks import ReduceLROnPlateau
from studio.training.engine import Trainer
from studio.training.runs import Run, list_runs
from studio.training.session import train
from studio.training.setup import TrainingError, pick_device
from studio.weights import read_state_dict

MLP = next(p for p in EXAMPLES if p.stem == "digits_mlp")
FAST = ["training.epochs=2", "training.batch_size=64"]


def losses_of(project, **kwargs):
    losses = []

    def listen(event):
        if event["type"] == "steps":
            losses.extend(event["loss"].tolist())

    result = Trainer(project, listeners=[listen], **kwargs).fit()
    return np.array(losses), result


def test_the_mlp_learns_the_digits():
    _, result = losses_of(load_project(MLP, ["training.epochs=4"]))
    assert result.status == "completed"
    assert result.history[-1]["val_accuracy"] > 0.9
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


@pytest.mark.parametrize("example", ["digits_mlp", "digits_cnn", "digits_lstm"])
def test_monitors_do_not_change_the_losses(example):
    path = next(p for p in EXAMPLES if p.stem == example)
    every_step = [
        "training.monitors.budget=0",
        "training.monitors.activations_every=1",
        "training.monitors.weights_every=1",
        "training.monitors.histograms_every=5",
        "training.clipping.max_norm=5",
        "training.regularization.elastic_net=0.0001",
    ]
    on, _ = losses_of(load_project(path, [*FAST, *every_step]))
    off, _ = losses_of(load_project(path, [*FAST, *every_step, "training.monitors.enabled=false"]))
    assert len(on) == len(off) > 20
    assert np.array_equal(on, off)


def test_monitors_emit_per_layer_numbers_as_plain_arrays():
    events = {}
    project = load_project(
        MLP, [*FAST, "training.monitors.budget=0", "training.monitors.activations_every=3"]
    )
    Trainer(project, listeners=[lambda e: events.setdefault(e["type"], []).append(e)]).fit()
    start = events["start"][0]
    assert start["layers"] == ["hidden1", "hidden2", "classes"]
    grads = np.concatenate([e["norms"] for e in events["gradients"]])
    assert grads.shape == (start["total_steps"], 3) and np.all(grads > 0)
    weights = events["weights"][0]
    assert weights["norms"].shape[1] == 3 and np.all(weights["update_ratio"] > 0)
    hist = events["histograms"][0]["weights"]["hidden1"]
    assert hist[0].sum() == 64 * 128 and len(hist[1]) == len(hist[0]) + 1
    acts = events["activations"][0]
    assert acts["layers"] == ["hidden1", "hidden2"] and acts["kinds"] == ["relu", "relu"]
    for event in (e for kind in events.values() for e in kind):
        for value in event.values():
            assert not isinstance(value, torch.Tensor), f"{event['type']} carries a tensor"


def test_gradient_norms_match_torch_and_clipping_uses_them():
    project = load_project(
        MLP, ["training.epochs=1", "training.clipping.max_norm=0.5", "training.monitors.budget=0"]
    )
    trainer = Trainer(project)
    x, y = next(trainer.batches.epoch())
    trainer.model(x).sum()  # warm up lazy state
    loss = trainer.loss_fn(trainer.model(x), y)
    trainer.optimizer.zero_grad()
    loss.backward()
    grads, norms = trainer.monitors.gradient_norms()
    expected = [torch.linalg.vector_norm(g) for g in grads]
    assert all(torch.equal(a, b) for a, b in zip(norms, expected))
    before = [g.clone() for g in grads]
    total = torch.linalg.vector_norm(torch.stack(norms))
    torch.nn.utils.clip_grads_with_norm_(trainer.monitors.params, 0.5, total)
    clipped = [g.clone() for g in grads]
    for g, b in zip(grads, before):
        g.copy_(b)
    torch.nn.utils.clip_grad_norm_(trainer.monitors.params, 0.5)
    assert all(torch.equal(a, b) for a, b in zip(clipped, grads))


def test_stop_and_resume_give_the_same_weights_as_one_run(tmp_path):
    sets = [
        "training.epochs=3",
        "training.deterministic=true",
        "training.schedule.name=one_cycle",
        "training.batch_size=64",
    ]
    whole, part, resumed = train_stopped_and_resumed(MLP, sets, tmp_path)  # mid-epoch 2
    assert part.result.status == "stopped" and 0 < part.result.steps < whole.result.steps
    assert resumed.result.status == "completed" and resumed.result.steps == whole.result.steps
    a = read_state_dict(whole.run.path / "checkpoints" / "last.safetensors")
    b = read_state_dict(resumed.run.path / "checkpoints" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["val_loss"] for h in whole.result.history] == [
        h["val_loss"] for h in resumed.result.history
    ]


def test_a_nan_loss_stops_within_a_step_and_keeps_finite_weights(tmp_path):
    project = load_project(
        MLP, ["training.optimizer.name=sgd", "training.optimizer.lr=100", "training.epochs=3"]
    )
    outcome = train(project, runs_root=tmp_path)
    assert outcome.result.status == "diverged"
    assert "diverged" in {f.kind for f in outcome.findings}
    weights = read_state_dict(outcome.run.path / "checkpoints" / "last.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert outcome.result.steps < 3 * 23


def test_early_stopping_stops_and_says_why():
    project = load_project(
        MLP,
        [
            "training.epochs=40",
            "training.early_stopping.enabled=true",
            "training.early_stopping.patience=0",
            "training.early_stopping.min_delta=10",
        ],
    )
    _, result = losses_of(project)
    assert result.status == "early_stopped" and result.epochs == 2
    assert "has not improved" in result.reason


def test_reduce_on_plateau_lowers_the_learning_rate_when_the_metric_stalls():
    project = load_project(
        MLP,
        [
            "training.schedule.name=plateau",
            "training.schedule.patience=1",
            "training.schedule.factor=0.5",
            "training.schedule.min_lr=0.0002",
        ],
    )
    trainer = Trainer(project)
    plateau = next(c for c in trainer.callbacks if isinstance(c, ReduceLROnPlateau))
    lrs = []
    for epoch, val_loss in enumerate([1.0, 0.9, 0.95, 0.92, 0.91, 0.93, 0.94, 0.95, 0.96]):
        plateau.on_epoch_end(trainer, epoch, {"val_loss": val_loss})
        lrs.append(trainer.lr)
    # Two epochs without beating 0.9 → halve; again → halve; then the floor holds.
    assert lrs == [0.001, 0.001, 0.001, 0.0005, 0.0005, 0.00025, 0.00025, 0.0002, 0.0002]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("step", lambda lrs: lrs[1] == pytest.approx(lrs[0] * 0.1)),
        ("cosine", lambda lrs: lrs[0] > lrs[1] > lrs[2]),
        ("one_cycle", lambda lrs: len(set(lrs)) == 3),
    ],
)
def test_learning_rate_schedules(name, expected):
    project = load_project(
        MLP,
        [
            *FAST,
            "training.epochs=3",
            f"training.schedule.name={name}",
            "training.schedule.step_size=1",
        ],
    )
    _, result = losses_of(project)
    assert expected([h["lr"] for h in result.history])


@pytest.mark.parametrize(
    "optimizer", ["sgd", "sgd_momentum", "adagrad", "rmsprop", "adam", "adamw"]
)
def test_every_optimizer_lowers_the_loss(optimizer):
    lr = {"sgd": 0.1, "sgd_momentum": 0.05, "adagrad": 0.05}.get(optimizer, 0.002)
    project = load_project(
        MLP, [*FAST, f"training.optimizer.name={optimizer}", f"training.optimizer.lr={lr}"]
    )
    losses, _ = losses_of(project)
    assert losses[-5:].mean() < 0.7 * losses[:5].mean()


def test_l1_regularization_drives_weights_toward_zero():
    def weight_sum(l1):
        project = load_project(MLP, ["training.epochs=4", f"training.regularization.l1={l1}"])
        trainer = Trainer(project)
        trainer.fit()
        return float(trainer.model.layers["hidden1"].layer.weight.detach().abs().sum())

    assert weight_sum(0.01) < 0.6 * weight_sum(0.0)


def test_clipping_by_value_bounds_every_gradient():
    project = load_project(MLP, ["training.epochs=1", "training.clipping.max_value=0.001"])
    trainer = Trainer(project)
    trainer.fit()
    assert all(p.grad.abs().max() <= 0.001 for p in trainer.model.parameters())


def test_a_head_that_does_not_match_the_classes_says_what_to_set():
    project = load_project(MLP, ["data.classes=[0, 1, 2]"])
    with pytest.raises(
        TrainingError,
        match="'classes' gives 10 values but the data has 3 classes; set its units to 3",
    ):
        Trainer(project)


def test_asking_for_a_missing_gpu_is_one_sentence():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(TrainingError, match="no CUDA GPU"):
        pick_device("cuda")


def test_runs_are_kept_and_indexed(tmp_path):
    for epochs in (1, 2):
        train(load_project(MLP, [f"training.epochs={epochs}"]), runs_root=tmp_path)
    rows = list_runs(tmp_path)
    assert [r["epochs"] for r in rows] == [1, 2]
    assert all(r["status"] == "completed" and 0 < r["best_val_accuracy"] <= 1 for r in rows)
    folder = Run.open(tmp_path, "last").path
    for name in (
        "project.json",
        "metrics.jsonl",
        "summary.json",
        "findings.json",
        "checkpoints/best.safetensors",
        "checkpoints/last.state.pt",
    ):
        assert (folder / name).is_file(), name
    assert len((folder / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_run_keeps_its_series_for_overlays(tmp_path):
    outcome = train(load_project(MLP, ["training.epochs=1"]), runs_root=tmp_path)
    series = Run.open(tmp_path, outcome.run.id).series()
    assert list(series["layers"]) == ["hidden1", "hidden2", "classes"]
    assert len(series["loss"]) == outcome.result.steps == len(series["step"])
    assert series["grad_norms"].shape[1] == 3 and len(series["grad_step"]) == len(
        series["grad_norms"]
    )
    assert Run.open(tmp_path, "last").metrics()[0]["epoch"] == 1


CNN = next(p for p in EXAMPLES if p.stem == "digits_cnn")


@pytest.mark.parametrize("bad_batch", [5, 44])  # mid-epoch, and the epoch's last batch
@pytest.mark.parametrize("late", [False, True], ids=["cpu", "late_as_on_a_gpu"])
def test_a_nan_batch_stops_training_and_leaves_a_model_that_works(bad_batch, late):
    from dataclasses import replace

    from studio.data.prepare import Split, prepare_data

    project = load_project(CNN, ["training.epochs=2", "data.shuffle=false"])
    data = prepare_data(project.data, (1, 8, 8), seed=0)
    x = data.train.x.clone()
    x[32 * bad_batch + 3] = float("nan")  # one bad sample: that step's loss is NaN
    trainer = Trainer(project, data=replace(data, train=Split(x, data.train.y)))
    if late:
        trainer.check_each_loss = False  # read losses only at flushes, as on a GPU
        trainer.emit_interval = 10.0  # ... and late: a flush only when the epoch ends
    events = []
    trainer.listeners.append(events.append)
    result = trainer.fit()
    assert result.status == "diverged" and result.epochs == 0
    (diverged,) = [e for e in events if e["type"] == "diverged"]
    assert diverged["step"] == bad_batch
    assert "were restored" in result.reason
    # The weights (and BatchNorm statistics) are ones that gave finite losses: the model works.
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert all(torch.isfinite(b).all() for b in trainer.model.buffers() if b.is_floating_point())
    assert np.isfinite(trainer.evaluate(data.validation)["loss"])
