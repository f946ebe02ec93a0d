"""TensorBoard logs of a run (`training.tensorboard`, `studio train --tensorboard`).

A listener that writes the run's events with TensorBoard's own writer
(`torch.utils.tensorboard.SummaryWriter`) into `<run>/tensorboard/`, so
`tensorboard --logdir RUNS` shows every run the studio kept beside the person's other
experiments:

- scalars `train/loss`, `train/accuracy`, `train/lr` at every step; each epoch's metrics
  as `epoch/<name>` (at the epoch's last step, so both share the step axis);
- `gradient_norm/<layer>` and `update_ratio/<layer>` at the monitors' rates;
- `weights/<layer>` and `gradients/<layer>` histograms from the monitors' own bins;
- the model graph, the findings and the data report as text.

Writing happens on a thread of its own: the training thread only hands the events over.
"""

from __future__ import annotations

import queue
import threading
import warnings
from pathlib import Path

import numpy as np

from studio.errors import StudioError
from studio.training import events

FOLDER = "tensorboard"


def writer_class():
    """TensorBoard's writer, or one sentence when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise StudioError(
            "Field 'training.tensorboard' is on but TensorBoard is not installed; "
            "run pip install tensorboard, or turn the field off."
        ) from None
    return SummaryWriter


class TensorBoardLog:
    """A listener writing a run's events as TensorBoard summaries (rank 0 only)."""

    def __init__(self, folder: Path, model=None, sample=None):
        self.path = Path(folder) / FOLDER
        self.writer = writer_class()(log_dir=str(self.path))
        self.layers: list[str] = []
        self.notes: list[str] = []
        if model is not None and sample is not None:
            self._graph(model, sample)
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="tensorboard", daemon=True)
        self._thread.start()

    def _graph(self, model, sample) -> None:
        # Traced in eval mode: a training-mode pass would move batch norm's running
        # statistics (and draw dropout masks) before the first step.
        was_training = model.training
        model.eval()
        try:
            with warnings.catch_warnings():  # torch.jit.trace's deprecation: still its way
                warnings.simplefilter("ignore", DeprecationWarning)
                self.writer.add_graph(model, sample)
        except Exception as err:  # a graph the tracer cannot follow: the rest still helps
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            self.notes.append(f"The model graph could not be traced: {first}")
        finally:
            model.train(was_training)

    def __call__(self, event: events.Event) -> None:
        self._queue.put(event)
        if isinstance(event, events.End):
            self.close()

    def close(self) -> None:
        """Write what is queued and close the files (waits for the writing thread)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self.writer.close()

    # -- the writing thread ---------------------------------------------------------------
    def _work(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                self._write(events.typed(event))
            except Exception:  # a full disk must not stop training; the run keeps its own files
                continue

    def _write(self, event: events.Event) -> None:
        w = self.writer
        if isinstance(event, events.Start):
            self.layers = list(event.layers)
            w.add_text("data", event.data.replace("\n", "  \n"), event.first_step)
            for note in self.notes:
                w.add_text("notes", note, event.first_step)
        elif isinstance(event, events.Steps):
            for i, step in enumerate(np.asarray(event.step).tolist()):
                w.add_scalar("train/loss", float(event.loss[i]), step)
                if event.accuracy is not None:
                    w.add_scalar("train/accuracy", float(event.accuracy[i]), step)
                if event.lr is not None:
                    w.add_scalar("train/lr", float(event.lr[i]), step)
        elif isinstance(event, events.Epoch):
            for name, value in event.metrics.items():
                if isinstance(value, (int, float)) and np.isfinite(value):
                    w.add_scalar(f"epoch/{name}", float(value), event.step)
        elif isinstance(event, events.Gradients):
            self._per_layer("gradient_norm", event.step, event.norms)
        elif isinstance(event, events.Weights):
            self._per_layer("update_ratio", event.step, event.update_ratio)
        elif isinstance(event, events.Histograms):
            for kind, by_layer in (("weights", event.weights), ("gradients", event.gradients)):
                for layer, (counts, edges) in by_layer.items():
                    _histogram(w, f"{kind}/{layer}", counts, edges, event.step)
        elif isinstance(event, events.Finding):
            text = f"**{event.title}** (step {event.step + 1}): {event.message}  \n→ {event.remedy}"
            w.add_text("findings", text, event.step)
        elif isinstance(event, events.End):
            w.add_text("end", f"{event.status}: {event.reason}", event.steps)
            w.flush()

    def _per_layer(self, tag: str, steps, values) -> None:
        values = np.asarray(values, dtype=float)
        for row, step in enumerate(np.asarray(steps).tolist()):
            for col, layer in enumerate(self.layers[: values.shape[1]]):
                v = values[row, col]
                if np.isfinite(v):  # NaN: a frozen layer
                    self.writer.add_scalar(f"{tag}/{layer}", float(v), step)


def _histogram(writer, tag: str, counts, edges, step: int) -> None:
    """A histogram from the monitors' bins (TensorBoard's raw form: right bin edges)."""
    counts = np.asarray(counts, dtype=float)
    edges = np.asarray(edges, dtype=float)
    if counts.size == 0 or edges.size != counts.size + 1 or counts.sum() <= 0:
        return
    centers = (edges[:-1] + edges[1:]) / 2
    writer.add_histogram_raw(
        tag,
        min=float(edges[0]),
        max=float(edges[-1]),
        num=int(counts.sum()),
        sum=float((counts * centers).sum()),
        sum_squares=float((counts * centers**2).sum()),
        bucket_limits=edges[1:].tolist(),
        bucket_counts=counts.tolist(),
        global_step=int(step),
    )
