"""The fine-tuning plan (studio/transfer/finetune.py) hooked into training: at each
epoch's start it enters the epoch's phase (which backbone stages train, at what rate),
and when that changed the trainer tells the monitors and DDP and marks the plots."""

from __future__ import annotations

from studio.training.callbacks import Callback
from studio.transfer.finetune import FineTuningPlan


class Phases(Callback):
    def __init__(self, plan: FineTuningPlan):
        self.plan = plan

    def on_epoch_start(self, trainer, epoch: int) -> None:
        previous = self.plan.current
        phase = self.plan.enter(epoch)
        if phase is not None:
            trainer.training_changed(epoch, self.plan.label(phase, previous))
