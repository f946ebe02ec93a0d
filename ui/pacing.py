"""How often the window does its periodic work while a run trains: measured, not fixed.

The GUI thread shares the GIL with the training thread (and, on a small machine, the
cores), so every millisecond it spends draining events and redrawing plots is a
millisecond training may wait. A fixed refresh rate tuned on one machine starves training
on a slower one (on 2 cores a gradient panel redraw took 16 ms; two panels at 30 Hz held
the GIL most of the time). `Pacer` measures what the GUI thread really spends — its CPU
time between two ticks, which includes Qt's painting after the tick returned, the user's
own clicks and the garbage collector — and spaces the ticks so that this stays under a
share of wall time. A costlier tick is followed by a longer pause; a machine that draws
fast keeps the full rate.

The same measure spaces each plot panel's redraws: the tick after a redraw says what the
panel (with its paint) cost beyond a tick that drew nothing, and a costly panel waits
longer before its next turn, so a heatmap or histogram panel runs at a lower rate than
the loss curve.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

# Of one core: the GUI thread's work while training runs. On 2 cores a millisecond of GUI
# work cost training about two (it preempts one of the two threads training runs on, and
# the other waits for it), so this is well under what the GUI could take.
DEFAULT_SHARE = 0.05


def _share_from_environment() -> float:
    """STUDIO_GUI_SHARE, when it is a number in (0, 1]; a bad value is reported once and
    the default used (a typo must not stop the window from opening)."""
    text = os.environ.get("STUDIO_GUI_SHARE", "")
    if not text:
        return DEFAULT_SHARE
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        print(
            f"studio: STUDIO_GUI_SHARE={text!r} is not a share of one core between 0 and 1; "
            f"using {DEFAULT_SHARE}.",
            file=sys.stderr,
        )
        return DEFAULT_SHARE
    return value


SHARE = _share_from_environment()
FASTEST = 1 / 30  # s between ticks at most this often (a screen needs no more)
SLOWEST = 1.0  # s: even on a very slow machine the plots move every second
SMOOTHING = 0.3  # weight of the newest tick in the running cost


class Pacer:
    """Spaces periodic GUI work so that it takes at most `share` of the GUI thread's time.

    Call `tick()` first thing in every tick, in the GUI thread; it returns the seconds to
    wait before the next one. A tick that redrew a plot panel says so with `drew(panel)`:
    the next `tick()` charges that panel what the tick cost beyond a tick that drew
    nothing, and `due(panel)` spaces the panel's redraws by its own cost.
    """

    def __init__(
        self,
        share: float = SHARE,
        fastest: float = FASTEST,
        slowest: float = SLOWEST,
        cpu: Callable[[], float] = time.thread_time,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.share, self.fastest, self.slowest = share, fastest, slowest
        self._cpu, self._clock = cpu, clock
        self.cost = 0.0  # s of GUI-thread CPU per tick (running average)
        self.base = 0.0  # the same for ticks that redrew no panel
        self.interval = fastest
        self.panel_cost: dict[object, float] = {}
        self._last: tuple[float, float] | None = None
        self._drawn: object | None = None
        self._drawn_at: dict[object, float] = {}

    def reset(self) -> None:
        """Forget the last tick (the timer was stopped; the pause between is not a tick)."""
        self._last = None
        self._drawn = None

    def tick(self) -> float:
        cpu, now = self._cpu(), self._clock()
        if self._last is not None:
            spent = max(0.0, cpu - self._last[0])
            self.cost += SMOOTHING * (spent - self.cost)
            if self._drawn is None:
                self.base += SMOOTHING * (spent - self.base)
            else:
                self._charge(self._drawn, max(0.0, spent - self.base))
            self.interval = min(self.slowest, max(self.fastest, self.cost / self.share))
        self._last = (cpu, now)
        self._drawn = None
        return self.interval

    @property
    def ticking(self) -> bool:
        """Whether ticks are coming (a run trains): the next one will draw what waits."""
        return self._last is not None and self._clock() - self._last[1] < 2 * self.interval

    def drew(self, panel: object) -> None:
        """This tick redrew `panel` (its paint follows in the event loop, still this tick)."""
        self._drawn = panel
        self._drawn_at[panel] = self._clock()

    def due(self, panel: object, floor: float = 0.0, panels: int = 1) -> float:
        """Seconds until `panel` may redraw again (≤ 0: now). Of `panels` panels taking
        turns, each may use its part of the share: a panel costing c waits c·panels/share."""
        last = self._drawn_at.get(panel)
        if last is None:
            return 0.0
        wait = max(floor, self.panel_cost.get(panel, 0.0) * panels / self.share)
        return last + wait - self._clock()

    def _charge(self, panel: object, seconds: float) -> None:
        old = self.panel_cost.get(panel)
        self.panel_cost[panel] = seconds if old is None else old + SMOOTHING * (seconds - old)
