"""The session runtime (R-LIVE-1 … 3, R-LIVE-6): start-up, the per-bar loop, commands from the
operator, shutdown and the session report, around the ONE trading kernel.

A :class:`Session` owns, on its single engine thread: the clock, the venue, the risk manager, the
:class:`engine.kernel.TradingKernel`, the signal source (a model checkpoint through the streaming
feature path, or a rule-based strategy over a trailing window) and the streaming
:class:`~engine.runtime.market_state.MarketState`. Replay mode drives it with bars from a file or
from the embedded market generator, through the simulated venue, on a :class:`SimClock`, at real
speed, N× or as fast as possible. Paper/live plug a broker venue and a live clock into the same
loop.

Per bar (R-LIVE-2), every step timed (``BarTiming``): features, inference, risk, order.
1. commands queued by the console/signal handlers are applied (pause, resume, flatten, halt,
   reset, quit);
2. :class:`engine.step.StreamingBarPath` (the streaming bar path, shared with paper/live):
   features → prediction → (direction, confidence, class); market state →
   :class:`engine.kernel.BarInput`; then :func:`engine.step.step_bar`, the per-bar step of every
   mode: the clock advances to the bar close, the venue processes the bar (fills),
   ``kernel.step``;
3. a new immutable :class:`SessionSnapshot` is published for the console.

The console never calls into the engine except through the thread-safe command methods
(:class:`engine.runtime.snapshot.RuntimeCommands`); the engine never calls into the console.

Shutdown (R-LIVE-3): working entries cancelled, position flattened (or, with ``keep_protected``,
left with its bracket working at the broker), risk state saved, and a JSON session report written
(trades, P&L, metrics, timings, refusals).
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.calendar import EOD_PHASES, day_date
from engine.clock import NS_PER_SECOND, perf_ns
from engine.config import Settings
from engine.data.bars import Bars
from engine.logs import RingHandler, get_logger
from engine.risk.manager import RiskActionError
from engine.runtime.market_state import MarketState
from engine.step import BarTiming, StreamingBarPath
from engine.runtime.snapshot import (
    money, RESET_PHRASE, BacktestParams, BacktestResult, BrokerView, EodView, HeaderView, LogLine,
    ModelView, OrderLegView, PositionView, ProgressCallback, QuoteView, RiskView,
    RuntimeCommandError, SessionEvent, SessionSnapshot, TrainingParams, TrainingResult,
    WalkForwardRun,
)

if TYPE_CHECKING:
    from engine.journal import Journal

log = get_logger("session")

_LEG_STATE = {"ACCEPTED": "WORKING", "SUBMITTED": "PENDING", "PARTIALLY_FILLED": "PARTIAL",
              "CANCELLED": "CANCELED", "PENDING_CANCEL": "CANCELING"}
"""Order status → the console's leg state words."""

_BREAKER_REASONS = ("volume breaker", "spread breaker", "volatility breaker")
"""Reasons of the market circuit breakers (engine.risk), which do not raise console events."""

CLASS_NAMES = ("DOWN", "FLAT", "UP")

EXIT_OK = 0
"""Session ran to the end of its data (or was quit by the operator) and ended as asked."""
EXIT_SIGNAL = 4
"""SIGINT/SIGTERM: orderly shutdown completed (flattened, state saved, report written)."""
EXIT_ERROR = 1
"""An unhandled exception: the session flattened, halted and wrote what it could."""
EXIT_USAGE = 3
"""Bad settings, arguments, data or checkpoint: nothing traded."""


class SessionError(RuntimeError):
    """The session cannot start or continue (bad data, checkpoint, mode)."""


# ----------------------------------------------------------------------------- signal sources
class ModelSignals:
    """Live path of a model: the feature set's streaming update + the predictor's streaming
    inference (``Predictor.update``), with their times measured separately."""

    def __init__(self, predictor, label: str) -> None:
        self.predictor = predictor
        self.stream = predictor.feature_set.stream()
        self.label = label
        self.is_baseline = False
        self.last = None  # PredictionRecord

    def update(self, ts, o, h, l, c, v) -> tuple[int, float, int, int, int]:
        """→ (direction, confidence, class, features_ns, inference_ns)."""
        t0 = perf_ns()
        row = self.stream.update(ts, o, h, l, c, v)
        t1 = perf_ns()
        rec = self.predictor.update(row, ts)
        t2 = perf_ns()
        if rec is None:
            return 0, float("nan"), -1, t1 - t0, t2 - t1
        self.last = rec
        return int(rec.direction), float(rec.confidence), int(rec.direction) + 1, t1 - t0, t2 - t1


class WindowSignals:
    """A batch strategy evaluated on its trailing window at every bar (the strategy protocol's
    live rule): ``strategy.signals(last `window` bars)`` and its last row. Used for the
    rule-based baseline; the window must cover everything the strategy looks back on."""

    def __init__(self, strategy, window: int, bar_ns: int, label: str) -> None:
        self.strategy = strategy
        self.window = int(window)
        self.bar_ns = bar_ns
        self.buf = np.full((6, self.window), np.nan)
        self.tsbuf = np.zeros(self.window, dtype=np.int64)
        self.n = 0
        self.label = label
        self.is_baseline = True
        self.last: tuple[int, float, int] | None = None

    def update(self, ts, o, h, l, c, v) -> tuple[int, float, int, int, int]:
        t0 = perf_ns()
        self.buf[:, :-1] = self.buf[:, 1:]
        self.tsbuf[:-1] = self.tsbuf[1:]
        self.buf[:, -1] = (o, h, l, c, v, 0.0)
        self.tsbuf[-1] = ts
        self.n += 1
        k = min(self.n, self.window)
        b = self.buf[:, -k:]
        bars = Bars(self.tsbuf[-k:], b[0], b[1], b[2], b[3], b[4], bar_ns=self.bar_ns)
        s = self.strategy.signals(bars)
        d, conf, cls = int(s.direction[-1]), float(s.confidence[-1]), int(s.pred_class[-1])
        self.last = (d, conf, cls)
        return d, conf, cls, 0, perf_ns() - t0


def make_signal_source(settings: Settings, bars_like: Bars, model_path: str | Path | None, strategy=None):
    """A model checkpoint (loaded and verified against the feature set of these bars), a loaded
    strategy (``strategy``: :class:`engine.strategy.loader.LoadedStrategy`, through
    :class:`engine.strategy.runtime.StrategySource`) or the documented rule-based baseline.
    Raises the checkpoint loader's errors (no fallback)."""
    if strategy is not None:
        if model_path:
            raise SessionError("give a model or a strategy, not both")
        from engine.strategy.runtime import StrategySource

        return StrategySource(strategy, bars_like.bar_ns)
    if model_path:
        from engine.ml.checkpoint import CheckpointError
        from engine.ml.predictor import Predictor
        from engine.strategy.model import checkpoint_feature_set

        fs = checkpoint_feature_set(model_path, bars_like)  # the checkpoint decides the features
        pred = Predictor.load(model_path, fs)
        if pred.checkpoint.body.get("target", {}).get("mode", "direct") == "meta":
            raise CheckpointError(f"{model_path}: a meta-label model (target.mode = meta) runs in backtests "
                                  "only; the live session takes direct-mode models")
        return ModelSignals(pred, f"model {Path(model_path).name}")
    from engine.strategy.baseline import BreakoutBaseline

    strat = BreakoutBaseline(lookback=settings.backtest.baseline_lookback)
    return WindowSignals(strat, strat.lookback + 2, bars_like.bar_ns,
                         f"rule-based baseline (breakout {strat.lookback})")


# ----------------------------------------------------------------------------- timings
class _TimedRisk:
    """Transparent proxy that sums the wall time spent in risk-manager calls."""

    def __init__(self, risk) -> None:
        object.__setattr__(self, "_risk", risk)
        object.__setattr__(self, "elapsed", 0)

    def __getattr__(self, name):
        attr = getattr(self._risk, name)
        if not callable(attr):
            return attr

        def timed(*a, **k):
            t0 = perf_ns()
            try:
                return attr(*a, **k)
            finally:
                object.__setattr__(self, "elapsed", self.elapsed + perf_ns() - t0)

        return timed


# ----------------------------------------------------------------------------- session
@dataclass
class SessionConfig:
    """How to run. ``speed``: simulated seconds per real second (``None`` = as fast as possible);
    ``report_path``: where the JSON session report goes (None = not written)."""

    mode: str = "replay"
    speed: float | None = None
    account: str = "SIM"
    report_path: Path | None = None
    state_dir: Path | None = None
    publish_interval_ns: int = 50_000_000
    """While running on a thread, publish a snapshot at most this often (wall time; 50 ms =
    20 Hz, above the console's refresh rate); stepping by hand publishes after every bar."""
    pace_from_ns: int = 0
    """Bars closing before this UTC ns run as fast as possible (warm-up), pacing starts here."""
    pace_window_ny: tuple[int, int] | None = None
    """(from, to) seconds of the New York day: only bars closing in ``(from, to]`` are paced at
    ``speed``, every other bar runs as fast as possible (the demo: every overnight session at
    full speed, :data:`engine.compose.DEMO_PACE_NY`); None = every bar after ``pace_from_ns``."""
    journal_path: Path | None = None
    """The SQLite trade journal this session writes (:mod:`engine.journal`; the CLI gives demo
    and replay their own file, :func:`engine.journal.default_sim_journal_path`); None = none."""


class Pacer:
    """When the next replay bar is due on the wall clock (``speed`` simulated seconds per real
    second). A paced stretch is anchored at its first bar's open: its bars are due
    ``(close − anchor) / speed`` after the wall time the stretch began; a bar outside the pace
    window (or before ``pace_from_ns``) is due at once and ends the stretch, so the next paced
    stretch (the next morning) starts fresh instead of catching up on the night.

    Args: ``speed`` (None/0 = never wait), ``pace_from_ns`` (UTC ns), ``window_ny`` (see
    :attr:`SessionConfig.pace_window_ny`), ``bar_ns`` (bar length, ns). Pure: the wall time is
    an argument, so a test drives it with a fake wall clock."""

    def __init__(self, speed: float | None, pace_from_ns: int, window_ny: tuple[int, int] | None,
                 bar_ns: int) -> None:
        self.speed = speed
        self.pace_from_ns = int(pace_from_ns)
        self.window_ny = window_ny
        self.bar_ns = int(bar_ns)
        self._anchor_sim: int | None = None
        self._anchor_wall = 0
        self.last_paced = False
        """Whether the bar of the last :meth:`wait_s` call was paced."""

    def paced(self, close_ns: int) -> bool:
        """True when the bar closing at ``close_ns`` (UTC ns) is paced."""
        if not self.speed or close_ns <= self.pace_from_ns:
            return False
        if self.window_ny is None:
            return True
        from engine.calendar import ny_datetime

        t = ny_datetime(int(close_ns))
        sec = t.hour * 3600 + t.minute * 60 + t.second
        return self.window_ny[0] < sec <= self.window_ny[1]

    def wait_s(self, close_ns: int, wall_ns: int) -> float:
        """Seconds to wait at wall time ``wall_ns`` before stepping the bar closing at
        ``close_ns`` (0 = step it now)."""
        self.last_paced = self.paced(close_ns)
        if not self.last_paced:
            self._anchor_sim = None
            return 0.0
        if self._anchor_sim is None:
            self._anchor_sim = max(int(close_ns) - self.bar_ns, self.pace_from_ns)
            self._anchor_wall = int(wall_ns)
        speed = float(self.speed or 0.0)
        due = self._anchor_wall + int((int(close_ns) - self._anchor_sim) / speed)
        return max(0.0, (due - int(wall_ns)) / 1e9)


class SessionBase:
    """What every session shares, whatever feeds it (replay :class:`Session`, paper/live
    :class:`engine.runtime.live.LiveSession`): the thread-safe operator commands of
    :class:`RuntimeCommands` and their application on the engine thread, session events, the
    immutable snapshot and the session report.

    A subclass sets, before its first :meth:`_publish`: ``settings``, ``cfg`` (``mode``,
    ``account``, ``speed``, ``publish_interval_ns``), ``spec``, ``cal``, ``clock``, ``risk``,
    ``kernel``, ``signals``, ``timings``, ``equity``, ``ring``, ``start_balance``, ``i`` (bars
    processed), then calls :meth:`_init_common`; it overrides the ``_market_view``,
    ``_broker_view``, ``_speed_label`` and ``_bar_span`` hooks when it is not fed by ``bars``.
    """

    # set by the subclass before _init_common (declared here for the type checker)
    settings: Settings
    cfg: Any                 # SessionConfig (replay) or engine.runtime.live.LiveConfig
    spec: Any                # engine.instruments.InstrumentSpec
    cal: Any                 # engine.calendar.CmeCalendar
    clock: Any               # SimClock (replay), ExchangeClock / LiveClock (paper, live)
    risk: Any                # engine.risk.RiskManager
    kernel: Any              # TradingKernel (a live session builds it at start-up)
    signals: Any             # ModelSignals / WindowSignals
    timings: list[BarTiming]
    equity: list[float]
    ring: RingHandler | None
    start_balance: float
    i: int
    bars: Bars               # the bars-fed hooks only (replay)

    def run(self) -> int:
        """Run the session loop on the calling thread; returns the exit code (the subclass's)."""
        raise NotImplementedError

    def _init_common(self) -> None:
        self._cmd: queue.Queue = queue.Queue()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._snap: SessionSnapshot | None = None
        self._snap_seq = 0
        self._events: list[SessionEvent] = []
        self._event_seq = 0
        self._ntrades_seen = 0
        self._alerts_seen = 0
        self._last_state = ""
        self._last_reason = ""
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.finished = threading.Event()
        self.exit_code: int | None = None
        self.exit_reason = ""
        self._last_pred_ns: int | None = None
        self._signal_stop = False
        self._last_pub = 0
        self._last_sig = (0, float("nan"), -1)
        self._ended = ""
        self._journal_today = ""
        self.journal: Journal | None = None
        """An :class:`engine.journal.Journal` with an open session, or None."""
        self._journal_book_fills = False
        """True in demo/replay: the journal's fills come from the position book (one row per
        entry and per exit); a broker session journals the broker's fills instead."""
        self._paced_now = False
        """Whether the replay loop paces the current bar (the demo's nights run unpaced)."""
        self._book_qty = 0
        self._book_avg = 0.0
        self._book_costs = 0.0
        self._entry_fee = 0.0
        self._entry_seen = False

    # ------------------------------------------------------------------ commands (any thread)
    def snapshot(self) -> SessionSnapshot:
        with self._lock:
            return self._snap  # type: ignore[return-value]

    def _submit(self, name: str, *args) -> None:
        self._cmd.put((name, args))
        self._wake.set()
        if self._thread is None or not self._thread.is_alive():
            # Not running on a thread (tests, after the end): apply now on the caller's thread.
            self._apply_commands()
            self._publish()

    def pause(self) -> None:
        self._submit("pause")

    def resume(self) -> None:
        self._submit("resume")

    def flatten(self) -> None:
        self._submit("flatten")

    def halt(self, reason: str) -> None:
        self._submit("halt", reason or "operator kill switch")

    def reset_halt(self, confirmation: str) -> None:
        if confirmation != RESET_PHRASE:
            raise RuntimeCommandError(f"reset refused: type {RESET_PHRASE} exactly to reset a halt")
        self._submit("reset", confirmation)

    def call_on_engine(self, fn: Any) -> Any:
        """Run ``fn()`` on the engine thread with the next commands (between bars; a live session
        first books the venue's fills and order updates); returns a
        :class:`concurrent.futures.Future` of its result (issue 26: the remote control's
        broker-confirmed answers, :mod:`engine.remote.control`)."""
        from concurrent.futures import Future

        fut: Future = Future()
        self._submit("call", fn, fut)
        return fut

    def quit(self, policy: str = "flatten") -> None:
        if policy not in ("flatten", "keep_protected"):
            raise RuntimeCommandError(f"unknown quit policy {policy!r}")
        self._submit("quit", policy)

    def ui_lost(self, policy: str, reason: str) -> None:
        log.critical("console lost (%s): applying on_disconnect=%s", reason, policy)
        if policy == "flatten":
            self._submit("halt", f"console lost: {reason}")
        else:
            # protect: whatever ends the session after this keeps the position with its bracket
            # working (R-UI-6); it is not flattened by the shutdown that follows.
            self._quit_policy = "keep_protected"
            self._submit("note", f"console lost ({reason}): protection kept, session continues")

    def _bind_signal_errors(self) -> None:
        """Route the signal source's failures (a user strategy that raises or makes a bad
        signal: :class:`engine.strategy.runtime.StrategySource`) to :meth:`_strategy_failed`."""
        if hasattr(self.signals, "on_error"):
            self.signals.on_error = self._strategy_failed

    def _strategy_failed(self, message: str) -> None:
        """The strategy failed on this bar (no signal was used): new entries paused with the
        error shown, protection (the working bracket) stays; the operator resumes."""
        try:
            self.risk.pause(f"strategy error: {message}", "system")
        except Exception:  # HALTED already: nothing enters anyway
            log.exception("pausing after the strategy error failed")
        self._event("alert", f"strategy error: {message}; entries paused, protection kept", "error")

    def run_backtest(self, params: BacktestParams, on_progress: ProgressCallback) -> BacktestResult:
        from engine.runtime.work import run_backtest_for_console

        return run_backtest_for_console(self.settings, params, on_progress)

    def run_training(self, params: TrainingParams, on_progress: ProgressCallback) -> TrainingResult:
        from engine.runtime.work import run_training_for_console

        return run_training_for_console(self.settings, params, on_progress)

    def run_walk_forward(self, params: BacktestParams, on_progress: ProgressCallback,
                         stop: threading.Event | None = None) -> WalkForwardRun:
        from engine.runtime.work import run_walk_forward_for_console

        return run_walk_forward_for_console(self.settings, params, on_progress, stop=stop)

    # ------------------------------------------------------------------ engine thread
    def _apply_commands(self) -> None:
        while True:
            try:
                name, args = self._cmd.get_nowait()
            except queue.Empty:
                return
            try:
                o = self.kernel.oco
                if name == "pause":
                    self.risk.pause("operator pause", "operator")
                    self._event("state", "paused by operator: no new entries, protection kept")
                elif name == "resume":
                    self.risk.resume("operator")
                    self._event("state", "resumed by operator")
                elif name == "flatten":
                    if o.pos != 0 or (o.entry is not None and o.entry.is_working):
                        o.flatten("flatten")
                        self._event("order", "operator flatten: closing at market", "warning")
                    else:
                        self._event("info", "flatten: already flat")
                elif name == "halt":
                    already = self._last_state == "HALTED"
                    self.risk.halt(args[0], "operator")
                    if o.pos != 0 or (o.entry is not None and o.entry.is_working):
                        o.flatten("risk")
                    if not already:  # a second kill-switch press is audited, not announced again
                        self._event("state", f"HALTED: {args[0]}", "error")
                    self._last_state, self._last_reason = "HALTED", args[0]
                elif name == "reset":
                    self.risk.reset_halt("operator", args[0])
                    self._event("state", "halt reset by operator", "warning")
                elif name == "note":
                    self._event("alert", args[0], "warning")
                elif name == "call":  # issue 26: call_on_engine
                    fn, fut = args
                    try:
                        fut.set_result(fn())
                    except Exception as exc:
                        fut.set_exception(exc)
                    continue  # not logged: the remote control polls with it
                elif name == "quit":
                    self.exit_reason = f"operator quit ({args[0]})"
                    self._quit_policy = args[0]
                    self._stop.set()
            except RiskActionError as exc:
                # a command the risk rules refuse (pause while HALTED, reset when not halted)
                # is answered, never the end of the session
                self._event("info", f"{name} refused: {exc}", "warning")
                continue
            log.info("command %s applied", name)  # the record carries the engine time

    def start(self) -> threading.Thread:
        """Run :meth:`run` on a daemon engine thread (the console's mode)."""
        self._thread = threading.Thread(target=self.run, name="engine", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, reason: str = "stop requested", *, by_signal: bool = False) -> None:
        """Ask the loop to end (signal handlers, tests); shutdown follows on the engine thread.
        ``by_signal`` makes :meth:`run` return :data:`EXIT_SIGNAL`."""
        self.exit_reason = self.exit_reason or reason
        self._signal_stop = self._signal_stop or by_signal
        self._stop.set()
        self._wake.set()

    # ------------------------------------------------------------------ events and snapshots
    def _event(self, kind: str, message: str, severity: str = "information") -> None:
        self._event_seq += 1
        self._events.append(SessionEvent(self._event_seq, self.clock.now_ns(), kind, message, severity))
        self._events = self._events[-50:]
        lvl = {"information": 20, "warning": 30, "error": 40}.get(severity, 20)
        log.log(lvl, "%s: %s", kind, message)
        if kind != "fill":   # round trips are journaled as trades (_collect_events)
            self._journal("event", self.clock.now_ns(), kind, message, severity)

    def _refresh_journal_today(self) -> None:
        """Re-read today's round trips and net P&L from the journal (after a trade is written and
        when the journal opens), for the console's broker pane; a read failure is logged."""
        j = self.journal
        if j is None or self._journal_book_fills:
            # demo/replay: every run replays the same simulated days, so the journal's day
            # would add up earlier runs; the equity pane's "today" is this run's
            self._journal_today = ""
            return
        try:
            day = day_date(int(self.cal.label_one(self.clock.now_ns())[0])).isoformat()
            rows = j.by_day(day, day)
        except Exception:
            log.exception("journal read for the console failed")
            return
        n = int(rows[0]["trades"]) if rows else 0
        net = float(rows[0]["net_pnl"] or 0.0) if rows else 0.0
        self._journal_today = f"journal {day}: {n} trades, net {money(net, sign=True)}"

    def _journal(self, what: str, *args, **kw) -> None:
        """Write to the journal (``Journal.<what>(*args, **kw)``) when there is one. A failed
        write is loud and safe: a critical log, the journal is dropped for the rest of the
        session and new entries are paused (protection stays) until the operator resumes."""
        j = self.journal
        if j is None:
            return
        try:
            getattr(j, what)(*args, **kw)
        except Exception as exc:
            self.journal = None
            log.critical("journal write failed (%s): no more journal writes this session; "
                         "new entries paused", exc)
            try:
                self.risk.pause(f"journal write failed: {exc}", "system")
            except Exception:
                log.exception("pausing after the journal failure failed")
            alerts = getattr(self, "alerts", None)
            if alerts is not None:
                alerts.send("critical", "journal", f"journal write failed: {exc}; new entries paused")

    def _collect_events(self) -> None:
        k = self.kernel
        book_fills = self._journal_book_fills and self.journal is not None
        for t in k.trades[self._ntrades_seen:]:
            side = "long" if t.direction > 0 else "short"
            if book_fills:
                self._journal_trade_fills(t)
            self._event("fill", f"closed {side} {t.contracts} @ {t.exit_price:.2f} ({t.exit_reason}) "
                        f"net {money(t.net_pnl, sign=True)}", "information" if t.net_pnl >= 0 else "warning")
            self._journal("trade", t)
            self._entry_seen = False
        if len(k.trades) > self._ntrades_seen:
            self._refresh_journal_today()
        self._ntrades_seen = len(k.trades)
        book = k.book
        q = int(book.qty)
        if q != self._book_qty:
            prev = self._book_qty
            if q != 0 and (prev == 0 or (q > 0) != (prev > 0) or abs(q) > abs(prev)):
                fresh = prev == 0 or (q > 0) != (prev > 0)
                added = abs(q) if fresh else abs(q) - abs(prev)
                px = float(book.avg_price) if fresh else \
                    (float(book.avg_price) * abs(q) - self._book_avg * abs(prev)) / added
                fee = float(book.costs) - self._book_costs
                self._entry_fee = fee if fresh else self._entry_fee + fee
                self._entry_seen = True
                self._event("fill", f"opened {'long' if q > 0 else 'short'} {added} @ {px:.2f}")
                if book_fills:
                    entry = k.oco.entry   # its last status change is the fill (engine clock)
                    hist = getattr(entry, "history", None)
                    ts = int(hist[-1][1]) if hist else self.clock.now_ns()
                    self._journal("fill", ts_ns=ts, side=1 if q > 0 else -1, qty=added,
                                  price=px, fees=fee, tag="entry", kind="simulated")
            self._book_qty = q
        self._book_avg = float(book.avg_price)
        self._book_costs = float(book.costs)
        for a in k.stats.alerts[self._alerts_seen:]:
            self._event("alert", f"{a[1]}: {a[2]}", "error")
        self._alerts_seen = len(k.stats.alerts)
        st, why = self.risk.state(self.clock.now_ns())
        name = getattr(st, "name", str(st))
        if name != self._last_state:
            breaker = why.startswith(_BREAKER_REASONS) or (
                name == "ACTIVE" and self._last_reason.startswith(_BREAKER_REASONS))
            if why.upper().startswith(name + ":"):  # the risk manager's reason names the state
                why = why[len(name) + 1:].strip()
            if self._last_state and not breaker:
                self._event("state", f"{name}{': ' + why if why else ''}",
                            "error" if name == "HALTED" else "warning" if name == "REDUCING" else "information")
            elif breaker:
                # Market breakers (volume/spread/volatility) follow the market bar by bar and can
                # flip every bar overnight: logged at DEBUG, shown in the risk pane, no event.
                log.debug("state %s%s", name, f": {why}" if why else "")
            self._last_state = name
            self._last_reason = why

    def _journal_trade_fills(self, t) -> None:
        """Demo/replay: the journal rows of a round trip's fills (its entry too when the entry
        and the exit filled within one bar, unseen by the position book)."""
        fee_in = self._entry_fee if self._entry_seen else float(t.commission) / 2
        if not self._entry_seen:
            self._journal("fill", ts_ns=int(t.entry_ts), side=int(t.direction), qty=int(t.contracts),
                          price=float(t.entry_price), fees=fee_in, tag="entry", kind="simulated")
        self._journal("fill", ts_ns=int(t.exit_ts), side=-int(t.direction), qty=int(t.contracts),
                      price=float(t.exit_price), fees=float(t.commission) - fee_in,
                      tag=str(t.exit_reason), kind="simulated", pnl=float(t.gross_pnl))

    def _publish(self) -> None:
        self._last_pub = perf_ns()
        snap = self._build()
        with self._lock:
            self._snap = snap

    def _build(self) -> SessionSnapshot:
        now = self.clock.now_ns()
        k, o = self.kernel, self.kernel.oco
        rs = self.risk.snapshot()
        tick = self.spec.tick_size
        quote, data_age = self._market_view(now)
        last = quote.last
        state_name = getattr(rs.state, "name", str(rs.state))
        self._snap_seq += 1
        header = HeaderView(self.cfg.mode, self.cfg.account, state_name, bool(rs.manual_pause), now,
                            data_age, self.spec.symbol, self._speed_label(), self._ended)
        src = self.signals
        probs: tuple[float, ...] = ()
        inf_us = None
        if isinstance(src, ModelSignals) and src.last is not None:
            probs = tuple(float(p) for p in src.last.probs)
            inf_us = src.last.latency_ns / 1e3
        elif self.timings:
            inf_us = self.timings[-1].inference / 1e3
        d, conf, _ = self._last_sig
        model = ModelView(src.label, src.is_baseline, CLASS_NAMES, probs,
                          None if conf != conf else conf, self.settings.signal.min_confidence,
                          {1: "LONG", -1: "SHORT"}.get(d, "NONE"),
                          None if self._last_pred_ns is None else (now - self._last_pred_ns) / 1e6, inf_us)
        side = "LONG" if o.pos > 0 else "SHORT" if o.pos < 0 else "FLAT"
        # Open P&L after the costs the open trade has paid (its entry commission): the same
        # convention as equity and the day-loss meter, so today's P&L = realized today + this
        # = equity now - equity at the day's start, to the cent (specs/console.md).
        unreal = (k.book.unrealized(last) + (k.cash - k.risk.balance)) if (last is not None and o.pos != 0) else 0.0

        def leg(order, kind):
            if order is None:
                return None
            dist = None
            state = _LEG_STATE.get(order.status.name, order.status.name)
            if last is not None and order.price is not None and state in ("WORKING", "PENDING", "PARTIAL"):
                dist = abs(order.price - last) / tick  # a filled/cancelled leg has no distance
            return OrderLegView(kind, float(order.price or 0.0), dist, state, str(order.order_id))

        position = PositionView(side, abs(o.pos), o.avg if o.pos != 0 else None, float(unreal),
                                float(rs.daily_realized_pnl), leg(o.stop, "stop"), leg(o.target, "target"),
                                bool(o.pos == 0 or o.protected()), bool(o.exiting()))
        risk = RiskView(state_name, rs.reason, float(rs.daily_loss_used), float(rs.daily_loss_limit),
                        float(rs.day_drawdown), float(rs.daily_drawdown_limit), int(rs.consecutive_losses),
                        float(rs.kill_switch_distance), float(rs.kill_switch_limit),
                        tuple(str(b) for b in rs.breakers), rs.pause_until_ns or None, **self._rules_view(),
                        lockouts=tuple(rs.lockouts))  # issue 26
        day, _, _, _, row = self.cal.label_one(now)
        eod_t = self.cal.eod_table(self.settings.eod)  # the [eod] profile in force
        times = tuple((name, int(eod_t[row, j])) for j, (name, _) in enumerate(EOD_PHASES)) if row >= 0 else ()
        eod = EodView(rs.eod_phase, times, day_date(day).isoformat())
        broker = self._broker_view(now)
        if self._journal_today:
            broker = replace(broker, journal=self._journal_today)
        logs = tuple(LogLine(*r) for r in self.ring.tail(30)) if self.ring is not None else ()
        n_eq = len(self.equity)
        if n_eq <= 300:
            eq = tuple(self.equity)
        else:  # the whole session, 300 points evenly spaced, the last one = now
            eq = tuple(self.equity[round(j * (n_eq - 1) / 299)] for j in range(300))
        return SessionSnapshot(self._snap_seq, header, quote, model, position, risk, eod, broker,
                               eq, logs, tuple(self._events[-20:]))

    # ------------------------------------------------------------------ hooks (bars-fed default)
    def _rules_view(self) -> dict:
        """Extra :class:`RiskView` fields of the account's rules (the risk manager's
        ``account_rules``: :func:`engine.risk.account_rules.risk_view_fields`; none without)."""
        from engine.risk.account_rules import risk_view_fields

        r = self.risk
        rules = getattr(r, "account_rules", None)
        if rules is None:
            return {}
        return risk_view_fields(rules, float(r.equity), float(r.balance))

    def _market_view(self, now: int) -> tuple[QuoteView, float | None]:
        """(quote view, data age in ms of the engine clock) from the bars processed so far.

        Bars carry no quotes, so bid/ask/spread come from the documented top-of-book model
        :mod:`engine.market.spread` (1 tick normally, 2 in a volatile night, 3 when volatility is
        extreme; bid = last close): the same model the backtest's spread breaker uses."""
        from engine.market.spread import quote_from_close, spread_ticks_one

        i = self.i
        last = float(self.bars.close[i - 1]) if i > 0 else None
        recent = tuple(float(x) for x in self.bars.close[max(0, i - 60):i])
        data_age = (now - (int(self.bars.ts[i - 1]) + self.bars.bar_ns)) / 1e6 if i > 0 else None
        bid = ask = spread = None
        m = getattr(self, "_last_row", None)
        if last is not None and m is not None:
            st = self.settings
            spread = spread_ticks_one(bool(m.is_rth), float(m.atr), float(m.atr_normal),
                                      st.slippage.high_vol_atr_ratio, st.risk.volatility_breaker_ratio)
            bid, ask = quote_from_close(last, spread, self.spec.tick_size)
        return QuoteView(bid, ask, last, spread, recent, data_age, False), data_age

    def _speed_label(self) -> str:
        """``60x``, or ``max`` while the bars run as fast as possible (no speed, or the demo's
        overnight stretch outside its pace window)."""
        fast = not self.cfg.speed or (self.cfg.pace_window_ny is not None and not self._paced_now)
        return "max" if fast else f"{self.cfg.speed:g}x"

    def _broker_view(self, now: int) -> BrokerView:
        return BrokerView(now, "agree", "simulated venue = local book")

    def _bar_span(self) -> tuple[int | None, int | None]:
        """(first bar open, last processed bar open), UTC ns (None before any)."""
        return int(self.bars.ts[0]), (int(self.bars.ts[self.i - 1]) if self.i else None)

    # ------------------------------------------------------------------ report
    def report(self) -> dict[str, Any]:
        """The session report (R-LIVE-3): trades, P&L, metrics, timings, refusals."""
        from engine.backtest.runner import trades_frame

        k = self.kernel
        account = self._account_verdict()  # first: it marks the trades the venue liquidated
        tr = trades_frame(k.trades)
        trades = json.loads(tr.to_json(orient="records", date_format="iso")) if len(tr) else []
        t = self.timings
        lat = {}
        for name in ("features", "inference", "risk", "order", "total"):
            arr = np.array([getattr(x, name) for x in t], dtype=np.float64) / 1e3 if t else np.zeros(1)
            lat[name] = {"median_us": float(np.median(arr)), "p99_us": float(np.percentile(arr, 99)),
                         "max_us": float(arr.max())}
        net = float(sum(x.net_pnl for x in k.trades))
        days = sorted({int(d) for d in self._days_traded()})
        span = self._bar_span()
        return {
            "mode": self.cfg.mode,
            "symbol": self.spec.symbol,
            "signals": self.signals.label,
            "bars": int(self.i),
            "first_bar_utc": _iso(span[0]) if span[0] is not None else None,
            "last_bar_utc": _iso(span[1]) if span[1] is not None else None,
            "exit_reason": self.exit_reason,
            "starting_balance": self.start_balance,
            "ending_equity": float(k.last_equity),
            "net_pnl": net,
            "trades_count": len(k.trades),
            "position_at_end": int(k.oco.pos),
            "commission": float(sum(x.commission for x in k.trades)),
            "slippage": float(sum(x.slippage for x in k.trades)),
            "trading_days": [day_date(d).isoformat() for d in days],
            "risk": _plain(self.risk.state_dict()) if hasattr(self.risk, "state_dict") else {},
            "refused": dict(k.stats.entries_refused),
            "alerts": [list(map(str, a)) for a in k.stats.alerts],
            "latency": lat,
            "trades": trades,
            "account": account,
        }

    def _account_verdict(self) -> dict | None:
        """The account's verdict (:meth:`engine.risk.account_rules.AccountRules.verdict`) with the
        simulated venue's MLL liquidations, or None without account rules."""
        r = self.risk
        rules = getattr(r, "account_rules", None)
        if rules is None:
            return None
        from engine.risk.account_rules import liquidation_doc

        v = dict(rules.verdict(float(r.balance), float(r.equity)))
        v["liquidations"] = liquidation_doc(self.kernel.trades,
                                            list(getattr(getattr(self, "venue", None), "liquidations", [])))
        return _plain(v)

    def _days_traded(self):
        return {int(self.cal.label_one(t.entry_ts)[0]) for t in self.kernel.trades}


class Session(SessionBase):
    """A replay session over ``bars`` through the simulated venue (see the module docstring).

    Args:
        settings: :class:`engine.config.Settings`.
        bars: the bars to replay (:class:`Bars`, sorted).
        signal_source: :class:`ModelSignals` / :class:`WindowSignals` (``make_signal_source``).
        cfg: :class:`SessionConfig`.
        risk: a risk manager (default: an in-memory ``engine.risk.RiskManager``).

    Raises :class:`SessionError` for empty bars.
    """

    def __init__(self, settings: Settings, bars: Bars, signal_source, cfg: SessionConfig | None = None,
                 *, risk=None, ring: RingHandler | None = None) -> None:
        from engine.parts import sim_parts

        if len(bars) == 0:
            raise SessionError("no bars to replay")
        self.settings = settings
        self.cfg = cfg or SessionConfig()
        self.bars = bars
        self.signals = signal_source
        # The simulated mode's pieces, built as the backtest builds them (engine.parts): the
        # venue needs the whole series (it fills at the next bar's open) and its slippage per
        # bar (the batch market inputs); the kernel's own inputs stream (MarketState below).
        parts = sim_parts(bars, settings, settings.backtest.fill_model, risk=risk, wrap_risk=_TimedRisk)
        self.spec, self.cal, self.clock, self.venue = parts.spec, parts.cal, parts.clock, parts.venue
        self.start_balance = parts.start_balance
        self.risk = parts.risk
        self.kernel = parts.kernel
        self._timed_risk = parts.kernel.risk
        self.market = MarketState(self.cal, bars.bar_ns, settings.stops.atr_period, len(bars),
                                  bars.has_volume, settings=settings)
        self.lookback = int(settings.stops.structure_lookback)
        self.path = StreamingBarPath(self.clock, self.venue, self.kernel, signal_source, self.market,
                                     self._timed_risk, bars.bar_ns)
        self.i = 0
        self.timings: list[BarTiming] = self.path.timings
        self.equity: list[float] = self.path.equity
        self.ring = ring
        self._init_common()
        self._bind_signal_errors()
        if self.cfg.journal_path is not None:
            self._open_sim_journal(Path(self.cfg.journal_path))
        self._publish()

    def _open_sim_journal(self, path: Path) -> None:
        """Demo/replay: open the journal at ``path`` and this session's row (mode ``demo`` or
        ``replay``, account ``SIM``, simulated clock); its fills (one row per entry and per exit,
        from the position book), round trips, halts, manual actions and the summary are written
        as they happen, as a broker session's are. Raises :class:`SessionError` naming the file
        when it cannot be opened (nothing traded)."""
        from engine.clock import LiveClock
        from engine.journal import Journal

        cal = self.cal

        def day_of(ts: int) -> str:
            d = int(cal.label_one(int(ts))[0])
            return day_date(d).isoformat() if d >= 0 else ""

        try:
            j = Journal(path, day_of=day_of)
            j.open_session(mode=self.cfg.mode, account=self.cfg.account, contract=self.spec.symbol,
                           symbol=self.spec.symbol, clock="simulated", started_ns=self.clock.now_ns(),
                           started_wall_ns=LiveClock().now_ns(), start_balance=self.start_balance)
        except Exception as exc:
            raise SessionError(f"trade journal: {exc}") from None
        self.journal = j
        self._journal_book_fills = True

    # ------------------------------------------------------------------ engine thread (replay)
    def step(self) -> bool:
        """Process the next bar; False when the data is exhausted."""
        i = self.i
        b = self.bars
        if i >= len(b):
            return False
        self._apply_commands()
        lo = max(0, i - self.lookback + 1)
        p = self.path
        bar = p.step(i, int(b.ts[i]), float(b.open[i]), float(b.high[i]), float(b.low[i]), float(b.close[i]),
                     float(b.volume[i]), b.high[lo:i + 1], b.low[lo:i + 1])
        self._last_sig = p.last_signal
        self._last_pred_ns = bar.close_ts
        self._last_row = p.last_row
        self.i = i + 1
        self._collect_events()
        if self._thread is None or self.i == len(b):
            self._publish()
        elif perf_ns() - self._last_pub >= self.cfg.publish_interval_ns:
            self._publish()
        return True

    def advance_to(self, ts_ns: int) -> None:
        """Step every bar whose close is ≤ ``ts_ns`` (tests and fixed-clock snapshots)."""
        while self.i < len(self.bars) and int(self.bars.ts[self.i]) + self.bars.bar_ns <= ts_ns:
            self.step()
        self._publish()

    def run(self) -> int:
        """Run to the end of the data (or a quit / stop request) on the calling thread, then shut
        down. Returns the exit code (see ``EXIT_*``). Snapshots are published at most every
        ``publish_interval_ns`` while running."""
        if self._thread is None:
            self._thread = threading.current_thread()
        pacer = Pacer(self.cfg.speed, max(int(self.bars.ts[0]), int(self.cfg.pace_from_ns)),
                      self.cfg.pace_window_ny, self.bars.bar_ns)
        was_paced = False
        code = EXIT_OK
        if self.journal is not None:   # logged here: the log's clock is the engine's by now
            log.info("journal: %s (session %d)", self.journal.path, self.journal.session_id)
        try:
            while not self._stop.is_set():
                if self.i >= len(self.bars):
                    self.exit_reason = self.exit_reason or "end of data"
                    break
                close_i = int(self.bars.ts[self.i]) + self.bars.bar_ns
                wait = pacer.wait_s(close_i, perf_ns())
                self._paced_now = pacer.last_paced
                if self._paced_now and not was_paced:
                    self._publish()   # the screen shows where the fast stretch ended
                was_paced = self._paced_now
                if wait > 0:
                    self._wake.wait(min(wait, 0.25))
                    self._wake.clear()
                    self._apply_commands()
                    self._publish()
                    continue
                self.step()
            if self._signal_stop:
                code = EXIT_SIGNAL
        except Exception as exc:  # R-LIVE-4: unhandled exception → flatten, halt, alert
            log.exception("unhandled exception in the session loop: flattening and halting")
            self.exit_reason = f"error: {exc!r}"
            try:
                self.risk.halt(f"unhandled exception: {exc!r}", "system")
            except Exception:
                log.exception("risk halt failed")
            code = EXIT_ERROR
        self.shutdown(getattr(self, "_quit_policy", "flatten"))
        self._ended = self.exit_reason or "stopped"
        self._event("state", f"session ended: {self._ended}; trades {len(self.kernel.trades)}, "
                    f"net {money(sum(t.net_pnl for t in self.kernel.trades), sign=True)}",
                    "error" if code == EXIT_ERROR else "warning")
        self._publish()
        self.exit_code = code
        self.finished.set()
        return code

    def shutdown(self, policy: str = "flatten") -> None:
        """R-LIVE-3: cancel working entries, flatten (unless ``keep_protected``), let the venue
        fill the exit on the next bar if there is one, save risk state, write the report."""
        o = self.kernel.oco
        if policy == "flatten" and (o.pos != 0 or (o.entry is not None and o.entry.is_working)):
            o.flatten("flatten")
            log.warning("shutdown: flattening %+d contracts", o.pos)
            # The simulated venue fills the market exit at the next bar's open.
            guard = 0
            while (o.pos != 0 or self.kernel.busy_orders()) and self.i < len(self.bars) and guard < 5:
                self.step()
                guard += 1
            if o.pos != 0:
                log.error("shutdown: position %+d still open (no more bars to fill the exit)", o.pos)
        self._publish()
        rep = None
        if self.cfg.report_path is not None:
            rep = self.report()
            write_json_atomic(Path(self.cfg.report_path), rep)
            log.info("session report written to %s", self.cfg.report_path)
        j = self.journal
        if j is not None:
            k = self.kernel
            self._journal("close_session", ended_ns=self.clock.now_ns(), end_balance=float(k.last_equity),
                          net_pnl=float(sum(t.net_pnl for t in k.trades)), trades=len(k.trades),
                          exit_reason=self.exit_reason or "stopped", report=rep or self.report())
            j.close()
            self.journal = None


def _iso(ts: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts / NS_PER_SECOND, tz=timezone.utc).isoformat()


def _plain(d: Any) -> Any:
    if isinstance(d, dict):
        return {str(k): _plain(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_plain(x) for x in d]
    if isinstance(d, (np.integer,)):
        return int(d)
    if isinstance(d, (np.floating,)):
        return float(d)
    if hasattr(d, "name") and not isinstance(d, (str, int, float)):
        return d.name
    return d


def write_json_atomic(path: Path, doc: Any) -> None:
    """Write JSON to ``path`` atomically (:func:`engine.atomic.atomic_write_text`: a temp file in
    the same directory, fsync, os.replace; the parent directory is created)."""
    from engine.atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(doc, indent=2, default=str, allow_nan=True), mode=0o644)
