"""The live training plots (ui/plots): buffers, decimation, and every plot fed with real
trainer events (a 1-epoch run of the digits MLP) or with hand-made edge cases."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import math  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QPointF, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from studio.training.series import replay  # noqa: E402
from ui.plots import (  # noqa: E402
    GradientNormPlot,
    HistogramPlot,
    LossPlot,
    RunHistory,
    TrainingPlots,
    apply_theme,
    palette,
)
from ui.plots.buffers import LayerBuffer, SeriesBuffer  # noqa: E402
from ui.plots.decimate import Pyramid, envelope  # noqa: E402
from ui.plots.layer_lines import FADED, HIGHLIGHT_WIDTH  # noqa: E402

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parents[2]


# -- fixtures (mlp_events: tests/ui/conftest.py) -------------------------------------------
def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


def cat(events: list[dict], key: str) -> np.ndarray:
    return np.concatenate([np.asarray(e[key]) for e in events])


@pytest.fixture
def plots(qtbot):
    widget = TrainingPlots()
    qtbot.addWidget(widget)
    widget.resize(1500, 900)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def fed(plots: TrainingPlots, events: list[dict]) -> TrainingPlots:
    plots.feed_events(events)
    plots.refresh(force=True)
    # One paint settles auto-range, which linked step axes take from the loss plot.
    plots.grab()
    QApplication.processEvents()
    return plots


def data(item):
    """What a PlotDataItem was given (getData() would be its on-screen subset)."""
    return item.getOriginalDataset()


def click_view(qtbot, plot_widget, plot_item, x: float, y: float) -> None:
    """A real left click on the pixel showing view coordinates (x, y) of a plot."""
    plot_widget.grab()  # paint once: auto-range settles the view as a user would see it
    qtbot.wait(10)
    scene_pos = plot_item.getViewBox().mapViewToScene(QPointF(x, y))
    pos = plot_widget.mapFromScene(scene_pos)
    qtbot.mouseClick(plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=pos)


# -- buffers and decimation ----------------------------------------------------------------
def test_series_buffer_grows_by_doubling_and_keeps_values():
    buf = SeriesBuffer(capacity=4)
    chunks = [np.arange(3), np.arange(3, 4), np.arange(4, 20), np.zeros(0)]
    versions = []
    for chunk in chunks:
        buf.append(chunk)
        versions.append(buf.version)
    assert np.array_equal(buf.data, np.arange(20))
    assert len(buf._data) == 32  # 4 → 8 → 16 → 32
    assert versions == [1, 2, 3, 3]  # an empty append is not a change
    assert buf.all_finite
    buf.append([np.nan])
    assert not buf.all_finite and len(buf) == 21
    buf.clear()
    assert len(buf) == 0 and buf.all_finite


def test_layer_buffer_stores_layers_by_steps():
    buf = LayerBuffer(3, capacity=2)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)  # 2 steps × 3 layers, as events send
    b = np.arange(6, 15, dtype=np.float32).reshape(3, 3)
    buf.append(a)
    buf.append(b)
    assert buf.data.shape == (3, 5)
    assert np.array_equal(buf.data, np.vstack([a, b]).T)
    with pytest.raises(ValueError):
        buf.append(np.zeros((1, 4)))


def test_pyramid_windows_are_exact_min_max_of_their_blocks():
    rng = np.random.default_rng(3)
    data = rng.normal(size=(30_000, 4)).astype(np.float32)
    data[1000:1300, 1] = np.nan  # a zero norm stored as NaN must not poison the blocks
    base = LayerBuffer(4)
    pyramid = Pyramid(base)
    i = 0
    while i < len(data):  # arbitrary chunk sizes, with updates in between or not
        k = int(rng.integers(1, 700))
        base.append(data[i : i + k])
        if rng.random() < 0.5:
            pyramid.update()
        i += k
    steps = np.arange(len(data)) * 2.0
    for i0, i1, columns in [
        (0, 30_000, 500),
        (777, 12_345, 64),
        (29_990, 30_000, 4),
        (0, 300, 1000),
    ]:
        w = pyramid.window(i0, i1, columns, steps)
        assert 0 < len(w) <= columns
        assert w.start[0] <= i0 and w.start[-1] + w.block >= i1
        assert np.array_equal(w.x, steps[w.start])
        for j in range(len(w)):
            block = data[w.start[j] : w.start[j] + w.block].T
            with _quiet():
                assert np.allclose(np.nanmin(block, axis=1), w.low[:, j], equal_nan=True)
                assert np.allclose(np.nanmax(block, axis=1), w.high[:, j], equal_nan=True)
    x, y = envelope(pyramid.window(0, 30_000, 100, steps))
    assert len(x) == y.shape[1] and np.all(np.diff(x) >= 0)


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


# -- real events into the plots ------------------------------------------------------------
def test_losses_and_accuracy_of_a_real_run_reach_the_curves(plots, mlp_events):
    fed(plots, mlp_events)
    steps = of_type(mlp_events, "steps")
    x, y = data(plots.loss.train_raw)
    assert np.array_equal(x, cat(steps, "step"))
    assert np.allclose(y, cat(steps, "loss"))
    assert len(data(plots.loss.train_smooth)[1]) == len(x)
    epoch = of_type(mlp_events, "epoch")[0]
    vx, vy = data(plots.loss.validation)
    assert list(vx) == [epoch["step"]] and vy[0] == pytest.approx(epoch["val_loss"])
    assert not plots.loss.widgets[1].isHidden()  # classification: accuracy is shown
    ax, ay = data(plots.loss.accuracy_val)
    assert list(ax) == [epoch["step"]] and ay[0] == pytest.approx(epoch["val_accuracy"])
    lx, ly = data(plots.lr.lr)
    assert np.allclose(ly, cat(steps, "lr"))


def test_gradient_plot_has_one_log_scale_line_per_layer(plots, mlp_events):
    fed(plots, mlp_events)
    start = mlp_events[0]
    grads = of_type(mlp_events, "gradients")
    norms, gsteps = cat(grads, "norms"), cat(grads, "step")
    g = plots.gradients
    assert g.lines.count == len(start["layers"]) == g.lines.item.count
    assert g.lines_plot.getAxis("left").logMode  # labelled as powers of ten
    for i, name in enumerate(start["layers"]):
        x, y = g.lines.data(name)
        assert np.array_equal(x, gsteps)  # 45 steps: drawn undecimated
        assert np.allclose(10.0**y, norms[:, i], rtol=1e-5)


def test_heatmap_is_layers_by_steps_of_log_norms(plots, mlp_events):
    fed(plots, mlp_events)
    norms = cat(of_type(mlp_events, "gradients"), "norms")
    image = plots.gradients.heatmap()
    assert image.shape == (len(mlp_events[0]["layers"]), len(norms))
    assert np.allclose(image, np.log10(norms).T, atol=1e-5)
    rect = plots.gradients.image.mapRectToParent(plots.gradients.image.boundingRect())
    assert rect.left() == pytest.approx(0.0) and rect.height() == pytest.approx(image.shape[0])


def test_heatmap_columns_follow_steps_when_probes_are_unevenly_spaced(plots):
    # Gradients every step for 100 steps, then every 10th (a time budget stretching the
    # probe): the change at step 100 must sit at the middle of the x axis, not at 100/110.
    steps = np.concatenate([np.arange(100), np.arange(100, 200, 10)])
    norms = np.where(steps < 100, 1e-3, 1e1)[:, None]
    plots.feed({"type": "start", "layers": ["dense"], "total_steps": 200})
    plots.feed({"type": "steps", "step": steps, "loss": np.ones(len(steps)), "lr": 0.01})
    plots.feed({"type": "gradients", "step": steps, "norms": norms})
    plots.refresh(force=True)
    image = plots.gradients.heatmap()[0]
    rect = plots.gradients.image.mapRectToParent(plots.gradients.image.boundingRect())
    centres = rect.left() + (np.arange(len(image)) + 0.5) * rect.width() / len(image)
    assert np.all(image[centres < 99] == pytest.approx(-3.0))
    assert np.all(image[centres > 101] == pytest.approx(1.0))


def test_clicking_a_heatmap_row_emits_its_layer(plots, mlp_events, qtbot):
    fed(plots, mlp_events)
    layers = mlp_events[0]["layers"]
    g = plots.gradients
    assert g.layer_at(1.5) == layers[1] and g.layer_at(-0.2) is None
    with (
        qtbot.waitSignal(g.layer_clicked, timeout=2000) as direct,
        qtbot.waitSignal(plots.layer_clicked, timeout=2000) as outer,
    ):
        click_view(qtbot, g.widgets[1], g.heat_plot, 20.0, 1.5)  # row 1, step 20
    assert direct.args == [layers[1]] and outer.args == [layers[1]]
    # The click selects the layer everywhere: the line is emphasised, the others fade.
    pens = g.lines.item.pens
    assert pens[1].widthF() == HIGHLIGHT_WIDTH
    assert pens[0].color().alphaF() == pytest.approx(FADED, abs=0.01)
    assert plots.histograms.current_layer() == layers[1]
    assert plots.weights.lines.highlighted == layers[1]


def test_clicking_near_a_gradient_line_picks_that_layer(plots, mlp_events, qtbot):
    fed(plots, mlp_events)
    g = plots.gradients
    layers = mlp_events[0]["layers"]
    x, y = g.lines.data(layers[2])
    target = int(np.argmax(np.abs(y - g.lines.data(layers[1])[1])))  # where 2 is apart
    with qtbot.waitSignal(g.layer_clicked, timeout=2000) as clicked:
        click_view(qtbot, g.widgets[0], g.lines_plot, float(x[target]), float(y[target]))
    assert clicked.args == [layers[2]]


def test_hover_names_layer_step_and_value(plots, mlp_events):
    fed(plots, mlp_events)
    g = plots.gradients
    layers = mlp_events[0]["layers"]
    norms = cat(of_type(mlp_events, "gradients"), "norms")
    g._hover_heat(g.heat_plot.getViewBox().mapViewToScene(QPointF(10.2, 2.5)))
    text = g.heat_hover.textItem.toPlainText()
    assert g.heat_hover.isVisible() and layers[2] in text and "step 10" in text
    x, y = g.lines.data(layers[0])
    g._hover_lines(g.lines_plot.getViewBox().mapViewToScene(QPointF(x[5], y[5])))
    text = g.hover.textItem.toPlainText()
    assert layers[0] in text and "step 5" in text
    assert f"{norms[5, 0]:.3g}" in text or "·10" in text  # the norm itself, not its log
    g._hover_lines(QPointF(-1000, -1000))  # outside the plot: the label goes away
    assert not g.hover.isVisible()


def test_select_layer_highlights_without_emitting(plots, mlp_events, qtbot):
    fed(plots, mlp_events)
    name = mlp_events[0]["layers"][0]
    with qtbot.assertNotEmitted(plots.layer_clicked):
        plots.select_layer(name)
        plots.refresh(force=True)
    assert plots.gradients.lines.highlighted == name
    assert plots.gradients.row_lines[0].isVisible() and plots.gradients.row_lines[0].value() == 0
    plots.select_layer(None)
    assert plots.gradients.lines.highlighted is None
    assert not plots.gradients.row_lines[0].isVisible()


def test_histogram_switches_layer(plots, mlp_events):
    fed(plots, mlp_events)
    hist = of_type(mlp_events, "histograms")[-1]
    h = plots.histograms
    for name in mlp_events[0]["layers"]:
        h.set_layer(name)
        counts, edges = hist["weights"][name]
        x, y = data(h.latest["weights"])
        assert np.allclose(y, counts) and np.allclose(x, edges)
        gx, gy = data(h.latest["gradients"])
        assert np.allclose(gy, hist["gradients"][name][0])
        assert h.picker.currentText() == name
    assert [h.picker.itemText(i) for i in range(h.picker.count())] == mlp_events[0]["layers"]


def test_histogram_keeps_history_per_layer_and_fades_earlier_ones(qtbot):
    plot = HistogramPlot()
    qtbot.addWidget(plot)
    plot.feed({"type": "start", "layers": ["a", "b"]})
    edges = np.linspace(-1, 1, 5)
    for step in range(0, 500, 50):
        plot.feed(
            {
                "type": "histograms",
                "step": step,
                "weights": {
                    "a": (np.full(4, step), edges * (1 + step / 100)),
                    "b": (np.ones(4), edges),
                },
                "gradients": {},
            }
        )
    plot.set_layer("a")
    steps = plot.shown_steps["weights"]
    assert steps[-1] == 450 and steps[0] == 0 and len(steps) == 7  # newest + 6 earlier
    assert np.allclose(data(plot.latest["weights"])[1], 450)
    alphas = [c.opts["pen"].color().alphaF() for c in plot.earlier["weights"]]
    assert alphas == sorted(alphas) and alphas[0] < alphas[-1]  # older is fainter
    assert data(plot.latest["gradients"])[0] is None  # no gradient histograms: empty


def test_a_second_start_clears_everything(plots, mlp_events):
    fed(plots, mlp_events)
    plots.select_layer(mlp_events[0]["layers"][1])
    fed(plots, [{"type": "start", "layers": ["x1", "x2"], "total_steps": 10}])
    assert data(plots.loss.train_raw)[0] is None
    assert data(plots.loss.validation)[0] is None
    assert plots.gradients.lines.count == 2 and len(plots.gradients.lines.item.x) == 0
    assert plots.gradients.lines.highlighted is None
    assert plots.histograms.picker.count() == 0
    assert data(plots.histograms.latest["weights"])[0] is None
    # New data after the restart is the only data shown.
    fed(
        plots,
        [
            {
                "type": "gradients",
                "step": np.array([0, 1]),
                "norms": np.array([[1.0, 0.1], [1.0, 0.01]]),
            }
        ],
    )
    assert plots.gradients.heatmap().shape == (2, 2)
    assert np.allclose(plots.gradients.lines.data("x2")[1], [-1.0, -2.0])


def test_comparison_overlay_draws_the_other_run_and_can_be_removed(plots, mlp_events):
    fed(plots, mlp_events)
    other = [dict(e) for e in mlp_events]
    for e in other:
        if e["type"] == "steps":
            e["loss"] = np.asarray(e["loss"]) * 2
    plots.set_comparison(other, "baseline")
    plots.refresh(force=True)
    reference = RunHistory.from_events(other)
    x, y = data(plots.loss.other_loss)
    assert np.array_equal(x, reference.step.data) and np.allclose(y, reference.loss_smooth.data)
    assert plots.loss.other_loss.opts["pen"].style() == Qt.PenStyle.DashLine
    labels = [label.text for _, label in plots.loss.legend.items]
    assert "baseline" in labels and "baseline (val.)" in labels
    comp = plots.gradients.comparison_lines
    assert comp.count == len(mlp_events[0]["layers"])
    assert all(p.style() == Qt.PenStyle.DashLine for p in comp.item.pens)
    assert len(comp.item.x) > 0
    plots.set_comparison(None)
    plots.refresh(force=True)
    assert data(plots.loss.other_loss)[0] is None
    assert comp.count == 0
    assert "baseline" not in [label.text for _, label in plots.loss.legend.items]


def test_comparison_from_saved_series_matches_layers_by_name(plots, mlp_events):
    fed(plots, mlp_events)
    layers = mlp_events[0]["layers"]
    series = {  # the format Run.series() returns
        "layers": np.array([layers[2], "not_here", layers[0]]),
        "step": np.arange(5),
        "loss": np.linspace(2, 1, 5),
        "grad_step": np.arange(5),
        "grad_norms": np.tile([1e-1, 1.0, 1e-3], (5, 1)),
    }
    plots.set_comparison(replay(series), "saved")  # the saved arrays as their events
    plots.refresh(force=True)
    comp = plots.gradients.comparison_lines
    assert comp.names == [layers[0], layers[2]]  # the current run's order, shared layers only
    assert np.allclose(comp.item.y[0], -3.0) and np.allclose(comp.item.y[1], -1.0)


def test_regression_run_without_validation(plots):
    events = [
        {
            "type": "start",
            "layers": ["fc"],
            "total_steps": 6,
            "activation_layers": [],
            "activation_kinds": [],
        },
        {
            "type": "steps",
            "step": np.arange(3),
            "loss": np.array([3.0, 2.0, 1.5]),
            "accuracy": None,
            "lr": np.full(3, 0.1),
            "epoch": 0,
        },
        {"type": "epoch", "epoch": 1, "step": 3, "train_loss": 2.1, "lr": 0.1},
        {
            "type": "steps",
            "step": np.arange(3, 6),
            "loss": np.array([1.2, 1.1, 1.0]),
            "accuracy": None,
            "lr": np.full(3, 0.1),
            "epoch": 1,
        },
    ]
    fed(plots, events)
    assert plots.loss.widgets[1].isHidden()  # no accuracy: no accuracy plot
    assert data(plots.loss.validation)[0] is None  # no validation: no markers
    assert len(data(plots.loss.train_raw)[0]) == 6
    assert plots.activations.empty.isVisible()


def test_events_in_any_amounts_give_the_same_curves(qtbot, mlp_events):
    whole = LossPlot()
    qtbot.addWidget(whole)
    whole.history.feed_many(mlp_events)
    whole.refresh()
    split = LossPlot()
    qtbot.addWidget(split)
    for e in mlp_events:
        if e["type"] == "steps":
            for i in range(len(e["step"])):  # one step per event
                one = {
                    **e,
                    **{k: np.asarray(e[k])[i : i + 1] for k in ("step", "loss", "accuracy", "lr")},
                }
                split.feed(one)
                split.refresh()
        else:
            split.feed(e)
    split.refresh()
    for a, b in ((whole.train_raw, split.train_raw), (whole.train_smooth, split.train_smooth)):
        assert np.allclose(data(a)[1], data(b)[1])


def test_divergence_and_phase_marks(plots, mlp_events):
    events = [dict(e) for e in mlp_events if e["type"] != "end"]
    events.append(
        {
            "type": "steps",
            "step": np.array([45, 46]),
            "loss": np.array([np.inf, np.nan]),
            "accuracy": np.zeros(2),
            "lr": np.full(2, 1e-3),
            "epoch": 1,
        }
    )
    events.append({"type": "diverged", "step": 45, "loss": float("inf"), "reason": "boom"})
    fed(plots, events)
    plots.mark(20, "fine-tune")
    plots.refresh(force=True)
    lines = [line for _, line in plots.loss.marks.lines if _ is plots.loss.loss_plot]
    assert sorted(line.value() for line in lines) == [20.0, 45.0]
    texts = {line.label.format for line in lines if line.label is not None}
    assert texts == {"diverged", "fine-tune"}
    x, y = data(plots.loss.train_raw)
    assert len(x) == 47 and np.isnan(y[-2:]).all()  # drawn as a gap, not an infinite axis
    assert np.isfinite(data(plots.loss.train_smooth)[1][-1])
    assert any(line.value() == 45.0 for _, line in plots.gradients.marks.lines)


def test_activation_and_update_ratio_plots(plots, mlp_events):
    fed(plots, mlp_events)
    acts = of_type(mlp_events, "activations")
    a = plots.activations
    assert a.fraction_plot._studio["title"] == "Dead ReLU units"
    dead = cat(acts, "saturated_or_dead")
    for i, name in enumerate(acts[0]["layers"]):
        # A ReLU layer has no dead fraction until its first window of samples is full.
        assert np.allclose(a.fractions.data(name)[1], dead[:, i], equal_nan=True)
        assert np.allclose(a.means.data(name)[1], cat(acts, "mean")[:, i])
    weights = of_type(mlp_events, "weights")
    ratio = cat(weights, "update_ratio")
    w = plots.weights
    for i, name in enumerate(mlp_events[0]["layers"]):
        assert np.allclose(10.0 ** w.lines.data(name)[1], ratio[:, i], rtol=1e-5)
    assert w.rule.value() == pytest.approx(math.log10(1e-3))


def test_refresh_redraws_only_when_something_changed(qtbot, mlp_events):
    plot = GradientNormPlot()
    qtbot.addWidget(plot)
    plot.resize(800, 500)
    plot.show()
    plot.history.feed_many(mlp_events[:3])
    assert plot.refresh() is True
    assert plot.refresh() is False  # nothing new: nothing drawn
    plot.feed(
        {
            "type": "steps",
            "step": np.array([99]),
            "loss": np.array([1.0]),
            "accuracy": None,
            "lr": np.array([0.1]),
        }
    )
    assert plot.refresh() is False  # not gradient data: this plot is unaffected
    plot.feed({"type": "gradients", "step": np.array([99]), "norms": np.ones((1, 3))})
    assert plot.refresh() is True


def test_long_runs_are_decimated_to_the_screen(qtbot):
    plot = GradientNormPlot()
    qtbot.addWidget(plot)
    plot.resize(900, 600)
    plot.show()
    qtbot.waitExposed(plot)
    layers, steps = 40, 50_000
    rng = np.random.default_rng(0)
    norms = 10.0 ** rng.normal(-3, 0.3, size=(steps, layers))
    norms[31_234, 7] = 1e4  # one spike must survive decimation
    plot.feed({"type": "start", "layers": [f"l{i}" for i in range(layers)]})
    for i in range(0, steps, 5000):
        plot.feed(
            {"type": "gradients", "step": np.arange(i, i + 5000), "norms": norms[i : i + 5000]}
        )
    plot.refresh(force=True)
    x, y = plot.lines.data("l7")
    width = int(plot.lines_plot.getViewBox().width())
    assert len(x) <= 2 * width  # at most a min/max pair per pixel column
    assert y.max() == pytest.approx(4.0)  # the peak is kept
    assert plot.heatmap().shape[0] == layers and plot.heatmap().shape[1] <= width
    # Zooming in re-decimates the visible part at full resolution.
    plot.lines_plot.setXRange(31_200, 31_260, padding=0)
    plot.refresh(force=True)
    x, y = plot.lines.data("l7")
    assert x[0] <= 31_200 and x[-1] >= 31_259 and len(x) < 100
    assert np.array_equal(np.diff(x), np.ones(len(x) - 1))  # raw samples, one per step


def test_zero_norms_leave_gaps(qtbot):
    plot = GradientNormPlot()
    qtbot.addWidget(plot)
    plot.feed({"type": "start", "layers": ["a", "b"]})
    plot.feed(
        {
            "type": "gradients",
            "step": np.arange(3),
            "norms": np.array([[1.0, 0.0], [0.1, 0.0], [0.01, 1.0]]),
        }
    )
    plot.refresh(force=True)
    assert np.isnan(plot.lines.data("b")[1][:2]).all()
    assert not plot.lines.item.all_finite
    assert plot.grab().width() > 0  # paints (the NaN path) without raising


def test_theme_switches_backgrounds(plots, mlp_events):
    fed(plots, mlp_events)
    try:
        apply_theme(True)
        assert palette().dark
        colour = plots.gradients.widgets[0].backgroundBrush().color().name()
        assert colour == palette().background
        apply_theme(False)
        assert plots.loss.widgets[0].backgroundBrush().color().name() == palette().background
        assert palette().background != "#16181d"
    finally:
        apply_theme(False)


def test_history_is_qt_free():
    import subprocess
    import sys

    code = (
        "import sys; import ui.plots.history, ui.plots.buffers, ui.plots.decimate; "
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_log_axis_within_one_decade_labels_a_few_ticks_not_every_mantissa(qtbot):
    from ui.plots.base import PowerAxis

    axis = PowerAxis("left")
    # 0.3 to 5: pyqtgraph would label 3, 4, …, 9, 10⁰, 2, 3, 4, 5 on top of each other.
    ((_, values),) = axis.logTickValues(math.log10(0.3), math.log10(5), 200, None)
    labels = axis.logTickStrings(values, 1, 1)
    assert labels == ["5", "10⁰", "2", "5"]


def test_a_title_too_long_for_a_narrow_plot_is_worded_shorter_with_the_whole_in_a_tooltip(qtbot):
    """At 1366x768 the flow and update-ratio titles were clipped mid-word (issue 10)."""
    import re

    from PySide6.QtGui import QFontMetrics

    from ui.plots import style as plot_style
    from ui.plots.weights import WeightPlot

    def shown(plot) -> str:
        return re.sub(r"<[^>]+>", "", plot.titleLabel.text)

    panel = WeightPlot()
    qtbot.addWidget(panel)
    panel.resize(1000, 300)
    panel.show()
    qtbot.waitExposed(panel)
    plot = panel.plot
    assert shown(plot) == "Update / weight ratio per layer"
    assert panel.widgets[0].toolTip() == ""
    panel.resize(250, 300)
    qtbot.waitUntil(lambda: shown(plot) != "Update / weight ratio per layer")
    metrics = QFontMetrics(plot_style.font(9, bold=True))
    assert metrics.horizontalAdvance(shown(plot)) <= plot.getViewBox().width()
    assert panel.widgets[0].toolTip() == "Update / weight ratio per layer"
    panel.resize(1000, 300)  # room again: the whole title comes back
    qtbot.waitUntil(lambda: shown(plot) == "Update / weight ratio per layer")
