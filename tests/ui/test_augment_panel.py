"""The Augmentation panel: its edits are undoable settings, its preview redraws when they
change, New draws draws anew, and non-image data gets a sentence instead of a grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from studio.data.augmentations import augmentation_catalog
from studio.projectfile import load_project
from ui.augment_panel import DRAWS, ROWS, AugmentPanel
from ui.document import DocumentModel
from ui.window import MainWindow

EXAMPLES = Path(__file__).resolve().parents[2] / "resources" / "examples"


def shown_panel(qtbot, name: str, *overrides: str) -> AugmentPanel:
    model = DocumentModel(load_project(EXAMPLES / f"{name}.json", list(overrides)))
    panel = AugmentPanel(model)
    qtbot.addWidget(panel)
    panel.show()
    return panel


def next_preview(qtbot, panel: AugmentPanel, previous) -> np.ndarray:
    qtbot.waitUntil(
        lambda: panel.grid_array is not None and panel.grid_array is not previous, timeout=30000
    )
    panel.wait()
    return panel.grid_array


def pixels(panel: AugmentPanel) -> list[bytes]:
    return [bytes(image.constBits()) for image in panel.tile_images()]


def test_toggling_a_transform_is_undoable_and_redraws_the_preview(qtbot):
    panel = shown_panel(qtbot, "digits_cnn")
    model = panel.model
    plain = next_preview(qtbot, panel, None)
    assert plain.shape == (ROWS, 1 + DRAWS, 1, 8, 8)
    assert np.array_equal(plain[:, 1], plain[:, 0]), "nothing on: the draws are the originals"
    assert "No augmentation" in panel.status.text()
    before = pixels(panel)
    assert len(before) == ROWS * (1 + DRAWS)

    panel.forms["rotation"].widgets["enabled"].setChecked(True)
    assert model.project.data["augmentation"]["rotation"]["enabled"] is True
    rotated = next_preview(qtbot, panel, plain)
    assert np.array_equal(rotated[:, 0], plain[:, 0]), "the originals stay"
    assert not np.array_equal(rotated[:, 1:], plain[:, 1:])
    after = pixels(panel)
    columns = 1 + DRAWS
    assert [after[i] for i in range(0, len(after), columns)] == [
        before[i] for i in range(0, len(before), columns)
    ]
    assert after != before, "the tiles on screen changed"

    model.undo_stack.undo()
    assert model.project.data["augmentation"]["rotation"]["enabled"] is False
    assert not panel.forms["rotation"].widgets["enabled"].isChecked()
    back = next_preview(qtbot, panel, rotated)
    assert np.array_equal(back, plain)


def test_a_typed_value_becomes_one_setting_and_new_draws_differ(qtbot):
    panel = shown_panel(qtbot, "digits_cnn", "data.augmentation.affine.enabled=true")
    first = next_preview(qtbot, panel, None)
    degrees = panel.forms["affine"].widgets["degrees"]
    degrees.setText("30")
    degrees.editingFinished.emit()
    assert panel.model.project.data["augmentation"]["affine"]["degrees"] == 30.0
    second = next_preview(qtbot, panel, first)
    panel.new_draws.click()
    third = next_preview(qtbot, panel, second)
    assert np.array_equal(third[:, 0], second[:, 0]) and not np.array_equal(third, second)
    degrees.setText("500")  # above the 180 allowed
    degrees.editingFinished.emit()
    assert "degrees" in panel.message.text()
    assert panel.model.project.data["augmentation"]["affine"]["degrees"] == 30.0


def test_non_image_data_gets_a_sentence_instead_of_a_grid(qtbot):
    panel = shown_panel(qtbot, "digits_lstm")
    qtbot.waitUntil(lambda: "not an image" in panel.status.text(), timeout=5000)
    assert panel.grid_array is None and panel.tile_images() == []
    assert "mixup" in panel.status.text()


def test_the_window_has_an_augmentation_dock_apart_from_the_data_fields(qtbot):
    window = MainWindow(load_project(EXAMPLES / "digits_cnn.json"))
    qtbot.addWidget(window)
    window.show()
    assert window.augment_dock.windowTitle() == "Augmentation"
    assert "augmentation" not in window.data_panel.forms
    assert window.augment_panel.grid_array is None, "a hidden panel draws nothing"
    window.augment_dock.raise_()
    qtbot.waitUntil(lambda: window.augment_panel.grid_array is not None, timeout=30000)
    window.augment_panel.wait()


def test_the_panel_shows_every_registered_augmentation_plugins_included(qtbot):
    panel = shown_panel(qtbot, "digits_cnn")
    assert list(panel.forms) == [
        t.name for types in augmentation_catalog().by_group().values() for t in types
    ]
    invert = panel.forms["invert"]  # from the example plugin (plugins/studio_swish)
    assert set(invert.widgets) == {"enabled", "p"}
    plain = next_preview(qtbot, panel, None)
    invert.widgets["enabled"].setChecked(True)
    assert panel.model.project.data["augmentation"]["invert"]["enabled"] is True
    drawn = next_preview(qtbot, panel, plain)
    assert not np.array_equal(drawn[:, 1:], plain[:, 1:]), "the plugin's transform is drawn"
