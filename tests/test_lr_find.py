"""The learning-rate finder (Smith's range test, as fastai's lr_find): a sweep on a copy of
the model that suggests a rate the project trains well with, and touches nothing else."""

from __future__ import annotations

import json
import threading

import pytest
import torch
from support import EXAMPLES, image_folder, resnet18_on_images

from studio.builder import build_model
from studio.cli import main
from studio.projectfile import load_project
from studio.training.lr_find import find_lr
from studio.training.session import train

BY_NAME = {p.stem: p for p in EXAMPLES}


def test_the_suggested_rate_trains_the_digits_cnn_to_97_percent(capsys):
    assert main(["lr-find", str(BY_NAME["digits_cnn"]), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["rule"] == "valley" and found["low"] < found["high"]
    assert found["low"] <= found["suggestion"] <= found["high"]
    assert len(found["lrs"]) == len(found["losses"]) == len(found["smoothed"]) > 50
    project = load_project(BY_NAME["digits_cnn"], [f"training.optimizer.lr={found['suggestion']}"])
    outcome = train(project, runs_root=None)
    assert outcome.result.best["metrics"]["val_accuracy"] >= 0.97


def test_the_sweep_leaves_the_project_and_the_random_streams_alone():
    project = load_project(BY_NAME["digits_mlp"])
    before = project.to_dict()
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    stop = threading.Event()
    seen = []

    def progress(step, steps, lr, loss):
        seen.append(step)
        if step == 60:
            stop.set()

    result = find_lr(project, progress=progress, stop=stop, steps=100)
    assert torch.equal(torch.get_rng_state(), rng)
    assert project.to_dict() == before
    assert seen[-1] == 60 and "stopped by request" in result.stopped
    again = find_lr(project, steps=100)
    assert again.losses[:60] == result.losses  # its own seeded streams: repeatable


def test_a_backbone_is_swept_at_its_freeze_point(tmp_path):
    project = resnet18_on_images(image_folder(tmp_path, size=32), classes=3, freeze_point=4)
    project.training.update(batch_size=12)
    result = find_lr(project, steps=60, start_lr=1e-5, end_lr=10)
    assert result.low < result.high and result.suggestion > 0
    # Only what trains from the freeze point on (layer4 and the head) was swept.
    built = build_model(project)
    trains = sum(p.numel() for p in built.parameters() if p.requires_grad)
    assert result.trainable_params == trains < sum(p.numel() for p in built.parameters())


@pytest.mark.parametrize(
    "args, said",
    [
        (["--steps", "5"], "at least 10 steps"),
        (["--start-lr", "1", "--end-lr", "0.1"], "0 < start_lr < end_lr"),
    ],
)
def test_bad_sweep_settings_get_one_sentence(args, said, capsys):
    assert main(["lr-find", str(BY_NAME["digits_mlp"]), *args]) == 1
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err
