"""`studio diagnose`: a short, fully monitored probe of a project.

One forward/backward pass before any update (the first step's gradients), then N
training steps with every probe on every step; returns per-layer statistics and the
diagnosis findings. Nothing is written to disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from studio.document import Project
from studio.training.callbacks import Callback
from studio.training.diagnosis import Diagnosis, Finding
from studio.training.engine import Trainer


class StopAfter(Callback):
    def __init__(self, steps: int):
        self.steps = steps

    def on_step_end(self, trainer, step):
        if step + 1 >= self.steps:
            trainer.request_stop("completed", f"probe finished after {self.steps} steps")


@dataclass
class ProbeReport:
    project: str
    steps: int
    layers: list[dict] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    loss_first: float = float("nan")
    loss_last: float = float("nan")

    def to_dict(self) -> dict:
        return {
            "project": self.project,
            "steps": self.steps,
            "loss_first": self.loss_first,
            "loss_last": self.loss_last,
            "layers": self.layers,
            "findings": [f.to_dict() for f in self.findings],
        }


class _Collector:
    def __init__(self):
        self.events: dict[str, list[dict]] = {}

    def __call__(self, event):
        self.events.setdefault(event["type"], []).append(event)

    def stacked(self, kind: str, key: str) -> np.ndarray | None:
        found = [e[key] for e in self.events.get(kind, [])]
        return np.concatenate(found) if found else None


def probe(
    project: Project, steps: int = 50, base: Path = Path("."), device: str | None = None
) -> ProbeReport:
    project = project.copy()
    settings = project.training
    settings["epochs"] = max(settings["epochs"], 10_000)  # the probe stops itself after `steps`
    settings["monitors"].update(
        enabled=True,
        gradients_every=1,
        weights_every=1,
        activations_every=1,
        histograms_every=10**9,
        budget=0.0,
    )
    settings["early_stopping"]["enabled"] = False
    collector = _Collector()
    diagnosis = Diagnosis(project)
    trainer = Trainer(
        project,
        base=base,
        device=device,
        listeners=[collector, diagnosis],
        callbacks=[StopAfter(steps + 1)],
        emit_hz=0,
    )
    diagnosis.on_finding = trainer.report_finding
    trainer.fit()

    start = collector.events["start"][0]
    names, sizes = start["layers"], np.asarray(start["layer_params"], dtype=float)
    grads = collector.stacked("gradients", "norms")
    weights = collector.stacked("weights", "norms")
    ratios = collector.stacked("weights", "update_ratio")
    losses = collector.stacked("steps", "loss")
    report = ProbeReport(project.name, steps, findings=diagnosis.findings)
    if losses is not None and len(losses):
        report.loss_first, report.loss_last = float(losses[0]), float(losses[-1])
    activation = _activation_summary(collector)
    flow = {key: collector.stacked("flow", key) for key in ("forward_rms", "backprop_rms")}
    back = flow["backprop_rms"]
    for i, name in enumerate(names):
        row = {"layer": name, "type": start["layer_types"][i], "params": int(sizes[i])}
        if grads is not None:
            rms = grads / np.sqrt(sizes)
            row["grad_norm_before"] = float(grads[0, i])
            row["grad_norm"] = float(_median(grads[:, i]))
            row["grad_vs_output"] = float(_median(rms[:, i] / np.maximum(rms[:, -1], 1e-30)))
        if weights is not None:
            row["weight_norm"] = float(weights[-1, i])
            row["update_ratio"] = float(_median(ratios[:, i]))
        if back is not None:
            row["forward_rms"] = float(_median(flow["forward_rms"][:, i]))
            row["backprop_rms"] = float(_median(back[:, i]))
            row["backprop_vs_output"] = float(_median(back[:, i] / np.maximum(back[:, -1], 1e-30)))
        row.update(activation.get(name, {}))
        report.layers.append(row)
    return report


def _activation_summary(collector: _Collector) -> dict:
    events = collector.events.get("activations", [])
    if not events:
        return {}
    layers, kinds = events[0]["layers"], events[0]["kinds"]
    mean = np.concatenate([e["mean"] for e in events])
    std = np.concatenate([e["std"] for e in events])
    special = np.concatenate([e["saturated_or_dead"] for e in events])
    windows = collector.events.get("dead_units", [])
    out = {}
    for i, (name, kind) in enumerate(zip(layers, kinds)):
        row = {
            "activation": kind,
            "act_mean": float(_median(mean[:, i])),
            "act_std": float(_median(std[:, i])),
        }
        if kind in ("sigmoid", "tanh"):
            row["saturated"] = float(_median(special[:, i]))
        elif kind == "relu" and windows:
            # Every window of the probe: the newest, and how many samples it spanned.
            last = windows[-1]
            at = last["layers"].index(name)
            row["dead"] = float(last["fraction"][at])
            row["dead_samples"] = int(last["samples"])
        out[name] = row
    return out


def probe_table(report: ProbeReport) -> str:
    headers = (
        "layer",
        "type",
        "grad norm",
        "g × out",
        "backprop",
        "bp × out",
        "out rms",
        "weight norm",
        "update/weight",
        "act mean",
        "act std",
        "sat/dead",
    )
    rows = []
    for r in report.layers:
        special = r.get("saturated", r.get("dead"))
        rows.append(
            (
                r["layer"],
                r["type"],
                _num(r.get("grad_norm")),
                _num(r.get("grad_vs_output")),
                _num(r.get("backprop_rms")),
                _num(r.get("backprop_vs_output")),
                _num(r.get("forward_rms")),
                _num(r.get("weight_norm")),
                _num(r.get("update_ratio")),
                _num(r.get("act_mean")),
                _num(r.get("act_std")),
                f"{special:.0%}" if special is not None else "",
            )
        )
    widths = [
        max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
        for i, h in enumerate(headers)
    ]

    def line(cells):
        return "  ".join(
            c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _num(value) -> str:
    if value is None:
        return ""
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    return f"{value:.1e}"


def _median(values: np.ndarray) -> float:
    """Median over the steps where a layer trained (a stage frozen during the probe is NaN)."""
    finite = values[~np.isnan(values)]  # inf stays: an exploding layer must show
    return float(np.median(finite)) if finite.size else float("nan")
