"""Fine-tuning: two phases, gradual unfreezing and discriminative learning rates on backbone
nodes; the optimizer keeps its state across phases, schedules compose with the phase factor,
a resumed run re-enters its phase, and monitors and diagnosis leave frozen stages out."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from support import chain, project_of
from torch import nn

from studio.builder import build_model
from studio.data.prepare import PreparedData, Split
from studio.registry import LayerType, catalog
from studio.schema import Param
from studio.training.callbacks import Callback
from studio.training.diagnosis import Diagnosis
from studio.training.engine import Trainer
from studio.training.runs import Run
from studio.training.session import train
from studio.training.setup import TrainingError
from studio.transfer.backbone import Backbone
from studio.transfer.finetune import FineTuningPlan

STAGES = ["stem", "block1", "block2", "block3"]


class TinyBackbone(LayerType):
    """A four-stage convolutional backbone small enough to train in a test, built as the
    real `Backbone` module so freezing and frozen BatchNorm behave as for ResNet18."""

    name = "TinyBackbone"
    group = "Backbones"
    backbone = True
    params = (
        Param("freeze_point", "int", 0, "Frozen stages.", 0, len(STAGES)),
        Param("update_frozen_bn", "bool", False, "Update frozen BatchNorm."),
    )

    def stages(self, params):
        return list(STAGES)

    def output_shape(self, params, inputs):
        return (16,)

    def build(self, params, inputs):
        channels = inputs[0][0]

        def conv(c_in, c_out, stride=1):
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.ReLU()
            )

        net = nn.Sequential(
            conv(channels, 8),
            conv(8, 8),
            conv(8, 16, 2),
            nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1)),
            nn.Flatten(),
        )
        stages = [(name, [str(i)]) for i, name in enumerate(STAGES)]
        return Backbone(net, stages, params["freeze_point"], params["update_frozen_bn"])


@pytest.fixture(autouse=True)
def tiny_backbone(monkeypatch):
    cat = catalog()
    monkeypatch.setitem(cat._types, TinyBackbone.name, TinyBackbone())
    monkeypatch.setitem(cat.sources, TinyBackbone.name, "tests")


def tiny_project(freeze_point=0, epochs=4, optimizer="adam", **fine_tuning):
    """Digits 0 and 1 (8×8) through the tiny backbone into a 2-class head: 5 steps an epoch."""
    project = project_of(
        chain(
            {"id": "image", "type": "Input", "params": {"shape": [1, 8, 8]}},
            {"id": "base", "type": "TinyBackbone", "params": {"freeze_point": freeze_point}},
            {"id": "head", "type": "Output", "params": {"units": 2}},
        )
    )
    project.data["classes"] = [0, 1]
    project.training.update(epochs=epochs, batch_size=64)
    project.training["optimizer"]["name"] = optimizer
    project.training["monitors"].update(budget=0.0, weights_every=1)
    project.training["fine_tuning"].update(fine_tuning)
    return project


def collect(trainer_or_project, **kwargs):
    events: dict[str, list[dict]] = {}
    if isinstance(trainer_or_project, Trainer):
        trainer = trainer_or_project
        trainer.listeners.append(lambda e: events.setdefault(e["type"], []).append(e))
    else:
        trainer = Trainer(
            trainer_or_project,
            listeners=[lambda e: events.setdefault(e["type"], []).append(e)],
            emit_hz=0,
            **kwargs,
        )
    result = trainer.fit()
    return trainer, events, result


class Snapshot(Callback):
    """Per epoch: the trainable parameter count and a copy of the weights at its start."""

    def __init__(self):
        self.trainable: list[int] = []
        self.weights: list[dict] = []

    def on_epoch_start(self, trainer, epoch):
        self.trainable.append(sum(p.numel() for p in trainer.model.parameters() if p.requires_grad))
        self.weights.append({k: v.clone() for k, v in trainer.model.state_dict().items()})


def stage_params(model, stage: str) -> list[str]:
    index = STAGES.index(stage)
    return [k for k in model.state_dict() if k.startswith(f"layers.base.layer.net.{index}.")]


def changed(before: dict, after: dict, keys: list[str]) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in keys)


# -- the plan ---------------------------------------------------------------------------
def test_the_plan_unfreezes_one_stage_every_k_epochs_after_the_head_phase_never_below_k():
    project = tiny_project(
        freeze_point=1, two_phase=True, head_epochs=2, unfreeze_every=2, phase2_lr_factor=0.1
    )
    plan = FineTuningPlan(build_model(project), project.training["fine_tuning"])
    n = len(STAGES)
    for epoch in range(12):
        phase = plan.phase_at(epoch)
        (first,) = phase.first_training
        if epoch < 2:
            assert first == n and phase.number == 1 and phase.lr_factor == 1.0
        else:
            unfrozen = 1 + (epoch - 2) // 2
            assert first == max(1, n - unfrozen) and phase.number == 2
            assert phase.lr_factor == 0.1
    # Gradual unfreezing alone: the head trains alone for the first K epochs.
    gradual = tiny_project(freeze_point=0, unfreeze_every=3)
    plain = FineTuningPlan(build_model(gradual), gradual.training["fine_tuning"])
    assert [plain.phase_at(e).first_training[0] for e in (0, 2, 3, 6, 9, 12, 40)] == [
        4,
        4,
        3,
        2,
        1,
        0,
        0,
    ]


def test_without_a_backbone_the_optimizer_is_built_exactly_as_before():
    def mlp(**fine_tuning):
        project = project_of(
            chain(
                {"id": "image", "type": "Input", "params": {"shape": [64]}},
                {"id": "hidden", "type": "Linear", "params": {"out_features": 16}},
                {"id": "head", "type": "Output", "params": {"units": 2}},
            )
        )
        project.data["classes"] = [0, 1]
        project.training.update(epochs=2, batch_size=32)
        project.training["fine_tuning"].update(fine_tuning)
        return project

    default, events, _ = collect(mlp())
    assert len(default.optimizer.param_groups) == 1
    assert default.optimizer.param_groups[0]["params"] == list(default.model.parameters())
    assert not default.plan.active and "phase" not in events
    # The fine-tuning settings act on backbone nodes only: without one, same losses.
    tuned, tuned_events, _ = collect(
        mlp(two_phase=True, head_epochs=1, stage_lr_decay=0.5, unfreeze_every=1)
    )
    losses = [np.concatenate([e["loss"] for e in ev["steps"]]) for ev in (events, tuned_events)]
    assert len(losses[0]) > 10 and np.array_equal(*losses)
    assert len(tuned.optimizer.param_groups) == 1


def test_a_fixed_freeze_point_alone_keeps_one_param_group_and_announces_itself():
    trainer, events, _ = collect(tiny_project(freeze_point=2, epochs=1))
    assert len(trainer.optimizer.param_groups) == 1
    (phase,) = events["phase"]
    assert phase["step"] == 0 and phase["epoch"] == 0
    assert phase["label"] == "Fine-tuning: block2, block3 and the head train"


# -- two phases -------------------------------------------------------------------------
def test_two_phases_train_the_head_alone_then_the_stages_with_the_optimizer_state_kept():
    snap = Snapshot()
    project = tiny_project(
        freeze_point=1, epochs=4, two_phase=True, head_epochs=2, phase2_lr_factor=0.1
    )
    trainer = Trainer(project, callbacks=[snap], emit_hz=0)
    trainer, events, result = collect(trainer)
    head = sum(p.numel() for p in trainer.model.layers["head"].parameters())
    buffers = {k for k, _ in trainer.model.named_buffers()}
    trainable_stages = sum(
        p.numel()
        for name, p in trainer.model.named_parameters()
        if name.startswith("layers.base.") and not name.startswith("layers.base.layer.net.0.")
    )
    assert snap.trainable == [head, head, head + trainable_stages, head + trainable_stages]
    # Phase 1 moved the head only; phase 2 the unfrozen stages too, never the stem.
    w = [*snap.weights, trainer.model.state_dict()]
    for stage in STAGES:
        weights = [k for k in stage_params(trainer.model, stage) if k not in buffers]
        assert not changed(w[0], w[2], weights), stage
        assert changed(w[2], w[4], weights) == (stage != "stem"), stage
    assert changed(w[0], w[1], ["layers.head.layer.weight"])
    labels = [e["label"] for e in events["phase"]]
    assert labels == [
        "Phase 1: only the head trains",
        "Phase 2: block1, block2, block3 and the head train at lr × 0.1",
    ]
    assert [e["epoch"] for e in events["phase"]] == [0, 2]
    lrs = [h["lr"] for h in result.history]
    assert lrs[:2] == [0.001, 0.001] and lrs[2:] == pytest.approx([1e-4, 1e-4])
    # Adam's moments of the head carried on from phase 1: its step count is every step.
    head_weight = trainer.model.layers["head"].layer.weight
    assert int(trainer.optimizer.state[head_weight]["step"]) == result.steps
    block3 = trainer.model.layers["base"].layer.net[3][0].weight
    assert int(trainer.optimizer.state[block3]["step"]) == result.steps - 2 * (result.steps // 4)


def test_frozen_batchnorm_keeps_its_statistics_during_the_head_phase():
    snap = Snapshot()
    project = tiny_project(freeze_point=0, epochs=2, two_phase=True, head_epochs=1)
    trainer, _, _ = collect(Trainer(project, callbacks=[snap], emit_hz=0))
    stats = [k for k in stage_params(trainer.model, "block1") if "running_mean" in k]
    assert stats
    after = trainer.model.state_dict()
    assert not changed(snap.weights[0], snap.weights[1], stats)  # phase 1: eval mode
    assert changed(snap.weights[1], after, stats)  # phase 2: trains, statistics move


@pytest.mark.parametrize(
    "optimizer", ["sgd", "sgd_momentum", "adagrad", "rmsprop", "adam", "adamw"]
)
def test_no_optimizer_moves_a_frozen_stage_even_with_weight_decay(optimizer):
    project = tiny_project(epochs=2, optimizer=optimizer, two_phase=True, head_epochs=1)
    project.training["optimizer"]["weight_decay"] = 0.1
    project.training["monitors"]["enabled"] = False
    snap = Snapshot()
    trainer, _, _ = collect(Trainer(project, callbacks=[snap], emit_hz=0))
    weights = [k for s in STAGES for k in stage_params(trainer.model, s) if k.endswith(".weight")]
    assert not changed(snap.weights[0], snap.weights[1], weights)
    assert changed(snap.weights[1], trainer.model.state_dict(), weights)


# -- learning rates ---------------------------------------------------------------------
def test_discriminative_rates_shrink_by_the_decay_per_stage_and_follow_the_schedule():
    project = tiny_project(freeze_point=1, epochs=3, stage_lr_decay=0.5)
    project.training["schedule"].update(name="step", step_size=1, gamma=0.5)
    trainer, events, result = collect(project)
    n, base = len(STAGES), 0.001
    epochs_done = result.epochs
    rates = {g["stage"]: g["lr"] for g in trainer.optimizer.param_groups}
    decayed = base * 0.5**epochs_done
    assert rates.pop("head") == pytest.approx(decayed)
    assert rates == {
        f"base.{s}": pytest.approx(decayed * 0.5 ** (n - i)) for i, s in enumerate(STAGES) if i >= 1
    }
    assert events["phase"][0]["label"].endswith("each earlier stage × 0.5")


def test_one_cycle_peaks_at_the_phase_scaled_rate_per_group():
    project = tiny_project(epochs=3, two_phase=True, head_epochs=1, stage_lr_decay=0.5)
    project.training["schedule"].update(name="one_cycle", max_lr=0.01)
    trainer = Trainer(project, emit_hz=0)
    peaks: dict[str, list[float]] = {}

    class Watch(Callback):
        def on_step_end(self, trainer, step):
            for g in trainer.optimizer.param_groups:
                peaks.setdefault(g["stage"], []).append(g["lr"])

    trainer.callbacks.append(Watch())
    trainer.fit()
    spe = len(trainer.batches)
    head = np.array(peaks["head"])
    # Phase 2 (from epoch 1) runs at a tenth of the one-cycle curve.
    assert head[:spe].max() <= 0.01 + 1e-12
    assert head[spe:].max() <= 0.001 + 1e-12 and head[spe:].max() > 0.0005
    top = np.array(peaks["base.block3"])[spe:]
    assert top == pytest.approx(head[spe:] * 0.5)


# -- resuming ---------------------------------------------------------------------------
class MemoryRun:
    """Stands in for a run folder: keeps the last state in memory."""

    def __init__(self):
        self.states: dict[str, dict] = {}

    def save_state(self, name, state):
        self.states[name] = {k: _copy(v) for k, v in state.items()}

    def save_weights(self, *args, **kwargs):
        pass


def _copy(value):
    return copy.deepcopy(value)


class StopAt(Callback):
    def __init__(self, step):
        self.at = step

    def on_step_end(self, trainer, step):
        if step + 1 == self.at:
            trainer.request_stop("stopped", "test")


@pytest.mark.parametrize("stop_epochs", [2.5, 3.0])
def test_a_resumed_run_re_enters_its_phase_and_ends_with_the_same_weights(stop_epochs):
    settings = dict(
        freeze_point=1,
        epochs=4,
        two_phase=True,
        head_epochs=1,
        unfreeze_every=1,
        stage_lr_decay=0.5,
    )
    project = tiny_project(**settings)
    project.training["schedule"].update(name="cosine")
    project.training["deterministic"] = True
    whole = Trainer(project, emit_hz=0)
    whole.fit()
    spe = len(whole.batches)

    run = MemoryRun()
    stop_step = int(stop_epochs * spe)
    part = Trainer(project, run=run, callbacks=[StopAt(stop_step)], emit_hz=0)
    part.fit()
    resumed = Trainer(project, emit_hz=0)
    phases = []
    resumed.listeners.append(lambda e: phases.append(e) if e["type"] == "phase" else None)
    resumed.fit(resume=run.states["last"])
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [g["lr"] for g in whole.optimizer.param_groups] == [
        g["lr"] for g in resumed.optimizer.param_groups
    ]
    # The resumed run announces the phase it re-enters.
    # The resumed run announces the phase it re-enters (a stop on an epoch's last step
    # saves that epoch as done but for its end, so the run re-enters that same epoch).
    assert phases[0]["epoch"] == (stop_step - 1) // spe
    assert phases[0]["label"].startswith("Phase 2")


# -- monitors and diagnosis -------------------------------------------------------------
def test_monitors_list_every_stage_that_may_train_and_report_frozen_ones_as_nan():
    project = tiny_project(
        freeze_point=1, epochs=3, two_phase=True, head_epochs=1, unfreeze_every=1
    )
    diagnosis = Diagnosis(project)
    trainer = Trainer(project, emit_hz=0)
    diagnosis.on_finding = trainer.report_finding
    trainer.listeners.append(diagnosis)
    trainer, events, _ = collect(trainer)
    layers = events["start"][0]["layers"]
    assert layers == ["base.block1", "base.block2", "base.block3", "head"]
    grads = np.concatenate([e["norms"] for e in events["gradients"]])
    frozen = np.concatenate([e["frozen"] for e in events["gradients"]])
    assert grads.shape == frozen.shape == (events["start"][0]["total_steps"], 4)
    assert np.array_equal(np.isnan(grads), frozen)
    spe = len(trainer.batches)
    # Epoch 0 head only; epoch 1 block3 too (phase 2 opens with the top stage); epoch 2 block2.
    assert frozen[:spe].tolist() == [[True, True, True, False]] * spe
    assert frozen[spe : 2 * spe].tolist() == [[True, True, False, False]] * spe
    assert frozen[2 * spe :].tolist() == [[True, False, False, False]] * spe
    assert np.all(grads[~frozen] > 0)
    ratios = np.concatenate([e["update_ratio"] for e in events["weights"]])
    weight_frozen = np.concatenate([e["frozen"] for e in events["weights"]])
    assert np.array_equal(np.isnan(ratios), weight_frozen)
    assert not any(
        f.kind in ("vanishing_gradients", "exploding_gradients") for f in diagnosis.findings
    )


def test_the_diagnosis_ignores_frozen_layers_but_not_a_real_nan():
    project = tiny_project()
    names = ["a.s0", "a.s1", "a.s2", "a.s3", "b", "c", "head"]
    start = {"type": "start", "layers": names, "layer_params": [100] * 7, "classes": ["0", "1"]}
    healthy = np.ones(7)
    frozen = np.array([True] * 3 + [False] * 4)

    def rows(value_of_first_three, mask, n=6):
        row = healthy.copy()
        row[:3] = value_of_first_three
        return {
            "type": "gradients",
            "step": np.arange(n),
            "norms": np.tile(row, (n, 1)),
            "frozen": np.tile(mask, (n, 1)),
        }

    quiet = Diagnosis(project)
    quiet(start)
    quiet(rows(np.nan, frozen))
    assert quiet.findings == []
    # The same tiny numbers in layers that do train are vanishing gradients...
    vanishing = Diagnosis(project)
    vanishing(start)
    vanishing(rows(1e-7, np.zeros(7, bool)))
    assert [f.kind for f in vanishing.findings] == ["vanishing_gradients"]
    assert vanishing.findings[0].layers == names[:3]
    # ...and a NaN in a training layer is still called out.
    broken = Diagnosis(project)
    broken(start)
    bad = rows(np.nan, frozen)
    bad["norms"][2, 5] = np.nan
    broken(bad)
    (finding,) = broken.findings
    assert finding.kind == "exploding_gradients" and finding.layers == ["c"]


def test_a_run_keeps_its_phases_for_later_plots(tmp_path):
    project = tiny_project(freeze_point=1, epochs=2, two_phase=True, head_epochs=1)
    outcome = train(project, runs_root=tmp_path)
    series = Run.open(tmp_path, outcome.run.id).series()
    assert series["phase_epoch"].tolist() == [0, 1]
    assert series["phase_step"][0] == 0 and series["phase_step"][1] > 0
    assert series["phase_label"][1].startswith("Phase 2")
    assert list(series["layers"]) == ["base.block1", "base.block2", "base.block3", "head"]


def test_two_phases_need_a_head_with_weights():
    project = project_of(
        chain(
            {"id": "image", "type": "Input", "params": {"shape": [1, 8, 8]}},
            {"id": "base", "type": "TinyBackbone", "params": {}},
        )
    )
    project.training["loss"] = "mse"
    project.training["fine_tuning"]["two_phase"] = True
    with pytest.raises(TrainingError, match="no layer outside the backbone has trainable weights"):
        FineTuningPlan(build_model(project), project.training["fine_tuning"])


# -- a real ResNet18 ----------------------------------------------------------------------
def generated_images(n=48, size=32, classes=4, seed=0) -> PreparedData:
    """Noise tinted by class: learnable, no download."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, 3, size, size, generator=g) * 0.5
    x[torch.arange(n), y % 3] += 1.0
    val = n // 4
    return PreparedData(
        Split(x[val:], y[val:]),
        Split(x[:val], y[:val]),
        Split(x[:0], y[:0]),
        [str(c) for c in range(classes)],
        (3, size, size),
        "generated images",
    )


def test_a_resnet18_trains_in_two_phases_with_its_stages_monitored():
    project = project_of(
        chain(
            {"id": "image", "type": "Input", "params": {"shape": [3, 32, 32]}},
            {"id": "base", "type": "ResNet18", "params": {"weights": "none", "freeze_point": 2}},
            {"id": "head", "type": "Output", "params": {"units": 4}},
        )
    )
    project.training.update(epochs=2, batch_size=32)
    project.training["fine_tuning"].update(two_phase=True, head_epochs=1)
    snap = Snapshot()
    trainer = Trainer(project, data=generated_images(), callbacks=[snap], emit_hz=0)
    trainer, events, result = collect(trainer)
    assert result.status == "completed"
    assert events["start"][0]["layers"] == ["base.layer2", "base.layer3", "base.layer4", "head"]
    backbone = trainer.model.layers["base"].layer
    head = sum(p.numel() for p in trainer.model.layers["head"].parameters())
    top = sum(p.numel() for m in backbone.stage_modules()[2:] for p in m.parameters())
    assert snap.trainable == [head, head + top]
    assert [e["label"] for e in events["phase"]] == [
        "Phase 1: only the head trains",
        "Phase 2: layer2, layer3, layer4 and the head train at lr × 0.1",
    ]
    assert backbone.freeze_point == 2  # phase 2 ends at the node's own freeze point
