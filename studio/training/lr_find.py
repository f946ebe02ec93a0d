"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates"; fastai's lr_find).

A copy of the model, built from the project exactly as training builds it (a backbone at
its freeze point, the project's optimizer, loss, regularization, clipping, precision and
augmentation), trains for a few hundred steps while the learning rate grows exponentially
from `start_lr` to `end_lr`. The loss is smoothed (a debiased exponential average, as
fastai does) and the sweep stops once it runs away (four times its lowest value, or not
finite). The curve gives:
- the suggestion, by fastai's default "valley" rule: the longest stretch over which the
  smoothed loss keeps falling, and the rate halfway along it;
- a range, by Smith's rule: from where the loss starts falling (a tenth of the way down
  from its level at the start to its lowest) to where it is lowest (the bounds of a
  cyclical or one-cycle schedule);
- for reference, the steepest descent and the lowest loss's rate divided by ten.
The sweep runs inside `torch.random.fork_rng`, on its own model, optimizer and batch
generator: the project, any trained weights and the global random streams are untouched.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from studio.document import Project
from studio.errors import StudioError

START_LR = 1e-7
END_LR = 10.0
STEPS = 200
SMOOTHING = 0.98  # fastai's beta
RUNAWAY = 4.0  # the smoothed loss at this many times its lowest: stop

Progress = Callable[[int, int, float, float], None]  # step, steps, lr, smoothed loss


@dataclass
class LRFindResult:
    project: str
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    suggestion: float = math.nan
    rule: str = "valley"
    low: float = math.nan  # Smith's range: the loss starts falling here...
    high: float = math.nan  # ...and is lowest here
    steepest: float = math.nan
    minimum_tenth: float = math.nan
    stopped: str = ""
    seconds: float = 0.0
    trainable_params: int = 0  # what the sweep trained (a backbone: from its freeze point)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"Suggested learning rate {self.suggestion:.2g} (valley rule: halfway along the "
            f"longest stretch where the loss falls); range {self.low:.2g} to {self.high:.2g} "
            f"(Smith: from where the loss starts falling to where it is lowest)."
        )


class LRFindError(StudioError):
    """The sweep could not say anything (too few steps, or a loss that never fell)."""


def find_lr(
    project: Project,
    *,
    base: Path = Path("."),
    device: str | None = None,
    start_lr: float = START_LR,
    end_lr: float = END_LR,
    steps: int = STEPS,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> LRFindResult:
    from studio.training.engine import Trainer

    if not (0 < start_lr < end_lr) or not math.isfinite(end_lr):
        raise LRFindError(
            f"The sweep needs 0 < start_lr < end_lr; got {start_lr:g} and {end_lr:g}."
        )
    if steps < 10:
        raise LRFindError(f"The sweep needs at least 10 steps; got {steps}.")
    project = project.copy()
    project.training["monitors"]["enabled"] = False
    started = time.perf_counter()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        trainer = Trainer(project, base=base, device=device, emit_hz=0)
        result = _sweep(trainer, project.name, start_lr, end_lr, steps, progress, stop)
    result.seconds = time.perf_counter() - started
    _suggest(result)
    return result


def _sweep(trainer, name, start_lr, end_lr, steps, progress, stop) -> LRFindResult:
    model, opt = trainer.model, trainer.optimizer
    base = trainer.settings["optimizer"]["lr"]
    # Per-stage rates (discriminative fine-tuning) keep their ratios to the head's.
    ratios = [g["lr"] / base if base else 1.0 for g in opt.param_groups]
    clip = trainer.settings["clipping"]
    growth = (end_lr / start_lr) ** (1 / (steps - 1))
    result = LRFindResult(name)
    result.trainable_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    average, lowest = 0.0, math.inf
    batches = iter(())
    torch.manual_seed(trainer.settings["seed"])
    model.train()
    for i in range(steps):
        if stop is not None and stop.is_set():
            result.stopped = f"stopped by request after {i} steps"
            break
        lr = start_lr * growth**i
        for group, ratio in zip(opt.param_groups, ratios):
            group["lr"] = lr * ratio
        batch = next(batches, None)
        if batch is None:
            batches = trainer.batches.epoch()
            batch = next(batches)
        x, y = (t.to(trainer.device, non_blocking=True) for t in batch)
        with trainer._autocast():
            loss = trainer.loss_fn(model(x).float(), y)
        objective = loss + trainer._penalty() if (trainer.l1 or trainer.l2) else loss
        opt.zero_grad(set_to_none=True)
        (trainer.scaler.scale(objective) if trainer.scaler else objective).backward()
        if trainer.scaler and (clip["max_norm"] or clip["max_value"]):
            trainer.scaler.unscale_(opt)
        params = [p for g in opt.param_groups for p in g["params"]]
        if clip["max_norm"]:
            torch.nn.utils.clip_grad_norm_(params, clip["max_norm"])
        if clip["max_value"]:
            torch.nn.utils.clip_grad_value_(params, clip["max_value"])
        if trainer.scaler:
            trainer.scaler.step(opt)
            trainer.scaler.update()
        else:
            opt.step()
        value = float(loss.item())
        result.lrs.append(lr)
        result.losses.append(value)
        if not math.isfinite(value):
            result.smoothed.append(math.nan)
            result.stopped = f"the loss became {value} at a learning rate of {lr:.2g}"
            break
        average = SMOOTHING * average + (1 - SMOOTHING) * value
        smooth = average / (1 - SMOOTHING ** (i + 1))
        result.smoothed.append(smooth)
        lowest = min(lowest, smooth)
        if progress is not None:
            progress(i + 1, steps, lr, smooth)
        if i > 5 and smooth > RUNAWAY * lowest:
            result.stopped = f"the loss ran away at a learning rate of {lr:.2g}"
            break
    else:
        result.stopped = f"finished the sweep at {end_lr:g}"
    return result


def _longest_fall(values: np.ndarray) -> tuple[int, int]:
    """The valley: where the longest strictly falling subsequence of the values ends, and
    as many points back from there as it is long (fastai's reading: noise at the tiniest
    rates joins the subsequence early, so its first element would start the valley where
    the loss has not begun to fall)."""
    n = len(values)
    length = [1] * n
    best = 0
    for i in range(1, n):
        for j in range(i):
            if values[i] < values[j] and length[j] + 1 > length[i]:
                length[i] = length[j] + 1
        if length[i] > length[best]:
            best = i
    return max(0, best - length[best]), best


def _suggest(result: LRFindResult) -> None:
    lrs = np.asarray(result.lrs, dtype=float)
    smooth = np.asarray(result.smoothed, dtype=float)
    keep = np.isfinite(smooth)
    lrs, smooth = lrs[keep], smooth[keep]
    # As fastai: leave out the first tenth (the average is still settling) and the
    # last few points (the run-away that stopped the sweep).
    lo, hi = len(smooth) // 10, len(smooth) - 5
    if hi - lo < 5:
        raise LRFindError(
            f"The sweep stopped after {len(result.losses)} steps ({result.stopped}), too few to "
            "read a learning rate; lower --end-lr or raise --steps."
        )
    lrs, smooth = lrs[lo:hi], smooth[lo:hi]
    start, end = _longest_fall(smooth)
    if end - start < 2:
        raise LRFindError(
            f"The loss never fell over the sweep from {lrs[0]:.2g} to {lrs[-1]:.2g} "
            f"({result.stopped}); check the data and the network before the learning rate."
        )
    result.suggestion = float(lrs[start + (end - start) // 2])
    # Smith's range: the loss has started to fall once it is a tenth of the way from its
    # level at the start of the sweep down to its lowest; it stops falling at the lowest.
    lowest = int(np.argmin(smooth))
    level = float(np.median(smooth[: max(1, len(smooth) // 10)]))
    falling = np.nonzero(smooth[: lowest + 1] < level - 0.1 * (level - smooth[lowest]))[0]
    result.low = float(lrs[falling[0] if falling.size else start])
    result.high = float(lrs[lowest])
    slopes = np.gradient(smooth, np.log(lrs))
    result.steepest = float(lrs[int(np.argmin(slopes))])
    result.minimum_tenth = float(lrs[int(np.argmin(smooth))] / 10)
