"""The Evaluation panel end to end (issue 12): a run's confusion matrix, a cell's samples,
a sample's saliency map and top predictions; it fills after training without taking focus."""

from __future__ import annotations

import numpy as np
from test_window import EXAMPLES, window_with

from studio.projectfile import load_project
from studio.training.session import train
from ui.evaluation_panel import EvaluationPanel


def test_cell_then_samples_then_saliency(qtbot, tmp_path):
    outcome = train(
        load_project(EXAMPLES / "digits_cnn.json", ["training.epochs=1"]), runs_root=tmp_path
    )
    panel = EvaluationPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.show_run(outcome.run)
    qtbot.waitUntil(lambda: panel.report is not None, timeout=60000)
    report = panel.report
    matrix = np.array(report["confusion_matrix"])
    assert panel.matrix.rowCount() == len(report["classes"]) == 10
    assert panel.matrix.item(3, 3).text() == str(matrix[3, 3])
    assert panel.per_class.rowCount() == 10
    # A cell with samples in it: the diagonal of a class, then one of its samples.
    true = int(np.argmax(matrix.diagonal()))
    panel.matrix.cellClicked.emit(true, true)
    assert panel.cell_samples.count() == min(200, matrix[true, true])
    first = panel.cell_samples.item(0)
    confidences = [p[2] for p in report["predictions"] if p[0] == true and p[1] == true]
    assert first.text() == f"{max(confidences):.0%}"  # the surest first
    panel.cell_samples.itemClicked.emit(first)
    qtbot.waitUntil(
        lambda: panel.saliency.pixmap() is not None and not panel.saliency.pixmap().isNull(),
        timeout=30000,
    )
    assert "Grad-CAM" in panel.sample_text.text() and "digits sample #" in panel.sample_text.text()
    panel.normalized.setChecked(True)
    assert panel.matrix.item(true, true).text().endswith("%")


def test_a_finished_run_fills_the_panel_without_raising_it(qtbot):
    window = window_with(qtbot, "digits_mlp", "training.epochs=1")
    window.plots_dock.raise_()
    window.train()
    qtbot.waitUntil(lambda: not window.training.running, timeout=120000)
    qtbot.waitUntil(lambda: window.evaluation.report is not None, timeout=60000)
    assert window.evaluation.report["task"] == "classification"
    assert window.plots.isVisible()  # the live plots stayed in front
