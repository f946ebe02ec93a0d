"""Divergence: when the loss says training has run away, and the last good weights.

`LossGuard` judges each loss in step order: a loss that is not finite, or one that has
jumped far above where training started, means the updates overshoot and training
stops. It sees the same losses in the same order in every run, so a deterministic run
stops at the same step every time, whatever the timing of the window's refreshes.

`Rollback` keeps the weights (parameters and buffers, so BatchNorm statistics too) that a
finite, non-diverging loss has proven usable: a loss is computed from the weights as they
are before its step's update, so it proves them. Copies are device-to-device
`_foreach_copy_` calls into reserved tensors. On the CPU every loss is judged as it comes,
and the weights it proves are kept every `SNAPSHOT_EVERY` steps and at every step while
the loss is above where it started (a run on its way out), so a divergence usually
restores the weights of the step right before it. On a GPU losses are read at flushes; the
weights are copied at each flush and proven at the next.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from studio.training.callbacks import Callback

SNAPSHOT_EVERY = 20
JUMP = 10.0  # a loss this many times its first value (and JUMP_MARGIN above it) diverged
JUMP_MARGIN = 5.0


class LossGuard:
    """Decides, loss by loss, whether training has diverged."""

    def __init__(self):
        self.first: float | None = None
        self.rising = False  # the newest loss is above the first: keep weights every step

    def check(self, step: int, loss: float) -> str | None:
        """None while training is sound; otherwise the reason, as a sentence fragment."""
        if not math.isfinite(loss):
            return f"the loss became {loss} at step {step + 1}"
        if self.first is None:
            self.first = loss
            return None
        if loss > JUMP * self.first and loss > self.first + JUMP_MARGIN:
            return (
                f"the loss jumped from {self.first:.3g} to {loss:.3g} at step {step + 1}: each "
                "update overshoots"
            )
        self.rising = loss > self.first
        return None

    def state_dict(self) -> dict:
        return {"first": self.first}

    def load_state_dict(self, state: dict) -> None:
        self.first = state.get("first")


class Rollback:
    """The newest weights a sound loss has proven.

    On the CPU (`late=False`) each loss is judged before its update, so `keep(step)` copies
    weights that step's loss has just proven. On a GPU (`late=True`) losses are judged at
    flushes: `snapshot(step)` copies the weights as they are into a candidate, proven once a
    later flush shows step `step`'s loss was sound.
    """

    def __init__(self, model: nn.Module, step: int, late: bool):
        self.tensors = [t for t in (*model.parameters(), *model.buffers())]
        self.good = [t.detach().clone() for t in self.tensors]
        self.good_step = step
        self.candidate = [t.detach().clone() for t in self.tensors] if late else None
        self.candidate_step = step

    def due(self, step: int, rising: bool) -> bool:
        """CPU: whether to keep the weights step `step`'s sound loss has just proven."""
        return rising or step - self.good_step >= SNAPSHOT_EVERY

    @torch.no_grad()
    def keep(self, step: int) -> None:
        """CPU: the weights as they are gave step `step` a sound loss; keep them."""
        torch._foreach_copy_(self.good, self.tensors)
        self.good_step = step

    @torch.no_grad()
    def snapshot(self, step: int) -> None:
        """GPU: every loss before `step` was sound, so the candidate is proven; the weights
        as they are now (those step `step` computes its loss from) become the candidate."""
        if step > self.candidate_step:
            self.good, self.candidate = self.candidate, self.good
            self.good_step = self.candidate_step
        torch._foreach_copy_(self.candidate, self.tensors)
        self.candidate_step = step

    @torch.no_grad()
    def restore(self, first_bad_step: int) -> int:
        """Put back the newest weights a sound loss proved; returns the step they are from."""
        if self.candidate is not None and first_bad_step > self.candidate_step:
            source, step = self.candidate, self.candidate_step
        else:
            source, step = self.good, self.good_step
        torch._foreach_copy_(self.tensors, source)
        return step


class DivergenceGuard(Callback):
    """The guard and the rollback hooked into training (studio/training/callbacks.py).

    On the CPU (`each_loss`) every loss is judged before its update, in
    on_before_backward, and the weights it proves are kept as `Rollback.due` says; on a
    GPU the losses are judged as each flush brings them over (on_losses), and the weights
    are copied at each flush to be proven by the next. A divergence puts back the newest
    proven weights and ends training (`trainer.diverge`)."""

    def __init__(self, each_loss: bool):
        self.each_loss = each_loss
        # Judges every loss in step order; a resumed run carries on with the same judge
        # (the checkpoint keeps its state as "loss_guard").
        self.guard = LossGuard()
        self.rollback: Rollback | None = None

    def on_fit_start(self, trainer) -> None:
        self.rollback = Rollback(trainer.model, trainer.step, late=not self.each_loss)

    def on_before_backward(self, trainer, step: int, loss) -> None:
        if not self.each_loss:
            return
        value = loss.item()  # judged before the update, so a step that diverged changes nothing
        verdict = self.guard.check(step, value)
        if verdict:
            trainer.diverge(step, value, verdict, self.rollback.restore(step))
        elif self.rollback.due(step, self.guard.rising):
            self.rollback.keep(step)

    def on_losses(self, trainer, steps, losses) -> None:
        if self.each_loss:
            return  # judged one by one already
        # On a GPU the losses are only seen here, a few steps late: judge them in step
        # order and put back the newest weights a sound loss has proven.
        for step, value in zip(steps.tolist(), losses.tolist()):
            verdict = self.guard.check(step, value)
            if verdict:
                trainer.diverge(step, value, verdict, self.rollback.restore(step))
                return
        self.rollback.snapshot(trainer.step)
