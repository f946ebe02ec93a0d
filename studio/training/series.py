"""A run's per-step series (`series.npz`) and its events: the one converter both ways.

While a run trains, `SeriesLog` keeps from its events every step's loss, the per-layer
gradient norms and the fine-tuning phase changes, and writes them to the run folder.
`replay` turns those arrays (and the run's per-epoch metrics) back into the events that
made them, so a past run is drawn, compared and overlaid by the same code that draws a
live one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from studio.training import events


class SeriesLog:
    """A listener keeping what `series.npz` holds."""

    def __init__(self):
        self.layers: list[str] = []
        self.steps, self.losses, self.grad_steps, self.grads = [], [], [], []
        self.phases: list[events.Phase] = []

    def __call__(self, event: Mapping) -> None:
        event = events.typed(event)
        if isinstance(event, events.Start):
            self.layers = list(event.layers)
        elif isinstance(event, events.Steps):
            self.steps.append(np.asarray(event.step))
            self.losses.append(np.asarray(event.loss))
        elif isinstance(event, events.Gradients):
            self.grad_steps.append(np.asarray(event.step))
            self.grads.append(np.asarray(event.norms))
        elif isinstance(event, events.Phase):
            self.phases.append(event)

    def arrays(self) -> dict[str, np.ndarray]:
        def cat(parts, empty):
            return np.concatenate(parts) if parts else empty

        return {
            "layers": np.array(self.layers, dtype=str),
            "step": cat(self.steps, np.zeros(0, dtype=int)),
            "loss": cat(self.losses, np.zeros(0)),
            "grad_step": cat(self.grad_steps, np.zeros(0, dtype=int)),
            "grad_norms": cat(self.grads, np.zeros((0, len(self.layers)))),
            "phase_step": np.array([p.step for p in self.phases], dtype=int),
            "phase_epoch": np.array([p.epoch for p in self.phases], dtype=int),
            "phase_label": np.array([p.label for p in self.phases], dtype=str),
        }

    def save(self, path: Path) -> None:
        np.savez_compressed(path, **self.arrays())


def replay(series: Mapping, metrics: Iterable[Mapping] = ()) -> list[events.Event]:
    """The events a saved run's arrays (`Run.series()`) and per-epoch metrics
    (`Run.metrics()`) came from: a start, its steps, its gradient norms, its phase changes
    and one epoch event per metrics row. Arrays a run did not keep are simply absent."""
    layers = [str(n) for n in np.asarray(series.get("layers", []), dtype=str).tolist()]
    step = np.asarray(series.get("step", np.zeros(0, dtype=int)))
    out: list[events.Event] = [events.Start(layers=layers, total_steps=int(len(step)))]
    if len(step):
        out.append(events.Steps(step=step, loss=np.asarray(series["loss"])))
    grad_step = np.asarray(series.get("grad_step", ()))
    if len(grad_step):
        out.append(events.Gradients(step=grad_step, norms=np.asarray(series["grad_norms"])))
    phase_step = np.asarray(series.get("phase_step", ()), dtype=int)
    phase_epoch = np.asarray(series.get("phase_epoch", np.zeros_like(phase_step)), dtype=int)
    phases = zip(phase_step, phase_epoch, series.get("phase_label", ()))
    out.extend(events.Phase(step=int(s), epoch=int(e), label=str(t)) for s, e, t in phases)
    out.extend(events.Epoch.from_dict({**m, "type": "epoch"}) for m in metrics)
    return out
