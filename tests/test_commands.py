"""Undoable edits over the project document, without Qt."""

from __future__ import annotations

import pytest
from support import EXAMPLES

from studio.analysis import analyze
from studio.commands import (
    AddNode,
    Connect,
    Disconnect,
    MoveNodes,
    RemoveNodes,
    SetNodeFields,
    SetSettings,
    apply_fix,
)
from studio.document import Edge, Node
from studio.errors import ProjectError
from studio.projectfile import load_project

BY_NAME = {p.stem: p for p in EXAMPLES}


def snapshot(project):
    return project.to_dict()


def round_trip(project, command):
    """redo changes the document; undo restores it exactly; redo again gives the same result."""
    before = snapshot(project)
    command.redo()
    after = snapshot(project)
    assert after != before
    command.undo()
    assert snapshot(project) == before
    command.redo()
    assert snapshot(project) == after


def test_add_node_with_its_position():
    project = load_project(BY_NAME["digits_mlp"])
    node = Node("extra", "Dropout", {"rate": 0.2})
    round_trip(project, AddNode(project, node, [10, 20], [Edge("hidden2", "extra")]))
    assert project.view.positions["extra"] == [10, 20]


def test_remove_nodes_restores_their_edges_and_positions():
    project = load_project(BY_NAME["residual_cnn"])
    edges = len(project.network.edges)
    command = RemoveNodes(project, ["block1_add", "block1_conv2"])
    round_trip(project, command)
    command.undo()
    assert len(project.network.edges) == edges and analyze(project.network).ok


def test_connect_replaces_what_fed_the_port_and_undo_puts_it_back():
    project = load_project(BY_NAME["digits_mlp"])
    command = Connect(project, Edge("flatten", "hidden2"))
    round_trip(project, command)
    assert Edge("hidden1", "hidden2") not in project.network.edges
    command.undo()
    assert Edge("hidden1", "hidden2") in project.network.edges


def test_disconnect():
    project = load_project(BY_NAME["digits_mlp"])
    round_trip(project, Disconnect(project, [Edge("hidden1", "hidden2")]))


def test_set_fields_on_many_layers_is_one_step():
    project = load_project(BY_NAME["deep_sigmoid_mlp"])
    layers = [f"dense{i}" for i in range(1, 21)]
    command = SetNodeFields(
        project, {n: {"initializer": {"name": "kaiming_normal"}} for n in layers}
    )
    round_trip(project, command)
    assert all(project.network.nodes[n].initializer["name"] == "kaiming_normal" for n in layers)
    assert command.text == "Set initializer of 20 layers"


def test_params_are_merged_and_validated_before_anything_changes():
    project = load_project(BY_NAME["digits_mlp"])
    SetNodeFields(project, {"hidden1": {"params": {"out_features": 32}}}).redo()
    assert project.network.nodes["hidden1"].params == {"out_features": 32, "bias": True}
    before = snapshot(project)
    with pytest.raises(ProjectError, match="out_features"):
        SetNodeFields(
            project, {"hidden2": {"dropout": 0.5}, "hidden1": {"params": {"out_features": 0}}}
        )
    assert snapshot(project) == before


def test_moves_merge_into_one_undo_step():
    project = load_project(BY_NAME["digits_mlp"])
    start = list(project.view.positions["hidden1"])
    first = MoveNodes(project, {"hidden1": [1, 1]})
    first.redo()
    second = MoveNodes(project, {"hidden1": [5, 5]})
    second.redo()
    assert first.merge(second)
    first.undo()
    assert project.view.positions["hidden1"] == start


def test_settings_are_validated_and_undoable():
    project = load_project(BY_NAME["digits_mlp"])
    round_trip(
        project, SetSettings(project, {"training.optimizer.lr": 0.05, "data.validation": 0.3})
    )
    with pytest.raises(ProjectError, match="training.optimizer.lr"):
        SetSettings(project, {"training.optimizer.lr": -1})
    with pytest.raises(ProjectError):
        SetSettings(project, {"training.optimiser.lr": 1})


def test_a_finding_fix_is_one_command():
    project = load_project(BY_NAME["deep_sigmoid_mlp"])
    fix = {
        "nodes": {
            "dense1": {
                "activation": "relu",
                "initializer": {"name": "kaiming_normal"},
                "normalization": {"kind": "batch"},
            }
        },
        "training": {"optimizer.lr": 0.001},
    }
    command = apply_fix(project, fix, "Vanishing gradients")
    round_trip(project, command)
    assert project.network.nodes["dense1"].activation == "relu"
    assert project.training["optimizer"]["lr"] == 0.001
    assert command.text == "Apply fix: Vanishing gradients"
