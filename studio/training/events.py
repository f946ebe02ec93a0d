"""What a training run tells the world, defined once.

Every listener — the run folder's event log, the diagnosis, the CLI's progress line, the
window's plots, a callback's `on_event`, a plugin's listener — receives these objects, in
the order the run produces them. Each is a dataclass of plain CPU data (numbers, strings,
lists, numpy arrays) so it crosses from the training thread, or from a process writing
`events.jsonl`, to the window as it is. The schema, with every field's meaning, is in
docs/events.md (a test keeps the two the same).

Per-step events (`Steps`, `Gradients`, `Weights`, `Flow`, `Activations`) carry several
steps at once: `step` is an array and every per-step field has one row per entry of it.

An event also reads as a mapping keyed by its JSON names (`event["loss"]`,
`event.get("accuracy")`, `{**event}`), the form listeners took before the types existed
and the form `events.jsonl` stores; `to_json` / `from_json` convert, and a type this
version does not know (a newer studio's, a plugin's) comes back as a `Other` that keeps
every field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

# A per-step event's rows are cut (thinned) by this field's length.
PER_STEP = ("steps", "gradients", "weights", "flow", "activations")


class Event(Mapping):
    """The base of every event: `type` names it, in JSON and in `docs/events.md`."""

    type: ClassVar[str] = ""
    # Events are compared by identity: their arrays have no single truth value.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    # -- the mapping view ---------------------------------------------------------------
    def to_dict(self) -> dict:
        """The flat form: {"type": ..., field: value, ...} (arrays stay arrays)."""
        out = {"type": self.type}
        out.update((f.name, getattr(self, f.name)) for f in dataclasses.fields(self))
        return out

    def __getitem__(self, key: str) -> Any:
        if key == "type":
            return self.type
        if key in _names(type(self)):
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def rows(self, keep: np.ndarray) -> Event:
        """A per-step event with only the steps where `keep` is true (every array as
        long as `step` is cut; the rest stays)."""
        n = len(keep)
        cut = {
            f.name: getattr(self, f.name)[keep]
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), np.ndarray)
            and getattr(self, f.name).ndim >= 1
            and len(getattr(self, f.name)) == n
        }
        return dataclasses.replace(self, **cut)

    # -- construction from the flat form ------------------------------------------------
    @classmethod
    def from_dict(cls, raw: Mapping) -> Event:
        """The typed event for a flat form (its "type" picks the class)."""
        kind = TYPES.get(str(raw.get("type")))
        if kind is None:
            return Other(
                kind=str(raw.get("type")), fields={k: v for k, v in raw.items() if k != "type"}
            )
        return kind._from_fields({k: v for k, v in raw.items() if k != "type"})

    @classmethod
    def _from_fields(cls, values: dict) -> Event:
        names = _names(cls)
        return cls(**{k: v for k, v in values.items() if k in names})

    # -- JSON ---------------------------------------------------------------------------
    def to_json(self) -> dict:
        """JSON's terms: arrays tagged {"__array__": dtype, "shape", "values"}."""
        return encode(self.to_dict())

    @staticmethod
    def from_json(raw: dict) -> Event:
        return Event.from_dict(decode(raw))

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{k}=<{v.dtype} {v.shape}>" if isinstance(v, np.ndarray) else f"{k}={v!r}"
            for k, v in self.to_dict().items()
            if k != "type"
        )
        return f"{type(self).__name__}({shown})"


def _names(cls) -> frozenset[str]:
    names = cls.__dict__.get("_field_names")
    if names is None:
        names = frozenset(f.name for f in dataclasses.fields(cls))
        cls._field_names = names
    return names


def event(kind: str):
    """Registers a dataclass as the event of type `kind`."""

    def register(cls):
        cls = dataclass(eq=False, repr=False, kw_only=True)(cls)
        cls.type = kind
        TYPES[kind] = cls
        return cls

    return register


TYPES: dict[str, type[Event]] = {}


# ---------------------------------------------------------------------------- a run's life
@event("start")
class Start(Event):
    """Training begins (or resumes): what is trained, on what, for how long."""

    project: str = ""  # the project's name
    device: str = "cpu"  # "cpu", "cuda:0", …
    threads: int = 0  # CPU threads one op may use (torch's intra-op threads)
    epochs: int = 0  # epochs this run trains in all
    batches_per_epoch: int = 0  # optimizer steps in one epoch
    total_steps: int = 0  # epochs × batches_per_epoch
    first_step: int = 0  # 0, or the step a resumed run carries on from
    layers: list[str] = field(default_factory=list)  # the watched layers, in order
    layer_types: list[str] = field(default_factory=list)  # each layer's node type
    layer_params: list[int] = field(default_factory=list)  # each layer's parameter count
    activation_layers: list[str] = field(default_factory=list)  # layers whose output is watched
    activation_kinds: list[str] = field(default_factory=list)  # their activation ("relu", …)
    trainable_params: int = 0
    frozen_params: int = 0
    loss: str = ""  # the loss function's name
    classes: list[str] = field(default_factory=list)  # class names; empty for regression
    train_samples: int = 0
    data: str = ""  # the data report in words (sizes, splits, imbalance advice)


@event("download")
class Download(Event):
    """Pretrained weights being fetched: `done` of `total` bytes of `file`."""

    file: str = ""
    done: int = 0
    total: int = 0


@event("pretrained")
class Pretrained(Event):
    """What a backbone node's pretrained weights loaded."""

    node: str = ""  # the backbone node's id
    report: str = ""  # the load report in words
    mismatched: bool = False  # True when some weights did not fit and stayed as initialized


@event("fold")
class Fold(Event):
    """An experiment's next run begins (k-fold, bootstrap, leave-one-out)."""

    method: str = ""  # kfold | bootstrap | leave_one_out
    number: int = 0  # from 0
    count: int = 0  # runs in the experiment
    label: str = ""  # "fold 2 of 5"
    experiment: str = ""  # the experiment's id (its runs share it)
    title: str = ""  # "5-fold cross-validation"


@event("phase")
class Phase(Event):
    """A fine-tuning plan's phase begins: stages freeze or thaw, learning rates change."""

    step: int = 0
    epoch: int = 0  # from 0
    label: str = ""  # the change in words


@event("epoch")
class Epoch(Event):
    """An epoch ended: its training and validation metrics.

    The metrics are open-ended (train_loss, lr, train_accuracy, val_loss, val_accuracy,
    val_mae, …, whatever the task measures) and sit at the top level of the flat form."""

    epoch: int = 0  # from 1
    step: int = 0  # optimizer steps so far
    epochs: int = 0  # epochs the run trains in all
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "type": self.type,
            "epoch": self.epoch,
            "step": self.step,
            **self.metrics,
            "epochs": self.epochs,
        }

    def __getitem__(self, key: str) -> Any:
        if key in self.metrics:
            return self.metrics[key]
        if key == "metrics":
            raise KeyError(key)  # not a name of the flat form
        return super().__getitem__(key)

    @classmethod
    def _from_fields(cls, values: dict) -> Epoch:
        fixed = {"epoch", "step", "epochs"}
        return cls(
            epoch=int(values.get("epoch", 0)),
            step=int(values.get("step", 0)),
            epochs=int(values.get("epochs", 0)),
            metrics={k: v for k, v in values.items() if k not in fixed},
        )


@event("finding")
class Finding(Event):
    """The diagnosis found something (the fields of `diagnosis.Finding`)."""

    kind: str = ""  # vanishing_gradients, dead_relu, lr_too_high, …
    severity: str = "warning"  # warning | error
    step: int = 0
    title: str = ""
    message: str = ""  # what is wrong, in words
    remedy: str = ""  # what to change
    layers: list[str] = field(default_factory=list)
    evidence: dict = field(default_factory=dict)
    epoch: int | None = None
    fix: dict | None = None  # {"nodes": {id: {field: value}}, "training": {path: value}}


@event("diverged")
class Diverged(Event):
    """The loss became NaN, infinite or exploded: training stopped, sound weights kept."""

    step: int = 0
    loss: float = float("nan")
    reason: str = ""  # the sentence the person reads
    restored_step: int = 0  # the step whose weights were put back


@event("end")
class End(Event):
    """Training ended: how, after how much, and the best and test metrics."""

    status: str = ""  # finished | early_stopped | stopped | paused | diverged | failed
    reason: str = ""
    epochs: int = 0  # epochs completed
    steps: int = 0
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)  # every epoch's metrics
    best: dict = field(default_factory=dict)  # {monitor, value, epoch, metrics}
    test: dict = field(default_factory=dict)  # metrics on the test split, if any


# ------------------------------------------------------------------------- per-step rows
@event("steps")
class Steps(Event):
    """Optimizer steps: one row per step."""

    epoch: int = 0  # from 0
    step: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    loss: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the batch's loss
    accuracy: np.ndarray | None = None  # the batch's accuracy; None for regression
    lr: np.ndarray | None = None  # the first parameter group's learning rate
    batches_per_epoch: int = 0


@event("gradients")
class Gradients(Event):
    """Gradient norm of each watched layer (rows: steps, columns: `Start.layers`)."""

    step: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    norms: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    frozen: np.ndarray | None = None  # True where the layer was frozen (its norm is NaN)


@event("weights")
class Weights(Event):
    """Weight norm and update/weight ratio of each watched layer."""

    step: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    norms: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    update_ratio: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    frozen: np.ndarray | None = None


@event("histograms")
class Histograms(Event):
    """Weight and gradient histograms at one step: layer → (counts, bin edges)."""

    step: int = 0
    weights: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    gradients: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


@event("flow")
class Flow(Event):
    """The signal through each watched layer: RMS per element going forward and coming
    back (the gradient with respect to the layer's output)."""

    step: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    layers: list[str] = field(default_factory=list)
    forward_rms: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    backprop_rms: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


@event("activations")
class Activations(Event):
    """Each watched activation's output: mean, spread and the saturated (tanh/sigmoid) or
    dead (ReLU family) fraction."""

    step: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    layers: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    mean: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    std: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    saturated_or_dead: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


@event("dead_units")
class DeadUnits(Event):
    """ReLU units that never fired over a window of samples (`first_step`…`step`)."""

    step: int = 0
    first_step: int = 0
    samples: int = 0
    layers: list[str] = field(default_factory=list)
    fraction: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per layer
    # Per layer, the share of units silent in this window and the one before (NaN for a
    # run's first window): what the diagnosis judges units dying while training by.
    persistent: np.ndarray | None = None


@dataclass(eq=False, repr=False, kw_only=True)
class Other(Event):
    """An event of a type this version does not define (a newer studio's or a plugin's),
    kept whole so it can be written back."""

    kind: str = ""
    fields: dict = field(default_factory=dict)

    @property
    def type(self) -> str:  # type: ignore[override]
        return self.kind

    def to_dict(self) -> dict:
        return {"type": self.kind, **self.fields}

    def __getitem__(self, key: str) -> Any:
        if key == "type":
            return self.kind
        return self.fields[key]


def typed(event: Mapping) -> Event:
    """The typed event for an event or its flat form (a listener of older code's dicts)."""
    return event if isinstance(event, Event) else Event.from_dict(event)


# ---------------------------------------------------------------------------- JSON terms
def encode(value):
    """A value in JSON's terms (arrays tagged, so they come back as arrays)."""
    if isinstance(value, Event):
        value = value.to_dict()
    if isinstance(value, np.ndarray):
        return {
            "__array__": str(value.dtype),
            "shape": list(value.shape),
            "values": value.ravel().tolist(),
        }
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if hasattr(value, "tolist"):  # a torch tensor that slipped through
        return value.tolist()
    return value


def decode(value):
    if isinstance(value, dict):
        if "__array__" in value:
            return np.array(value["values"], dtype=value["__array__"]).reshape(value["shape"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value
