"""One training run end to end: a run folder, diagnosis, the engine, a summary.

The CLI and the window both start training through `train`, so both keep the same run
folders and findings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from studio.analysis import analyze
from studio.cpus import fit_torch_threads
from studio.data.loader import worker_stopped
from studio.data.prepare import PreparedData
from studio.data.resampling import Fold
from studio.document import Project
from studio.errors import DataError, StudioError
from studio.memory import estimate, is_out_of_memory, out_of_memory_sentence
from studio.pretrained import project_folder
from studio.training import distributed, events
from studio.training.callbacks import Callback
from studio.training.diagnosis import Diagnosis, Finding
from studio.training.engine import FitResult, Trainer
from studio.training.eventlog import EventLog
from studio.training.model_card import CARD, model_card
from studio.training.runs import Run
from studio.training.series import SeriesLog
from studio.training.setup import pick_device
from studio.training.tensorboard import TensorBoardLog, writer_class


@dataclass
class TrainingOutcome:
    run: Run | None
    result: FitResult
    findings: list[Finding]
    summary: dict


def train(
    project: Project,
    *,
    runs_root: Path | None = Path("runs"),
    base: Path = Path("."),
    device: str | None = None,
    listeners: Iterable[Callable[[events.Event], None]] = (),
    callbacks: Iterable[Callback] = (),
    resume: Run | None = None,
    stop: threading.Event | None = None,
    pause: threading.Event | None = None,
    emit_hz: float = 30.0,
    force: bool = False,
    fold: Fold | None = None,
    experiment: str | None = None,
    data: PreparedData | None = None,
) -> TrainingOutcome:
    """Train a project once; keeps a run folder under runs_root (None: keep nothing).

    `fold`, `experiment`: this run is one fold of a k-fold, bootstrap or leave-one-out
    experiment (studio/training/experiment.py runs them all); `data`: its splits, when
    the caller prepared them already. A resumed fold keeps its fold and experiment.
    `listeners` hear every event (studio/training/events.py); `callbacks` hook into the
    loop (studio/training/callbacks.py), their `on_event` after the listeners."""
    listeners = list(listeners)
    fit_torch_threads()  # a container's CPU quota, not the machine's cores (studio/cpus.py)
    world = distributed.current()
    if not world.main:
        # One of several data-parallel processes: rank 0 keeps the run folder, the
        # events and the diagnosis; this one trains its shard and says nothing.
        runs_root, listeners = None, []
    state = resume.load_state("last") if resume else None
    if state is not None:
        distributed.check_resume(state, world)
    if resume is not None:
        # The run's project; `project` when the caller gave it (the CLI's, with the
        # overrides a resumed run may take: how its data is read).
        project = project if project is not None else resume.project()
        fold, experiment = resume.fold(), resume.experiment()
    with project_folder(base):  # RunBackbone nodes name runs relative to the project
        analysis = analyze(project.network)  # once: the Trainer builds from it too
    if runs_root is not None and project.training.get("tensorboard"):
        writer_class()  # not installed: one sentence before anything is made
    chosen = str(pick_device(device or project.training.get("device", "auto")))
    if analysis.ok and not force:
        needs = estimate(project, analysis, chosen, base)
        if not needs.fits:  # refused before a byte is allocated for it
            raise StudioError(needs.sentence())
    diagnosis = Diagnosis(project)  # it reports through the Trainer, made below
    watchers = [diagnosis, *listeners] if world.main else []
    run = None
    try:
        trainer = Trainer(
            project,
            base=base,
            device=device,
            listeners=watchers,
            callbacks=callbacks,
            stop=stop,
            pause=pause,
            emit_hz=emit_hz,
            data=data,
            fold=fold,
            analysis=analysis,
        )
    except Exception as err:
        if is_out_of_memory(err):
            raise StudioError(
                out_of_memory_sentence(project, analysis, chosen, run=False)
            ) from None
        raise
    diagnosis.on_finding = trainer.report_finding  # (no finding comes before fit)
    if runs_root is not None:
        run = Run.create(
            runs_root,
            project,
            str(trainer.device),
            resumed_from=resume.id if resume else None,
            fold=fold,
            experiment=experiment,
        )
        trainer.run = run
        # How to feed the trained model (its exports carry it): the data as trained on.
        card = model_card(project, trainer.model.input_shape, trainer.data, trainer.loss_name)
        run.write_json(CARD, card)
        series = SeriesLog()
        # events.jsonl: what File → Watch Run… follows (studio/training/eventlog.py).
        logs = [EventLog(run.path)]
        if project.training.get("tensorboard"):
            sample = trainer.data.train.x[:1].to(trainer.device)
            logs.append(TensorBoardLog(run.path, trainer.model, sample))
        trainer.listeners.extend([_RunLog(run), series, *logs])
    try:
        result = trainer.fit(resume=state)
    except BaseException as err:
        if run is not None:
            for log in logs:  # what they hold is written: the run's story up to the error
                log.close()
        error = err if isinstance(err, StudioError) else None
        if is_out_of_memory(err):
            error = StudioError(out_of_memory_sentence(project, analysis, chosen))
        elif worker_stopped(err):
            kept = " The run is marked failed; its last checkpoint is kept." if run else ""
            error = DataError(worker_stopped(err) + kept)
        if run is not None and distributed.peer_lost(err):
            run.release()  # another process died: interrupted, resumable, not failed
        elif run is not None:
            run.fail(
                str(error)
                if error is not None
                else "Aborted (Ctrl-C)."
                if isinstance(err, KeyboardInterrupt)
                else f"{type(err).__name__}: {err}"
            )
        if error is not None and error is not err:
            raise error from None
        raise
    if run is not None:
        run.save_weights("last", trainer.model)
    summary = {
        **result.to_dict(),
        "project": project.name,
        "device": str(trainer.device),
        "threads": torch.get_num_threads(),
        "run": run.id if run else None,
        "run_folder": str(run.path) if run else None,
        "base": str(Path(base).resolve()),  # relative data paths (evaluation reloads them)
        "findings": [f.to_dict() for f in diagnosis.findings],
        "data": trainer.data.report(),
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "processes": world.size,
        "batch_size": {
            "global": project.training["batch_size"],
            "per_process": -(-project.training["batch_size"] // world.size),
        },
        "weights": {k: str(v) for k, v in getattr(trainer.model, "weights_reports", {}).items()},
    }
    if fold is not None:
        summary["fold"] = {**fold.to_dict(), "experiment": experiment}
    if run is not None:
        series.save(run.path / "series.npz")
        run.write_json("findings.json", summary["findings"])
        run.finish(summary)
    return TrainingOutcome(run, result, diagnosis.findings, summary)


class _RunLog:
    """Writes epoch metrics to the run folder as they arrive."""

    def __init__(self, run: Run):
        self.run = run

    def __call__(self, event: events.Event) -> None:
        if isinstance(event, events.Epoch):
            row = event.to_dict()
            del row["type"]
            self.run.append_metrics(row)
