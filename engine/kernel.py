"""TradingKernel: one per-bar step of strategy → risk → execution (R-EXE-5, architecture §2).

The same object runs backtest, replay, paper and live; only the injected clock and venue differ.
It is single-threaded: venue events are drained from the venue's queue at the start of every step
(and again after the step's own orders, which an optimistic simulated venue fills at once).

One step, at the CLOSE of a bar (``BarInput.close_ts`` = bar open + bar length, UTC ns):
1. drain venue events → order table / OCO manager / position book; a position that returns to
   flat becomes a :class:`TradeRecord` and is reported to the risk manager
   (``on_trade_closed(net_pnl, exit_ts)``) and the signal generator (exit cooldown);
2. mark equity (cash + open P&L at the close) to the risk manager (``on_mark``); the cash is
   the risk manager's balance (its one owner) plus what the open trade's fills realized so far;
3. with a position: EOD phase ``exit``/``flat`` (16:00 / 16:05 NY under the topstepx profile, calendar-driven), the risk
   manager's ``flatten_reason`` → flatten (exit reason ``eod_flatten``; ``risk`` when HALTED;
   ``lockout`` inside an event blackout with ``[lockouts] events_action = "flatten"``);
   otherwise the stop follows ``risk.update_trailing`` (breakeven / trailing / EOD tightening)
   and never sits where a stop-out would breach the day's floor (:meth:`_day_floor_stop`);
4. the strategy's (direction, confidence) → :class:`SignalGenerator` → entry / exit / reversal.
   Entries need: flat, nothing live, the session allowed by ``SessionConfig.trade_session``, an
   EOD phase before ``no_new`` (15:50 NY under the topstepx profile), and the risk manager's approval
   (``evaluate_entry``), whose stop/target become the bracket in whole ticks from the fill.
   A reversal closes the position now and re-enters at the first step that finds it flat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.calendar import P_EXIT, P_NO_NEW, PHASE_CODES  # noqa: F401 - PHASE_CODES re-exported
from engine.execution.oco import OcoManager
from engine.execution.orders import CANCELLED, TERMINAL, WORKING
from engine.execution.position import PositionManager
from engine.execution.signals import ENTRIES, EXITS, HOLD, LONG_ENTRY, REVERSALS, Signal, SignalGenerator
from engine.venue.base import FillEvent, OrderUpdate, PositionUpdate, Venue

_NAN = float("nan")


def entry_window(trade_session: str, phase, is_rth, in_session):
    """The kernel's entry gate on the bar's clock: EOD phase before ``no_new`` and the session
    allowed by ``SessionConfig.trade_session`` (``rth``: RTH only; ``eth``: in session outside
    RTH; anything else: in session). Works on scalars (one bar, the kernel) and on numpy arrays
    (int8 phase codes, bool (n,); the backtest's skip-ahead), so the rule exists once."""
    if trade_session == "rth":
        ok = is_rth
    elif trade_session == "eth":
        ok = in_session & (is_rth == False)  # noqa: E712 - elementwise on arrays
    else:
        ok = in_session
    return (phase < P_NO_NEW) & ok


class KernelRisk(Protocol):
    """What the kernel asks of its risk collaborator (:class:`engine.risk.RiskManager` is the
    implementation; tests pass stubs). Money in dollars, times UTC ns, prices in points."""

    def on_mark(self, equity: float, now_ns: int) -> None: ...

    def on_market(self, now_ns: int, spread_ticks: float | None, atr_points: float | None,
                  normal_atr_points: float | None, volume: float | None,
                  avg_volume: float | None) -> None: ...

    def flatten_reason(self, now_ns: int) -> str | None: ...

    def update_trailing(self, side: int, entry: float, stop: float, best_price: float, now_ns: int,
                        initial_stop: float | None = None) -> float | None: ...

    def evaluate_entry(self, side: int, confidence: float, entry_price: float, atr_points: float,
                       recent_highs: Any, recent_lows: Any, now_ns: int, is_rth: bool) -> Any: ...

    def on_trade_closed(self, net_pnl: float, exit_ts_ns: int) -> None: ...

    @property
    def balance(self) -> float: ...


class SkipAheadRisk(KernelRisk, Protocol):
    """A :class:`KernelRisk` that also tells the backtest's skip-ahead when nothing can change
    (:meth:`engine.risk.RiskManager.next_entry_possible_ns`, ``quiet_equity_band``)."""

    def next_entry_possible_ns(self, now_ns: int) -> int | None: ...

    def quiet_equity_band(self) -> tuple[float, float]: ...


@dataclass(slots=True)
class BarInput:
    """What the kernel sees at one bar close (points; UTC ns; ``phase`` from PHASE_CODES)."""

    i: int
    close_ts: int
    open: float
    high: float
    low: float
    close: float
    atr: float
    is_rth: bool
    in_session: bool
    phase: int
    day: int
    direction: int
    confidence: float
    pred_class: int
    atr_normal: float = float("nan")
    volume: float = float("nan")
    avg_volume: float = float("nan")
    highs: Any = None  # Any, not object: mypyc (setup.py) cannot name builtins.object in a dataclass
    lows: Any = None
    spread: float = float("nan")  # ticks: quoted (paper/live) or modelled (engine.market.spread); NaN = unknown

    # An explicit __init__ (same parameters, same defaults as the fields): mypyc (setup.py) then
    # compiles it, where the dataclass-generated one is a Python function (about 4x the cost of
    # building a BarInput, once per stepped bar). The dataclass keeps its fields, repr, eq and
    # dataclasses.replace (engine/runtime/live.py). tests/test_exec_kernel.py checks the two agree.
    def __init__(self, i: int, close_ts: int, open: float, high: float, low: float, close: float,
                 atr: float, is_rth: bool, in_session: bool, phase: int, day: int, direction: int,
                 confidence: float, pred_class: int, atr_normal: float = _NAN, volume: float = _NAN,
                 avg_volume: float = _NAN, highs: Any = None, lows: Any = None,
                 spread: float = _NAN) -> None:
        self.i = i
        self.close_ts = close_ts
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.atr = atr
        self.is_rth = is_rth
        self.in_session = in_session
        self.phase = phase
        self.day = day
        self.direction = direction
        self.confidence = confidence
        self.pred_class = pred_class
        self.atr_normal = atr_normal
        self.volume = volume
        self.avg_volume = avg_volume
        self.highs = highs
        self.lows = lows
        self.spread = spread


@dataclass(slots=True)
class TradeRecord:
    """One round trip (flat → flat). Prices in points, money in dollars, times UTC ns.

    ``gross_pnl`` is the P&L at the reference prices (before slippage); ``slippage`` the dollars
    lost to slippage; ``commission`` commission + exchange fees; ``net_pnl`` = gross −
    commission − slippage (exactly)."""

    entry_ts: int
    exit_ts: int
    entry_bar: int
    exit_bar: int
    direction: int
    entry_price: float
    exit_price: float
    contracts: int
    gross_pnl: float
    commission: float
    slippage: float
    net_pnl: float
    exit_reason: str
    confidence: float
    predicted_class: int
    risk_dollars: float
    stop_ticks: int

    def __init__(self, entry_ts: int, exit_ts: int, entry_bar: int, exit_bar: int, direction: int,
                 entry_price: float, exit_price: float, contracts: int, gross_pnl: float,
                 commission: float, slippage: float, net_pnl: float, exit_reason: str,
                 confidence: float, predicted_class: int, risk_dollars: float, stop_ticks: int) -> None:
        # explicit: compiled by mypyc (see BarInput.__init__); one per round trip
        self.entry_ts = entry_ts
        self.exit_ts = exit_ts
        self.entry_bar = entry_bar
        self.exit_bar = exit_bar
        self.direction = direction
        self.entry_price = entry_price
        self.exit_price = exit_price
        self.contracts = contracts
        self.gross_pnl = gross_pnl
        self.commission = commission
        self.slippage = slippage
        self.net_pnl = net_pnl
        self.exit_reason = exit_reason
        self.confidence = confidence
        self.predicted_class = predicted_class
        self.risk_dollars = risk_dollars
        self.stop_ticks = stop_ticks


class _OpenTrade:
    """The round trip being built from its fills (sums of price × qty, points; costs, dollars);
    becomes a :class:`TradeRecord` when the position returns to flat. A plain compiled class:
    the kernel's own scratch record, one per round trip."""

    def __init__(self, entry_ts: int = 0, entry_bar: int = 0, direction: int = 0, confidence: float = 0.0,
                 pred_class: int = 0, risk_dollars: float = 0.0, stop_ticks: int = 0) -> None:
        # keywords and defaults as the dataclass it was (engine/runtime/live.py adopts a position
        # with ``_OpenTrade(entry_ts=..., entry_bar=0, direction=...)``)
        self.entry_ts = entry_ts
        self.entry_bar = entry_bar
        self.direction = direction
        self.qty_in = 0
        self.qty_out = 0
        self.px_in = 0.0
        self.px_out = 0.0
        self.ref_in = 0.0
        self.ref_out = 0.0
        self.commission = 0.0
        self.exit_role = ""
        self.confidence = confidence
        self.pred_class = pred_class
        self.risk_dollars = risk_dollars
        self.stop_ticks = stop_ticks


@dataclass
class KernelStats:
    steps: int = 0
    entries_refused: dict = field(default_factory=dict)
    alerts: list = field(default_factory=list)


class TradingKernel:
    """See the module docstring.

    Args:
        settings: :class:`engine.config.Settings`.
        venue: a :class:`engine.venue.base.Venue` (Protocol).
        risk: a :class:`KernelRisk` (``engine.risk.RiskManager``); optional extras it may
            offer: ``day_floor_equity`` (the stop floor), and for the backtest's skip-ahead
            ``next_entry_possible_ns`` and ``quiet_equity_band``.
        spec: :class:`engine.instruments.InstrumentSpec`.
        bar_ns: bar length, ns. starting_balance: dollars, the equity reported before the first step (:attr:`last_equity`); the cash itself is the risk manager's balance (:attr:`cash`).
    """

    def __init__(self, settings, venue: Venue, risk: KernelRisk, spec, *, bar_ns: int,
                 starting_balance: float) -> None:
        self.settings = settings
        self.venue = venue
        self.risk = risk
        self.spec = spec
        self.tick = spec.tick_size
        self.pv = spec.point_value
        self.signals = SignalGenerator(settings.signal, bar_ns)
        self.book = PositionManager(spec.point_value)  # the one owner of the position
        self.stats = KernelStats()
        self.oco = OcoManager(venue, spec.tick_size, self._alert, book=self.book)
        self.trades: list[TradeRecord] = []
        self._open_cash = 0.0  # dollars the open trade's fills moved (P&L − costs), not yet booked by the risk manager
        self.trade_session = settings.session.trade_session
        self._open: _OpenTrade | None = None
        self._pending_entry: tuple[float, int, float, int] | None = None  # (confidence, class, risk $, stop ticks)
        self._pending_reverse: tuple | None = None
        self._best = 0.0
        self._initial_stop: float | None = None
        self._i = -1
        # what the stop rule last saw: the stop price, the best price, the EOD phase (three typed
        # fields, not a tuple built per step; NaN: nothing seen yet, which equals nothing)
        self._trail_sp = _NAN
        self._trail_best = _NAN
        self._trail_phase = -1
        self._last_phase = 0
        self.last_equity = float(starting_balance)
        c = settings.costs
        # _day_floor_stop's constants: the exit's costs per contract and the worst slippage, points
        self._exit_cost_1 = c.commission_per_side + c.exchange_fee_per_side
        self._worst_pts = float(settings.slippage.high_vol_max_ticks) * self.tick
        self._floor_of: tuple = (None, None)  # (risk object, its day_floor_equity or None)

    # ------------------------------------------------------------------ helpers
    def _alert(self, kind: str, msg: str) -> None:
        self.stats.alerts.append((self._i, kind, msg))

    @property
    def position(self) -> int:
        return self.book.qty

    @property
    def cash(self) -> float:
        """Account cash, dollars: the risk manager's realized balance (the one owner of cash:
        starting capital, every closed trade's net P&L, the venue's balance on reconcile) plus
        what the open trade's fills have realized so far (partial exits, less their costs)."""
        return self.risk.balance + self._open_cash

    @property
    def best_price(self) -> float:
        """Best price since the entry (points): the high for a long, the low for a short; the
        trailing rule's input."""
        return self._best

    def busy(self) -> bool:
        """True when the next bar must be stepped: events queued, an entry/exit order live, a
        pending reversal, or anything but the two bracket legs working."""
        o = self.oco
        if self._pending_reverse is not None or self.venue.has_events():
            return True
        e = o.entry
        if e is not None and e.status in WORKING:
            return True
        if o.exits and o.closing_live():
            return True
        if self.book.qty != 0:
            if not o.protected():
                return True
            s = o.stop
            # a working stop always has a price
            sp: float = s.price if s is not None and s.status in WORKING else _NAN  # type: ignore[assignment]
            if sp != self._trail_sp or self._best != self._trail_best or self._last_phase != self._trail_phase:
                return True  # the stop rule has not yet seen the current stop / best price / phase
        return False

    def stop_target(self) -> tuple[float, float]:
        """Working stop and target prices (NaN when absent)."""
        s, t = self.oco.stop, self.oco.target
        sp = s.price if s is not None and s.is_working else float("nan")
        tp = t.price if t is not None and t.is_working else float("nan")
        return sp, tp  # type: ignore[return-value]  # a working stop/limit always has a price

    # ------------------------------------------------------------------ step
    def step(self, b: BarInput) -> Signal:
        """Process one bar close; returns the signal acted on (HOLD when none)."""
        self._i = b.i
        self._last_phase = b.phase
        self.stats.steps += 1
        now = b.close_ts
        events = self.venue.poll_events()
        if events:
            self._drain(b, events)
        bk = self.book
        q = bk.qty
        risk = self.risk
        # equity = cash + open P&L at the close (PositionManager.unrealized, inlined)
        eq = risk.balance + self._open_cash + ((b.close - bk.avg_price) * q * self.pv if q else 0.0)
        self.last_equity = eq
        risk.on_mark(eq, now)
        risk.on_market(now, b.spread, b.atr, b.atr_normal, b.volume, b.avg_volume)
        o = self.oco
        if q != 0 and self._initial_stop is None and o.stop is not None:
            self._initial_stop = o.stop.price
        e = o.entry
        if q != 0 or (e is not None and e.status in WORKING):
            why = risk.flatten_reason(now)
            if why is not None or b.phase >= P_EXIT:
                o.flatten("eod_flatten" if why is None or why.startswith("EOD") else
                          "lockout" if why.startswith("lockout") else "risk")
            elif q != 0 and not o.close_reason:
                side = 1 if q > 0 else -1
                self._best = max(self._best, b.high) if side > 0 else min(self._best, b.low)
                s = o.stop
                # a working stop always has a price
                sp: float = s.price if s is not None and s.status in WORKING else _NAN  # type: ignore[assignment]
                if sp == sp:
                    new = risk.update_trailing(side, bk.avg_price, sp, self._best, now,
                                               initial_stop=self._initial_stop)
                    self._trail_sp, self._trail_best, self._trail_phase = sp, self._best, b.phase
                    cur = sp if new is None else new
                    floor_px = self._day_floor_stop(side, bk.avg_price, abs(q))
                    reason = "stop"
                    if floor_px is not None and side * (floor_px - cur) > 1e-9:
                        new, reason = floor_px, "risk"
                    if new is not None and abs(new - sp) > 1e-9:
                        if (side > 0 and new >= b.close) or (side < 0 and new <= b.close):
                            o.flatten(reason)
                        else:
                            o.modify_stop(new)
        sig = HOLD
        if self._pending_reverse is not None and bk.qty == 0 and not self.busy_orders():
            d, c, k = self._pending_reverse
            self._pending_reverse = None
            self._try_entry(b, d, c, k)
        elif b.direction != 0:
            sig = self.signals.decide(b.direction, b.confidence, bk.qty, now)
            if sig in ENTRIES:
                if not self.busy_orders():
                    self._try_entry(b, 1 if sig is LONG_ENTRY else -1, b.confidence, b.pred_class)
            elif sig in EXITS:
                if not o.close_reason:
                    o.flatten("signal")
            elif sig in REVERSALS:
                if not o.close_reason:
                    o.flatten("signal")
                    self.signals.on_reversal(now)
                    self._pending_reverse = (b.direction, b.confidence, b.pred_class)
        events = self.venue.poll_events()
        if events:
            self._drain(b, events)
        return sig

    def _day_floor_stop(self, side: int, avg: float, qty: int) -> float | None:
        """The stop price (points, on the tick grid) at which a stop-out, with the worst-case
        slippage ``high_vol_max_ticks`` and the exit's costs, leaves the equity at the risk
        manager's day floor (``RiskManager.day_floor_equity``: the daily loss limit below the
        day's start, the daily drawdown limit below the day's peak, whichever is higher). An
        open profit lifts the day's peak, so this stop keeps a reversal from breaching the daily
        drawdown limit. None when the risk manager has no floor."""
        risk, get = self._floor_of
        if risk is not self.risk:
            risk, get = self._floor_of = (self.risk, getattr(self.risk, "day_floor_equity", None))
        floor = get() if get is not None else None
        if floor is None:
            return None
        exit_cost = self._exit_cost_1 * qty
        need = (floor + 1e-6 - self.cash + exit_cost) / (qty * self.pv) + self._worst_pts  # points beyond avg
        px = avg + side * need
        q = px / self.tick
        k = math.ceil(q - 1e-9) if side > 0 else math.floor(q + 1e-9)
        return k * self.tick

    def broker_flat(self, ts_ns: int, reason: str) -> None:
        """The broker has confirmed the account flat with no working order on the contract (the
        recovery table at a running session closed everything, :mod:`engine.runtime.recovery`):
        every order the kernel still holds live becomes CANCELLED (``reason`` in its history),
        the position book is flat and the open trade is dropped WITHOUT booking it: the caller
        books the broker's fills by trade id (risk state and journal at the broker's P&L and
        fees), so nothing is booked twice. The exit cooldown starts at ``ts_ns`` (UTC ns) as
        after any exit. Never sends an order."""
        oco = self.oco
        for o in oco.orders.values():
            if o.status not in TERMINAL:
                o.transition(CANCELLED, ts_ns, reason)
        bk = self.book
        bk.qty = 0
        bk.avg_price = 0.0
        oco.entry = oco.stop = oco.target = None
        oco.exits = []
        oco.close_reason = ""
        self._open = None
        self._pending_entry = None
        self._pending_reverse = None
        self._initial_stop = None
        self._open_cash = 0.0
        self.signals.on_exit(ts_ns)

    def busy_orders(self) -> bool:
        """True while the entry works or an exit may still fill (no new entry then)."""
        return self.oco.entry_or_exit_live()

    def _try_entry(self, b: BarInput, side: int, conf: float, cls: int) -> None:
        if not entry_window(self.trade_session, b.phase, b.is_rth, b.in_session):
            self._refuse("session/eod")
            return
        d = self.risk.evaluate_entry(side, conf, b.close, b.atr, b.highs, b.lows, b.close_ts, b.is_rth)
        if not d.approved or d.contracts < 1:
            self._refuse(d.reason or "refused")
            return
        stop_ticks = int(round(abs(b.close - d.stop_price) / self.tick))
        target_ticks = int(round(abs(d.target_price - b.close) / self.tick))
        self.oco.open(side, int(d.contracts), stop_ticks, target_ticks)
        self._pending_entry = (conf, cls, float(d.risk_dollars), stop_ticks)

    def _refuse(self, reason: str) -> None:
        r = self.stats.entries_refused
        r[reason] = r.get(reason, 0) + 1

    def _drain(self, b: BarInput, events: list | None = None) -> None:
        """Apply venue events until the queue is empty (``events``: a batch already polled)."""
        venue = self.venue
        oco = self.oco
        if events is None:
            events = venue.poll_events()
        ev: Any
        while events:
            for ev in events:
                # OcoManager.on_event's dispatch by exact type, calling its handlers directly
                # (native calls: bound methods kept in locals would be generic Python calls)
                t = ev.__class__
                if t is OrderUpdate:
                    oco._on_update(ev)
                    continue
                if t is PositionUpdate:
                    continue
                fill = oco._on_fill(ev) if t is FillEvent else oco.on_event(ev)
                if fill is not None:
                    self._on_fill(fill, b)
            events = venue.poll_events()

    def _on_fill(self, f: FillEvent, b: BarInput) -> None:
        oco = self.oco
        order = oco.last_fill_order  # the OCO manager booked the fill (of this order) in self.book
        role = order.role if order is not None else "exit"
        before = oco.last_fill_before
        pnl = self.oco.last_fill_pnl
        self._open_cash += pnl - f.commission
        t = self._open
        if before == 0:
            pe = self._pending_entry
            if pe is not None:
                t = self._open = _OpenTrade(f.ts_ns, b.i, f.side, pe[0], pe[1], pe[2], pe[3])
            else:  # a fill the kernel did not ask for (an adopted position's exit...)
                t = self._open = _OpenTrade(f.ts_ns, b.i, f.side, _NAN, 0, _NAN, 0)
            self._best = f.price
        assert t is not None, "a fill that does not open a position belongs to the open trade"
        t.commission += f.commission
        if f.side == t.direction:
            t.px_in += f.price * f.qty
            t.ref_in += f.ref_price * f.qty
            t.qty_in += f.qty
        else:
            t.px_out += f.price * f.qty
            t.ref_out += f.ref_price * f.qty
            t.qty_out += f.qty
            t.exit_role = role
        if self.book.qty == 0:
            self._close_trade(f, b)

    def _close_trade(self, f: FillEvent, b: BarInput) -> None:
        t = self._open
        assert t is not None, "a trade closes only when one is open"
        self._open = None
        d = t.direction
        pv = self.pv
        gross = (t.ref_out - t.ref_in) * d * pv
        actual = (t.px_out - t.px_in) * d * pv
        slippage = gross - actual
        role = t.exit_role
        reason = role if role in ("stop", "target") else (self.oco.close_reason or "signal")
        net = actual - t.commission
        rec = TradeRecord(
            entry_ts=t.entry_ts, exit_ts=f.ts_ns, entry_bar=t.entry_bar, exit_bar=b.i,
            direction=d, entry_price=t.px_in / t.qty_in, exit_price=t.px_out / t.qty_out,
            contracts=t.qty_in, gross_pnl=gross, commission=t.commission, slippage=slippage,
            net_pnl=net, exit_reason=reason, confidence=t.confidence,
            predicted_class=t.pred_class, risk_dollars=t.risk_dollars, stop_ticks=t.stop_ticks,
        )
        self.trades.append(rec)
        self._pending_entry = None
        self._initial_stop = None
        self.signals.on_exit(f.ts_ns)
        self.risk.on_trade_closed(net, f.ts_ns)
        self._open_cash = 0.0  # now in the risk manager's balance
