"""A run's events as they happen, in its folder, for anyone who wants to watch.

Rank 0 of every run writes `events.jsonl` in the run folder: one JSON line per event, the
events of `studio.training.events` in their JSON form (numpy arrays written as
{"__array__": dtype, "shape": [...], "values": [...]}, NaN as NaN; docs/events.md). The window follows it
with `EventTail` (File → Watch Run…): a run started with `studio train` — on this machine,
or on a cluster whose run folder is on a shared file system — shows its live plots and
findings as they arrive.

Per-step rows are thinned to about ROWS_PER_SECOND steps a second (every k-th step, k
from the run's speed), so an hour of a tiny network's 400 steps/s stays tens of MB; the
events themselves (epochs, findings, phases, the end) are all kept, and the run's
series.npz keeps every step for later.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from studio.training.events import PER_STEP, Event, typed

EVENTS = "events.jsonl"
ROWS_PER_SECOND = 20
WRITE_EVERY = 0.25  # seconds between writes to the file (each a flush)


class EventLog:
    """A listener writing a run's events to its folder (rank 0 only)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / EVENTS
        self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (open for the run)
        self.lines: list[str] = []
        self.last_write = time.monotonic()
        self.stride = 1
        self._rate_since = (time.monotonic(), None)  # (time, first step seen)

    def __call__(self, event: Event) -> None:
        if self.file.closed:
            return
        event = typed(event)
        if event.type in PER_STEP:
            event = self._thinned(event)
            if event is None:
                return
        self.lines.append(json.dumps(event.to_json()))
        now = time.monotonic()
        if event.type != "steps" or now - self.last_write >= WRITE_EVERY:
            self.write()
        if event.type == "end":
            self.close()

    def _thinned(self, event: Event) -> Event | None:
        steps = np.asarray(event["step"])
        if steps.ndim != 1 or len(steps) == 0:
            return event
        if event.type == "steps":
            self._measure(steps)
        keep = steps % self.stride == 0
        keep[-1] |= event.type != "steps"  # a probe's newest row is always news
        if keep.all():
            return event
        if not keep.any():
            return None
        return event.rows(keep)

    def _measure(self, steps: np.ndarray) -> None:
        """The stride from the run's speed: about ROWS_PER_SECOND rows a second."""
        started, first = self._rate_since
        if first is None:
            self._rate_since = (started, int(steps[0]))
            return
        elapsed = time.monotonic() - started
        if elapsed >= 2.0:
            rate = (int(steps[-1]) - first) / elapsed
            self.stride = max(1, int(rate / ROWS_PER_SECOND))
            self._rate_since = (time.monotonic(), int(steps[-1]))

    def write(self) -> None:
        if self.lines and not self.file.closed:
            self.file.write("\n".join(self.lines) + "\n")
            self.file.flush()
            self.lines = []
        self.last_write = time.monotonic()

    def close(self) -> None:
        if not self.file.closed:
            self.write()
            self.file.close()


class EventTail:
    """Reads the events a run folder's log gained since the last read (a half-written
    last line waits for the next read)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / EVENTS
        self.offset = 0
        self.rest = b""

    def read(self) -> list[Event]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return []
        self.offset += len(chunk)
        lines = (self.rest + chunk).split(b"\n")
        self.rest = lines.pop()
        events = []
        for line in lines:
            if not line.strip():
                continue
            try:
                events.append(Event.from_json(json.loads(line)))
            except ValueError:
                continue  # a damaged line (the disk filled mid-write): skip it
        return events
