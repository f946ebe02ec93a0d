"""A weights file that would run code, or that is cut off, is refused in one sentence that
names the file and says why, and never advises loading it unsafely."""

from __future__ import annotations

import builtins
import pickle
from pathlib import Path

import pytest
import torch
from support import EXAMPLES

from studio.cli import main
from studio.pretrained import read_state
from studio.weights import WeightsError, load_torch_file, read_state_dict

MLP = next(p for p in EXAMPLES if p.stem == "digits_mlp")
RAN = "this pickle ran code"
UNSAFE_ADVICE = ("weights_only", "Re-running", "trust", "add_safe_globals")


class Exploit:
    """What a hostile file holds: unpickling it calls a function (here, harmlessly, print)."""

    def __reduce__(self):
        return (builtins.print, (RAN,))


def evil_torch_file(folder: Path) -> Path:
    path = folder / "evil.pth"
    torch.save({"layers.weight": torch.zeros(2), "payload": Exploit()}, path)
    return path


def evil_pickle(folder: Path) -> Path:
    path = folder / "evil.pkl"
    path.write_bytes(pickle.dumps({"weight": Exploit()}))
    return path


def truncated(folder: Path) -> Path:
    path = folder / "cut.pth"
    torch.save({"weight": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:2000])
    return path


def assert_refused_in_a_sentence(message: str, path: Path, why: str) -> None:
    assert path.name in message and why in message, message
    assert "\n" not in message and len(message) < 400, message
    for advice in UNSAFE_ADVICE:
        assert advice not in message, message


@pytest.mark.parametrize("make", [evil_torch_file, evil_pickle])
def test_a_file_that_would_run_code_is_refused_without_running_it(make, tmp_path, capsys):
    path = make(tmp_path)
    with pytest.raises(WeightsError) as err:
        load_torch_file(path)
    assert_refused_in_a_sentence(str(err.value), path, "could run code")
    assert RAN not in capsys.readouterr().out


def test_a_truncated_file_is_called_damaged(tmp_path):
    path = truncated(tmp_path)
    with pytest.raises(WeightsError) as err:
        load_torch_file(path, "Checkpoint")
    message = str(err.value)
    assert message.startswith("Checkpoint '") and "could run code" not in message
    assert_refused_in_a_sentence(message, path, "damaged or truncated")


@pytest.mark.parametrize(
    ("make", "why"), [(evil_torch_file, "could run code"), (truncated, "damaged or truncated")]
)
def test_studio_export_refuses_bad_weights_in_one_sentence(make, why, tmp_path, capsys):
    path = make(tmp_path)
    code = main(["export", str(MLP), "--weights", str(path), "--onnx", str(tmp_path / "m.onnx")])
    captured = capsys.readouterr()
    assert code == 1 and RAN not in captured.out
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("studio: Weights file") and "unexpected" not in line
    assert_refused_in_a_sentence(line, path, why)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    ("make", "why"), [(evil_torch_file, "could run code"), (truncated, "damaged or truncated")]
)
def test_every_torch_weights_reader_gives_the_same_sentence(make, why, tmp_path):
    path = make(tmp_path)
    with pytest.raises(WeightsError) as err:
        read_state_dict(path)
    assert_refused_in_a_sentence(str(err.value), path, why)
    with pytest.raises(WeightsError) as err:  # a backbone's own weights file: the same reader
        read_state(path, "Node 'backbone' (ResNet18)")
    assert str(err.value).startswith("Node 'backbone'")
    assert_refused_in_a_sentence(str(err.value), path, why)


def test_a_plain_state_dict_still_loads(tmp_path):
    torch.save({"weight": torch.ones(3)}, tmp_path / "w.pth")
    assert torch.equal(load_torch_file(tmp_path / "w.pth")["weight"], torch.ones(3))
