"""An exported ONNX file says how to feed it (issue 14): metadata_props, read back with
onnxruntime, give the input's shape, the exact scaling of the data it was trained on, the
class names in output order, the project and the studio's version."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import torch
from sklearn.datasets import load_digits
from support import EXAMPLES, image_folder

import studio
from studio.cli import main
from studio.data.prepare import prepare_data
from studio.export import read_metadata
from studio.projectfile import load_project

CNN = next(p for p in EXAMPLES if p.stem == "digits_cnn")
MLP = next(p for p in EXAMPLES if p.stem == "digits_mlp")


def test_an_exported_project_names_its_input_classes_and_version(tmp_path, capsys):
    out = tmp_path / "cnn.onnx"
    assert main(["export", str(CNN), "--onnx", str(out)]) == 0
    meta = read_metadata(out)
    assert meta["studio.version"] == studio.__version__ and meta["project"] == "digits_cnn"
    assert json.loads(meta["input.shape"]) == ["batch", 1, 8, 8]
    assert meta["input.name"] == "input" and meta["output.name"] == "output"
    assert json.loads(meta["classes"]) == [str(d) for d in range(10)]
    assert json.loads(meta["input.value_range"]) == [0.0, 16.0]
    assert "softmax" in meta["output.meaning"] and meta["task"] == "classification"


def test_the_recorded_scaling_turns_raw_values_into_exactly_the_trained_input(tmp_path, capsys):
    # z-score: statistics of the training split only; the file must carry those numbers.
    runs = tmp_path / "runs"
    out = tmp_path / "mlp.onnx"
    settings = ["--set=data.scaling=zscore", "--set=training.epochs=1", "--quiet"]
    assert main(["train", str(MLP), "--out", str(runs), "--export-onnx", str(out), *settings]) == 0
    meta = read_metadata(out)
    assert meta["input.scaling"] == "zscore"
    multiply = np.array(json.loads(meta["input.multiply"]))
    add = np.array(json.loads(meta["input.add"]))
    shape = tuple(json.loads(meta["input.shape"])[1:])
    project = load_project(MLP, ["data.scaling=zscore"])
    data = prepare_data(project.data, shape, project.training["seed"])
    raw = load_digits().images.reshape(-1, 1, 8, 8).astype(np.float64)
    if meta["input.scaling_per"] == "channel":
        multiply, add = multiply.reshape(-1, 1, 1), add.reshape(-1, 1, 1)
    fed = (raw * multiply + add).reshape(len(raw), *shape)[data.train.index.numpy()]
    assert np.allclose(fed, data.train.x.numpy(), atol=1e-5)
    # The file takes the input fed that way.
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (scores,) = session.run(["output"], {"input": fed[:50].astype(np.float32)})
    assert scores.shape == (50, len(json.loads(meta["classes"])))


def test_an_image_folder_card_says_colour_size_and_per_channel_numbers(tmp_path, capsys):
    folder = image_folder(tmp_path / "images", classes=3, per_class=6, size=12)
    raw = json.loads(CNN.read_text())
    raw["data"].update(source="image_folder", path=str(folder), scaling="zscore")
    [node] = [n for n in raw["network"]["nodes"] if n["type"] == "Input"]
    node["params"]["shape"] = [3, 12, 12]
    [head] = [n for n in raw["network"]["nodes"] if n["type"] == "Output"]
    head["params"]["units"] = 3
    project = tmp_path / "images.json"
    project.write_text(json.dumps(raw))
    out = tmp_path / "images.onnx"
    assert main(["export", str(project), "--onnx", str(out)]) == 0, capsys.readouterr().err
    meta = read_metadata(out)
    assert json.loads(meta["classes"]) == sorted(p.name for p in folder.iterdir())
    assert meta["input.scaling_per"] == "channel" and len(json.loads(meta["input.add"])) == 3
    assert "RGB, resized to 12×12" in meta["input.preprocessing"]
    # Data that cannot be read: the file is still written, and says why the scaling is missing.
    shutil.rmtree(folder)
    assert main(["export", str(project), "--onnx", str(out)]) == 0
    meta = read_metadata(out)
    assert meta["input.preprocessing"].startswith("not recorded: ") and "classes" not in meta
    assert torch.tensor(json.loads(meta["input.shape"])[1:]).tolist() == [3, 12, 12]


def test_a_binary_head_is_described_as_one_logit_and_a_sigmoid(tmp_path, capsys):
    raw = json.loads(MLP.read_text())
    raw["data"]["classes"] = [0, 1]
    for node in raw["network"]["nodes"]:
        if node["type"] == "Output":
            node["params"].update(units=1, task="binary")
    project = tmp_path / "binary.json"
    project.write_text(json.dumps(raw))
    out = tmp_path / "binary.onnx"
    assert main(["export", str(project), "--onnx", str(out)]) == 0
    meta = read_metadata(out)
    assert "sigmoid" in meta["output.meaning"] and "softmax" not in meta["output.meaning"]
    assert json.loads(meta["classes"]) == ["0", "1"]
