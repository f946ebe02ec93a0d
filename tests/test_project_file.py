"""The project document on disk: round trips, atomic saves, migrations, overrides."""

from __future__ import annotations

import json
import os

import pytest
from support import EXAMPLES

from studio import migrations
from studio.builder import build_model
from studio.document import FORMAT_VERSION, Node
from studio.errors import ProjectError
from studio.projectfile import apply_override, load_project, read_raw, save_project


def test_every_example_survives_a_save_and_load_unchanged(example_path, tmp_path):
    project = load_project(example_path)
    out = tmp_path / "copy.json"
    save_project(project, out)
    assert load_project(out).to_dict() == project.to_dict()
    # Saved files are the canonical form, so a saved example equals its source file.
    assert json.loads(out.read_text()) == json.loads(example_path.read_text())


def test_view_state_is_kept_apart_and_does_not_change_the_model(tmp_path):
    project = load_project(EXAMPLES[0])
    before = build_model(project).state_dict()
    project.view.positions = {nid: [999.0, -5.0] for nid in project.network.nodes}
    save_project(project, tmp_path / "moved.json")
    raw = json.loads((tmp_path / "moved.json").read_text())
    assert "999" not in json.dumps(raw["network"]), "positions stay out of the network section"
    assert set(raw["view"]["positions"]) == set(project.network.nodes)
    after = build_model(load_project(tmp_path / "moved.json")).state_dict()
    assert all((before[k] == after[k]).all() for k in before)


def test_a_failed_save_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "p.json"
    project = load_project(EXAMPLES[0])
    save_project(project, path)
    original = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    project.name = "changed"
    with pytest.raises(OSError):
        save_project(project, path)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"], "no temporary file is left behind"


def test_migrations_lift_old_files_to_the_current_version(tmp_path, monkeypatch):
    raw = read_raw(EXAMPLES[0])
    # Pretend the format moved on: version N files renamed 'name' to 'title'.
    monkeypatch.setattr(migrations, "FORMAT_VERSION", FORMAT_VERSION + 1)

    def rename(old: dict) -> dict:
        new = dict(old)
        new["title"] = new.pop("name")
        return new

    monkeypatch.setitem(migrations.MIGRATIONS, FORMAT_VERSION, rename)
    lifted = migrations.migrate(dict(raw))
    assert lifted["version"] == FORMAT_VERSION + 1
    assert lifted["title"] == raw["name"] and "name" not in lifted


def test_a_file_from_a_newer_studio_is_refused_by_name(tmp_path):
    raw = read_raw(EXAMPLES[0])
    raw["version"] = FORMAT_VERSION + 5
    path = tmp_path / "future.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ProjectError, match=r"future\.json.*newer studio"):
        load_project(path)


def test_overrides_reach_nodes_by_id_and_sections_by_name():
    project = load_project(
        EXAMPLES[0],
        ["training.epochs=3", "network.nodes.classes.params.units=7", "training.optimizer.lr=0.5"],
    )
    assert project.training["epochs"] == 3
    assert project.training["optimizer"]["lr"] == 0.5
    assert project.network.node("classes").params["units"] == 7


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ("network.nodes.nope.params.units=3", "no node or entry 'nope'"),
        ("epochs", "dotted.path=value"),
        ("networks.x=1", "no field 'networks'"),
        ("name.first=1", "'name' is a value"),
    ],
)
def test_bad_overrides_say_what_is_wrong(item, needle):
    raw = read_raw(EXAMPLES[0])
    with pytest.raises(ProjectError, match=needle):
        apply_override(raw, item)


def test_an_override_is_validated_like_the_file():
    with pytest.raises(ProjectError, match=r"Node 'classes' \(Output\), field 'units'"):
        load_project(EXAMPLES[0], ["network.nodes.classes.params.units=-1"])


def test_network_edits_emit_events():
    project = load_project(EXAMPLES[0])
    network = project.network
    seen = []
    network.node_added.connect(lambda n: seen.append(("added", n.id)))
    network.node_removed.connect(lambda n: seen.append(("removed", n.id)))
    network.edge_removed.connect(lambda e: seen.append(("edge-", e.source, e.target)))
    first = next(iter(network.nodes))
    removed, edges, index = network.remove_node(first)
    assert ("removed", first) in seen and len(edges) >= 1 and index == 0
    assert all(("edge-", e.source, e.target) in seen for _, e in edges)
    network.add_node(Node(network.new_id("Linear"), "Linear", {"out_features": 4, "bias": True}))
    assert seen[-1] == ("added", "linear_1")


def test_a_new_project_is_an_input_that_fits_its_data_and_saves_and_reopens(tmp_path):
    from studio.data.prepare import prepare_data
    from studio.document import Project
    from studio.projectfile import load_project, save_project

    project = Project.new()
    (node,) = project.network.nodes.values()
    assert node.type == "Input" and project.name == "untitled"
    data = prepare_data(project.data, tuple(node.params["shape"]), seed=0)  # no shape error
    assert data.sample_shape == tuple(node.params["shape"])
    save_project(project, tmp_path / "new.json")
    assert load_project(tmp_path / "new.json").to_dict() == project.to_dict()
