"""Data-parallel training through torchrun (issue 13): two CPU processes (gloo) take the same
steps as one process with the same global batch; rank 0 keeps a complete run folder that
resumes with the same number of processes; killing one process ends the job in one
sentence with a resumable checkpoint, and Ctrl-C stops every process together."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from support import EXAMPLES

from studio.cli import main
from studio.training.launch import worker_argv

CNN = next(p for p in EXAMPLES if p.stem == "digits_cnn")
# Deterministic, one epoch of 23 steps of 64 samples (32 per process).
SETTINGS = [
    "--set=training.batch_size=64",
    "--set=training.deterministic=true",
    "--set=training.device=cpu",
    "--quiet",
]


def without_dropout(tmp_path: Path) -> Path:
    """digits_cnn without its dropout: masks are drawn per process, so a run with dropout
    matches a single process only in distribution, not number for number."""
    raw = json.loads(CNN.read_text())
    for node in raw["network"]["nodes"]:
        if node.get("dropout"):
            node["dropout"] = 0.0
    path = tmp_path / "digits_cnn.json"
    path.write_text(json.dumps(raw))
    return path


def studio(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "studio", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def only_run(out: Path) -> Path:
    [folder] = [p.parent for p in out.glob("*/*/project.json")]
    return folder


# SGD, not the project's Adam: Adam's first steps move every weight by about ±lr whatever
# its gradient's size, so a gradient that is zero but for rounding (summed in another order
# over two shards) becomes a full step of either sign. On an AVX-512 CPU that alone parts
# the two runs by 1e-4 within 20 steps; it is floating-point order, not the data-parallel
# arithmetic this test checks. Under SGD the runs stay within 1e-6.
SAME_STEPS = [*SETTINGS, "--set=training.optimizer.name=sgd", "--set=training.optimizer.lr=0.05"]


def test_two_processes_take_the_same_steps_as_one_with_the_same_global_batch(tmp_path, capsys):
    project = without_dropout(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    assert (
        main(["train", str(project), "--out", str(one), "--set=training.epochs=1", *SAME_STEPS])
        == 0
    )
    job = studio(
        "train",
        str(project),
        "--out",
        str(two),
        "--nproc",
        "2",
        "--json",
        "--set=training.epochs=1",
        *SAME_STEPS,
    )
    out, err = job.communicate(timeout=300)
    assert job.returncode == 0, err
    capsys.readouterr()
    summary = json.loads(out)
    assert summary["processes"] == 2
    assert summary["batch_size"] == {"global": 64, "per_process": 32}
    a = np.load(only_run(one) / "series.npz")["loss"]
    b = np.load(only_run(two) / "series.npz")["loss"]
    assert len(a) == len(b) >= 20
    assert np.abs(a[:20] - b[:20]).max() < 1e-5
    # Validation is reduced over both processes' shards: the same numbers as one process.
    single = json.loads((only_run(one) / "summary.json").read_text())
    assert summary["history"][0]["val_loss"] == pytest.approx(
        single["history"][0]["val_loss"], abs=1e-5
    )
    assert summary["history"][0]["val_accuracy"] == single["history"][0]["val_accuracy"]
    # Rank 0's run folder is complete; the checkpoint keeps both processes' random state.
    folder = only_run(two)
    for name in ("project.json", "metrics.jsonl", "findings.json", "series.npz"):
        assert (folder / name).is_file(), name
    state = torch.load(folder / "checkpoints" / "last.state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng_ranks"]) == 2
    # It resumes with two processes, and refuses one in a sentence.
    assert main(["train", "--resume", folder.name, "--out", str(two)]) != 0
    err = capsys.readouterr().err
    assert "trained by 2 processes and this is 1; resume it with the same number (--nproc 2)" in err
    assert len(list(two.glob("*/*/project.json"))) == 1  # no new run for a refusal


def test_killing_one_process_ends_the_job_in_a_sentence_and_the_run_resumes(tmp_path):
    project = without_dropout(tmp_path)
    out = tmp_path / "runs"
    tag = uuid.uuid4().hex
    job = studio(
        "train",
        str(project),
        "--out",
        str(out),
        "--nproc",
        "2",
        "--set=training.epochs=200",
        *SETTINGS,
        env={"STUDIO_TEST_TAG": tag},
    )

    def checkpoint():
        return list(out.glob("*/*/checkpoints/last.state.pt"))

    deadline = time.time() + 240
    while not checkpoint() and time.time() < deadline and job.poll() is None:
        time.sleep(0.2)
    assert checkpoint(), job.communicate()[1]
    os.kill(process_of(tag, rank=1), signal.SIGKILL)
    _, err = job.communicate(timeout=120)
    assert job.returncode != 0
    run = only_run(out).name
    assert (
        "Process 1 of the 2 data-parallel processes was killed by SIGKILL, so the job ended" in err
    )
    assert f"`studio train --resume {run} --out {out} --nproc 2` continues it." in err
    assert "Traceback" not in err
    # Resumed with two processes, it goes on from its checkpoint; Ctrl-C (to the launcher,
    # as a terminal sends it) stops both processes at the same step with a checkpoint.
    before = torch.load(checkpoint()[0], weights_only=True)["step"]
    again = studio("train", "--resume", run, "--out", str(out), "--nproc", "2", "--quiet")

    def resumed():
        found = out.glob("*/*/checkpoints/last.state.pt")
        return [p for p in found if p.parent.parent.name != run]

    deadline = time.time() + 240
    while not resumed() and time.time() < deadline and again.poll() is None:
        time.sleep(0.2)
    assert resumed(), again.communicate()[1]
    again.send_signal(signal.SIGINT)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 130, err
    assert "studio: stopped; run" in err and "Traceback" not in err
    state = torch.load(resumed()[0], weights_only=True)
    assert state["step"] > before and state["world_size"] == 2


def process_of(tag: str, rank: int) -> int:
    """The pid of the training process of this rank, found by the tag in its environment."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"STUDIO_TEST_TAG={tag}".encode() in env and f"RANK={rank}".encode() in env:
            return int(pid)
    raise AssertionError(f"no process of rank {rank}")


def test_fewer_samples_a_step_than_processes_or_a_bad_count_is_one_sentence(capsys):
    assert main(["train", str(CNN), "--nproc", "3", "--set=training.batch_size=2"]) != 0
    err = capsys.readouterr().err
    assert "'training.batch_size' is 2 but 3 processes share each batch" in err
    assert main(["check", str(CNN), "--set=training.processes=abc"]) != 0
    assert "must be 'auto' or a whole number from 1 to 256" in capsys.readouterr().err


def test_the_processes_run_the_command_without_the_launchers_options():
    argv = [
        "train",
        "p.json",
        "--nproc",
        "2",
        "--nnodes=2",
        "--rdzv-endpoint",
        "h:29400",
        "--quiet",
    ]
    assert worker_argv(argv) == ["train", "p.json", "--quiet"]
