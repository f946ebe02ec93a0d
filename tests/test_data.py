"""Data sources, splits and scaling: digits offline, image folders with bad files, CSV."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from studio.data.prepare import Batches, prepare_data, split_indices
from studio.data.sources import DataError
from studio.settings import DATA, defaults


def settings(**changes) -> dict:
    return {**defaults(DATA), **changes}


def test_digits_load_offline_scaled_and_split_by_class():
    data = prepare_data(settings(), (1, 8, 8), seed=0)
    assert data.classes == [str(i) for i in range(10)]
    assert len(data.train) + len(data.validation) == 1797
    assert abs(len(data.validation) / 1797 - 0.2) < 0.01
    assert data.train.x.min() == 0 and data.train.x.max() == 1
    # Stratified: every class is in the validation split in about its share.
    counts = torch.bincount(data.validation.y, minlength=10)
    assert counts.min() >= 30


def test_the_split_depends_only_on_the_seed():
    y = torch.arange(100) % 5
    a, b = split_indices(y, 0.2, 0.1, 3, True), split_indices(y, 0.2, 0.1, 3, True)
    c = split_indices(y, 0.2, 0.1, 4, True)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not torch.equal(a[1], c[1])
    assert len(set(a[0].tolist()) & set(a[1].tolist())) == 0 and len(a[2]) == 10


@pytest.mark.parametrize(("scaling", "low", "high"), [("unit", 0, 1), ("symmetric", -1, 1)])
def test_pixel_scaling_ranges(scaling, low, high):
    x = prepare_data(settings(scaling=scaling), (64,), seed=0).train.x
    assert float(x.min()) == low and float(x.max()) == high


def test_zscore_statistics_come_from_the_training_split():
    data = prepare_data(settings(scaling="zscore"), (1, 8, 8), seed=0)
    assert abs(float(data.train.x.mean())) < 1e-5 and abs(float(data.train.x.std()) - 1) < 1e-3
    assert abs(float(data.validation.x.mean())) > 1e-5, "validation was not used for the statistics"


def test_samples_are_reshaped_to_the_input_or_the_mismatch_is_named():
    assert prepare_data(settings(), (8, 8), seed=0).train.x.shape[1:] == (8, 8)
    with pytest.raises(
        DataError, match=r"expects samples of 10 but the digits data gives 1×8×8.*\[1, 8, 8\]"
    ):
        prepare_data(settings(), (10,), seed=0)


def test_a_class_subset_is_renumbered_from_zero():
    data = prepare_data(settings(classes=[5, 6, 7, 8, 9]), (64,), seed=0)
    assert data.classes == ["5", "6", "7", "8", "9"]
    assert set(data.train.y.tolist()) == {0, 1, 2, 3, 4}


def _image(path, color):
    Image.new("RGB", (12, 10), color).save(path)


def test_an_image_folder_skips_and_names_unreadable_files(tmp_path):
    for cls, color in (("cats", (200, 10, 10)), ("dogs", (10, 10, 200))):
        (tmp_path / cls).mkdir()
        for i in range(4):
            _image(tmp_path / cls / f"{i}.png", color)
    (tmp_path / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    data = prepare_data(
        settings(source="image_folder", path=str(tmp_path), validation=0.25), (3, 8, 8), seed=0
    )
    assert data.classes == ["cats", "dogs"]
    assert len(data.train) + len(data.validation) == 8
    skipped = {name.split("/")[-1] for name, _ in data.skipped}
    assert skipped == {"broken.png", "notes.txt"}
    assert "broken.png" in data.report() and "Skipped 2" in data.report()
    assert data.train.x.shape[1:] == (3, 8, 8)
    cats = data.train.x[data.train.y == 0]
    assert torch.all(cats[:, 0] > cats[:, 2]), "red images stay red after decoding and scaling"


def test_a_grayscale_input_loads_images_as_one_channel(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for cls in ("a", "b"):
        for i in range(3):
            _image(tmp_path / cls / f"{i}.jpg", (i * 40, 50, 60))
    data = prepare_data(
        settings(source="image_folder", path=str(tmp_path), validation=0.0), (1, 6, 6), seed=0
    )
    assert data.train.x.shape == (6, 1, 6, 6)


def test_a_missing_image_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        prepare_data(
            settings(source="image_folder", path=str(tmp_path / "nope")), (3, 8, 8), seed=0
        )


def test_a_csv_without_its_label_column_is_rejected_in_one_sentence(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("a,b,target\n1,2,0\n3,4,1\n")
    with pytest.raises(DataError) as err:
        prepare_data(settings(source="csv", path=str(path)), (2,), seed=0)
    message = str(err.value)
    assert "table.csv" in message and "no column 'label'" in message and "a, b, target" in message
    assert message.count(".") <= 3 and "\n" not in message


def test_a_csv_table_trains_on_its_numeric_columns(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["x1,x2,label"] + [
        f"{a:.3f},{b:.3f},{'yes' if a > b else 'no'}" for a, b in rng.normal(size=(60, 2))
    ]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(rows))
    data = prepare_data(settings(source="csv", path="t.csv"), (2,), seed=0, base=tmp_path)
    assert data.classes == ["no", "yes"]
    assert data.train.x.shape[1] == 2
    assert float(data.train.x.min()) >= 0 and float(data.train.x.max()) <= 1


def test_a_bad_csv_cell_is_named_by_row_and_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,label\n1,0\nabc,1\n")
    with pytest.raises(DataError, match=r"line 3, column 'x': 'abc' is not a number"):
        prepare_data(settings(source="csv", path=str(path)), (1,), seed=0)


def test_batches_shuffle_from_a_private_generator_and_replay_after_resume():
    data = prepare_data(settings(), (64,), seed=0)
    batches = Batches(data.train, 100, shuffle=True, seed=1)
    torch.manual_seed(0)
    before = torch.rand(1)
    state = batches.generator.get_state()
    first = [y for _, y in batches.epoch()]
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), before), "shuffling does not touch the global generator"
    batches.generator.set_state(state)
    replay = [y for _, y in batches.epoch(skip=3)]
    assert all(torch.equal(a, b) for a, b in zip(first[3:], replay))


def test_digits_scale_up_to_rgb_for_an_input_that_wants_bigger_color_images():
    small = prepare_data(settings(), (1, 8, 8), seed=0)
    big = prepare_data(settings(), (3, 32, 32), seed=0)
    assert big.train.x.shape[1:] == (3, 32, 32)
    assert torch.equal(big.train.y, small.train.y)
    # The gray channel is repeated, and scaling up keeps each image's mean brightness.
    assert torch.equal(big.train.x[:, 0], big.train.x[:, 2])
    assert torch.allclose(big.train.x.mean((1, 2, 3)), small.train.x.mean((1, 2, 3)), atol=0.02)
    assert "32×32 RGB" in big.description


def test_data_goes_to_a_gpu_once_only_when_it_fits_in_a_quarter_of_its_free_memory():
    from studio.data.prepare import on_device

    data = prepare_data(settings(), (1, 8, 8), seed=0)
    size = sum(
        s.x.numel() * s.x.element_size() + s.y.numel() * s.y.element_size()
        for s in (data.train, data.validation, data.test)
    )
    assert on_device(data, torch.device("cpu")) is data
    # "meta" stands in for a GPU here: the tensors move when they fit, and only then.
    meta = torch.device("meta")
    assert on_device(data, meta, free_bytes=4 * size - 4) is data
    moved = on_device(data, meta, free_bytes=4 * size)
    assert moved.train.x.device.type == "meta" and moved.validation.y.device.type == "meta"
    assert moved.classes == data.classes and len(moved.train) == len(data.train)
