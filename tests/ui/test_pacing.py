"""The window's GUI work is paced by what it measurably costs (ui.pacing), not by a fixed
rate: costlier ticks come less often, a costly panel redraws less often than a cheap one,
one panel redraws per tick, and a panel nobody can see never draws."""

from __future__ import annotations

import numpy as np
import pytest

from ui.pacing import Pacer
from ui.plots import TrainingPlots


class Clock:
    def __init__(self):
        self.wall = self.cpu = 0.0

    def run(self, wall: float, cpu: float) -> None:
        self.wall += wall
        self.cpu += cpu


def pacer(clock: Clock, share: float = 0.1) -> Pacer:
    return Pacer(share=share, cpu=lambda: clock.cpu, clock=lambda: clock.wall)


def test_ticks_are_spaced_so_the_gui_stays_within_its_share():
    clock = Clock()
    p = pacer(clock)
    p.tick()
    for _ in range(30):  # every tick costs 20 ms of GUI CPU
        clock.run(p.interval, 0.020)
        p.tick()
    assert p.interval == pytest.approx(0.020 / 0.1, rel=0.01)  # 200 ms: 10% of the time
    for _ in range(30):  # a faster machine: 1 ms a tick
        clock.run(p.interval, 0.001)
        p.tick()
    assert p.interval == pytest.approx(p.fastest)
    for _ in range(30):  # a very slow one: never slower than once a second
        clock.run(p.interval, 0.5)
        p.tick()
    assert p.interval == p.slowest


def test_a_costly_panel_waits_longer_than_a_cheap_one():
    clock = Clock()
    p = pacer(clock)
    p.tick()
    for _ in range(10):
        clock.run(0.1, 0.002)  # ticks that draw nothing cost 2 ms
        p.tick()
        p.drew("heatmap")
        clock.run(0.1, 0.032)  # the heatmap's tick: 30 ms more
        p.tick()
        p.drew("loss")
        clock.run(0.1, 0.005)  # the loss curve's: 3 ms more
        p.tick()
    assert p.panel_cost["heatmap"] == pytest.approx(0.030, rel=0.05)
    assert p.panel_cost["loss"] == pytest.approx(0.003, rel=0.2)
    p.drew("heatmap")
    p.drew("loss")
    # Of 2 panels taking turns, each may use half the share.
    assert p.due("heatmap", panels=2) == pytest.approx(0.030 * 2 / 0.1, rel=0.05)
    assert p.due("loss", panels=2) < p.due("heatmap", panels=2) / 5
    assert p.due("loss", floor=0.25, panels=2) == pytest.approx(0.25)


def test_one_panel_per_tick_and_hidden_panels_never_draw(qtbot, mlp_events):
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(1400, 500)
    plots.show()
    plots.refresh(force=True)
    plots.feed_events(mlp_events)
    drawn = []

    def counted(panel):
        original = panel.refresh

        def refresh(force=False):
            drawn.append(panel)
            return original(force)

        return refresh

    for panel in plots.panels:
        panel.refresh = counted(panel)
    plots.histograms.hide()  # e.g. a collapsed or closed part of the layout
    plots.refresh()
    assert len(drawn) == 1
    for _ in range(40):
        plots.pacer.tick()
        plots.pacer._drawn_at.clear()  # every panel's turn has come
        plots.refresh()
    assert plots.histograms not in drawn
    assert {p for p in plots.panels if p is not plots.histograms} <= set(drawn)
    assert len(drawn) <= 41


def test_a_panel_redraw_moves_only_its_own_step_axis_and_a_zoom_moves_all(qtbot, mlp_events):
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(1400, 500)
    plots.show()
    plots.feed_events(mlp_events)
    plots.refresh(force=True)
    plots.grab()
    lr_range = plots.lr.plot.getViewBox().viewRange()[0]
    loss_vb = plots.loss.loss_plot.getViewBox()
    last = int(plots.history.step.data[-1])
    plots.feed(
        {
            "type": "steps",
            "step": np.arange(last + 1, last + 200),
            "loss": np.full(199, 1.0),
            "accuracy": None,
            "lr": np.full(199, 1e-3),
        }
    )
    plots.loss.refresh()
    plots.grab()
    assert loss_vb.viewRange()[0][1] > lr_range[1] + 100  # the loss axis grew
    # ... and the learning-rate plot waits for its own turn (no repaint of every plot).
    assert plots.lr.plot.getViewBox().viewRange()[0] == lr_range
    plots.lr.refresh()
    plots.grab()
    # The same step range (within a pixel: symbols pad the loss plot a little).
    (a, b), (c, d) = plots.lr.plot.getViewBox().viewRange()[0], loss_vb.viewRange()[0]
    assert abs(a - c) < 0.005 * (d - c) and abs(b - d) < 0.005 * (d - c)
    # A person's zoom on one step plot zooms them all; a double-click follows the run again.
    loss_vb.setXRange(10, 20, padding=0)
    loss_vb.sigRangeChangedManually.emit([True, False])
    assert plots.weights.plot.getViewBox().viewRange()[0] == pytest.approx([10, 20])
    plots.steps.follow()
    plots.grab()
    assert plots.weights.plot.getViewBox().autoRangeEnabled()[0]


@pytest.mark.parametrize("text", ["abc", "0", "-1", "2"])
def test_a_bad_share_in_the_environment_is_one_sentence_and_the_default(monkeypatch, capsys, text):
    from ui import pacing

    monkeypatch.setenv("STUDIO_GUI_SHARE", text)
    assert pacing._share_from_environment() == pacing.DEFAULT_SHARE
    assert "STUDIO_GUI_SHARE" in capsys.readouterr().err
    monkeypatch.setenv("STUDIO_GUI_SHARE", "0.1")
    assert pacing._share_from_environment() == 0.1
