"""The training loop through its hooks (issue 15): a callback hears every step at
Lightning's points, in order; a step whose loss diverged is skipped, not taken; the
gradients it sees after the backward pass are those the monitors record (before
clipping), and before the optimizer step those the update uses (clipped)."""

from __future__ import annotations

import torch
from support import mlp_project

from studio.training.callbacks import Callback
from studio.training.engine import Trainer

IN_ORDER = [
    "on_train_batch_start",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_after_optimizer_step",
    "on_step_end",
]


class Recorder(Callback):
    def __init__(self):
        self.heard: list[tuple[str, int]] = []
        self.losses: list[float] = []
        self.norms: dict[str, list[float]] = {"after_backward": [], "before_optimizer_step": []}

    def _total_norm(self, trainer) -> float:
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))

    def on_train_batch_start(self, trainer, step):
        self.heard.append(("on_train_batch_start", step))

    def on_before_backward(self, trainer, step, loss):
        self.heard.append(("on_before_backward", step))

    def on_after_backward(self, trainer, step):
        self.heard.append(("on_after_backward", step))
        self.norms["after_backward"].append(self._total_norm(trainer))

    def on_before_optimizer_step(self, trainer, step):
        self.heard.append(("on_before_optimizer_step", step))
        self.norms["before_optimizer_step"].append(self._total_norm(trainer))

    def on_after_optimizer_step(self, trainer, step):
        self.heard.append(("on_after_optimizer_step", step))

    def on_step_skipped(self, trainer, step):
        self.heard.append(("on_step_skipped", step))

    def on_step_end(self, trainer, step):
        self.heard.append(("on_step_end", step))

    def on_losses(self, trainer, steps, losses):
        self.losses.extend(float(v) for v in losses)


def test_a_callback_hears_every_step_in_order_and_the_clipping_between():
    project = mlp_project(2, 32, "relu", {"name": "kaiming_normal"}, epochs=1, batch_size=64)
    project.training["clipping"]["max_norm"] = 0.05  # below what back-propagation gives
    project.data["validation"] = 0.5
    recorder = Recorder()
    trainer = Trainer(project, callbacks=[recorder], emit_hz=0)
    result = trainer.fit()
    steps = result.steps
    assert steps == len(trainer.batches) > 5
    assert recorder.heard == [(name, step) for step in range(steps) for name in IN_ORDER]
    assert len(recorder.losses) == steps  # every loss, as host numbers
    # After backward: as back-propagated (the monitors record these); before the update:
    # clipped to training.clipping.max_norm.
    assert min(recorder.norms["after_backward"]) > 0.05
    assert max(recorder.norms["before_optimizer_step"]) <= 0.05 * (1 + 1e-4)


def test_a_diverging_step_is_skipped_and_no_update_is_taken():
    project = mlp_project(
        3,
        64,
        "relu",
        {"name": "kaiming_normal"},
        optimizer={"name": "sgd", "lr": 10.0, "momentum": 0.0},
        epochs=2,
        batch_size=32,
    )
    project.training["monitors"]["enabled"] = True
    recorder = Recorder()
    trainer = Trainer(project, callbacks=[recorder], emit_hz=0, device="cpu")
    result = trainer.fit()
    assert result.status == "diverged"
    (skipped,) = [step for name, step in recorder.heard if name == "on_step_skipped"]
    assert skipped == trainer.diverged_at
    taken = {step for name, step in recorder.heard if name == "on_after_optimizer_step"}
    assert skipped not in taken and taken == set(range(skipped))
    assert recorder.heard[-2:] == [("on_before_backward", skipped), ("on_step_skipped", skipped)]
