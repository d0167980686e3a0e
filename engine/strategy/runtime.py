"""A loaded strategy as the streaming signal source of a replay/paper/live session.

:class:`StrategySource` gives one (direction, confidence, class, features ns, inference ns) per
closed bar, as :class:`engine.runtime.session.WindowSignals` does, from either

- the strategy's batch ``signals`` on its trailing window (``LoadedStrategy.window`` bars: the
  declared ``warmup`` + 1) and the last row: the strategy protocol's live rule; or
- its streaming ``update(ts, o, h, l, c, v) -> (direction, confidence)`` where it has one (and
  ``streaming=True``).

Fail safe: an exception inside the strategy or a bad signal (:func:`check_signals`) gives NO
signal for that bar (direction 0), records ``error`` (one line naming the file and class) and
calls ``on_error(message)`` (the file by its name only) once per failure streak: the session pauses new entries with the
error shown while protection stays (:meth:`engine.runtime.session.SessionBase._strategy_failed`).
A later good bar clears ``error``; the pause stays until the operator resumes.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from engine.clock import perf_ns
from engine.data.bars import Bars
from engine.strategy.loader import LoadedStrategy, StrategyError


class StrategySource:
    """See the module docstring. ``bar_ns``: bar length (ns); ``streaming``: use ``update``
    when the strategy has one."""

    def __init__(self, strategy: LoadedStrategy, bar_ns: int, *, streaming: bool = True) -> None:
        self.user_strategy = strategy
        self.streaming = bool(streaming and strategy.has_update)
        self.window = int(strategy.window)
        self.bar_ns = int(bar_ns)
        self.buf = np.full((5, self.window), np.nan)
        self.tsbuf = np.zeros(self.window, dtype=np.int64)
        self.n = 0
        self.label = f"strategy {strategy.label()}" + (" (streaming update)" if self.streaming else "")
        self.is_baseline = True    # rule-based (no model): the sessions' window/warm-start rules apply
        self.last: tuple[int, float, int] | None = None
        self.error = ""
        self.errors = 0
        self.on_error: Callable[[str], None] | None = None
        self._ok = True
        if self.streaming:
            start_stream(strategy, self.bar_ns)

    def _fail(self, msg: str) -> tuple[int, float, int]:
        first = not self.error
        self.error = msg
        self._ok = False
        self.errors += 1
        if first and self.on_error is not None:
            src = self.user_strategy.source
            # the console's panes are narrow: the file by its name (the full path is in `error`)
            self.on_error(msg.replace(f"{src.parent}/", "") if src is not None else msg)
        return 0, float("nan"), -1

    def _from_update(self, ts: int, o: float, h: float, l: float, c: float, v: float) -> tuple[int, float, int]:
        s = self.user_strategy
        try:
            out = s.impl.update(ts, o, h, l, c, v)
            d, conf = int(out[0]), float(out[1])
        except Exception as exc:  # noqa: BLE001 - the user's code
            return self._fail(f"{s.where}: update() raised {type(exc).__name__}: {' '.join(str(exc).split())}")
        if d not in (-1, 0, 1):
            return self._fail(f"{s.where}: update() returned direction {d} (allowed -1, 0, +1)")
        if d != 0 and not (0.0 <= conf <= 1.0):
            return self._fail(f"{s.where}: update() returned confidence {conf!r} for a signal (finite, 0..1)")
        return d, conf, (d + 1 if d != 0 else -1)

    def _from_window(self, ts: int, o: float, h: float, l: float, c: float, v: float) -> tuple[int, float, int]:
        self.buf[:, :-1] = self.buf[:, 1:]
        self.tsbuf[:-1] = self.tsbuf[1:]
        self.buf[:, -1] = (o, h, l, c, v)
        self.tsbuf[-1] = ts
        k = min(self.n, self.window)
        b = self.buf[:, -k:]
        bars = Bars(self.tsbuf[-k:], b[0], b[1], b[2], b[3], b[4], bar_ns=self.bar_ns)
        try:
            sig = self.user_strategy.signals(bars)
        except StrategyError as exc:
            return self._fail(str(exc))
        return int(sig.direction[-1]), float(sig.confidence[-1]), int(sig.pred_class[-1])

    def update(self, ts: int, o: float, h: float, l: float, c: float, v: float) -> tuple[int, float, int, int, int]:
        """One closed bar (open time ``ts`` UTC ns, OHLCV) → (direction, confidence, class,
        features ns 0, strategy ns)."""
        t0 = perf_ns()
        self.n += 1
        if self.streaming:
            d, conf, cls = self._from_update(ts, o, h, l, c, v)
        else:
            d, conf, cls = self._from_window(ts, o, h, l, c, v)
        if self._ok:
            self.error = ""
        self._ok = True
        self.last = (d, conf, cls)
        return d, conf, cls, 0, perf_ns() - t0


def start_stream(strategy: LoadedStrategy, bar_ns: int) -> None:
    """Call the strategy's optional ``reset(bar_ns)`` before its first ``update`` (fresh state,
    the bar length). Raises :class:`StrategyError` when it raises."""
    reset = getattr(strategy.impl, "reset", None)
    if callable(reset):
        try:
            reset(int(bar_ns))
        except Exception as exc:  # noqa: BLE001 - the user's code
            raise StrategyError(f"{strategy.where}: reset() raised {type(exc).__name__}: "
                                f"{' '.join(str(exc).split())}") from None


def check_stream(strategy: LoadedStrategy, fresh: LoadedStrategy, bars) -> dict:
    """Batch = streaming: ``strategy.signals(bars)`` against ``fresh.impl.update`` fed the same
    bars one at a time (``fresh``: a new instance, its state untouched). Returns ``{"bars",
    "differ", "first": [bar indexes, up to 5], "pass"}``; a bar differs when the direction
    differs or, for a signal, the confidence differs by more than 1e-9. Raises
    :class:`StrategyError` from the batch call or when ``update`` raises."""
    sig = strategy.signals(bars)
    n = len(bars)
    start_stream(fresh, int(bars.bar_ns))
    d = np.zeros(n, np.int8)
    conf = np.full(n, np.nan)
    up = fresh.impl.update
    for i in range(n):
        try:
            out = up(int(bars.ts[i]), float(bars.open[i]), float(bars.high[i]), float(bars.low[i]),
                     float(bars.close[i]), float(bars.volume[i]))
        except Exception as exc:  # noqa: BLE001
            raise StrategyError(f"{strategy.where}: update() raised {type(exc).__name__} at bar {i}: "
                                f"{' '.join(str(exc).split())}") from None
        d[i], conf[i] = int(out[0]), float(out[1])
    on = (d != 0) | (sig.direction != 0)
    diff = (d != sig.direction) | (on & ~np.isclose(np.nan_to_num(conf), np.nan_to_num(sig.confidence),
                                                   rtol=0.0, atol=1e-9))
    idx = np.flatnonzero(diff)
    return {"bars": n, "differ": int(len(idx)), "first": [int(x) for x in idx[:5]], "pass": not len(idx)}


__all__ = ["StrategySource", "check_stream", "start_stream"]
