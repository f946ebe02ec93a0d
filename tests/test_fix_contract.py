"""Fixes that work: for every finding that carries a fix, its demo project trained with its
own settings raises the finding; the same project with the suggested changes applied
trains clearly better and raises none of the findings that were fixed."""

from __future__ import annotations

import json

import pytest
from support import EXAMPLES

from studio.cli import main
from studio.fixes import apply_findings
from studio.projectfile import load_project
from studio.training.session import train

BY_NAME = {p.stem: p for p in EXAMPLES}


def best_accuracy(outcome) -> float:
    return outcome.result.best.get("metrics", {}).get("val_accuracy", 0.0)


@pytest.mark.parametrize(
    "demo, kind",
    [
        ("deep_relu_xavier", "vanishing_gradients"),
        ("dead_relu_mlp", "dead_relu"),
        ("saturated_tanh_mlp", "saturation"),
        ("lr_too_low_sgd", "lr_too_low"),
        ("lr_too_high_sgd", "diverged"),
        ("overfitting_mlp", "overfitting"),
    ],
)
def test_the_suggested_fix_cures_its_demo(demo, kind):
    project = load_project(BY_NAME[demo])
    broken = train(project, runs_root=None)
    assert kind in {f.kind for f in broken.findings}
    fixed_project = project.copy()
    assert apply_findings(fixed_project, broken.findings)
    fixed = train(fixed_project, runs_root=None)
    fixed_kinds = {f.kind for f in fixed.findings}
    assert not fixed_kinds & {f.kind for f in broken.findings if f.fix}, fixed.findings
    if kind == "overfitting":
        # It stops where validation loss turns, instead of training on into the climb.
        assert fixed.result.status == "early_stopped"
        last = fixed.result.history[-1]["val_loss"]
        assert last < 0.95 * broken.result.history[-1]["val_loss"]
    else:
        assert best_accuracy(fixed) > best_accuracy(broken) + 0.05
        assert best_accuracy(fixed) > 0.85


def test_diagnose_fix_then_train_cures_the_deep_sigmoid_network(tmp_path, capsys):
    fixed = tmp_path / "fixed.json"
    source = BY_NAME["deep_sigmoid_mlp"]
    assert main(["diagnose", str(source), "--steps", "10", "--fix", str(fixed)]) == 0
    said = capsys.readouterr().out
    assert "dense1–dense20 (20 layers): " in said and "activation sigmoid → relu" in said
    assert load_project(source).network.nodes["dense1"].activation == "sigmoid"  # untouched
    assert main(["train", str(fixed), "--out", str(tmp_path / "runs"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["best"]["metrics"]["val_accuracy"] >= 0.93
    assert summary["findings"] == []


def test_diagnose_fix_refuses_to_overwrite_the_project(tmp_path, capsys):
    project = tmp_path / "p.json"
    project.write_text(BY_NAME["digits_mlp"].read_text())
    assert main(["diagnose", str(project), "--steps", "2", "--fix", str(project)]) == 1
    assert "would overwrite the project" in capsys.readouterr().err
    assert main(["diagnose", str(project), "--steps", "2", "--fix", "/no/such/dir/x.json"]) == 1
    assert "Cannot write '/no/such/dir/x.json'" in capsys.readouterr().err
