"""One step axis for the step plots of TrainingPlots, without pyqtgraph's axis links.

Linked with `setXLink`, every change of the leading plot's step range repainted every
linked plot in the same frame, outside the window's paced drawing: on 2 cores the loss
panel's redraw cost ~75 ms instead of ~12, and the first frame of a run ~115 ms. Here each
step plot follows the run on its own, all to the same range: a `StepHeadroom` claims the
steps up to the next round number above the newest step (the same for every plot) and the
padding is fixed (pyqtgraph's depends on each plot's width), so the axes line up while each
plot repaints only when its own panel redraws. When the person zooms or pans one plot, the
others take its step range; a double-click on any of them makes all follow the run again.
"""

from __future__ import annotations

import pyqtgraph as pg

from ui.plots.base import StepHeadroom

PADDING = 0.02


class StepAxes:
    def __init__(self, panels_and_plots: list[tuple[object, pg.PlotItem]]):
        self.plots = [plot for _, plot in panels_and_plots]
        self._syncing = False
        for panel, plot in panels_and_plots:
            vb = plot.getViewBox()
            # pyqtgraph pads by the view's width (more on a narrow plot): the same fraction
            # everywhere keeps plots of different widths on the same step range.
            ys = vb.suggestPadding
            vb.suggestPadding = lambda axis, ys=ys: PADDING if axis == 0 else ys(axis)
            if getattr(panel, "headroom", None) is None:
                panel.headroom = StepHeadroom(plot)
            vb.sigRangeChangedManually.connect(lambda _mask, plot=plot: self._user_moved(plot))
            plot.scene().sigMouseClicked.connect(self._clicked)

    def _user_moved(self, source: pg.PlotItem) -> None:
        if self._syncing:
            return
        lo, hi = source.getViewBox().viewRange()[0]
        self._syncing = True
        try:
            for plot in self.plots:
                if plot is not source:
                    plot.setXRange(lo, hi, padding=0)
        finally:
            self._syncing = False

    def _clicked(self, event) -> None:
        if event.double():
            self.follow()

    def follow(self) -> None:
        """Every step plot follows the run again (x auto-ranged to the shared headroom)."""
        for plot in self.plots:
            plot.getViewBox().enableAutoRange(axis=pg.ViewBox.XAxis)
