"""How long one redraw of the gradient-norm plot takes at 100 layers × 100,000 steps.

Target: under 16 ms (a 60 Hz frame; the window refreshes at ~30 Hz, so this leaves half
of each frame to everything else). A redraw is what `refresh()` does when new data has
arrived — decimate the visible window (min/max pyramid, ui/plots/decimate.py), set the
100 lines' data, setImage on the heatmap — plus the paint it causes, forced with
`widget.grab()`. Measured offscreen; the median of several, as wall-clock and as this
process's CPU time (which a busy machine does not inflate). For contrast it also times
the naive approach the widget avoids: 100 full-length PlotDataItems handed to pyqtgraph
(with its own peak downsampling and clipping) and the full 100 × 100,000 image.

    QT_QPA_PLATFORM=offscreen python benchmarks/plot_redraw.py [--layers 100] [--steps 100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from ui.plots import GradientNormPlot, RunHistory  # noqa: E402

TARGET_MS = 16.0


def synthetic_norms(steps: int, layers: int, seed: int = 0) -> np.ndarray:
    """Gradient norms that look like training: a depth trend, drift, noise, rare spikes."""
    rng = np.random.default_rng(seed)
    depth = np.linspace(-6.0, -1.0, layers, dtype=np.float32)
    drift = np.cumsum(rng.normal(0, 0.002, size=(steps, 1)), axis=0).astype(np.float32)
    noise = rng.normal(0, 0.15, size=(steps, layers)).astype(np.float32)
    spikes = (rng.random((steps, layers)) < 1e-4) * 3.0
    return (10.0 ** (depth + drift + noise + spikes)).astype(np.float32)


def timed(fn, repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of each call. On a shared machine the wall clock
    includes time other processes held the CPU; the process CPU time does not (painting
    and numpy here run on this thread), so it shows the redraw's own cost."""
    wall, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - started) * 1000.0)
        cpu.append((time.process_time() - started_cpu) * 1000.0)
    return wall, cpu


def report(name: str, times: tuple[list[float], list[float]]) -> float:
    wall, cpu = times
    median = statistics.median(wall)
    print(
        f"{name:<50} wall median {median:6.2f} ms (min {min(wall):6.2f})"
        f"   cpu median {statistics.median(cpu):6.2f} ms"
    )
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=100)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=700)
    parser.add_argument("--no-naive", action="store_true", help="skip the naive comparison")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    L, N = args.layers, args.steps
    print(
        f"{L} layers × {N:,} steps, widget {args.width}×{args.height}, Qt platform "
        f"{app.platformName()}, pyqtgraph {pg.__version__}"
    )

    norms = synthetic_norms(N, L)
    names = [f"layer{i + 1}" for i in range(L)]
    history = RunHistory()
    history.feed({"type": "start", "layers": names, "total_steps": N})
    started = time.perf_counter()
    # Fed as the engine would, in chunks (here ~1 s of training at 30 Hz flushes).
    chunk = 1000
    for i in range(0, N, chunk):
        history.feed(
            {
                "type": "gradients",
                "step": np.arange(i, min(i + chunk, N)),
                "norms": norms[i : i + chunk],
            }
        )
    feed_ms = (time.perf_counter() - started) * 1000
    widget = GradientNormPlot(history)
    widget.resize(args.width, args.height)
    widget.show()
    app.processEvents()
    widget.refresh(force=True)
    widget.grab()
    print(
        f"feeding {N // chunk} events of {chunk} steps: {feed_ms:.0f} ms in total "
        f"({feed_ms / (N // chunk):.2f} ms per event, buffer + pyramid)"
    )

    def redraw():
        widget.refresh(force=True)
        widget.grab()

    def redraw_no_paint():
        widget.refresh(force=True)

    step = [N]

    def live():
        # The live case: 33 new steps (one flush at 30 Hz of a 1 kHz run) then a redraw.
        s = step[0]
        history.feed({"type": "gradients", "step": np.arange(s, s + 33), "norms": norms[:33]})
        step[0] += 33
        widget.refresh()
        widget.grab()

    results = {}
    results["full"] = report(
        "redraw (decimate + 100 lines + setImage + paint)", timed(redraw, args.repeats)
    )
    report("  of which refresh() without the paint", timed(redraw_no_paint, args.repeats))
    results["live"] = report("live: feed 33 steps + refresh() + paint", timed(live, args.repeats))

    # Zoomed into the last 5 % (the view no longer follows the data).
    widget.lines_plot.setXRange(N * 0.95, N, padding=0)
    app.processEvents()
    results["zoom"] = report("redraw zoomed to the last 5 %", timed(redraw, args.repeats))
    widget.lines_plot.enableAutoRange(x=True)
    app.processEvents()
    unchanged = report("refresh() with nothing new (skipped)", timed(widget.refresh, args.repeats))

    if not args.no_naive:
        naive = pg.GraphicsLayoutWidget()
        naive.resize(args.width, args.height)
        top = naive.addPlot()
        top.setDownsampling(auto=True, mode="peak")
        top.setClipToView(True)
        curves = [top.plot(pen=pg.intColor(i, L)) for i in range(L)]
        naive.nextRow()
        bottom = naive.addPlot()
        image = pg.ImageItem(axisOrder="row-major")
        bottom.addItem(image)
        naive.show()
        app.processEvents()
        x = np.arange(N, dtype=np.float64)
        logs = np.log10(norms).T.copy()

        def naive_redraw():
            for i, c in enumerate(curves):
                c.setData(x, logs[i], connect="all", skipFiniteCheck=True)
            image.setImage(logs, autoLevels=False, levels=(-8, 0))
            naive.grab()

        report("naive: full-length setData ×100 + full image", timed(naive_redraw, 5))
        naive.close()

    ok = results["full"] < TARGET_MS and results["live"] < TARGET_MS
    print(
        f"target < {TARGET_MS:.0f} ms per redraw: {'met' if ok else 'MISSED'}"
        f" (skipped refresh {unchanged:.3f} ms)"
    )
    widget.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
