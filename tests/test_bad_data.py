"""Bad data, named: each way a data set can be wrong ends in one sentence that names the
file, line, column or folder, before any training step (issue 11, "Bad data, named")."""

from __future__ import annotations

import errno
import json
import os
import sys
import threading
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image
from support import EXAMPLES

from studio.cli import main
from studio.data.prepare import data_sources, prepare_data
from studio.data.sources import DataError, RawData
from studio.settings import DATA, defaults

MLP = next(p for p in EXAMPLES if p.stem == "digits_mlp")
ROWS = ["x1,x2,label", "0.1,0.2,no", "0.5,0.1,yes", "0.3,0.9,no", "0.8,0.4,yes", "0.2,0.6,no"]


def project(tmp_path: Path, source: str, shape: list[int], units: int = 2) -> Path:
    """The digits MLP example reading `source` data, one epoch."""
    doc = json.loads(MLP.read_text())
    nodes = {n["id"]: n for n in doc["network"]["nodes"]}
    nodes["image"]["params"]["shape"] = shape
    nodes["classes"]["params"]["units"] = units
    doc["data"].update(source=source, validation=0.25)
    doc["training"]["epochs"] = 1
    path = tmp_path / f"{source}.json"
    path.write_text(json.dumps(doc))
    return path


def train(tmp_path: Path, capsys, source: str, data: Path | str, **kw) -> tuple[int, str]:
    shape = [2] if source == "csv" else [3, 8, 8]
    code = main(
        [
            "train",
            str(project(tmp_path, source, shape, **kw)),
            "--set",
            f"data.path={data}",
            "--out",
            str(tmp_path / "runs"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert "unexpected" not in err and "Traceback" not in err
    return code, err


def write_csv(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def image_folder(root: Path, classes: dict[str, int]) -> Path:
    for i, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True)
        for k in range(count):
            Image.new("RGB", (12, 10), (40 * i, 100, 200 - 40 * i)).save(root / name / f"{k}.png")
    return root


def settings(**changes) -> dict:
    return {**defaults(DATA), **changes}


def test_an_empty_class_folder_is_named_and_not_counted(tmp_path, capsys):
    root = image_folder(tmp_path / "images", {"cats": 4, "dogs": 4, "empty": 0})
    (root / "empty" / "notes.txt").write_text("no images here")
    code, err = train(tmp_path, capsys, "image_folder", root)
    assert code == 0, err
    assert f"Class folder 'empty' in '{root}' holds no readable images" in err
    assert "not counted as a class" in err and "units" not in err
    data = prepare_data(settings(source="image_folder", path=str(root)), (3, 8, 8), seed=0)
    assert data.classes == ["cats", "dogs"]
    assert set(data.train.y.tolist()) | set(data.validation.y.tolist()) == {0, 1}


@pytest.mark.parametrize(("bad", "found"), [("0.5,yes", 2), ("0.5,0.2,yes,9", 4)])
def test_a_csv_row_with_the_wrong_number_of_cells_is_named_by_line(tmp_path, capsys, bad, found):
    # A blank line and a quoted cell spanning two lines come first: the number is the
    # line a text editor shows, not the row's index.
    lines = [*ROWS[:2], "", '"0.4","0.7","multi', 'line"', bad, *ROWS[2:]]
    path = write_csv(tmp_path / "t.csv", lines)
    code, err = train(tmp_path, capsys, "csv", path)
    assert code == 1
    assert f"CSV file '{path}', line 6: expected 3 cells" in err
    assert f"but found {found}." in err and "label column" not in err


def test_a_csv_that_is_not_utf8_names_the_line_and_byte(tmp_path, capsys):
    path = write_csv(tmp_path / "latin.csv", [*ROWS[:3], "0.5,0.2,café", *ROWS[3:]], "latin-1")
    code, err = train(tmp_path, capsys, "csv", path)
    assert code == 1
    assert f"CSV file '{path}' is not UTF-8 text: line 4 holds the byte 0xe9" in err
    assert "UnicodeDecodeError" not in err


@pytest.mark.parametrize(
    ("line", "column", "cell"),
    [("nan,0.2,yes", "x1", "nan"), ("0.3,inf,no", "x2", "inf"), ("0.3,-1e39,no", "x2", "-1e39")],
)
def test_nan_and_inf_cells_are_named_before_training(tmp_path, capsys, line, column, cell):
    path = write_csv(tmp_path / "t.csv", [*ROWS[:3], line, *ROWS[3:]])
    code, err = train(tmp_path, capsys, "csv", path)
    assert code == 1
    assert f"CSV file '{path}', line 4, column '{column}': '{cell}' is not a finite number" in err
    assert "diverged" not in err and "learning rate" not in err


def test_a_nan_label_is_named_too(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["x,y", "1,0.5", "2,nan", "3,1.5"])
    with pytest.raises(DataError, match=r"t.csv', line 3, column 'y': 'nan' is not a finite"):
        prepare_data(settings(source="csv", path=str(path), label_column="y"), (1,), seed=0)


def test_single_class_csv_is_refused_with_the_class_and_file(tmp_path, capsys):
    path = write_csv(
        tmp_path / "one.csv", ["x1,x2,label"] + [f"{i},{i * 2},only" for i in range(9)]
    )
    for units in (1, 2):
        code, err = train(tmp_path, capsys, "csv", path, units=units)
        assert code == 1
        assert f"CSV file '{path}': every row's 'label' is 'only'" in err
        assert "at least two classes" in err and "units" not in err


def test_single_class_image_folder_is_refused_naming_the_class(tmp_path, capsys):
    root = image_folder(tmp_path / "images", {"cats": 4, "dogs": 0})
    code, err = train(tmp_path, capsys, "image_folder", root)
    assert code == 1
    assert f"Image folder '{root}' has images for only one class, 'cats' ('dogs' has none)" in err
    assert "at least two classes" in err


def test_keeping_a_single_class_is_refused():
    with pytest.raises(DataError, match=r"'data.classes' keeps only class 3 \('3'\).*two classes"):
        prepare_data(settings(classes=[3]), (64,), seed=0)


def test_a_plugin_source_with_nan_or_one_class_is_refused_by_sample(monkeypatch):
    def nan_source(request):
        x = torch.zeros(10, 2)
        x[7, 1] = float("nan")
        return RawData(x, torch.arange(10) % 2, ["a", "b"], None, description="ten rows")

    def one_class(request):
        return RawData(torch.zeros(10, 2), torch.zeros(10, dtype=torch.int64), ["a"], None)

    monkeypatch.setitem(data_sources(), "nan_source", nan_source)
    monkeypatch.setitem(data_sources(), "one_class", one_class)
    with pytest.raises(DataError, match=r"nan_source data \(ten rows\).*NaN or infinite.*sample 7"):
        prepare_data(settings(source="nan_source"), (2,), seed=0)
    with pytest.raises(DataError, match=r"one_class data.*only one class, 'a'"):
        prepare_data(settings(source="one_class"), (2,), seed=0)


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null")
def test_a_device_is_never_read_as_a_csv(tmp_path, capsys):
    # /dev/zero would fill the memory; /dev/null takes the same path and ends at once.
    code, err = train(tmp_path, capsys, "csv", "/dev/null")
    assert code == 1
    assert "CSV file '/dev/null' is not a regular file (it is a device, pipe or socket)" in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_named_pipe_is_never_opened(tmp_path, capsys):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)

    def unblock():  # should the loader open the pipe after all, it gets an end, not a hang
        if not done.wait(10):
            with open(fifo, "w"):
                pass

    done = threading.Event()
    threading.Thread(target=unblock, daemon=True).start()
    try:
        code, err = train(tmp_path, capsys, "csv", fifo)
    finally:
        done.set()
    assert code == 1 and f"CSV file '{fifo}' is not a regular file" in err


def test_a_folder_where_a_file_belongs_and_back_are_named(tmp_path, capsys):
    code, err = train(tmp_path, capsys, "csv", tmp_path)
    assert code == 1 and f"CSV file '{tmp_path}' is a folder" in err
    path = write_csv(tmp_path / "t.csv", ROWS)
    code, err = train(tmp_path, capsys, "image_folder", path)
    assert code == 1 and f"Image folder '{path}' is not a folder" in err


def test_an_unreadable_class_folder_is_named_not_a_crash(tmp_path, monkeypatch):
    root = image_folder(tmp_path / "images", {"cats": 4, "dogs": 4, "locked": 2})
    scandir = os.scandir

    def no_entry(path="."):
        if Path(path).name == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", no_entry)
    data = prepare_data(settings(source="image_folder", path=str(root)), (3, 8, 8), seed=0)
    assert data.classes == ["cats", "dogs"]
    assert (str(root / "locked"), "folder cannot be read: Permission denied") in data.skipped
    assert "Class folder 'locked'" in data.report()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_proc_as_an_image_folder_is_one_sentence(tmp_path, capsys):
    code, err = train(tmp_path, capsys, "image_folder", "/proc")
    assert code == 1 and "Image folder '/proc' has no readable images" in err


def test_a_huge_image_is_skipped_and_named_without_pils_warning(tmp_path, monkeypatch):
    root = image_folder(tmp_path / "images", {"cats": 4, "dogs": 4})
    # Limits scaled down: 1,000 pixels warns (as 89 megapixels does), over 2,000 is an error.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("L", (40, 30)).save(root / "cats" / "huge.png")
    Image.new("L", (50, 50)).save(root / "dogs" / "bomb.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = prepare_data(settings(source="image_folder", path=str(root)), (3, 8, 8), seed=0)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert sorted((Path(f).name, why) for f, why in data.skipped) == [
        ("bomb.png", "too large to open safely (0.0025 megapixels)"),
        ("huge.png", "too large to open safely (0.0012 megapixels)"),
    ]
    assert len(data.train) + len(data.validation) == 8


def test_quiet_still_prints_the_skipped_files_line(tmp_path, capsys):
    root = image_folder(tmp_path / "images", {"cats": 4, "dogs": 4})
    (root / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    code, err = train(tmp_path, capsys, "image_folder", root)
    assert code == 0, err
    assert "Skipped 1 file(s): cats/broken.png (" in err
    assert "Training on" not in err, "the rest stays quiet"


def test_16_bit_and_float_images_keep_their_grey_levels(tmp_path):
    """PIL's convert clips them (a 16-bit scan came out all white, a float image in 0–1
    all black); they are brought to 0–255 instead."""
    import numpy as np
    from PIL import Image

    from studio.data.decode import decode

    ramp = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)  # 0 … 65472
    Image.fromarray(ramp).save(tmp_path / "scan.png")
    got = decode(tmp_path / "scan.png", "L", (32, 32))[0]
    assert np.array_equal(got, np.rint(ramp / 257).astype(np.uint8))
    unit = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    Image.fromarray(unit, "F").save(tmp_path / "unit.tif")
    rgb = decode(tmp_path / "unit.tif", "RGB", (32, 32))
    assert rgb.shape == (3, 32, 32) and rgb.min() == 0 and rgb.max() == 255
    assert abs(float(rgb.mean()) - 127.5) < 1
