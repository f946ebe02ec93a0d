"""Transfer learning in the window: the freeze-point slider, backbone nodes on the canvas,
the strategy dialog, phase marks on the plots, a past run reused as a backbone, and the
template a backbone dropped on a plain project becomes."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from support import chain

from studio.document import Project
from studio.projectfile import load_project
from studio.report import human_count
from studio.training.session import train
from studio.transfer import strategies as transfer
from ui.canvas import LAYER_MIME
from ui.document import DocumentModel
from ui.freeze import FreezePanel
from ui.plots import TrainingPlots
from ui.strategy_dialog import StrategyDialog
from ui.window import MainWindow

EXAMPLES = Path(__file__).resolve().parents[2] / "resources" / "examples"


def backbone_project(freeze_point: int = 5) -> Project:
    # weights "none": nothing is downloaded, and the analysis never reads weights anyway.
    network = chain(
        {"id": "image", "type": "Input", "params": {"shape": [3, 32, 32]}},
        {
            "id": "backbone",
            "type": "ResNet18",
            "params": {"weights": "none", "freeze_point": freeze_point},
        },
        {"id": "classes", "type": "Output", "params": {"units": 10}},
    )
    project = Project(name="transfer", network=network)
    project.view.positions = {
        "image": [0.0, 0.0],
        "backbone": [0.0, 110.0],
        "classes": [0.0, 320.0],
    }
    return project


def open_window(qtbot, project: Project, path: Path | None = None) -> MainWindow:
    window = MainWindow(project, path)
    qtbot.addWidget(window)
    window.show()
    return window


def frozen_flags(window: MainWindow) -> list[bool]:
    return [row.frozen for row in window.canvas.node_item("backbone").face.stages]


# -- the freeze point ----------------------------------------------------------------------
def test_dragging_the_freeze_slider_is_one_edit_seen_everywhere_and_one_undo(qtbot):
    window = open_window(qtbot, backbone_project(freeze_point=5))
    model = window.model
    window.model.select(["backbone"])
    panel = window.inspector.findChild(FreezePanel)
    assert panel is not None and panel.slider.maximum() == 5 and panel.slider.value() == 5
    stages = model.analysis.layers["backbone"].stages
    assert [name for name, _, _ in stages] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert frozen_flags(window) == [True] * 5
    status_before = window.params_label.text()
    depth = model.undo_stack.count()

    # A drag: the preview follows every position, the document only the release.
    panel.slider.setSliderDown(True)
    for value in (4, 3, 2):
        panel.slider.setValue(value)
    assert model.project.network.nodes["backbone"].params["freeze_point"] == 5
    assert model.undo_stack.count() == depth
    assert "stem to layer1" in panel.summary.text()
    panel.slider.setSliderDown(False)  # the release

    assert model.project.network.nodes["backbone"].params["freeze_point"] == 2
    assert model.undo_stack.count() == depth + 1
    assert frozen_flags(window) == [True, True, False, False, False]
    held = sum(count for _, count, _ in stages[:2])
    assert model.analysis.frozen_params == held
    assert window.params_label.text() != status_before
    assert f"{human_count(held)} frozen" in window.params_label.text()
    states = [panel.table.topLevelItem(i).text(2) for i in range(5)]
    assert states == ["frozen", "frozen", "trains", "trains", "trains"]

    model.undo_stack.undo()
    assert model.project.network.nodes["backbone"].params["freeze_point"] == 5
    assert frozen_flags(window) == [True] * 5
    assert window.params_label.text() == status_before
    assert panel.slider.value() == 5
    model.undo_stack.setClean()


def test_arrow_keys_move_the_freeze_point_and_the_bn_toggle_is_an_edit(qtbot):
    window = open_window(qtbot, backbone_project(freeze_point=2))
    window.model.select(["backbone"])
    panel = window.inspector.findChild(FreezePanel)
    panel.slider.setFocus()
    QTest.keyClick(panel.slider, Qt.Key_Right)
    assert window.model.project.network.nodes["backbone"].params["freeze_point"] == 3
    panel.update_bn.click()
    assert window.model.project.network.nodes["backbone"].params["update_frozen_bn"] is True
    window.model.undo_stack.undo()
    assert window.model.project.network.nodes["backbone"].params["update_frozen_bn"] is False
    assert not panel.update_bn.isChecked()
    window.model.undo_stack.setClean()


def test_a_backbone_node_opens_to_show_its_stages_as_view_state_only(qtbot):
    window = open_window(qtbot, backbone_project(freeze_point=1))
    canvas, model = window.canvas, window.model
    item = canvas.node_item("backbone")
    assert "freeze 1/5" in item.face.key_line and not item.face.expanded
    closed = item.height
    saved = model.project.to_dict()
    toggle = item.mapToScene(item.toggle_rect().center())
    QTest.mouseClick(canvas.viewport(), Qt.LeftButton, Qt.NoModifier, canvas.mapFromScene(toggle))
    assert item.face.expanded and item.height > closed
    assert [r.frozen for r in item.face.stages] == [True, False, False, False, False]
    assert model.project.to_dict() == saved and model.undo_stack.count() == 0
    canvas.graph_scene.toggle_expanded("backbone")
    assert not item.face.expanded and item.height == closed


def test_opening_a_backbone_pushes_the_layers_it_would_cover_down_in_one_undo(qtbot):
    project = backbone_project(freeze_point=1)
    project.view.positions["classes"] = [0.0, 220.0]  # right under the closed node
    window = open_window(qtbot, project)
    scene = window.canvas.graph_scene
    backbone, head = window.canvas.node_item("backbone"), window.canvas.node_item("classes")
    assert not backbone.sceneBoundingRect().intersects(head.sceneBoundingRect())
    scene.toggle_expanded("backbone")
    assert not backbone.sceneBoundingRect().intersects(head.sceneBoundingRect())
    assert window.model.project.view.positions["classes"][1] > 220.0
    window.model.undo_stack.undo()
    assert window.model.project.view.positions["classes"] == [0.0, 220.0]
    window.model.undo_stack.setClean()


def test_an_unticked_trainable_greys_the_whole_backbone(qtbot):
    window = open_window(qtbot, backbone_project(freeze_point=0))
    window.model.select(["backbone"])
    window.inspector.findChild(FreezePanel)  # built with the selection
    item = window.canvas.node_item("backbone")
    assert not item.face.frozen
    from studio.commands import SetNodeFields

    window.model.push(SetNodeFields(window.model.project, {"backbone": {"trainable": False}}))
    assert item.face.frozen and all(r.frozen for r in item.face.stages)
    assert window.model.analysis.trainable_params == window.model.analysis.layers["classes"].params
    window.model.undo_stack.setClean()


# -- the strategy dialog -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "similarity"),
    [("little", "low"), ("little", "high"), ("much", "low"), ("much", "high")],
)
def test_the_strategy_dialog_applies_the_recommended_cell_in_one_undo_step(qtbot, size, similarity):
    window = open_window(qtbot, backbone_project(freeze_point=3))
    model = window.model
    before = model.project.to_dict()
    dialog = StrategyDialog(model, samples=500, parent=window)
    qtbot.addWidget(dialog)
    assert dialog.size_buttons["little"].isChecked()  # 500 samples count as little data
    dialog.choose(size, similarity)
    expected = transfer.recommend(size, similarity)
    assert dialog.strategy() == expected.strategy
    cell = dialog.cells[(size, similarity)]
    assert "highlight" in cell.styleSheet()
    assert all(not c.styleSheet() for key, c in dialog.cells.items() if key != (size, similarity))
    assert dialog.explanation.text().startswith(expected.explanation.split(".")[0])
    dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()

    node = model.project.network.nodes["backbone"]
    assert node.params["freeze_point"] == transfer.freeze_point_for(expected.strategy, 5)
    assert model.project.training["fine_tuning"]["two_phase"] is expected.two_phase
    assert frozen_flags(window) == [i < node.params["freeze_point"] for i in range(5)]
    model.undo_stack.undo()
    assert model.project.to_dict() == before
    model.undo_stack.setClean()


def test_the_strategy_dialog_says_so_when_there_is_no_backbone(qtbot):
    dialog = StrategyDialog(DocumentModel(load_project(EXAMPLES / "digits_mlp.json")))
    qtbot.addWidget(dialog)
    assert not dialog.buttons.button(dialog.buttons.StandardButton.Ok).isEnabled()
    assert dialog.command() is None


def test_a_past_fine_tuned_run_shows_its_phase_marks(qtbot):
    import numpy as np

    window = open_window(qtbot, load_project(EXAMPLES / "digits_mlp.json"))

    class SavedRun:  # what Run.series() gives for a run saved with two phases
        def __init__(self, run_id, phases):
            self.id = run_id
            self.phases = phases

        def series(self):
            steps = np.arange(20)
            return {
                "layers": np.array(["head"]),
                "step": steps,
                "loss": np.linspace(2, 1, 20),
                "grad_step": steps,
                "grad_norms": np.ones((20, 1)),
                "phase_step": np.array([s for s, _ in self.phases]),
                "phase_label": np.array([label for _, label in self.phases]),
            }

        def metrics(self):  # the run's epochs (none kept here)
            return []

    window._compare_runs(
        [
            SavedRun("a", [(0, "Phase 1: only the head trains"), (12, "Phase 2: all train")]),
            SavedRun("b", []),
        ]
    )
    assert [(step, label) for step, label, _ in window.plots.history.marks] == [
        (0.0, "Phase 1: only the head trains"),
        (12.0, "Phase 2: all train"),
    ]


def test_a_partly_loaded_backbone_becomes_a_finding_a_full_load_only_a_message(qtbot):
    """The diagnosis makes the finding (so the CLI reports it too); the window shows the
    events a run sends it, as a run in the window or a watched run sends them."""
    from studio.training.diagnosis import Diagnosis

    window = open_window(qtbot, backbone_project())

    def run_says(report: str, mismatched: bool) -> list[dict]:
        said = [
            {"type": "pretrained", "node": "backbone", "report": report, "mismatched": mismatched}
        ]
        diagnosis = Diagnosis(window.model.project)
        diagnosis.on_finding = lambda f: said.append({"type": "finding", **f.to_dict()})
        diagnosis(said[0])
        return said

    full = "Node 'backbone' (ResNet18): loaded 120 of 120 tensors from x.pth; classifier replaced."
    window._on_events(run_says(full, False))
    assert window.findings.cards == [] and window.statusBar().currentMessage() == full
    partial = "Node 'backbone' (ResNet18): loaded 119 of 120 tensors from x.pth; 1 missing."
    window._on_events(run_says(partial, True))
    (card,) = window.findings.cards
    assert card.finding["message"] == partial and card.finding["layers"] == ["backbone"]


def test_a_weights_download_shows_in_the_progress_bar(qtbot):
    window = open_window(qtbot, backbone_project())
    name = "resnet18-f37072fd.pth"
    window._on_events([{"type": "download", "file": name, "done": 0, "total": 46_800_000}])
    window._on_events([{"type": "download", "file": name, "done": 23_400_000, "total": 46_800_000}])
    assert window.progress.isVisible() and window.progress.value() == 23_400_000
    assert window.progress.format() == f"Downloading {name}: 23.4 of 46.8 MB"


# -- plots ---------------------------------------------------------------------------------
def test_mark_draws_a_labelled_line_on_the_step_plots(qtbot):
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.feed({"type": "start", "layers": ["backbone.layer4", "classes"], "total_steps": 100})
    plots.feed({"type": "steps", "step": [0, 1, 2], "loss": [2.0, 1.9, 1.8], "lr": 0.01})
    label = "Phase 2: layer3, layer4 and the head train at lr × 0.1"
    plots.mark(2, label)
    plots.refresh(force=True)
    assert plots.history.marks == [(2.0, label, "phase")]
    for panel in (plots.loss, plots.lr, plots.gradients):
        assert panel.marks.lines, type(panel).__name__
        assert all(line.value() == 2.0 for _, line in panel.marks.lines)
    # On the plot a long sentence is cut to its head, so close marks do not overlap.
    (labelled,) = [line for _, line in plots.loss.marks.lines if hasattr(line, "label")]
    assert labelled.label.toPlainText() == "Phase 2"
    assert label in labelled.toolTip()


def test_phase_events_become_marks_and_stage_names_select_their_node(qtbot):
    window = open_window(qtbot, backbone_project())
    window._on_events(
        [
            {
                "type": "start",
                "layers": ["backbone.layer4", "classes"],
                "total_steps": 50,
                "first_step": 0,
                "device": "cpu",
            },
            {"type": "phase", "step": 0, "epoch": 0, "label": "phase 1: head only"},
            {"type": "phase", "step": 30, "epoch": 3, "label": "phase 2: fine-tune"},
        ]
    )
    assert [m[:2] for m in window.plots.history.marks] == [
        (0.0, "phase 1: head only"),
        (30.0, "phase 2: fine-tune"),
    ]
    window.plots.layer_clicked.emit("backbone.layer4")
    assert window.model.selection == ["backbone"]
    window.plots.layer_clicked.emit("classes")
    assert window.model.selection == ["classes"]


# -- building with backbones ---------------------------------------------------------------
def test_use_as_backbone_puts_a_past_run_between_input_and_head(qtbot, tmp_path):
    runs = Path(tmp_path / "runs")  # the isolated STUDIO_RUNS of tests/ui/conftest.py
    trained = load_project(
        EXAMPLES / "digits_cnn.json",
        ["training.epochs=1", "training.batch_size=1024", "training.monitors.enabled=false"],
    )
    train(trained, runs_root=runs, emit_hz=0)
    window = open_window(qtbot, load_project(EXAMPLES / "digits_mlp.json"))
    model = window.model
    before = model.project.to_dict()
    window.runs.show_project(runs, "digits_cnn")  # the panel lists the CNN's run
    (action,) = [a for a in window.runs.context_menu(0).actions() if a.text() == "Use as backbone"]
    action.trigger()

    nodes = model.project.network.nodes
    (new,) = [nid for nid, n in nodes.items() if n.type == "RunBackbone"]
    assert set(nodes) == {"image", new, "classes"}
    edges = {(e.source, e.target) for e in model.project.network.edges}
    assert edges == {("image", new), (new, "classes")}
    assert model.analysis.ok, [p.message for p in model.analysis.problems]
    assert model.analysis.layers[new].output_shape == (128,)  # the CNN's features, minus its head
    assert model.selection == [new]
    model.undo_stack.undo()
    assert model.project.to_dict() == before
    model.undo_stack.setClean()


def drop(canvas, type_name: str, at: QPointF) -> None:
    pos = QPointF(canvas.mapFromScene(at))
    mime = QMimeData()
    mime.setData(LAYER_MIME, type_name.encode())
    enter = QDragEnterEvent(pos.toPoint(), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(canvas.viewport(), enter)
    QApplication.sendEvent(
        canvas.viewport(), QDropEvent(pos, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    )


def plain_project() -> Project:
    project = Project(
        name="plain",
        network=chain(
            {"id": "image", "type": "Input", "params": {"shape": [1, 8, 8]}},
            {"id": "classes", "type": "Output", "params": {"units": 10}},
        ),
    )
    project.view.positions = {"image": [0.0, 0.0], "classes": [0.0, 110.0]}
    return project


def test_dropping_resnet18_on_input_output_builds_the_template_in_one_undo_step(qtbot):
    window = open_window(qtbot, plain_project())
    model = window.model
    before = model.project.to_dict()
    drop(window.canvas, "ResNet18", QPointF(300, 60))

    net = model.project.network
    assert (
        set(net.nodes) == {"image", "backbone", "classes"} == set(window.canvas.graph_scene.nodes)
    )
    assert {(e.source, e.target) for e in net.edges} == {
        ("image", "backbone"),
        ("backbone", "classes"),
    }
    assert net.nodes["image"].params["shape"] == list(resnet18_hint()["shape"])
    assert net.nodes["backbone"].params["weights"] == "imagenet"
    assert model.project.data["scaling"] == "imagenet"
    assert model.analysis.ok, [p.message for p in model.analysis.problems]
    assert model.undo_stack.count() == 1
    model.undo_stack.undo()
    assert model.project.to_dict() == before
    model.undo_stack.setClean()


def resnet18_hint() -> dict:
    from studio.registry import catalog

    layer = catalog().get("ResNet18")
    return layer.input_hint({p.name: p.default for p in layer.params})


def test_a_backbone_dropped_on_a_longer_chain_asks_before_replacing_layers(qtbot, monkeypatch):
    window = open_window(qtbot, load_project(EXAMPLES / "digits_mlp.json"))
    model = window.model
    layers_before = set(model.project.network.nodes)
    asked = []
    monkeypatch.setattr(
        window.canvas, "confirm_template", lambda name, replaced: asked.append(replaced) or False
    )
    drop(window.canvas, "ResNet18", QPointF(400, 60))
    assert asked and set(asked[0]) == layers_before - {"image", "classes"}
    # Declined: the backbone is only added, nothing else changes.
    assert set(model.project.network.nodes) == layers_before | {"resnet18_1"}
    assert model.project.data["scaling"] != "imagenet"
    model.undo_stack.setClean()
