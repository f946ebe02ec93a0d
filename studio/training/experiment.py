"""An experiment: the runs of k-fold, bootstrap or leave-one-out validation, as one thing.

`run_experiment` is how the CLI and the window train: with `training.validation.method`
holdout it is one `train` call; otherwise it loads the data once, trains one run per fold
(each a normal run folder, with a fold.json naming its experiment and fold) and sums them
up: each validation metric's mean ± standard deviation over the runs and a 95 %
confidence interval of that mean.

The interval: for k-fold and leave-one-out, Student's t over the k fold scores (the
textbook interval; the folds share training samples, so it is somewhat too narrow, as
every k-fold interval is). For the bootstrap, the 2.5th and 97.5th percentiles of the
repeats' scores (the percentile bootstrap). A fold's score is its validation metrics at
the checkpoint it keeps as best (what `studio evaluate` evaluates); choosing that epoch on
the validation fold makes the score a little optimistic, and data.test, held out of every
run, is the unbiased number when one is needed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from studio.analysis import analyze
from studio.data.resampling import Fold, cost_warning, describe_method, run_count
from studio.document import Project
from studio.errors import notice
from studio.training import events
from studio.training.session import TrainingOutcome, train

# The validation (and test) metrics an experiment sums up, in the order it shows them.
METRICS = ("val_accuracy", "val_loss", "test_accuracy", "test_loss")
FINISHED = ("completed", "early_stopped")


@dataclass
class ExperimentOutcome:
    """What `run_experiment` did: each run's outcome, and the summary of them all (for a
    holdout experiment, the one run's summary)."""

    outcomes: list[TrainingOutcome]
    summary: dict
    folds: list[Fold] = field(default_factory=list)

    @property
    def last(self) -> TrainingOutcome:
        return self.outcomes[-1]

    @property
    def status(self) -> str:
        return self.summary["status"]


def is_experiment(project: Project) -> bool:
    return project.training["validation"]["method"] != "holdout"


def run_experiment(
    project: Project,
    *,
    runs_root: Path | None = Path("runs"),
    base: Path = Path("."),
    device: str | None = None,
    listeners: Iterable[Callable[[dict], None]] = (),
    stop: threading.Event | None = None,
    pause: threading.Event | None = None,
    emit_hz: float = 30.0,
    force: bool = False,
) -> ExperimentOutcome:
    """Train as `training.validation` says: once (holdout), or once per fold.

    Listeners see, before each fold's run, {"type": "fold", "number", "count", "method",
    "label", "experiment"}; then that run's own events. Stopping stops the fold that runs
    and starts no other; the summary covers the folds that ran."""
    listeners = list(listeners)
    stop = stop or threading.Event()
    kwargs = dict(
        runs_root=runs_root,
        base=base,
        device=device,
        listeners=listeners,
        stop=stop,
        pause=pause,
        emit_hz=emit_hz,
        force=force,
    )
    if not is_experiment(project):
        outcome = train(project, **kwargs)
        return ExperimentOutcome([outcome], outcome.summary)

    from studio.data.prepare import load_raw, prepare_data, split_indices
    from studio.training.runs import new_id

    validation = project.training["validation"]
    analysis = analyze(project.network)
    input_shape = tuple(analysis.layers[analysis.input_id].output_shape)
    seed = project.training["seed"]
    raw = load_raw(project.data, input_shape, base)  # once, for every fold
    rest, _, _ = split_indices(raw.y, 0.0, project.data["test"], seed, bool(raw.classes))
    count = run_count(validation, len(rest))
    warning = cost_warning(validation, len(rest), project.training["epochs"])
    if warning:
        notice(warning)
    method = validation["method"]
    experiment = new_id()
    started = time.monotonic()
    outcomes: list[TrainingOutcome] = []
    folds: list[Fold] = []
    for number in range(count):
        if stop.is_set():
            break
        fold = Fold(method, number, count)
        event = events.Fold(
            **fold.to_dict(),
            label=fold.label,
            experiment=experiment,
            title=describe_method(method, count),
        )
        for listener in listeners:
            listener(event)
        data = prepare_data(project.data, input_shape, seed, base, raw=raw, fold=fold)
        outcomes.append(train(project, fold=fold, experiment=experiment, data=data, **kwargs))
        folds.append(fold)
        if outcomes[-1].result.status not in FINISHED:
            break  # stopped (or diverged): the experiment ends with the fold
    summary = summarize(experiment, method, count, [o.summary for o in outcomes])
    summary["project"] = project.name
    summary["seconds"] = time.monotonic() - started  # data and model set-up included
    return ExperimentOutcome(outcomes, summary, folds)


def fold_scores(summary: dict) -> dict[str, float]:
    """A fold run's validation (and test) metrics at the checkpoint it keeps as best (at
    its last epoch when it kept none)."""
    best = (summary.get("best") or {}).get("metrics") or {}
    if not best and summary.get("history"):
        best = summary["history"][-1]
    scores = {k: float(best[k]) for k in ("val_accuracy", "val_loss") if best.get(k) is not None}
    for k, v in (summary.get("test") or {}).items():
        if isinstance(v, (int, float)):
            scores[f"test_{k}"] = float(v)
    return scores


def statistics(values: list[float], method: str, bounds: tuple = (None, None)) -> dict:
    """mean, std (over runs, n - 1), and the 95 % interval of the mean (see the module's
    docstring for which interval), kept within what the metric can be (`bounds`: an
    accuracy in 0..1, a loss at least 0)."""
    a = np.asarray(values, dtype=float)
    out = {"mean": float(a.mean()), "std": None, "low": None, "high": None, "n": len(a)}
    if len(a) < 2:
        return out
    out["std"] = float(a.std(ddof=1))
    if method == "bootstrap":
        out["low"], out["high"] = (float(v) for v in np.percentile(a, [2.5, 97.5]))
    else:
        from scipy.stats import t

        half = float(t.ppf(0.975, len(a) - 1)) * out["std"] / np.sqrt(len(a))
        out["low"], out["high"] = out["mean"] - half, out["mean"] + half
    low, high = bounds
    if low is not None:
        out["low"] = max(out["low"], low)
    if high is not None:
        out["high"] = min(out["high"], high)
    return out


def summarize(experiment: str, method: str, count: int, summaries: list[dict]) -> dict:
    """The experiment's summary from its runs' summaries (plain data, JSON-ready)."""
    scores = [fold_scores(s) for s in summaries]
    stats = {}
    for metric in METRICS:
        values = [s[metric] for s in scores if metric in s]
        if values:
            bounds = (0.0, 1.0) if metric.endswith("accuracy") else (0.0, None)
            stats[metric] = statistics(values, method, bounds)
    done = sum(1 for s in summaries if s.get("status") in FINISHED)
    statuses = {s.get("status") for s in summaries}
    status = "completed" if done == count else ("stopped" if "stopped" in statuses else "partial")
    if not summaries:
        status = "stopped"
    seconds = sum(float(s.get("seconds") or 0) for s in summaries)
    return {
        "experiment": experiment,
        "method": method,
        "title": describe_method(method, count),
        "runs_planned": count,
        "runs_done": done,
        "status": status,
        "reason": f"{done} of {count} runs finished",
        "seconds": seconds,
        "epochs": sum(int(s.get("epochs") or 0) for s in summaries),
        "steps": sum(int(s.get("steps") or 0) for s in summaries),
        "device": summaries[-1].get("device") if summaries else None,
        "metrics": stats,
        # What each run's score was read at: its best checkpoint by this monitor.
        "scored_at": next(
            ((s.get("best") or {}).get("monitor") for s in summaries if s.get("best")), None
        ),
        "runs": [
            {
                "run": s.get("run"),
                "run_folder": s.get("run_folder"),
                "fold": (s.get("fold") or {}).get("number"),
                "status": s.get("status"),
                **score,
            }
            for s, score in zip(summaries, scores)
        ],
        "findings": [f for s in summaries for f in s.get("findings", [])],
        # The newest run, for what shows one run (the window's Evaluation tab).
        "run": summaries[-1].get("run") if summaries else None,
        "run_folder": summaries[-1].get("run_folder") if summaries else None,
    }


def headline(stats: dict, metric: str, interval: bool = True) -> str:
    """ "96.2 % ± 1.1 % (95 % CI 94.8–97.6 %)" or "0.123 ± 0.020 (95 % CI 0.098–0.148)"."""
    s = stats[metric]
    percent = metric.endswith("accuracy")

    def f(v: float, digits: int = 4) -> str:
        return f"{v:.1%}" if percent else f"{v:.{digits}g}"

    text = f(s["mean"])
    if s["std"] is not None:
        text += f" ± {f(s['std'], 2)}"
    if interval and s["low"] is not None:
        text += f" (95% CI {f(s['low'])}–{f(s['high'])})"
    return text


def experiment_lines(summary: dict) -> list[str]:
    """The experiment for people: what ran, then a line per metric."""
    names = {
        "val_accuracy": "validation accuracy",
        "val_loss": "validation loss",
        "test_accuracy": "test accuracy",
        "test_loss": "test loss",
    }
    at = summary.get("scored_at")
    lines = [
        f"{summary['title'][:1].upper()}{summary['title'][1:]}: {summary['runs_done']} of "
        f"{summary['runs_planned']} runs finished in {summary['seconds']:.1f} s"
        + (f"; each run scored at its best {at} checkpoint." if at else ".")
    ]
    for metric in summary["metrics"]:
        lines.append(f"  {names.get(metric, metric)}: {headline(summary['metrics'], metric)}")
    return lines


def group_rows(rows: list[dict], root: Path | None = None) -> list[dict]:
    """Index rows of runs (studio/training/runs.py list_runs) with each experiment's runs
    gathered under one experiment row: {"kind": "experiment", "experiment", "title",
    "runs": [rows], "summary"} in the place of its first run; other rows as they were,
    with "kind": "run". A fold run again (resumed) counts once: its newest run."""
    out: list[dict] = []
    groups: dict[str, dict] = {}
    for row in rows:
        exp = row.get("experiment")
        if not exp:
            out.append({**row, "kind": "run"})
            continue
        if exp not in groups:
            groups[exp] = {"kind": "experiment", "experiment": exp, "runs": []}
            out.append(groups[exp])
        groups[exp]["runs"].append({**row, "kind": "run"})
    for group in groups.values():
        runs = group["runs"]
        newest: dict[int, dict] = {}
        for row in sorted(runs, key=lambda r: r["started"]):
            newest[row["fold"]] = row
        counted = [newest[k] for k in sorted(newest)]
        summaries = [_summary_of(row) for row in counted]
        count = int(runs[0]["folds"] or len(runs))
        group["summary"] = summarize(group["experiment"], runs[0]["method"], count, summaries)
        group["title"] = group["summary"]["title"]
        group["started"] = min(r["started"] for r in runs)
        group["project"] = runs[0]["project"]
    return out


def _summary_of(row: dict) -> dict:
    """A run's summary.json (what the index row has, when there is none yet)."""
    import json

    try:
        summary = json.loads((Path(row["path"]) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = None
    if not isinstance(summary, dict):
        summary = {}
    summary.setdefault("status", row["status"])
    summary.setdefault("seconds", row.get("seconds"))
    summary.setdefault("epochs", row.get("epochs"))
    summary.setdefault("run", row["id"])
    summary.setdefault("run_folder", row["path"])
    summary.setdefault("fold", {"number": row.get("fold")})
    return summary
