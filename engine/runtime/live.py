"""Paper and live sessions (R-LIVE-1 … 6) through a broker: the same kernel, commands, snapshot
and report as the replay :class:`engine.runtime.session.Session`, fed by the broker's market
data instead of a bars file.

The session is broker-neutral: it talks only to a :class:`engine.broker.base.BrokerConnection`
(market events, account, reconcile report, flatten, the kernel's venue, all in the engine's
own types). The adapter (ProjectX today:
:class:`engine.broker.projectx.connection.ProjectXConnection`) is built from settings by the
caller (``mes_console/commands/run_live.py``) and checks the broker's credentials itself.

Start-up (:meth:`LiveSession.startup`, R-LIVE-1), in this order:
1. settings (the broker's credentials were checked when the adapter was built);
2. the signal source: a model checkpoint loaded and verified (``Predictor.load``) or the
   documented rule-based baseline;
3. connect, authenticate, pick the account and contract, open the order and market streams
   and run the start-up reconciliation (:meth:`BrokerConnection.connect`);
4. the per-account lock (:class:`engine.risk.AccountLock`, ``<state>/<endpoint>-<account>.lock``,
   ``endpoint`` = :attr:`BrokerConnection.endpoint`; taken BEFORE step 3 for the configured
   account name, and again for the broker's account name after it): a second instance on the
   same account is refused before it can trade;
5. restore the risk state (:class:`engine.risk.RiskStateStore` in
   ``<state>/risk/<mode>-<endpoint>-<account>/``; unreadable → refused, never reset);
6. the engine clock starts (see *Clocks*), then the calendar, risk manager and kernel are built;
7. start-up recovery (:mod:`engine.runtime.recovery`): what the broker shows (position,
   working orders, fills since the saved state) is classified in the recovery table and acted on
   (orders cancelled, a position closed, or adopted with ``[live] on_start_position = "adopt"``),
   the broker must agree, then its fills are booked (risk state and journal, by trade id) and the
   balance is read once, after the last booked trade;
8. trade.

Clocks. Two clocks are used:
- the *engine clock* (kernel, risk manager, snapshot, logs): in ``clock="exchange"`` mode an
  :class:`ExchangeClock`, a :class:`SimClock` advanced to the timestamp of every market
  event (quotes and trades carry the exchange time), so a gateway that replays history (the
  fake) gives the kernel the replayed bar times, exactly as a replay does (EOD phases, risk
  days). It starts at the first market event. In ``clock="wall"`` mode (a real account) it is
  the :class:`LiveClock`.
- the *wall clock* (an injected :class:`LiveClock`): the venue's clock (token expiry, order
  searches, the unknown-placement grace period), alert throttling, the periodic
  reconciliation's floor, the stale-feed check and, in wall mode, the bar-close timer.
In exchange mode the broker's entity timestamps (fills, order updates) are on the broker's own
clock, so every venue event is re-stamped with the open time (engine clock) of the bar in which
the session receives it (``_StampedVenue``; the simulated venue's convention). ``execute_live`` picks ``exchange`` for ``--gateway-url`` (a
local fake) and ``wall`` for the configured API.

Per bar (R-LIVE-2): the broker's prints are aggregated into bars of ``bar_s`` (60 s default),
bucketed by exchange time (bar open = floor(ts / bar) × bar). A bar closes when an event
(quote or trade) of a later bucket arrives; in wall mode also when the wall clock passes the
bar's end + ``close_grace_s`` (an empty bucket makes no bar; a print older than the open bar
is counted as late and dropped). A closed bar goes through exactly the replay path, the same
object: :class:`engine.step.StreamingBarPath` (signals (features + inference, or the baseline) →
:class:`MarketState` → :class:`BarInput` → :func:`engine.step.step_bar`: clock, venue, kernel
step), every step timed (:class:`BarTiming`); the contract-roll check runs between the inputs
and the step. Between bars the session applies
operator commands at once, translates venue events (kept for the kernel's next step, as the
simulated venue's fills are) and publishes snapshots.

Reconciliation: every ``reconcile_interval_s`` of engine time (at least ``min_reconcile_wall_s``
of wall time apart, to respect the broker's rate limits), plus the adapter's own after each
stream reconnect, gap or unknown placement; the snapshot's :class:`BrokerView` shows the engine-clock
time and result of the last one (``agree`` / ``mismatch`` with the corrections). Broker wins.

Shutdown (R-LIVE-3, :meth:`LiveSession.shutdown`): the kernel closes its position and cancels
its legs (``flatten`` policy; ``keep_protected`` leaves the position with its bracket working),
the fills are booked while waiting up to ``shutdown_wait_s``; then ``broker.flatten`` closes
anything left at the broker and cancels every working order on the contract; the risk state
is saved, the broker connection closed, the lock released and the report written.

Recovery (R-LIVE-4): stream reconnects and reconciliation are the adapter's (broker wins, logged,
alert on an unexplained mismatch); an unhandled exception in the loop → halt, flatten, critical
alert, exit code 1. A silent feed: in wall mode a warning alert (and the snapshot's stale
flag) after ``stale_feed_s`` (``LiveConfig.stale_feed_s``, else the broker's
:attr:`BrokerConnection.stale_feed_s`); in exchange mode a feed silent for
``feed_end_s`` (wall) after data had flowed means the replay ended: the session shuts down
with exit code 0 (``exit_reason = "market feed ended"``).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from engine.broker.base import (
    BrokerConnection, DepthBook, DepthUpdate, FeedStatus, FillMeta, HistoryBar, MarketEvent, Prints, Quote,
    ReconcileReport, Refused, price_problem,
    api_host,  # noqa: F401  (re-exported: lock names in tests and tools)
)
from engine.calendar import calendar_for
from engine.clock import NS_PER_SECOND, Clock, LiveClock, SimClock, perf_ns, to_datetime
from engine.config import Settings
from engine.data.bars import Bars
from engine.instruments import spec as instrument_spec
from engine.kernel import BarInput, TradingKernel
from engine.logs import RingHandler, get_logger
from engine.runtime.market_state import MarketState
from engine.runtime.recovery import Recovery, adopt
from engine.runtime.session import (
    EXIT_ERROR, EXIT_OK, EXIT_SIGNAL, BarTiming, SessionBase, SessionError, _TimedRisk,
    make_signal_source, write_json_atomic,
)
from engine.runtime.snapshot import BrokerView, QuoteView
from engine.step import FollowClock, NoBarVenue, StreamingBarPath
from engine.venue.base import FillEvent, OrderUpdate, PositionUpdate

if TYPE_CHECKING:
    from engine.calendar import CmeCalendar
    from engine.instruments import Contract
    from engine.risk import AccountLock, RiskManager
    from engine.risk.account_rules import AccountRules

log = get_logger("live")

DAY_NS = 86_400 * NS_PER_SECOND
LIVE_PHRASE = "LIVE"
"""What the operator types in the console to start a live (real-money) session."""


class ExchangeClock(SimClock):
    """A :class:`SimClock` that follows exchange timestamps: :meth:`observe` moves it forward to
    an event's time (UTC ns) and never backwards (an older timestamp is ignored)."""

    def observe(self, ts_ns: int) -> None:
        if ts_ns > self.now_ns():
            self.advance_to(ts_ns)


@dataclass
class LiveConfig:
    """How a paper/live session runs.

    ``mode``: ``paper`` or ``live``; ``clock``: ``exchange`` or ``wall`` (module docstring);
    ``bar_s``: bar length, seconds; ``state_dir``: lock and risk-state root;
    ``report_path``: JSON session report at shutdown (None = written by default to
    ``<reports dir>/session-<mode>-<UTC start>.json``; ``write_report=False`` turns it off);
    ``journal_path``: the SQLite trade journal (:mod:`engine.journal`; None = the default
    ``<data dir>/journal.sqlite3``; ``journal=False`` turns it off);
    ``reconcile_interval_s``: periodic reconciliation, engine-clock seconds (None =
    ``settings.reconcile.interval_s``); ``min_reconcile_wall_s``: its floor in wall seconds;
    ``close_grace_s``: wall mode, a bar closes this long after its end without a newer event;
    ``feed_end_s``: exchange mode, wall seconds of silence that end the session (None =
    2 × the stale-feed time); ``stale_feed_s``: seconds of market silence after which the
    feed is stale (None = the broker's :attr:`BrokerConnection.stale_feed_s`); ``normal_window_bars``: the series length handed
    to :class:`MarketState` for its normal-ATR window (None = an open-ended live session: one
    day; a paper comparison with a replay over N bars passes N); ``startup_timeout_s``: wait
    for the connection and the first market event; ``shutdown_wait_s``: wait for the closing
    fills; ``publish_interval_ns``: snapshot rate limit (wall ns); ``poll_s``: how long the
    loop waits for a market event before doing its timers. The market-record sanity gate
    (:meth:`LiveSession.gate_problem`): ``gate_window_s`` how far behind the engine clock (wall
    mode: either side of the wall clock) a timestamp may lie, ``gate_max_jump_s`` how far ahead
    of the engine clock in exchange mode (a long weekend fits), ``gate_future_s`` how far after
    the wall clock any exchange time may lie (seconds). ``recovery_retry_s``: wall seconds
    before the running session's recovery table runs again when the broker did not confirm
    its action (entries are held meanwhile)."""

    mode: str = "paper"
    clock: str = "exchange"
    bar_s: int = 60
    account: str = ""
    state_dir: Path | None = None
    report_path: Path | None = None
    reconcile_interval_s: float | None = None
    min_reconcile_wall_s: float = 2.0
    close_grace_s: float = 2.0
    feed_end_s: float | None = None
    stale_feed_s: float | None = None
    normal_window_bars: int | None = None
    startup_timeout_s: float = 30.0
    shutdown_wait_s: float = 10.0
    publish_interval_ns: int = 50_000_000
    poll_s: float = 0.01
    speed: float | None = None
    gate_window_s: float = 300.0
    gate_max_jump_s: float = 4 * 86_400.0
    gate_future_s: float = 86_400.0
    journal: bool = True
    journal_path: Path | None = None
    write_report: bool = True
    recovery_retry_s: float = 1.0


class BarAggregator:
    """Trades → bars of ``bar_ns`` (bucket = floor(ts / bar_ns) × bar_ns, UTC ns).

    :meth:`on_trade` adds a print and returns the bar it closed (a print of a later bucket
    closes the open one), :meth:`close_before` closes the open bar when ``ts`` lies in a later
    bucket (a quote of the next minute, or the wall-clock timer). Bars are
    ``(open_ts, open, high, low, close, volume)``; volume NaN when the feed has none. Prints
    older than the open bucket are counted in ``late`` and dropped."""

    def __init__(self, bar_ns: int) -> None:
        self.bar_ns = int(bar_ns)
        self.cur: list | None = None
        self.late = 0
        self.last_closed_ts: int | None = None

    def close_before(self, ts_ns: int):
        c = self.cur
        if c is not None and ts_ns >= c[0] + self.bar_ns:
            self.cur = None
            self.last_closed_ts = c[0]
            return tuple(c)
        return None

    def on_trade(self, ts_ns: int, price: float, volume: float):
        closed = self.close_before(ts_ns)
        b = ts_ns // self.bar_ns * self.bar_ns
        c = self.cur
        if c is None:
            if self.last_closed_ts is not None and b <= self.last_closed_ts:
                self.late += 1
                return closed
            self.cur = [b, price, price, price, price, volume]
        else:
            if b < c[0]:
                self.late += 1
                return closed
            c[2] = max(c[2], price)
            c[3] = min(c[3], price)
            c[4] = price
            c[5] = c[5] + volume
        return closed


class _StampedVenue:
    """The broker's venue as the kernel sees it: every call goes to the venue; events are
    collected by :meth:`collect` (the session calls it between bars, so they are translated
    promptly) and, in exchange-clock mode, re-stamped with the OPEN time of the bar being built
    when they are received (the broker's entity times are on its own wall clock, and a replayed
    feed's intra-bar times are synthetic): the simulated venue's rule ("fill timestamps are the
    open time of the bar in which the fill happened"), so exit cooldowns and trade times agree
    with a replay of the same bars. ``fills`` counts the fills collected."""

    def __init__(self, venue, clock: Clock, restamp: bool, bar_ns: int) -> None:
        self._v = venue
        self._clock = clock
        self._restamp = restamp
        self._bar_ns = int(bar_ns)
        self._buf: deque = deque()
        self.fills = 0
        self.on_fill: Callable[[FillEvent, FillMeta | None], None] | None = None
        """``(FillEvent, broker facts or None)`` called for every fill collected (the
        session's journal), before the kernel sees it."""
        self.rt: list[FillMeta] = []
        """Broker facts (:attr:`BrokerVenue.polled_fill_meta`) of the fills of this session's
        orders handed to the kernel since its last booked round trip, in delivery order (see
        :class:`_LiveRisk`)."""
        self.outside: list[FillMeta] = []
        """Broker facts of fills of orders this session did not place (``ours`` False), not
        yet seen by the recovery table (:meth:`engine.runtime.recovery.Recovery.running`)."""

    def __getattr__(self, name):
        return getattr(self._v, name)

    def place(self, *a, **k):
        return self._v.place(*a, **k)

    def cancel(self, order_id: str) -> None:
        self._v.cancel(order_id)

    def collect(self) -> int:
        evs = self._v.poll_events()
        meta = list(getattr(self._v, "polled_fill_meta", None) or ())
        now = self._clock.now_ns() // self._bar_ns * self._bar_ns
        j = 0
        for e in evs:
            if self._restamp and isinstance(e, (FillEvent, OrderUpdate, PositionUpdate)):
                e = e._replace(ts_ns=now)
            if isinstance(e, FillEvent):
                self.fills += 1
                m = meta[j] if j < len(meta) else None
                if m is not None:
                    (self.rt if m.get("ours", True) else self.outside).append(m)
                j += 1
                if self.on_fill is not None:
                    self.on_fill(e, m)
            self._buf.append(e)
        return len(evs)

    def take_round_trip(self) -> tuple[list[int], int | None]:
        """The broker trade ids of the round trip the kernel just closed: the shortest prefix of
        :attr:`rt` whose signed sizes sum to zero (all of it when none does), removed from
        :attr:`rt`; and the restart watermark (broker time of the oldest fill still unbooked, or
        of this round trip's last fill, minus 60 s)."""
        run, k = 0, len(self.rt)
        for i, m in enumerate(self.rt):
            run += int(m["signed"])
            if run == 0:
                k = i + 1
                break
        took, self.rt = self.rt[:k], self.rt[k:]
        ts = [int(m["ts_ns"]) for m in (self.rt[:1] or took[-1:]) if m.get("ts_ns")]
        since = min(ts) - 60 * NS_PER_SECOND if ts else None
        return [int(m["id"]) for m in took], since

    def poll_events(self) -> list:
        self.collect()
        out = list(self._buf)
        self._buf.clear()
        return out

    def has_events(self) -> bool:
        self.collect()
        return bool(self._buf)


class _LiveRisk(_TimedRisk):
    """The timed risk proxy of a live session: the kernel's ``on_trade_closed`` goes through
    :meth:`RiskManager.book_broker_trades` with the broker trade ids of the round trip, so the
    booking and the ids reach ``risk_state.json`` in one atomic write (exactly once across a
    crash; a restart books what is missing from the broker's fill history). ``before_book(ids)``
    runs first (the session writes the round trip to the journal with its broker ids)."""

    elapsed: int
    block_reason: str
    hold_reason: str

    def __init__(self, risk, venue: _StampedVenue,
                 before_book: Callable[[list[int]], None] | None = None) -> None:
        super().__init__(risk)
        object.__setattr__(self, "_venue", venue)
        object.__setattr__(self, "block_reason", "")
        object.__setattr__(self, "hold_reason", "")
        object.__setattr__(self, "_before_book", before_book)

    def evaluate_entry(self, *a, **k):
        """The manager's decision, unless the session holds new entries (the recovery table
        waits for the broker: :attr:`hold_reason`) or blocks them (contract roll day:
        :attr:`block_reason`): then refused with that reason."""
        why = self.hold_reason or self.block_reason
        if why:
            from engine.risk.manager import RiskDecision

            return RiskDecision(False, 0, why, float("nan"), float("nan"), 0.0)
        return self.__getattr__("evaluate_entry")(*a, **k)

    def on_trade_closed(self, net_pnl: float, exit_ts_ns: int) -> None:
        t0 = perf_ns()
        try:
            ids, since = self._venue.take_round_trip()
            if self._before_book is not None:   # the journal first: a kill before the booking
                self._before_book(ids)           # leaves a row recovery recognises by its ids
            if ids:
                r = self._risk.book_broker_trades(ids, net_pnl, exit_ts_ns, since_ns=since)
                if not r["booked"]:
                    log.warning("round trip of broker trades %s already booked: not booked twice", ids)
            else:
                self._risk.on_trade_closed(net_pnl, exit_ts_ns)
        finally:
            object.__setattr__(self, "elapsed", self.elapsed + perf_ns() - t0)


class LiveSession(SessionBase):
    """A paper or live session over a :class:`~engine.broker.base.BrokerConnection` connected on
    demand (module docstring).

    Args:
        settings: :class:`engine.config.Settings` (strategy, risk, account, alerts, paths; the
            broker's own settings are the adapter's, read by whoever built it).
        broker: an unconnected :class:`~engine.broker.base.BrokerConnection` built on
            ``wall_clock`` (e.g. :class:`engine.broker.projectx.connection.ProjectXConnection`,
            ``native_oco`` as the account is configured).
        cfg: :class:`LiveConfig`.
        model_path: checkpoint directory, or None for the rule-based baseline.
        strategy: a loaded strategy (:class:`engine.strategy.loader.LoadedStrategy`) instead.
        wall_clock: the real clock (default :class:`LiveClock`).
        alerts: an :class:`engine.alerts.AlertRouter` (default: one on ``settings.alerts`` and
            the wall clock, closed at shutdown); the venue's ``on_alert`` should point at it.
        ring: the console's log ring (None headless).

    Raises :class:`SessionError` for a bad mode or clock, or a ``broker`` that is no
    :class:`~engine.broker.base.BrokerConnection`.
    """

    def __init__(self, settings: Settings, broker: BrokerConnection, cfg: LiveConfig, *, model_path=None, strategy=None,
                 wall_clock: Clock | None = None, alerts=None, ring: RingHandler | None = None) -> None:
        if cfg.mode not in ("paper", "live"):
            raise SessionError(f"mode {cfg.mode!r}: a live session is paper or live")
        if cfg.clock not in ("exchange", "wall"):
            raise SessionError(f"clock {cfg.clock!r}: choose exchange or wall")
        if not (callable(getattr(broker, "connect", None)) and callable(getattr(broker, "market_events", None))):
            raise SessionError(f"{type(broker).__name__} is not a BrokerConnection (engine.broker.base); "
                               "wrap a ProjectXVenue in engine.broker.projectx.connection.ProjectXConnection")
        self.settings = settings
        self.cfg = cfg
        self.wall = wall_clock or LiveClock()
        self.broker = broker
        self.stale_feed_s = float(broker.stale_feed_s if cfg.stale_feed_s is None else cfg.stale_feed_s)
        """Seconds of market silence after which the feed is stale (``cfg`` else the broker's)."""
        self.spec = instrument_spec(settings.instrument.symbol)
        self.bar_ns = int(cfg.bar_s) * NS_PER_SECOND
        self.clock: Clock = ExchangeClock(0) if cfg.clock == "exchange" else self.wall
        self.venue = _StampedVenue(broker.venue, self.clock, cfg.clock == "exchange", self.bar_ns)
        if alerts is None:
            from engine.alerts import AlertRouter

            alerts = AlertRouter(settings.alerts, self.wall)
            self._own_alerts = True
        else:
            self._own_alerts = False
        self.alerts = alerts
        self.ring = ring
        self.model_path = model_path
        self.strategy = strategy
        self.agg = BarAggregator(self.bar_ns)
        self.depth = DepthBook()
        """Market depth of the contract from the broker's depth updates (quote pane: best levels)."""
        self.i = 0
        self.timings: list[BarTiming] = []
        self.equity: list[float] = []
        self.closes: deque = deque(maxlen=60)
        self.lookback = int(settings.stops.structure_lookback)
        self._hi: deque = deque(maxlen=self.lookback)
        self._lo: deque = deque(maxlen=self.lookback)
        self.first_bar_ts: int | None = None
        self.last_bar_ts: int | None = None
        self.market_seen = 0
        """Market-hub events processed (quotes, trades, lifecycle), for the report."""
        self.data_seen = 0
        """Quote and trade events fully processed (bar closes and kernel steps included)."""
        self.last_data_wall = 0
        self.last_data_ts: int | None = None
        self.last_trade_px: float | None = None
        self.start_balance = float(settings.account.starting_capital)
        self.signals: Any = None
        """The signal source (:func:`make_signal_source`: the rule-based baseline or a model;
        duck-typed: ``update``, ``label``, ``window`` / ``predictor``)."""
        self.kernel: TradingKernel | None = None
        self.risk: RiskManager | None = None
        self.cal: CmeCalendar | None = None
        self.lock: AccountLock | None = None
        self._lock2: AccountLock | None = None
        self.startup_reconcile: ReconcileReport | None = None
        self.reconciles: list[dict] = []
        self._reconcile_seen: ReconcileReport | None = None
        self._broker = BrokerView(None, "never", "not reconciled yet")
        self._next_reconcile_ns = 0
        self._next_reconcile_wall = 0
        self._pending: deque = deque()
        self._stale_alerted = False
        self.refused: dict[str, int] = {}
        """Market records dropped by the sanity gate, by kind (:meth:`gate_problem`)."""
        self._started = False
        self.contract: Contract | None = None
        self._roll_day: int | None = None
        self._roll_block_day = -1
        self._roll_exit: str | None = None
        self.rules: AccountRules | None = None
        """The venue's :class:`engine.risk.account_rules.AccountRules` (None: ``rules = "none"``)."""
        self._acct_seen = 0
        self._acct_dirty = False
        self.warm_bars = 0
        """History bars fed at start-up (warm start)."""
        self.adopted: dict | None = None
        self._adopt_rep: ReconcileReport | None = None
        self._adopt_fills: list = []
        self.recovery_rows: list[str] = []
        self._journaled: set[int] = set()
        """The start-up recovery table rows that applied (:mod:`engine.runtime.recovery`)."""
        self.recoveries: list[dict] = []
        """The recovery table's runs at the running session that found something (engine-clock
        ``ts_ns``, ``why``, ``rows``, ``ok``), for the session report."""
        self._recheck: str | None = None   # why the table must run at the next timer pass
        self._recheck_wall = 0              # not before this wall monotonic time (a retry)
        self._in_recovery = False
        self._reconnects_seen = 0
        self.first_decision_wall_s: float | None = None
        """Wall seconds from :meth:`startup` to the first live bar decided on warm inputs (the
        baseline's window full, the model's features past their warm-up)."""
        self._t_start_wall = 0
        self.report_written: Path | None = None
        self._venue_started = False
        self._last_bar: BarInput | None = None
        self._path: StreamingBarPath | None = None
        self._bar_ts = 0
        self._init_common()
        self._quit_policy = "flatten"
        # issue 26: the dead-man watchdog and heartbeat (engine/remote/watchdog.py), on the wall clock
        from engine.remote.watchdog import Watchdog

        self.watchdog: Watchdog | None = Watchdog(settings.watchdog, self.alerts, self.wall)

    # ------------------------------------------------------------------ parts built at start-up
    def _kernel(self) -> TradingKernel:
        """The kernel (built by :meth:`startup`); :class:`SessionError` before it exists."""
        if self.kernel is None:
            raise SessionError("the session is not started (no kernel yet)")
        return self.kernel

    def _risk(self) -> RiskManager:
        """The risk manager (built by :meth:`startup`); :class:`SessionError` before it exists."""
        if self.risk is None:
            raise SessionError("the session is not started (no risk manager yet)")
        return self.risk

    def _calendar(self) -> CmeCalendar:
        """The trading calendar (built by :meth:`startup`); :class:`SessionError` before it exists."""
        if self.cal is None:
            raise SessionError("the session is not started (no calendar yet)")
        return self.cal

    # ------------------------------------------------------------------ start-up (R-LIVE-1)
    def startup(self) -> None:
        """R-LIVE-1 (module docstring). Raises :class:`SessionError` (nothing traded; the venue
        is stopped and the lock released) naming what failed."""
        from engine.risk import AccountLock, RiskStateStore
        from engine.risk.account_rules import AccountRulesError
        from engine.risk.build import build_risk
        from engine.risk.store import AccountLockError, RiskStateError

        s = self.settings
        self._t_start_wall = self.wall.monotonic_ns()
        bars_like = Bars(np.array([0], dtype=np.int64), np.ones(1), np.ones(1), np.ones(1), np.ones(1),
                         np.ones(1), bar_ns=self.bar_ns, symbol=self.spec.symbol)
        try:
            self.signals = make_signal_source(s, bars_like, self.model_path, strategy=self.strategy)
        except Exception as exc:
            raise SessionError(f"model {self.model_path}: {exc}") from None
        self._bind_signal_errors()
        if self.model_path:  # the checkpoint's validation threshold, or why the model abstains (issue 24)
            from engine.strategy.model import apply_threshold, checkpoint_calibration, threshold_note

            mcal = checkpoint_calibration(self.model_path)
            self.settings = s = apply_threshold(s, mcal)
            log.warning("model threshold: %s", threshold_note(s, mcal))
        strat = getattr(self.signals, "strategy", None)
        if strat is not None:   # compile the baseline's numba kernel now, not on the first bar
            n = int(self.signals.window)
            ts = np.arange(n, dtype=np.int64) * self.bar_ns
            px = 100.0 + np.arange(n, dtype=np.float64)
            strat.signals(Bars(ts, px, px + 1, px - 1, px, np.ones(n), bar_ns=self.bar_ns,
                               symbol=self.spec.symbol))
        log.info("signals: %s", self.signals.label)
        # the account lock BEFORE any network call: a refused second instance never logs in,
        # opens a stream or reconciles. Named by the broker endpoint and the configured account
        # (the broker's account name is not known before the login).
        host = self.broker.endpoint
        state_root = Path(self.cfg.state_dir) if self.cfg.state_dir else _default_state_dir(s)
        want = self.cfg.account or s.account.name or "default"
        try:
            self.lock = AccountLock(state_root, f"{host}-{want}").acquire()
        except AccountLockError as exc:
            self.lock = None
            raise SessionError(str(exc)) from None
        try:
            rep = self.broker.connect(self.cfg.startup_timeout_s)
        except Exception as exc:
            self._close_venue()
            raise SessionError(f"connecting to the {self.broker.broker} broker at {self.broker.endpoint_url}: "
                               f"{type(exc).__name__}: {exc}") from None
        self._venue_started = True
        self._reconciled_wall = self.wall.monotonic_ns()
        try:
            self.startup_reconcile = rep
            acct = self.broker.account_name
            if acct and acct != want:   # also the broker account's own lock (another config may name it)
                try:
                    self._lock2 = AccountLock(state_root, f"{host}-{acct}").acquire()
                except AccountLockError as exc:
                    raise SessionError(str(exc)) from None
            self.cfg.account = self.cfg.account or acct
            try:
                store = RiskStateStore(state_root / "risk" / f"{self.cfg.mode}-{host}-{acct}")
                store.load()
            except RiskStateError as exc:
                raise SessionError(str(exc)) from None
            first = self._first_market_ts()
            if isinstance(self.clock, ExchangeClock):
                self.clock.advance_to(first)
            now = self.clock.now_ns()
            self.cal = cal = calendar_for(now - 7 * DAY_NS, now + 60 * DAY_NS)
            self._check_contract(now)
            self._open_journal(acct)
            try:  # the one risk path of every mode (the account's rules attached)
                self.risk = risk = build_risk(s, self.clock, cal, self.spec, store,
                                              rules_path=Path(store.dir) / "account_rules.json")
            except (RiskStateError, AccountRulesError) as exc:
                raise SessionError(str(exc)) from None
            new_state = risk.book_broker_trades()["since_ns"] is None   # no watermark yet: a new state
            self._timed_risk = _LiveRisk(risk, self.venue, self._journal_round_trip)
            self._note_reconcile(rep)
            self._recover(rep, store.dir, new_state)
            self.start_balance = float(risk.balance)
            self.kernel = TradingKernel(s, self.venue, self._timed_risk, self.spec, bar_ns=self.bar_ns,
                                        starting_balance=self.start_balance)
            self.market = MarketState(cal, self.bar_ns, s.stops.atr_period,
                                      self.cfg.normal_window_bars, True, settings=s,
                                      quoted_spread=self.quoted_spread)
            if self._adopt_rep is not None:   # protection first: the warm start's history call comes after
                rep = self._adopt_rep
                try:
                    adopt(self, rep, self._adopt_fills)
                except Exception as exc:   # never leave it unprotected: close it, then refuse
                    msg = f"start-up: adopting {rep.broker_qty:+d} failed ({type(exc).__name__}: {exc}); closing it"
                    log.error(msg)
                    self.alerts.send("critical", "startup_position", msg)
                    try:
                        self.broker.flatten("adoption failed")
                    except Exception as exc2:
                        self.alerts.send("critical", "startup_position", f"closing it failed too: {exc2}")
                    raise SessionError(msg) from None
            if s.live.warm_start:
                self._warm_start(first)
            log.info("%s session started: account %s, contract %s, clock %s, balance $%.2f (broker $%s)",
                     self.cfg.mode, acct, self.broker.contract_id, self.cfg.clock, self.start_balance,
                     self.broker.balance, extra={"event": "start"})
        except BaseException:
            self._close_venue()
            raise
        self._started = True
        self._reconnects_seen = int((self.broker.stats or {}).get("reconnects", 0) or 0)
        self._next_reconcile_wall = self.wall.monotonic_ns() + int(self.cfg.min_reconcile_wall_s * NS_PER_SECOND)
        self._next_reconcile_ns = self.clock.now_ns() + int(self._reconcile_s() * NS_PER_SECOND)
        self.last_data_wall = self.wall.monotonic_ns()
        self._publish()

    def _recover(self, rep: ReconcileReport, state_dir: Path, new_state: bool) -> None:
        """Start-up recovery (:mod:`engine.runtime.recovery`): classify what the broker shows,
        act on every row (cancel working orders, flatten or keep for adoption), verify with the
        broker, then book what the broker filled (risk state and journal, by trade id) and take
        the balance from one read ordered after the last booked trade. Sets ``_adopt_rep`` (the
        position to adopt, or None). Raises :class:`SessionError` (nothing traded)."""
        rec = Recovery(self, new_state)
        plan = rec.classify(rep)
        self.recovery_rows = plan.names
        adopt_rep = rec.resolve(plan, adopt=self.settings.live.on_start_position == "adopt")
        self._adopt_rep = adopt_rep
        self.venue.poll_events()   # the kernel never held what recovery closed: booked below, by id
        self.venue.rt.clear()
        bal = rec.book("start-up")
        self._adopt_fills = rec.open_fills if adopt_rep is not None else []
        self._setup_account(state_dir, new_state, bal, rec.pending_fees)

    def _open_journal(self, acct: str) -> None:
        """Open the trade journal (``cfg.journal_path`` or :func:`engine.journal.default_journal_path`)
        and its session row; every fill collected from now on is written as it arrives. Raises
        :class:`SessionError` when the journal cannot be opened (nothing traded)."""
        if not self.cfg.journal:
            return
        from engine.calendar import day_date
        from engine.journal import Journal, default_journal_path

        cal = self._calendar()

        def day_of(ts: int) -> str:
            d = int(cal.label_one(int(ts))[0])
            return day_date(d).isoformat() if d >= 0 else ""

        try:
            path = Path(self.cfg.journal_path) if self.cfg.journal_path else default_journal_path(self.settings)
            j = Journal(path, day_of=day_of)
            j.open_session(mode=self.cfg.mode, account=acct, contract=str(self.broker.contract_id),
                           symbol=self.spec.symbol, clock=self.cfg.clock, started_ns=self.clock.now_ns(),
                           started_wall_ns=self.wall.now_ns(), start_balance=self.broker.balance)
        except Exception as exc:
            raise SessionError(f"trade journal: {exc}") from None
        self.journal = j
        self.venue.on_fill = self._journal_fill
        self._refresh_journal_today()   # trades of an earlier session today show in the console
        self._journal("event", self.clock.now_ns(), "signals", f"signals: {self.signals.label}", "information")
        log.info("journal: %s (session %d)", path, j.session_id)

    def _journal_round_trip(self, ids: list[int]) -> None:
        """The round trip the kernel just closed (its last :class:`TradeRecord`) to the journal
        with its broker trade ids, BEFORE the risk manager books it (:class:`_LiveRisk`): a kill
        in between leaves the journal row, and the restart's recovery, finding the ids unbooked,
        books the risk side without writing the row again (unique ids)."""
        k = self.kernel
        if k is None or not k.trades or self.journal is None:
            return
        t = k.trades[-1]
        self._journaled.add(id(t))
        self._journal("trade", t, broker_ids=ids or None)

    def _journal(self, what: str, *args, **kw) -> None:
        """:meth:`SessionBase._journal`, except a round trip already written by
        :meth:`_journal_round_trip` (with its broker ids) is not written again."""
        if what == "trade" and args and not kw and id(args[0]) in self._journaled:
            return
        super()._journal(what, *args, **kw)

    def _journal_fill(self, e: FillEvent, meta: FillMeta | None) -> None:
        self._journal("fill", ts_ns=int(e.ts_ns), side=int(e.side), qty=int(e.qty), price=float(e.price),
                      fees=float(e.commission if meta is None else meta["fees"]),
                      broker_id=None if meta is None else meta["id"], order_id=str(e.order_id),
                      tag=str(e.tag), pnl=None if meta is None else meta["pnl"],
                      broker_ts_ns=None if meta is None else meta["ts_ns"])

    # ------------------------------------------------------------------ contract roll
    def _check_contract(self, now: int) -> None:
        """Start-up: the contract traded must be the roll calendar's front month
        (:func:`engine.instruments.front_month`: the next quarter from the roll date, the
        Thursday 8 days before expiry) on the trading day of ``now``; otherwise refused
        (:class:`SessionError`) naming the right one."""
        from engine.calendar import day_date
        from engine.instruments import InstrumentError, front_month, parse_px_contract_id

        d = int(self._calendar().label_one(int(now))[0])
        day = day_date(d) if d >= 0 else to_datetime(int(now)).date()
        try:
            have = parse_px_contract_id(str(self.broker.contract_id))
        except InstrumentError as exc:
            raise SessionError(f"contract: {exc}") from None
        want = front_month(self.spec.symbol, day)
        if (have.year, have.month) != (want.year, want.month):
            raise SessionError(f"contract {self.broker.contract_id} is not the front month on {day.isoformat()}: "
                               f"trade {want.px_contract_id} ({want.cme_ticker}; {have.cme_ticker} rolls on "
                               f"{have.roll.isoformat()}); nothing traded")
        self.contract = have

    def _roll_check(self, day: int) -> None:
        """Once per trading day (first bar of the day): the venue rules see the balance at the
        day's roll (end-of-day high of the MLL). On and after the roll date of the
        contract traded, new entries are refused (protection stays) with a critical alert;
        from the next trading day on, once flat, the session ends (exit 0, ``exit_reason``
        naming the next contract) so that a restart trades the new front month."""
        from engine.calendar import day_date

        if day == self._roll_day or day < 0 or self.contract is None:
            return
        first_check = self._roll_day is None
        self._roll_day = day
        if self.rules is not None:   # the MLL's end-of-day high: the balance at the day's roll
            b = self.broker.balance if self.broker.balance is not None else self._risk().balance
            self.rules.on_balance(day_date(day).isoformat(), float(b))
        date = day_date(day)
        c = self.contract
        if date < c.roll:
            return
        nxt = c.next()
        if not self._timed_risk.block_reason:
            why = (f"contract roll: {c.cme_ticker} rolls on {c.roll.isoformat()}; no new positions in it, "
                   f"the next session trades {nxt.px_contract_id}")
            object.__setattr__(self._timed_risk, "block_reason", why)
            self.alerts.send("critical", "contract_roll", why)
            self._event("alert", why, "warning")
            self._roll_block_day = day
            return
        if day > self._roll_block_day and not first_check:
            self._roll_exit = nxt.px_contract_id

    # ------------------------------------------------------------------ the broker's account (R-RISK-7)
    def _setup_account(self, state_dir: Path, new_state: bool, balance: float | None = None,
                       pending_fees: float = 0.0) -> None:
        """The venue's account rules (``[account] rules``; state in ``<risk state
        dir>/account_rules.json``) and the balance from the broker. A new risk state (first
        session on this account) is rebased to the broker's balance (day start, peaks and
        kill-switch reference included); an existing one takes the broker's balance as a
        correction (audited; the difference counts in the day's P&L). The rules were built with
        the risk manager (``build_risk``, state in ``state_dir``; an unreadable one is refused
        there)."""
        self.rules = self._risk().account_rules  # built with the manager (build_risk)
        self._acct_seen = self.broker.account_events
        self._sync_balance("start-up", rebase=new_state, balance=balance, pending_fees=pending_fees)

    def _day_iso(self, ts: int) -> str:
        from engine.calendar import day_date

        d = int(self._calendar().label_one(int(ts))[0])
        return day_date(d).isoformat() if d >= 0 else ""

    def _sync_balance(self, why: str, *, rebase: bool = False, balance: float | None = None,
                      pending_fees: float = 0.0) -> None:
        """Make the risk manager's balance the broker's (one owner: the broker). Called at
        start-up (``balance``: the one read recovery took after its last booked trade, so no
        balance read before a crash-window fill can overwrite what recovery booked), and after
        an account event once the session is quiet (flat, no unbooked fill, no order in flight:
        every round trip the broker has booked, the engine has booked too, so a difference is
        activity outside the engine). ``pending_fees``: dollars of fees the broker charged for
        the fills of a position still open (adopted): the engine books them with the round
        trip, so its balance is the broker's plus them."""
        b = self.broker.balance if balance is None else balance
        if b is None or not np.isfinite(b):
            return
        b = float(b) + float(pending_fees)
        now = self.clock.now_ns()
        if self.rules is not None:
            day = self._day_iso(now)
            if day:
                self.rules.on_balance(day, float(b))
        risk = self._risk()
        old = float(risk.balance)
        diff = float(b) - old
        if abs(diff) < 0.005:
            return
        if rebase:
            risk.rebase_balance(float(b), now, "broker")
            msg = f"{why}: balance from the broker ${b:,.2f} (configured ${old:,.2f}); limits and tier follow it"
            log.warning(msg)
            self._event("info", msg)
            return
        risk.set_balance(float(b), now, "broker")
        msg = (f"{why}: the broker's balance ${b:,.2f} differs from the engine's ${old:,.2f} by "
               f"${diff:+,.2f} (activity outside the engine?); the broker's is taken")
        log.warning(msg)
        self.alerts.send("warning", "balance_changed", msg)
        self._event("alert", msg, "warning")

    def _account_tick(self) -> None:
        """After every loop pass: an account event seen → re-read the balance when quiet."""
        if self.broker.account_events != self._acct_seen:
            self._acct_seen = self.broker.account_events
            self._acct_dirty = True
        if not self._acct_dirty or self.kernel is None:
            return
        k = self.kernel
        if (k.oco.pos != 0 or self.venue.rt or k.busy_orders() or self.broker.position_qty != 0
                or self.venue.outside or self._recheck is not None):
            return    # not quiet, or fills the recovery table has yet to book
        self._acct_dirty = False
        self._sync_balance("account event")

    def _rules_view(self) -> dict:
        if self.rules is None or self.risk is None:
            return {}
        from engine.risk.account_rules import risk_view_fields

        return risk_view_fields(self.rules, float(self.risk.equity), float(self.risk.balance))

    # ------------------------------------------------------------------ warm start
    def _warm_start(self, first_ts: int) -> None:
        """Warm every feature, the model and the market state from ``History/retrieveBars``:
        the newest ``need`` complete bars that opened before the bar of ``first_ts`` (the
        first market event), where ``need`` covers the signal source's window (feature
        warm-up + sequence length, or the baseline's window), a day of bars for the normal ATR
        and volume averages, and the structure stop's lookback. The bars are validated
        (sorted, unique, finite, high ≥ low, on the bar grid) before any is used; history that
        fails is not used, with a warning alert (the session starts cold). The kernel is not
        stepped on history (nothing is traded on it). One REST call, paced by the client's
        history bucket (50 / 30 s)."""
        sig = self.signals
        if getattr(sig, "is_baseline", False):
            need = int(getattr(sig, "window", 0))
        else:
            p = sig.predictor
            need = int(p.feature_set.warmup) + int(p.seq_len or 1)
        day_bars = int(86_400 * NS_PER_SECOND // self.bar_ns)
        need = min(20_000, max(need, day_bars, self.lookback, self.settings.stops.atr_period * 3) + 5)
        end = int(first_ts) // self.bar_ns * self.bar_ns - 1          # bars that opened before this bar
        start = end - 14 * DAY_NS                                     # weekends and holidays fit
        t0 = self.wall.monotonic_ns()
        try:
            got = self.broker.history(start, end, need, int(self.cfg.bar_s))
        except Exception as exc:
            msg = f"warm start: History/retrieveBars failed ({type(exc).__name__}: {exc}); starting cold"
            log.warning(msg)
            self.alerts.send("warning", "warm_start", msg)
            return
        bars: list[HistoryBar] = [b for b in got if b.ts_ns + self.bar_ns <= (end + 1)]
        problem = _history_problem(bars, self.bar_ns)
        if problem is not None:
            msg = f"warm start: history refused ({problem}); starting cold"
            log.warning(msg)
            self.alerts.send("warning", "warm_start", msg)
            return
        for b in bars:
            sig.update(b.ts_ns, b.open, b.high, b.low, b.close, b.volume)
            self._warm_row = self.market.update(b.ts_ns, b.high, b.low, b.close, b.volume)
            self._hi.append(b.high)
            self._lo.append(b.low)
            self.closes.append(b.close)
        self.warm_bars = len(bars)
        self._journal("bars_write", [(b.ts_ns, b.open, b.high, b.low, b.close, b.volume) for b in bars],
                      warm=True)  # issue 26: `drift` re-runs from the same warm-up
        log.info("warm start: %d history bars (%s → %s) in %.2f s", len(bars),
                 _iso(bars[0].ts_ns) if bars else "-", _iso(bars[-1].ts_ns) if bars else "-",
                 (self.wall.monotonic_ns() - t0) / 1e9, extra={"event": "warm_start"})

    def _reconcile_s(self) -> float:
        r = self.cfg.reconcile_interval_s
        return float(self.settings.reconcile.interval_s if r is None else r)

    def _first_market_ts(self) -> int:
        """Exchange mode: wait for the first timestamped market event (kept for the loop);
        wall mode: the wall clock."""
        if self.cfg.clock == "wall":
            return self.wall.now_ns()
        deadline = self.wall.monotonic_ns() + int(self.cfg.startup_timeout_s * NS_PER_SECOND)
        while self.wall.monotonic_ns() < deadline:
            evs = self.broker.market_events(0.1)
            self._pending.extend(evs)        # all of them go through the loop
            for ev in evs:
                ts = _event_ts(ev)
                if ts is not None and self.gate_problem(ts, what="first market record") is not None:
                    continue   # the loop refuses and counts it
                if ts is not None:
                    return ts
        raise SessionError(f"no market data from the gateway within {self.cfg.startup_timeout_s:.0f} s "
                           "(is the fake gateway replaying? --speed > 0)")

    # ------------------------------------------------------------------ loop
    def run(self) -> int:
        """Trade until stopped (operator quit, :meth:`stop`, signal, end of a replayed feed), then
        shut down. Returns the exit code (``EXIT_*`` of :mod:`engine.runtime.session`)."""
        if self._thread is None:
            import threading

            self._thread = threading.current_thread()
        code = EXIT_OK
        try:
            if not self._started:
                self.startup()
            while not self._stop.is_set():
                self._loop_once()
            if self._signal_stop:
                code = EXIT_SIGNAL
        except SessionError:
            raise
        except Exception as exc:  # R-LIVE-4: unhandled exception → flatten, halt, alert
            log.exception("unhandled exception in the live session loop: halting and flattening")
            self.exit_reason = f"error: {exc!r}"
            self.alerts.send("critical", "session_error", f"unhandled exception: {exc!r}; halted and flattening")
            try:
                if self.risk is not None:
                    self.risk.halt(f"unhandled exception: {exc!r}", "system")
            except Exception:
                log.exception("risk halt failed")
            self._quit_policy = "flatten"
            code = EXIT_ERROR
        self.shutdown(self._quit_policy)
        self.exit_code = code
        self.finished.set()
        return code

    def _loop_once(self) -> None:
        batch = list(self._pending)
        self._pending.clear()
        batch.extend(self.broker.market_events(0.0 if batch else self.cfg.poll_s))
        for ev in batch:
            self._on_market(ev)
        self.venue.collect()
        self._account_tick()
        self._apply_commands()
        self._timers()
        if perf_ns() - self._last_pub >= self.cfg.publish_interval_ns:
            self._publish()

    def gate_problem(self, ts: int | None, price: Any = None, *, what: str = "record") -> str | None:
        """The sanity gate every market record passes before it can move the clock or make a
        bar (issue 15): a timestamp (UTC ns) within ``gate_future_s`` of the wall clock, in
        exchange mode not more than ``gate_max_jump_s`` ahead of nor ``gate_window_s`` behind
        the engine clock, in wall mode within ``gate_window_s`` of the wall clock; a price that is
        a finite number > 0 on the contract's tick grid, below ``MAX_PRICE`` and within
        ``PRICE_BAND`` of the last good trade price (the magnitude gate,
        :func:`engine.broker.base.price_problem`, shared with the market hub and the fake).
        Returns why the record is refused, or None. The engine clock therefore never moves back (older times are ignored) and never
        jumps beyond the gate."""
        if price is not None or what == "trade":
            tick = float(self.broker.tick or self.spec.tick_size)
            why = price_problem(price, tick, self.last_trade_px, what=f"{what} price")
            if why is not None:
                return why
        if ts is None:
            return None
        wall = self.wall.now_ns()
        if ts > wall + int(self.cfg.gate_future_s * NS_PER_SECOND):
            return f"{what} time: {_iso(ts)} is after the wall clock {_iso(wall)}"
        window = int(self.cfg.gate_window_s * NS_PER_SECOND)
        if self.cfg.clock == "wall":
            if abs(ts - wall) > window:
                return f"{what} time: {_iso(ts)} is more than {self.cfg.gate_window_s:g} s from the wall clock"
            return None
        now = self.clock.now_ns()
        if now:
            if ts > now + int(self.cfg.gate_max_jump_s * NS_PER_SECOND):
                return f"{what} time: {_iso(ts)} jumps more than {self.cfg.gate_max_jump_s:g} s past the clock {_iso(now)}"
            if ts < now - window:
                return f"{what} time: {_iso(ts)} is more than {self.cfg.gate_window_s:g} s before the clock {_iso(now)}"
        return None

    def _refuse(self, why: str) -> None:
        """Count, log (the first 5 of each kind, then every 1,000th) and drop one record."""
        key = why.split(":")[0]
        n = self.refused.get(key, 0) + 1
        self.refused[key] = n
        if n <= 5 or n % 1000 == 0:
            log.error("market record dropped by the sanity gate (%d so far of this kind): %s", n, why)

    def _apply_commands(self) -> None:
        """Operator commands, with the kernel first brought up to date with the venue's fills
        and order events received since the last bar (they are otherwise booked at the next bar
        close): a kill switch pressed just after an entry filled must see the position and
        flatten it now, not a bar later."""
        if self.kernel is not None and self._last_bar is not None and not self._cmd.empty():
            self.kernel._drain(self._last_bar)
        super()._apply_commands()

    def _on_market(self, ev: MarketEvent) -> None:
        """One market event (engine types, :mod:`engine.broker.base`): quotes and prints pass the
        sanity gate (:meth:`gate_problem`), move the engine clock and close/make bars; depth
        updates feed :attr:`depth`; refusals are counted; feed status changes are logged."""
        if isinstance(ev, Refused):
            self._refuse(ev.reason)
            self.market_seen += 1
            return
        data = isinstance(ev, (Quote, Prints))
        if data:
            self.last_data_wall = self.wall.monotonic_ns()
            if self._stale_alerted:
                self._stale_alerted = False
                self._event("info", "market feed back")
        if isinstance(ev, Quote):
            ts = ev.ts_ns
            why = self.gate_problem(ts, what="quote")
            for name, px in (("bid", ev.bid), ("ask", ev.ask), ("last", ev.last)):
                if why is None and px is not None:
                    why = price_problem(px, float(self.broker.tick or self.spec.tick_size), self.last_trade_px,
                                        what=f"quote {name}")
            if why is not None:
                self._refuse(why)
            elif ts is not None:
                self._advance(ts)
                bar = self.agg.close_before(ts)
                if bar is not None:
                    self._on_bar(bar)
                self.last_data_ts = ts
        elif isinstance(ev, Prints):
            for p in ev.items:
                if isinstance(p, Refused):
                    self._refuse(p.reason)
                    continue
                ts, px, vol = p.ts_ns, p.price, p.volume
                why = self.gate_problem(ts, px, what="trade")
                if why is not None:
                    self._refuse(why)
                    continue
                self._advance(ts)
                bar = self.agg.on_trade(ts, float(px), float(vol))
                if bar is not None:
                    self._on_bar(bar)
                self.last_trade_px = float(px)
                self.last_data_ts = ts
        elif isinstance(ev, DepthUpdate):
            self.depth.apply(ev)
        elif isinstance(ev, FeedStatus):
            k = ev.kind
            if k in ("reconnected", "disconnected", "gap"):
                self.depth.clear()   # a new snapshot follows the resubscription
            sev = "information" if k in ("connected", "reconnected") else "warning"
            self._event("info", f"market hub {k}", sev)
        self.market_seen += 1
        if data:
            self.data_seen += 1

    def _advance(self, ts: int) -> None:
        if isinstance(self.clock, ExchangeClock):
            self.clock.observe(ts)

    def _on_bar(self, bar: tuple) -> None:
        """One closed bar ``(open ts UTC ns, open, high, low, close, volume)`` through the per-bar
        path every streaming mode shares (:class:`engine.step.StreamingBarPath`: signals →
        :class:`MarketState` → :class:`BarInput` → :func:`engine.step.step_bar`, timed); the
        contract-roll check and the first-decision time run between the inputs and the step."""
        ts, o, h, l, c, v = bar
        self._apply_commands()
        self._journal("bars_write", [bar])  # issue 26: the bars the session saw, for `drift`
        self._hi.append(h)
        self._lo.append(l)
        path = self._bar_path()
        self._bar_ts = ts
        b = path.step(self.i, ts, o, h, l, c, v, np.fromiter(self._hi, float), np.fromiter(self._lo, float))
        self._last_sig = path.last_signal
        self._last_pred_ns = b.close_ts
        kernel = self._kernel()
        self._last_bar = b
        self.first_bar_ts = ts if self.first_bar_ts is None else self.first_bar_ts
        self.last_bar_ts = ts
        self.closes.append(c)
        self.i += 1
        self._collect_events()
        self._route_kernel_alerts()
        k = kernel
        if self._roll_exit and k.oco.pos == 0 and not k.busy_orders() and not self._stop.is_set():
            self.exit_reason = f"contract roll: restart to trade {self._roll_exit}"
            log.warning("%s (the session ends flat)", self.exit_reason)
            self._stop.set()

    def _bar_path(self) -> StreamingBarPath:
        """The session's :class:`StreamingBarPath` (built once the kernel exists): the engine
        clock through :class:`FollowClock` (an exchange clock only moves forward; the wall clock
        moves by itself), the broker's venue through :class:`NoBarVenue` (its fills arrive as
        events), the spread the broker's quote (:meth:`quoted_spread`, through the market
        state's row)."""
        if self._path is None:
            self._path = StreamingBarPath(FollowClock(self.clock), NoBarVenue(self.venue), self._kernel(),
                                          self.signals, self.market, self._timed_risk, self.bar_ns,
                                          modelled_spread=True, before_step=self._before_step)
            self._path.timings, self._path.equity = self.timings, self.equity
        return self._path

    def quoted_spread(self) -> float:
        """The broker's quoted spread in ticks (best ask − best bid over the contract's tick)
        from the latest quote, for the kernel's spread breaker at each bar close; NaN without a
        quote or with a crossed/unusable one."""
        q = self.broker.last_quote() if self._venue_started else None
        if q is None or q.bid is None or q.ask is None:
            return float("nan")
        tick = float(self.broker.tick or self.spec.tick_size)
        sp = (float(q.ask) - float(q.bid)) / tick
        return sp if np.isfinite(sp) and sp >= 0 else float("nan")

    def _before_step(self, m: Any) -> None:
        """Between the bar's inputs and its kernel step: the first-decision time (once the signal
        source is warm) and the contract-roll check of the bar's trading day."""
        if self.first_decision_wall_s is None and self._signals_warm():
            self.first_decision_wall_s = (self.wall.monotonic_ns() - self._t_start_wall) / 1e9
            log.info("first decision %.1f s after start-up (bar %s, %d warm bars)", self.first_decision_wall_s,
                     _iso(self._bar_ts), self.warm_bars, extra={"event": "first_decision"})
        self._roll_check(int(m.day))

    def _signals_warm(self) -> bool:
        """True once the signal source decides on full inputs: the baseline's window is full,
        or the model's feature stream is past its warm-up."""
        sig = self.signals
        if getattr(sig, "is_baseline", False):
            return int(getattr(sig, "n", 0)) >= int(getattr(sig, "window", 0))
        stream = getattr(sig, "stream", None)
        return bool(getattr(stream, "ready", True))

    def _route_kernel_alerts(self) -> None:
        al = self._kernel().stats.alerts
        seen = getattr(self, "_alerts_routed", 0)
        for a in al[seen:]:
            self.alerts.send("warning", str(a[1]), str(a[2]))
        self._alerts_routed = len(al)

    def _timers(self) -> None:
        wall = self.wall.monotonic_ns()
        if self.cfg.clock == "wall":
            bar = self.agg.close_before(self.wall.now_ns() - int(self.cfg.close_grace_s * NS_PER_SECOND))
            if bar is not None:
                self._on_bar(bar)
        idle_s = (wall - self.last_data_wall) / NS_PER_SECOND
        if self.cfg.clock == "exchange" and self.market_seen and self.i > 0:
            end_s = self.cfg.feed_end_s if self.cfg.feed_end_s is not None else 2 * self.stale_feed_s
            if idle_s >= end_s:
                self.exit_reason = self.exit_reason or "market feed ended"
                log.info("no market data for %.1f s: the replayed feed ended", idle_s)
                self._stop.set()
                return
        elif idle_s >= self.stale_feed_s and not self._stale_alerted:
            self._stale_alerted = True
            self.alerts.send("warning", "stale_feed", f"no market data for {idle_s:.0f} s")
            self._event("alert", f"market feed stale ({idle_s:.0f} s)", "warning")
        if self.watchdog is not None:  # issue 26
            self.watchdog.tick(self)
        if self.broker.last_reconcile is not self._reconcile_seen and self.broker.last_reconcile is not None:
            self._note_reconcile(self.broker.last_reconcile)
        if not getattr(self.broker.venue, "connected", True) and not self._timed_risk.hold_reason:
            # a hub is down: what the broker does now is unseen until the table runs after the
            # reconnect (which frees entries again)
            object.__setattr__(self._timed_risk, "hold_reason",
                               "broker hub disconnected: entries held until the recovery table has run")
            self._event("alert", "broker hub disconnected: entries held until it reconnects and the "
                        "recovery table has run", "warning")
        rc = int((self.broker.stats or {}).get("reconnects", 0) or 0)
        if rc != self._reconnects_seen:
            self._reconnects_seen = rc
            self._recheck = "hub reconnect"
        if self.venue.outside and self._recheck is None:
            self._recheck = "outside fill"
        if self._recheck is not None and wall >= self._recheck_wall:
            self._run_recovery()
        if self.clock.now_ns() >= self._next_reconcile_ns and wall >= self._next_reconcile_wall:
            self._next_reconcile_ns = self.clock.now_ns() + int(self._reconcile_s() * NS_PER_SECOND)
            self._next_reconcile_wall = wall + int(self.cfg.min_reconcile_wall_s * NS_PER_SECOND)
            try:
                self._note_reconcile(self.broker.reconcile("periodic"))
            except Exception as exc:
                log.warning("periodic reconcile failed: %s (next one retries)", exc)
                self._broker = BrokerView(self._broker.last_reconcile_ns, "mismatch",
                                          f"reconcile failed: {exc}"[:200])

    def _drain_kernel(self) -> None:
        """Bring the kernel up to date with the venue's events (fills, order states) now rather
        than at the next bar close (no-op before the first bar: the kernel steps on a bar)."""
        if self.kernel is not None and self._last_bar is not None:
            self.kernel._drain(self._last_bar)

    def _run_recovery(self) -> None:
        """The recovery table at the running session (:meth:`Recovery.running`) for
        :attr:`_recheck`. When the broker does not confirm, new entries are held
        (:attr:`_LiveRisk.hold_reason`) and the table runs again ``recovery_retry_s`` later;
        once it resolves, entries are free again."""
        why = self._recheck or "check"
        if self.kernel is None or self._last_bar is None or self._timed_risk is None:
            return    # the kernel steps on bars: the table runs after the first one
        self._in_recovery = True
        try:
            rows = Recovery(self, False, when=why).running()
        except Exception as exc:   # SessionError names the table's run; anything else is named here
            msg = (str(exc) if isinstance(exc, SessionError) else f"{why} recovery: {type(exc).__name__}: {exc}")[:300]
            log.error("%s (entries held; retried in %g s)", msg, self.cfg.recovery_retry_s)
            if not self._timed_risk.hold_reason.startswith("recovery pending"):   # once per outage
                self._event("alert", msg[:200], "error")
            object.__setattr__(self._timed_risk, "hold_reason", f"recovery pending: {msg}"[:200])
            self._recheck_wall = self.wall.monotonic_ns() + int(self.cfg.recovery_retry_s * NS_PER_SECOND)
            self.recoveries.append({"ts_ns": self.clock.now_ns(), "why": why, "rows": [], "ok": False,
                                    "error": msg})
            return
        finally:
            self._in_recovery = False
        self._recheck = None
        if self._timed_risk.hold_reason and getattr(self.broker.venue, "connected", True):
            # (a hub still down keeps the hold: its reconnection runs the table again)
            object.__setattr__(self._timed_risk, "hold_reason", "")
            self._event("info", f"{why} recovery: the broker agrees; entries free again")
        if rows != ["flat"]:
            self.recoveries.append({"ts_ns": self.clock.now_ns(), "why": why, "rows": rows, "ok": True})
        else:
            log.debug("%s recovery: the broker and the kernel agree", why)
        self.recoveries = self.recoveries[-200:]

    def _note_reconcile(self, rep: ReconcileReport) -> None:
        self._reconcile_seen = rep
        k = self.kernel
        if (self._started and not self._in_recovery and k is not None and self._recheck is None
                and (rep.broker_qty != k.oco.pos or getattr(rep, "foreign_orders", None))):
            self._recheck = f"reconcile ({rep.reason})"   # confirmed against the kernel at the next timer pass
        now = self.clock.now_ns()
        if rep.ok:
            detail = f"{rep.reason}: position {rep.broker_qty:+d}, {rep.working_orders} working"
            self._broker = BrokerView(now, "agree", detail)
        else:
            detail = f"{rep.reason}: " + "; ".join(rep.mismatches)
            self._broker = BrokerView(now, "mismatch", detail[:300])
            self._event("alert", f"reconcile: {detail[:200]} (broker wins)", "warning")
            self._reconcile_policy(rep)
        self.reconciles.append({"ts_ns": now, "reason": rep.reason, "ok": rep.ok,
                                "broker_qty": rep.broker_qty, "mismatches": list(rep.mismatches)})
        self.reconciles = self.reconciles[-200:]

    def _reconcile_policy(self, rep: ReconcileReport) -> None:
        """``[reconcile] mode`` (R-EXE-4) on an UNEXPLAINED mismatch (``rep.unexplained``: the
        broker's position differs and no missed fill accounts for it). The broker always wins
        (the venue already holds the broker's position); then ``auto-sync`` trades on,
        ``warn`` trades on after a warning alert (sent by the venue), ``strict`` halts the risk
        manager (the kernel flattens at its next step; nothing trades until a manual reset)."""
        if not getattr(rep, "unexplained", None):
            return
        mode = self.settings.reconcile.mode
        if mode == "strict" and self.risk is not None:
            why = f"reconcile mismatch (strict mode): {rep.unexplained[0]}"[:200]
            if self.risk.state_dict().get("halt") is None:
                self.risk.halt(why, "system")
                self._event("state", f"HALTED: {why}", "error")
        elif mode == "warn":
            self._event("alert", f"reconcile (warn): {rep.unexplained[0]}"[:200], "warning")

    # ------------------------------------------------------------------ shutdown (R-LIVE-3)
    def _kernel_drain_step(self) -> None:
        """Book pending venue events through one kernel step in the EOD ``flat`` phase with no
        signal (nothing can open; a position left is closed), reusing the last bar's prices."""
        b = self._last_bar
        if b is None:
            self.venue.poll_events()
            return
        now = max(self.clock.now_ns(), b.close_ts)
        self._kernel().step(dataclasses.replace(b, close_ts=now, phase=4, direction=0,
                                             confidence=float("nan"), pred_class=-1))

    def shutdown(self, policy: str = "flatten") -> None:
        """R-LIVE-3 (module docstring). Idempotent; never raises (failures are logged/alerted)."""
        if getattr(self, "_shut", False):
            return
        self._shut = True
        try:
            if self._started and self.kernel is not None:
                o = self.kernel.oco
                if policy == "flatten":
                    if o.pos != 0 or (o.entry is not None and o.entry.is_working):
                        log.warning("shutdown: flattening %+d contracts", o.pos)
                        o.flatten("flatten")
                    end = self.wall.monotonic_ns() + int(self.cfg.shutdown_wait_s * NS_PER_SECOND)
                    while self.wall.monotonic_ns() < end:
                        self._kernel_drain_step()
                        if o.pos == 0 and not self.kernel.busy_orders():
                            break
                        self._stop.wait(0.05)
                    try:
                        self.broker.flatten("shutdown")
                    except Exception as exc:
                        self.alerts.send("critical", "shutdown_flatten", f"shutdown flatten failed: {exc}")
                    self._kernel_drain_step()
                    try:
                        rep = self.broker.reconcile("shutdown")
                        self._note_reconcile(rep)
                        if rep.broker_qty != 0:
                            self.alerts.send("critical", "shutdown_position",
                                             f"shutdown: broker still holds {rep.broker_qty:+d} contracts")
                    except Exception as exc:
                        log.error("shutdown reconcile failed: %s", exc)
                else:
                    log.warning("shutdown: keeping %+d contracts with their bracket working", o.pos)
                    self.venue.collect()
                self._risk().save()
                self._collect_events()
        except Exception:
            log.exception("shutdown failed part-way")
            self.alerts.send("critical", "shutdown_error", "shutdown failed part-way: check the broker")
        finally:
            self._close_venue()
            self._publish()
            rep_doc = None
            path = self.cfg.report_path
            if path is None and self.cfg.write_report and self._started:
                from engine.config import resolve_dir

                try:
                    stamp = to_datetime(self.wall.now_ns()).strftime("%Y%m%dT%H%M%SZ")
                    path = resolve_dir(self.settings.paths.reports_dir, "reports") / f"session-{self.cfg.mode}-{stamp}.json"
                except Exception:
                    log.exception("no reports directory for the session report")
            if path is not None:
                try:
                    rep_doc = self.report()
                    write_json_atomic(Path(path), rep_doc)
                    self.report_written = Path(path)
                    log.info("session report written to %s", path)
                except Exception:
                    log.exception("writing the session report failed")
            if self.journal is not None:
                try:
                    k = self.kernel
                    rep_doc = rep_doc or self.report()
                    self.journal.close_session(
                        ended_ns=self.clock.now_ns(), end_balance=self.broker.balance,
                        net_pnl=float(sum(t.net_pnl for t in k.trades)) if k is not None else 0.0,
                        trades=len(k.trades) if k is not None else 0, exit_reason=self.exit_reason,
                        report=rep_doc)
                except Exception:
                    log.exception("writing the session summary to the journal failed")
                self.journal.close()
                self.journal = None
            if self._own_alerts:
                self.alerts.close(2.0)

    def _close_venue(self) -> None:
        if self._venue_started:
            try:
                self.broker.close()         # cancels still on their way are answered first
            except Exception as exc:
                log.warning("venue stop: %s", exc)
            self._venue_started = False
        if self.lock is not None:
            self.lock.release()
        if self._lock2 is not None:
            self._lock2.release()

    # ------------------------------------------------------------------ snapshot hooks
    def _publish(self) -> None:
        if self.kernel is None:
            return
        super()._publish()

    def _market_view(self, now: int) -> tuple[QuoteView, float | None]:
        q = self.broker.last_quote() if self._venue_started else None
        bid, ask = (q.bid, q.ask) if q is not None else (None, None)
        last = self.last_trade_px if self.last_trade_px is not None else (q.last if q is not None else None)
        spread = (ask - bid) / self.spec.tick_size if bid is not None and ask is not None else None
        age = (now - self.last_data_ts) / 1e6 if self.last_data_ts is not None else None
        idle_s = (self.wall.monotonic_ns() - self.last_data_wall) / NS_PER_SECOND
        stale = bool(self.last_data_wall) and idle_s >= self.stale_feed_s
        bids, asks = self.depth.levels(3)
        return QuoteView(bid, ask, None if last is None else float(last), spread,
                         tuple(float(x) for x in self.closes), age, stale, bids, asks), age

    def _speed_label(self) -> str:
        return "" if self.cfg.clock == "wall" else "feed"

    def _broker_view(self, now: int) -> BrokerView:
        return self._broker

    def _bar_span(self):
        return self.first_bar_ts, self.last_bar_ts

    def report(self) -> dict[str, Any]:
        """The base session report plus the broker side: account, contract, reconciliations,
        venue counters, late prints."""
        if self.kernel is None:
            return {"mode": self.cfg.mode, "exit_reason": self.exit_reason, "trades": [], "trades_count": 0}
        rep = super().report()
        rep["broker"] = {
            "api": self.broker.endpoint,
            "broker": self.broker.broker,
            "account": self.broker.account_name,
            "contract": self.broker.contract_id,
            "clock": self.cfg.clock,
            "reconciliations": len(self.reconciles),
            "mismatches": [r for r in self.reconciles if not r["ok"]][-20:],
            "last_reconcile": self.reconciles[-1] if self.reconciles else None,
            "venue_stats": dict(self.broker.stats),
            "late_prints": self.agg.late,
            "modify_refused": self.broker.stats["modify_refused"],
            "market_events": self.market_seen,
            "records_refused": dict(self.refused),
        }
        rep["warm_bars"] = self.warm_bars
        rep["settings"] = self.settings.to_dict()  # issue 26: `drift` re-runs with them (secrets masked)
        rep["first_decision_s"] = self.first_decision_wall_s
        rep["adopted"] = self.adopted
        rep["recovery_rows"] = list(self.recovery_rows)
        rep["recoveries"] = list(self.recoveries[-50:])
        if self.rules is not None:
            rep["venue_rules"] = self._rules_view()
            rep["venue_rules"]["consistency_best_day_share"] = self.rules.consistency_share(float(self._risk().balance))
            rep["venue_rules"]["consistency_target"] = self.rules.profile.consistency_share
            rep["venue_rules"]["eod_high"] = self.rules.eod_high
        return rep


def _history_problem(bars, bar_ns: int) -> str | None:
    """Why history bars cannot warm the session (None when they can): empty, unsorted or
    duplicated open times, off the bar grid, non-finite or non-positive prices, high < low."""
    if not bars:
        return "no bars"
    prev = None
    for b in bars:
        if b.ts_ns % bar_ns:
            return f"bar {_iso(b.ts_ns)} off the {bar_ns // NS_PER_SECOND} s grid"
        if prev is not None and b.ts_ns <= prev:
            return f"bar {_iso(b.ts_ns)} not after {_iso(prev)}"
        px = (b.open, b.high, b.low, b.close)
        if not all(np.isfinite(x) and x > 0 for x in px) or not np.isfinite(b.volume):
            return f"bar {_iso(b.ts_ns)}: non-finite or non-positive values"
        if b.high < max(b.open, b.close, b.low) or b.low > min(b.open, b.close):
            return f"bar {_iso(b.ts_ns)}: high/low do not bound open/close"
        prev = b.ts_ns
    return None


def _iso(ts_ns: int) -> str:
    try:
        return to_datetime(int(ts_ns)).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):
        return f"{ts_ns} ns"


def _event_ts(ev: MarketEvent) -> int | None:
    """Exchange time (UTC ns) of a market event: a quote's time, the last print of a tape
    message; None for the other kinds (and a quote without a time)."""
    if isinstance(ev, Quote):
        return ev.ts_ns
    if isinstance(ev, Prints):
        ts = [p.ts_ns for p in ev.items if not isinstance(p, Refused)]
        return max(ts) if ts else None
    return None


def _default_state_dir(settings: Settings) -> Path:
    from engine.config import resolve_dir

    return resolve_dir(settings.paths.state_dir, "state")
