"""The training engine: a Qt-free `fit` that emits plain events to any listener.

The loop keeps every number on the device and copies to the host only when it flushes
(at `emit_hz`, ~30 Hz by default, less often where a flush would take more than
`FLUSH_SHARE` of the time) or at an epoch's end, so a GPU is never stalled by steps where
nothing is sent. Every loss is judged in step order (`rollback.LossGuard`): a run that
diverges stops at the same step whatever the timing, with the last weights a sound loss
proved. Pause, resume and stop are threading events checked between
batches; callbacks stop training by setting `should_stop`. With monitors on, losses are
bit-identical to a run with them off: probes only read, hooks exist only on sampled
steps, and nothing draws from the global random generator that dropout uses.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from studio.analysis import Analysis, analyze
from studio.builder import build_model
from studio.data.augment import build_augmentation
from studio.data.balance import ClassBalance, class_weights
from studio.data.decode import named
from studio.data.loader import fetch
from studio.data.prepare import Batches, PreparedData, on_device, prepare_data
from studio.data.resampling import Fold
from studio.document import Project
from studio.pretrained import project_folder, reporting_downloads
from studio.training import distributed, events
from studio.training.callbacks import (
    STEP_HOOKS,
    Callback,
    CheckpointBest,
    EarlyStopping,
    ReduceLROnPlateau,
    hooked,
)
from studio.training.diagnosis import Finding
from studio.training.monitors import Monitors, Probing
from studio.training.phases import Phases
from studio.training.rollback import DivergenceGuard
from studio.training.setup import (
    TrainingError,
    correct_count,
    hard_labels,
    loss_function,
    make_optimizer,
    make_schedule,
    pick_device,
    pick_loss,
)
from studio.transfer.finetune import FineTuningPlan

Listener = Callable[[dict], None]
EVAL_BATCH = 512
# Outputs up to this many values per batch are kept until the flush, which counts correct
# predictions for all pending steps at once: three small ops a step cost a tiny model ~3%.
DEFER_CORRECT_VALUES = 1 << 14
_NO_AUTOCAST = contextlib.nullcontext()
FLUSH_SHARE = 0.01  # of the training time, at most, spent copying events to the host


@dataclass
class FitResult:
    status: str  # completed, stopped, early_stopped, diverged
    reason: str
    epochs: int
    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "reason": self.reason,
            "epochs": self.epochs,
            "steps": self.steps,
            "seconds": round(self.seconds, 3),
            "history": self.history,
            "best": self.best,
            "test": self.test,
        }


class Trainer:
    def __init__(
        self,
        project: Project,
        *,
        base: Path = Path("."),
        device: str | None = None,
        listeners: Iterable[Listener] = (),
        callbacks: Iterable[Callback] = (),
        run=None,
        stop: threading.Event | None = None,
        pause: threading.Event | None = None,
        emit_hz: float = 30.0,
        data: PreparedData | None = None,
        fold: Fold | None = None,
        analysis: Analysis | None = None,
    ):
        self.project = project
        self.settings = project.training
        self.listeners = list(listeners)
        # The caller's callbacks hear setup's events (a download); the standard ones join
        # once the optimizer exists.
        self.callbacks: list[Callback] = list(callbacks)
        self.run = run
        self.stop_event = stop or threading.Event()
        self.pause_event = pause or threading.Event()
        self.emit_interval = 1.0 / emit_hz if emit_hz > 0 else 0.0
        self._flush_interval = self.emit_interval  # stretched when flushing is costly
        self._flush_cost = 0.0  # seconds, smoothed
        self.should_stop = False
        self.stop_status = ""
        self.stop_reason = ""
        self.step = 0
        self.epoch = 0

        if analysis is None:  # (the caller's, when it analysed the network already)
            with project_folder(base):  # RunBackbone nodes name runs relative to the project
                analysis = analyze(project.network)
        self.analysis = analysis
        # One of several data-parallel processes when torchrun started this one.
        self.world = distributed.current()
        self.device = distributed.device_for(
            self.world, pick_device(device or self.settings["device"])
        )
        distributed.join(self.world, self.device)
        # Reading each loss before its update is free on the CPU; on a GPU it would stall
        # every step, so losses are checked at each flush and a Rollback undoes the damage.
        self.check_each_loss = self.device.type == "cpu"
        # A pretrained backbone may download its weights first: long work, so say how far.
        with reporting_downloads(self._download_progress()):
            self.model = build_model(project, base=base, analysis=analysis).to(self.device)
        # What steps call: the model, or DDP around it (which averages the gradients).
        self.forward = self.model
        if self.world.active:
            distributed.sync_batch_norm(self.model, self.device)
        # A fold of an experiment trains and validates on the fold's samples.
        self.data = data or prepare_data(
            project.data, self.model.input_shape, self.settings["seed"], base, fold=fold
        )
        head = project.network.nodes[analysis.output_id]
        task = head.params.get("task") if head.type == "Output" else None
        self.loss_name = pick_loss(self.settings["loss"], task, self.data.is_classification)
        self._check_head(head, analysis.output_shape)
        self.class_weights = self._class_weights()
        self.loss_fn = loss_function(self.loss_name, self.class_weights)

        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not trainable:
            raise TrainingError(
                "Every layer is frozen, so there is nothing to train; unfreeze at least the head."
            )
        # Backbone stages frozen or unfrozen by epoch; without a backbone it changes nothing.
        self.plan = FineTuningPlan(self.model, self.settings["fine_tuning"])
        self.optimizer = make_optimizer(
            self.settings["optimizer"], self.plan.optimizer_params(trainable)
        )
        augment = build_augmentation(
            project.data["augmentation"],
            self.data.sample_shape,
            len(self.data.classes),
            self.data.train.x,
        )
        if augment is not None and augment.mixes and "cross_entropy" not in self.loss_name:
            raise TrainingError(
                f"Mixup and cutmix mix class labels, which the {self.loss_name} loss cannot "
                "take; turn them off in data.augmentation or use a classification head."
            )
        if augment is None:  # augmentation draws on the host, so its batches start there
            self.data = on_device(self.data, self.device)
        self.batches = Batches(
            self.data.train,
            self.settings["batch_size"],
            project.data["shuffle"],
            self.settings["seed"],
            transform=augment,
            balanced=self.settings["sampling"] == "balanced",
            world=self.world,
            workers=project.data["workers"],
            pin=self.device.type == "cuda",
        )
        if len(self.batches) == 0:
            raise TrainingError(
                "The training split is empty; lower data.validation/data.test or add data."
            )
        self.scheduler, self.schedule_per_batch = make_schedule(
            self.settings["schedule"], self.optimizer, self.settings["epochs"], len(self.batches)
        )
        self.plan.bind(self.optimizer, self.scheduler)
        self.callbacks = self._standard_callbacks() + list(callbacks)
        node_types = {nid: n.type for nid, n in project.network.nodes.items()}
        activations = {nid: n.activation for nid, n in project.network.nodes.items()}
        monitoring = self.settings["monitors"]
        if not self.world.main:  # rank 0 watches (after the all-reduce: global gradients)
            monitoring = {**monitoring, "enabled": False}
        self.monitors = Monitors(self.model, node_types, activations, monitoring)
        reg = self.settings["regularization"]
        alpha = reg["elastic_alpha"]
        self.l1 = reg["l1"] + reg["elastic_net"] * alpha
        self.l2 = reg["l2"] + reg["elastic_net"] * (1 - alpha)
        self.penalized = [p for p in trainable if p.dim() > 1]
        self._setup_precision()
        self.history: list[dict] = []
        self.divergence = DivergenceGuard(each_loss=self.check_each_loss)
        self.hooked_callbacks: list[Callback] = list(self.callbacks)  # all of them: fit()
        self._hooks: dict[str, list[Callback]] = {name: [] for name in STEP_HOOKS}
        self.step_seconds = 0.0
        self.diverged_at: int | None = None
        self._resume_epoch_totals = (0.0, 0, 0)
        self._epoch_generator_state = self.batches.generator.get_state()
        self._batch_in_epoch = 0
        self._unreadable: dict[str, str] = {}  # files already reported by _report_unreadable

    # -- setup helpers ------------------------------------------------------------------
    def _download_progress(self):
        last = [0.0]

        def report(file: str, done: int, total: int) -> None:
            now = time.perf_counter()
            if done in (0, total) or now - last[0] >= self.emit_interval:
                last[0] = now
                self.emit(events.Download(file=file, done=done, total=total))

        return report

    def _check_head(self, head, output_shape) -> None:
        if self.loss_name == "cross_entropy":
            classes = len(self.data.classes)
            if not self.data.is_classification:
                raise TrainingError(
                    "The data has real-valued targets; set the Output task to regression."
                )
            if output_shape != (classes,):
                raise TrainingError(
                    f"The output layer '{head.id}' gives {output_shape[0] if len(output_shape) == 1 else output_shape} "
                    f"values but the data has {classes} classes; set its units to {classes}."
                )
        elif self.loss_name == "binary_cross_entropy" and len(self.data.classes) != 2:
            raise TrainingError(
                f"Binary cross entropy needs 2 classes but the data has {len(self.data.classes)}; "
                "use the multiclass task."
            )

    def _class_weights(self) -> torch.Tensor | None:
        """Inverse class frequency of the training split (training.class_weights=auto)."""
        s = self.settings
        if s["sampling"] == "balanced" and not self.data.is_classification:
            raise TrainingError(
                "Field 'training.sampling' is balanced, which draws every class equally "
                "often, but the data has real-valued targets, not classes; set it to shuffle."
            )
        if s["class_weights"] != "none" and "cross_entropy" not in self.loss_name:
            raise TrainingError(
                f"Field 'training.class_weights' is {s['class_weights']}, which weights a "
                f"cross-entropy loss by class, but this project trains with the "
                f"{self.loss_name} loss; set it to none."
            )
        if s["class_weights"] == "none":
            return None
        weights = class_weights(self.data.train.y, len(self.data.classes))
        return weights.to(self.device)

    def _standard_callbacks(self) -> list[Callback]:
        s = self.settings
        out: list[Callback] = []
        if s["schedule"]["name"] == "plateau":
            sch = s["schedule"]
            out.append(
                ReduceLROnPlateau(sch["monitor"], sch["factor"], sch["patience"], sch["min_lr"])
            )
        es = s["early_stopping"]
        if es["enabled"]:
            out.append(EarlyStopping(es["monitor"], es["patience"], es["mode"], es["min_delta"]))
        out.append(CheckpointBest(s["checkpoint"]["monitor"], s["checkpoint"]["mode"]))
        return out

    def _setup_precision(self) -> None:
        precision = self.settings["precision"]
        self.autocast_dtype = None
        self.scaler = None
        if precision != "fp32" and self.device.type == "cuda":
            self.autocast_dtype = torch.bfloat16 if precision == "bf16" else torch.float16
            if precision == "fp16":
                self.scaler = torch.amp.GradScaler("cuda")

    def _autocast(self):
        if self.autocast_dtype is None:
            return _NO_AUTOCAST  # (a nullcontext is reusable: not a new one per step)
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def request_stop(self, status: str, reason: str) -> None:
        """Stop after the current step (from a callback, a listener or the diagnosis)."""
        self.should_stop = True
        self.stop_status = status
        self.stop_reason = reason

    def report_finding(self, finding) -> None:
        """Announce a diagnosis finding to every listener (the run log, the window)."""
        self.emit(events.Finding(**finding.to_dict()))

    # -- events -------------------------------------------------------------------------
    def emit(self, event: events.Event) -> None:
        for listener in self.listeners:
            listener(event)
        for cb in self.callbacks:
            cb.on_event(self, event)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # -- the loop -----------------------------------------------------------------------
    def fit(self, resume: dict | None = None) -> FitResult:
        s = self.settings
        epochs, steps_per_epoch = s["epochs"], len(self.batches)
        deterministic_before = torch.are_deterministic_algorithms_enabled()
        if s["deterministic"]:
            torch.use_deterministic_algorithms(True, warn_only=True)
        # Dropout and other global draws; each process its own stream (rank 0: as alone).
        torch.manual_seed(s["seed"] + self.world.rank)
        start_epoch, skip = 0, 0
        if resume is not None:
            start_epoch, skip = self._restore(resume)
        self.emit(self._start_event(epochs, steps_per_epoch))
        # What each backbone loaded; a partial load must be seen, not just logged.
        for node_id, report in getattr(self.model, "weights_reports", {}).items():
            self.emit(
                events.Pretrained(
                    node=node_id,
                    report=str(report),
                    mismatched=bool(getattr(report, "mismatched", False)),
                )
            )
        self._wrap()
        self._hook_up()
        for cb in self.hooked_callbacks:
            cb.on_fit_start(self)

        started = time.perf_counter()
        self._pending_loss: list[torch.Tensor] = []
        self._pending_correct: list[torch.Tensor] = []
        self._pending_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._pending_batch: list[int] = []
        self._pending_steps: list[int] = []
        self._pending_lr: list[float] = []
        self._last_flush = time.perf_counter()
        self.diverged_at = None
        status, reason = "completed", f"finished {epochs} epochs"
        try:
            for epoch in range(start_epoch, epochs):
                self.epoch = epoch
                for cb in self.hooked_callbacks:  # the fine-tuning plan's phase first
                    cb.on_epoch_start(self, epoch)
                # The shuffle order is drawn from this state; a resumed run replays it.
                self._epoch_generator_state = self.batches.generator.get_state()
                outcome = self._train_epoch(epoch, skip)
                if outcome == "ok" and self._flush(force=True) == "diverged":
                    outcome = "diverged"  # seen only now, in the epoch's last steps (GPU)
                self._report_unreadable()
                skip = 0
                if outcome == "diverged":
                    status, reason = "diverged", self.stop_reason
                    break
                if outcome == "stopped":
                    status = self.stop_status or "stopped"
                    reason = self.stop_reason or "stopped by request"
                    if self.should_stop and not self.world.active:
                        self._save_interrupted()  # (several processes: saved together)
                    break
                metrics = self._epoch_metrics(epoch)
                self._report_unreadable()  # (validation's files too)
                if self.scheduler is not None and not self.schedule_per_batch:
                    self.scheduler.step()
                for cb in self.hooked_callbacks:
                    cb.on_epoch_end(self, epoch, metrics)
                self._batch_in_epoch = 0
                self._epoch_generator_state = self.batches.generator.get_state()
                self.epoch = epoch + 1
                self._checkpoint(batch_in_epoch=0)
                if self.world.active:  # a finding on rank 0 stops every process here
                    flag = torch.tensor([float(self.should_stop)], device=self.device)
                    self.should_stop = bool(distributed.total(flag)[0] > 0)
                if self.should_stop:
                    status, reason = self.stop_status or "early_stopped", self.stop_reason
                    break
        finally:
            self._flush(force=True)
            self.batches.close()
            if s["deterministic"] and not deterministic_before:
                torch.use_deterministic_algorithms(False)
        result = FitResult(
            status,
            reason,
            len(self.history),
            self.step,
            time.perf_counter() - started,
            self.history,
            self._best_summary(),
            self._test_metrics(),
        )
        self._report_unreadable()  # (the test split's files too)
        for cb in self.hooked_callbacks:
            cb.on_fit_end(self, result)
        self.emit(events.End(**result.to_dict()))
        return result

    def _report_unreadable(self) -> None:
        """Streamed image files that failed to decode this epoch (they were left out of
        their batches): one finding naming the new ones, as the skipped-files report
        names those found at load time."""
        new = {f: why for f, why in self.batches.unreadable.items() if f not in self._unreadable}
        if not new:
            return
        self._unreadable.update(new)
        names = "; ".join(f"{named(f)} ({why})" for f, why in list(new.items())[:5])
        more = f" and {len(new) - 5} more" if len(new) > 5 else ""
        self.report_finding(
            Finding(
                kind="unreadable_images",
                severity="warning",
                step=max(self.step - 1, 0),  # the epoch's last step
                epoch=self.epoch,
                title="Images that could not be decoded",
                message=f"{len(new)} image file(s) failed to decode while training and were "
                f"left out of their batches: {names}{more}.",
                remedy="Replace or delete them; data.storage memory or disk names such files "
                "before training starts.",
                evidence={"files": dict(new)},
            )
        )

    def _hook_up(self) -> None:
        """The studio's own hooks go before the standard callbacks and the caller's: the
        fine-tuning plan's phase (first at an epoch's start), the monitors, and the
        divergence guard (after the monitors, so a diverged step's probes are closed).
        They are not in `callbacks`, whose states checkpoints keep by position."""
        self.hooked_callbacks = [
            Phases(self.plan),
            Probing(self.monitors),
            self.divergence,
            *self.callbacks,
        ]
        self._hooks = {name: hooked(self.hooked_callbacks, name) for name in STEP_HOOKS}

    def training_changed(self, epoch: int, label: str) -> None:
        """Which parameters train changed (the fine-tuning plan entered a phase): the
        monitors and DDP learn it, and the plots mark it with `label`."""
        self.monitors.training_changed()
        self._wrap()  # DDP learns which parameters train when it wraps the model
        self.emit(events.Phase(step=self.step, epoch=epoch, label=label))

    def _wrap(self) -> None:
        """Several processes: DDP around the model, averaging the gradients in backward."""
        if not self.world.active:
            return
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        self.forward = DistributedDataParallel(self.model, device_ids=ids)

    def _together(self, loss, out, y) -> tuple:
        """Several processes, one collective per step: the whole batch's mean loss, its
        size, its correct count, and whether any process asks to stop."""
        n = y.shape[0]
        right = (
            correct_count(self.loss_name, out.detach(), y).float()
            if self.data.is_classification
            else torch.zeros((), device=self.device)
        )
        stop = float(self.stop_event.is_set() or self.should_stop)
        numbers = torch.stack(
            [
                loss.detach().float() * n,
                torch.tensor(float(n), device=self.device),
                right,
                torch.tensor(stop, device=self.device),
                torch.tensor(float(self._pause_asked()), device=self.device),
            ]
        )
        distributed.total(numbers)
        whole = numbers[1]
        stopped = bool(numbers[3] > 0)
        if numbers[4] > 0 and not stopped:
            stopped = self._paused_together()
        return numbers[0] / whole, whole, numbers[2], stopped

    def _pause_asked(self) -> bool:
        """Pause, for several processes: the window's Pause (a `pause` file in the run
        folder, which rank 0 looks for), or this process's pause event."""
        if self.pause_event.is_set():
            return True
        return self.run is not None and (self.run.path / "pause").exists()

    def _paused_together(self) -> bool:
        """Every process waits while any asks to pause; True when asked to stop meanwhile."""
        while True:
            time.sleep(0.1)
            flags = torch.tensor(
                [float(self.stop_event.is_set()), float(self._pause_asked())], device=self.device
            )
            distributed.total(flags)
            if flags[0] > 0:
                return True
            if flags[1] == 0:
                return False

    def _train_epoch(self, epoch: int, skip: int) -> str:
        """One pass over the training batches: "ok", "stopped" or "diverged"."""
        self.model.train()
        # Epoch totals are host numbers, summed step by step as each flush brings the
        # losses over; per step only the loss and the correct count stay on the device.
        loss_sum, correct, seen = self._resume_epoch_totals if skip else (0.0, 0, 0)
        self._epoch_loss, self._epoch_correct, self._epoch_seen = (
            float(loss_sum),
            int(correct),
            seen,
        )
        self._defer = None  # whether to count correct predictions at the flush; set at step one
        self._batch_in_epoch = skip
        # Looked up once: a tiny network's step is a few hundred µs, and each lookup counts.
        alone, clock = not self.world.active, time.perf_counter
        stop_asked, pause_asked = self.stop_event.is_set, self.pause_event.is_set
        started = clock()  # this step's clock (flushes and callbacks excluded)
        for x, y in self.batches.epoch(skip):
            if alone and stop_asked():  # several processes: decided together
                self._save_interrupted()
                return "stopped"
            if pause_asked():
                if self._wait_while_paused() == "diverged":
                    return "diverged"
                started = clock()
            outcome = self._train_step(x, y, started)
            if outcome != "ok":
                return outcome
            if clock() - self._last_flush >= self._flush_interval and self._flush() == "diverged":
                return "diverged"
            if self.should_stop and alone:  # several processes: at the next step, together
                return "stopped"
            started = clock()
        return "ok"

    def _wait_while_paused(self) -> str:
        while self.pause_event.is_set() and not self.stop_event.is_set():
            if self._flush(force=True) == "diverged":
                return "diverged"
            time.sleep(0.05)
        return "ok"

    def _train_step(self, x: torch.Tensor, y: torch.Tensor, started: float) -> str:
        """One step, with the callbacks' hooks at their points (studio/training/callbacks.py):
        "ok", or "stopped" / "diverged" when the step was begun and not taken."""
        step, hooks, world = self.step, self._hooks, self.world
        if x.device != self.device or y.device != self.device:
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
        for cb in hooks["on_train_batch_start"]:
            cb.on_train_batch_start(self, step)
        with self._autocast():
            out = self.forward(x)
            loss = self.loss_fn(out.float(), y)
        reported, together = loss.detach(), None
        if world.active:
            loss, reported, together = self._loss_together(loss, out, y)
        for cb in hooks["on_before_backward"]:
            cb.on_before_backward(self, step, reported)
        if self.diverged_at is not None or (together is not None and together[2]):
            for cb in hooks["on_step_skipped"]:
                cb.on_step_skipped(self, step)
            if self.diverged_at is not None:
                return "diverged"
            self._save_interrupted()
            return "stopped"
        objective = loss + self._penalty() if (self.l1 or self.l2) else loss
        self.optimizer.zero_grad(set_to_none=True)
        (self.scaler.scale(objective) if self.scaler else objective).backward()
        clip = self.settings["clipping"]
        if self.scaler and (clip["max_norm"] or clip["max_value"]):
            self.scaler.unscale_(self.optimizer)
        for cb in hooks["on_after_backward"]:
            cb.on_after_backward(self, step)
        self._clip_gradients(step, clip)
        for cb in hooks["on_before_optimizer_step"]:
            cb.on_before_optimizer_step(self, step)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        for cb in hooks["on_after_optimizer_step"]:
            cb.on_after_optimizer_step(self, step)
        if self.scheduler is not None and self.schedule_per_batch:
            self.scheduler.step()
        self._count_step(step, out, y, reported, together)
        self.step_seconds = time.perf_counter() - started
        for cb in hooks["on_step_end"]:
            cb.on_step_end(self, step)
        return "ok"

    def _loss_together(self, loss, out, y) -> tuple:
        """Several processes: (the loss to back-propagate, the whole batch's mean loss,
        (its size, its correct count, whether any process asks to stop))."""
        if y.shape[0] == 0:  # a last batch smaller than the processes: none here
            loss = out.float().sum() * 0.0
        reported, whole, right, stop = self._together(loss, out, y)
        # DDP averages the processes' gradients; weighting each loss by its share of the
        # batch makes that the gradient of the whole batch's mean loss.
        loss = loss * (y.shape[0] * self.world.size / whole)
        return loss, reported, (whole, right, stop)

    def _clip_gradients(self, step: int, clip: dict) -> None:
        """training.clipping: by the norm of all gradients together (from the norms the
        monitors computed this step, or computed now), then by value."""
        if clip["max_norm"]:
            params = self.monitors.params
            grads, norms = self.monitors.norms(step)
            if grads:
                total = torch.linalg.vector_norm(torch.stack(norms))
                torch.nn.utils.clip_grads_with_norm_(params, clip["max_norm"], total)
        if clip["max_value"]:
            torch.nn.utils.clip_grad_value_(self.monitors.params, clip["max_value"])

    def _count_step(self, step: int, out, y, reported, together) -> None:
        """The step's loss, batch size and correct count join the pending numbers (copied
        to the host at the next flush)."""
        batch = y.shape[0]
        if together is not None:  # the whole batch's numbers, the same in every process
            whole, right, _ = together
            batch = int(whole)
            self._pending_correct.append(right.round().long())
            self._defer = False
        self._epoch_seen += batch
        self._pending_loss.append(reported)
        if self.data.is_classification and together is None:
            if self._defer is None:
                self._defer = out.numel() <= DEFER_CORRECT_VALUES
            if self._defer:
                self._pending_outputs.append((out.detach(), hard_labels(y)))
            else:
                self._pending_correct.append(correct_count(self.loss_name, out.detach(), y))
        self._pending_batch.append(batch)
        self._pending_steps.append(step)
        self._pending_lr.append(self.lr)
        self.step += 1
        self._batch_in_epoch = self.batches.next_number

    def _penalty(self) -> torch.Tensor:
        total = torch.zeros((), device=self.device)
        if self.l1:
            total = total + self.l1 * torch.stack(torch._foreach_norm(self.penalized, 1)).sum()
        if self.l2:
            total = (
                total + self.l2 * torch.stack(torch._foreach_norm(self.penalized, 2)).square().sum()
            )
        return total

    def diverge(self, step: int, value: float, reason: str, restored_from: int) -> str:
        """The loss ran away at `step` (a divergence callback judged it) and the weights of
        step `restored_from` are back: say so, keep a checkpoint, and end training."""
        self.diverged_at = step
        if restored_from == 0:
            kept = "the weights it started with were restored"
        else:
            kept = (
                f"the weights of step {restored_from + 1}, the last a sound loss proved, "
                "were restored"
            )
        self.stop_reason = f"{reason}; training stopped and {kept}"
        self.emit(
            events.Diverged(
                step=step, loss=value, reason=self.stop_reason, restored_step=restored_from
            )
        )
        self._checkpoint(self._batch_in_epoch)
        return "diverged"

    def _save_interrupted(self) -> None:
        self._checkpoint(self._batch_in_epoch)

    def _checkpoint(self, batch_in_epoch: int) -> None:
        """The resumable checkpoint. Several processes all call this at the same step:
        each one's random state (dropout) travels to rank 0, which writes the file."""
        states = distributed.gather(torch.get_rng_state()) if self.world.active else None
        if self.run is None:
            return
        state = self.state_dict(batch_in_epoch)
        if states is not None:
            state.update(world_size=self.world.size, rng_ranks=states)
        self.run.save_state("last", state)

    # -- host transfers -----------------------------------------------------------------
    def _flush(self, force: bool = False) -> str:
        started = self._last_flush = time.perf_counter()
        try:
            return self._send_pending()
        finally:
            if self.emit_interval > 0:
                # A flush costs a few hundred µs on a slow machine: at most FLUSH_SHARE of
                # the time goes to it, so a step as short as a flush is not flushed each time.
                cost = time.perf_counter() - started
                self._flush_cost = 0.8 * self._flush_cost + 0.2 * cost
                self._flush_interval = max(self.emit_interval, self._flush_cost / FLUSH_SHARE)

    def _send_pending(self) -> str:
        if self._pending_loss:
            losses, correct = self._pending_values()
            batches = np.array(self._pending_batch)
            event = events.Steps(
                epoch=self.epoch,
                step=np.array(self._pending_steps),
                loss=losses,
                accuracy=correct / batches if self.data.is_classification else None,
                lr=np.array(self._pending_lr),
                batches_per_epoch=len(self.batches),
            )
            self._epoch_loss, self._epoch_correct = self._add_to_totals(losses, correct)
            self._pending_loss, self._pending_correct, self._pending_outputs = [], [], []
            self._pending_batch, self._pending_steps, self._pending_lr = [], [], []
            self.emit(event)
            if self.diverged_at is None:
                for cb in self._hooks["on_losses"]:
                    cb.on_losses(self, event.step, losses)
                if self.diverged_at is not None:
                    return "diverged"
        for event in self.monitors.flush():
            self.emit(event)
        return "ok"

    def _pending_values(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The pending losses and correct counts, copied to the host in one transfer."""
        n = len(self._pending_loss)
        stacked = torch.stack(self._pending_loss).float()
        if self._pending_outputs:
            stacked = torch.cat([stacked, self._deferred_correct().float()])
        elif self._pending_correct:
            stacked = torch.cat([stacked, torch.stack(self._pending_correct).float()])
        values = np.array(stacked.tolist())
        counted = self._pending_outputs or self._pending_correct
        return values[:n], values[n:] if counted else None

    def _deferred_correct(self) -> torch.Tensor:
        """Correct predictions of each pending step, as `correct_count` gives them."""
        outs, ys = zip(*self._pending_outputs)
        out, y = torch.cat(outs), torch.cat(ys)
        if self.loss_name == "cross_entropy":
            hits = (out.argmax(1) == y).reshape(len(y), -1).sum(1)
        elif self.loss_name == "binary_cross_entropy":
            hits = ((out.reshape(-1) > 0).long() == y).long()
        else:  # a regression loss on class labels counts nothing, like correct_count
            hits = torch.zeros(len(y), dtype=torch.long, device=y.device)
        if len(ys) == 1:  # one step (a slow model flushes every step): no regrouping
            return hits.sum().reshape(1)
        steps = np.repeat(np.arange(len(ys)), [len(t) for t in ys])
        step_of = torch.from_numpy(steps).to(y.device, non_blocking=True)
        return torch.zeros(len(ys), dtype=torch.long, device=y.device).index_add_(
            0, step_of, hits.long()
        )

    def _add_to_totals(self, losses: np.ndarray, correct: np.ndarray | None) -> tuple[float, int]:
        """Epoch totals with these steps added, in step order (so flush timing never matters)."""
        total = self._epoch_loss
        for value, batch in zip(losses.tolist(), self._pending_batch):
            total += value * batch
        right = self._epoch_correct + (int(correct.sum()) if correct is not None else 0)
        return total, right

    # -- evaluation ---------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, split) -> dict:
        if len(split) == 0:
            return {}
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        count = torch.zeros((), device=self.device)
        # Several processes: each evaluates its shard, and the sums are added up.
        mine = self.world.shard(torch.arange(len(split), device=split.x.device))
        for start in range(0, len(mine), EVAL_BATCH):
            # (One process: a slice, so no copy of in-memory samples is made.)
            at = (
                mine[start : start + EVAL_BATCH]
                if self.world.active
                else slice(start, start + EVAL_BATCH)
            )
            # Streamed files that fail to decode are left out, as in training, and named.
            x, y, problems = fetch(split, at)
            self.batches.unreadable.update(problems)
            if not len(y):
                continue
            x, y = x.to(self.device), y.to(self.device)
            with self._autocast():
                out = self.model(x)
            loss_sum += self.loss_fn(out.float(), y) * len(y)
            correct += correct_count(self.loss_name, out, y)
            count += len(y)
        self.model.train()
        sums = distributed.total(torch.stack([loss_sum, correct.float(), count]))
        loss, right, n = sums.tolist()
        if not n:  # every sample's file failed: no figure is better than a made-up one
            return {}
        out = {"loss": loss / n}
        if self.data.is_classification:
            out["accuracy"] = right / n
        return out

    def _epoch_metrics(self, epoch: int) -> dict:
        self._flush(force=True)
        seen = max(self._epoch_seen, 1)
        metrics = {
            "epoch": epoch + 1,
            "step": self.step,
            "train_loss": self._epoch_loss / seen,
            "lr": self.lr,
        }
        if self.data.is_classification:
            metrics["train_accuracy"] = self._epoch_correct / seen
        val = self.evaluate(self.data.validation)
        metrics.update({f"val_{k}": v for k, v in val.items()})
        self.history.append(metrics)
        self.emit(
            events.Epoch(
                epoch=metrics["epoch"],
                step=metrics["step"],
                epochs=self.settings["epochs"],
                metrics={k: v for k, v in metrics.items() if k not in ("epoch", "step")},
            )
        )
        return metrics

    def _test_metrics(self) -> dict:
        return self.evaluate(self.data.test) if len(self.data.test) else {}

    def _best_summary(self) -> dict:
        ckpt = next((c for c in self.callbacks if isinstance(c, CheckpointBest)), None)
        if ckpt is None or ckpt.best.epoch < 0:
            return {}
        best = (
            self.history[ckpt.best.epoch - (self.history[0]["epoch"] - 1)] if self.history else {}
        )
        return {
            "monitor": ckpt.best.monitor,
            "value": ckpt.best.value,
            "epoch": ckpt.best.epoch + 1,
            "metrics": best,
        }

    def _start_event(self, epochs: int, steps_per_epoch: int) -> events.Start:
        analysis = self.analysis  # of the network the model was built from
        return events.Start(
            project=self.project.name,
            device=str(self.device),
            threads=torch.get_num_threads(),
            epochs=epochs,
            batches_per_epoch=steps_per_epoch,
            total_steps=epochs * steps_per_epoch,
            first_step=self.step,
            layers=self.monitors.names,
            layer_types=[layer.type for layer in self.monitors.layers],
            layer_params=[layer.numel for layer in self.monitors.layers],
            activation_layers=[a.name for a in self.monitors.act_layers],
            activation_kinds=[a.kind for a in self.monitors.act_layers],
            trainable_params=analysis.trainable_params,
            frozen_params=analysis.frozen_params,
            loss=self.loss_name,
            classes=self.data.classes,
            train_samples=len(self.data.train),
            data=self._data_report(),
        )

    def _data_report(self) -> str:
        """The data report, and a line when its classes are imbalanced (what to set, or
        what already makes up for it)."""
        report = self.data.report()
        if not self.data.is_classification:
            return report
        balance = ClassBalance.of(self.data.train.y, self.data.classes, "the training split")
        suggestion = balance.suggestion(self.settings)
        return f"{report}\n{suggestion}" if suggestion else report

    # -- checkpoint state ---------------------------------------------------------------
    def state_dict(self, batch_in_epoch: int) -> dict:
        """Everything a resumed run needs to continue exactly where this one is."""
        epoch_loss, epoch_correct = 0.0, 0
        if batch_in_epoch:  # this epoch's totals so far, with the steps not yet flushed
            epoch_loss, epoch_correct = self._epoch_loss, self._epoch_correct
            if self._pending_loss:
                epoch_loss, epoch_correct = self._add_to_totals(*self._pending_values())
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "callbacks": [cb.state_dict() for cb in self.callbacks],
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": batch_in_epoch,
            "generator": self._epoch_generator_state,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "history": self.history,
            "epoch_loss": epoch_loss,
            "epoch_correct": epoch_correct,
            "epoch_seen": self._epoch_seen if batch_in_epoch else 0,
            "loss_guard": self.divergence.guard.state_dict(),
        }

    def _restore(self, state: dict) -> tuple[int, int]:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        for cb, cb_state in zip(self.callbacks, state["callbacks"]):
            cb.load_state_dict(cb_state)
        self.step, self.epoch = state["step"], state["epoch"]
        self.history = list(state["history"])
        distributed.check_resume(state, self.world)
        saved = state.get("world_size", 1)
        torch.set_rng_state(state["rng_ranks"][self.world.rank] if saved > 1 else state["rng"])
        if state["cuda_rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.batches.generator.set_state(state["generator"])
        self.divergence.guard.load_state_dict(state.get("loss_guard", {}))
        self._resume_epoch_totals = (
            state["epoch_loss"],
            state["epoch_correct"],
            state["epoch_seen"],
        )
        return state["epoch"], state["batch_in_epoch"]
