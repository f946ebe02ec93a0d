"""Every training run is kept: a folder per run and an SQLite index to compare them.

runs/
  index.sqlite                      one row per run with its headline numbers
  <project>/<YYYYmmdd-HHMMSS>-<id>/
    project.json                    the project exactly as trained
    metrics.jsonl                   one line per epoch
    findings.json                   what the diagnosis found
    summary.json                    the final, machine-readable summary
    checkpoints/best.safetensors    weights where the monitored metric was best
    checkpoints/last.safetensors    the latest weights
    checkpoints/last.state.pt       optimizer, scheduler, RNG and position, for --resume
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from studio.document import Project
from studio.errors import StudioError
from studio.projectfile import save_project

INDEX = "index.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    path TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    status TEXT NOT NULL,
    epochs INTEGER DEFAULT 0,
    steps INTEGER DEFAULT 0,
    seconds REAL,
    best_val_accuracy REAL,
    best_val_loss REAL,
    findings INTEGER DEFAULT 0,
    device TEXT,
    resumed_from TEXT
)
"""


class RunError(StudioError):
    pass


def _connect(root: Path) -> sqlite3.Connection:
    root.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(root / INDEX, timeout=10)
    db.execute(SCHEMA)
    columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    if "label" not in columns:  # an index written before runs could be renamed
        db.execute("ALTER TABLE runs ADD COLUMN label TEXT")
    return db


def rename_run(root: str | Path, run_id: str, label: str) -> None:
    """Give a run a name of the person's choosing ("" goes back to its start time)."""
    with _connect(Path(root)) as db:
        db.execute("UPDATE runs SET label = ? WHERE id = ?", (label.strip() or None, run_id))


def delete_run(root: str | Path, run_id: str) -> None:
    """Delete a run: its folder (checkpoints, metrics, findings) and its row in the index."""
    import shutil

    root = Path(root)
    with _connect(root) as db:
        row = db.execute("SELECT path FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunError(f"No run '{run_id}' in '{root}'.")
        try:
            shutil.rmtree(row[0])
        except FileNotFoundError:
            pass  # already gone: forget it
        except OSError as err:
            raise RunError(f"Cannot delete the run folder '{row[0]}': {err.strerror}.") from err
        db.execute("DELETE FROM runs WHERE id = ?", (run_id,))


class Run:
    """One run's folder and its row in the index."""

    def __init__(self, root: Path, path: Path, run_id: str):
        self.root = Path(root)
        self.path = Path(path)
        self.id = run_id

    @classmethod
    def create(
        cls, root: str | Path, project: Project, device: str = "", resumed_from: str | None = None
    ) -> Run:
        root = Path(root)
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        path = root / _safe(project.name) / run_id
        (path / "checkpoints").mkdir(parents=True)
        save_project(project, path / "project.json")
        with _connect(root) as db:
            db.execute(
                "INSERT INTO runs (id, project, path, started, status, device, resumed_from) VALUES (?,?,?,?,?,?,?)",
                (
                    run_id,
                    project.name,
                    str(path.resolve()),
                    time.time(),
                    "running",
                    device,
                    resumed_from,
                ),
            )
        return cls(root, path, run_id)

    @classmethod
    def open(cls, root: str | Path, ref: str) -> Run:
        """A run by id, by folder path, or 'last' for the newest."""
        root = Path(root)
        as_path = Path(ref)
        if (as_path / "project.json").is_file():
            return cls(as_path.parent.parent, as_path, as_path.name)
        if not (root / INDEX).is_file():
            raise RunError(f"There are no runs in '{root}' yet.")
        with _connect(root) as db:
            if ref == "last":
                row = db.execute(
                    "SELECT id, path FROM runs ORDER BY started DESC LIMIT 1"
                ).fetchone()
            else:
                row = db.execute(
                    "SELECT id, path FROM runs WHERE id = ? OR id LIKE ?", (ref, f"%{ref}")
                ).fetchone()
        if row is None:
            raise RunError(f"No run '{ref}' in '{root}'; `studio runs` lists them.")
        return cls(root, Path(row[1]), row[0])

    # -- writing -----------------------------------------------------------------------
    def save_weights(self, name: str, model: torch.nn.Module, metadata: dict | None = None) -> Path:
        path = self.path / "checkpoints" / f"{name}.safetensors"
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})
        os.replace(tmp, path)
        return path

    def save_state(self, name: str, state: dict) -> None:
        model = state["model"]
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.items()}
        save_file(tensors, str(self.path / "checkpoints" / f"{name}.safetensors"))
        rest = {k: v for k, v in state.items() if k != "model"}
        tmp = self.path / "checkpoints" / f"{name}.state.tmp"
        torch.save(rest, tmp)
        os.replace(tmp, self.path / "checkpoints" / f"{name}.state.pt")

    def append_metrics(self, metrics: dict) -> None:
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(metrics) + "\n")

    def write_json(self, name: str, data) -> None:
        tmp = self.path / f"{name}.tmp"
        tmp.write_text(json.dumps(data, indent=2, default=_plain), encoding="utf-8")
        os.replace(tmp, self.path / name)

    def finish(self, summary: dict) -> None:
        self.write_json("summary.json", summary)
        best_acc = max(
            (h.get("val_accuracy", -1) for h in summary.get("history", [])), default=None
        )
        best_loss = min(
            (h.get("val_loss", float("inf")) for h in summary.get("history", [])), default=None
        )
        with _connect(self.root) as db:
            db.execute(
                "UPDATE runs SET finished=?, status=?, epochs=?, steps=?, seconds=?, best_val_accuracy=?, "
                "best_val_loss=?, findings=? WHERE id=?",
                (
                    time.time(),
                    summary["status"],
                    summary["epochs"],
                    summary["steps"],
                    summary["seconds"],
                    best_acc if best_acc is not None and best_acc >= 0 else None,
                    best_loss if best_loss is not None and best_loss != float("inf") else None,
                    len(summary.get("findings", [])),
                    self.id,
                ),
            )

    # -- reading -----------------------------------------------------------------------
    def load_state(self, name: str = "last") -> dict:
        from studio.weights import read_state_dict

        weights = self.path / "checkpoints" / f"{name}.safetensors"
        state_file = self.path / "checkpoints" / f"{name}.state.pt"
        if not state_file.is_file():
            raise RunError(
                f"Run '{self.id}' has no resumable checkpoint ({state_file} is missing)."
            )
        # weights_only: a checkpoint is data; refuse anything that would run code.
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        state["model"] = read_state_dict(weights)
        return state

    def series(self) -> dict:
        """Per-step loss and per-layer gradient norms of the run, for overlays."""
        import numpy as np

        path = self.path / "series.npz"
        if not path.is_file():
            return {}
        # allow_pickle stays off: the file holds plain arrays only.
        with np.load(path) as data:
            return {k: data[k] for k in data.files}

    def metrics(self) -> list[dict]:
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return []
        return [
            json.loads(line)
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]

    def project(self) -> Project:
        from studio.projectfile import load_project

        return load_project(self.path / "project.json")


def list_runs(root: str | Path, project: str | None = None) -> list[dict]:
    root = Path(root)
    if not (root / INDEX).is_file():
        return []
    with _connect(root) as db:
        db.row_factory = sqlite3.Row
        query = (
            "SELECT * FROM runs" + (" WHERE project = ?" if project else "") + " ORDER BY started"
        )
        return [dict(r) for r in db.execute(query, (project,) if project else ())]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "project"


def _plain(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(type(value).__name__)
