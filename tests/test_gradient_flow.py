"""Gradient flow per layer: the back-propagated signal (the loss gradient with respect to
each layer's output) beside the forward signal, as in Glorot & Bengio (2010, Fig. 7) and
He et al. (2015); and monitors whose time budget counts what probes really cost."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import mlp_project

from studio.cli import main
from studio.projectfile import save_project
from studio.training.engine import Trainer
from studio.training.monitors import QUIET_EVERY, Schedule, StepClock
from studio.training.probe import probe
from studio.training.session import train


def backprop_at_start(project, tmp_path, capsys) -> np.ndarray:
    """`studio diagnose --steps 0 --json`: the profile before any update."""
    path = tmp_path / f"{project.name}.json"
    save_project(project, path)
    assert main(["diagnose", str(path), "--steps", "0", "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    return np.array([row["backprop_rms"] for row in layers if row["layer"].startswith("dense")])


@pytest.mark.parametrize("seed", [0, 1])
def test_glorot_and_bengio_fig7_standard_init_shrinks_xavier_keeps(seed, tmp_path, capsys):
    # Five tanh layers of 256: PyTorch's default init is Glorot's "standard" one,
    # U[-1/sqrt(fan_in), 1/sqrt(fan_in)]; xavier_uniform is their "normalized" one.
    standard = mlp_project(5, 256, "tanh", {"name": "default"}, seed=seed)
    xavier = mlp_project(5, 256, "tanh", {"name": "xavier_uniform"}, seed=seed)
    shrinking = backprop_at_start(standard, tmp_path, capsys)
    assert len(shrinking) == 5 and np.all(np.diff(shrinking) > 0)  # grows toward the output
    assert shrinking[-1] / shrinking[0] >= 3
    flat = backprop_at_start(xavier, tmp_path, capsys)
    centre = np.exp(np.mean(np.log(flat)))
    assert np.all(np.abs(flat / centre - 1) <= 0.3), flat / centre


def test_he_et_al_xavier_vanishes_in_30_relu_layers_kaiming_learns():
    xavier = probe(mlp_project(30, 128, "relu", {"name": "xavier_normal"}), steps=5)
    (vanishing,) = xavier.findings
    assert vanishing.kind == "vanishing_gradients"
    assert "Xavier init with ReLU halves the signal's variance" in vanishing.message
    assert len(vanishing.fix["nodes"]) == 30
    assert {c["initializer"]["name"] for c in vanishing.fix["nodes"].values()} == {"kaiming_normal"}
    rows = {row["layer"]: row for row in xavier.layers}
    assert rows["dense1"]["backprop_rms"] < 1e-3 * rows["dense30"]["backprop_rms"]

    kaiming = mlp_project(30, 128, "relu", {"name": "kaiming_normal"}, epochs=3)
    kaiming.training["optimizer"]["lr"] = 1e-4
    assert probe(kaiming, steps=30).findings == []
    outcome = train(kaiming, runs_root=None)
    assert outcome.findings == []
    # Measured: 0.78–0.81 over seeds 0–1 and one or two intra-op threads (the sums' order,
    # and so the last digits, follow the thread count); Xavier's 30 layers reach 0.14–0.19.
    assert outcome.result.best["metrics"]["val_accuracy"] > 0.7


def test_training_streams_the_flow_from_step_0():
    events = []
    project = mlp_project(3, 32, "relu", {"name": "kaiming_normal"}, epochs=1)
    Trainer(project, listeners=[events.append]).fit()
    flows = [e for e in events if e["type"] == "flow"]
    assert flows and flows[0]["step"][0] == 0
    assert flows[0]["layers"] == ["dense1", "dense2", "dense3", "classes"]
    back = np.concatenate([e["backprop_rms"] for e in flows])
    forward = np.concatenate([e["forward_rms"] for e in flows])
    assert back.shape == forward.shape and back.shape[1] == 4
    assert np.all(back > 0) and np.all(forward > 0)


def test_a_probe_is_charged_what_it_adds_to_a_step_not_what_its_timer_saw():
    clock = StepClock()
    for _ in range(20):
        clock.plain_step(0.010)
    # A probe whose own code took 1 ms but whose hooks slowed the step by 6 ms.
    shares = clock.shares(0.016, {"activations": 0.001})
    assert shares["activations"] == pytest.approx(0.006)
    # Two probes in one step share the excess by their timers; never below a timer.
    shares = clock.shares(0.013, {"gradients": 0.001, "weights": 0.002})
    assert shares == pytest.approx({"gradients": 0.001, "weights": 0.002})
    # A machine hiccup in a plain step moves the yardstick only a little.
    clock.plain_step(1.0)
    assert clock.plain < 0.013
    schedule = Schedule(every=1, budget=0.01)
    schedule.ran(step=0, seconds=0.006, step_seconds=0.010)
    assert schedule.next_step == 4  # one sample may be a warm-up: measured again soon
    schedule.ran(step=4, seconds=0.006, step_seconds=0.010)
    assert schedule.next_step == 4 + 60  # 6 ms per run at 1% of 10 ms steps: every 60 steps
    # The process descheduled for 0.5 s mid-probe: the next run is not pushed 5,000 steps
    # away (that starved the diagnosis of a busy machine); a lasting rise still counts.
    schedule.ran(step=64, seconds=0.5, step_seconds=0.010)
    assert schedule.next_step <= 64 + 2 * 60
    for step in range(200, 2000, 100):
        schedule.ran(step=step, seconds=0.5, step_seconds=0.010)
    assert schedule.next_step > 1900 + 1000
    # The update ratios the diagnosis needs are measured at least every WEIGHTS_MAX_GAP
    # steps, however costly the budget says they are.
    from studio.training.monitors import WEIGHTS_MAX_GAP

    capped = Schedule(every=10, budget=0.01, max_gap=WEIGHTS_MAX_GAP)
    for step in (0, 4, 40):
        capped.ran(step=step, seconds=0.5, step_seconds=0.010)
    assert capped.next_step == 40 + WEIGHTS_MAX_GAP


def test_with_a_budget_some_steps_stay_free_of_probes_to_measure_a_plain_step():
    project = mlp_project(2, 16, "relu", {"name": "kaiming_normal"}, epochs=3)
    project.training["monitors"].update(budget=1.0, gradients_every=1)  # every step fits
    events = []
    Trainer(project, listeners=[events.append]).fit()
    probed = np.concatenate([e["step"] for e in events if e["type"] == "gradients"])
    missing = sorted(set(range(int(probed.max()) + 1)) - set(probed.tolist()))
    assert missing and np.all(np.diff([-1, *missing]) <= QUIET_EVERY)


def test_copying_a_probes_numbers_to_the_host_counts_against_its_budget(monkeypatch):
    """A probe's numbers are copied over at flushes, outside the steps the budget times;
    that copy is the probe's cost too, charged to its next run."""
    import time
    from types import SimpleNamespace

    import torch.nn.functional as F

    from studio.training import monitors as monitors_module
    from studio.training.monitors import Probing

    project = mlp_project(2, 16, "relu", {"name": "kaiming_normal"})
    project.training["monitors"].update(budget=0.5, histograms_every=1)
    trainer = Trainer(project)
    model, monitors = trainer.model, trainer.monitors
    probing, seen = Probing(monitors), SimpleNamespace(step_seconds=0.001)
    x, y = trainer.data.train.x[:32], trainer.data.train.y[:32]

    def step(at: int) -> None:
        probing.on_train_batch_start(seen, at)
        loss = F.cross_entropy(model(x), y)
        probing.on_before_backward(seen, at, loss.detach())
        model.zero_grad()
        loss.backward()
        probing.on_after_backward(seen, at)
        probing.on_before_optimizer_step(seen, at)
        probing.on_after_optimizer_step(seen, at)
        probing.on_step_end(seen, at)

    step(0)  # every probe runs at step 0, histograms included
    copies, real = [], monitors_module._host_hist

    def slow_copy(pair):
        copies.append(1)
        time.sleep(0.02)
        return real(pair)

    monkeypatch.setattr(monitors_module, "_host_hist", slow_copy)
    spent = monitors._spent
    assert any(e.type == "histograms" for e in monitors.flush())
    at = 1
    while not monitors.schedules["histograms"].due(at):
        step(at)
        at += 1
    step(at)  # the histogram probe runs again: the copy's time is charged to it
    assert copies and monitors._spent - spent >= 0.02 * len(copies)
