"""A STAND-IN session runtime for the console: generated market, toy baseline trader, fake
long work. It implements :class:`engine.runtime.snapshot.RuntimeCommands` so the console can be
built and tested before the real session runtime (kernel, risk manager, simulated venue) is
wired in; the lead replaces it with the real runtime. Nothing here is the trading kernel.

What it does:
* Bars come from :func:`engine.market.generate_bars` (1-minute, seeded); time is a
  :class:`engine.clock.SimClock` advanced by :meth:`FakeRuntime.advance` (tests, snapshots) or by
  a background thread (:meth:`FakeRuntime.start`, ``speed`` simulated seconds per real second).
* A toy momentum rule (5-bar return) gives DOWN/FLAT/UP "probabilities"; when confidence ≥ the
  threshold and trading is ACTIVE, not paused and before the EOD ``no_new`` phase, it opens one
  contract with an OCO bracket (stop 8 ticks, target 12 ticks; the stop wins when one bar
  touches both), exits at the EOD ``exit`` phase, on flatten or on halt-with-flatten.
* Risk meters from REQUIREMENTS §0 numbers in ``settings.risk``; costs 0.84 $ per round trip.
* ``run_backtest`` runs the same toy rule over generated or parquet bars, day by day, reporting
  progress; ``run_training`` produces made-up loss/accuracy curves and saves nothing.
"""

from __future__ import annotations

import collections
import math
import threading
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from engine.calendar import EOD_PHASES, calendar_for, day_date, ny_datetime
from engine.clock import NS_PER_SECOND, SimClock
from engine.config import Settings
from engine.data.bars import Bars
from engine.market import generate_bars
from engine.runtime.snapshot import (
    RESET_PHRASE,
    BacktestParams,
    BacktestResult,
    BrokerView,
    EodView,
    HeaderView,
    LogLine,
    ModelView,
    OrderLegView,
    PositionView,
    Progress,
    ProgressCallback,
    QuoteView,
    RiskView,
    RuntimeCommandError,
    SessionEvent,
    SessionSnapshot,
    TradeRow,
    TrainingParams,
    TrainingResult,
)

NS = NS_PER_SECOND
TICK = 0.25
POINT_USD = 5.0
ROUND_TRIP_COST = 0.84
STOP_TICKS = 8
TARGET_TICKS = 12
DEMO_DAY = date(2025, 3, 4)
"""Default trading day of the demo session (a normal Tuesday)."""


@dataclass
class _Trade:
    side: int  # +1 long, -1 short
    size: int
    entry: float
    entry_ns: int
    stop: float
    target: float


class _Trader:
    """The toy baseline: one bar at a time, one position at most. Not the trading kernel."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.closes: collections.deque[float] = collections.deque(maxlen=120)
        self.pos: _Trade | None = None
        self.trades: list[TradeRow] = []
        self.probs: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)

    def predict(self) -> tuple[float, float, float]:
        c = self.closes
        if len(c) < 6:
            return (1 / 3, 1 / 3, 1 / 3)
        mom = (c[-1] - c[-6]) / TICK  # ticks over 5 bars
        z = np.array([-0.12 * mom, 1.0 - 0.03 * abs(mom), 0.12 * mom])
        e = np.exp(z - z.max())
        p = e / e.sum()
        return (float(p[0]), float(p[1]), float(p[2]))

    def on_bar(self, ts_close: int, o: float, h: float, lo: float, c: float, may_enter: bool,
               force_exit: str = "") -> TradeRow | str | None:
        """Process one closed bar. Returns a TradeRow on an exit, "entry" on an entry, or None."""
        self.closes.append(c)
        self.probs = self.predict()
        pos = self.pos
        if pos is not None:
            exit_px, reason = None, ""
            if pos.side > 0:
                if lo <= pos.stop:
                    exit_px, reason = min(pos.stop, o), "stop"
                elif h >= pos.target:
                    exit_px, reason = pos.target, "target"
            else:
                if h >= pos.stop:
                    exit_px, reason = max(pos.stop, o), "stop"
                elif lo <= pos.target:
                    exit_px, reason = pos.target, "target"
            if exit_px is None and force_exit:
                exit_px, reason = c - pos.side * TICK, force_exit
            if exit_px is not None:
                return self.close(ts_close, exit_px, reason)
            return None
        if may_enter:
            down, _, up = self.probs
            conf = max(self.probs)
            if conf >= self.threshold and max(up, down) == conf:
                side = 1 if up > down else -1
                entry = c + side * TICK  # one tick of slippage
                self.pos = _Trade(side, 1, entry, ts_close, entry - side * STOP_TICKS * TICK,
                                  entry + side * TARGET_TICKS * TICK)
                return "entry"
        return None

    def close(self, ts: int, price: float, reason: str) -> TradeRow:
        pos = self.pos
        assert pos is not None
        pnl = (price - pos.entry) * pos.side * pos.size * POINT_USD - ROUND_TRIP_COST * pos.size
        row = TradeRow(pos.entry_ns, ts, "LONG" if pos.side > 0 else "SHORT", pos.size, pos.entry,
                       price, round(pnl, 2), reason)
        self.trades.append(row)
        self.pos = None
        return row


class FakeRuntime:
    """A demo stand-in implementing ``RuntimeCommands`` (see the module docstring).

    Args:
        settings: engine settings (risk limits, threshold, ``ui``); defaults if None.
        day: first CME trading day of the session; more days are generated as time runs on.
        start_ns: engine clock at start (UTC ns); default 09:30 New York of ``day``.
        seed: generator seed.
        warmup_bars: bars processed before ``start_ns`` is reached (history for the panes).
        long_work_wait_s: real seconds the fake backtest/training waits between steps, so that
            the console's progress display can be seen (``threading.Event.wait``; 0 = none).
        backtest_gate: if given, ``run_backtest`` waits for this event before finishing
            (tests hold a backtest "running" with it).
    """

    def __init__(self, settings: Settings | None = None, *, day: date = DEMO_DAY,
                 start_ns: int | None = None, seed: int = 0, mode: str = "demo",
                 account: str = "DEMO-SIM", long_work_wait_s: float = 0.05,
                 backtest_gate: threading.Event | None = None) -> None:
        self.settings = settings or Settings()
        self._lock = threading.RLock()
        self._seed = seed
        self._mode = mode
        self._account = account
        self._wait = long_work_wait_s
        self.backtest_gate = backtest_gate
        self._day = day
        self._bars = generate_bars(day, day, seed=seed)
        self._cal = calendar_for(int(self._bars.ts[0]), int(self._bars.ts[-1]) + 30 * 86_400 * NS)
        if start_ns is None:
            row = self._cal.session_row(day)
            start_ns = int(self._cal.table.rth_open[row])
        self.clock = SimClock(int(self._bars.ts[0]))
        self._i = 0  # next bar to process
        self._trader = _Trader(self.settings.signal.min_confidence)
        self._state = "ACTIVE"
        self._halt_reason = ""
        self._paused = False
        self._realized_day = 0.0
        self._tday: int | None = None
        self._cum_realized = 0.0
        self._day_peak = 0.0
        self._consec = 0
        self._pause_until: int | None = None
        self._equity = collections.deque([self.settings.account.starting_capital], maxlen=240)
        self._logs: collections.deque[LogLine] = collections.deque(maxlen=200)
        self._events: collections.deque[SessionEvent] = collections.deque(maxlen=50)
        self._event_seq = 0
        self._last_reconcile: int | None = None
        self._last_bar_close: int | None = None
        self._stopped = False
        self.quit_policy: str | None = None
        self.ui_lost_policy: str | None = None
        self.commands: list[str] = []  # audit trail of console commands (tests read it)
        self._version = 0
        self._snap: SessionSnapshot | None = None
        self._snap_version = -1
        self._thread: threading.Thread | None = None
        self._stop_evt = threading.Event()
        self._log("INFO", "runtime", "demo runtime started: generated MES market, rule-based baseline")
        self.advance_to(start_ns)

    # ------------------------------------------------------------------ time
    def advance_to(self, ts_ns: int) -> None:
        """Move the engine clock to ``ts_ns``, processing every bar that closes on the way."""
        with self._lock:
            bar_ns = self._bars.bar_ns
            while True:
                if self._i >= len(self._bars):
                    self._extend()
                close_ns = int(self._bars.ts[self._i]) + bar_ns
                if close_ns > ts_ns:
                    break
                self.clock.advance_to(max(close_ns, self.clock.now_ns()))
                self._on_bar(self._i)
                self._i += 1
            if ts_ns > self.clock.now_ns():
                self.clock.advance_to(ts_ns)
            if self._pause_until is not None and self.clock.now_ns() >= self._pause_until:
                self._pause_until = None
                self._log("INFO", "risk", "consecutive-loss pause over")
            self._version += 1

    def advance(self, seconds: float) -> None:
        """Advance the engine clock by ``seconds`` of simulated time."""
        self.advance_to(self.clock.now_ns() + int(seconds * NS))

    def start(self, speed: float = 60.0, hz: float = 10.0) -> None:
        """Run the market in a background thread: ``speed`` simulated seconds per real second,
        in steps of 1/``hz`` real seconds (``threading.Event.wait``; no wall-clock reads)."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop_evt.wait(1.0 / hz):
                if self._stopped:
                    return
                self.advance(speed / hz)

        self._thread = threading.Thread(target=loop, name="demo-runtime", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread (if any)."""
        self._stop_evt.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def _extend(self) -> None:
        nxt = day_date(int(self._cal.label(np.asarray([self._bars.ts[-1]])).trading_day[0])) + timedelta(days=1)
        while not self._cal.is_trading_day(nxt):
            nxt += timedelta(days=1)
        more = generate_bars(nxt, nxt, seed=self._seed + nxt.toordinal(),
                             start_price=float(self._bars.close[-1]))
        b = self._bars
        self._bars = Bars(np.concatenate([b.ts, more.ts]), np.concatenate([b.open, more.open]),
                          np.concatenate([b.high, more.high]), np.concatenate([b.low, more.low]),
                          np.concatenate([b.close, more.close]), np.concatenate([b.volume, more.volume]),
                          b.symbol, b.bar_ns, b.source)

    # ------------------------------------------------------------------ per bar
    def _on_bar(self, i: int) -> None:
        b = self._bars
        now = self.clock.now_ns()
        self._last_bar_close = now
        phase = self._cal.eod_phase(now - 1)
        risk_ok = self._state == "ACTIVE" and not self._paused and self._pause_until is None
        lab = self._cal.label(np.asarray([b.ts[i]]))
        tday = int(lab.trading_day[0])
        if tday != self._tday:
            if self._tday is not None:
                self._log("INFO", "risk", f"new trading day {day_date(tday).isoformat()}: daily meters reset")
            self._tday = tday
            self._realized_day = 0.0
            self._day_peak = 0.0
        may_enter = risk_ok and phase in ("normal", "reduce") and bool(lab.is_rth[0])
        force = "eod" if phase in ("exit", "flat") else ""
        res = self._trader.on_bar(now, float(b.open[i]), float(b.high[i]), float(b.low[i]),
                                  float(b.close[i]), may_enter, force)
        if res == "entry":
            p = self._trader.pos
            side = "LONG" if p.side > 0 else "SHORT"
            self._event("fill", f"filled {side} 1 @ {p.entry:.2f}; OCO stop {p.stop:.2f} target {p.target:.2f}")
        elif isinstance(res, TradeRow):
            self._book(res)
        if now - (self._last_reconcile or 0) >= int(self.settings.reconcile.interval_s * NS):
            self._last_reconcile = now
        self._update_state(phase)

    def _book(self, row: TradeRow) -> None:
        self._realized_day += row.pnl_usd
        self._cum_realized += row.pnl_usd
        self._day_peak = max(self._day_peak, self._realized_day)
        self._equity.append(self.settings.account.starting_capital + self._cum_realized)
        self._consec = self._consec + 1 if row.pnl_usd < 0 else 0
        self._event("fill", f"exit {row.side} @ {row.exit_price:.2f} ({row.reason}) P&L ${row.pnl_usd:+.2f}",
                    "information" if row.pnl_usd >= 0 else "warning")
        for losses, secs in sorted(self.settings.risk.consecutive_loss_pauses, reverse=True):
            if self._consec == int(losses):
                self._pause_until = self.clock.now_ns() + int(float(secs) * NS)
                self._event("alert", f"{losses} losses in a row: pause {int(secs) // 60} min", "warning")
                break
        if -self._cum_realized >= self.settings.risk.kill_switch_loss:
            self._halt("kill switch: cumulative loss")

    def _update_state(self, phase: str) -> None:
        if self._state == "HALTED":
            return
        r = self.settings.risk
        reason = ""
        if -self._realized_day >= r.daily_loss_limit:
            reason = "daily loss limit"
        elif self._day_peak - self._realized_day >= r.daily_drawdown_limit:
            reason = "daily drawdown limit"
        elif phase in ("no_new", "exit", "flat"):
            reason = f"EOD {phase}"
        new = "REDUCING" if reason else "ACTIVE"
        if new != self._state:
            self._state = new
            self._event("state", f"trading state {new}" + (f": {reason}" if reason else ""), "warning")
        self._reason = reason

    def _halt(self, reason: str) -> None:
        if self._state != "HALTED":
            self._state = "HALTED"
            self._halt_reason = reason
            self._event("state", f"HALTED: {reason}", "error")

    # ------------------------------------------------------------------ log/events
    def _log(self, level: str, source: str, msg: str) -> None:
        self._logs.append(LogLine(self.clock.now_ns() if hasattr(self, "clock") else 0, level, source, msg))

    def _event(self, kind: str, msg: str, severity: str = "information") -> None:
        self._event_seq += 1
        self._events.append(SessionEvent(self._event_seq, self.clock.now_ns(), kind, msg, severity))
        level = {"information": "INFO", "warning": "WARNING", "error": "ERROR"}[severity]
        self._log(level, {"fill": "exec", "state": "risk", "alert": "alert"}.get(kind, "runtime"), msg)

    # ------------------------------------------------------------------ RuntimeCommands
    def snapshot(self) -> SessionSnapshot:
        with self._lock:
            if self._snap is not None and self._snap_version == self._version:
                return self._snap
            self._snap = self._build()
            self._snap_version = self._version
            return self._snap

    def _touch(self) -> None:
        self._version += 1

    def pause(self) -> None:
        with self._lock:
            self.commands.append("pause")
            if not self._paused:
                self._paused = True
                self._event("state", "paused by operator: no new entries", "warning")
            self._touch()

    def resume(self) -> None:
        with self._lock:
            self.commands.append("resume")
            if self._paused:
                self._paused = False
                self._event("state", "resumed by operator")
            self._touch()

    def flatten(self) -> None:
        with self._lock:
            self.commands.append("flatten")
            if self._trader.pos is not None:
                row = self._trader.close(self.clock.now_ns(), self._trader.closes[-1] - self._trader.pos.side * TICK,
                                         "flatten")
                self._book(row)
            else:
                self._log("INFO", "exec", "flatten: already flat")
            self._touch()

    def halt(self, reason: str) -> None:
        with self._lock:
            self.commands.append(f"halt:{reason}")
            self._halt(reason)
            self._touch()

    def reset_halt(self, confirmation: str) -> None:
        with self._lock:
            self.commands.append("reset_halt")
            if confirmation != RESET_PHRASE:
                raise RuntimeCommandError(f"reset refused: type {RESET_PHRASE} exactly (got {confirmation!r})")
            if self._state != "HALTED":
                raise RuntimeCommandError("reset refused: trading is not halted")
            self._state = "ACTIVE"
            self._halt_reason = ""
            self._event("state", "halt reset by operator (audited)", "warning")
            self._touch()

    def quit(self, policy: str) -> None:
        if policy not in ("flatten", "keep_protected"):
            raise RuntimeCommandError(f"quit policy {policy!r}: expected 'flatten' or 'keep_protected'")
        with self._lock:
            self.commands.append(f"quit:{policy}")
            if policy == "flatten":
                self.flatten()
            self.quit_policy = policy
            self._stopped = True
            self._log("INFO", "runtime", f"session stopped ({policy})")
        self.stop()

    def ui_lost(self, policy: str, reason: str) -> None:
        if policy not in ("protect", "flatten"):
            raise RuntimeCommandError(f"on_disconnect policy {policy!r}: expected 'protect' or 'flatten'")
        with self._lock:
            self.commands.append(f"ui_lost:{policy}")
            self.ui_lost_policy = policy
            self._log("ERROR", "runtime", f"console lost ({reason}): policy {policy}")
            if policy == "flatten":
                self.flatten()
                self._halt(f"console lost: {reason}")
        self.stop()

    # ------------------------------------------------------------------ snapshot
    def _build(self) -> SessionSnapshot:
        now = self.clock.now_ns()
        tr = self._trader
        last = tr.closes[-1] if tr.closes else None
        bid = ask = spread = None
        if last is not None:
            bid, ask, spread = last - TICK * (self._i % 2), last + TICK * ((self._i + 1) % 2), 1.0
        age = None if self._last_bar_close is None else (now - self._last_bar_close) / 1e6
        stale_ms = self.settings.projectx.stale_feed_s * 1000
        quote = QuoteView(bid, ask, last, spread, tuple(list(tr.closes)[-60:]), age,
                          stale=age is not None and age > max(stale_ms, 2 * self._bars.bar_ns / 1e6))
        probs = tr.probs
        conf = max(probs) if tr.closes else None
        signal = "NONE"
        if conf is not None and conf >= tr.threshold:
            signal = {0: "SHORT", 1: "NONE", 2: "LONG"}[int(np.argmax(probs))]
        model = ModelView("rule-based baseline", True, ("DOWN", "FLAT", "UP"), probs, conf, tr.threshold,
                          signal, age, 42.0 if tr.closes else None)
        pos = tr.pos
        if pos is None:
            position = PositionView("FLAT", 0, None, 0.0, round(self._realized_day, 2), None, None, True)
            unreal = 0.0
        else:
            unreal = (last - pos.entry) * pos.side * pos.size * POINT_USD
            stop = OrderLegView("stop", pos.stop, abs(last - pos.stop) / TICK, "WORKING", "demo-stop")
            tgt = OrderLegView("target", pos.target, abs(pos.target - last) / TICK, "WORKING", "demo-target")
            position = PositionView("LONG" if pos.side > 0 else "SHORT", pos.size, pos.entry, round(unreal, 2),
                                    round(self._realized_day, 2), stop, tgt, True)
        r = self.settings.risk
        day_total = self._realized_day + unreal
        breakers = []
        if self._paused:
            breakers.append("operator pause")
        if self._pause_until is not None:
            breakers.append("loss-streak pause")
        reason = self._halt_reason if self._state == "HALTED" else getattr(self, "_reason", "")
        risk = RiskView(self._state, reason, round(max(0.0, -day_total), 2), r.daily_loss_limit,
                        round(max(0.0, self._day_peak - day_total), 2), r.daily_drawdown_limit, self._consec,
                        round(r.kill_switch_loss + min(0.0, self._cum_realized + unreal), 2), r.kill_switch_loss,
                        tuple(breakers), self._pause_until)
        lab = self._cal.label(np.asarray([now], dtype=np.int64))
        tday = day_date(int(lab.trading_day[0]))
        if self._cal.is_trading_day(tday):
            times = tuple(sorted(self._cal.eod_times(tday).items(), key=lambda kv: kv[1]))
        else:
            times = ()
        eod = EodView(self._cal.eod_phase(now), times, tday.isoformat())
        broker = BrokerView(self._last_reconcile, "agree" if self._last_reconcile else "never")
        header = HeaderView(self._mode, self._account, self._state, self._paused, now, age, "MES", "demo")
        return SessionSnapshot(self._version, header, quote, model, position, risk, eod, broker,
                               tuple(self._equity), tuple(self._logs)[-50:], tuple(self._events))

    # ------------------------------------------------------------------ long work (fake)
    def _pause_step(self) -> None:
        if self._wait > 0:
            threading.Event().wait(self._wait)

    def run_backtest(self, params: BacktestParams, on_progress: ProgressCallback) -> BacktestResult:
        """The toy baseline over generated (``data="demo"``) or parquet bars, day by day."""
        if params.fill_model not in ("conservative", "optimistic", "realistic"):
            raise RuntimeCommandError(f"fill model {params.fill_model!r}: conservative, optimistic or realistic")
        if params.model != "baseline":
            raise RuntimeCommandError(
                f"model {params.model!r}: the demo runtime runs only the rule-based baseline")
        start = params.start or date(2025, 3, 3)
        end = params.end or (start + timedelta(days=13))
        if end < start:
            raise RuntimeCommandError(f"end {end} is before start {start}")
        if params.data == "demo":
            bars = generate_bars(start, end, seed=params.seed)
        else:
            bars = _read_parquet(Path(params.data), start, end)
        cal = calendar_for(int(bars.ts[0]), int(bars.ts[-1]))
        lab = cal.label(bars.ts)
        days = np.unique(lab.trading_day)
        trader = _Trader(self.settings.signal.min_confidence)
        equity = [self.settings.account.starting_capital]
        bar_ns = bars.bar_ns
        for k, d in enumerate(days):
            idx = np.nonzero(lab.trading_day == d)[0]
            tday = day_date(int(d))
            eod = cal.eod_times(tday) if cal.is_trading_day(tday) else None
            for i in idx:
                t_close = int(bars.ts[i]) + bar_ns
                force = "eod" if eod is not None and t_close >= eod["exit"] else ""
                may = bool(lab.is_rth[i]) and (eod is None or t_close < eod["no_new"])
                res = trader.on_bar(t_close, bars.open[i], bars.high[i], bars.low[i], bars.close[i], may, force)
                if isinstance(res, TradeRow):
                    equity.append(equity[-1] + res.pnl_usd)
            if trader.pos is not None:
                row = trader.close(int(bars.ts[idx[-1]]) + bar_ns, float(bars.close[idx[-1]]), "eod")
                equity.append(equity[-1] + row.pnl_usd)
            on_progress(Progress(k + 1, len(days), f"{tday.isoformat()}: {len(trader.trades)} trades",
                                 (("equity", equity[-1]),)))
            self._pause_step()
        if self.backtest_gate is not None:
            self.backtest_gate.wait()
        return BacktestResult(_metrics(trader.trades, equity), tuple(equity), tuple(trader.trades), "")

    def run_training(self, params: TrainingParams, on_progress: ProgressCallback) -> TrainingResult:
        """Made-up, seeded learning curves (the demo runtime trains nothing, saves nothing)."""
        if params.arch not in ("mlp", "lstm", "hybrid", "transformer"):
            raise RuntimeCommandError(f"architecture {params.arch!r}: mlp, lstm, hybrid or transformer")
        rng = np.random.default_rng(7)
        folds = 3 if params.walk_forward else 1
        hist = []
        total = folds * params.epochs
        for f in range(folds):
            for e in range(params.epochs):
                tl = 1.10 - 0.10 * (1 - math.exp(-e / 5)) + 0.01 * rng.standard_normal()
                vl = 1.08 - 0.07 * (1 - math.exp(-e / 4)) + 0.004 * e * (e > 10) + 0.01 * rng.standard_normal()
                va = 0.36 + 0.14 * (1 - math.exp(-e / 5)) + 0.01 * rng.standard_normal()
                hist.append((f + 1, e + 1, round(tl, 4), round(vl, 4), round(va, 4)))
                on_progress(Progress(f * params.epochs + e + 1, total, f"fold {f + 1}/{folds} epoch {e + 1}",
                                     (("train_loss", tl), ("val_loss", vl), ("val_acc", va)), f + 1, folds))
                self._pause_step()
        accs = [h[4] for h in hist if h[1] == params.epochs]
        metrics = (("architecture", params.arch), ("folds", str(folds)),
                   ("out-of-sample accuracy", f"{np.mean(accs):.3f}"),
                   ("note", "demo runtime: made-up curves, nothing trained"))
        return TrainingResult(metrics, "", tuple(hist))


def _metrics(trades: list[TradeRow], equity: list[float]) -> tuple[tuple[str, str], ...]:
    pnl = np.array([t.pnl_usd for t in trades]) if trades else np.zeros(0)
    eq = np.asarray(equity)
    dd = float(np.max(np.maximum.accumulate(eq) - eq)) if eq.size else 0.0
    wins = pnl[pnl > 0].sum()
    losses = -pnl[pnl < 0].sum()
    return (
        ("trades", str(len(trades))),
        ("net P&L", f"${pnl.sum():,.2f}"),
        ("win rate", f"{(pnl > 0).mean():.1%}" if pnl.size else "n/a"),
        ("profit factor", f"{wins / losses:.2f}" if losses > 0 else "n/a"),
        ("max drawdown", f"${dd:,.2f}"),
        ("avg trade", f"${pnl.mean():,.2f}" if pnl.size else "n/a"),
    )


def _read_parquet(path: Path, start: date, end: date) -> Bars:
    import pandas as pd

    if not path.exists():
        raise RuntimeCommandError(f"{path}: no such bars file")
    df = pd.read_parquet(path, columns=["ts_event", "open", "high", "low", "close"])
    ts = df["ts_event"].dt.as_unit("ns").astype("int64").to_numpy()
    cal = calendar_for(int(ts[0]), int(ts[-1]))
    lab = cal.label(ts)
    lo, hi = (start - date(1970, 1, 1)).days, (end - date(1970, 1, 1)).days
    keep = lab.in_session & (lab.trading_day >= lo) & (lab.trading_day <= hi)
    if not keep.any():
        raise RuntimeCommandError(f"{path}: no bars between {start} and {end}")
    f = df[keep]
    return Bars(ts[keep], f.open.to_numpy(), f.high.to_numpy(), f.low.to_numpy(), f.close.to_numpy(),
                np.full(int(keep.sum()), np.nan), "ES", 60 * NS, str(path))


def ny_clock_text(ts_ns: int) -> str:
    """``HH:MM:SS`` New York wall time of a UTC ns instant (for consoles)."""
    return ny_datetime(ts_ns).strftime("%H:%M:%S")


__all__ = ["FakeRuntime", "DEMO_DAY", "EOD_PHASES", "ny_clock_text"]
