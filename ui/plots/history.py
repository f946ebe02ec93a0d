"""Everything the live plots show about one run, gathered from the trainer's events.

`RunHistory.feed(event)` only appends to buffers (cheap enough to call for every event
on the GUI thread); the plots read the buffers when they redraw. Qt-free, so a saved
run's series (`Run.series()`) or a list of recorded events can be turned into a history
for the comparison overlay without a window.

Per-layer magnitudes (gradient norms, update ratios) are stored as log10: the plots show
them on log scales, the heatmap colours by order of magnitude, and the decimation
pyramid averages in log space. A zero or non-finite magnitude has no logarithm and is
stored as NaN (a gap in the line, a transparent heatmap cell).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ui.plots.buffers import LayerBuffer, SeriesBuffer
from ui.plots.decimate import Pyramid, Window

HISTOGRAM_KEEP = 48  # snapshots kept per layer and kind; older ones are thinned


def log10_or_nan(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(values)
    out[~np.isfinite(out)] = np.nan
    return out.astype(np.float32)


class LayerSeries:
    """A per-layer series over steps: step buffer, (layers × steps) values, a pyramid."""

    def __init__(self, log: bool):
        self.log = log
        self.names: list[str] = []
        self.steps = SeriesBuffer(np.float64)
        self.values = LayerBuffer(0)
        self.pyramid = Pyramid(self.values)

    def reset(self, names: Iterable[str] = ()) -> None:
        self.names = list(names)
        self.steps.clear()
        self.values.clear(rows=len(self.names))
        self.pyramid.clear()

    @property
    def version(self) -> int:
        return self.values.version

    def __len__(self) -> int:
        return min(self.steps.n, self.values.n)

    def append(self, steps, values) -> None:
        steps = np.asarray(steps, dtype=np.float64).reshape(-1)
        values = np.asarray(values)
        if values.ndim == 1:
            values = values.reshape(1, -1)
        if not len(steps) or len(values) != len(steps):
            return
        if self.values.n and values.shape[1] != self.values.rows:
            return  # a malformed event must not break the run's plots
        if len(self.names) != values.shape[1]:
            self.names = [f"layer {i + 1}" for i in range(values.shape[1])]
        self.values.append(log10_or_nan(values) if self.log else values.astype(np.float32))
        self.steps.append(steps)

    def index_range(self, x_lo: float | None, x_hi: float | None) -> tuple[int, int]:
        """Indices of the samples at steps in [x_lo, x_hi], plus one either side."""
        n = len(self)
        steps = self.steps.data[:n]
        i0 = 0 if x_lo is None else max(0, int(np.searchsorted(steps, x_lo)) - 1)
        i1 = n if x_hi is None else min(n, int(np.searchsorted(steps, x_hi, "right")) + 1)
        return i0, i1

    def window(self, x_lo: float | None, x_hi: float | None, columns: int) -> Window:
        i0, i1 = self.index_range(x_lo, x_hi)
        return self.pyramid.window(i0, i1, columns, self.steps.data)

    def nearest(self, x: float) -> int | None:
        """Index of the sample closest to step x."""
        n = len(self)
        if not n:
            return None
        steps = self.steps.data[:n]
        i = int(np.clip(np.searchsorted(steps, x), 1, n - 1)) if n > 1 else 0
        if n > 1 and abs(steps[i - 1] - x) <= abs(steps[i] - x):
            i -= 1
        return i


class Snapshots:
    """Histograms of one layer over time: the newest are kept, older ones thinned."""

    def __init__(self, keep: int = HISTOGRAM_KEEP):
        self.keep = keep
        self.steps: list[int] = []
        self.counts: list[np.ndarray] = []
        self.edges: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.steps)

    def add(self, step: int, counts, edges) -> None:
        self.steps.append(int(step))
        self.counts.append(np.asarray(counts, dtype=np.float32).reshape(-1))
        self.edges.append(np.asarray(edges, dtype=np.float64).reshape(-1))
        if len(self.steps) > self.keep:
            # Keep the recent half as is and every other of the older half, so a long
            # run still shows where the distribution started at a bounded memory cost.
            half = self.keep // 2
            for name in ("steps", "counts", "edges"):
                items = getattr(self, name)
                setattr(self, name, items[:-half][::2] + items[-half:])


@dataclass(frozen=True)
class FlowSample:
    step: int
    forward: np.ndarray  # RMS of each layer's output
    backprop: np.ndarray  # RMS of the loss gradient with respect to it


class _Smoother:
    """Debiased exponential moving average (as TensorBoard's smoothing), NaN-tolerant."""

    def __init__(self, weight: float):
        self.weight = weight
        self.value = 0.0
        self.count = 0

    def apply(self, values: np.ndarray) -> np.ndarray:
        out = np.empty(len(values), dtype=np.float64)
        w, value, count = self.weight, self.value, self.count
        for i, v in enumerate(values.tolist()):
            if v == v and abs(v) != float("inf"):  # finite: a diverged step is skipped
                value = w * value + (1.0 - w) * v
                count += 1
            out[i] = value / (1.0 - w**count) if count else np.nan
        self.value, self.count = value, count
        return out


class RunHistory:
    """Buffers for one run, filled from the trainer's plain-dict events."""

    def __init__(self):
        self.version = 0  # any change
        self.generation = 0  # runs started (buffers replaced)
        self._reset({})

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_events(cls, events: Iterable[dict]) -> RunHistory:
        history = cls()
        for event in events:
            history.feed(event)
        return history

    # -- events ---------------------------------------------------------------------------
    def feed(self, event: dict) -> None:
        handler = getattr(self, "_on_" + str(event.get("type")), None)
        if handler is not None:
            handler(event)
            self.version += 1

    def feed_many(self, events: Iterable[dict]) -> None:
        for event in events:
            self.feed(event)

    def _reset(self, start: dict) -> None:
        self.generation = getattr(self, "generation", 0) + 1
        self.start = dict(start)
        self.layers: list[str] = list(start.get("layers", []))
        self.total_steps = int(start.get("total_steps") or 0)
        self.first_step = int(start.get("first_step") or 0)
        self.status = "running" if start else "idle"
        # Smoothing follows the run's length: ~1/30 of it, between 5 and 200 steps.
        span = min(200.0, max(5.0, self.total_steps / 30.0))
        self.step = SeriesBuffer(np.float64)
        self.loss = SeriesBuffer(np.float64)
        self.loss_smooth = SeriesBuffer(np.float64)
        self.lr = SeriesBuffer(np.float64)
        self.acc_step = SeriesBuffer(np.float64)
        self.accuracy = SeriesBuffer(np.float64)
        self.accuracy_smooth = SeriesBuffer(np.float64)
        self._loss_smoother = _Smoother(1.0 - 1.0 / span)
        self._acc_smoother = _Smoother(1.0 - 1.0 / span)
        self.epoch_step = SeriesBuffer(np.float64)
        self.epoch = SeriesBuffer(np.float64)
        self.train_loss = SeriesBuffer(np.float64)
        self.train_accuracy = SeriesBuffer(np.float64)
        self.val_loss = SeriesBuffer(np.float64)
        self.val_accuracy = SeriesBuffer(np.float64)
        self.gradients = LayerSeries(log=True)
        self.gradients.reset(self.layers)
        self.update_ratio = LayerSeries(log=True)
        self.update_ratio.reset(self.layers)
        acts = list(start.get("activation_layers", []))
        self.activation_kinds: list[str] = list(start.get("activation_kinds", []))
        self.act_mean = LayerSeries(log=False)
        self.act_std = LayerSeries(log=False)
        self.act_fraction = LayerSeries(log=False)
        for series in (self.act_mean, self.act_std, self.act_fraction):
            series.reset(acts)
        # Gradient flow (forward and back-propagated RMS per layer): the first sample (the
        # network as initialized) and the newest, which is all the flow plot draws.
        self.flow_layers: list[str] = list(start.get("layers", []))
        self.flow_first: FlowSample | None = None
        self.flow_last: FlowSample | None = None
        self.flow_version = 0
        self.histograms: dict[str, dict[str, Snapshots]] = {"weights": {}, "gradients": {}}
        self.histogram_version = 0
        self.marks: list[tuple[float, str, str]] = []  # step, label, kind
        self.marks_version = 0
        self.findings: list[dict] = []

    def _on_start(self, event: dict) -> None:
        self._reset(event)

    def _on_steps(self, event: dict) -> None:
        step = np.asarray(event["step"], dtype=np.float64).reshape(-1)
        loss = np.asarray(event["loss"], dtype=np.float64).reshape(-1)
        if len(step) != len(loss) or not len(step):
            return
        self.step.append(step)
        # Infinite losses would stretch the axis to nothing; NaN draws as a gap.
        self.loss.append(np.where(np.isfinite(loss), loss, np.nan))
        self.loss_smooth.append(self._loss_smoother.apply(loss))
        lr = event.get("lr")
        self.lr.append(
            np.broadcast_to(np.asarray(lr if lr is not None else np.nan, float), step.shape)
        )
        acc = event.get("accuracy")
        if acc is not None:
            acc = np.asarray(acc, dtype=np.float64).reshape(-1)
            if len(acc) == len(step):
                self.acc_step.append(step)
                self.accuracy.append(acc)
                self.accuracy_smooth.append(self._acc_smoother.apply(acc))

    def _on_epoch(self, event: dict) -> None:
        def value(key):
            v = event.get(key)
            return np.nan if v is None else float(v)

        self.epoch_step.append([value("step")])
        self.epoch.append([value("epoch")])
        self.train_loss.append([value("train_loss")])
        self.train_accuracy.append([value("train_accuracy")])
        self.val_loss.append([value("val_loss")])
        self.val_accuracy.append([value("val_accuracy")])

    def _on_gradients(self, event: dict) -> None:
        self.gradients.append(event["step"], event["norms"])

    def _on_weights(self, event: dict) -> None:
        if event.get("update_ratio") is not None:
            self.update_ratio.append(event["step"], event["update_ratio"])

    def _on_activations(self, event: dict) -> None:
        layers = list(event.get("layers", self.act_fraction.names))
        if layers != self.act_fraction.names or len(self.act_fraction) == 0:
            if len(self.act_fraction):  # the set of layers changed: start these over
                for series in (self.act_mean, self.act_std, self.act_fraction):
                    series.reset(layers)
            else:
                for series in (self.act_mean, self.act_std, self.act_fraction):
                    series.names = layers
        self.activation_kinds = list(event.get("kinds", self.activation_kinds))
        self.act_mean.append(event["step"], event["mean"])
        self.act_std.append(event["step"], event["std"])
        self.act_fraction.append(event["step"], event["saturated_or_dead"])

    def _on_flow(self, event: dict) -> None:
        steps = np.asarray(event["step"]).reshape(-1)
        forward = np.asarray(event["forward_rms"], dtype=np.float64)
        back = np.asarray(event["backprop_rms"], dtype=np.float64)
        if not len(steps) or forward.shape != back.shape or forward.shape[0] != len(steps):
            return
        self.flow_layers = list(event.get("layers", self.flow_layers))
        if self.flow_first is None:
            self.flow_first = FlowSample(int(steps[0]), forward[0], back[0])
        self.flow_last = FlowSample(int(steps[-1]), forward[-1], back[-1])
        self.flow_version += 1

    def latest_activations(self) -> dict[str, tuple[str, float]]:
        """Per activation layer: its kind and newest saturated-or-dead share."""
        series = self.act_fraction
        n = len(series)
        if not n:
            return {}
        last = series.values.data[:, n - 1] if series.values.n else []
        kinds = self.activation_kinds
        return {
            name: (kinds[i] if i < len(kinds) else "", float(last[i]))
            for i, name in enumerate(series.names)
            if i < len(last)
        }

    def _on_histograms(self, event: dict) -> None:
        step = int(event.get("step", 0))
        for kind in ("weights", "gradients"):
            for layer, (counts, edges) in (event.get(kind) or {}).items():
                self.histograms[kind].setdefault(layer, Snapshots()).add(step, counts, edges)
        self.histogram_version += 1

    def _on_phase(self, event: dict) -> None:  # fine-tuning: stages or learning rates changed
        self.add_mark(event["step"], event.get("label", ""))

    def _on_diverged(self, event: dict) -> None:
        self.status = "diverged"
        self.add_mark(float(event.get("step", self.step.last or 0)), "diverged", "danger")

    def _on_finding(self, event: dict) -> None:
        self.findings.append(dict(event))

    def _on_end(self, event: dict) -> None:
        self.status = str(event.get("status", "completed"))

    # -- marks ----------------------------------------------------------------------------
    def add_mark(self, step: float, label: str, kind: str = "phase") -> None:
        """A vertical marker at a step: a phase change (fine-tuning) or a divergence."""
        self.marks.append((float(step), str(label), kind))
        self.marks_version += 1
        self.version += 1

    # -- queries --------------------------------------------------------------------------
    @property
    def has_accuracy(self) -> bool:
        return self.accuracy.n > 0 or bool(np.isfinite(self.train_accuracy.data).any())

    def histogram_layers(self) -> list[str]:
        names = set(self.histograms["weights"]) | set(self.histograms["gradients"])
        ordered = [n for n in self.layers if n in names]
        return ordered + sorted(names - set(ordered))
