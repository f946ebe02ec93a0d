"""Every training run is kept: a folder per run and an SQLite index to compare them.

runs/
  index.sqlite                      one row per run with its headline numbers
  <project>/<YYYYmmdd-HHMMSS>-<id>/
    project.json                    the project exactly as trained
    metrics.jsonl                   one line per epoch
    findings.json                   what the diagnosis found
    summary.json                    the final, machine-readable summary
    checkpoints/best.safetensors    weights where the monitored metric was best
    checkpoints/last.safetensors    the latest weights (for export; a copy)
    checkpoints/last.state.pt       weights, optimizer, scheduler, RNG and position: one
                                    file, so one unit, for --resume
    checkpoints/prev.state.pt       the checkpoint before it, kept until the next is whole
    run.lock                        locked while the training process lives

The run folders are the truth and the index a cache: a damaged or missing index is rebuilt
from the folders, and a run whose process died (its lock free) shows as interrupted.

A checkpoint is written to a temporary file, flushed to disk and renamed over the last one
(the previous one is first linked as prev): a kill at any instant leaves the previous
complete checkpoint or the new complete one, never weights of one epoch beside the state of
another (issue 11). Loading checks it and falls back to prev with a sentence.
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

from studio.checkpoint_files import CHECKPOINTS, weights_file
from studio.data.resampling import Fold
from studio.document import Project
from studio.errors import StudioError, notice
from studio.projectfile import save_project

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a running row stays running there
    fcntl = None

INDEX = "index.sqlite"
FOLD = "fold.json"  # in the folder of a run that is one fold of an experiment
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


# A run of a k-fold, bootstrap or leave-one-out experiment (studio/training/experiment.py):
# the experiment's id, and the fold as studio/data/resampling.py's Fold.
EXPERIMENT_COLUMNS = ("experiment TEXT", "method TEXT", "fold INTEGER", "folds INTEGER")


class RunError(StudioError):
    pass


# A state file holds these (and the weights): anything less is not a checkpoint.
STATE_KEYS = ("optimizer", "step", "epoch", "batch_in_epoch", "generator", "rng", "history")


def _open_index(root: Path) -> sqlite3.Connection:
    db = sqlite3.connect(root / INDEX, timeout=10)
    try:
        db.execute(SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        if "label" not in columns:  # an index written before runs could be renamed
            db.execute("ALTER TABLE runs ADD COLUMN label TEXT")
        for column in EXPERIMENT_COLUMNS:  # an index written before experiments
            if column.split()[0] not in columns:
                db.execute(f"ALTER TABLE runs ADD COLUMN {column}")
        db.execute("SELECT count(*) FROM runs").fetchone()
    except BaseException:
        db.close()
        raise
    return db


def _connect(root: Path) -> sqlite3.Connection:
    """The index, healed: a file that is not an SQLite index any more (garbage, truncated)
    is set aside and rebuilt from the run folders, with a sentence; training never waits
    on it."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        return _open_index(root)
    except sqlite3.DatabaseError as err:
        damaged = root / f"{INDEX}.damaged"
        os.replace(root / INDEX, damaged)
        db = _open_index(root)
        added = _reconcile(db, root)
        db.commit()
        notice(
            f"The run index '{root / INDEX}' was damaged ({err}); rebuilt it from the "
            f"{added} run folder{'s' if added != 1 else ''} (the damaged file is kept as "
            f"'{damaged.name}')."
        )
        return db


def _run_folders(root: Path):
    for project_json in root.glob("*/*/project.json"):
        yield project_json.parent


def _row_from_folder(folder: Path) -> tuple:
    """An index row for a run folder, from what the folder holds."""
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = None
    if not isinstance(summary, dict):  # none yet (running, or killed), or unreadable
        summary = {}
    try:
        project = json.loads((folder / "project.json").read_text(encoding="utf-8"))["name"]
    except (OSError, ValueError, KeyError, TypeError):
        project = folder.parent.name
    history = summary.get("history") or []
    accs = [h["val_accuracy"] for h in history if isinstance(h.get("val_accuracy"), float)]
    losses = [h["val_loss"] for h in history if isinstance(h.get("val_loss"), float)]
    started = (folder / "project.json").stat().st_mtime
    finished = (folder / "summary.json").stat().st_mtime if summary else None
    return (
        folder.name,
        str(project),
        str(folder.resolve()),
        started,
        finished,
        summary.get("status") or ("running" if alive(folder) else "interrupted"),
        summary.get("epochs", _epochs_logged(folder)),
        summary.get("steps", 0),
        summary.get("seconds"),
        max(accs) if accs else None,
        min(losses) if losses else None,
        len(summary.get("findings", [])),
        summary.get("device"),
        *_experiment_of(folder),
    )


def _experiment_of(folder: Path) -> tuple:
    """(experiment, method, fold, folds) of a run folder, from its fold.json; Nones for a
    run that is not part of an experiment."""
    try:
        raw = json.loads((folder / FOLD).read_text(encoding="utf-8"))
        return (str(raw["experiment"]), str(raw["method"]), int(raw["number"]), int(raw["count"]))
    except (OSError, ValueError, KeyError, TypeError):
        return (None, None, None, None)


def _reconcile(db: sqlite3.Connection, root: Path) -> int:
    """Make the index agree with the folders: add runs it lacks, forget runs whose folder
    is gone, and mark runs whose process died as interrupted. Returns the runs added."""
    known = {row[0]: row[1] for row in db.execute("SELECT id, path FROM runs")}
    added = 0
    for folder in _run_folders(root):
        if folder.name in known:
            continue
        db.execute(
            "INSERT OR IGNORE INTO runs (id, project, path, started, finished, status, epochs, "
            "steps, seconds, best_val_accuracy, best_val_loss, findings, device, experiment, "
            "method, fold, folds) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            _row_from_folder(folder),
        )
        added += 1
    for run_id, path in known.items():
        if not Path(path).is_dir():
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
    for run_id, path in db.execute("SELECT id, path FROM runs WHERE status = 'running'").fetchall():
        if not alive(Path(path)):
            db.execute(
                "UPDATE runs SET status = 'interrupted', epochs = ? WHERE id = ?",
                (_epochs_logged(Path(path)), run_id),
            )
    return added


def _epochs_logged(folder: Path) -> int:
    """Epochs a run finished, by its metrics log (one line per epoch), for a run that died
    before it could write its summary."""
    try:
        with open(folder / "metrics.jsonl", "rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return 0


def alive(folder: Path) -> bool:
    """Whether the process training into this run folder still lives (it holds the lock;
    the system frees it when the process dies, however it dies)."""
    lock = folder / "run.lock"
    if fcntl is None:
        return True
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False  # never locked (a run from before locks) or gone
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # also releases the lock this call may have taken
    return False


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
        self._lock: int | None = None  # held while this process trains into the run

    def _hold_lock(self) -> None:
        if fcntl is None:
            return
        self._lock = os.open(self.path / "run.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(self._lock, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        """The training process is done with the run (finished, failed or stopped)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    @classmethod
    def create(
        cls,
        root: str | Path,
        project: Project,
        device: str = "",
        resumed_from: str | None = None,
        fold: Fold | None = None,
        experiment: str | None = None,
    ) -> Run:
        """A new run folder and index row; `fold` and `experiment` for one run of a
        k-fold, bootstrap or leave-one-out experiment (kept in fold.json too, so the run
        finds its samples again when resumed or evaluated)."""
        root = Path(root)
        run_id = new_id()
        path = root / _safe(project.name) / run_id
        (path / "checkpoints").mkdir(parents=True)
        run = cls(root, path, run_id)
        run._hold_lock()
        save_project(project, path / "project.json")
        if fold is not None:
            run.write_json(FOLD, {**fold.to_dict(), "experiment": experiment})
        with _connect(root) as db:
            db.execute(
                "INSERT INTO runs (id, project, path, started, status, device, resumed_from, "
                "experiment, method, fold, folds) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    project.name,
                    str(path.resolve()),
                    time.time(),
                    "running",
                    device,
                    resumed_from,
                    experiment if fold else None,
                    fold.method if fold else None,
                    fold.number if fold else None,
                    fold.count if fold else None,
                ),
            )
        return run

    def fold(self) -> Fold | None:
        """Which fold of an experiment this run is (None: a holdout run)."""
        path = self.path / FOLD
        if not path.is_file():
            return None
        try:
            return Fold.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise RunError(
                f"The run's fold file '{path}' is damaged ({err}); without it the run's "
                "training and validation samples are unknown."
            ) from None

    def experiment(self) -> str | None:
        """The id of the experiment this run is a fold of (None: a holdout run)."""
        return _experiment_of(self.path)[0]

    @classmethod
    def open(cls, root: str | Path, ref: str) -> Run:
        """A run by id, by folder path, or 'last' for the newest."""
        root = Path(root)
        as_path = Path(ref)
        if (as_path / "project.json").is_file():
            return cls(as_path.parent.parent, as_path, as_path.name)
        if not (root / INDEX).is_file() and not any(_run_folders(root)):
            raise RunError(f"There are no runs in '{root}' yet.")
        with _connect(root) as db:
            _reconcile(db, root)
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
    def save_weights(
        self, name: str, model: torch.nn.Module | dict, metadata: dict | None = None
    ) -> Path:
        path = self.path / "checkpoints" / f"{name}.safetensors"
        state = model if isinstance(model, dict) else model.state_dict()
        tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})
        _flush_to_disk(tmp)
        os.replace(tmp, path)
        return path

    def save_state(self, name: str, state: dict) -> None:
        """One checkpoint, one file: the weights travel inside the state (see the module's
        docstring); the safetensors beside it is a copy for export, written after."""
        folder = self.path / "checkpoints"
        final, tmp = folder / f"{name}.state.pt", folder / f"{name}.state.tmp"
        weights = {k: v.detach().cpu().contiguous() for k, v in state["model"].items()}
        torch.save({**state, "model": weights}, tmp)
        _flush_to_disk(tmp)
        if final.exists():
            # Keep the complete checkpoint before this one: a link, so the last name is
            # never missing, even for an instant.
            link = folder / f"prev-{name}.link.tmp"
            link.unlink(missing_ok=True)
            try:
                os.link(final, link)
            except OSError:  # no hard links here (some network or FAT file systems)
                import shutil

                shutil.copyfile(final, link)
            os.replace(link, _previous(folder, name))
        os.replace(tmp, final)
        _flush_to_disk(folder)
        self.save_weights(name, weights, {"step": state.get("step", 0)})

    def append_metrics(self, metrics: dict) -> None:
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(metrics) + "\n")

    def write_json(self, name: str, data) -> None:
        tmp = self.path / f"{name}.tmp"
        tmp.write_text(json.dumps(data, indent=2, default=_plain), encoding="utf-8")
        os.replace(tmp, self.path / name)

    def finish(self, summary: dict) -> None:
        self.write_json("summary.json", summary)
        self.release()
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

    def fail(self, error: str) -> None:
        """The training process could not go on (out of memory, bad data found late): the
        run says so, in the index and in summary.json; its last checkpoint stays."""
        self.write_json("summary.json", {"status": "failed", "error": error, "run": self.id})
        with _connect(self.root) as db:
            db.execute(
                "UPDATE runs SET finished=?, status='failed' WHERE id=?", (time.time(), self.id)
            )
        self.release()

    # -- reading -----------------------------------------------------------------------
    def load_state(self, name: str = "last") -> dict:
        """The newest complete checkpoint: `name`, else the one before it (with a sentence);
        a run with neither is refused in one sentence. Leftover temporary files go."""
        folder = self.path / "checkpoints"
        for leftover in folder.glob("*.tmp"):
            leftover.unlink(missing_ok=True)  # a write the kill cut short; never read
        final = folder / f"{name}.state.pt"
        previous = _previous(folder, name)
        if not final.is_file() and not previous.is_file():
            raise RunError(f"Run '{self.id}' has no resumable checkpoint ({final} is missing).")
        problems = []
        for path in (final, previous):
            if not path.is_file():
                continue
            try:
                state = self._read_state(path, name)
            except RunError as err:
                problems.append(str(err))
                continue
            if path == previous:
                notice(
                    f"{problems[0] if problems else f'{final} is missing.'} Resumed from the "
                    f"checkpoint before it ({path.name}, epoch {state['epoch']}, step "
                    f"{state['step']})."
                )
            return state
        raise RunError(" ".join(problems) + " No complete checkpoint is left to resume from.")

    def _read_state(self, path: Path, name: str) -> dict:
        from studio.weights import WeightsError, load_torch_file, read_state_dict

        try:
            # weights_only: a checkpoint is data; anything that would run code is refused.
            state = load_torch_file(path, "The checkpoint")
        except WeightsError as err:
            # The advice for a weights file (copy it again) does not fit a checkpoint the
            # studio wrote itself: the next sentence says what happens instead.
            raise RunError(str(err).replace("; save or copy it again.", ".")) from None
        if not isinstance(state, dict) or any(k not in state for k in STATE_KEYS):
            raise RunError(f"The checkpoint '{path}' is incomplete: it lacks the training state.")
        if "model" not in state:  # written before the weights travelled inside the state
            try:
                state["model"] = read_state_dict(self.path / "checkpoints" / f"{name}.safetensors")
            except WeightsError as err:
                raise RunError(str(err)) from None
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
    """Every run, from the index healed against the folders; `resumable` says whether an
    interrupted or stopped run can go on (`--resume`)."""
    root = Path(root)
    if not (root / INDEX).is_file() and not any(_run_folders(root)):
        return []
    with _connect(root) as db:
        added = _reconcile(db, root)
        if added:
            notice(
                f"The run index '{root / INDEX}' did not list {added} run folder"
                f"{'s' if added != 1 else ''}; added {'them' if added != 1 else 'it'}."
            )
        db.row_factory = sqlite3.Row
        query = (
            "SELECT * FROM runs" + (" WHERE project = ?" if project else "") + " ORDER BY started"
        )
        rows = [dict(r) for r in db.execute(query, (project,) if project else ())]
    for row in rows:
        checkpoints = Path(row["path"]) / "checkpoints"
        row["resumable"] = row["status"] != "completed" and (
            (checkpoints / "last.state.pt").is_file() or (checkpoints / "prev.state.pt").is_file()
        )
    return rows


def new_id() -> str:
    """A run's (or an experiment's) id: when it started, and a few random letters."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def _previous(folder: Path, name: str) -> Path:
    """Where the checkpoint before `name` is kept."""
    return folder / ("prev.state.pt" if name == "last" else f"prev-{name}.state.pt")


def _flush_to_disk(path: Path) -> None:
    """What was written reaches the disk before it is renamed into place (a rename can
    otherwise reach the disk before the data, and a power cut leaves an empty file)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # a directory on some systems (Windows) cannot be synced; nothing to do
    finally:
        os.close(fd)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "project"


def _plain(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(type(value).__name__)


def export_checkpoint(run_path: Path) -> Path:
    """The weights a run's export uses: its best checkpoint, else its last (the path of
    the last, missing, when it saved neither: the reader names it)."""
    return weights_file(run_path, "best") or Path(run_path) / CHECKPOINTS / "last.safetensors"
