"""Every mistake a person can make in a project file gets one sentence naming the file,
node or field, from the library and from the command line, and never a traceback."""

from __future__ import annotations

import copy
import json

import pytest
from support import EXAMPLES

from studio.cli import main
from studio.errors import ProjectError
from studio.projectfile import load_project, read_raw

MLP = next(p for p in EXAMPLES if p.stem == "digits_mlp")


def broken(edit):
    raw = copy.deepcopy(read_raw(MLP))
    edit(raw)
    return raw


def node(raw, node_id):
    return next(n for n in raw["network"]["nodes"] if n["id"] == node_id)


def set_(d, key, value):
    d[key] = value


CASES = {
    "unknown layer type": (
        lambda r: set_(node(r, "hidden1"), "type", "Lienar"),
        ["hidden1", "unknown layer type 'Lienar'", "Linear"],
    ),
    "negative units": (
        lambda r: set_(node(r, "hidden1")["params"], "out_features", -3),
        ["hidden1", "out_features", "-3", "from 1 to 65536"],
    ),
    "units as text": (
        lambda r: set_(node(r, "hidden1")["params"], "out_features", "many"),
        ["hidden1", "out_features", "'many'"],
    ),
    "unknown parameter": (
        lambda r: set_(node(r, "hidden1")["params"], "units", 3),
        ["hidden1", "no field 'units'", "out_features"],
    ),
    "unknown initializer": (
        lambda r: set_(node(r, "hidden1")["initializer"], "name", "he"),
        ["hidden1", "initializer", "kaiming_normal"],
    ),
    "bad initializer argument": (
        lambda r: set_(node(r, "hidden1")["initializer"], "mode", "sideways"),
        ["hidden1", "initializer 'kaiming_normal'", "'mode'", "fan_in"],
    ),
    "dropout above range": (
        lambda r: set_(node(r, "hidden1"), "dropout", 1.5),
        ["hidden1", "dropout", "1.5"],
    ),
    "bad activation": (
        lambda r: set_(node(r, "hidden1"), "activation", "swishy"),
        ["hidden1", "activation", "swishy"],
    ),
    "option on a layer without weights": (
        lambda r: set_(node(r, "flatten"), "initializer", {"name": "zeros"}),
        ["flatten", "initializer"],
    ),
    "duplicate id": (
        lambda r: set_(node(r, "hidden2"), "id", "hidden1"),
        ["hidden1", "twice"],
    ),
    "id with a space": (
        lambda r: set_(node(r, "hidden2"), "id", "hidden 2"),
        ["'hidden 2'", "letters, digits"],
    ),
    "reserved id": (
        lambda r: set_(node(r, "hidden2"), "id", "keys"),
        ["keys", "reserved"],
    ),
    "edge to a missing node": (
        lambda r: set_(r["network"]["edges"][0], "target", "ghost"),
        ["network.edges[0]", "'ghost'"],
    ),
    "nodes not a list": (
        lambda r: set_(r["network"], "nodes", {"a": 1}),
        ["network.nodes", "list"],
    ),
    "initializer as text": (
        lambda r: set_(node(r, "hidden1"), "initializer", "zeros"),
        ["hidden1", "'initializer'", "an object"],
    ),
    "unknown top-level field": (
        lambda r: set_(r, "epochs", 5),
        ["unknown top-level field 'epochs'", "training"],
    ),
    "position not a pair": (
        lambda r: set_(r["view"]["positions"], "hidden1", 3),
        ["view.positions.hidden1", "[x, y]"],
    ),
    "no network": (
        lambda r: r.pop("network"),
        ["no 'network' section"],
    ),
    "version missing": (
        lambda r: r.pop("version"),
        ["version"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_field_is_named_in_one_sentence(case, tmp_path):
    edit, needles = CASES[case]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken(edit)))
    with pytest.raises(ProjectError) as err:
        load_project(path)
    message = str(err.value)
    for needle in needles:
        assert needle in message
    assert "\n" not in message and message.endswith(".")


@pytest.mark.parametrize("case", ["unknown layer type", "negative units", "edge to a missing node"])
def test_the_cli_reports_a_broken_file_in_one_line_without_a_traceback(case, tmp_path, capsys):
    edit, needles = CASES[case]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken(edit)))
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and needles[0] in err and "broken.json" in err


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (
            "{not json",
            "not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)",
        ),
        ("[1, 2]", "must hold a JSON object"),
        ("", "not valid JSON"),
    ],
)
def test_unreadable_files_are_named(content, needle, tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert needle in err and str(path) in err and "Traceback" not in err


def test_a_missing_file_or_a_folder_is_named(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.json")]) == 1
    assert "nope.json' does not exist" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--onnx", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err
    assert "is a folder" in err and "run folder" in err


def test_json_mode_reports_the_error_as_data(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text("{")
    assert main(["check", str(path), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and "bad.json" in out["error"]
