"""The graph canvas: gestures become commands, and items follow the document."""

from __future__ import annotations

import dataclasses
import html
import os
import re
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from studio.commands import AddNode, MoveNodes, RemoveNodes, SetNodeFields
from studio.document import Edge, Network, Project, parse_node
from studio.layout import auto_layout
from studio.projectfile import load_project
from studio.registry import catalog
from ui.canvas import LAYER_MIME, GraphCanvas
from ui.canvas.node_item import NodeItem
from ui.canvas.style import OVERVIEW_ZOOM, READABLE_ZOOM
from ui.document import DocumentModel

pytestmark = pytest.mark.gui

EXAMPLES = Path(__file__).resolve().parents[2] / "resources" / "examples"


# -- fixtures and helpers ----------------------------------------------------------------
@pytest.fixture
def model():
    return DocumentModel(load_project(EXAMPLES / "residual_cnn.json"))


@pytest.fixture
def canvas(qtbot, model):
    view = GraphCanvas(model)
    qtbot.addWidget(view)
    view.resize(900, 1500)
    view.show()
    qtbot.waitExposed(view)
    view.fit_to_view()
    return view


def vp(canvas, scene_point) -> QPoint:
    """Viewport coordinates of a scene point."""
    return canvas.mapFromScene(QPointF(scene_point))


def drag(canvas, start, end, modifier=Qt.NoModifier, steps=4):
    """Press at a scene point, move in steps to another, release (QTest on the viewport)."""
    viewport = canvas.viewport()
    a, b = vp(canvas, start), vp(canvas, end)
    QTest.mousePress(viewport, Qt.LeftButton, modifier, a)
    for i in range(1, steps + 1):
        QTest.mouseMove(viewport, a + (b - a) * i / steps)
    QTest.mouseRelease(viewport, Qt.LeftButton, modifier, b)


def click(canvas, point, modifier=Qt.NoModifier):
    QTest.mouseClick(canvas.viewport(), Qt.LeftButton, modifier, vp(canvas, point))


def header(item: NodeItem) -> QPointF:
    """A point on the node's header (grabs the node, not a port)."""
    return item.mapToScene(QPointF(-40, 12))


def plain(tooltip: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", tooltip))


def node_ids(model) -> set[str]:
    return set(model.project.network.nodes)


def out_port(canvas, node_id):
    return canvas.node_item(node_id).out_port.scenePos()


def in_port(canvas, node_id, port="in"):
    return canvas.node_item(node_id).in_ports[port].scenePos()


def add_free_relu(model, at=(300.0, 550.0)) -> str:
    """An unconnected ReLU to the right of the column (pushed as a command)."""
    net = model.project.network
    nid = net.new_id("ReLU")
    model.push(
        AddNode(model.project, parse_node({"id": nid, "type": "ReLU"}, catalog(), nid), list(at))
    )
    return nid


# -- the canvas draws the document ---------------------------------------------------------
def test_items_mirror_the_document(canvas, model):
    net = model.project.network
    assert set(canvas.graph_scene.nodes) == set(net.nodes)
    assert set(canvas.graph_scene.edges) == set(net.edges)
    stem = canvas.node_item("stem")
    assert (stem.pos().x(), stem.pos().y()) == tuple(model.project.view.positions["stem"])
    face = stem.face
    assert face.type_name == "Conv2d" and face.key_line == "32, 3×3"
    assert face.option_line == "kaiming · batch · relu"
    assert face.shape_text == "32×8×8"
    assert stem.error is None
    tip = plain(stem.toolTip())
    assert "Conv2d" in tip and "32×8×8" in tip and "352" in tip
    # The Add has two labelled inputs on top; edges carry the source's shape.
    assert list(canvas.node_item("block1_add").in_ports) == ["in0", "in1"]
    assert canvas.edge_item(Edge("pool", "classes")).label == "32"


# -- palette drops and add_layer -------------------------------------------------------------
def test_drop_from_palette_adds_node_there_and_undo_removes_it(canvas, model):
    target = QPointF(260.0, 400.0)
    pos = QPointF(vp(canvas, target))
    mime = QMimeData()
    mime.setData(LAYER_MIME, b"Linear")
    enter = QDragEnterEvent(pos.toPoint(), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(canvas.viewport(), enter)
    assert enter.isAccepted()
    drop = QDropEvent(pos, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(canvas.viewport(), drop)

    assert "linear_1" in model.project.network.nodes
    x, y = model.project.view.positions["linear_1"]
    expected = canvas.mapToScene(pos.toPoint())
    assert (x, y) == pytest.approx((expected.x(), expected.y()))
    assert abs(x - 260) < 3 and abs(y - 400) < 3
    item = canvas.node_item("linear_1")
    assert item is not None and item.pos() == QPointF(x, y)
    assert model.selection == ["linear_1"]

    model.undo_stack.undo()
    assert "linear_1" not in model.project.network.nodes
    assert canvas.node_item("linear_1") is None


def test_other_drops_add_nothing(canvas, model):
    mime = QMimeData()
    mime.setText("Linear")
    count, nodes = model.undo_stack.count(), node_ids(model)
    for event in (
        QDragEnterEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier),
        QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier),
    ):
        QApplication.sendEvent(canvas.viewport(), event)
    assert model.undo_stack.count() == count and node_ids(model) == nodes


def test_add_layer_after_places_below_and_connects(canvas, model):
    before = model.undo_stack.count()
    nid = canvas.add_layer("Dropout", after="pool")
    assert nid == "dropout_1"
    assert model.undo_stack.count() == before + 1
    assert Edge("pool", nid, "in") in model.project.network.edges
    px, py = model.project.view.positions["pool"]
    x, y = model.project.view.positions[nid]
    assert y > py + canvas.node_item("pool").height
    # 'classes' sits right below pool, so the new node steps aside instead of covering it.
    new_rect = canvas.node_item(nid).sceneBoundingRect()
    assert not new_rect.intersects(
        canvas.node_item("classes").mapRectToScene(canvas.node_item("classes").rect())
    )
    assert canvas.edge_item(Edge("pool", nid)) is not None
    model.undo_stack.undo()
    assert nid not in model.project.network.nodes


def test_add_layer_of_unknown_type_says_so(canvas, model, qtbot):
    with qtbot.waitSignal(canvas.status_message) as message:
        assert canvas.add_layer("NoSuchLayer") is None
    assert "NoSuchLayer" in message.args[0]


# -- connecting -----------------------------------------------------------------------------
def test_drag_from_output_to_input_connects_and_undo_disconnects(canvas, model):
    relu = add_free_relu(model)
    count = model.undo_stack.count()
    drag(canvas, out_port(canvas, "block2_relu"), in_port(canvas, relu))
    edge = Edge("block2_relu", relu, "in")
    assert edge in model.project.network.edges
    assert model.undo_stack.count() == count + 1
    assert canvas.edge_item(edge) is not None
    assert canvas.node_item(relu).in_ports["in"].connected

    model.undo_stack.undo()
    assert edge not in model.project.network.edges
    assert canvas.edge_item(edge) is None
    assert not canvas.node_item(relu).in_ports["in"].connected


def test_drag_from_input_to_output_connects_too(canvas, model):
    relu = add_free_relu(model)
    drag(canvas, in_port(canvas, relu), out_port(canvas, "pool"))
    assert Edge("pool", relu, "in") in model.project.network.edges


def test_connection_dropped_on_nothing_is_cancelled(canvas, model):
    relu = add_free_relu(model)
    count, edges = model.undo_stack.count(), list(model.project.network.edges)
    far = in_port(canvas, relu) + QPointF(120, 0)
    drag(canvas, out_port(canvas, "block2_relu"), far)
    assert model.undo_stack.count() == count
    assert model.project.network.edges == edges
    # The temporary line is gone too.
    assert len(canvas.graph_scene.items()) == len(canvas.graph_scene.nodes) + len(
        canvas.graph_scene.edges
    ) + sum(len(i.in_ports) + 1 for i in canvas.graph_scene.nodes.values())


def test_self_loop_and_duplicate_connections_are_refused(canvas, model, qtbot):
    count = model.undo_stack.count()
    with qtbot.waitSignal(canvas.status_message) as message:
        drag(canvas, out_port(canvas, "block1_conv1"), in_port(canvas, "block1_conv1"))
    assert "own input" in message.args[0]
    with qtbot.waitSignal(canvas.status_message) as message:
        drag(canvas, out_port(canvas, "stem"), in_port(canvas, "block1_conv1"))
    assert "already connected" in message.args[0]
    assert model.undo_stack.count() == count


def test_shape_mismatch_marks_node_and_edge_with_the_analysis_sentence(canvas, model):
    add = canvas.node_item("block1_add")
    assert add.error is None
    # The 1-channel image straight into the residual Add, instead of the 32-channel stem.
    drag(canvas, out_port(canvas, "image"), in_port(canvas, "block1_add", "in1"))
    net = model.project.network
    assert Edge("image", "block1_add", "in1") in net.edges
    assert Edge("stem", "block1_add", "in1") not in net.edges  # Connect replaced it

    sentence = model.analysis.layers["block1_add"].error
    assert sentence and "equal shapes" in sentence
    assert add.error == sentence
    assert sentence in plain(add.toolTip())
    wrong = canvas.edge_item(Edge("image", "block1_add", "in1"))
    assert wrong.error and wrong.label == "1×8×8"
    assert canvas.edge_item(Edge("block1_conv2", "block1_add", "in0")).error
    assert not canvas.edge_item(Edge("image", "stem")).error

    model.undo_stack.undo()
    assert add.error is None
    assert "equal shapes" not in plain(add.toolTip())
    assert not canvas.edge_item(Edge("block1_conv2", "block1_add", "in0")).error


# -- moving -------------------------------------------------------------------------------
def test_dragging_a_node_moves_it_in_one_undo_step(canvas, model):
    item = canvas.node_item("classes")
    old = list(model.project.view.positions["classes"])
    count = model.undo_stack.count()
    start = header(item)
    drag(canvas, start, start + QPointF(150, 40))
    new = model.project.view.positions["classes"]
    assert new[0] == pytest.approx(old[0] + 150, abs=2)
    assert new[1] == pytest.approx(old[1] + 40, abs=2)
    assert model.undo_stack.count() == count + 1
    assert item.pos() == QPointF(*new)
    # The edge into it follows.
    edge = canvas.edge_item(Edge("pool", "classes"))
    assert edge.path().pointAtPercent(1.0) == item.in_ports["in"].scenePos()

    # A second drag of the same node is a step of its own (not merged into the first).
    start = header(item)
    drag(canvas, start, start + QPointF(0, 60))
    assert model.undo_stack.count() == count + 2
    model.undo_stack.undo()
    assert model.project.view.positions["classes"] == pytest.approx(new)
    model.undo_stack.undo()
    assert model.project.view.positions["classes"] == pytest.approx(old)
    assert item.pos() == QPointF(*old)


def test_a_click_without_moving_pushes_nothing(canvas, model):
    count = model.undo_stack.count()
    click(canvas, header(canvas.node_item("stem")))
    assert model.undo_stack.count() == count


# -- selection ------------------------------------------------------------------------------
def test_selection_syncs_both_ways(canvas, model):
    click(canvas, header(canvas.node_item("stem")))
    assert model.selection == ["stem"]
    click(canvas, header(canvas.node_item("pool")), Qt.ControlModifier)
    assert set(model.selection) == {"stem", "pool"}
    click(canvas, header(canvas.node_item("classes")), Qt.ShiftModifier)
    assert set(model.selection) == {"stem", "pool", "classes"}
    click(canvas, header(canvas.node_item("image")))
    assert model.selection == ["image"]

    model.select(["block1_conv1", "block2_conv2"])
    selected = {nid for nid, item in canvas.graph_scene.nodes.items() if item.isSelected()}
    assert selected == {"block1_conv1", "block2_conv2"}
    canvas.select_nodes(["pool"])
    assert (
        canvas.node_item("pool").isSelected() and not canvas.node_item("block1_conv1").isSelected()
    )

    # Clicking empty canvas clears it.
    click(canvas, canvas.node_item("pool").mapToScene(QPointF(400, 0)))
    assert model.selection == []


def test_rubber_band_selects_what_it_covers(canvas, model):
    a = canvas.node_item("stem").mapToScene(QPointF(-150, -20))
    b = canvas.node_item("block1_conv2").mapToScene(QPointF(150, 30))
    drag(canvas, a, b)
    assert set(model.selection) == {"stem", "block1_conv1", "block1_conv2"}
    assert model.project.view.positions["stem"] == [0.0, 110.0]  # nothing moved


def test_a_rubber_band_selects_an_edge_only_with_both_its_layers(canvas, model):
    # The example wraps into columns: the edges into the first Add climb the lane between
    # the columns, beside the block. A band over the block's layers and that lane crossed
    # them, and Delete then cut them too.
    climbing = [Edge("block1_conv2", "block1_add", "in0"), Edge("stem", "block1_add", "in1")]
    lane = canvas.edge_item(climbing[0]).path().pointAtPercent(0.5)
    top = canvas.node_item("block1_conv1").mapToScene(QPointF(-120, -20))
    bottom = canvas.node_item("block1_conv2").mapToScene(QPointF(0, 100))
    assert top.x() < lane.x() < canvas.node_item("block1_add").sceneBoundingRect().left()
    drag(canvas, top, QPointF(lane.x() + 20, bottom.y()))
    assert set(model.selection) == {"block1_conv1", "block1_conv2"}
    selected = canvas.graph_scene.selected_edges()
    assert Edge("block1_conv1", "block1_conv2") in selected  # between two chosen layers
    assert not set(climbing) & set(selected)
    canvas.setFocus()
    QTest.keyClick(canvas, Qt.Key_Delete)
    assert climbing[1] in model.project.network.edges  # between two layers still there


def test_ctrl_a_selects_all(canvas, model):
    canvas.setFocus()
    QTest.keyClick(canvas, Qt.Key_A, Qt.ControlModifier)
    assert set(model.selection) == node_ids(model)


# -- deleting -------------------------------------------------------------------------------
def test_delete_removes_selected_nodes_and_their_edges_and_undo_restores(canvas, model):
    net = model.project.network
    attached = [e for e in net.edges if "block1_add" in (e.source, e.target)]
    assert len(attached) == 3
    position = list(model.project.view.positions["block1_add"])
    click(canvas, header(canvas.node_item("block1_add")))
    canvas.setFocus()
    QTest.keyClick(canvas, Qt.Key_Delete)
    assert "block1_add" not in net.nodes
    assert not any(e in net.edges for e in attached)
    assert canvas.node_item("block1_add") is None
    assert all(canvas.edge_item(e) is None for e in attached)

    model.undo_stack.undo()
    assert "block1_add" in net.nodes
    assert all(e in net.edges for e in attached)
    assert model.project.view.positions["block1_add"] == position
    assert canvas.node_item("block1_add").pos() == QPointF(*position)
    assert all(canvas.edge_item(e) is not None for e in attached)


def test_click_an_edge_then_backspace_disconnects_it(canvas, model):
    edge = Edge("pool", "classes")
    item = canvas.edge_item(edge)
    click(canvas, item.path().pointAtPercent(0.2))
    assert item.isSelected()
    assert model.selection == []
    canvas.setFocus()
    QTest.keyClick(canvas, Qt.Key_Backspace)
    assert edge not in model.project.network.edges
    assert canvas.edge_item(edge) is None
    assert "pool" in model.project.network.nodes
    model.undo_stack.undo()
    assert edge in model.project.network.edges


def test_delete_with_nodes_and_an_edge_is_one_step(canvas, model):
    count = model.undo_stack.count()
    canvas.edge_item(Edge("image", "stem")).setSelected(True)
    canvas.node_item("classes").setSelected(True)
    canvas.delete_selection()
    assert model.undo_stack.count() == count + 1
    assert Edge("image", "stem") not in model.project.network.edges
    assert "classes" not in model.project.network.nodes
    model.undo_stack.undo()
    assert Edge("image", "stem") in model.project.network.edges
    assert "classes" in model.project.network.nodes


# -- copy and paste ---------------------------------------------------------------------------
@pytest.fixture
def clean_clipboard():
    yield
    # The offscreen platform can crash at exit while the clipboard still holds data.
    QApplication.clipboard().clear()


def test_copy_paste_makes_new_ids_with_the_edges_among_them(canvas, model, clean_clipboard):
    net = model.project.network
    model.select(["block1_conv1", "block1_conv2"])
    canvas.setFocus()
    QTest.keyClick(canvas, Qt.Key_C, Qt.ControlModifier)
    QTest.keyClick(canvas, Qt.Key_V, Qt.ControlModifier)
    new = node_ids(model) - {
        "image",
        "stem",
        "block1_conv1",
        "block1_conv2",
        "block1_add",
        "block1_relu",
        "block2_conv1",
        "block2_conv2",
        "block2_add",
        "block2_relu",
        "pool",
        "classes",
    }
    assert new == {"conv2d_1", "conv2d_2"}
    assert net.nodes["conv2d_1"].params == net.nodes["block1_conv1"].params
    assert net.nodes["conv2d_2"].activation == net.nodes["block1_conv2"].activation
    assert Edge("conv2d_1", "conv2d_2", "in") in net.edges
    # Only the edge among the copies: nothing feeds conv2d_1, conv2d_2 feeds nothing.
    assert [
        e
        for e in net.edges
        if "conv2d_1" in (e.source, e.target) or "conv2d_2" in (e.source, e.target)
    ] == [Edge("conv2d_1", "conv2d_2", "in")]
    ox, oy = model.project.view.positions["block1_conv1"]
    assert model.project.view.positions["conv2d_1"] == [ox + 40, oy + 40]
    assert set(model.selection) == {"conv2d_1", "conv2d_2"}
    assert canvas.node_item("conv2d_2") is not None
    assert canvas.edge_item(Edge("conv2d_1", "conv2d_2")) is not None

    # Pasting again gives fresh ids, further offset.
    canvas.paste()
    assert {"conv2d_3", "conv2d_4"} <= node_ids(model)
    assert model.project.view.positions["conv2d_3"] == [ox + 80, oy + 80]

    model.undo_stack.undo()
    model.undo_stack.undo()
    assert not {"conv2d_1", "conv2d_2", "conv2d_3"} & node_ids(model)
    assert canvas.node_item("conv2d_1") is None


# -- following commands pushed elsewhere ----------------------------------------------------
def test_items_follow_commands_pushed_from_outside(canvas, model):
    project = model.project
    stem = canvas.node_item("stem")
    others = {nid: item for nid, item in canvas.graph_scene.nodes.items() if nid != "stem"}

    model.push(SetNodeFields(project, {"stem": {"params": {"out_channels": 16}, "dropout": 0.1}}))
    assert stem.face.key_line == "16, 3×3"
    assert "drop 0.1" in stem.face.option_line
    assert stem.face.shape_text == "16×8×8"
    assert canvas.edge_item(Edge("stem", "block1_conv1")).label == "16×8×8"
    # The residual Add now gets 32 and 16 channels: flagged.
    assert "equal shapes" in canvas.node_item("block1_add").error
    # Items were updated, not rebuilt.
    assert canvas.node_item("stem") is stem
    assert all(canvas.graph_scene.nodes[nid] is item for nid, item in others.items())

    model.undo_stack.undo()
    assert stem.face.key_line == "32, 3×3" and canvas.node_item("block1_add").error is None

    model.push(SetNodeFields(project, {"block2_conv1": {"trainable": False}}))
    assert canvas.node_item("block2_conv1").face.frozen
    assert "frozen" in canvas.node_item("block2_conv1").face.params_text

    model.push(RemoveNodes(project, ["pool"]))
    assert canvas.node_item("pool") is None
    assert canvas.edge_item(Edge("pool", "classes")) is None
    model.undo_stack.undo()
    assert canvas.node_item("pool") is not None
    assert canvas.edge_item(Edge("block2_relu", "pool")) is not None
    model.undo_stack.redo()
    assert canvas.node_item("pool") is None

    model.push(MoveNodes(project, {"classes": [300.0, 20.0]}))
    assert canvas.node_item("classes").pos() == QPointF(300, 20)


def test_replacing_the_project_redraws_and_lets_go_of_the_old_one(canvas, model):
    old = model.project
    model.replace(load_project(EXAMPLES / "inception_block.json"), None)
    assert set(canvas.graph_scene.nodes) == set(model.project.network.nodes)
    assert "concat" in canvas.graph_scene.nodes
    assert list(canvas.node_item("concat").in_ports) == ["in0", "in1", "in2", "in3"]
    # Edits to the old project no longer reach the canvas.
    old.network.remove_node("stem")
    assert canvas.node_item("stem") is not None
    # And edits to the new one do.
    model.push(RemoveNodes(model.project, ["pool_proj"]))
    assert canvas.node_item("pool_proj") is None


def test_only_changed_nodes_are_redrawn_in_a_60_node_network(qtbot, monkeypatch):
    cat = catalog()
    nodes = [parse_node({"id": "x", "type": "Input", "params": {"shape": [64]}}, cat, "x")]
    for i in range(59):
        nodes.append(
            parse_node(
                {
                    "id": f"l{i}",
                    "type": "Linear",
                    "params": {"out_features": 64},
                    "activation": "relu",
                },
                cat,
                f"l{i}",
            )
        )
    ids = [n.id for n in nodes]
    project = Project(network=Network(nodes, [Edge(a, b) for a, b in zip(ids, ids[1:])]))
    model = DocumentModel(project)
    start = time.perf_counter()
    view = GraphCanvas(model)
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    qtbot.waitExposed(view)
    assert time.perf_counter() - start < 5
    assert len(view.graph_scene.nodes) == 60 and len(view.graph_scene.edges) == 59
    # No positions in the project: laid out for display, top to bottom.
    assert view.node_item("l10").pos().y() > view.node_item("l9").pos().y()

    applied = []
    original = NodeItem._apply
    monkeypatch.setattr(
        NodeItem,
        "_apply",
        lambda self, face, first=False: (applied.append(self.node_id), original(self, face, first)),
    )
    start = time.perf_counter()
    model.push(SetNodeFields(project, {"l30": {"activation": "tanh"}}))
    elapsed = time.perf_counter() - start
    assert applied == ["l30"]
    assert elapsed < 1.0
    applied.clear()
    model.push(SetNodeFields(project, {"l30": {"params": {"out_features": 32}}}))
    assert set(applied) == {"l30", "l31"}  # l31's parameter count changed with its input


# -- view commands ------------------------------------------------------------------------------
def test_auto_layout_is_one_undo_step(canvas, model):
    model.push(MoveNodes(model.project, {"stem": [500.0, -300.0], "pool": [-400.0, 90.0]}))
    count = model.undo_stack.count()
    canvas.auto_layout()
    assert model.undo_stack.count() == count + 1
    expected = auto_layout(model.project.network)
    for nid, pos in expected.items():
        assert model.project.view.positions[nid] == pytest.approx(pos)
        assert canvas.node_item(nid).pos() == QPointF(*pos)
    model.undo_stack.undo()
    assert model.project.view.positions["stem"] == [500.0, -300.0]


def test_double_click_activates_the_layer(canvas, qtbot):
    with qtbot.waitSignal(canvas.layer_activated) as activated:
        QTest.mouseDClick(
            canvas.viewport(),
            Qt.LeftButton,
            Qt.NoModifier,
            vp(canvas, header(canvas.node_item("stem"))),
        )
    assert activated.args == ["stem"]


def test_highlight_and_clear(canvas):
    canvas.highlight_nodes(["stem", "pool"], "#ff0000")
    assert canvas.node_item("stem").highlight.name() == "#ff0000"
    assert canvas.node_item("classes").highlight is None
    canvas.clear_highlight()
    assert canvas.node_item("stem").highlight is None and canvas.node_item("pool").highlight is None


def test_center_on_and_fit(canvas):
    canvas.resetTransform()
    canvas.center_on("classes")
    centre = canvas.mapToScene(canvas.viewport().rect().center())
    target = canvas.node_item("classes").mapToScene(canvas.node_item("classes").rect().center())
    assert abs(centre.x() - target.x()) < 2 and abs(centre.y() - target.y()) < 2
    canvas.resize(900, 1400)
    canvas.fit_to_view()
    visible = canvas.mapToScene(canvas.viewport().rect()).boundingRect()
    for item in canvas.graph_scene.nodes.values():
        assert visible.contains(item.sceneBoundingRect())
    assert canvas.transform().m11() <= 1.0
    # Too big for the full faces: the whole network in the overview faces.
    canvas.resize(400, 300)
    canvas.fit_to_view()
    visible = canvas.mapToScene(canvas.viewport().rect()).boundingRect()
    assert OVERVIEW_ZOOM <= canvas.transform().m11() < READABLE_ZOOM
    for item in canvas.graph_scene.nodes.values():
        assert visible.contains(item.sceneBoundingRect())
    # Too big even for those: the least readable zoom, showing the top of the network,
    # and the status bar says so (the canvas has no scroll bars to hint at the rest).
    said = []
    canvas.status_message.connect(said.append)
    canvas.resize(200, 150)
    canvas.fit_to_view()
    visible = canvas.mapToScene(canvas.viewport().rect()).boundingRect()
    assert canvas.transform().m11() == pytest.approx(OVERVIEW_ZOOM)
    assert len(said) == 1 and "does not fit" in said[0] and "Auto Layout" in said[0]
    assert visible.contains(canvas.node_item("image").sceneBoundingRect())
    assert not visible.contains(canvas.node_item("classes").sceneBoundingRect())


def test_the_overview_face_says_as_much_as_fits(canvas):
    from studio.training.health import Health
    from ui.canvas import style
    from ui.canvas.node_item import overview_lines

    face = canvas.node_item("classes").face
    line = style.OVERVIEW_LINE_PX
    assert overview_lines(face, None, 80, line - 4) == []  # no room for a line of text
    assert overview_lines(face, None, 20, 3 * line) == []  # nor across
    assert overview_lines(face, None, 80, line + 2) == [("classes", True)]
    assert overview_lines(face, None, 80, 2 * line + 2) == [("Output", True), ("classes", False)]
    three = overview_lines(face, None, 80, 3 * line + 2)
    assert three[2] == (face.option_line, False) and face.option_line  # "xavier"
    plain_options = dataclasses.replace(face, option_line="")
    assert overview_lines(plain_options, None, 80, 3 * line + 2)[2] == (face.shape_text, False)
    # What is wrong comes before the rest, and on two lines before the type.
    dead = Health("bad", dead=0.4)
    assert overview_lines(face, dead, 80, 3 * line + 2)[2] == (dead.label, False)
    assert overview_lines(face, dead, 80, 2 * line + 2) == [("classes", True), (dead.label, False)]
    # A big node (a canvas just short of the full faces) says the rest of the full face.
    rest = [face.option_line, face.shape_text, face.key_line]
    assert all(rest)
    six = overview_lines(face, dead, 200, 6 * line + 2)
    assert [text for text, _ in six] == ["Output", "classes", dead.label, *rest]
    assert len(overview_lines(face, dead, 200, 4 * line + 2)) == 4  # as many as fit
    broken = dataclasses.replace(face, error="input 64, expected 32")
    assert overview_lines(broken, dead, 80, 3 * line + 2)[2] == ("error", False)


def test_f_fits_the_network_in_view(canvas):
    canvas.resetTransform()
    canvas.scale(2.5, 2.5)
    canvas.center_on("image")
    canvas.setFocus()
    QTest.keyClick(canvas, Qt.Key_F)
    visible = canvas.mapToScene(canvas.viewport().rect()).boundingRect()
    assert visible.contains(canvas.node_item("classes").sceneBoundingRect())
    assert visible.contains(canvas.node_item("image").sceneBoundingRect())


def test_middle_button_and_space_drag_pan_without_editing(canvas, model):
    canvas.resetTransform()
    canvas.center_on("block1_add")
    count = model.undo_stack.count()
    placed = list(model.project.view.positions["block1_add"])
    viewport = canvas.viewport()
    centre = viewport.rect().center()
    before = canvas.mapToScene(centre)
    # Middle-drag starting on a node pans; it does not move the node.
    start = vp(canvas, header(canvas.node_item("block1_add")))
    QTest.mousePress(viewport, Qt.MiddleButton, Qt.NoModifier, start)
    QTest.mouseMove(viewport, start + QPoint(-100, -50))
    QTest.mouseRelease(viewport, Qt.MiddleButton, Qt.NoModifier, start + QPoint(-100, -50))
    after = canvas.mapToScene(centre)
    assert after.x() == pytest.approx(before.x() + 100, abs=2)
    assert after.y() == pytest.approx(before.y() + 50, abs=2)
    # Space + left drag pans too.
    canvas.setFocus()
    QTest.keyPress(canvas, Qt.Key_Space)
    drag(
        canvas,
        header(canvas.node_item("block1_add")),
        header(canvas.node_item("block1_add")) + QPointF(0, 80),
    )
    QTest.keyRelease(canvas, Qt.Key_Space)
    assert canvas.mapToScene(centre).y() == pytest.approx(after.y() - 80, abs=2)
    assert model.undo_stack.count() == count
    assert model.project.view.positions["block1_add"] == placed


def test_edits_from_another_thread_are_redrawn_in_the_gui_thread(canvas, model, qtbot):
    import threading

    node = parse_node({"id": "late", "type": "ReLU"}, catalog(), "late")
    worker = threading.Thread(target=model.project.network.add_node, args=(node,))
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: canvas.node_item("late") is not None)
    assert set(canvas.graph_scene.nodes) == node_ids(model)


def test_wheel_zooms_around_the_cursor(canvas):
    canvas.resetTransform()
    canvas.center_on("block1_add")
    spot = QPoint(300, 400)
    before = canvas.mapToScene(spot)
    wheel = QWheelEvent(
        QPointF(spot),
        QPointF(canvas.viewport().mapToGlobal(spot)),
        QPoint(0, 0),
        QPoint(0, 240),
        Qt.NoButton,
        Qt.NoModifier,
        Qt.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(canvas.viewport(), wheel)
    assert canvas.transform().m11() > 1.2
    after = canvas.mapToScene(spot)
    assert abs(after.x() - before.x()) < 2 and abs(after.y() - before.y()) < 2
