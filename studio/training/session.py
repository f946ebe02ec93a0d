"""One training run end to end: a run folder, diagnosis, the engine, a summary.

The CLI and the window both start training through `train`, so both keep the same run
folders and findings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from studio.document import Project
from studio.training.diagnosis import Diagnosis, Finding
from studio.training.engine import FitResult, Trainer
from studio.training.runs import Run


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
    listeners: Iterable[Callable[[dict], None]] = (),
    resume: Run | None = None,
    stop: threading.Event | None = None,
    pause: threading.Event | None = None,
    emit_hz: float = 30.0,
) -> TrainingOutcome:
    """Train a project; keeps a run folder under runs_root (None: keep nothing)."""
    listeners = list(listeners)
    state = resume.load_state("last") if resume else None
    if resume is not None:
        project = resume.project()
    trainer_box: list[Trainer] = []
    diagnosis = Diagnosis(project, on_finding=lambda f: trainer_box[0].report_finding(f))
    run = None
    trainer = Trainer(
        project,
        base=base,
        device=device,
        listeners=[diagnosis, *listeners],
        stop=stop,
        pause=pause,
        emit_hz=emit_hz,
    )
    trainer_box.append(trainer)
    if runs_root is not None:
        run = Run.create(
            runs_root, project, str(trainer.device), resumed_from=resume.id if resume else None
        )
        trainer.run = run
        trainer.listeners.append(_RunLog(run))
    result = trainer.fit(resume=state)
    if run is not None:
        run.save_weights("last", trainer.model)
    summary = {
        **result.to_dict(),
        "project": project.name,
        "device": str(trainer.device),
        "run": run.id if run else None,
        "run_folder": str(run.path) if run else None,
        "findings": [f.to_dict() for f in diagnosis.findings],
        "data": trainer.data.report(),
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
    }
    if run is not None:
        run.write_json("findings.json", summary["findings"])
        run.finish(summary)
    return TrainingOutcome(run, result, diagnosis.findings, summary)


class _RunLog:
    """Writes epoch metrics to the run folder as they arrive."""

    def __init__(self, run: Run):
        self.run = run

    def __call__(self, event: dict) -> None:
        if event["type"] == "epoch":
            self.run.append_metrics({k: v for k, v in event.items() if k != "type"})
