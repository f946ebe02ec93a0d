"""A newcomer's first session, scripted end to end in the real window (offscreen): build a
network, edit and undo (inside a field too), open the deep sigmoid demo, train, read the
finding, apply its fix, train again, compare the two runs, export the run that fits."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication, QLineEdit
from test_canvas import drag, in_port, out_port
from test_window import EXAMPLES, window_with

from studio.commands import SetSettings
from ui.export_dialog import ExportDialog


def test_a_first_session_from_an_empty_project_to_an_exported_fix(qtbot, tmp_path):
    window = window_with(qtbot, "digits_mlp")
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    model, canvas = window.model, window.canvas

    # New project → add layers (one appended, one dropped apart) → connect by dragging.
    window.new_project()
    (image,) = model.project.network.nodes
    flatten = canvas.add_layer("Flatten", after=image)
    hidden = canvas.add_layer("Linear", after=flatten)
    head = canvas.add_layer("Output", scene_pos=QPointF(600, 600))
    canvas.fit_to_view()
    QApplication.processEvents()
    drag(canvas, out_port(canvas, hidden), in_port(canvas, head))
    assert window.validity.text().startswith("✔")
    built = model.undo_stack.count()

    # An inspector edit, undone and redone from inside the field.
    model.select([hidden])
    field = window.inspector.findChild(QLineEdit, "dropout")
    field.setFocus()
    field.selectAll()
    qtbot.keyClicks(field, "0.25")
    qtbot.keyClick(field, Qt.Key_Return)
    assert model.project.network.nodes[hidden].dropout == pytest.approx(0.25)
    qtbot.keySequence(field, QKeySequence.StandardKey.Undo)
    assert model.project.network.nodes[hidden].dropout == 0.0
    assert model.undo_stack.count() == built + 1 and model.undo_stack.canRedo()
    window.act_redo.trigger()
    assert model.project.network.nodes[hidden].dropout == pytest.approx(0.25)

    # Open the deep sigmoid demo (discarding the sketch) and train a little.
    model.undo_stack.setClean()
    assert window.open(EXAMPLES / "deep_sigmoid_mlp.json")
    model.push(SetSettings(model.project, {"training.epochs": 3}))
    with qtbot.waitSignal(window.training.finished, timeout=240000):
        window.act_train.trigger()
    (vanishing,) = [c for c in window.findings.cards if c.finding["kind"] == "vanishing_gradients"]
    vanishing.fix_button.click()
    assert model.project.network.nodes["dense20"].activation == "relu"
    with qtbot.waitSignal(window.training.finished, timeout=240000) as done:
        window.act_train.trigger()
    assert done.args[0]["findings"] == []
    assert window.findings.earlier  # the first run's finding is still there, below

    # Compare the two runs, then export: only the run after the fix fits the network.
    window.runs.refresh()
    for row in range(2):
        window.runs.table.item(row, 0).setCheckState(Qt.Checked)
    window.runs.compare.click()
    assert window.plots.comparison is not None
    dialog = ExportDialog(model, window.runs_root, window)
    qtbot.addWidget(dialog)
    assert dialog.source.currentData()["id"] == window.runs.rows[0]["id"]  # the newest
    assert not dialog.source.model().item(2).isEnabled()  # the sigmoid run: another network
    dialog.onnx_path.setText(str(tmp_path / "fixed.onnx"))
    dialog.export()
    assert "matches torch" in dialog.result.text()
    session = ort.InferenceSession(str(tmp_path / "fixed.onnx"), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": np.zeros((2, 1, 8, 8), np.float32)})
    assert out.shape == (2, 10)
    model.undo_stack.setClean()
