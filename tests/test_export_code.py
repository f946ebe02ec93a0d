"""Export as code (issue 14): `studio export PROJECT|RUN --pytorch DIR` writes model.py,
train.py, weights.safetensors and a README that need nothing of the studio: model.py with
the weights gives the studio's outputs, train.py trains, and both pass ruff."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from support import EXAMPLES, ROOT
from test_shape_inference_property import SETTINGS, networks

from studio.builder import build_model
from studio.cli import main
from studio.export_code import export_pytorch
from studio.projectfile import load_project

# A Python that refuses to import the studio (and, as the studio does, lets a CUDA-built
# torchvision load beside the CPU torch of this machine).
NO_STUDIO = """
import sys
sys.modules["studio"] = None
import torch
try:
    import torchvision  # noqa: F401
except RuntimeError:
    for name in [m for m in sys.modules if m.startswith("torchvision")]:
        del sys.modules[name]
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
"""

CHECK = (
    NO_STUDIO
    + """
import importlib.util, json, numpy as np
from safetensors.torch import load_file
for folder in json.loads(sys.argv[1]):
    spec = importlib.util.spec_from_file_location("model_" + str(abs(hash(folder))), folder + "/model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.Model()
    model.load_state_dict(load_file(folder + "/weights.safetensors"), strict=True)
    model.eval()
    x = torch.from_numpy(np.load(folder + "/x.npy"))
    with torch.no_grad():
        np.save(folder + "/y.npy", model(x).numpy())
"""
)


def example(path: Path):
    overrides = []
    if path.stem == "digits_resnet18_transfer":  # no downloads in tests: random weights
        overrides = ["network.nodes.backbone.params.weights=none"]
    return load_project(path, overrides)


def ruff(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", str(folder)],
        capture_output=True,
        text=True,
    )


def test_every_example_written_as_code_gives_the_studio_outputs_without_the_studio(tmp_path):
    folders, expected = [], {}
    for path in EXAMPLES:
        project = example(path)
        model = build_model(project).eval()
        with torch.no_grad():  # weights unlike their initial ones: the file must carry them
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.01)
        folder = tmp_path / path.stem
        report = export_pytorch(project, model, folder)
        assert report.ok, (path.stem, report.max_abs_diff)
        x = torch.randn(3, *model.input_shape, generator=torch.Generator().manual_seed(1))
        np.save(folder / "x.npy", x.numpy())
        with torch.no_grad():
            expected[str(folder)] = model(x).numpy()
        folders.append(str(folder))
        text = (folder / "model.py").read_text()
        assert "studio" not in text.split('"""', 2)[2]  # below the docstring
        for nid in project.network.nodes:
            if project.network.nodes[nid].type != "Input":
                assert f"self.{nid} = " in text
    done = subprocess.run(
        [sys.executable, "-c", CHECK, json.dumps(folders)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    for folder, want in expected.items():
        got = np.load(Path(folder) / "y.npy")
        assert np.abs(got - want).max() <= 1e-6, folder
    lint = ruff(tmp_path)
    assert lint.returncode == 0, lint.stdout


@settings(max_examples=25, **SETTINGS)
@given(case=networks(), seed=st.integers(0, 2**31 - 1))
def test_generated_networks_written_as_code_match_the_studio(tmp_path_factory, case, seed):
    network = case.network
    from support import project_of

    project = project_of(network)
    model = build_model(network, seed=seed).eval()
    report = export_pytorch(project, model, tmp_path_factory.mktemp("code"))
    assert report.ok, report.max_abs_diff


def test_train_py_trains_digits_in_a_python_without_the_studio(tmp_path):
    folder = tmp_path / "mlp"
    code = main(
        [
            "export",
            str(next(p for p in EXAMPLES if p.stem == "digits_mlp")),
            "--pytorch",
            str(folder),
        ]
    )
    assert code == 0
    run = NO_STUDIO + (
        "import runpy\nsys.argv = ['train.py', '--epochs', '2']\n"
        "runpy.run_path('train.py', run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", run],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert done.returncode == 0, done.stderr
    assert "epoch 2/2" in done.stdout
    accuracy = float(done.stdout.split("val_accuracy ")[-1].split()[0])
    assert accuracy > 0.8  # digits_mlp: ~95% after 2 epochs in the studio
    trained = load_file(folder / "trained.safetensors")
    assert set(trained) == set(load_file(folder / "weights.safetensors"))
    assert ruff(folder).returncode == 0


def test_a_run_exports_its_best_weights_as_code(tmp_path, capsys):
    runs = tmp_path / "runs"
    mlp = next(p for p in EXAMPLES if p.stem == "digits_mlp")
    assert main(["train", str(mlp), "--out", str(runs), "--set=training.epochs=1", "--quiet"]) == 0
    [run] = [p.parent for p in runs.glob("*/*/project.json")]
    capsys.readouterr()
    out = tmp_path / "code"
    assert main(["export", run.name, "--runs", str(runs), "--pytorch", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["pytorch"]["ok"]
    best = load_file(run / "checkpoints" / "best.safetensors")
    written = load_file(out / "weights.safetensors")
    assert {f"layers.{k}" for k in written} == set(best)
    for key, value in written.items():
        assert torch.equal(value, best[f"layers.{key}"])
    readme = (out / "README.md").read_text()
    assert run.name in readme


def test_a_layer_without_a_plain_pytorch_form_is_named_in_one_sentence(tmp_path, capsys):
    pytest.importorskip("studio_swish")
    raw = json.loads((ROOT / "resources" / "examples" / "digits_mlp.json").read_text())
    nodes = raw["network"]["nodes"]
    hidden = next(n for n in nodes if n["type"] == "Linear")
    swish = {"id": "gate", "type": "Swish", "params": {"beta": 1.0, "learnable": False}}
    nodes.append(swish)
    edges = raw["network"]["edges"]
    after = next(e for e in edges if e["source"] == hidden["id"])
    edges.append({"source": hidden["id"], "target": "gate"})
    after["source"] = "gate"
    project = tmp_path / "swish.json"
    project.write_text(json.dumps(raw))
    code = main(["export", str(project), "--pytorch", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code != 0 and "Node 'gate' (Swish)" in err and "Traceback" not in err


def test_every_augmentation_becomes_torchvision_transforms_in_train_py(tmp_path):
    cnn = next(p for p in EXAMPLES if p.stem == "digits_cnn")
    project = load_project(cnn)
    for chosen in project.data["augmentation"].values():
        chosen["enabled"] = True
    export_pytorch(project, build_model(project), tmp_path)
    run = NO_STUDIO + (
        "import runpy\n"
        "g = runpy.run_path('train.py')\n"
        "x, y = g['augmenter'](10)(torch.rand(4, 1, 8, 8), torch.tensor([1, 2, 3, 4]))\n"
        "print(tuple(x.shape), tuple(y.shape))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", run], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["(4,", "1,", "8,", "8)", "(4,", "10)"]  # mixed: soft labels


def csv_project(tmp_path: Path, label: str, task: str, units: int, rows: list[str]) -> Path:
    """digits_mlp reading a CSV of two features from a folder beside the project's."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "table.csv").write_text("\n".join([f"a,b,{label}", *rows]) + "\n")
    raw = json.loads(next(p for p in EXAMPLES if p.stem == "digits_mlp").read_text())
    raw["data"].update(source="csv", path="../data/table.csv", label_column=label, scaling="zscore")
    for node in raw["network"]["nodes"]:
        if node["type"] == "Input":
            node["params"]["shape"] = [2]
        if node["type"] == "Output":
            node["params"].update(units=units, task=task)
    folder = tmp_path / "projects"
    folder.mkdir(exist_ok=True)
    path = folder / f"{task}.json"
    path.write_text(json.dumps(raw))
    return path


def train_py(folder: Path, *args: str) -> subprocess.CompletedProcess:
    run = NO_STUDIO + (
        f"import runpy\nsys.argv = ['train.py', *{list(args)!r}]\n"
        "runpy.run_path('train.py', run_name='__main__')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", run], cwd=folder, capture_output=True, text=True, timeout=300
    )


def test_train_py_learns_a_regression_read_from_a_csv_beside_the_project(tmp_path, capsys):
    rng = np.random.default_rng(0)
    ab = rng.normal(size=(300, 2))
    rows = [f"{a:.4f},{b:.4f},{2 * a - b + 0.05 * rng.normal():.4f}" for a, b in ab]
    project = csv_project(tmp_path, "target value", "regression", 1, rows)
    out = tmp_path / "deep" / "er" / "code"  # not where the project's relative path points
    assert main(["export", str(project), "--pytorch", str(out)]) == 0
    done = train_py(out, "--epochs", "40")
    assert done.returncode == 0, done.stderr
    assert "size" not in done.stderr  # no broadcasting of (batch, 1) against (batch,)
    val_loss = float(done.stdout.split("val_loss ")[-1].split()[0])
    assert val_loss < 0.5  # the target's variance is 5: a model that learns nothing sits there


def test_train_py_keeps_only_the_projects_classes(tmp_path, capsys):
    raw = json.loads(next(p for p in EXAMPLES if p.stem == "digits_mlp").read_text())
    raw["data"]["classes"] = [0, 1, 2]
    for node in raw["network"]["nodes"]:
        if node["type"] == "Output":
            node["params"]["units"] = 3
    project = tmp_path / "three.json"
    project.write_text(json.dumps(raw))
    out = tmp_path / "code"
    assert main(["export", str(project), "--pytorch", str(out)]) == 0
    done = train_py(out, "--epochs", "1")
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split("val_accuracy ")[-1].split()[0]) > 0.8


def test_odd_descriptions_and_node_ids_still_write_working_code(tmp_path, capsys):
    raw = json.loads(next(p for p in EXAMPLES if p.stem == "digits_mlp").read_text())
    raw["description"] = 'Data in C:\\new\\x41 and """quotes"""'
    old = next(n["id"] for n in raw["network"]["nodes"] if n["type"] == "Linear")
    for node in raw["network"]["nodes"]:
        node["id"] = "__hidden" if node["id"] == old else node["id"]
    for edge in raw["network"]["edges"]:
        for end in ("source", "target"):
            edge[end] = "__hidden" if edge[end] == old else edge[end]
    raw.get("view", {}).get("positions", {}).pop(old, None)
    project = tmp_path / "odd.json"
    project.write_text(json.dumps(raw))
    out = tmp_path / "code"
    assert main(["export", str(project), "--pytorch", str(out)]) == 0, capsys.readouterr().err
    assert 'C:\\new\\x41 and """quotes"""' in __import__("ast").get_docstring(
        __import__("ast").parse((out / "model.py").read_text())
    )


def test_a_file_where_the_code_folder_should_be_is_one_sentence(tmp_path, capsys):
    taken = tmp_path / "taken.txt"
    taken.write_text("x")
    mlp = next(p for p in EXAMPLES if p.stem == "digits_mlp")
    assert main(["export", str(mlp), "--pytorch", str(taken)]) != 0
    err = capsys.readouterr().err
    assert "is a file" in err and len(err.strip().splitlines()) == 1
