"""Shape inference attaches each problem to the node that causes it, with advice."""

from __future__ import annotations

import pytest
from support import chain, net, project_of

from studio.analysis import analyze
from studio.builder import InvalidNetwork, build_model
from studio.cli import main
from studio.projectfile import save_project

IMAGE = {"id": "image", "type": "Input", "params": {"shape": [3, 8, 8]}}
VECTOR = {"id": "x", "type": "Input", "params": {"shape": [16]}}


def conv(nid, channels=8, **params):
    return {"id": nid, "type": "Conv2d", "params": {"out_channels": channels, **params}}


def only_problem(network):
    analysis = analyze(network)
    assert not analysis.ok
    return analysis, analysis.problems[0]


def test_add_of_different_shapes_names_the_add_and_both_shapes():
    network = net(
        IMAGE,
        conv("a", 8),
        conv("b", 16),
        {"id": "sum", "type": "Add", "params": {}},
        edges=[("image", "a"), ("image", "b"), ("a", "sum", "in0"), ("b", "sum", "in1")],
    )
    analysis, problem = only_problem(network)
    assert problem.node == "sum"
    assert (
        "8×8×8" in problem.message
        and "16×8×8" in problem.message
        and "1×1 Conv2d" in problem.message
    )
    assert analysis.layers["a"].output_shape == (8, 8, 8), (
        "layers before the error keep their shapes"
    )


def test_concat_of_different_spatial_sizes_is_marked_on_the_concat():
    network = net(
        IMAGE,
        conv("a"),
        conv("b", stride=2, padding=1),
        {"id": "cat", "type": "Concat", "params": {}},
        edges=[("image", "a"), ("image", "b"), ("a", "cat", "in0"), ("b", "cat", "in1")],
    )
    _, problem = only_problem(network)
    assert problem.node == "cat" and "height and width must match" in problem.message


def test_a_cycle_names_its_nodes():
    dense = [{"id": f"d{i}", "type": "Linear", "params": {"out_features": 16}} for i in range(3)]
    network = net(
        VECTOR,
        {"id": "join", "type": "Add", "params": {}},
        *dense,
        edges=[
            ("x", "join", "in0"),
            ("d2", "join", "in1"),
            ("join", "d0"),
            ("d0", "d1"),
            ("d1", "d2"),
        ],
    )
    analysis = analyze(network)
    cyclic = {p.node for p in analysis.problems if "cycle" in p.message}
    assert cyclic == {"join", "d0", "d1", "d2"}
    assert "d0 → d1 → d2 → join" in analysis.layers["join"].error


def test_an_unconnected_input_port_is_named():
    network = net(
        IMAGE,
        conv("a"),
        conv("b"),
        {"id": "sum", "type": "Add", "params": {}},
        edges=[("image", "a"), ("a", "b"), ("b", "sum", "in0")],
    )
    _, problem = only_problem(network)
    assert problem.node == "sum" and "input 'in1'" in problem.message


def test_a_conv_fed_a_flat_vector_says_what_to_change():
    network = chain(VECTOR, conv("c"))
    _, problem = only_problem(network)
    assert (
        problem.node == "c"
        and "needs an image" in problem.message
        and "vector of 16" in problem.message
    )


def test_a_linear_fed_an_image_suggests_flatten():
    network = chain(IMAGE, {"id": "fc", "type": "Linear", "params": {}})
    _, problem = only_problem(network)
    assert problem.node == "fc" and "Flatten or GlobalAvgPool" in problem.message


def test_a_kernel_larger_than_the_image_is_caught():
    network = chain(IMAGE, conv("big", kernel_size=11, padding="valid"))
    _, problem = only_problem(network)
    assert problem.node == "big" and "does not fit" in problem.message


def test_same_padding_with_stride_two_suggests_a_number():
    network = chain(IMAGE, conv("s", stride=2))
    _, problem = only_problem(network)
    assert "padding 'same' only works with stride 1" in problem.message


def test_group_norm_groups_must_divide_channels():
    node = conv("c", 12)
    node["normalization"] = {"kind": "group", "groups": 5}
    _, problem = only_problem(chain(IMAGE, node))
    assert problem.node == "c" and "12 channels into 5 groups" in problem.message


def test_instance_norm_on_a_vector_is_refused():
    layer = {"id": "fc", "type": "Linear", "params": {}, "normalization": {"kind": "instance"}}
    _, problem = only_problem(chain(VECTOR, layer))
    assert (
        problem.node == "fc"
        and "instance normalization needs an image or a sequence" in problem.message
    )


def test_eye_initializer_on_a_convolution_suggests_dirac():
    node = conv("c")
    node["initializer"] = {"name": "eye"}
    _, problem = only_problem(chain(IMAGE, node))
    assert "use dirac" in problem.message


def test_a_dangling_branch_is_marked_and_the_head_is_the_output():
    network = net(
        VECTOR,
        {"id": "a", "type": "Linear", "params": {}},
        {"id": "b", "type": "ReLU", "params": {}},
        {"id": "head", "type": "Output", "params": {"units": 3}},
        edges=[("x", "a"), ("a", "b"), ("a", "head")],
    )
    analysis, problem = only_problem(network)
    assert problem.node == "b" and "goes nowhere" in problem.message
    assert analysis.output_id == "head"


def test_two_inputs_and_an_edge_into_an_input_are_refused():
    network = net(
        VECTOR,
        {**VECTOR, "id": "y"},
        {"id": "a", "type": "Linear", "params": {}},
        edges=[("x", "a"), ("a", "y")],
    )
    nodes = {p.node for p in analyze(network).problems}
    assert "y" in nodes


def test_a_network_without_input_says_so():
    analysis = analyze(net({"id": "a", "type": "ReLU", "params": {}}))
    assert any(p.node is None and "no Input" in p.message for p in analysis.problems)


def test_errors_do_not_cascade_downstream():
    network = chain(
        VECTOR,
        conv("c"),
        {"id": "relu", "type": "ReLU", "params": {}},
        {"id": "head", "type": "Output", "params": {}},
    )
    analysis = analyze(network)
    assert [p.node for p in analysis.problems] == ["c"]
    assert analysis.layers["head"].output_shape is None


def test_building_an_invalid_network_raises_with_every_problem():
    with pytest.raises(InvalidNetwork) as err:
        build_model(chain(VECTOR, conv("c")))
    assert err.value.problems[0].node == "c"


def test_check_exits_nonzero_and_prints_the_node_errors(tmp_path, capsys):
    path = tmp_path / "bad.json"
    save_project(project_of(chain(VECTOR, conv("c"))), path)
    assert main(["check", str(path)]) == 1
    captured = capsys.readouterr()
    assert "✗ c" in captured.out and "INVALID" in captured.out
    assert (
        "Node 'c' (Conv2d): Conv2d needs an image" in captured.err
        and "Traceback" not in captured.err
    )
