"""Transfer strategies: the recommender follows the notes' table cell by cell, freeze points
fit the backbone, and applying a strategy is one undoable edit of every backbone node."""

from __future__ import annotations

import pytest
from support import ROOT, net, project_of

from studio.commands import Command
from studio.registry import catalog
from studio.transfer.strategies import (
    LITTLE_PER_CLASS,
    LITTLE_TOTAL,
    STRATEGIES,
    TransferError,
    data_size_for,
    freeze_point_for,
    recommend,
    strategy_command,
)

# The study notes' table: (data size, similarity to ImageNet) → what to freeze.
TABLE = {
    ("little", "low"): "freeze_early",
    ("little", "high"): "feature_extraction",
    ("much", "low"): "train_all",
    ("much", "high"): "train_top",
}


@pytest.mark.parametrize(("data_size", "similarity"), list(TABLE))
def test_each_cell_of_the_table_gives_its_strategy_with_the_reason(data_size, similarity):
    rec = recommend(data_size, similarity)
    assert rec.strategy == TABLE[(data_size, similarity)]
    assert (rec.data_size, rec.similarity) == (data_size, similarity)
    text = rec.explanation.lower()
    assert ("little data" if data_size == "little" else "plenty of data") in text
    assert ("differ from imagenet" if similarity == "low" else "look like imagenet") in text
    # Two phases protect pretrained weights whenever any of them train.
    assert rec.two_phase == (rec.strategy != "feature_extraction")
    assert ("two phases" in text) == rec.two_phase


@pytest.mark.parametrize("n", [1, 4, 5, 6, 9])
def test_freeze_points_order_the_strategies_from_everything_to_nothing_trained(n):
    points = {key: freeze_point_for(key, n) for key in STRATEGIES}
    assert points["train_all"] == 0 and points["feature_extraction"] == n
    assert points["train_top"] == n - 1
    # freeze_early keeps the first half (rounded down) fixed: ResNet's stem and layer1.
    assert points["freeze_early"] == n // 2
    assert (
        points["train_all"]
        <= points["freeze_early"]
        <= points["train_top"]
        <= points["feature_extraction"]
    )
    assert all(s.label and s.explanation.endswith(".") for s in STRATEGIES.values())


def test_a_sample_count_suggests_the_data_size():
    assert data_size_for(LITTLE_TOTAL - 1) == "little"
    assert data_size_for(LITTLE_TOTAL) == "much"
    assert data_size_for(5 * LITTLE_PER_CLASS - 5, classes=5) == "little"
    assert data_size_for(5 * LITTLE_PER_CLASS, classes=5) == "much"
    rec = recommend(None, "high", samples=600, classes=3)
    assert rec.data_size == "little" and rec.strategy == "feature_extraction"
    assert "600 samples (200 per class)" in rec.explanation
    # A stated size wins; the count is still reported.
    rec = recommend("much", "high", samples=600)
    assert rec.strategy == "train_top" and "600 samples" in rec.explanation


def test_bad_answers_are_one_sentence_each():
    with pytest.raises(TransferError, match="little or much"):
        recommend(None, "low")
    with pytest.raises(TransferError, match="'low' or 'high'"):
        recommend("little", "medium")
    with pytest.raises(TransferError, match="not a strategy"):
        freeze_point_for("train_half", 5)


def two_backbones():
    return project_of(
        net(
            {"id": "image", "type": "Input", "params": {"shape": [3, 64, 64]}},
            {"id": "resnet", "type": "ResNet18", "params": {"weights": "none"}},
            {"id": "mobile", "type": "MobileNetV3Small", "params": {"weights": "none"}},
            {"id": "both", "type": "Concat", "params": {}},
            {"id": "head", "type": "Output", "params": {"units": 3}},
            edges=[
                ("image", "resnet"),
                ("image", "mobile"),
                ("resnet", "both", "in0"),
                ("mobile", "both", "in1"),
                ("both", "head"),
            ],
        )
    )


def freeze_points(project):
    return {
        nid: n.params["freeze_point"]
        for nid, n in project.network.nodes.items()
        if "freeze_point" in n.params
    }


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_a_strategy_sets_every_backbone_in_one_undoable_command(strategy):
    project = two_backbones()
    before = project.to_dict()
    stages = {nid: len(catalog().get(n.type).stages(n.params)) for nid, n in _backbones(project)}
    command = strategy_command(project, strategy)
    assert isinstance(command, Command) and STRATEGIES[strategy].label.lower() in command.text
    command.redo()
    assert freeze_points(project) == {
        nid: freeze_point_for(strategy, n) for nid, n in stages.items()
    }
    command.undo()
    assert project.to_dict() == before


def _backbones(project):
    return [
        (nid, n)
        for nid, n in project.network.nodes.items()
        if getattr(catalog().get(n.type), "backbone", False)
    ]


def test_a_strategy_can_target_chosen_nodes_and_turn_on_two_phases():
    project = two_backbones()
    before = freeze_points(project)
    command = strategy_command(project, "train_all", ["mobile"], two_phase=True)
    command.redo()
    assert freeze_points(project) == {**before, "mobile": 0}
    assert project.training["fine_tuning"]["two_phase"] is True
    command.undo()
    assert freeze_points(project) == before
    assert project.training["fine_tuning"]["two_phase"] is False


def test_a_strategy_names_what_it_cannot_apply_to():
    project = two_backbones()
    with pytest.raises(TransferError, match="Node 'head' is not a backbone"):
        strategy_command(project, "train_all", ["head"])
    with pytest.raises(TransferError, match="Node 'nope' does not exist"):
        strategy_command(project, "train_all", ["nope"])
    with pytest.raises(TransferError, match="not a strategy"):
        strategy_command(project, "retrain", None)
    plain = project_of(
        net(
            {"id": "image", "type": "Input", "params": {"shape": [4]}},
            {"id": "head", "type": "Output", "params": {"units": 2}},
            edges=[("image", "head")],
        )
    )
    with pytest.raises(TransferError, match="no backbone node"):
        strategy_command(plain, "feature_extraction")


def test_a_backbone_on_a_plain_chain_becomes_the_transfer_template_in_one_undo():
    from studio.analysis import analyze
    from studio.projectfile import load_project
    from studio.transfer.edits import backbone_template

    project = load_project(ROOT / "resources" / "examples" / "digits_mlp.json")
    before = project.to_dict()
    command, node_id = backbone_template(project, "ResNet18")
    command.redo()
    network = project.network
    assert network.nodes["image"].params["shape"] == [3, 224, 224]  # from the weights
    assert project.data["scaling"] == "imagenet"
    analysis = analyze(network)
    assert analysis.ok and analysis.order == ["image", node_id, analysis.output_id]
    command.undo()
    assert project.to_dict() == before
