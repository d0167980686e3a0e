"""The risk manager (REQUIREMENTS §0, R-RISK-1 … R-RISK-6): one owner for every risk counter.

It approves or refuses each entry with a reason, sizes it (R-RISK-2), sets its bracket
(R-RISK-3), runs the EOD phases (R-RISK-4), the circuit breakers (R-RISK-5) and the trading
states ACTIVE / REDUCING / HALTED (R-RISK-6), and persists its state through a
:class:`~engine.risk.store.RiskStateStore`. The rules, numbers and edge cases are written out in
``specs/risk.md``. Every time comes from the caller (``now_ns``) or the injected clock: UTC ns.

Money: dollars, net of costs. Prices: index points. Distances: whole ticks.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr
import math
import threading
from bisect import bisect_right
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Final, NamedTuple, cast

import numpy as np

from engine.calendar import P_NO_NEW, PHASE_NAMES, SESSION_START_NY, CmeCalendar, day_date, ny_datetime, ny_to_ns
from engine.clock import Clock, to_datetime
from engine.config import Settings
from engine.instruments import InstrumentSpec
from engine.risk import sizing, stops as stops_mod
from engine.risk.store import RiskStateError, RiskStateStore
from engine.risk.lockouts import Lockouts, build_lockouts  # issue 26: discipline lockouts
from engine.risk.sizing import is_finite  # one definition (compiled to C)
from engine.clock import NS  # nanoseconds per second: one definition

if TYPE_CHECKING:
    from engine.risk.account_rules import AccountRules

EPS: Final = 1e-9
BAND_MARGIN: Final = 1e-6
"""Dollars added to the low edge of :meth:`RiskManager.quiet_equity_band`: a caller that
recomputes the equity in another order of float operations (the backtest's compiled scan) may
differ by a few ulps from the kernel's mark; stopping a hair early only steps one more bar."""
RESET_WORD: Final = "RESET"
"""The word an operator must type to reset a halt."""

PHASE_ORDER = PHASE_NAMES[:5]  # the phases of a session's day (engine.calendar.PHASE_NAMES)
HALT_KINDS = ("account_drawdown", "kill_switch", "min_balance", "daily_loss", "daily_drawdown", "pause", "lockout")
"""Kinds of :attr:`RiskManager.halt_log` entries; the first three are account-level (they need
an operator's review; research mode lifts them at the next RTH open). ``lockout``: a discipline
lockout started (issue 26, :mod:`engine.risk.lockouts`)."""
ACCOUNT_HALT_KINDS = HALT_KINDS[:3]
NO_ENTRY_PHASES: Final = PHASE_NAMES[P_NO_NEW:]  # no_new, exit, flat, closed


_STATE_KINDS: dict[str, str] = {
    "balance": "float", "unrealized": "float", "hwm": "float", "kill_ref": "float", "trading_day": "int?",
    "day_start_equity": "float", "day_peak_equity": "float", "day_realized_pnl": "float",
    "trades_today": "int", "consecutive_losses": "int", "pause_until_ns": "int", "pause_reason": "str",
    "manual_pause": "dict?", "halt": "dict?", "day_block_until_ns": "int", "day_block_reason": "str",
    "last_event_ns": "int", "broker_booked": "ids", "broker_since_ns": "int?",
}
"""The keys of the persisted risk state (``risk_state.json``) and the kind of each value (``?``:
or null). The last two (crash recovery's broker trade ids) may be absent from older states."""
_OPTIONAL_KEYS = ("broker_booked", "broker_since_ns")


class TradingState(str, Enum):
    """ACTIVE: entries allowed. REDUCING: no new entries, protective orders stay (pauses,
    daily stops, breakers). HALTED: kill switch; the execution layer cancels entries, flattens,
    and only exposure-reducing orders pass until a manual :meth:`RiskManager.reset_halt`."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


@mypyc_attr(native_class=False)  # mypyc (setup.py) compiles builtin-exception subclasses as Python classes
class RiskActionError(RuntimeError):
    """A manual action that is refused (wrong confirmation word, nothing to resume/reset)."""


class RiskDecision(NamedTuple):
    """Answer to :meth:`RiskManager.evaluate_entry`.

    approved: True only with ``contracts`` ≥ 1. reason: why it was refused ("" when approved).
    stop_price / target_price: bracket in points on the tick grid (NaN when refused before the
    bracket was computed). risk_dollars: contracts × (stop ticks × tick value + round-trip
    costs + expected slippage) (≤ max_risk_per_trade, asserted). steps: the sizing stages, for
    the decision log.
    """

    approved: bool
    contracts: int
    reason: str
    stop_price: float
    target_price: float
    risk_dollars: float
    steps: tuple = ()


@dataclass(frozen=True)
class RiskSnapshot:
    """Everything the UI shows about risk; immutable, taken under the manager's lock.

    Money in dollars, times UTC ns (0 = none). ``breakers`` lists the active circuit breakers
    as ``"name:action"`` strings. ``eod_phase`` is one of normal/reduce/no_new/exit/flat/closed;
    ``next_phase``/``next_phase_ns`` the next boundary (including ``close``/``open``).
    """

    now_ns: int
    state: TradingState
    reason: str
    trading_day: str
    balance: float
    equity: float
    daily_pnl: float
    daily_realized_pnl: float
    daily_loss_used: float
    daily_loss_limit: float
    day_peak_equity: float
    day_drawdown: float
    daily_drawdown_limit: float
    daily_block_until_ns: int
    hwm: float
    drawdown: float
    account_drawdown_limit: float
    cumulative_loss: float
    kill_switch_limit: float
    kill_switch_distance: float
    consecutive_losses: int
    pause_until_ns: int
    manual_pause: bool
    halted_since_ns: int
    min_account_balance: float
    breakers: tuple
    eod_phase: str
    next_phase: str
    next_phase_ns: int
    flat_deadline_ns: int
    trades_today: int
    lockouts: tuple = ()
    """One line per configured discipline lockout (:meth:`engine.risk.lockouts.Lockouts.status`)."""


_tuple_new: Final = tuple.__new__


def _decision(approved: bool, contracts: int, reason: str, stop_price: float, target_price: float,
              risk_dollars: float, steps: tuple = ()) -> RiskDecision:
    """``RiskDecision(...)`` as its own ``__new__`` builds it (``tuple.__new__`` on the field
    values), without the interpreted ``__new__`` frame: the same object, for the per-entry path."""
    return cast(RiskDecision, _tuple_new(RiskDecision, (approved, contracts, reason, stop_price, target_price,
                                                        risk_dollars, steps)))


def _fmt_ny(ts_ns: int) -> str:
    return ny_datetime(ts_ns).strftime("%Y-%m-%d %H:%M %Z")


_NUMBER_TYPES = (int, float, np.floating, np.integer)


def _finite(x: Any) -> bool:
    if x.__class__ is float:  # the hot path (every bar): a plain Python float
        return is_finite(x)
    return x is not None and isinstance(x, _NUMBER_TYPES) and is_finite(float(x))


def _finite_or_nan(x: Any) -> float:
    """``float(x)`` when :func:`_finite` accepts ``x`` (a finite int, float or numpy number),
    else NaN (None, NaN, ±inf, anything else)."""
    if isinstance(x, float):  # the hot path (every bar): a float
        return float(x) if is_finite(x) else math.nan
    return float(x) if _finite(x) else math.nan


def _resized(d: RiskDecision, n: int, why: str, step: str) -> RiskDecision:
    """An approved entry ``d`` capped at ``n`` contracts by a rule (``step``: "venue" for the
    account rules, "consistency" for the consistency lockout): ``d`` itself when ``n`` covers it,
    refused with ``why`` at 0 contracts, else resized (risk dollars scaled, the cap recorded as a
    step)."""
    if n >= d.contracts:
        return d
    if n <= 0:
        return RiskDecision(False, 0, why, d.stop_price, d.target_price, 0.0, d.steps)
    return RiskDecision(True, n, d.reason, d.stop_price, d.target_price,
                        d.risk_dollars / d.contracts * n, d.steps + ((step, why),))


@mypyc_attr(allow_interpreted_subclasses=True)  # tests subclass it; compiled by setup.py
class RiskManager:
    """The risk manager of one account (see the module docstring and ``specs/risk.md``).

    Args:
        settings: the typed settings (risk, stops, eod, signal, session, account sections).
        clock: the injected engine clock (used for audit timestamps and :meth:`snapshot`).
        calendar: a :class:`CmeCalendar` covering every time it will be asked about.
        spec: the instrument traded (tick size and tick value).
        store: where state and audit lines persist; None = in memory (backtests).
        cap_to_daily_room: also cap an entry's stop-out (with worst-case slippage) at what is left
            of the daily loss limit and of the daily drawdown limit, whichever is smaller.
        research: backtest research mode (``[backtest] research``): an account-level halt
            (account drawdown, kill switch, minimum balance) is recorded in :attr:`halt_log` and
            lifted at the next RTH open as if an operator had reviewed it (the high-water mark,
            kill-switch reference or minimum-balance floor are rebased to the equity then).
            Never set it for paper or live trading: they never resume by themselves.

    :attr:`halt_log` lists every halt, daily block and pause as it starts, as dicts
    ``{"ts_ns": int UTC ns, "kind": str, "reason": str, "resumed_ns": int UTC ns | None}`` with
    kind one of :data:`HALT_KINDS`; ``resumed_ns`` is when entries may start again (None: never
    without an operator).

    Raises :class:`RiskStateError` when the stored state is unreadable (never resets silently).
    Not re-entrant across processes: hold an :class:`AccountLock` while trading live.
    """

    def __init__(self, settings: Settings, clock: Clock, calendar: CmeCalendar, spec: InstrumentSpec,
                 store: RiskStateStore | None = None, *, cap_to_daily_room: bool = True,
                 research: bool = False) -> None:
        self._settings = settings
        self.research = bool(research)
        self.halt_log: list[dict[str, Any]] = []
        self._research_resume_ns = 0  # research mode: when the pending account halt is lifted
        self._min_bal_shift = 0.0  # research mode: dollars the minimum-balance floor was lowered by
        self._min_bal_logged = False
        self.clock = clock
        self.calendar = calendar
        self.spec = spec
        self.store = store
        self.cap_to_daily_room = cap_to_daily_room
        self.audit_records: list[dict[str, Any]] = []
        self.account_rules: AccountRules | None = None
        """The venue's :class:`engine.risk.account_rules.AccountRules` (R-RISK-7; None = §0
        only): :meth:`evaluate_entry` caps or refuses an approved entry by them."""
        self._lock = threading.RLock()
        # its bound methods, for the per-step calls (the live session's console thread pauses,
        # halts and reads the state while the engine thread steps)
        self._acquire: Callable[[], Any] = self._lock.acquire
        self._release: Callable[[], Any] = self._lock.release
        self._tick = float(spec.tick_size)
        t = calendar.table
        self._t_open, self._t_close = t.open, t.close
        self._t_eod = calendar.eod_table(settings.eod)  # the [eod] profile's phase times
        self._t_day, self._t_rth_open = t.day, t.rth_open
        # the session cache: lo ≤ now < hi → row (-1 = closed) and its EOD phase times (UTC ns:
        # reduce, no_new, exit, flat; unused when closed)
        self._s_lo, self._s_hi, self._s_row = 0, -1, -2
        self._e_reduce = self._e_no_new = self._e_exit = self._e_flat = 0
        self._day_lo = 0
        self._day_hi = -1
        self._day_n = -2  # the trading day of [_day_lo, _day_hi)
        has_rth = t.rth_open >= 0  # sessions with RTH: their trading days and RTH opens
        # plain lists for the per-event lookups (bisect on a list beats numpy's per-call cost)
        self._close_list = t.close.tolist()
        self._open_list: list[int] = t.open.tolist()
        self._eod_rows: list[list[int]] = self._t_eod.tolist()  # per session: reduce, no_new, exit, flat
        self._rth_days, self._rth_opens = t.day[has_rth].tolist(), t.rth_open[has_rth].tolist()
        self._rth_next: tuple[int | None, int] = (None, 0)  # (trading day, next RTH open) of the last lookup
        # market breakers (not persisted: they come back with the next market update)
        self._spread_ticks = math.nan  # the last finite spread, ticks
        self._spread_paused = False
        # on_mark's quiet band: (lo, hi) dollars within which a mark can trip no latch and move
        # no peak (see _mark_band); _band_ok False = recompute. Every change of the counters it
        # depends on goes through _save(), which clears it.
        self._band_ok = False
        self._band_lo = math.inf
        self._band_hi = -math.inf
        self._per_min = -1.0  # next_entry_possible_ns: smallest stop-out, dollars (-1: not yet)
        # the last ATR / normal ATR and volume / average volume ratios (NaN: not measured)
        self._vol_ratio = math.nan
        self._volume_ratio = math.nan
        # the settings every hot call reads, as typed attributes (reading them through two
        # interpreted dataclasses costs two generic getattrs per value); `settings` is read-only
        r, sl = settings.risk, settings.slippage
        self._daily_loss_limit = float(r.daily_loss_limit)
        self._daily_drawdown_limit = float(r.daily_drawdown_limit)
        self._max_risk_per_trade = float(r.max_risk_per_trade)
        self._kill_switch_loss = float(r.kill_switch_loss)
        self._min_account_balance = float(r.min_account_balance)
        self._account_drawdown_limit = float(r.account_drawdown_limit)
        self._vol_breaker_ratio = float(r.volatility_breaker_ratio)
        self._vol_pause = r.volatility_action == "pause"
        self._vol_half = r.volatility_action == "half"
        self._spread_pause_ticks = float(r.spread_pause_ticks)
        self._spread_resume_ticks = float(r.spread_resume_ticks)
        self._low_volume_ratio = float(r.low_volume_ratio)
        self._volume_pause = r.low_volume_action == "pause"
        self._volume_reduce = r.low_volume_action == "reduce"
        self._loss_pauses: list[tuple[int, float]] = [(int(n), float(s)) for n, s in r.consecutive_loss_pauses]
        self._min_confidence = float(settings.signal.min_confidence)
        self._trade_session: str = settings.session.trade_session
        self._reduce_mult = float(settings.eod.reduce_size_multiplier)
        self._rt_cost = self._round_trip_cost()
        self._market_ticks = float(sl.market_ticks)
        self._thin_ticks = float(sl.thin_ticks)
        self._hv_ratio = float(sl.high_vol_atr_ratio)
        self._hv_min = float(sl.high_vol_min_ticks)
        self._hv_max = float(sl.high_vol_max_ticks)
        self._tick_value = float(spec.tick_value)
        self._sizer = sizing.Sizer(r.balance_tiers, r.confidence_multipliers, self._min_confidence,
                                   self._max_risk_per_trade)
        self._brackets = stops_mod.BracketRule(settings.stops, settings.eod, self._tick)
        # the persisted counters (what _state() hands the store): typed attributes, not a dict
        cap = float(settings.account.starting_capital)
        self._balance = cap
        self._unrealized = 0.0
        self._hwm = cap
        self._kill_ref = cap
        self._trading_day: int | None = None
        self._day_start_equity = cap
        self._day_peak_equity = cap
        self._day_realized_pnl = 0.0
        self._trades_today = 0
        self._consecutive_losses = 0
        self._pause_until_ns = 0
        self._pause_reason = ""
        self._manual_pause: dict[str, Any] | None = None
        self._halt: dict[str, Any] | None = None
        self._day_block_until_ns = 0
        self._day_block_reason = ""
        self._last_event_ns = 0
        # broker trade ids booked by crash recovery (book_broker_trades); optional in older states
        self._broker_booked: list[int] = []
        self._broker_since_ns: int | None = None
        # issue 26: the [lockouts] rules (None: none configured); entries, skip-ahead, event actions
        self._lockouts: Lockouts | None = build_lockouts(settings, calendar)
        lk_action = self._lockouts.action if self._lockouts is not None else "block"
        self._lk_flatten: bool = lk_action == "flatten"
        self._lk_breakeven: bool = lk_action == "breakeven"
        self._lk_logged = -1  # start (UTC ns) of the last window / blackout written to halt_log
        self._lk_consistency: bool = self._lockouts is not None and self._lockouts.consistency_cap < math.inf
        saved = store.load() if store is not None else None
        if saved is not None and store is not None:
            self._restore(saved, str(store.path))

    def _restore(self, saved: dict[str, Any], where: str) -> None:
        """Load the counters of a stored state (``RiskStateStore.load``); raises
        :class:`RiskStateError` naming ``where`` and the key for a missing key or a value of the
        wrong type (never resets silently)."""
        missing = sorted(set(_STATE_KINDS) - set(saved) - set(_OPTIONAL_KEYS))
        if missing:
            raise RiskStateError(f"{where}: risk state lacks keys {missing}")
        v: dict[str, Any] = {}
        for k, kind in _STATE_KINDS.items():
            x: Any = saved.get(k)
            ok = {"float": isinstance(x, (int, float)) and not isinstance(x, bool),
                  "int": isinstance(x, int) and not isinstance(x, bool),
                  "int?": x is None or (isinstance(x, int) and not isinstance(x, bool)),
                  "str": isinstance(x, str),
                  "dict?": x is None or isinstance(x, dict),
                  "ids": x is None or (isinstance(x, list) and all(isinstance(i, int) for i in x))}[kind]
            if k in _OPTIONAL_KEYS and k not in saved:
                ok = True
            if not ok:
                raise RiskStateError(f"{where}: risk state key {k!r} is {x!r}, want {kind}")
            v[k] = float(x) if kind == "float" else x
        self._balance, self._unrealized = v["balance"], v["unrealized"]
        self._hwm, self._kill_ref = v["hwm"], v["kill_ref"]
        self._trading_day = v["trading_day"]
        self._day_start_equity, self._day_peak_equity = v["day_start_equity"], v["day_peak_equity"]
        self._day_realized_pnl = v["day_realized_pnl"]
        self._trades_today, self._consecutive_losses = v["trades_today"], v["consecutive_losses"]
        self._pause_until_ns, self._pause_reason = v["pause_until_ns"], v["pause_reason"]
        self._manual_pause, self._halt = v["manual_pause"], v["halt"]
        self._day_block_until_ns, self._day_block_reason = v["day_block_until_ns"], v["day_block_reason"]
        self._last_event_ns = v["last_event_ns"]
        self._broker_booked = [int(i) for i in v["broker_booked"] or []]
        self._broker_since_ns = v["broker_since_ns"]

    def _state(self) -> dict[str, Any]:
        """The persisted counters as the store writes them (the keys of :data:`_STATE_KINDS`)."""
        return {
            "balance": self._balance,
            "unrealized": self._unrealized,
            "hwm": self._hwm,
            "kill_ref": self._kill_ref,
            "trading_day": self._trading_day,
            "day_start_equity": self._day_start_equity,
            "day_peak_equity": self._day_peak_equity,
            "day_realized_pnl": self._day_realized_pnl,
            "trades_today": self._trades_today,
            "consecutive_losses": self._consecutive_losses,
            "pause_until_ns": self._pause_until_ns,
            "pause_reason": self._pause_reason,
            "manual_pause": self._manual_pause,
            "halt": self._halt,
            "day_block_until_ns": self._day_block_until_ns,
            "day_block_reason": self._day_block_reason,
            "last_event_ns": self._last_event_ns,
            "broker_booked": list(self._broker_booked),
            "broker_since_ns": self._broker_since_ns,
        }

    @property
    def settings(self) -> Settings:
        """The settings the manager was built with (read-only: the hot paths keep typed copies
        of the values they read, so a replaced ``settings`` would be half-applied)."""
        return self._settings

    # ================================================================== time and calendar
    def _session(self, now_ns: int) -> int:
        """Row of the calendar session containing ``now_ns`` (-1: between sessions); fills the
        session cache. Raises CalendarError past the calendar span."""
        if self._s_lo <= now_ns < self._s_hi:
            return self._s_row
        i = bisect_right(self._close_list, now_ns)
        if i >= len(self._close_list):
            from engine.calendar import CalendarError
            raise CalendarError(f"{now_ns} ns ({_fmt_ny(now_ns)}) is past the calendar span")
        if self._open_list[i] <= now_ns:
            e = self._eod_rows[i]
            self._e_reduce, self._e_no_new, self._e_exit, self._e_flat = e[0], e[1], e[2], e[3]
            self._s_lo, self._s_hi, self._s_row = self._open_list[i], self._close_list[i], i
            return i
        prev_close = self._close_list[i - 1] if i > 0 else 0
        self._s_lo, self._s_hi, self._s_row = prev_close, self._open_list[i], -1
        return -1

    def eod_phase(self, now_ns: int) -> str:
        """EOD phase at ``now_ns`` (UTC ns): ``normal``, ``reduce`` (risk budget × 0.5),
        ``no_new`` (no new positions), ``exit`` (aggressive exits), ``flat`` (must be flat) or
        ``closed`` (outside every Globex session). The times come from the ``[eod]`` profile
        (:func:`engine.calendar.eod_schedule`; topstepx: 15:35 / 15:50 / 16:00 / 16:05 NY on
        full days, 12:40 / 12:55 / 13:05 / 13:10 before a 13:15 early close): DST-correct."""
        if self._session(now_ns) < 0:
            return "closed"
        if now_ns >= self._e_flat:
            return "flat"
        if now_ns >= self._e_exit:
            return "exit"
        if now_ns >= self._e_no_new:
            return "no_new"
        if now_ns >= self._e_reduce:
            return "reduce"
        return "normal"

    def must_flatten(self, now_ns: int) -> bool:
        """True in the ``exit`` and ``flat`` phases: positions must be closed now (market)."""
        return self.eod_phase(now_ns) in ("exit", "flat")

    def flat_deadline_ns(self, now_ns: int) -> int:
        """UTC ns by which the position must be flat: the ``flat`` time (16:05 NY on a full day
        under the topstepx profile) of
        the session containing ``now_ns``, or of the next session when the market is closed."""
        row = self._session(now_ns)
        if row < 0:
            row = int(np.searchsorted(self._t_open, now_ns, side="right"))
        return int(self._t_eod[row, 3])

    def next_phase(self, now_ns: int) -> tuple[str, int]:
        """(name, UTC ns) of the next EOD boundary after ``now_ns``: reduce/no_new/exit/flat,
        ``close`` (Globex close), or ``open`` when the market is closed."""
        row = self._session(now_ns)
        if row < 0:
            i = int(np.searchsorted(self._t_open, now_ns, side="right"))
            return "open", int(self._t_open[i])
        for name, ts in zip(PHASE_ORDER[1:], self._t_eod[row]):
            if now_ns < ts:
                return name, int(ts)
        return "close", int(self._t_close[row])

    def _next_rth_open_after_day(self, day: int) -> int:
        """RTH open (UTC ns) of the first trading day after ``day`` that has RTH (the calendar
        table is immutable and sorted by trading day; the last answer is kept)."""
        if day == self._rth_next[0]:
            return self._rth_next[1]
        j = bisect_right(self._rth_days, day)
        if j >= len(self._rth_days):
            from engine.calendar import CalendarError
            raise CalendarError(f"no RTH session after {day_date(day)} in the calendar span")
        self._rth_next = (day, self._rth_opens[j])
        return self._rth_next[1]

    def _sync(self, now_ns: int) -> None:
        """Roll the daily counters when ``now_ns`` is in a later CME trading day (18:00 NY)."""
        if self._research_resume_ns and now_ns >= self._research_resume_ns:
            self._research_resume()
        if self._day_lo <= now_ns < self._day_hi:
            return
        n = int(self.calendar.label_one(now_ns)[0])  # the 18:00 NY rule, cached per day
        d = day_date(n)
        # the next day's window starts where this one ended (one zoneinfo conversion per roll)
        self._day_lo = self._day_hi if n == self._day_n + 1 else ny_to_ns(d - timedelta(days=1), SESSION_START_NY)
        self._day_hi = ny_to_ns(d, SESSION_START_NY)
        self._day_n = n
        if self._trading_day is None or n > self._trading_day:
            eq = self.equity
            self._trading_day = n
            self._day_start_equity = eq
            self._day_peak_equity = eq
            self._day_realized_pnl = 0.0
            self._trades_today = 0
            self._save()
            rules = self.account_rules
            if rules is not None and rules.fed_by_risk:  # the MLL's end-of-day high, the day's P&L
                rules.on_balance(d.isoformat(), eq)

    # ================================================================== derived values
    @property
    def balance(self) -> float:
        """Realized balance, dollars: starting capital + every net P&L reported."""
        return float(self._balance)

    @property
    def equity(self) -> float:
        """Balance + unrealized P&L of the last :meth:`on_mark`, dollars."""
        return float(self._balance + self._unrealized)

    def save(self) -> None:
        """Write the persisted counters to the store now (atomic; no-op without a store). The
        manager already saves after every change; a session calls this once more at shutdown."""
        with self._lock:
            self._save()

    def _save(self) -> None:
        self._band_ok = False  # the counters may have changed: on_mark's quiet band is stale
        if self.store is not None:
            self.store.save(self._state())

    def _audit(self, action: str, operator: str, reason: str, now_ns: int, **extra: Any) -> None:
        rec = {
            "ts_ns": int(now_ns),
            "ts_utc": to_datetime(now_ns).isoformat(),
            "action": action,
            "operator": operator,
            "reason": reason,
            **extra,
        }
        self.audit_records.append(rec)
        if self.store is not None:
            self.store.audit.append(rec)

    # ================================================================== limits
    def _check_limits(self, now_ns: int) -> None:
        """Trip the latches whose thresholds are reached (kill switch, account drawdown →
        HALTED; daily loss, daily drawdown → blocked until the next RTH open)."""
        eq = self.equity
        if self._band_ok and self._band_lo < eq <= self._band_hi and not self._min_bal_logged:
            return  # no threshold within reach (see _mark_band)
        if self._halt is None:
            cum = self._kill_ref - eq
            dd = self._hwm - eq
            if cum + EPS >= self._kill_switch_loss:
                self._set_halt(f"kill switch: cumulative loss ${cum:,.2f} ≥ ${self._kill_switch_loss:,.2f}",
                               "system", now_ns, kind="kill_switch")
            elif dd + EPS >= self._account_drawdown_limit:
                self._set_halt(f"account drawdown ${dd:,.2f} from the high-water mark "
                               f"${self._hwm:,.2f} ≥ ${self._account_drawdown_limit:,.2f}: manual review",
                               "system", now_ns, kind="account_drawdown")
        bal = min(self.balance, eq)
        floor = self._min_account_balance - self._min_bal_shift
        if bal + EPS < floor:
            if not self._min_bal_logged:
                self._min_bal_logged = True
                self._log_halt(now_ns, "min_balance", f"balance ${bal:,.2f} below the minimum ${floor:,.2f}: "
                               "no trading", account=True)
        else:
            self._min_bal_logged = False
        loss = self._day_start_equity - eq
        ddd = self._day_peak_equity - eq
        if (loss + EPS >= self._daily_loss_limit or ddd + EPS >= self._daily_drawdown_limit) \
                and self._trading_day is not None:
            until = self._next_rth_open_after_day(int(self._trading_day))
            if until > self._day_block_until_ns:
                # the reason is written once per block (the end time is added when it is read)
                if loss + EPS >= self._daily_loss_limit:
                    why = f"daily loss limit: ${loss:,.2f} lost ≥ ${self._daily_loss_limit:,.2f}"
                else:
                    why = (f"daily drawdown: ${ddd:,.2f} below the day's peak ${self._day_peak_equity:,.2f} "
                           f"≥ ${self._daily_drawdown_limit:,.2f}")
                self._day_block_until_ns = until
                self._day_block_reason = why
                self._log_halt(now_ns, "daily_loss" if loss + EPS >= self._daily_loss_limit else "daily_drawdown",
                               why, resumed_ns=int(until))
                self._save()

    def _set_halt(self, reason: str, operator: str, now_ns: int, kind: str = "kill_switch") -> None:
        self._halt = {"reason": reason, "operator": operator, "since_ns": int(now_ns)}
        self._audit("halt", operator, reason, now_ns, equity=self.equity, balance=self.balance)
        self._log_halt(now_ns, kind, reason, account=True)
        self._save()

    def _log_halt(self, now_ns: int, kind: str, reason: str, *, resumed_ns: int | None = None,
                  account: bool = False) -> None:
        """Append one :attr:`halt_log` entry. An account-level one in research mode is scheduled
        to lift at the next RTH open after the current trading day."""
        if account and self.research and self._trading_day is not None:
            resumed_ns = self._next_rth_open_after_day(int(self._trading_day))
            self._research_resume_ns = max(self._research_resume_ns, resumed_ns)
        self.halt_log.append({"ts_ns": int(now_ns), "kind": kind, "reason": reason,
                              "resumed_ns": None if resumed_ns is None else int(resumed_ns)})

    def _research_resume(self) -> None:
        """Research mode: lift the account-level halt as an operator's review would (no audit
        line: nothing manual happened). The high-water mark and kill-switch reference are rebased
        to the equity where breached; a balance under the minimum lowers the floor to keep the
        configured distance (starting capital − minimum) below the current balance."""
        eq = self.equity
        self._research_resume_ns = 0
        self._halt = None
        if self._kill_ref - eq + EPS >= self._kill_switch_loss:
            self._kill_ref = eq
        if self._hwm - eq + EPS >= self._account_drawdown_limit:
            self._hwm = eq
        bal = min(self.balance, eq)
        if bal + EPS < self._min_account_balance - self._min_bal_shift:
            room = max(float(self.settings.account.starting_capital) - self._min_account_balance, 0.0)
            self._min_bal_shift = self._min_account_balance - (bal - room)
            self._min_bal_logged = False
        self._save()

    def _blocks(self, now_ns: int) -> list[tuple[TradingState, str]]:
        """Every reason that forbids a new entry now, most severe first (no side effects)."""
        out: list[tuple[TradingState, str]] = []
        if self._halt is not None:
            out.append((TradingState.HALTED, f"HALTED: {self._halt['reason']} (manual reset required)"))
        if self._day_block_until_ns > now_ns:
            out.append((TradingState.REDUCING, f"{self._day_block_reason}; no new trades until "
                                               f"{_fmt_ny(self._day_block_until_ns)}"))
        if self._manual_pause is not None:
            mp = self._manual_pause
            out.append((TradingState.REDUCING, f"paused by {mp['operator']}: {mp['reason']}"))
        if self._pause_until_ns > now_ns:
            out.append((TradingState.REDUCING, f"{self._pause_reason} until {_fmt_ny(self._pause_until_ns)}"))
        bal = min(self.balance, self.equity)
        if bal + EPS < self._min_account_balance - self._min_bal_shift:
            out.append((TradingState.REDUCING, f"balance ${bal:,.2f} below the minimum "
                        f"${self._min_account_balance - self._min_bal_shift:,.2f}: no trading"))
        if self._spread_paused:
            out.append((TradingState.REDUCING, f"spread breaker: {self._spread_ticks:g} ticks > "
                        f"{self._spread_pause_ticks:g}; paused until ≤ {self._spread_resume_ticks:g}"))
        if self._vol_pause and self._vol_active():
            out.append((TradingState.REDUCING, f"volatility breaker: ATR {self._vol_ratio:.2f}× normal > "
                        f"{self._vol_breaker_ratio:g}×"))
        if self._volume_pause and self._volume_active():
            out.append((TradingState.REDUCING, f"volume breaker: volume {self._volume_ratio:.1%} of its "
                        f"average < {self._low_volume_ratio:.0%}"))
        return out

    def _blocked(self, now_ns: int) -> bool:
        """``bool(self._blocks(now_ns))`` without building the reasons (the per-entry check)."""
        return (self._halt is not None or self._day_block_until_ns > now_ns or self._manual_pause is not None
                or self._pause_until_ns > now_ns
                or min(self.balance, self.equity) + EPS < self._min_account_balance - self._min_bal_shift
                or self._spread_paused
                or (self._vol_pause and self._vol_active())
                or (self._volume_pause and self._volume_active()))

    def _vol_active(self) -> bool:
        return self._vol_ratio > self._vol_breaker_ratio  # NaN (not measured) → False

    def _volume_active(self) -> bool:
        return self._volume_ratio < self._low_volume_ratio  # NaN (not measured) → False

    def _breakers(self) -> tuple:
        r = self.settings.risk
        out = []
        if self._vol_active():
            out.append(f"volatility:{r.volatility_action}")
        if self._spread_paused:
            out.append("spread:pause")
        if self._volume_active():
            out.append(f"volume:{r.low_volume_action}")
        return tuple(out)

    def state(self, now_ns: int | None = None) -> tuple[TradingState, str]:
        """(trading state, reason) at ``now_ns`` (default: the clock). Pauses whose time has
        passed no longer count (auto-resume)."""
        with self._lock:
            now = self.clock.now_ns() if now_ns is None else int(now_ns)
            blocks = self._blocks(now)
            if not blocks:
                return TradingState.ACTIVE, ""
            return blocks[0]

    def allow_order(self, reduces_exposure: bool, now_ns: int | None = None) -> tuple[bool, str]:
        """Whether a non-entry order may go out: exposure-reducing orders (exits, protective
        stops, cancels) always pass, in every state; anything else only while ACTIVE (new
        entries must also pass :meth:`evaluate_entry`)."""
        if reduces_exposure:
            return True, ""
        st, why = self.state(now_ns)
        return (st is TradingState.ACTIVE), why

    def day_floor_equity(self) -> float | None:
        """The lowest equity (dollars) today's limits allow: max(day's start equity − daily loss
        limit, day's peak equity − daily drawdown limit); None without ``cap_to_daily_room``.
        The kernel keeps an open position's stop above it (worst-case slippage included)."""
        if not self.cap_to_daily_room:
            return None
        self._acquire()  # the RLock, without a with-statement's two lookups per call
        try:
            return max(self._day_start_equity - self._daily_loss_limit, self._day_peak_equity - self._daily_drawdown_limit)
        finally:
            self._release()

    def flatten_reason(self, now_ns: int) -> str | None:
        """Why an open position must be flattened now (HALTED, or the EOD exit/flat phase), or
        None."""
        h = self._halt  # one read of a reference (atomic): no lock needed to look
        if h is not None:
            with self._lock:
                h = self._halt
                if h is not None:
                    return f"HALTED: {h['reason']}"
        if self._lk_flatten:  # issue 26: [lockouts] events_action = "flatten"
            lk = self._lockouts
            if lk is not None:
                act, why_lk = lk.event_position_action(now_ns)
                if act:
                    return why_lk
        # the cached session: before its exit time → None at once
        if self._s_lo <= now_ns < self._s_hi and (self._s_row < 0 or now_ns < self._e_exit):
            return None
        ph = self.eod_phase(now_ns)
        if ph in ("exit", "flat"):
            return f"EOD phase {ph}: flat by {_fmt_ny(self.flat_deadline_ns(now_ns))}"
        return None

    # ================================================================== entries
    def compute_bracket(self, side: int, entry: float, atr: float, highs: np.ndarray | None,
                        lows: np.ndarray | None, phase: str) -> tuple[float, float]:
        """(stop, target) prices in points for an entry; see :mod:`engine.risk.stops`."""
        return self._brackets.bracket(side, entry, atr, highs, lows, phase)

    def update_trailing(self, side: int, entry: float, stop: float, best_price: float, now_ns: int,
                        initial_stop: float | None = None) -> float | None:
        """A tighter stop (breakeven after ``breakeven_after_ticks``, trailing, EOD tightening
        when ``initial_stop`` is given) or None; never loosens. See
        :func:`engine.risk.stops.update_trailing`."""
        new = self._brackets.trailing(side, entry, stop, best_price, self.eod_phase(now_ns), initial_stop)
        if self._lk_breakeven:  # issue 26: [lockouts] events_action = "breakeven" at T - before
            lk = self._lockouts
            if lk is not None and lk.event_position_action(now_ns)[0]:
                k = entry / self._tick
                be = (math.ceil(k - 1e-9) if side > 0 else math.floor(k + 1e-9)) * self._tick
                cur = stop if new is None else new
                if side * (be - cur) > 1e-9:
                    return float(be)
        return new

    def evaluate_entry(self, side: int, confidence: float, entry_price: float, atr_points: float,
                       recent_highs: np.ndarray | None, recent_lows: np.ndarray | None, now_ns: int,
                       is_rth: bool) -> RiskDecision:
        """Approve or refuse one new entry, with size and bracket.

        Args: side +1 long / -1 short; confidence 0..1; entry_price points; atr_points the
        current ATR in points; recent_highs/recent_lows float64 arrays (the last
        ``structure_lookback`` used by the structure stop); now_ns UTC ns of the decision;
        is_rth whether ``now_ns`` lies in RTH (from the bar labels).

        Refuses (approved False, contracts 0, reason) in this order: HALTED; daily loss/drawdown
        block; manual pause; consecutive-loss pause; balance below minimum; spread, volatility
        (action pause) and volume (action pause) breakers; market closed or EOD phase ≥ no_new;
        outside ``session.trade_session``; a discipline lockout (``[lockouts]``,
        :mod:`engine.risk.lockouts`); bad side; confidence below the minimum; a bracket
        that cannot be computed; a size of 0 ("risk too small for one contract" or no room left
        in the daily loss limit). Any exception inside a check refuses with the exception text
        (fails closed). Never raises.
        """
        try:
            with self._lock:
                d = self._evaluate(side, confidence, entry_price, atr_points, recent_highs,
                                   recent_lows, int(now_ns), bool(is_rth))
                if d.approved and self.account_rules is not None:
                    d = self._venue_cap(d)
                if d.approved and self._lk_consistency:  # issue 26: the consistency share
                    d = self._consistency_cap(d, float(entry_price))
                return d
        except Exception as exc:  # fail closed: a broken check never approves
            return RiskDecision(False, 0, f"risk check failed: {type(exc).__name__}: {exc}",
                                math.nan, math.nan, 0.0)

    def _evaluate(self, side: int, confidence: float, entry: float, atr: float, highs: np.ndarray | None,
                  lows: np.ndarray | None, now: int, is_rth: bool) -> RiskDecision:
        nan = math.nan
        self._sync(now)
        self._check_limits(now)
        if self._blocked(now):
            return RiskDecision(False, 0, self._blocks(now)[0][1], nan, nan, 0.0)
        phase = self.eod_phase(now)
        if phase == "closed":
            return RiskDecision(False, 0, f"market closed at {_fmt_ny(now)}", nan, nan, 0.0)
        if phase in NO_ENTRY_PHASES:
            return RiskDecision(False, 0, f"EOD phase {phase}: no new positions after "
                                f"{_fmt_ny(int(self._t_eod[self._session(now), 1]))}", nan, nan, 0.0)
        ts = self._trade_session
        if ts == "rth" and not is_rth:
            return RiskDecision(False, 0, "outside RTH: entries allowed only in RTH (session.trade_session = rth)",
                                nan, nan, 0.0)
        if ts == "eth" and is_rth:
            return RiskDecision(False, 0, "inside RTH: entries allowed only in ETH (session.trade_session = eth)",
                                nan, nan, 0.0)
        lk = self._lockouts
        if lk is not None:  # issue 26: discipline lockouts (engine/risk/lockouts.py)
            why_lk = lk.entry_block(now, self._trades_today, self.equity - self._day_start_equity)
            if why_lk:
                start = lk.window_start(now)
                if start >= 0 and start != self._lk_logged:  # once per window / blackout
                    self._lk_logged = start
                    self._log_halt(now, "lockout", why_lk, resumed_ns=lk.window_end(now))
                return RiskDecision(False, 0, why_lk, nan, nan, 0.0)
        if side != 1 and side != -1:
            return RiskDecision(False, 0, f"side must be +1 or -1, got {side!r}", nan, nan, 0.0)
        mult = self._sizer.multiplier(confidence)
        if mult != mult:  # NaN: below the minimum confidence or the table's first row
            return RiskDecision(False, 0, f"confidence {confidence:.3f} below the minimum "
                                f"{self.settings.signal.min_confidence:.2f}", nan, nan, 0.0)
        stop, target = self.compute_bracket(side, entry, atr, highs, lows, phase)
        stop_ticks = int(math.ceil(abs(entry - stop) / self._tick - 1e-6))
        extras: tuple = ()
        if phase == "reduce" or self._vol_half or self._volume_reduce:
            ex = []
            if phase == "reduce":
                ex.append(("eod", self._reduce_mult))
            if self._vol_half and self._vol_active():
                ex.append(("volatility", 0.5))
            if self._volume_reduce and self._volume_active():
                ex.append(("volume", 0.5))
            extras = tuple(ex)
        tv = self._tick_value
        slip_side = self.expected_slippage_ticks(is_rth)
        worst_side = max(self._hv_max, slip_side)
        room, room_name = nan, ""
        if self.cap_to_daily_room:
            room, room_name = self._day_room()
        # research mode: a lowered minimum-balance floor also lifts the balance the tier sees
        n, why, per, steps = self._sizer.size_parts(
            min(self.balance, self.equity) + self._min_bal_shift, stop_ticks, tv, confidence, extras, room,
            room_name, self._rt_cost, 2.0 * slip_side * tv, 2.0 * (worst_side - slip_side) * tv)
        if n <= 0:
            return _decision(False, 0, why, stop, target, 0.0, steps)
        risk = n * per
        if risk > self._max_risk_per_trade + 1e-6:
            raise AssertionError(f"sized risk ${risk:.2f} exceeds max_risk_per_trade ${self._max_risk_per_trade:.2f}")
        return _decision(True, n, "", stop, target, risk, steps)

    def _round_trip_cost(self) -> float:
        c = self.settings.costs
        return 2.0 * (float(c.commission_per_side) + float(c.exchange_fee_per_side))

    def expected_slippage_ticks(self, is_rth: bool) -> float:
        """Expected adverse slippage of one market/stop fill, ticks (the simulated venue's model,
        :func:`engine.venue.sim.slippage_ticks`, on the last :meth:`on_market` volatility):
        ``market_ticks`` in RTH, ``thin_ticks`` in ETH, 2-4 ticks (``high_vol_*``) when ATR /
        normal ATR ≥ ``high_vol_atr_ratio``."""
        v = self._market_ticks if is_rth else self._thin_ticks
        ratio = self._vol_ratio
        if ratio >= self._hv_ratio:  # NaN (not measured) → False
            # round(): half to even, as numpy's rint
            t = min(max(float(round(self._hv_min * ratio / self._hv_ratio)), self._hv_min), self._hv_max)
            v = max(v, t)
        return v

    def _day_room(self) -> tuple[float, str]:
        """Dollars that may still be lost today: the smaller of the daily-loss room
        (limit − loss since the day's start) and the daily-drawdown room (limit − drop from the
        day's peak), with the name of the tighter limit."""
        eq = self.equity
        loss_room = self._daily_loss_limit - max(0.0, self._day_start_equity - eq)
        dd_room = self._daily_drawdown_limit - max(0.0, self._day_peak_equity - eq)
        if dd_room < loss_room:
            return dd_room, "the daily drawdown limit"
        return loss_room, "the daily loss limit"

    def _venue_cap(self, d: RiskDecision) -> RiskDecision:
        """R-RISK-7: the venue's rules beside §0, the tighter wins: the approved size is capped
        by :meth:`AccountRules.cap_entry` (position limit, MLL, personal daily loss limit) with
        the stop-out cost per contract = the sized risk per contract (stop distance, round-trip
        costs and expected slippage: :meth:`_evaluate`); 0 contracts → refused with the venue's
        reason."""
        rules = self.account_rules
        if rules is None:  # only called with rules set (evaluate_entry)
            return d
        rpc = d.risk_dollars / d.contracts
        n, why = rules.cap_entry(d.contracts, rpc, self.equity, self.balance)
        return _resized(d, n, why, "venue")

    def _consistency_cap(self, d: RiskDecision, entry: float) -> RiskDecision:
        """Issue 26: size an approved entry down (or refuse it) so that a win at its target
        (target distance × tick value − round-trip costs, per contract) keeps the day's P&L
        within the consistency share (:meth:`engine.risk.lockouts.Lockouts.consistency_contracts`)."""
        lk = self._lockouts
        if lk is None:
            return d
        win = abs(d.target_price - entry) / self._tick * self._tick_value - self._rt_cost
        n, why = lk.consistency_contracts(self.equity - self._day_start_equity, d.contracts, win)
        return _resized(d, n, why, "consistency")

    def next_entry_possible_ns(self, now_ns: int) -> int | None:
        """For a FLAT account (no position, so equity = balance and nothing changes until the
        next trade or operator action): a UTC ns before which :meth:`evaluate_entry` refuses
        every entry whatever the bar, or None when it refuses every entry until an operator
        acts (HALTED, operator pause, balance below the minimum, an account failed by its
        venue rules; in research mode the time the account-level halt is lifted instead).

        Counted: the consecutive-loss pause, the daily loss/drawdown block and, with
        ``cap_to_daily_room``, a daily room (loss or drawdown) smaller than the smallest stop-out
        any entry can have (:func:`engine.risk.stops.min_entry_stop_ticks` × tick value + round-
        trip costs + worst-case slippage ``high_vol_max_ticks`` a side): it lasts until the
        trading day rolls (18:00 NY), when the day's start equity is reset. Bar-dependent
        refusals (EOD phase, session, confidence, breakers, bracket) are not considered, so
        the first approvable entry is at or after the returned time. The backtest's skip-ahead
        uses it; it changes no counter (the day roll itself happens on the next event).
        """
        self._acquire()  # the RLock, without a with-statement's two lookups per call
        try:
            now = int(now_ns)
            if self._research_resume_ns or not self._day_lo <= now < self._day_hi:
                self._sync(now)
            if self._manual_pause is not None:
                return None
            rules = self.account_rules
            if rules is not None and rules.failed is not None:
                return None  # the account failed (its MLL): no further trade
            t = max(self._pause_until_ns, self._day_block_until_ns)
            if self._halt is not None or min(self.balance, self.equity) + EPS < self._min_account_balance - self._min_bal_shift:
                if not self._research_resume_ns:
                    return None  # only an operator can lift it
                t = max(t, self._research_resume_ns)
            if self.cap_to_daily_room:
                eq = self.equity  # _day_room's smaller room, inline
                room = min(self._daily_loss_limit - max(0.0, self._day_start_equity - eq),
                           self._daily_drawdown_limit - max(0.0, self._day_peak_equity - eq))
                per_min = self._per_min
                if per_min < 0.0:  # settings and instrument are fixed for the manager's life
                    worst = max(self._hv_max, min(self._market_ticks, self._thin_ticks))
                    per_min = self._per_min = (
                        stops_mod.min_entry_stop_ticks(self.settings.stops) * self._tick_value
                        + self._rt_cost + 2.0 * worst * self._tick_value)
                # the same floor as sizing.size_position's room cap, at the smallest stop
                if int(math.floor(max(room, 0.0) / per_min + sizing.EPS)) == 0:
                    t = max(t, self._day_hi)
            lk = self._lockouts
            if lk is not None:  # issue 26: a locked day lasts until the roll (windows: refused per signal)
                if lk.day_locked(self._trades_today, self.equity - self._day_start_equity):
                    t = max(t, self._day_hi)
            return t
        finally:
            self._release()

    def next_lockout_action_ns(self, now_ns: int) -> int | None:
        """UTC ns of the next event blackout start after ``now_ns`` at which an open position is
        flattened or its stop moved to break-even (``[lockouts] events_action``), or None: the
        backtest's skip-ahead steps that bar (issue 26)."""
        lk = self._lockouts
        if lk is None or not (self._lk_flatten or self._lk_breakeven):
            return None
        return lk.next_action_ns(int(now_ns))

    def quiet_equity_band(self) -> tuple[float, float]:
        """``(lo, hi)`` dollars: while a position is open and no trade closes, a mark
        (:meth:`on_mark`) with ``lo < equity <= hi`` trips no latch and moves no peak, so the
        risk state cannot change. ``hi`` is the day's peak equity (a higher mark lifts the peaks
        and with them the drawdown floors); ``lo`` is the highest equity at which a latch can
        trip: the daily loss limit below the day's start, the daily drawdown limit below the
        day's peak, the account drawdown limit below the high-water mark, the kill-switch loss
        below its reference and the minimum balance (research mode: as lowered), plus
        :data:`BAND_MARGIN` for the caller's own rounding of the equity. The backtest's
        skip-ahead scans bars until the equity leaves this band; a subclass that adds an equity
        latch extends ``lo`` / lowers ``hi`` here (tests/test_backtest_skip_latch.py)."""
        self._acquire()  # the RLock, without a with-statement's two lookups per call
        try:
            hi = float(self._day_peak_equity)
            lo = self._trip_level(self._min_account_balance - self._min_bal_shift) + BAND_MARGIN
        finally:
            self._release()
        return lo, hi

    # ================================================================== event inputs
    def on_trade_closed(self, net_pnl: float, exit_ts_ns: int) -> None:
        """A round trip (or partial exit) closed with ``net_pnl`` dollars after costs, at
        ``exit_ts_ns``. Updates the balance, the day's realized P&L, the consecutive-loss streak
        (a net loss < 0 adds one, anything else resets it), the pause (the longest
        ``consecutive_loss_pauses`` row whose count ≤ the streak, from the exit time), the peaks,
        and trips the latches. The unrealized P&L is reset to 0 (call :meth:`on_mark` after it if
        a position remains). Raises ValueError for a non-finite P&L."""
        if not (isinstance(net_pnl, float) and is_finite(net_pnl)) and not _finite(net_pnl):
            raise ValueError(f"on_trade_closed: net_pnl must be finite, got {net_pnl!r}")
        now = int(exit_ts_ns)
        self._acquire()  # the RLock, without a with-statement's two lookups per call
        try:
            self._sync(now)
            self._balance += float(net_pnl)
            self._unrealized = 0.0
            self._day_realized_pnl += float(net_pnl)
            self._trades_today += 1
            self._last_event_ns = max(self._last_event_ns, now)
            if net_pnl < 0:
                self._consecutive_losses += 1
                secs = 0.0
                for losses, pause_s in self._loss_pauses:
                    if self._consecutive_losses >= losses:
                        secs = max(secs, pause_s)
                if secs > 0:
                    until = now + int(round(secs * NS))
                    if until > self._pause_until_ns:
                        self._pause_until_ns = until
                        # the end time is added when the reason is read (_blocks): formatting
                        # a New York time on every losing trade would cost more than the rest
                        self._pause_reason = (f"{self._consecutive_losses} consecutive losses: paused "
                                              f"{secs / 60:g} min")
                        self._log_halt(now, "pause", self._pause_reason, resumed_ns=until)
            else:
                self._consecutive_losses = 0
            lk = self._lockouts
            if lk is not None:  # issue 26: the trade that locks the day (max trades / profit lock)
                day_pnl = self.equity - self._day_start_equity
                if lk.day_locked(self._trades_today, day_pnl) and not lk.day_locked(
                        self._trades_today - 1, day_pnl - float(net_pnl)):
                    self._log_halt(now, "lockout", lk.entry_block(now, self._trades_today, day_pnl),
                                   resumed_ns=self._day_hi)
            self._update_peaks()
            self._save()
            self._check_limits(now)
        finally:
            self._release()

    def _update_peaks(self) -> bool:
        eq = self.equity
        changed = False
        if eq > self._hwm:
            self._hwm = eq
            changed = True
        if eq > self._day_peak_equity:
            self._day_peak_equity = eq
            changed = True
        return changed

    def on_mark(self, equity: float, now_ns: int) -> None:
        """Mark-to-market: account equity in dollars (balance + unrealized P&L of the open
        position) at ``now_ns``. Drives the day's peak, the high-water mark, the daily
        loss/drawdown and the kill-switch/account-drawdown checks. Raises ValueError for NaN."""
        if not (isinstance(equity, float) and is_finite(equity)) and not _finite(equity):
            raise ValueError(f"on_mark: equity must be finite, got {equity!r}")
        now = int(now_ns)
        self._acquire()  # the RLock, without a with-statement's two lookups per call
        try:
            if self._research_resume_ns or not self._day_lo <= now < self._day_hi:
                self._sync(now)
            self._unrealized = u = float(equity) - self._balance
            if self._band_ok and self._band_lo < self._balance + u <= self._band_hi and not self._min_bal_logged:
                return  # nothing can trip or move (see _mark_band)
            if self._update_peaks():
                self._save()
            self._check_limits(now)
            if not self._band_ok:
                self._band_lo, self._band_hi = self._mark_band()
                self._band_ok = True
        finally:
            self._release()

    @property
    def _band(self) -> tuple[float, float] | None:
        """On_mark's quiet band ``(lo, hi)`` as last computed by :meth:`_mark_band`, or None
        while it is stale (the counters changed since)."""
        return (self._band_lo, self._band_hi) if self._band_ok else None

    def _mark_band(self) -> tuple[float, float]:
        """(lo, hi) dollars: an equity ``lo < eq <= hi`` moves no peak (``hi`` = the lower of
        the high-water mark and the day's peak) and trips no latch in :meth:`_check_limits`
        (``lo`` = the highest trip level, as in :meth:`quiet_equity_band`, plus
        :data:`BAND_MARGIN`), so :meth:`on_mark` may skip both. Empty when the realized balance
        is already below the minimum (the minimum-balance check then depends on more than the
        equity)."""
        floor = self._min_account_balance - self._min_bal_shift
        if self.balance + EPS < floor + BAND_MARGIN:
            return math.inf, -math.inf
        lo = self._trip_level(floor) + BAND_MARGIN
        return float(lo), float(min(self._hwm, self._day_peak_equity))

    def _trip_level(self, floor: float) -> float:
        """The highest equity (dollars) at which a latch trips: the daily loss limit below the
        day's start, the daily drawdown limit below the day's peak, the account drawdown limit
        below the high-water mark, the kill-switch loss below its reference, and ``floor`` (the
        minimum balance). Two-argument max() calls: mypyc compiles them to C (a five-argument
        max() is a call to the builtin with five boxed floats)."""
        lo = max(self._day_start_equity - self._daily_loss_limit, self._day_peak_equity - self._daily_drawdown_limit)
        lo = max(lo, self._hwm - self._account_drawdown_limit)
        lo = max(lo, self._kill_ref - self._kill_switch_loss)
        return max(lo, floor)

    def on_market(self, now_ns: int, spread_ticks: float | None, atr_points: float | None,
                  normal_atr_points: float | None, volume: float | None,
                  avg_volume: float | None) -> None:
        """Market conditions for the circuit breakers (R-RISK-5).

        - spread (ticks): > ``spread_pause_ticks`` (2) pauses entries until a spread ≤
          ``spread_resume_ticks`` (1) arrives; None/NaN (bars carry no spread) keeps the state.
        - volatility: ``atr_points / normal_atr_points`` > ``volatility_breaker_ratio`` (3)
          halves the size or pauses (``volatility_action``); NaN/None/≤0 → not measured, off.
        - volume: ``volume / avg_volume`` < ``low_volume_ratio`` (0.10) reduces (half size) or
          pauses (``low_volume_action``); NaN/None (data without volume) → not measured, off.
        """
        nan = math.nan
        self._acquire()  # the RLock, without a with-statement's two lookups per call
        try:
            now = int(now_ns)
            if self._research_resume_ns or not self._day_lo <= now < self._day_hi:
                self._sync(now)
            s = _finite_or_nan(spread_ticks)
            if s == s:
                self._spread_ticks = s
                if s > self._spread_pause_ticks:
                    self._spread_paused = True
                elif s <= self._spread_resume_ticks:
                    self._spread_paused = False
            a, n = _finite_or_nan(atr_points), _finite_or_nan(normal_atr_points)
            self._vol_ratio = a / n if a == a and n == n and n > 0 else nan
            v, n = _finite_or_nan(volume), _finite_or_nan(avg_volume)
            self._volume_ratio = v / n if v == v and n == n and n > 0 else nan
        finally:
            self._release()

    def on_new_trading_day(self, now_ns: int) -> None:
        """Explicit day-roll hook; the roll also happens by itself on any event whose time lies
        in a later CME trading day (18:00 NY). Resets the day's P&L, peak and trade count; the
        consecutive-loss streak and any block carry over."""
        with self._lock:
            self._sync(int(now_ns))

    def set_balance(self, balance: float, now_ns: int, operator: str = "system") -> None:
        """Replace the realized balance with the venue's (reconciliation). Audited; the day's
        start equity and peaks are not rewritten. Raises ValueError for NaN."""
        if not _finite(balance):
            raise ValueError(f"set_balance: balance must be finite, got {balance!r}")
        with self._lock:
            self._sync(int(now_ns))
            old = self._balance
            self._balance = float(balance)
            self._audit("set_balance", operator, "balance from the venue", now_ns, old=old, new=float(balance))
            self._update_peaks()
            self._save()
            self._check_limits(int(now_ns))

    def rebase_balance(self, balance: float, now_ns: int, operator: str = "system") -> None:
        """Start the account's books at the venue's balance (first session on a broker account
        whose balance is not the configured starting capital, R-RISK-7): balance, day start,
        day peak, high-water mark and kill-switch reference all become ``balance`` dollars, so
        the configured capital leaves no phantom day P&L or drawdown. Audited. Raises
        ValueError for NaN."""
        if not _finite(balance):
            raise ValueError(f"rebase_balance: balance must be finite, got {balance!r}")
        with self._lock:
            self._sync(int(now_ns))
            old = self._balance
            b = float(balance)
            self._balance = self._day_start_equity = self._day_peak_equity = self._hwm = self._kill_ref = b
            self._unrealized = 0.0
            self._audit("rebase_balance", operator, "books start at the venue's balance", now_ns, old=old, new=b)
            self._save()
            self._check_limits(int(now_ns))

    # ================================================================== manual actions
    def pause(self, reason: str, operator: str) -> None:
        """Operator pause: REDUCING (no new entries, protective orders stay) until
        :meth:`resume`. Audited. Raises :class:`RiskActionError` while HALTED."""
        now = self.clock.now_ns()
        with self._lock:
            if self._halt is not None:
                raise RiskActionError("trading is HALTED; a pause changes nothing (reset the halt first)")
            self._manual_pause = {"reason": reason, "operator": operator, "since_ns": now}
            self._audit("pause", operator, reason, now)
            self._save()

    def resume(self, operator: str) -> None:
        """End an operator pause (automatic pauses, daily blocks and breakers keep running).
        Audited. Raises :class:`RiskActionError` when there is no operator pause."""
        now = self.clock.now_ns()
        with self._lock:
            if self._manual_pause is None:
                raise RiskActionError("no operator pause to resume")
            self._manual_pause = None
            self._audit("resume", operator, "", now)
            self._save()

    def halt(self, reason: str, operator: str = "system") -> None:
        """Kill switch: HALTED until :meth:`reset_halt`. Audited. A second halt keeps the first
        reason and is audited too."""
        now = self.clock.now_ns()
        with self._lock:
            if self._halt is not None:
                self._audit("halt", operator, f"{reason} (already halted)", now)
                return
            self._set_halt(reason, operator, now)

    def reset_halt(self, operator: str, confirmation: str) -> None:
        """Manual reset of a halt. ``confirmation`` must be exactly ``"RESET"``; anything else
        is refused (and the refusal audited). Rebases a breached kill-switch reference and/or
        high-water mark to the current equity (both written to the audit line) so the halt does
        not trip again at once. Raises :class:`RiskActionError` on refusal or when not halted."""
        now = self.clock.now_ns()
        with self._lock:
            if confirmation != RESET_WORD:
                self._audit("reset_refused", operator, f"confirmation {confirmation!r} is not {RESET_WORD!r}", now)
                raise RiskActionError(f"reset refused: type {RESET_WORD} exactly to reset the halt")
            if self._halt is None:
                raise RiskActionError("not halted: nothing to reset")
            eq = self.equity
            extra: dict[str, Any] = {"halt_reason": self._halt["reason"], "equity": eq}
            if self._kill_ref - eq + EPS >= self._kill_switch_loss:
                extra["kill_ref_old"], extra["kill_ref_new"] = self._kill_ref, eq
                self._kill_ref = eq
            if self._hwm - eq + EPS >= self._account_drawdown_limit:
                extra["hwm_old"], extra["hwm_new"] = self._hwm, eq
                self._hwm = eq
            self._halt = None
            self._audit("reset_halt", operator, "typed confirmation", now, **extra)
            self._save()

    # ================================================================== snapshot
    def snapshot(self) -> RiskSnapshot:
        """Immutable view for the UI at the clock's time (read-only; no counters change)."""
        now = self.clock.now_ns()
        r = self.settings.risk
        with self._lock:
            blocks = self._blocks(now)
            state, reason = (blocks[0] if blocks else (TradingState.ACTIVE, ""))
            eq = self.equity
            cum = max(0.0, self._kill_ref - eq)
            try:
                phase = self.eod_phase(now)
                nxt, nxt_ns = self.next_phase(now)
                flat = self.flat_deadline_ns(now)
            except Exception as exc:  # outside the calendar: say so rather than crash the UI
                phase, nxt, nxt_ns, flat = f"unknown ({exc})", "", 0, 0
            day = self._trading_day
            return RiskSnapshot(
                now_ns=now,
                state=state,
                reason=reason,
                trading_day=day_date(day).isoformat() if day is not None else "",
                balance=self.balance,
                equity=eq,
                daily_pnl=eq - self._day_start_equity,
                daily_realized_pnl=float(self._day_realized_pnl),
                daily_loss_used=max(0.0, self._day_start_equity - eq),
                daily_loss_limit=r.daily_loss_limit,
                day_peak_equity=float(self._day_peak_equity),
                day_drawdown=max(0.0, self._day_peak_equity - eq),
                daily_drawdown_limit=r.daily_drawdown_limit,
                daily_block_until_ns=int(self._day_block_until_ns) if self._day_block_until_ns > now else 0,
                hwm=float(self._hwm),
                drawdown=max(0.0, self._hwm - eq),
                account_drawdown_limit=r.account_drawdown_limit,
                cumulative_loss=cum,
                kill_switch_limit=r.kill_switch_loss,
                kill_switch_distance=r.kill_switch_loss - cum,
                consecutive_losses=int(self._consecutive_losses),
                pause_until_ns=int(self._pause_until_ns) if self._pause_until_ns > now else 0,
                manual_pause=self._manual_pause is not None,
                halted_since_ns=int(self._halt["since_ns"]) if self._halt else 0,
                min_account_balance=r.min_account_balance,
                breakers=self._breakers(),
                eod_phase=phase,
                next_phase=nxt,
                next_phase_ns=nxt_ns,
                flat_deadline_ns=flat,
                trades_today=int(self._trades_today),
                lockouts=(self._lockouts.status(now, int(self._trades_today), eq - self._day_start_equity)
                          if self._lockouts is not None else ()),
            )

    def state_dict(self) -> dict[str, Any]:
        """A copy of the persisted counters (what :class:`RiskStateStore` writes)."""
        with self._lock:
            return self._state()

    def book_broker_trades(self, trade_ids: Any = (), net_pnl: float | None = None,
                           exit_ts_ns: int | None = None, since_ns: int | None = None) -> dict[str, Any]:
        """Book one round trip reported by the broker exactly once, by broker trade id (R-RISK-6,
        R-EXE-4: the broker is the source of truth; crash recovery in ``specs/live.md``).

        ``trade_ids``: the broker trade ids (ints) of the round trip's fills. When none of them
        is booked yet they are recorded and, with a ``net_pnl`` (dollars after fees), the trade is
        booked through :meth:`on_trade_closed` at ``exit_ts_ns`` (UTC ns): the ids, the balance
        and the counters reach ``risk_state.json`` in the same atomic write, so a crash can
        neither lose nor repeat it. ``net_pnl`` None only records the ids (fills that are not a
        round trip of this account's risk: voided, or there before the first session).
        ``since_ns`` (broker clock, UTC ns) moves the watermark from which a restart searches
        the broker's trades. When ANY id is already booked nothing changes (idempotent).

        Returns ``{"booked": bool, "ids": set of booked ids, "since_ns": watermark or None}``.
        The ids persisted by an earlier run are loaded with the rest of the state.
        Raises ValueError for a non-finite ``net_pnl``."""
        if net_pnl is not None and not _finite(net_pnl):
            raise ValueError(f"book_broker_trades: net_pnl must be finite, got {net_pnl!r}")
        cap = 5000   # ids kept: far more than one day's round trips
        with self._lock:
            booked = self._broker_booked
            ids = [int(x) for x in trade_ids]
            have = set(booked)
            done = False
            if ids and not have.intersection(ids):
                booked.extend(ids)
                del booked[:-cap]
                if since_ns is not None:
                    self._broker_since_ns = int(since_ns)
                if net_pnl is None:
                    self._save()
                else:
                    self.on_trade_closed(float(net_pnl), int(exit_ts_ns if exit_ts_ns is not None
                                                             else self.clock.now_ns()))
                done = True
            elif since_ns is not None and not ids:
                self._broker_since_ns = int(since_ns)
                self._save()
            return {"booked": done, "ids": set(booked), "since_ns": self._broker_since_ns}
