"""A checkpoint is one unit (issue 11): a training process killed at any point of writing
one resumes to exactly the weights of a run that was never killed, or refuses in a sentence;
a damaged checkpoint falls back to the one before it, saying so."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support import ROOT

from studio.errors import NOTICES, StudioError
from studio.training.runs import Run, list_runs
from studio.weights import read_state_dict

sys.path.insert(0, str(Path(__file__).parent))

MLP = ROOT / "resources" / "examples" / "digits_mlp.json"
CHILD = Path(__file__).parent / "kill_during_checkpoint.py"


def killed(runs: Path, points: list[int]) -> tuple[dict[int, int], list[str]]:
    """Train once unharmed (into runs/-1), then once per point, each process killed at that
    write event: ({point: exit status}, the write events of the unharmed run)."""
    out = subprocess.run(
        [sys.executable, str(CHILD), str(runs), str(runs / "events.txt"), *map(str, points)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    statuses = {int(p): int(s) for p, s in (line.split() for line in out.splitlines())}
    return statuses, (runs / "events.txt").read_text().splitlines()


def folder_of(runs: Path) -> Path:
    """The run folder the script trained (and maybe killed) in `runs`, not its resumption."""
    resumed = runs / "resumed.txt"
    (folder,) = [
        p.parent
        for p in runs.glob("*/*/project.json")
        if not resumed.is_file() or p.parent != Path(resumed.read_text())
    ]
    return folder


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The run nobody killed, and the list of write events a checkpointing run makes."""
    runs = tmp_path_factory.mktemp("whole")
    _, events = killed(runs, [])
    return folder_of(runs / "-1"), events


def second_checkpoint(events: list[str]) -> list[int]:
    """The kill points: every write of the end-of-epoch-2 checkpoint (the first with a
    checkpoint before it) and of the best weights before it, cut short or between steps;
    not the final weights copy the run writes as it ends (its last three events)."""
    starts = [i for i, e in enumerate(events) if e.startswith("torch.save last.state.tmp cut")]
    first_best = max(i for i, e in enumerate(events[: starts[1]]) if "best.tmp cut" in e)
    return list(range(first_best, len(events) - 3))


def test_a_kill_anywhere_in_a_checkpoint_resumes_exactly_or_refuses(whole, tmp_path):
    folder, events = whole
    reference = read_state_dict(folder / "checkpoints" / "last.safetensors")
    summary = (folder / "summary.json").read_text()
    points = second_checkpoint(events)
    assert len(points) >= 8, events  # cut writes, finished writes, links and renames
    statuses, _ = killed(tmp_path, points)
    assert all(os.WIFSIGNALED(s) and os.WTERMSIG(s) == 9 for s in statuses.values()), statuses
    for point in points:
        runs = tmp_path / str(point)
        if (runs / "refused.txt").is_file():  # refusing is allowed, in a sentence
            assert "checkpoint" in (runs / "refused.txt").read_text(), events[point]
            continue
        resumed = Path((runs / "resumed.txt").read_text())
        got = read_state_dict(resumed / "checkpoints" / "last.safetensors")
        assert all(torch.equal(reference[k], got[k]) for k in reference), events[point]
    for point in points:  # a cut-short write is cleaned away once the run is resumed
        assert not list((folder_of(tmp_path / str(point)) / "checkpoints").glob("*.tmp"))
    assert '"completed"' in summary


def test_a_damaged_checkpoint_falls_back_to_the_one_before_with_a_sentence(whole, tmp_path, caplog):
    folder, _ = whole
    import shutil

    copy = tmp_path / "runs" / folder.parent.name / folder.name
    shutil.copytree(folder, copy)
    last = copy / "checkpoints" / "last.state.pt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated
    with caplog.at_level(logging.WARNING, logger=NOTICES):
        state = Run.open(tmp_path / "runs", str(copy)).load_state()
    assert state["epoch"] == 1  # the checkpoint before the last (epoch 2 of 2)
    assert "last.state.pt" in caplog.text and "Resumed from the checkpoint before it" in caplog.text
    (copy / "checkpoints" / "prev.state.pt").write_bytes(b"")
    with pytest.raises(StudioError, match="No complete checkpoint is left"):
        Run.open(tmp_path / "runs", str(copy)).load_state()


def test_a_state_file_that_would_run_code_is_refused_in_a_sentence(whole, tmp_path):
    import pickle
    import shutil

    class Evil:
        def __reduce__(self):
            return (print, ("this ran",))

    copy = tmp_path / "runs" / folder_name(whole)
    shutil.copytree(whole[0], copy)
    for name in ("last.state.pt", "prev.state.pt"):
        (copy / "checkpoints" / name).write_bytes(pickle.dumps(Evil()))
    with pytest.raises(StudioError) as err:
        Run.open(tmp_path / "runs", str(copy)).load_state()
    assert "could run code" in str(err.value) and "weights_only" not in str(err.value)
    assert "last.state.pt" in str(err.value)


def folder_name(whole) -> str:
    return f"{whole[0].parent.name}/{whole[0].name}"


def test_the_index_heals_and_killed_runs_show_as_interrupted(whole, tmp_path, caplog):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(whole[0], runs / folder_name(whole))
    (runs / "index.sqlite").write_bytes(b"this is not a database" * 10)
    with caplog.at_level(logging.WARNING, logger=NOTICES):
        rows = list_runs(runs)
    assert [r["id"] for r in rows] == [whole[0].name] and rows[0]["status"] == "completed"
    assert "rebuilt it from the 1 run folder" in caplog.text
    # A run killed mid-training: no summary, its lock free → interrupted, and resumable.
    killed(tmp_path / "killed", [8])  # after epoch 1's checkpoint: a whole state to resume
    died = tmp_path / "killed" / "8"
    first = folder_of(died).name  # the script resumed it too, into a second run

    def row():
        return next(r for r in list_runs(died) if r["id"] == first)

    assert row()["status"] == "interrupted" and row()["resumable"]
    (died / "index.sqlite").write_bytes(b"")  # 0 bytes: the runs are found again
    assert row()["status"] == "interrupted" and len(list_runs(died)) == 2
