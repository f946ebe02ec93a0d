"""The training events are defined once (studio/training/events.py): a real run emits only
typed events, each survives its JSON form, docs/events.md lists exactly their fields, a
callback sees all of them, and a saved run's series replays as the events that made it."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from support import EXAMPLES

from studio.projectfile import load_project
from studio.training import events
from studio.training.callbacks import Callback
from studio.training.series import SeriesLog, replay
from studio.training.session import train

DOCS = Path(__file__).resolve().parents[1] / "docs" / "events.md"
MLP = next(p for p in EXAMPLES if p.stem == "digits_mlp")


class Everything(Callback):
    def __init__(self):
        self.seen: list[events.Event] = []

    def on_event(self, trainer, event):
        self.seen.append(event)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two epochs of digits_mlp with every monitor on every few steps, kept on disk."""
    project = load_project(
        MLP,
        [
            "training.epochs=2",
            "training.monitors.weights_every=2",
            "training.monitors.histograms_every=10",
            "training.monitors.activations_every=2",
            "training.monitors.budget=1.0",
        ],
    )
    heard: list = []
    spy = Everything()
    outcome = train(
        project,
        runs_root=tmp_path_factory.mktemp("runs"),
        listeners=[heard.append],
        callbacks=[spy],
    )
    return outcome, heard, spy.seen


def same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return a == b


def test_a_run_emits_only_typed_events_and_the_callback_sees_every_one(run):
    _, heard, seen = run
    assert heard and all(isinstance(e, events.Event) for e in heard)
    assert all(type(e) is not events.Other for e in heard)
    kinds = {e.type for e in heard}
    assert {"start", "steps", "gradients", "weights", "histograms", "flow", "epoch", "end"} <= kinds
    assert [id(e) for e in seen] == [id(e) for e in heard]  # the same objects, in order
    start = heard[0]
    assert isinstance(start, events.Start) and start.layers and start.total_steps > 0


def test_every_event_comes_back_from_its_json_form_as_the_same_type_and_values(run):
    _, heard, _ = run
    for event in heard:
        line = json.dumps(event.to_json())  # what events.jsonl holds
        back = events.Event.from_json(json.loads(line))
        assert type(back) is type(event)
        for f in dataclasses.fields(event):
            mine, theirs = getattr(event, f.name), getattr(back, f.name)
            assert same(mine, theirs), (event.type, f.name)


def test_the_mapping_view_is_the_flat_json_form(run):
    _, heard, _ = run
    epoch = next(e for e in heard if isinstance(e, events.Epoch))
    flat = {**epoch}
    assert flat["type"] == "epoch" and flat["val_loss"] == epoch.metrics["val_loss"]
    assert "metrics" not in flat and epoch["train_loss"] == epoch.metrics["train_loss"]
    steps = next(e for e in heard if isinstance(e, events.Steps))
    assert steps["loss"] is steps.loss and steps.get("nothing") is None


def test_an_event_type_this_version_does_not_know_is_kept_whole():
    raw = {
        "type": "plugin_thing",
        "value": {"__array__": "float32", "shape": [2], "values": [1, 2]},
    }
    back = events.Event.from_json(raw)
    assert isinstance(back, events.Other) and back.type == "plugin_thing"
    assert back["value"].dtype == np.float32
    assert back.to_json() == raw


def documented() -> dict[str, list[str]]:
    """Per event type in docs/events.md, the fields its table lists, in order."""
    sections = re.split(r"^### ", DOCS.read_text(), flags=re.M)[1:]
    out = {}
    for section in sections:
        kind = re.match(r"`(\w+)`", section).group(1)
        rows = re.findall(r"^\| `(\w+)` +\|", section, flags=re.M)
        out[kind] = rows
    return out


def test_docs_list_every_event_and_exactly_its_fields():
    docs = documented()
    assert set(docs) == set(events.TYPES)
    for kind, cls in events.TYPES.items():
        flat = list(cls().to_dict())[1:]  # the JSON form's names, in order
        if cls is events.Epoch:
            flat = ["epoch", "step", "metrics", "epochs"]
        assert docs[kind] == flat, kind


def test_a_saved_run_replays_as_the_events_that_made_it(run):
    outcome, heard, _ = run
    saved = outcome.run.series()
    replayed = replay(saved, outcome.run.metrics())
    # Written again from the replayed events, the arrays are the same.
    again = SeriesLog()
    for event in replayed:
        again(event)
    for key, value in again.arrays().items():
        assert same(value, saved[key]), key
    # The epochs come back as the run announced them.
    live = [e for e in heard if isinstance(e, events.Epoch)]
    back = [e for e in replayed if isinstance(e, events.Epoch)]
    assert [e.to_dict() for e in back] == [e.to_dict() for e in live]
    steps = [e for e in replayed if isinstance(e, events.Steps)]
    assert len(steps) == 1 and len(steps[0].step) == outcome.result.steps
