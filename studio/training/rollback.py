"""Last good weights on a GPU, where a NaN loss is only seen at the next flush.

On the CPU the engine reads every loss before the update, so a NaN stops training with the
weights untouched. On a GPU that read would stall the pipeline every step, so losses are
checked in batches at GUI rate (~30 Hz) and a bad step is found a few steps late, after its
update has already spoiled the weights. This keeps two device copies of the model's
parameters and buffers: the weights as of the last flush (a candidate) and the weights a
later finite loss has proven usable. A divergence restores the newest proven copy.
Copies are device-to-device `_foreach_copy_` calls at flush rate: microseconds for the
studio's models, and one extra copy of the weights in GPU memory.
"""

from __future__ import annotations

import torch
from torch import nn


class Rollback:
    def __init__(self, model: nn.Module, step: int):
        self.tensors = [t for t in (*model.parameters(), *model.buffers())]
        self.candidate = [t.detach().clone() for t in self.tensors]
        self.candidate_step = step  # the first step that ran on the candidate weights
        self.good = [t.detach().clone() for t in self.tensors]
        self.good_step = step

    @torch.no_grad()
    def checked(self, last_finite_step: int, next_step: int) -> None:
        """Steps up to last_finite_step had finite losses; remember the weights for next_step."""
        if last_finite_step >= self.candidate_step:
            # The candidate gave a finite loss: it is proven usable.
            self.good, self.candidate = self.candidate, self.good
            self.good_step = self.candidate_step
        torch._foreach_copy_(self.candidate, self.tensors)
        self.candidate_step = next_step

    @torch.no_grad()
    def restore(self, first_bad_step: int) -> int:
        """Put back the newest weights that gave a finite loss; returns the step they are from."""
        if first_bad_step > self.candidate_step:
            source, step = self.candidate, self.candidate_step
        else:
            source, step = self.good, self.good_step
        torch._foreach_copy_(self.tensors, source)
        return step


class BufferGuard:
    """Batch-norm statistics as they were before the step (the CPU path).

    On the CPU a NaN loss is caught before the update, but the forward pass that produced it
    has already folded the bad batch into every BatchNorm's running mean and variance;
    without this the weights would be "kept" and the model would still answer NaN.
    """

    def __init__(self, model: nn.Module):
        self.buffers = [b for b in model.buffers() if b.is_floating_point()]
        self.copies = [b.detach().clone() for b in self.buffers]

    def __bool__(self) -> bool:
        return bool(self.buffers)

    @torch.no_grad()
    def save(self) -> None:
        torch._foreach_copy_(self.copies, self.buffers)

    @torch.no_grad()
    def restore(self) -> None:
        torch._foreach_copy_(self.buffers, self.copies)
