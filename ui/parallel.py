"""Training in several processes from the window: `studio train --nproc N` as a subprocess.

The window does not train these itself: torchrun's processes do, and rank 0 writes the
run folder's event log, which the window follows exactly as File → Watch Run… does (one
mechanism for both). Stop sends the launcher Ctrl-C (torchrun passes it to every process;
they stop together with a checkpoint); Pause puts a `pause` file in the run folder, which
rank 0 looks for each step and every process then waits on (studio/training/engine.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from studio.document import Project
from studio.projectfile import save_project
from studio.training.runs import _safe


class ParallelJob:
    """One `studio train --nproc N` subprocess and the run folder it writes."""

    def __init__(self, project: Project, runs_root: Path, base: Path, processes: int, force=False):
        self.project, self.runs_root, self.processes = project, Path(runs_root), processes
        self.folder: Path | None = None
        self.started = time.time()
        self._dir = tempfile.TemporaryDirectory(prefix="studio-job-")
        # The project as it is now (saved or not), trained from a copy; relative data
        # paths still start at the project's own folder (--base).
        path = Path(self._dir.name) / "project.json"
        save_project(project, path)
        self._stderr = open(Path(self._dir.name) / "stderr.txt", "w+", encoding="utf-8")  # noqa: SIM115
        argv = [
            sys.executable,
            "-m",
            "studio",
            "train",
            str(path),
            "--out",
            str(self.runs_root),
            "--base",
            str(base),
            "--nproc",
            str(processes),
            "--quiet",
            *(["--force"] if force else []),
        ]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self._stderr)

    def run_folder(self) -> Path | None:
        """The run folder rank 0 made for this job, once it exists."""
        if self.folder is None:
            candidates = [
                p.parent
                for p in (self.runs_root / _safe(self.project.name)).glob("*/project.json")
                if p.stat().st_mtime >= self.started - 1
            ]
            if candidates:
                self.folder = max(candidates, key=lambda p: p.stat().st_mtime)
        return self.folder

    @property
    def finished(self) -> bool:
        return self.process.poll() is not None

    def stop(self) -> None:
        """Ctrl-C to the launcher: every process stops at the same step, with a checkpoint."""
        if not self.finished:
            os.kill(self.process.pid, signal.SIGINT)

    def pause(self, on: bool) -> None:
        folder = self.run_folder()
        if folder is None:
            return
        flag = folder / "pause"
        if on:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    def error(self) -> str:
        """The job's own sentence when it failed (the launcher's last `studio:` line)."""
        self._stderr.seek(0)
        lines = [line.strip() for line in self._stderr.read().splitlines() if line.strip()]
        said = [line[len("studio: ") :] for line in lines if line.startswith("studio: ")]
        if said:
            return said[-1]
        code = self.process.returncode
        return f"The training processes ended with exit code {code}" + (
            f": {lines[-1]}" if lines else "."
        )

    def close(self) -> None:
        self.pause(False)
        self._stderr.close()
        self._dir.cleanup()
