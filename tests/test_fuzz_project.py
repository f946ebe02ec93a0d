"""A damaged or hostile project file is refused in one sentence, never a Python error.

Property tests start from the shipped examples and break them: a value somewhere replaced
by something adversarial (null, NaN, Infinity, a 200 KB string, a lone surrogate, a
5,000-digit number, lists nested 1,000 deep…), a key deleted, an unknown key added; the
same values arrive through `--set`. Loading the project and analysing it as `studio check`
does must either succeed or raise a StudioError whose message is one short line with no
Python internals. A corpus then runs each class of input found by fuzzing through the real
command line. About 2,500 examples run in 10–20 s on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import EXAMPLES, ROOT

from studio.analysis import analyze
from studio.cli import main
from studio.errors import StudioError
from studio.pretrained import project_folder
from studio.projectfile import load_project, to_json
from studio.report import layer_table

RAWS = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in EXAMPLES}
MLP = next(p for p in EXAMPLES if p.stem == "digits_mlp")
HUGE = "a" * 200_000
# What Python's json.dumps cannot write, spliced into the text after dumping.
RAW_TEXTS = (
    "9" * 5000,
    "-" + "1" * 4400,
    "[" * 1000 + "]" * 1000,
    '{"a": ' * 600 + "1" + "}" * 600,
    "[" * 40 + "]" * 40,
    "1e999",
    '"\\ud800"',
    '"x\\udfffy"',
)
INTERNALS = re.compile(
    r"Traceback|object is not|unhashable|NoneType|<class|Error:|Exception:|"
    r"cannot convert|int_max_str_digits|recursion depth"
)


class Raw:
    """A value that becomes RAW_TEXTS[index] in the file."""

    def __init__(self, index: int):
        self.index = index


ADVERSARIAL = st.one_of(
    st.sampled_from(
        [
            None,
            True,
            False,
            0,
            -1,
            -0.0,
            0.5,
            2**31,
            2**64,
            10**300,
            -(10**400),
            float("nan"),
            float("inf"),
            float("-inf"),
            "",
            "\ud800",
            "x\udfff",
            HUGE,
            "é✓𝄞",
            "line\nbreak",
            "relu",
            "digits",
            [],
            {},
            [None],
            [1, 8, 8],
            [0, 0, 0],
            [10**12, 10**12],
            {"id": "x", "type": "Linear"},
            [[[]]],
        ]
    ),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.lists(st.integers(min_value=-3, max_value=2**40), max_size=4),
    st.builds(Raw, st.integers(0, len(RAW_TEXTS) - 1)),
)


def paths(value, prefix=()) -> list[tuple]:
    """Every place below the root of a JSON tree, parents before children."""
    out = []
    if isinstance(value, dict):
        for key, sub in value.items():
            out.extend([(*prefix, key), *paths(sub, (*prefix, key))])
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            out.extend([(*prefix, i), *paths(sub, (*prefix, i))])
    return out


def at(raw, path: tuple):
    for key in path:
        raw = raw[key]
    return raw


TEXTS = {stem: json.dumps(raw) for stem, raw in RAWS.items()}


def _places(raw) -> list[tuple]:
    """Where to break an example, in a fixed shuffled order: hypothesis favours early entries,
    which in file order are the top-level fields. The root, which when broken is refused
    before anything else is looked at, comes last."""
    places = paths(raw)
    random.Random(0).shuffle(places)
    return [*places, ()]


PLACES = {stem: _places(raw) for stem, raw in RAWS.items()}


@st.composite
def broken_files(draw) -> str:
    """An example's text with one to three places broken."""
    stem = draw(st.sampled_from(sorted(RAWS)))
    raw, places = json.loads(TEXTS[stem]), PLACES[stem]
    for _ in range(draw(st.integers(1, 3))):
        where = places[draw(st.integers(0, len(places) - 1))]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if not where:
            if action == "replace":
                raw = draw(ADVERSARIAL)
                break
            continue
        try:  # an earlier break may have removed or replaced this place
            parent, key = at(raw, where[:-1]), where[-1]
            parent[key]
        except (KeyError, IndexError, TypeError):
            continue
        if action == "replace":
            parent[key] = draw(ADVERSARIAL)
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "", "\ud800", HUGE, "id"]))] = draw(ADVERSARIAL)
    text = json.dumps(raw, allow_nan=True, ensure_ascii=True, default=lambda r: f"@raw{r.index}@")
    for i, spliced in enumerate(RAW_TEXTS):
        text = text.replace(f'"@raw{i}@"', spliced)
    return text


def assert_one_sentence(message: str) -> None:
    assert "\n" not in message, message[:400]
    assert len(message) <= 400, f"{len(message)} characters: {message[:400]}"
    assert not INTERNALS.search(message), message


def check_like_the_cli(path: Path, overrides: list[str] = ()) -> None:
    """What `studio check` does with a file: load, analyse, print; refusals in one sentence."""
    try:
        project = load_project(path, list(overrides))
    except StudioError as err:
        assert_one_sentence(str(err))
        return
    try:
        with project_folder(path.parent):
            analysis = analyze(project.network)
    except StudioError as err:
        assert_one_sentence(str(err))
        return
    for problem in analysis.problems:
        assert_one_sentence(problem.message)
    # Printing and saving write UTF-8: a lone surrogate would fail here.
    f"{project.name}: {project.description}\n{layer_table(project.network, analysis)}".encode()
    to_json(project.to_dict()).encode()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=broken_files())
def test_a_broken_file_loads_or_is_refused_in_one_sentence(text, folder):
    path = folder / "broken.json"
    path.write_text(text, encoding="utf-8")
    check_like_the_cli(path)


def set_items(raw) -> list[str]:
    """Every `--set` path of an example (nodes by id, other lists by index)."""
    out = []
    for path in paths(raw):
        keys = []
        for depth, key in enumerate(path):
            parent = at(raw, path[:depth])
            if isinstance(parent, list) and isinstance(parent[key], dict) and "id" in parent[key]:
                keys.append(parent[key]["id"])
            else:
                keys.append(str(key))
        if keys:
            out.append(".".join(keys))
    return out


SET_PATHS = set_items(RAWS["digits_mlp"])


@st.composite
def overrides(draw) -> str:
    value = draw(ADVERSARIAL)
    if isinstance(value, Raw):
        text = RAW_TEXTS[value.index]
    elif isinstance(value, str) and draw(st.booleans()):
        text = value  # plain text, as a shell passes it
    else:
        text = json.dumps(value, allow_nan=True)
    return f"{draw(st.sampled_from(SET_PATHS))}={text}"


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(item=overrides())
def test_a_bad_set_value_is_refused_in_one_sentence(item):
    check_like_the_cli(MLP, [item])


# -- the classes fuzzing found, through the real command line ------------------------------


def _edit(edit) -> str:
    raw = json.loads(MLP.read_text(encoding="utf-8"))
    edit(raw)
    return json.dumps(raw, allow_nan=True)


def _node(raw, node_id):
    return next(n for n in raw["network"]["nodes"] if n["id"] == node_id)


TEXT = MLP.read_text(encoding="utf-8")
CORPUS = {
    "lists nested 1,000 deep": (
        TEXT.replace('"description": ', '"description": ' + "[" * 1000 + "]" * 1000 + ', "d": ', 1),
        ["nests lists or objects too deeply"],
    ),
    "a 5,000-digit integer": (
        TEXT.replace('"out_features": 128', '"out_features": ' + "9" * 5000),
        ["more than 4,300 digits"],
    ),
    "an edge source that is a list": (
        _edit(lambda r: r["network"]["edges"][0].update(source=[])),
        ["network.edges[0]", "source []", "not a node id"],
    ),
    "an edge target that is an object": (
        _edit(lambda r: r["network"]["edges"][1].update(target={"id": "hidden1"})),
        ["network.edges[1]", "target", "not a node id"],
    ),
    "Infinity in an integer field": (
        _edit(lambda r: _node(r, "hidden1")["params"].update(out_features=float("inf"))),
        ["hidden1", "'out_features'", "must be a whole number", "got Infinity"],
    ),
    "-Infinity in a training integer": (
        _edit(lambda r: r["training"].update(epochs=float("-inf"))),
        ["training.epochs", "must be a whole number", "got -Infinity"],
    ),
    "NaN in an integer field": (
        _edit(lambda r: _node(r, "hidden1")["params"].update(out_features=float("nan"))),
        ["hidden1", "'out_features'", "must be a whole number", "got NaN"],
    ),
    "a lone surrogate in the name": (
        _edit(lambda r: r.update(name="\ud800")),
        ["field 'name'", "surrogate"],
    ),
    "a lone surrogate in the description": (
        _edit(lambda r: r.update(description="notes \udfff")),
        ["field 'description'", "surrogate"],
    ),
    "a 200 KB id": (
        _edit(lambda r: _node(r, "hidden1").update(id=HUGE)),
        ["network.nodes[2]", "'aaaa", "…'"],
    ),
    "a 200 KB choice": (
        _edit(lambda r: r["training"].update(device=HUGE)),
        ["training.device", "…'"],
    ),
    "a 400-digit number in a float field": (
        TEXT.replace('"dropout": 0.1', '"dropout": ' + "7" * 400),
        ["hidden2", "dropout", "a number of 400 digits"],
    ),
}
SETS = {
    "--set an edge source to a list": (
        "network.edges.0.source=[]",
        ["network.edges[0]", "source []"],
    ),
    "--set a 5,000-digit integer": (
        "network.nodes.hidden1.params.out_features=" + "9" * 5000,
        ["hidden1", "'out_features'", "must be a whole number", "…'"],
    ),
    "--set a lone surrogate": ('name="\\ud800"', ["--set", "field 'name'", "surrogate"]),
    "--set a 200 KB value": ("training.device=" + HUGE, ["training.device", "…'"]),
    "--set an index of 5,000 digits": ("network.edges." + "9" * 5000 + ".source=x", ["--set"]),
}


def assert_cli_sentence(code: int, err: str, needles: list[str]) -> None:
    assert code != 0
    assert "unexpected" not in err and "Traceback" not in err, err[:400]
    line = err.strip()
    assert len(err.strip().splitlines()) == 1 and line.startswith("studio: "), err[:400]
    assert line.endswith("."), line[:400]
    assert_one_sentence(line)
    for needle in needles:
        assert needle in line, line


@pytest.mark.parametrize("case", list(CORPUS))
def test_the_cli_refuses_each_found_input_in_one_sentence(case, tmp_path, capsys):
    text, needles = CORPUS[case]
    path = tmp_path / "p.json"
    path.write_text(text, encoding="utf-8")
    code = main(["check", str(path)])
    assert_cli_sentence(code, capsys.readouterr().err, ["p.json", *needles])


@pytest.mark.parametrize("case", list(SETS))
def test_the_cli_refuses_each_found_set_value_in_one_sentence(case, capsys):
    item, needles = SETS[case]
    code = main(["check", str(MLP), "--set", item])
    assert_cli_sentence(code, capsys.readouterr().err, needles)


def test_a_lone_surrogate_is_refused_before_the_real_stdout_sees_it(tmp_path):
    # In a real process stdout encodes UTF-8, where printing the name used to fail.
    path = tmp_path / "p.json"
    path.write_text(CORPUS["a lone surrogate in the name"][0], encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "studio", "check", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONIOENCODING": "utf-8", "STUDIO_DEBUG": ""},
        timeout=120,
    )
    assert_cli_sentence(done.returncode, done.stderr, ["p.json", "field 'name'"])
