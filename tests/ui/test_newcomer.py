"""Every rough edge a first-time user hit in the window (issue 10), each as it was met:
the action, then what the person should see."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QComboBox, QLineEdit, QWidget
from test_window import EXAMPLES, window_with

from studio.commands import SetNodeFields, SetSettings
from studio.projectfile import load_project
from studio.training.session import train
from ui.canvas.style import READABLE_ZOOM
from ui.export_dialog import INSTALLATION, ExportDialog
from ui.findings import FindingsPanel
from ui.window import runs_root


def dropout_field(qtbot, window) -> QLineEdit:
    """The inspector's dropout field of hidden1, with the keyboard's focus (as clicked)."""
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    window.model.select(["hidden1"])
    field = window.inspector.findChild(QLineEdit, "dropout")
    assert field is not None
    return field


def test_ctrl_z_in_a_committed_field_undoes_the_project_and_leaving_it_is_no_edit(qtbot):
    window = window_with(qtbot, "digits_mlp")
    field = dropout_field(qtbot, window)
    field.setFocus()
    field.selectAll()
    qtbot.keyClicks(field, "0.3")
    qtbot.keyClick(field, Qt.Key_Return)

    def dropout():
        return window.model.project.network.nodes["hidden1"].dropout

    assert dropout() == pytest.approx(0.3)
    field = dropout_field(qtbot, window)
    field.setFocus()
    qtbot.keySequence(field, QKeySequence.StandardKey.Undo)
    assert dropout() == pytest.approx(0.0)  # the project went back, not only the text
    qtbot.waitUntil(lambda: float(field.text() or 0) == 0.0, timeout=2000)
    field.editingFinished.emit()  # clicking away
    assert window.model.undo_stack.canRedo()  # leaving the field was not a new edit
    assert window.model.undo_stack.count() == 1


def test_typing_not_yet_committed_is_undone_inside_the_field(qtbot):
    window = window_with(qtbot, "digits_mlp")
    field = dropout_field(qtbot, window)
    field.setFocus()
    qtbot.keyClicks(field, "5")
    qtbot.keySequence(field, QKeySequence.StandardKey.Undo)
    assert window.model.undo_stack.count() == 0


def test_turning_on_augmentation_does_not_grow_the_window(qtbot):
    window = window_with(qtbot, "digits_cnn")
    window.resize(1366, 740)
    window.augment_dock.raise_()
    qtbot.wait(50)
    before = window.size()
    for name in window.model.project.data["augmentation"]:
        window.model.push(
            SetSettings(window.model.project, {f"data.augmentation.{name}.enabled": True})
        )
    QApplication.processEvents()
    qtbot.wait(50)
    assert window.size() == before


@pytest.fixture
def trained_then_changed(qtbot, tmp_path):
    """digits_mlp trained once; then the open project's network changed (as a fix does)."""
    window = window_with(qtbot, "digits_mlp", "training.epochs=1")
    train(
        load_project(EXAMPLES / "digits_mlp.json", ["training.epochs=1"]),
        runs_root=window.runs_root,
    )
    window.runs.refresh()
    return window


def test_export_offers_only_runs_that_fit_the_open_network(trained_then_changed, qtbot):
    window = trained_then_changed
    dialog = ExportDialog(window.model, window.runs_root, window)
    qtbot.addWidget(dialog)
    assert dialog.source.currentData() is not None  # the run fits: chosen by default
    window.model.push(
        SetNodeFields(window.model.project, {"hidden1": {"params": {"out_features": 96}}})
    )
    dialog = ExportDialog(window.model, window.runs_root, window)
    qtbot.addWidget(dialog)
    assert dialog.source.currentData() is None  # current weights, not a misfit run
    assert not dialog.source.model().item(1).isEnabled()
    assert "another network" in dialog.source.itemText(1)


def test_export_never_defaults_into_the_installation_and_remembers_the_folder(qtbot, tmp_path):
    window = window_with(qtbot, "digits_mlp")
    dialog = ExportDialog(window.model, window.runs_root, window)
    qtbot.addWidget(dialog)
    assert not Path(dialog.onnx_path.text()).resolve().is_relative_to(INSTALLATION)
    dialog.onnx_path.setText(str(tmp_path / "model.onnx"))
    dialog.export()
    again = ExportDialog(window.model, window.runs_root, window)
    qtbot.addWidget(again)
    assert Path(again.onnx_path.text()).parent == tmp_path


def test_an_export_error_does_not_squash_the_form(qtbot, tmp_path):
    window = window_with(qtbot, "digits_mlp")
    dialog = ExportDialog(window.model, window.runs_root, window)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.onnx_path.setText(str(tmp_path / ("missing-folder-" * 8) / "model.onnx"))
    dialog.export()
    qtbot.wait(50)
    assert dialog.result.text()
    assert dialog.onnx_path.height() >= dialog.onnx_path.minimumSizeHint().height()
    assert dialog.result.height() >= dialog.result.heightForWidth(dialog.result.width()) - 1


def test_a_new_project_starts_with_empty_plots(qtbot, mlp_events):
    window = window_with(qtbot, "digits_mlp")
    window.plots.feed_events(mlp_events)
    window.plots.set_comparison(mlp_events, "other")
    window.plots.refresh(force=True)
    window.new_project()
    assert len(window.plots.history.step) == 0 and window.plots.comparison is None
    assert len(window.plots.loss.train_raw.getData()[0] or []) == 0


def test_an_applied_fix_card_wraps_instead_of_scrolling_sideways(qtbot):
    model = window_with(qtbot, "deep_sigmoid_mlp").model
    panel = FindingsPanel(model)
    qtbot.addWidget(panel)
    panel.resize(330, 500)
    panel.show()
    panel.add(
        {
            "kind": "saturation",
            "severity": "warning",
            "step": 3,
            "title": "Saturated activations",
            "message": "Most units of dense19 sit where sigmoid is flat.",
            "remedy": "Use Xavier initialization.",
            "layers": ["dense19"],
            "fix": {"nodes": {"dense19": {"initializer": {"name": "xavier_normal"}}}},
        }
    )
    panel.cards[0].fix_button.click()
    assert "Ctrl+Z" in panel.cards[0].note.text()
    assert panel.cards[0].minimumSizeHint().width() <= panel.viewport().width()
    assert panel.horizontalScrollBarPolicy() == Qt.ScrollBarAlwaysOff


def test_texts_say_what_the_window_has(qtbot):
    window = window_with(qtbot, "digits_mlp")
    assert "Diagnose" not in window.findings.empty.text()
    window.check()
    message = window.statusBar().currentMessage()
    assert "(10,)" not in message and "output 10 values" in message
    window.plots.clear()
    assert window.plots.activations.empty.textItem.toPlainText() != "no activation layers"


def test_a_new_run_keeps_the_last_runs_findings_and_fixes_wait_for_the_stop(qtbot):
    window = window_with(qtbot, "digits_mlp")
    finding = {
        "type": "finding",
        "kind": "lr_too_low",
        "severity": "warning",
        "step": 3,
        "title": "Learning rate too low",
        "message": "",
        "remedy": "",
        "layers": [],
        "fix": {"nodes": {}, "training": {"optimizer.lr": 0.01}},
    }
    window.findings.set_training(True)
    window._on_events([finding])
    card = window.findings.cards[0]
    assert not card.fix_button.isEnabled()  # mid-run: the canvas must match what trains
    window.findings.set_training(False)
    assert card.fix_button.isEnabled()
    window.statusBar().showMessage("Training stopped: you stopped it.")
    window.findings.new_run()
    assert window.findings.earlier == [card] and window.findings.cards == []
    qtbot.waitUntil(card.isVisible, timeout=2000)
    assert "previous run" in window.findings.earlier_heading.text()


def test_a_finding_does_not_take_the_tab_the_person_works_in(qtbot):
    window = window_with(qtbot, "digits_mlp")
    window.tabifyDockWidget(window.inspector_dock, window.findings_dock)
    window.inspector_dock.raise_()
    qtbot.wait(20)
    window._on_events(
        [
            {
                "type": "finding",
                "kind": "overfitting",
                "severity": "warning",
                "step": 9,
                "title": "Overfitting",
                "message": "",
                "remedy": "",
                "layers": [],
            }
        ]
    )
    qtbot.wait(20)
    assert window.inspector.isVisible()
    assert window.findings_dock.windowTitle() == "Findings (1)"


def test_runs_live_in_one_studio_folder_and_can_be_renamed_and_deleted(
    qtbot, monkeypatch, tmp_path
):
    monkeypatch.delenv("STUDIO_RUNS")
    assert "Studio/Studio" not in runs_root().as_posix()
    window = window_with(qtbot, "digits_mlp", "training.epochs=1")
    assert str(window.runs_root) in window.runs.location.text()
    train(
        load_project(EXAMPLES / "digits_mlp.json", ["training.epochs=1"]),
        runs_root=window.runs_root,
    )
    window.runs.refresh()
    texts = [a.text() for a in window.runs.context_menu(0).actions()]
    assert {"Open folder", "Rename…", "Export…", "Use as backbone", "Delete…"} <= set(texts)
    window.runs.rename(0, "baseline")
    assert window.runs.table.item(0, 0).text() == "baseline"
    folder = Path(window.runs.rows[0]["path"])
    window.runs.delete(0, confirm=False)
    assert window.runs.table.rowCount() == 0 and not folder.exists()


def test_undo_labels_help_and_examples_speak_words(qtbot):
    window = window_with(qtbot, "digits_cnn")
    window.model.push(
        SetSettings(window.model.project, {"data.augmentation.horizontal_flip.enabled": True})
    )
    assert window.act_undo.text() == "&Undo Turn on horizontal flip"
    bar = window.findChild(type(window.addToolBar("x")), "main-toolbar")
    assert bar.widgetForAction(window.act_undo).toolButtonStyle() == Qt.ToolButtonIconOnly
    entries = {a.text(): a.toolTip() for a in window.examples_menu.actions()}
    description = json.loads((EXAMPLES / "digits_cnn.json").read_text())["description"]
    (entry,) = [t for t in entries if t.startswith("digits_cnn — ")]
    assert entries[entry] == description
    shortcuts = dict(window.shortcuts())
    assert shortcuts["Run → Train"] and shortcuts["Edit → Undo"]
    assert window.act_getting_started.shortcut() == QKeySequence("F1")


def test_flipping_digits_warns_that_it_changes_what_they_mean(qtbot):
    window = window_with(qtbot, "digits_cnn")
    panel = window.augment_panel
    assert panel.warning.isHidden()
    window.model.push(
        SetSettings(window.model.project, {"data.augmentation.horizontal_flip.enabled": True})
    )
    assert not panel.warning.isHidden() and "mirrored 2" in panel.warning.text()
    window.model.push(
        SetSettings(
            window.model.project,
            {
                "data.augmentation.rotation.enabled": True,
                "data.augmentation.rotation.degrees": 90.0,
            },
        )
    )
    assert "6 and 9" in panel.warning.text()
    window.model.undo_stack.undo()
    window.model.undo_stack.undo()
    assert panel.warning.isHidden()


def test_the_dark_theme_recolours_legends_and_toolbar_icons_at_once(qtbot, mlp_events):
    from ui.plots import apply_theme as apply_plot_theme
    from ui.plots import palette as plot_palette

    window = window_with(qtbot, "digits_mlp")
    window.plots.feed_events(mlp_events)
    window.plots.refresh(force=True)
    before = window.act_train.icon().pixmap(16, 16).toImage()
    window.act_dark.setChecked(True)
    try:
        window.toggle_theme()
        after = window.act_train.icon().pixmap(16, 16).toImage()
        assert after != before  # redrawn in the dark theme's colours, not at the next start
        colour = plot_palette().foreground.lower()
        labels = [label for _, label in window.plots.loss.legend.items]
        assert labels and all(colour in label.item.toHtml().lower() for label in labels)
    finally:
        window.act_dark.setChecked(False)
        window.toggle_theme()
        apply_plot_theme(False)


def test_a_person_chooses_which_plots_show_and_the_choice_is_kept(qtbot, mlp_events):
    window = window_with(qtbot, "digits_mlp")
    window.plot_actions["histograms"].setChecked(False)
    window.plot_actions["activations"].setChecked(False)
    assert window.plots.histograms.isHidden() and not window.plots.histograms.on_screen()
    column = window.plots.histograms.parentWidget()
    assert column.isHidden()  # both of its panels hidden: the column gives its width away
    window.plots.feed_events(mlp_events)
    window.plots.refresh(force=True)
    again = window_with(qtbot, "digits_mlp")
    assert not again.plot_actions["histograms"].isChecked()
    assert again.plots.histograms.isHidden() and not again.plots.loss.isHidden()
    again.plot_actions["histograms"].setChecked(True)
    assert not again.plots.histograms.isHidden()


def test_the_eta_counts_from_the_first_steps_not_from_the_press(qtbot, monkeypatch):
    import ui.window as window_module

    window = window_with(qtbot, "digits_mlp")
    clock = [100.0]
    monkeypatch.setattr(window_module.time, "monotonic", lambda: clock[0])
    window._on_events([{"type": "start", "total_steps": 1000, "first_step": 0, "device": "cpu"}])
    clock[0] += 30.0  # building the model and the first step's one-off costs
    steps = {"type": "steps", "epoch": 0, "batches_per_epoch": 100, "loss": [1.0], "accuracy": None}
    window._on_events([{**steps, "step": [0]}])
    clock[0] += 10.0  # then 100 steps in 10 s: 900 left take 90 s
    window._on_events([{**steps, "step": [100]}])
    assert window.eta.text() == "ETA 1 min 30 s"


def _shows_whole_and_readable(canvas) -> None:
    """Every node inside the view, and its text at 9 px or more on screen: the full face
    at a readable zoom, else the overview face naming at least the node's id."""
    from PySide6.QtGui import QFontInfo

    from ui.canvas import style
    from ui.canvas.node_item import overview_lines

    zoom = canvas.transform().m11()
    visible = canvas.mapToScene(canvas.viewport().rect()).boundingRect()
    smallest = QFontInfo(style.current().small_font).pixelSize()
    for nid, item in canvas.graph_scene.nodes.items():
        assert visible.contains(item.sceneBoundingRect()), nid
        if zoom >= style.READABLE_ZOOM:
            assert smallest * zoom >= 9, nid
        else:
            rect = item.rect()
            lines = overview_lines(item.face, None, rect.width() * zoom, rect.height() * zoom)
            assert nid in [text for text, _ in lines], nid
            assert style.OVERVIEW_TEXT_PX >= 9


def test_a_deep_network_is_shown_whole_and_readable_at_1366x768(qtbot):
    # The 23 layers in a canvas ~250 px tall: at a readable zoom for the full faces only
    # six of them showed; the overview faces show all, and each says its id.
    window = window_with(qtbot, "deep_sigmoid_mlp")
    window.resize(1366, 768)
    qtbot.wait(50)  # the window sizes its docks after the show
    canvas = window.canvas
    assert canvas.transform().m11() < READABLE_ZOOM  # the docks left too little room
    _shows_whole_and_readable(canvas)  # on open, through the window's resizes: no F
    canvas.scale(2.5, 2.5)  # the person zooms in: a resize keeps their view
    zoomed = canvas.transform().m11()
    window.resize(1300, 760)
    qtbot.wait(50)
    assert canvas.transform().m11() == pytest.approx(zoomed)
    canvas.setFocus()
    QTest.keyClick(canvas, Qt.Key_F)
    _shows_whole_and_readable(canvas)


def test_the_inspector_shows_only_the_normalization_fields_that_apply(qtbot):
    window = window_with(qtbot, "digits_mlp")
    window.model.select(["hidden1"])

    def shown(name):
        form_layout = window.inspector.findChild(QComboBox, "kind").parentWidget().layout()
        return form_layout.isRowVisible(window.inspector.findChild(QWidget, name))

    assert not shown("groups") and not shown("position")  # normalization "none"
    kind = window.inspector.findChild(QComboBox, "kind")
    kind.activated.emit(kind.findText("group"))
    assert window.model.project.network.nodes["hidden1"].normalization["kind"] == "group"
    qtbot.waitUntil(lambda: shown("groups") and shown("position"), timeout=2000)
    kind = window.inspector.findChild(QComboBox, "kind")
    kind.activated.emit(kind.findText("batch"))
    qtbot.waitUntil(lambda: not shown("groups") and shown("position"), timeout=2000)


def test_the_end_of_training_sentence_fits_the_status_bar_at_1366(qtbot):
    window = window_with(qtbot, "digits_mlp")
    window.resize(1366, 740)
    window.eta.setText("ETA 12 min 30 s")
    window._on_finished(
        {
            "status": "completed",
            "reason": "finished 20 epochs",
            "seconds": 754.0,
            "best": {"metrics": {"val_accuracy": 0.9444}},
            "findings": [{}, {}, {}],
        }
    )
    QApplication.processEvents()
    bar = window.statusBar()
    text = bar.currentMessage()
    assert "94.4%" in text
    left_of_widgets = min(
        w.mapTo(bar, w.rect().topLeft()).x()
        for w in (window.eta, window.progress, window.validity)
        if w.isVisible() or w.sizePolicy().retainSizeWhenHidden()
    )
    assert bar.fontMetrics().horizontalAdvance(text) < left_of_widgets - 8
    assert bar.toolTip() == text  # the whole sentence, whatever the width


def test_auto_layout_wraps_a_deep_network_so_it_fits_whole_and_readable(qtbot):
    from PySide6.QtGui import QFontInfo

    from studio.layout import auto_layout
    from ui.canvas import style
    from ui.window import MainWindow

    path = EXAMPLES / "deep_sigmoid_mlp.json"
    project = load_project(path)
    project.view.positions = auto_layout(project.network)  # one column of 23 nodes
    window = MainWindow(project, path)
    qtbot.addWidget(window, before_close_func=lambda w: w.model.undo_stack.setClean())
    window.resize(1920, 1080)
    window.show()
    qtbot.waitUntil(lambda: window.canvas.viewport().height() > 450, timeout=3000)
    window.canvas.auto_layout()
    xs = {round(p[0]) for p in window.model.project.view.positions.values()}
    assert len(xs) > 1  # wrapped into columns
    seen = window.canvas.mapToScene(window.canvas.viewport().rect()).boundingRect()
    for item in window.canvas._scene.nodes.values():
        assert seen.contains(item.sceneBoundingRect()), item.node.id
    body = QFontInfo(style.current().body_font).pixelSize()
    assert body * window.canvas.transform().m11() >= 9
    window.model.undo_stack.undo()  # one undo step back to the single column
    assert len({round(p[0]) for p in window.model.project.view.positions.values()}) == 1


def test_a_network_too_big_for_memory_is_said_before_training_and_asked_about(qtbot, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    import studio.free_memory

    monkeypatch.setattr(studio.free_memory, "_ram_available", lambda: 100_000)  # 100 KB free
    window = window_with(qtbot, "digits_mlp")
    window.model.push(SetSettings(window.model.project, {"training.batch_size": 500}))
    assert window.validity.text() == "✘ Too big for memory"
    assert "hidden1" in window.validity.toolTip() and "will not fit" in window.validity.toolTip()
    asked = []
    monkeypatch.setattr(
        QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.No
    )
    window.train()
    assert asked and "will not fit" in asked[0] and not window.training.running


def test_no_stray_copy_of_a_dock_tab_bar_is_drawn_over_other_docks(qtbot):
    from PySide6.QtWidgets import QTabBar

    window = window_with(qtbot, "digits_mlp")
    window.resize(1366, 740)
    qtbot.wait(50)
    window.resize(1600, 1000)
    qtbot.wait(50)
    shown = [
        tuple(bar.tabText(i) for i in range(bar.count()))
        for bar in window.findChildren(QTabBar)
        if bar.parent() is window and bar.isVisible()
    ]
    assert len(shown) == len(set(shown)), shown  # Qt left one at the first layout's place
