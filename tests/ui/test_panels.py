"""Palette, inspector, settings panels, findings and the training controller."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLineEdit, QSpinBox

from studio.projectfile import load_project
from studio.settings import TRAINING
from ui.document import DocumentModel
from ui.findings import FindingsPanel
from ui.inspector import Inspector
from ui.palette import MIME_TYPE, LayerPalette
from ui.settings_panel import SettingsPanel
from ui.training import TrainingController

EXAMPLES = Path(__file__).resolve().parents[2] / "resources" / "examples"


def model_of(name: str) -> DocumentModel:
    return DocumentModel(load_project(EXAMPLES / f"{name}.json"))


def test_the_palette_lists_every_layer_and_filters(qtbot):
    palette = LayerPalette()
    qtbot.addWidget(palette)
    names = {
        palette.tree.topLevelItem(i).child(j).text(0)
        for i in range(palette.tree.topLevelItemCount())
        for j in range(palette.tree.topLevelItem(i).childCount())
    }
    assert {"Linear", "Conv2d", "LSTM", "Add", "Concat", "Swish"} <= names
    palette.search.setText("pool")
    visible = {
        palette.tree.topLevelItem(i).child(j).text(0)
        for i in range(palette.tree.topLevelItemCount())
        for j in range(palette.tree.topLevelItem(i).childCount())
        if not palette.tree.topLevelItem(i).child(j).isHidden()
    }
    assert visible == {"MaxPool2d", "AvgPool2d", "GlobalAvgPool"}
    assert MIME_TYPE == "application/x-studio-layer"


def test_an_inspector_edit_changes_the_document_and_undoes(qtbot):
    model = model_of("digits_mlp")
    inspector = Inspector(model)
    qtbot.addWidget(inspector)
    model.select(["hidden1"])
    units = inspector.findChild(QSpinBox, "out_features")
    units.setValue(32)
    assert model.project.network.nodes["hidden1"].params["out_features"] == 32
    assert model.analysis.layers["hidden1"].output_shape == (32,)
    assert inspector.findChild(QSpinBox, "out_features") is units, (
        "the form is updated in place, keeping focus"
    )
    assert "Output 32" in inspector.facts.text()
    model.undo_stack.undo()
    assert model.project.network.nodes["hidden1"].params["out_features"] == 128
    assert units.value() == 128


def test_one_inspector_edit_sets_kaiming_on_every_selected_layer(qtbot):
    model = model_of("deep_sigmoid_mlp")
    inspector = Inspector(model)
    qtbot.addWidget(inspector)
    layers = [f"dense{i}" for i in range(1, 21)]
    model.select(layers)
    combo = next(
        c for c in inspector.findChildren(QComboBox, "name") if c.findText("kaiming_normal") >= 0
    )
    combo.activated.emit(combo.findText("kaiming_normal"))
    assert all(
        model.project.network.nodes[n].initializer["name"] == "kaiming_normal" for n in layers
    )
    assert model.undo_stack.count() == 1
    model.undo_stack.undo()
    assert all(model.project.network.nodes[n].initializer["name"] == "normal" for n in layers)


def test_the_training_panel_edits_settings_and_refuses_bad_values(qtbot):
    model = model_of("digits_mlp")
    panel = SettingsPanel(model, "training", TRAINING)
    qtbot.addWidget(panel)
    lr = next(w for w in panel.findChildren(QLineEdit, "lr"))
    lr.setText("0.05")
    lr.editingFinished.emit()
    assert model.project.training["optimizer"]["lr"] == 0.05
    lr.setText("-3")
    lr.editingFinished.emit()
    assert model.project.training["optimizer"]["lr"] == 0.05
    assert "training.optimizer.lr" in panel.message.text()
    assert lr.text() == "0.05", "the field shows the document's value again"


def test_the_fix_button_applies_the_suggestion_as_one_undo_step(qtbot):
    model = model_of("deep_sigmoid_mlp")
    panel = FindingsPanel(model)
    qtbot.addWidget(panel)
    finding = {
        "kind": "vanishing_gradients",
        "severity": "error",
        "step": 0,
        "title": "Vanishing gradients",
        "message": "…",
        "remedy": "…",
        "layers": ["dense1", "dense2"],
        "epoch": None,
        "fix": {
            "nodes": {
                n: {
                    "activation": "relu",
                    "initializer": {"name": "kaiming_normal"},
                    "normalization": {"kind": "batch"},
                }
                for n in ("dense1", "dense2")
            },
            "training": {},
        },
    }
    panel.add(finding)
    qtbot.mouseClick(panel.cards[0].fix_button, Qt.LeftButton)
    nodes = model.project.network.nodes
    assert nodes["dense1"].activation == "relu" and nodes["dense2"].normalization["kind"] == "batch"
    assert not panel.cards[0].fix_button.isEnabled()
    model.undo_stack.undo()
    assert nodes["dense1"].activation == "sigmoid"


def test_training_runs_on_a_worker_thread_delivers_events_and_stops_cleanly(qtbot, tmp_path):
    model = model_of("digits_mlp")
    controller = TrainingController()
    received = []
    controller.events.connect(received.extend)
    with qtbot.waitSignal(controller.finished, timeout=60000) as done:
        controller.start(model.project, tmp_path / "runs", EXAMPLES)
        qtbot.waitUntil(lambda: any(e["type"] == "steps" for e in received), timeout=30000)
        assert controller.thread is not None and controller.thread.isRunning()
        controller.stop()
    assert done.args[0]["status"] == "stopped"
    assert controller.thread is None and controller.state == "idle"
    kinds = {e["type"] for e in received}
    assert {"start", "steps", "end"} <= kinds
    assert all(type(v).__module__ != "torch" for e in received for v in e.values())
    assert (tmp_path / "runs" / "index.sqlite").is_file()


def test_a_bad_data_setting_ends_the_run_with_a_sentence_not_a_crash(qtbot, tmp_path):
    model = model_of("digits_mlp")
    model.project.data["source"] = "image_folder"
    model.project.data["path"] = str(tmp_path / "missing")
    controller = TrainingController()
    with qtbot.waitSignal(controller.finished, timeout=30000) as done:
        controller.start(model.project, tmp_path / "runs", EXAMPLES)
    assert done.args[0]["status"] == "failed" and "does not exist" in done.args[0]["error"]


def test_the_data_preview_shows_samples_per_class(qtbot):
    from ui.data_preview import DataPreview

    model = model_of("digits_cnn")
    preview = DataPreview(model)
    qtbot.addWidget(preview)
    preview.load()
    qtbot.waitUntil(lambda: preview.button.isEnabled(), timeout=30000)
    preview.wait()
    assert [name for name, _ in preview.samples] == [str(i) for i in range(10)]
    assert all(len(images) == 6 and images[0].shape == (8, 8, 1) for _, images in preview.samples)
    assert "1,797" in preview.report.text() or "1,437" in preview.report.text()


def test_the_data_preview_counts_each_class_and_suggests_a_remedy(qtbot, tmp_path):
    from studio.commands import SetSettings
    from ui.data_preview import DataPreview

    rows = ["width,height,label"] + [f"{i % 7},{i % 5},cat" for i in range(400)]
    rows += [f"{i % 3},{i % 4},dog" for i in range(50)]
    (tmp_path / "pets.csv").write_text("\n".join(rows) + "\n")
    project = load_project(EXAMPLES / "digits_mlp.json", ["data.source=csv", "data.path=pets.csv"])
    project.network.nodes["image"].params["shape"] = [2]
    model = DocumentModel(project, tmp_path / "pets.json")
    preview = DataPreview(model)
    qtbot.addWidget(preview)
    preview.load()
    qtbot.waitUntil(lambda: preview.button.isEnabled(), timeout=30000)
    preview.wait()
    assert "'cat' 320, 'dog' 40" in preview.balance.text()  # the training split
    advice = preview.balance_advice.text()
    assert "consider training.class_weights=auto or training.sampling=balanced" in advice
    model.push(SetSettings(model.project, {"training.class_weights": "auto"}))
    assert "training.class_weights=auto makes up for it" in preview.balance_advice.text()
