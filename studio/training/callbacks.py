"""Callbacks: no-op hooks the engine calls at fixed points (Lightning's pattern).

The studio's own probes hook in here as any callback does: the monitors
(studio/training/probes.py), divergence and rollback (studio/training/rollback.py), the
fine-tuning plan (studio/training/phases.py), checkpoints, early stopping. Per step, in
order:

    on_train_batch_start(step)      the batch is on the device; nothing computed yet
    on_before_backward(step, loss)  the forward pass is done; `loss` is the batch's loss
    on_after_backward(step)         gradients as back-propagated (before clipping)
    on_before_optimizer_step(step)  gradients as the optimizer will use them (clipped)
    on_after_optimizer_step(step)   the weights are updated
    on_step_end(step)               the step is counted (`trainer.step_seconds`)

A step that is begun and not taken (the loss diverged, or the processes stopped together
before the update) gets `on_step_skipped(step)` after on_before_backward instead of the
rest. `on_losses(steps, losses)` hears the losses as host numbers each time they are
copied over (every step on the CPU, at each flush on a GPU). The engine calls a hook only
on the callbacks that override it, so an unused hook costs nothing per step.

A callback never raises to stop training; it sets `trainer.should_stop` and a reason
(`trainer.request_stop`), or, for a divergence, `trainer.diverge`.
"""

from __future__ import annotations

import math


class Callback:
    def on_fit_start(self, trainer) -> None: ...

    def on_epoch_start(self, trainer, epoch: int) -> None: ...

    def on_train_batch_start(self, trainer, step: int) -> None: ...

    def on_before_backward(self, trainer, step: int, loss) -> None: ...

    def on_after_backward(self, trainer, step: int) -> None: ...

    def on_before_optimizer_step(self, trainer, step: int) -> None: ...

    def on_after_optimizer_step(self, trainer, step: int) -> None: ...

    def on_step_skipped(self, trainer, step: int) -> None: ...

    def on_step_end(self, trainer, step: int) -> None: ...

    def on_losses(self, trainer, steps, losses) -> None: ...

    def on_epoch_end(self, trainer, epoch: int, metrics: dict) -> None: ...

    def on_fit_end(self, trainer, result) -> None: ...

    def on_event(self, trainer, event) -> None:
        """Every event the run emits (`studio.training.events`), after the listeners."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


STEP_HOOKS = (
    "on_train_batch_start",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_after_optimizer_step",
    "on_step_skipped",
    "on_step_end",
    "on_losses",
)


def hooked(callbacks: list[Callback], name: str) -> list[Callback]:
    """The callbacks that override hook `name`, in order: the only ones it is called on."""
    return [cb for cb in callbacks if getattr(type(cb), name) is not getattr(Callback, name)]


def resolve_mode(mode: str, monitor: str) -> str:
    if mode != "auto":
        return mode
    return "max" if "accuracy" in monitor else "min"


class Best:
    """Tracks the best value of a monitored metric."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        self.monitor = monitor
        self.mode = resolve_mode(mode, monitor)
        self.min_delta = min_delta
        self.value = math.inf if self.mode == "min" else -math.inf
        self.epoch = -1

    def improved(self, metrics: dict, epoch: int) -> bool:
        value = metrics.get(self.monitor)
        if value is None or not math.isfinite(value):
            return False
        better = (
            value < self.value - self.min_delta
            if self.mode == "min"
            else value > self.value + self.min_delta
        )
        if better:
            self.value, self.epoch = value, epoch
        return better

    def state_dict(self) -> dict:
        return {"value": self.value, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.value, self.epoch = state["value"], state["epoch"]


class _Patient(Callback):
    """Counts epochs without improvement of a monitored metric."""

    def __init__(self, monitor: str, patience: int, mode: str = "auto", min_delta: float = 0.0):
        self.best = Best(monitor, mode, min_delta)
        self.patience = patience
        self.waited = 0

    def stalled(self, metrics: dict, epoch: int) -> bool:
        """True once the metric has not improved for more than `patience` epochs."""
        if self.best.improved(metrics, epoch):
            self.waited = 0
            return False
        self.waited += 1
        return self.waited > self.patience

    def state_dict(self):
        return {"best": self.best.state_dict(), "waited": self.waited}

    def load_state_dict(self, state):
        self.best.load_state_dict(state["best"])
        self.waited = state["waited"]


class EarlyStopping(_Patient):
    def on_epoch_end(self, trainer, epoch, metrics):
        if self.stalled(metrics, epoch):
            trainer.request_stop(
                "early_stopped",
                f"early stopping: {self.best.monitor} has not improved for {self.waited} epochs "
                f"(best {self.best.value:.4g} at epoch {self.best.epoch + 1})",
            )


class ReduceLROnPlateau(_Patient):
    """Multiplies every learning rate by `factor` when the monitored value stalls."""

    def __init__(
        self, monitor: str, factor: float, patience: int, min_lr: float, mode: str = "auto"
    ):
        super().__init__(monitor, patience, mode)
        self.factor, self.min_lr = factor, min_lr

    def on_epoch_end(self, trainer, epoch, metrics):
        if self.stalled(metrics, epoch):
            for group in trainer.optimizer.param_groups:
                # Never raises a rate: a backbone stage's may already sit below min_lr.
                group["lr"] = min(group["lr"], max(group["lr"] * self.factor, self.min_lr))
            self.waited = 0


class CheckpointBest(Callback):
    """Saves the weights whenever the monitored value improves."""

    def __init__(self, monitor: str, mode: str = "auto"):
        self.best = Best(monitor, mode)

    def on_epoch_end(self, trainer, epoch, metrics):
        if self.best.improved(metrics, epoch) and trainer.run is not None:
            trainer.run.save_weights(
                "best",
                trainer.model,
                {"epoch": str(epoch + 1), self.best.monitor: f"{self.best.value:.6g}"},
            )

    def state_dict(self):
        return {"best": self.best.state_dict()}

    def load_state_dict(self, state):
        self.best.load_state_dict(state["best"])
