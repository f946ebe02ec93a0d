"""A ResNet-18 transfer project end to end on generated 64×64 images: check, train a few
steps with the early stages frozen, export to ONNX checked by onnxruntime."""

from __future__ import annotations

import torch
from support import chain, image_folder

from studio.analysis import analyze
from studio.builder import build_model
from studio.document import Project
from studio.export import export_onnx
from studio.pretrained import without_weights
from studio.training.session import train
from studio.weights import load_weights

FREEZE = 3  # stem, layer1, layer2 frozen; layer3, layer4 and the head train


def resnet_project(folder) -> Project:
    network = chain(
        {"id": "image", "type": "Input", "params": {"shape": [3, 64, 64]}},
        {
            "id": "backbone",
            "type": "ResNet18",
            "params": {"weights": "none", "freeze_point": FREEZE},
        },
        {"id": "classes", "type": "Output", "params": {"units": 3}},
    )
    project = Project(name="resnet_transfer", network=network)
    project.data.update(source="image_folder", path=str(folder), scaling="imagenet")
    project.training.update(epochs=1, batch_size=8)
    return project


def test_a_resnet18_project_checks_trains_frozen_and_exports_to_onnx(tmp_path):
    project = resnet_project(image_folder(tmp_path / "images"))
    analysis = analyze(project.network)
    assert analysis.ok and analysis.output_shape == (3,)

    # The counts follow the freeze point: every stage from it on, plus the head.
    stages = analysis.layers["backbone"].stages
    assert [frozen for _, _, frozen in stages] == [True] * FREEZE + [False] * (5 - FREEZE)
    head = analysis.layers["classes"].params
    assert analysis.trainable_params == sum(n for _, n, f in stages if not f) + head
    assert analysis.frozen_params == sum(n for _, n, f in stages if f)
    before = build_model(project)
    assert sum(p.numel() for p in before.parameters() if p.requires_grad) == (
        analysis.trainable_params
    )

    outcome = train(project, runs_root=tmp_path / "runs")
    assert outcome.result.status == "completed" and outcome.result.steps >= 3
    assert outcome.summary["trainable_params"] == analysis.trainable_params
    trained = build_model(project)
    load_weights(trained, outcome.run.path / "checkpoints" / "last.safetensors")
    old, new = before.state_dict(), trained.state_dict()
    frozen = {"conv1", "bn1", "layer1", "layer2"}  # the stem's modules, layer1, layer2
    for key in old:
        if ".layer.net." not in key or not key.endswith("weight"):
            continue
        module = key.split(".layer.net.")[1].split(".")[0]
        moved = not torch.equal(old[key], new[key])
        assert moved == (module not in frozen), key  # frozen weights are never updated

    with without_weights():
        exported = build_model(project)
    load_weights(exported, outcome.run.path / "checkpoints" / "last.safetensors")
    report = export_onnx(exported, tmp_path / "resnet.onnx")
    assert report.ok and report.max_abs_diff < 1e-4
    assert report.checked_batches == [1, 5]
