"""The `studio` command line: check, export, layers, --json and --set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import EXAMPLES, ROOT

from studio.cli import main

MLP = next(p for p in EXAMPLES if p.stem == "digits_mlp")


def test_check_prints_a_layer_table_for_every_example(example_path, capsys):
    assert main(["check", str(example_path)]) == 0
    out = capsys.readouterr().out
    assert "output" in out and "params" in out and "valid." in out
    project = json.loads(example_path.read_text())
    assert all(n["id"] in out for n in project["network"]["nodes"])


def test_check_json_is_machine_readable(capsys):
    assert main(["check", str(MLP), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["output_shape"] == [10]
    rows = {row["id"]: row for row in report["layers"]}
    assert rows["hidden1"]["output_shape"] == [128] and rows["hidden1"]["params"] == 64 * 128 + 128
    assert report["trainable_params"] == sum(r["params"] for r in report["layers"])


def test_set_overrides_the_file_without_editing_it(capsys):
    before = MLP.read_text()
    assert (
        main(["check", str(MLP), "--json", "--set", "network.nodes.hidden1.params.out_features=32"])
        == 0
    )
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)["layers"]}
    assert rows["hidden1"]["output_shape"] == [32]
    assert MLP.read_text() == before


def test_set_can_make_a_project_invalid_and_check_says_where(capsys):
    code = main(["check", str(MLP), "--set", "network.nodes.classes.params.task=binary"])
    assert code == 1
    err = capsys.readouterr().err
    assert "Node 'classes' (Output): a binary head has exactly 1 unit" in err


def test_export_writes_a_verified_onnx_and_weights(tmp_path, capsys):
    onnx_path, weights = tmp_path / "m.onnx", tmp_path / "m.safetensors"
    code = main(
        ["export", str(MLP), "--onnx", str(onnx_path), "--safetensors", str(weights), "--json"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["onnx"]["ok"] and report["onnx"]["max_abs_diff"] < 1e-4
    assert onnx_path.stat().st_size > 0 and weights.stat().st_size > 0


def test_export_of_an_invalid_project_fails_with_the_node_error(tmp_path, capsys):
    code = main(
        [
            "export",
            str(MLP),
            "--onnx",
            str(tmp_path / "m.onnx"),
            "--set",
            "network.nodes.image.params.shape=[64]",
            "--set",
            "network.nodes.flatten.type=Conv2d",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "Node 'flatten' (Conv2d)" in err and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_export_without_a_target_says_what_to_add(capsys):
    assert main(["export", str(MLP)]) == 1
    assert "--onnx" in capsys.readouterr().err


def test_layers_lists_every_group_and_json_has_schemas(capsys):
    assert main(["layers"]) == 0
    out = capsys.readouterr().out
    for group in (
        "Core",
        "Convolution",
        "Pooling",
        "Normalization",
        "Activation",
        "Merge",
        "Recurrent",
    ):
        assert group in out
    assert main(["layers", "--json"]) == 0
    schema = {t["type"]: t for t in json.loads(capsys.readouterr().out)}
    conv = {p["name"]: p for p in schema["Conv2d"]["params"]}
    assert conv["padding"]["choices"] == ["same", "valid"] and conv["kernel_size"]["minimum"] == 1


def test_python_dash_m_studio_runs_as_a_separate_process():
    result = subprocess.run(
        [sys.executable, "-m", "studio", "check", str(MLP)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0 and "valid." in result.stdout


def test_train_keeps_a_run_exports_onnx_and_lists_it(tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(
        [
            "train",
            str(MLP),
            "--set",
            "training.epochs=2",
            "--out",
            str(out),
            "--quiet",
            "--export-onnx",
            str(tmp_path / "trained.onnx"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "completed" in printed and "validation accuracy" in printed and "Run folder" in printed
    assert (tmp_path / "trained.onnx").stat().st_size > 0
    summary = json.loads(next(out.glob("digits_mlp/*/summary.json")).read_text())
    assert summary["status"] == "completed" and summary["onnx"]["ok"] and summary["epochs"] == 2
    assert main(["runs", "--out", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["project"] == "digits_mlp"
    assert main(["runs", "--out", str(out)]) == 0
    assert rows[0]["id"] in capsys.readouterr().out


def test_train_resume_last_continues_a_stopped_run(tmp_path, capsys):
    out = tmp_path / "runs"
    assert (
        main(["train", str(MLP), "--set", "training.epochs=1", "--out", str(out), "--quiet"]) == 0
    )
    capsys.readouterr()
    assert main(["train", "--resume", "last", "--out", str(out), "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "completed" and summary["epochs"] == 1


def test_a_resumed_run_takes_how_its_data_is_read_and_refuses_the_rest(tmp_path, capsys):
    """A killed data worker's sentence says to set data.workers to 0: that must work on
    resume; a change to what the run learns is refused in a sentence, not dropped."""
    out = tmp_path / "runs"
    assert (
        main(["train", str(MLP), "--set", "training.epochs=1", "--out", str(out), "--quiet"]) == 0
    )
    capsys.readouterr()
    refused = ["train", "--resume", "last", "--out", str(out), "--set", "training.epochs=4"]
    assert main(refused) == 1
    err = capsys.readouterr().err
    assert "--set training.epochs cannot change a run being resumed" in err
    assert "data.workers" in err and "Traceback" not in err
    taken = ["train", "--resume", "last", "--out", str(out), "--quiet", "--json"]
    assert main([*taken, "--set", "data.workers=0", "--set", "data.storage=memory"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "completed"
    kept = json.loads((Path(summary["run_folder"]) / "project.json").read_text())
    assert kept["data"]["storage"] == "memory"  # the override was taken, not dropped


def test_train_without_a_project_or_run_says_what_to_give(capsys):
    assert main(["train"]) == 1
    assert "--resume" in capsys.readouterr().err


def test_diagnose_prints_a_layer_table_and_findings(capsys):
    deep = next(p for p in EXAMPLES if p.stem == "deep_sigmoid_mlp")
    assert main(["diagnose", str(deep), "--steps", "10"]) == 0
    out = capsys.readouterr().out
    assert "grad norm" in out and "dense1 " in out and "Vanishing gradients" in out


def test_ctrl_c_stops_cleanly_with_a_resumable_checkpoint(tmp_path):
    import signal
    import time

    out = tmp_path / "runs"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "studio",
            "train",
            str(MLP),
            "--set",
            "training.epochs=500",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(out.glob("*/*/metrics.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.1)  # wait for the first epoch to finish
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "stopping after this step" in stderr
    assert "stopped" in stdout and "--resume" in stdout
    folder = next(out.glob("digits_mlp/*"))
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "stopped" and 0 < summary["steps"] < 500 * 45
    assert (folder / "checkpoints" / "last.state.pt").is_file()
