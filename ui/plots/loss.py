"""Loss and accuracy over steps: the first place to see under- and overfitting.

Training loss per step (thin, noisy) with its smoothed trend, validation loss per epoch
(markers at the epoch's last step) on the same axes, so a widening gap between the
smoothed training loss and the validation points reads as overfitting and two high flat
curves as underfitting. Below, accuracy: training and validation per epoch, with the
smoothed per-step training accuracy faintly behind. The accuracy plot is hidden for
regression runs. Vertical markers show phase changes (`mark`) and a divergence.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from ui.plots import style
from ui.plots.base import Marks, PlotPanel, StepHeadroom
from ui.plots.history import RunHistory


def _series_opts(finite: bool) -> dict:
    # The finite check costs a pass over the data; skip it while we know it holds.
    return (
        {"connect": "all", "skipFiniteCheck": True}
        if finite
        else {"connect": "finite", "skipFiniteCheck": False}
    )


def _finite_pairs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isfinite(y) & np.isfinite(x)
    return x[keep], y[keep]


class LossPlot(PlotPanel):
    """Training loss (per step and smoothed), validation loss and accuracy per epoch."""

    def __init__(self, history: RunHistory | None = None, parent=None):
        super().__init__(history, parent)
        # The steps are named once, under the learning rate below (same column, same axis):
        # here the row goes to the data, which at 768 px has little height to spare.
        self.loss_plot = self.add_plot("Loss", "loss", stretch=3, x_label="")
        self.accuracy_plot = self.add_plot("Accuracy", "accuracy", stretch=2, x_label="")
        self.link_x()
        self.legend = self.legend_below(self.loss_plot, columns=2)
        self.train_raw = self.curve(self.loss_plot, name="train")
        self.train_smooth = self.curve(self.loss_plot, name="smoothed")
        self.validation = self.curve(self.loss_plot, name="validation", symbol="o", symbolSize=6)
        self.other_loss = self.curve(self.loss_plot)
        self.other_validation = self.curve(self.loss_plot, symbol="o", symbolSize=5)
        self.accuracy_step = self.curve(self.accuracy_plot)
        self.accuracy_train = self.curve(self.accuracy_plot, symbol="o", symbolSize=6)
        self.accuracy_val = self.curve(self.accuracy_plot, symbol="o", symbolSize=6)
        acc_legend = self.legend_below(self.accuracy_plot)
        acc_legend.addItem(self.accuracy_train, "train")
        acc_legend.addItem(self.accuracy_val, "validation")
        self.marks = Marks([self.loss_plot, self.accuracy_plot], labelled=self.loss_plot)
        self.headroom = StepHeadroom(self.loss_plot)  # its step axis grows in round steps
        self.accuracy_plot.getViewBox().setLimits(yMin=-0.05, yMax=1.05)
        # Hidden until a run reports accuracy, its space kept: showing it must not re-lay
        # out the plot grid mid-run (a ~100 ms stall of the window on 2 cores).
        policy = self.widgets[1].sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.widgets[1].setSizePolicy(policy)
        self.widgets[1].hide()
        self.restyle()

    # -- public API -----------------------------------------------------------------------
    def mark(self, step: float, label: str) -> None:
        """A vertical marker at `step` on both plots, labelled on the loss plot (e.g. the
        start of a fine-tuning phase). Kept until the next run starts."""
        self.history.add_mark(step, label)
        self.refresh()

    # -- drawing --------------------------------------------------------------------------
    def _data_key(self, h: RunHistory):
        return (h.step.version, h.epoch_step.version, h.accuracy.version)

    def _redraw(self) -> None:
        h = self.history
        step = h.step.data
        self.train_raw.setData(step, h.loss.data, **_series_opts(h.loss.all_finite))
        self.train_smooth.setData(
            step, h.loss_smooth.data, **_series_opts(h.loss_smooth.all_finite)
        )
        self.validation.setData(*_finite_pairs(h.epoch_step.data, h.val_loss.data))
        self._draw_accuracy(h)
        self._draw_comparison()
        self.marks.sync(h.marks)

    def _draw_accuracy(self, h: RunHistory) -> None:
        show = h.has_accuracy
        if self.widgets[1].isHidden() == show:
            self.widgets[1].setVisible(show)
        if not show:
            for c in (self.accuracy_step, self.accuracy_train, self.accuracy_val):
                c.setData([], [])
            return
        self.accuracy_step.setData(h.acc_step.data, h.accuracy_smooth.data, **_series_opts(True))
        self.accuracy_train.setData(*_finite_pairs(h.epoch_step.data, h.train_accuracy.data))
        self.accuracy_val.setData(*_finite_pairs(h.epoch_step.data, h.val_accuracy.data))

    def _draw_comparison(self) -> None:
        other = self.comparison
        if other is None:
            self.other_loss.setData([], [])
            self.other_validation.setData([], [])
        else:
            self.other_loss.setData(
                other.step.data,
                other.loss_smooth.data,
                **_series_opts(other.loss_smooth.all_finite),
            )
            self.other_validation.setData(
                *_finite_pairs(other.epoch_step.data, other.val_loss.data)
            )
        label = self.comparison_label or "comparison"
        entries = (
            ()
            if other is None
            else tuple(
                entry
                for entry, present in (
                    ((self.other_loss, f"{label}"), other.step.n > 0),
                    (
                        (self.other_validation, f"{label} (val.)"),
                        np.isfinite(other.val_loss.data).any(),
                    ),
                )
                if present
            )
        )
        if entries != getattr(self, "_legend_entries", ()):
            # Legend rows change only when the comparison does, not on every redraw.
            for item in (self.other_loss, self.other_validation):
                self.legend.removeItem(item)
            for item, text in entries:
                self.legend.addItem(item, text)
            self._legend_entries = entries

    def _restyle(self, pal: style.Palette) -> None:
        self.train_raw.setPen(style.pen(pal.train_raw, 1.0))
        self.train_smooth.setPen(style.pen(pal.train, 2.0))
        for item, colour in (
            (self.validation, pal.validation),
            (self.accuracy_val, pal.validation),
            (self.accuracy_train, pal.train),
        ):
            item.setPen(style.pen(colour, 1.5))
            item.setSymbolBrush(pg.mkBrush(colour))
            item.setSymbolPen(style.pen(pal.background, 1.0))
        self.accuracy_step.setPen(style.pen(pal.train_raw, 1.0))
        self.other_loss.setPen(style.pen(pal.comparison, 1.6, Qt.PenStyle.DashLine))
        self.other_validation.setPen(None)
        self.other_validation.setSymbolBrush(pg.mkBrush(style.color(pal.comparison, 0.8)))
        self.other_validation.setSymbolPen(style.pen(pal.background, 1.0))
        self.marks.sync(self.history.marks, force=True)
