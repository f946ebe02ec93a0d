"""Diagnosis in the window: the gradient-flow plot, health marks on the nodes, the
learning-rate finder's dialog, and fixes that know when another fix covered them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF

from studio.projectfile import load_project
from studio.training.health import Health, layer_health, node_health
from ui.document import DocumentModel
from ui.findings import FindingsPanel
from ui.lr_finder import LRFinderDialog
from ui.plots import TrainingPlots
from ui.window import MainWindow

EXAMPLES = Path(__file__).resolve().parents[2] / "resources" / "examples"


def test_the_flow_plot_draws_step_0_dashed_and_now_solid(qtbot):
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    names = ["dense1", "dense2", "dense3", "classes"]
    plots.feed({"type": "start", "layers": names})
    for step, scale in ((0, 1e-3), (40, 1e-1)):
        back = np.array([[scale, scale * 10, 1.0, 2.0]])
        plots.feed(
            {
                "type": "flow",
                "step": np.array([step]),
                "layers": names,
                "forward_rms": np.full((1, 4), 0.5),
                "backprop_rms": back,
            }
        )
    plots.refresh(force=True)
    flow = plots.flow
    start, now = flow.curves["backward"]
    assert np.allclose(start.getData()[1], np.log10([1e-3, 1e-2, 1.0, 2.0]))
    assert np.allclose(now.getData()[1], np.log10([1e-1, 1.0, 1.0, 2.0]))
    assert list(start.getData()[0]) == [0, 1, 2, 3]
    assert "step 41" in flow.plot._studio["title"] and "step 1" in flow.plot._studio["x_label"]
    # The longer label is centred under the plot (it grew rightward off the plot before).
    axis = flow.plot.getAxis("bottom")
    middle = axis.label.pos().x() + axis.label.boundingRect().width() / 2
    assert abs(middle - axis.size().width() / 2) <= 2
    with qtbot.waitSignal(plots.layer_clicked) as clicked:
        flow._clicked(now, [now.scatter.points()[1]])
    assert clicked.args == ["dense2"]


def test_health_marks_say_where_the_signal_dies():
    layers = ["a", "b", "up", "c", "head"]
    health = layer_health(
        layers,
        np.array([1e-6, 0.05, 20.0, 1.0, 3.0]),
        np.array([0.5, 0.5, 0.5, 0.5, 2.0]),
        {"b": ("relu", 0.6), "c": ("sigmoid", 0.2)},
    )
    assert [health[n].level for n in layers] == ["bad", "bad", "weak", "weak", "good"]
    assert health["a"].label == "10⁻⁶" and health["b"].label == "dead 60%"
    assert health["c"].label == "sat 20%" and health["up"].label == "10¹"
    assert "1e-06× c's" in health["a"].describe()
    # The words name each cause, and a gradient 20× the reference's is not called weak.
    assert "dies before it reaches this layer" in health["a"].describe()
    said = health["b"].describe()
    assert "reaching this layer is weak" in said and "Too many of its ReLU units are dead" in said
    assert "grows on its way" in health["up"].describe() and "weak" not in health["up"].describe()
    assert "Some of its outputs are saturated" in health["c"].describe()
    stages = node_health(
        {"net.stem": Health("good"), "net.layer1": Health("bad", dead=0.7), "head": Health("good")}
    )
    assert stages["net"].level == "bad" and set(stages) == {"net", "head"}


def test_the_node_shows_its_health_and_the_numbers_on_hover(qtbot):
    window = MainWindow(load_project(EXAMPLES / "digits_mlp.json"))
    qtbot.addWidget(window)
    window.show()
    canvas = window.canvas
    canvas.fit_to_view()
    item = canvas.graph_scene.nodes["hidden1"]
    edge = item.mapToScene(QPointF(item.rect().left() + 1.5, item.rect().center().y()))

    def red_left_edge() -> bool:
        c = canvas.viewport().grab().toImage().pixelColor(canvas.mapFromScene(edge))
        return c.red() > 180 and c.green() < 110 and c.blue() < 110

    assert not red_left_edge()  # no mark before a run
    canvas.set_health({"hidden1": Health("bad", backprop=1e-7, relative=1e-5)})
    assert item.health.level == "bad" and "1e-07" in item.toolTip()
    assert red_left_edge()  # the strip on the node's left edge
    canvas.set_health({})
    assert item.health is None and "latest run" not in item.toolTip()


def test_a_live_run_repaints_a_node_only_when_its_mark_changes(qtbot, monkeypatch):
    """The marks follow a run at 2 Hz: new digits go to the tooltip without a repaint (every
    node repainting each time repainted the whole canvas while training)."""
    window = MainWindow(load_project(EXAMPLES / "digits_mlp.json"))
    qtbot.addWidget(window)
    canvas = window.canvas
    item = canvas.graph_scene.nodes["hidden1"]
    canvas.set_health({"hidden1": Health("bad", backprop=1e-7, relative=1e-5)})
    repaints = []
    monkeypatch.setattr(item, "update", lambda *a: repaints.append(a))
    canvas.set_health({"hidden1": Health("bad", backprop=1.3e-7, relative=1.2e-5)})
    assert "1.3e-07" in item.toolTip() and not repaints  # same mark: 10⁻⁵, red
    canvas.set_health({"hidden1": Health("weak", backprop=1e-3, relative=1e-2)})
    assert item.health.label == "10⁻²" and repaints


def test_the_learning_rate_finder_suggests_a_rate_and_use_this_is_one_undo(qtbot):
    model = DocumentModel(load_project(EXAMPLES / "digits_mlp.json"))
    dialog = LRFinderDialog(model, EXAMPLES)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.use_button.isEnabled(), timeout=120000)
    result = dialog.result
    assert len(dialog.curve.getData()[0]) == len(result.smoothed) > 50
    assert dialog.marker.isVisible() and dialog.range.isVisible()
    assert math.isclose(10 ** dialog.marker.value(), result.suggestion, rel_tol=1e-6)
    dialog.use_button.click()
    lr = model.project.training["optimizer"]["lr"]
    assert lr == float(f"{result.suggestion:.2g}") and model.undo_stack.count() == 1
    model.undo_stack.undo()
    assert model.project.training["optimizer"]["lr"] == 0.001


def test_closing_the_finder_mid_sweep_stops_it(qtbot):
    model = DocumentModel(load_project(EXAMPLES / "digits_cnn.json"))
    dialog = LRFinderDialog(model, EXAMPLES)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog._progress[0] > 3, timeout=60000)
    dialog.reject()
    assert not dialog.job.running and model.undo_stack.count() == 0


def test_a_fix_covered_by_another_fix_is_not_offered_again(qtbot):
    model = DocumentModel(load_project(EXAMPLES / "deep_sigmoid_mlp.json"))
    panel = FindingsPanel(model)
    qtbot.addWidget(panel)
    relu = {"activation": "relu", "initializer": {"name": "kaiming_normal"}}
    panel.add(
        {
            "kind": "vanishing_gradients",
            "severity": "error",
            "step": 0,
            "title": "Vanishing gradients",
            "message": "",
            "remedy": "",
            "layers": ["dense1"],
            "fix": {"nodes": {f"dense{i}": relu for i in range(1, 21)}, "training": {}},
        }
    )
    panel.add(
        {
            "kind": "saturation",
            "severity": "warning",
            "step": 5,
            "title": "Saturated activations",
            "message": "",
            "remedy": "",
            "layers": ["dense16"],
            "fix": {"nodes": {"dense16": {"initializer": {"name": "xavier_normal"}}}},
        }
    )
    vanishing, saturation = panel.cards
    assert "dense1–dense20 (20 layers)" in vanishing.fix_button.toolTip()
    vanishing.fix_button.click()
    assert not saturation.fix_button.isEnabled()
    assert "Covered by the fix for 'Vanishing gradients'" in saturation.note.text()
    # Learning-rate findings offer the finder.
    panel.add(
        {
            "kind": "lr_too_low",
            "severity": "warning",
            "step": 9,
            "title": "Learning rate too low",
            "message": "",
            "remedy": "",
            "fix": {"nodes": {}, "training": {"optimizer.lr": 0.01}},
        }
    )
    with qtbot.waitSignal(panel.find_lr_requested):
        next(
            b
            for b in panel.cards[-1].findChildren(type(vanishing.fix_button))
            if b.text() == "Find learning rate…"
        ).click()
