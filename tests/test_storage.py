"""data.storage (issue 13, part 1): an image folder decoded once into a memory-mapped disk
cache gives the very samples in-memory loading gives, batch by batch and scaled the same
way; later loads skip decoding; a changed file rebuilds the cache; skipped files are still
named; auto picks the disk when the images would not fit comfortably in RAM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from studio.data import decode, sources
from studio.data.prepare import Batches, Samples, prepare_data
from studio.data.sources import on_disk


def image_folder(root, per_class=12, classes=("cat", "dog", "owl"), size=10):
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            pixels[..., c] = 255  # each class its own colour
            Image.fromarray(pixels).save(root / name / f"{i:03}.png")
    (root / "dog" / "broken.png").write_bytes(b"not a png")
    return root


def pets_project(root, storage, units=3, epochs=2, **data):
    """A flat classifier of the 3×10×10 images in `root`, its data kept as `storage` says."""
    from support import chain

    from studio.document import Project

    project = Project(
        name="pets",
        network=chain(
            {"id": "image", "type": "Input", "params": {"shape": [3, 10, 10]}},
            {"id": "flatten", "type": "Flatten"},
            {"id": "classes", "type": "Output", "params": {"units": units}},
        ),
    )
    project.data.update(settings(root, storage, **data))
    project.training.update(epochs=epochs, batch_size=8, device="cpu")
    return project


def settings(root, storage, scaling="unit", **more):
    from studio.settings import DATA, fill_section

    data = {"source": "image_folder", "path": str(root), "storage": storage, "scaling": scaling}
    data.update(more)
    return fill_section(DATA, data, "data")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("scaling", ["unit", "zscore", "imagenet"])
def test_disk_storage_gives_the_samples_memory_gives(tmp_path, scaling):
    root = image_folder(tmp_path / "images")
    memory = prepare_data(settings(root, "memory", scaling), (3, 10, 10), seed=0)
    disk = prepare_data(settings(root, "disk", scaling), (3, 10, 10), seed=0)
    assert isinstance(disk.train.x, Samples) and not isinstance(memory.train.x, Samples)
    for a, b in ((memory.train, disk.train), (memory.validation, disk.validation)):
        assert torch.equal(a.y, b.y) and torch.equal(a.index, b.index)
        assert torch.allclose(a.x[:], b.x[:], atol=1e-5)
        assert torch.allclose(a.x[3], b.x[3], atol=1e-5)  # one sample, as a tensor gives it
    # Batch by batch, in the same shuffled order.
    one = list(Batches(memory.train, 8, True, seed=1).epoch())
    two = list(Batches(disk.train, 8, True, seed=1).epoch())
    assert len(one) == len(two)
    for (xa, ya), (xb, yb) in zip(one, two):
        assert torch.equal(ya, yb) and torch.allclose(xa, xb, atol=1e-5)
    assert disk.skipped == memory.skipped and "broken.png" in disk.skipped[0][0]
    assert "disk cache" in disk.description


def test_the_cache_is_read_again_and_rebuilt_when_a_file_changes(tmp_path, monkeypatch):
    root = image_folder(tmp_path / "images")
    first = prepare_data(settings(root, "disk"), (3, 10, 10), seed=0)
    files = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(files) == 1

    def no_decoding(*args):
        raise AssertionError("decoded again although the cache is current")

    monkeypatch.setattr(decode, "decode", no_decoding)
    again = prepare_data(settings(root, "disk"), (3, 10, 10), seed=0)
    assert torch.equal(again.train.x[:], first.train.x[:])
    assert again.skipped == first.skipped  # the report survives the cache
    monkeypatch.undo()
    monkeypatch.setenv("STUDIO_CACHE", str(tmp_path / "cache"))
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(root / "cat" / "000.png")
    changed = prepare_data(settings(root, "disk"), (3, 10, 10), seed=0)
    assert sorted((tmp_path / "cache").glob("*.npy")) != files  # rebuilt, the old one gone
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    at = changed.origins.index(str(root / "cat" / "000.png"))
    where = (changed.train.index == at).nonzero()
    split = changed.train if len(where) else changed.validation
    row = int((split.index == at).nonzero()[0, 0])
    assert float(split.x[row].abs().max()) == 0.0  # the new pixels, not the cached ones


def test_a_damaged_cache_file_is_decoded_again(tmp_path):
    root = image_folder(tmp_path / "images")
    expected = prepare_data(settings(root, "disk"), (3, 10, 10), seed=0).train.x[:]
    for cut in (0, 200):  # emptied, and cut short after its header
        [array] = list((tmp_path / "cache").glob("*.npy"))
        with open(array, "r+b") as f:
            f.truncate(cut)
        again = prepare_data(settings(root, "disk"), (3, 10, 10), seed=0)
        assert torch.equal(again.train.x[:], expected)


def test_a_class_subset_and_training_work_from_the_disk(tmp_path):
    from studio.training.engine import Trainer

    root = image_folder(tmp_path / "images")
    trainer = Trainer(pets_project(root, "disk", units=2, classes=[0, 2]))
    assert isinstance(trainer.data.train.x, Samples)
    assert trainer.data.classes == ["cat", "owl"]
    result = trainer.fit()
    assert result.status == "completed" and result.history[-1]["val_accuracy"] >= 0.5


def test_auto_storage_uses_the_disk_when_the_images_would_crowd_the_ram(monkeypatch):
    monkeypatch.setattr(
        "studio.free_memory.available_memory", lambda device="cpu": (400_000, "RAM")
    )
    # 1,000 RGB images of 10×10 as floats: 1.2 MB, more than a quarter of 0.4 MB.
    assert on_disk("auto", 1000, "RGB", (10, 10))
    assert not on_disk("auto", 100, "L", (10, 10))  # 40 KB
    assert not on_disk("memory", 10**9, "RGB", (10, 10))
    assert on_disk("disk", 1, "L", (1, 1))


def test_a_full_disk_while_caching_is_one_sentence(tmp_path, monkeypatch):
    root = image_folder(tmp_path / "images")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np.lib.format, "open_memmap", full)
    with pytest.raises(sources.DataError, match="No space left on device; free some space"):
        prepare_data(settings(root, "disk"), (3, 10, 10), seed=0)
    assert not list((tmp_path / "cache").glob("*.tmp*"))


def _build_in_a_process(root, queue):
    # A forked child must not use the OpenMP team of a parent that has run parallel ops
    # (libgomp is not fork-safe); DataLoader's workers do the same.
    torch.set_num_threads(1)
    try:
        data = prepare_data(settings(root, "disk"), (3, 10, 10), seed=0)
        queue.put(float(data.train.x[:].sum()))
    except Exception as err:  # reported to the test, which names it
        queue.put(f"{type(err).__name__}: {err}")


def test_two_processes_building_the_same_cache_at_once_both_get_it(tmp_path):
    """Data-parallel processes starting on a cold cache (seen: one of them always failed,
    'No such file or directory', each removing or renaming the other's half-built file)."""
    import multiprocessing

    root = image_folder(tmp_path / "images", per_class=150)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_build_in_a_process, args=(root, queue)) for _ in range(2)]
    for w in workers:
        w.start()
    got = [queue.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    assert all(isinstance(g, float) for g in got), got
    assert got[0] == got[1]
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1  # and no half-built leftovers
    assert not list((tmp_path / "cache").glob("*.tmp*"))


def test_file_names_that_are_not_utf8_are_cached(tmp_path):
    import os

    root = image_folder(tmp_path / "images")
    name = os.fsdecode(b"bad\xff.png")  # bytes a file system may hold, not UTF-8
    (root / "cat" / "000.png").rename(root / "cat" / name)
    disk = prepare_data(settings(root, "disk"), (3, 10, 10), seed=0)
    memory = prepare_data(settings(root, "memory"), (3, 10, 10), seed=0)
    assert torch.allclose(disk.train.x[:], memory.train.x[:], atol=1e-5)


def test_a_cache_file_cut_short_while_in_use_is_a_sentence(tmp_path):
    root = image_folder(tmp_path / "images")
    data = prepare_data(settings(root, "disk"), (3, 10, 10), seed=0)
    [array] = list((tmp_path / "cache").glob("*.npy"))
    with open(array, "r+b") as f:
        f.truncate(200)
    with pytest.raises(sources.DataError, match="was cut short while training") as caught:
        data.train.x[:]
    assert str(array) in str(caught.value) and "built anew" in str(caught.value)
