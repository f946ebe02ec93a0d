"""Streaming images and DataLoader workers (issue 13, part 1): data.storage=stream reads
the files a batch at a time and gives the samples in-memory loading gives; data.workers
processes make the very batches the trainer makes (same samples, same augmentation, on
resume too); a file that breaks after loading is left out and reported; a CSV's image
column is kept on disk or streamed like an image folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_storage import image_folder, pets_project, settings

from studio.data.prepare import Batches, Samples, prepare_data
from studio.data.sources import DataError
from studio.data.stream import FileImages


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_CACHE", str(tmp_path / "cache"))


def jitter(x, y, seed):
    """An augmentation that draws from its seed, as the studio's do."""
    g = torch.Generator().manual_seed(seed)
    return x + torch.rand(x.shape, generator=g), y


@pytest.mark.parametrize("scaling", ["unit", "zscore"])
def test_streamed_images_are_the_samples_memory_gives(tmp_path, scaling):
    root = image_folder(tmp_path / "images")
    memory = prepare_data(settings(root, "memory", scaling), (3, 10, 10), seed=0)
    stream = prepare_data(settings(root, "stream", scaling), (3, 10, 10), seed=0)
    assert isinstance(stream.train.x, Samples)
    assert isinstance(stream.train.x.storage, FileImages)
    assert "read from the files a batch at a time" in stream.description
    assert stream.skipped == memory.skipped and "broken.png" in stream.skipped[0][0]
    assert not list((tmp_path / "cache").glob("*"))  # nothing decoded ahead, nothing kept
    for a, b in ((memory.train, stream.train), (memory.validation, stream.validation)):
        assert torch.equal(a.y, b.y) and torch.equal(a.index, b.index)
        assert torch.allclose(a.x[:], b.x[:], atol=1e-5)


@pytest.mark.parametrize("storage", ["disk", "stream"])
def test_worker_processes_make_the_batches_the_trainer_makes(tmp_path, storage):
    root = image_folder(tmp_path / "images", per_class=20)
    data = prepare_data(settings(root, storage), (3, 10, 10), seed=0)
    alone = Batches(data.train, 8, True, seed=3, transform=jitter)
    pooled = Batches(data.train, 8, True, seed=3, transform=jitter, workers=2)
    assert pooled.workers == 2 and alone.workers == 0
    try:
        for _ in range(2):  # the workers persist into the second epoch
            one, two = list(alone.epoch()), list(pooled.epoch())
            assert len(one) == len(two) == len(alone)
            for (xa, ya), (xb, yb) in zip(one, two):
                assert torch.equal(ya, yb) and torch.equal(xa, xb)
        # A run resumed two batches into an epoch replays the rest the same way.
        state = alone.generator.get_state()
        pooled.generator.set_state(state)
        rest = list(pooled.epoch(skip=2))
        alone.generator.set_state(state)
        expected = list(alone.epoch())[2:]
        assert all(torch.equal(a[0], b[0]) for a, b in zip(expected, rest))
        assert len(rest) == len(expected)
    finally:
        pooled.close()


def test_in_memory_data_is_sliced_in_the_trainer(tmp_path):
    root = image_folder(tmp_path / "images")
    data = prepare_data(settings(root, "memory"), (3, 10, 10), seed=0)
    assert Batches(data.train, 8, True, seed=0, workers=4).workers == 0


def test_a_workers_error_arrives_as_its_own_sentence(tmp_path):
    root = image_folder(tmp_path / "images")
    data = prepare_data(settings(root, "disk"), (3, 10, 10), seed=0)

    def broken(x, y, seed):
        raise DataError("Augmentation 'warp' needs a grid of at least 2 points.")

    batches = Batches(data.train, 8, True, seed=0, transform=broken, workers=1)
    try:
        with pytest.raises(DataError) as caught:
            list(batches.epoch())
        assert str(caught.value) == "Augmentation 'warp' needs a grid of at least 2 points."
    finally:
        batches.close()


def damage(path):
    """Keep the PNG's header (it still opens) and cut its pixels short."""
    whole = path.read_bytes()
    path.write_bytes(whole[:60])


@pytest.mark.parametrize("workers", [0, 1])
def test_a_file_that_breaks_after_loading_is_left_out_and_reported(tmp_path, workers):
    from studio.training import events
    from studio.training.engine import Trainer

    root = image_folder(tmp_path / "images", per_class=16)
    project = pets_project(root, "stream", workers=workers, validation=0.25)
    heard = []
    trainer = Trainer(project, listeners=[heard.append])
    victim = trainer.data.origins[int(trainer.data.train.index[5])]  # opened at load time
    damage(Path(victim))
    seen = []
    real = trainer.batches.epoch

    def counting(skip=0):
        for x, y in real(skip):
            seen.append(len(y))
            yield x, y

    trainer.batches.epoch = counting
    result = trainer.fit()
    assert result.status == "completed"
    found = [e for e in heard if isinstance(e, events.Finding) and e.kind == "unreadable_images"]
    assert len(found) == 1  # named once, not every epoch
    assert Path(victim).name in found[0].message and victim in found[0].evidence["files"]
    assert sum(seen) == 2 * (len(trainer.data.train) - 1)  # left out of its batch each epoch


def test_a_csv_image_column_is_cached_or_streamed(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(1)
    lines = ["file,label"]
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        lines.append(f"pictures/{i}.png,{'ab'[i % 2]}")
    table = tmp_path / "labels.csv"
    table.write_text("\n".join(lines) + "\n")

    def load(storage):
        data = settings(table, storage, source="csv", label_column="label", image_column="file")
        return prepare_data(data, (3, 10, 10), seed=0)

    memory, disk, stream = load("memory"), load("disk"), load("stream")
    assert not isinstance(memory.train.x, Samples)
    assert "disk cache" in disk.description and len(list((tmp_path / "cache").glob("*.npy"))) == 1
    assert isinstance(stream.train.x.storage, FileImages)
    for other in (disk, stream):
        assert torch.equal(other.train.y, memory.train.y)
        assert torch.allclose(other.train.x[:], memory.train.x[:], atol=1e-6)


def _children() -> list[int]:
    import os

    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                out.append(int(entry))
    return out


def test_a_killed_worker_ends_the_run_in_one_sentence_with_its_checkpoint(tmp_path):
    """However torch reports it (from the next batch, or its SIGCHLD handler anywhere in
    the step), a worker killed by the system is one sentence and a failed, resumable run."""
    import json
    import os
    import signal

    from studio.errors import StudioError
    from studio.training.callbacks import Callback
    from studio.training.runs import Run
    from studio.training.session import train

    root = image_folder(tmp_path / "images", per_class=40)
    project = pets_project(root, "stream", epochs=50, workers=1)
    before = set(_children())

    class KillAWorker(Callback):
        def on_step_end(self, trainer, step):
            if trainer.epoch == 1:  # after the first epoch's checkpoint
                for pid in set(_children()) - before:
                    os.kill(pid, signal.SIGKILL)

    with pytest.raises(StudioError) as caught:
        train(project, runs_root=tmp_path / "runs", callbacks=[KillAWorker()])
    assert str(caught.value).startswith("A data.workers process stopped while reading batches")
    assert "set it to 0" in str(caught.value)
    assert str(caught.value).endswith("The run is marked failed; its last checkpoint is kept.")
    (folder,) = (tmp_path / "runs" / "pets").iterdir()
    run = Run.open(tmp_path / "runs", folder.name)
    assert json.loads((folder / "summary.json").read_text())["status"] == "failed"
    assert run.load_state("last")["epoch"] >= 1  # resumable from the epoch it finished


def test_workers_train_as_the_trainer_alone_does_dropout_and_augmentation_included(tmp_path):
    """Workers draw nothing from the global generator dropout uses (torch's DataLoader
    seeds them from it unless given its own), so the losses are the same numbers."""
    from support import chain

    from studio.training.engine import Trainer

    root = image_folder(tmp_path / "images", per_class=16)
    losses = {}
    for workers in (0, 1):
        project = pets_project(root, "stream", workers=workers)
        project.network = chain(
            {"id": "image", "type": "Input", "params": {"shape": [3, 10, 10]}},
            {"id": "flatten", "type": "Flatten"},
            # Dropout draws from the global generator every step.
            {"id": "dense", "type": "Linear", "params": {"out_features": 16}, "dropout": 0.5},
            {"id": "classes", "type": "Output", "params": {"units": 3}},
        )
        project.data["augmentation"]["horizontal_flip"]["enabled"] = True
        result = Trainer(project, emit_hz=0).fit()
        losses[workers] = [h["train_loss"] for h in result.history]
    assert losses[0] == losses[1]


def test_a_run_with_batches_whose_files_all_failed_resumes_exactly(tmp_path):
    """A batch whose every file failed is passed over; a run stopped after it resumes at
    the planned batch it had reached, not one counted from the steps taken."""
    from support import train_stopped_and_resumed

    from studio.projectfile import save_project

    root = image_folder(tmp_path / "images", per_class=12)
    files = sorted(f for f in root.glob("*/*.png") if f.name != "broken.png")
    for f in files[::2] + files[1::4]:  # three in four: most batches of two lose both
        damage(f)
    project = pets_project(root, "stream", epochs=2)
    project.training.update(batch_size=2, deterministic=True)
    save_project(project, tmp_path / "pets.json")
    whole, part, resumed = train_stopped_and_resumed(
        tmp_path / "pets.json", [], tmp_path / "runs", stop_after=4
    )
    assert part.result.status == "stopped" and resumed.result.status == "completed"
    assert resumed.result.steps == whole.result.steps
    assert [h["train_loss"] for h in resumed.result.history] == [
        h["train_loss"] for h in whole.result.history
    ]


def test_a_validation_file_that_fails_is_left_out_of_the_scores_and_counted(tmp_path):
    """Not scored as a black image (which would blame the model for a file never read):
    left out of validation and of `studio evaluate`, named in a finding the run keeps."""
    import json

    from studio.evaluation import evaluate_run
    from studio.training.session import train

    root = image_folder(tmp_path / "images", per_class=16)
    project = pets_project(root, "stream", epochs=1, validation=0.25)
    from studio.data.prepare import prepare_data

    data = prepare_data(project.data, (3, 10, 10), seed=project.training["seed"])
    victim = data.origins[int(data.validation.index[0])]
    damage(Path(victim))  # it still opens: the header is whole
    outcome = train(project, runs_root=tmp_path / "runs")
    (finding,) = [f for f in outcome.findings if f.kind == "unreadable_images"]
    assert victim in finding.evidence["files"]
    saved = json.loads((outcome.run.path / "findings.json").read_text())
    assert [f["kind"] for f in saved].count("unreadable_images") == 1
    report = evaluate_run(outcome.run, "validation", "last")
    assert report["samples"] == len(data.validation) - 1
    assert [u["file"] for u in report["unreadable"]] == [victim]
