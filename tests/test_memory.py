"""Limits known before training (issue 11): the memory one step needs, against the machine;
a network that cannot fit is refused before anything is allocated, and running out of
memory mid-run ends in a sentence with the run marked failed and its checkpoint kept."""

from __future__ import annotations

import pytest
import torch
from support import EXAMPLES

import studio.free_memory
import studio.memory
from studio.analysis import analyze
from studio.cli import main
from studio.errors import StudioError
from studio.memory import estimate
from studio.projectfile import load_project
from studio.training.runs import list_runs
from studio.training.session import train

MLP = next(p for p in EXAMPLES if p.stem == "digits_mlp")
# A 50-megapixel input flattened into a 65,536-unit layer: ~3.3 trillion weights.
BOMB = ["network.nodes.0.params.shape=[50,1000,1000]", "network.nodes.2.params.out_features=65536"]


def test_the_estimate_counts_weights_optimizer_state_and_activations():
    project = load_project(MLP, ["training.batch_size=100", "training.optimizer.name=adam"])
    e = estimate(project, analyze(project.network))
    params = sum(i.params for i in analyze(project.network).layers.values())
    assert e.weights == params * 4 * 4  # weights, gradients and Adam's two moments, fp32
    # hidden1 (128 ReLU units) keeps its output and its ReLU's: 2 x 128 x 100 x 4 bytes.
    assert e.activations >= 2 * 128 * 100 * 4
    bigger = load_project(MLP, ["training.batch_size=1000", "training.optimizer.name=adam"])
    assert estimate(bigger, analyze(bigger.network)).activations == 10 * e.activations


def test_a_network_that_cannot_fit_is_refused_before_anything_is_allocated(tmp_path, capsys):
    project = load_project(MLP, BOMB)
    with pytest.raises(StudioError, match="will not fit.*'hidden1'"):
        train(project, runs_root=tmp_path)
    assert not list(tmp_path.glob("*/*"))  # no run folder left behind
    assert main(["check", str(MLP), *sum((["--set", s] for s in BOMB), [])]) != 0
    err = capsys.readouterr().err
    assert "will not fit" in err and "hidden1" in err and "unexpected" not in err


def test_the_machine_limit_follows_what_is_free(monkeypatch):
    project = load_project(MLP)
    monkeypatch.setattr(studio.free_memory, "_ram_available", lambda: 10**12)
    assert estimate(project, analyze(project.network)).fits
    monkeypatch.setattr(studio.free_memory, "_ram_available", lambda: 1000)
    e = estimate(project, analyze(project.network))
    assert not e.fits and "1.0 KB of RAM free" in e.sentence()


def test_running_out_of_memory_mid_run_is_a_sentence_and_a_failed_run(tmp_path, monkeypatch):
    from studio.training.engine import Trainer

    real_epoch = Trainer._train_epoch

    def epoch(self, index, skip):
        if index == 1:  # after the first epoch's checkpoint
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_epoch(self, index, skip)

    monkeypatch.setattr(Trainer, "_train_epoch", epoch)
    project = load_project(MLP, ["training.epochs=3", "training.batch_size=64"])
    with pytest.raises(StudioError) as err:
        train(project, runs_root=tmp_path)
    assert "ran out of memory at batch size 64" in str(err.value)
    assert "'hidden1'" in str(err.value) and "marked failed" in str(err.value)
    (row,) = list_runs(tmp_path)
    assert row["status"] == "failed" and row["resumable"]
    checkpoints = tmp_path / "digits_mlp" / row["id"] / "checkpoints"
    assert (checkpoints / "last.state.pt").is_file()


def test_the_data_is_counted_from_its_files_without_reading_them(tmp_path, monkeypatch):
    rows = "\n".join(",".join(["0.5"] * 64 + [str(i % 3)]) for i in range(5000))
    header = ",".join([f"x{i}" for i in range(64)] + ["label"])
    (tmp_path / "big.csv").write_text(header + "\n" + rows + "\n")
    project = load_project(
        MLP, ["data.source=csv", "data.path=big.csv", "network.nodes.0.params.shape=[64]"]
    )
    e = estimate(project, analyze(project.network), base=tmp_path)
    assert e.data == 5000 * 64 * 4
    monkeypatch.setattr(studio.free_memory, "_ram_available", lambda: e.total - 1)
    e = estimate(project, analyze(project.network), base=tmp_path)
    assert not e.fits and "mostly for the data" in e.sentence()
