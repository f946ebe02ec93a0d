"""Live training plots: loss, learning rate, per-layer gradients, update ratios,
histograms and activation health.

`TrainingPlots` owns them all and is what the main window embeds; each plot also works
on its own with its own or a shared `RunHistory`. Trainer events go to `feed()` (buffer
only); `refresh()` redraws what changed (call it at ~30 Hz). `apply_theme(dark)`
restyles every live plot.

`RunHistory`, the buffers and the decimation are Qt-free; names are imported lazily so
`ui.plots.history` can be used (e.g. to load a saved run) without loading Qt.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ActivationPlot": "ui.plots.activations",
    "GradientNormPlot": "ui.plots.gradients",
    "HistogramPlot": "ui.plots.histograms",
    "LearningRatePlot": "ui.plots.lr",
    "LossPlot": "ui.plots.loss",
    "RunHistory": "ui.plots.history",
    "TrainingPlots": "ui.plots.panel",
    "WeightPlot": "ui.plots.weights",
    "apply_theme": "ui.plots.style",
    "palette": "ui.plots.style",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ui.plots' has no attribute {name!r}")
