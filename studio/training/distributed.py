"""Data-parallel training through torchrun: who this process is, and what ranks share.

The studio does not start processes itself: `torchrun` (torch.distributed.run) does, and
sets RANK, WORLD_SIZE and LOCAL_RANK; `studio train --nproc N` only runs torchrun for you.
The engine then works as torch's DistributedDataParallel expects:

- **Batch size is global.** `training.batch_size` is the batch of one step over all
  processes, cut into one shard per process the way DistributedSampler cuts an epoch
  (process r takes samples r, r + N, r + 2N, … of the batch). The order of the batches is
  the one a single process draws, so N processes take the same steps as one.
- **Gradients** are averaged by DDP; each process's loss is weighted by its share of the
  batch, so an uneven last batch still gives the gradient of the whole batch's mean loss.
- **Batch normalization** uses the statistics of the whole batch over all processes:
  torch's SyncBatchNorm on GPUs; on the CPU, which it does not support, `synced` below.
- **One collective per step** carries the batch's loss, correct count, sample count and a
  stop flag, so every process judges the same loss, stops at the same step (Ctrl-C, the
  Stop button, a finding, divergence) and reports whole-batch numbers. Validation is
  sharded and summed the same way.
- **Rank 0** alone keeps the run folder, checkpoints, events and diagnosis; its monitors
  see the gradients after DDP's all-reduce, so the norms are the global ones.

NCCL on CUDA, gloo on the CPU.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    """This process's place among the data-parallel processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This process's part of a batch's (or a split's) sample numbers."""
        return index[self.rank :: self.size] if self.active else index


def current() -> World:
    """The world torchrun set up for this process (RANK, WORLD_SIZE, LOCAL_RANK)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        return World()
    return World(rank, size, local) if size > 1 else World()


def join(world: World, device: torch.device) -> None:
    """Join the process group (once per process): NCCL for CUDA, gloo otherwise."""
    if not world.active or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend)


def check_resume(state: dict, world: World) -> None:
    """A checkpoint resumes with as many processes as wrote it (it keeps each one's random
    state); otherwise one sentence, before anything is created."""
    from studio.errors import StudioError

    saved = state.get("world_size", 1)
    if saved != world.size:
        raise StudioError(
            f"The run was trained by {saved} process{'es' if saved != 1 else ''} and this "
            f"is {world.size}; resume it with the same number (--nproc {saved}), as the "
            "checkpoint keeps each process's random state."
        )


def processes_for(setting, device: str = "auto") -> int:
    """How many processes `training.processes` asks for: a number, or auto (one per GPU
    when CUDA has several, else 1)."""
    if setting != "auto":
        return int(setting)
    if device in ("auto", "cuda") and torch.cuda.is_available():
        return max(1, torch.cuda.device_count())
    return 1


def device_for(world: World, requested: torch.device) -> torch.device:
    """Each process on a machine takes its own GPU (LOCAL_RANK); the CPU is shared."""
    if world.active and requested.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return requested


def total(values: torch.Tensor) -> torch.Tensor:
    """The sum of `values` over every process (in place; no-op for one process)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(values)
    return values


def gather(obj) -> list:
    """Every process's `obj`, in rank order (a list of one for one process)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return [obj]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def sync_batch_norm(model: nn.Module, device: torch.device) -> nn.Module:
    """Batch normalization over the whole batch of every process: torch's SyncBatchNorm
    on GPUs; on the CPU each BatchNorm module becomes `synced` in place (same parameters,
    buffers and names, so checkpoints do not change)."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
            module, _SyncedOnCpu
        ):
            module.__class__ = _synced_class(type(module))
    return model


_classes: dict[type, type] = {}


def _synced_class(cls: type) -> type:
    if cls not in _classes:
        _classes[cls] = type(f"Synced{cls.__name__}", (_SyncedOnCpu, cls), {})
    return _classes[cls]


class _SyncedOnCpu:
    """A BatchNorm whose training statistics are those of the whole batch over all
    processes, for the CPU (torch's SyncBatchNorm needs a GPU). The sums travel through a
    differentiable all-reduce, so autograd sends the gradient of the statistics back to
    every process as SyncBatchNorm does. Two passes (mean, then
    the squared deviations) keep the variance as exact as a single process's."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (torch's name)
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = torch.tensor([input.numel() // input.shape[1]], dtype=input.dtype)
        sums = _SumAcross.apply(torch.cat([input.sum(dims), count]))
        n = sums[-1]
        mean = sums[:-1] / n
        centered = input - mean.view(shape)
        var = _SumAcross.apply((centered * centered).sum(dims)) / n
        out = centered * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                factor = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else self.momentum
                )
                unbiased = var * (n / (n - 1)) if float(n) > 1 else var
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.detach(), alpha=factor)
        return out


class _SumAcross(torch.autograd.Function):
    """Sum over every process, with its gradient: the gradient of each process's input is
    the sum of every process's output gradient (each output depends on every input)."""

    @staticmethod
    def forward(ctx, values: torch.Tensor) -> torch.Tensor:
        out = values.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def peer_lost(err: BaseException) -> bool:
    """Whether an error is a collective failing because another process died (the
    launcher names that process; this one just ends)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return False
    text = str(err)
    return isinstance(err, dist.DistError) or (
        isinstance(err, RuntimeError) and ("gloo" in text or "NCCL" in text)
    )


def leave() -> None:
    if dist.is_initialized():
        gc.collect()  # a DDP wrapper in a reference cycle still holds the group
        dist.destroy_process_group()
