"""SimVenue: the simulated venue of backtest and replay (R-BT-1).

Timing (documented rule): the kernel decides at the CLOSE of bar ``i``; a market order placed then
fills at the OPEN of bar ``i + 1`` (fill models conservative and realistic), or at the close of
bar ``i`` itself (optimistic). Working stop and limit orders are checked against each bar's
range when :meth:`SimVenue.process_bar` runs, in this order: market orders at the open, then every
stop, then every limit. Fill timestamps are the open time of the bar in which the fill happened
(the signal bar's close time for optimistic market fills).

Fill models:
- ``conservative``: a limit (target) fills only if the price trades THROUGH it (high > sell limit,
  low < buy limit); market and stop orders pay the slippage model.
- ``realistic``: a limit fills when touched; market and stop orders pay the slippage model.
- ``optimistic``: market orders fill at the signal bar close; limits fill on touch; no slippage.

Pessimistic intrabar rule: when one bar's range touches both the stop and the target of a bracket,
the STOP fills and the target does not (Lean PR #9666; freqtrade evaluates stoploss first). With a
native OCO group the venue cancels the sibling; with ``native_oco=False`` both legs may fill (the
kernel's OCO manager must then flatten the excess).

Gaps: a stop whose level lies beyond the bar's open fills at the open (worse); a limit whose level
lies beyond the open fills at the open (better).

MLL liquidation (issue 23): with the account's venue rules as :attr:`SimVenue.guard`, a bar
whose adverse extreme takes the open position's intraday equity (balance + open P&L) to the
account's MLL closes the position at the level with the adverse slippage and fails the account
(:meth:`SimVenue._liquidate`); a fill that leaves the balance at or below it fails it too.

Slippage (per bar, ticks, adverse, precomputed by :func:`slippage_ticks`): 1 tick in RTH, 2 ticks
in ETH, 2-4 ticks when ATR / normal ATR ≥ ``high_vol_atr_ratio`` (scaled with the ratio; normal
ATR = the mean ATR of the same time of day over the last 20 trading days), 0 for limit fills
(REQUIREMENTS §0). No fill lies outside its bar's [low, high]: where the slippage would push a
buy above the bar's high (a sell below its low), it fills at the high (low): nothing traded
beyond it, and the slippage charged is what was actually paid. Costs: (commission + exchange fee) per side per contract,
$0.20 + $0.22 by default.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine.venue._slippage_jit import _slippage_pass  # numba: kept out of this module, which mypyc compiles (setup.py)
from engine.venue.base import (AccountInfo, Bracket, FillEvent, OrderStatus, OrderUpdate, PositionUpdate,
                               VenueError, VenueOrder, VenuePosition)

ACCEPTED, CANCELLED, FILLED = OrderStatus.ACCEPTED, OrderStatus.CANCELLED, OrderStatus.FILLED
PARTIALLY_FILLED, REJECTED = OrderStatus.PARTIALLY_FILLED, OrderStatus.REJECTED

FILL_MODELS = ("conservative", "optimistic", "realistic")
_LIVE = frozenset({ACCEPTED, PARTIALLY_FILLED})  # working at the simulated venue
_KINDS = frozenset({"market", "limit", "stop"})
_tnew = tuple.__new__  # builds the event NamedTuples without their Python-level __new__ (hot path)


def slippage_ticks(is_rth: np.ndarray, atr: np.ndarray, atr_normal: np.ndarray, cfg,
                   fill_model: str) -> np.ndarray:
    """Adverse slippage for market/stop fills per bar, in ticks (float64, shape (n,)).

    ``cfg`` is :class:`engine.config.SlippageConfig`. RTH: ``market_ticks``; ETH: ``thin_ticks``;
    where ``atr / atr_normal ≥ high_vol_atr_ratio``: ``high_vol_min_ticks × ratio /
    high_vol_atr_ratio`` rounded (half to even), clipped to [min, max] (2-4 ticks by default),
    if that is more. A NaN or non-positive normal ATR counts as normal volatility. Optimistic: 0.
    One compiled pass (no temporaries over the whole series)."""
    n = len(is_rth)
    if fill_model == "optimistic":
        return np.zeros(n)
    return _slippage_pass(np.ascontiguousarray(is_rth, dtype=np.bool_),
                          np.ascontiguousarray(atr, dtype=np.float64),
                          np.ascontiguousarray(atr_normal, dtype=np.float64),
                          float(cfg.market_ticks), float(cfg.thin_ticks), float(cfg.high_vol_min_ticks),
                          float(cfg.high_vol_max_ticks), float(cfg.high_vol_atr_ratio))


class _SimOrder:
    """One order at the simulated venue (typed: mypyc compiles it to a native class, so the
    per-bar fill checks read its fields directly)."""

    def __init__(self, order_id: str, tag: str, side: int, qty: int, kind: str, price: float | None,
                 bracket: Bracket | None, parent: str, role: str, born: int) -> None:
        self.order_id = order_id
        self.tag = tag
        self.side = side
        self.qty = qty
        self.filled = 0
        self.kind = kind
        self.price = price
        self.status: OrderStatus = ACCEPTED
        self.bracket = bracket
        self.parent = parent
        self.role = role
        self.born = born
        self.legs: list[_SimOrder] = []  # a bracketed entry's stop and target, once attached
        self.parent_order: _SimOrder | None = None  # a leg's entry (``parent`` is its id)


class SimVenue:
    """Simulated venue over one bar series.

    Args:
        ts, open, high, low, close: bar arrays (int64 UTC ns open time; float64 points).
        bar_ns: bar length, ns.
        tick_size: points per tick. point_value: dollars per point per contract.
        cost_per_side: dollars per contract per side (commission + exchange fee).
        slip_ticks: float64 (n,) adverse slippage ticks per bar (:func:`slippage_ticks`).
        fill_model: one of :data:`FILL_MODELS`.
        starting_balance: dollars. native_oco: brackets are native OCO groups.

    Raises ``ValueError`` for an unknown fill model.
    """

    @classmethod
    def for_bars(cls, bars, settings, spec, slip_ticks: np.ndarray, fill_model: str, *,
                 native_oco: bool = True) -> "SimVenue":
        """The simulated venue over ``bars`` (:class:`engine.data.bars.Bars`) as every driver
        builds it: tick size, point value and symbol from ``spec``, commission + exchange fee per
        side from ``settings.costs``, starting balance ``settings.account.starting_capital``,
        ``slip_ticks`` float64 (n,) (``MarketInputs.slip``). Raises ``ValueError`` for an unknown
        fill model."""
        c = settings.costs
        return cls(bars.ts, bars.open, bars.high, bars.low, bars.close, bar_ns=bars.bar_ns,
                   tick_size=spec.tick_size, point_value=spec.point_value,
                   cost_per_side=c.commission_per_side + c.exchange_fee_per_side, slip_ticks=slip_ticks,
                   fill_model=fill_model, starting_balance=float(settings.account.starting_capital),
                   native_oco=native_oco, symbol=spec.symbol)

    def __init__(self, ts, open_, high, low, close, *, bar_ns: int, tick_size: float,
                 point_value: float, cost_per_side: float, slip_ticks: np.ndarray,
                 fill_model: str = "conservative", starting_balance: float = 1000.0,
                 native_oco: bool = True, symbol: str = "MES", account_name: str = "SIM") -> None:
        if fill_model not in FILL_MODELS:
            raise ValueError(f"unknown fill model {fill_model!r}; allowed: {', '.join(FILL_MODELS)}")
        self.ts, self.open, self.high, self.low, self.close = ts, open_, high, low, close
        self.bar_ns = int(bar_ns)
        self.tick = float(tick_size)
        self.point_value = float(point_value)
        self.cost_per_side = float(cost_per_side)
        self.slip = slip_ticks
        # memoryviews of the per-bar arrays: indexing one gives the Python number at about half
        # the cost of ``ndarray.item(i)`` (a method call), once per stepped bar
        self._m_ts: Any = np.asarray(ts).data
        self._m_open: Any = np.asarray(open_).data
        self._m_high: Any = np.asarray(high).data
        self._m_low: Any = np.asarray(low).data
        self._m_close: Any = np.asarray(close).data
        self._m_slip: Any = np.asarray(slip_ticks).data
        self.fill_model = fill_model
        self.native_oco = native_oco
        self.symbol = symbol
        self.account_name = account_name
        self.balance = float(starting_balance)
        self.pos = 0
        self.avg = 0.0
        self.i = -1
        self._now_ns = 0  # close time of bar i (UTC ns): the time stamp of orders placed now
        # every order placed, in placement order: id "S{n}" is _orders[n - 1] (a list, not a dict
        # keyed by id: a year's backtest places ~15,000 orders, and inserting into a dict that
        # size misses the cache at every probe)
        self._orders: list[_SimOrder] = []
        self._working: list[_SimOrder] = []  # in placement order
        self._events: list = []  # queued events, oldest first (poll_events hands the list over)
        self._n = 0
        self.fail_next_stop = False  # test hook: reject the next stop order
        self.guard: Any = None
        """The account's venue rules (:class:`engine.risk.account_rules.AccountRules`, set by
        :func:`engine.parts.sim_parts`; None = no venue liquidation): see :meth:`_liquidate`."""
        self.liquidations: list[tuple[int, float, float, float]] = []
        """Every MLL liquidation: (UTC ns bar open, fill price, reference price, level $)."""

    # ------------------------------------------------------------------ protocol
    def place(self, side: int, qty: int, kind: str, price: float | None = None, *, tag: str,
              bracket: Bracket | None = None, _parent: str = "", _role: str = "") -> str:
        return self._new_order(side, qty, kind, price, tag, bracket, _parent, _role).order_id

    def _new_order(self, side: int, qty: int, kind: str, price: float | None, tag: str,
                   bracket: Bracket | None, _parent: str, _role: str) -> _SimOrder:
        """:meth:`place`, returning the order itself (the bracket legs keep their objects)."""
        if side not in (1, -1) or qty < 1 or kind not in _KINDS:
            raise VenueError(f"bad order: side={side} qty={qty} kind={kind!r} tag={tag!r}")
        if kind != "market" and price is None:
            raise VenueError(f"{kind} order {tag!r} needs a price")
        self._n += 1
        oid = f"S{self._n}"
        o = _SimOrder(oid, tag, side, int(qty), kind, price, bracket, _parent, _role, self.i)
        self._orders.append(o)
        now = self._now_ns
        if kind == "stop" and self.fail_next_stop:
            self.fail_next_stop = False
            o.status = REJECTED
            self._events.append(_tnew(OrderUpdate, (oid, tag, REJECTED, now, qty, price, kind, side,
                                                    _parent, _role, "simulated stop rejection")))
            return o
        self._events.append(_tnew(OrderUpdate, (oid, tag, ACCEPTED, now, qty, price, kind, side,
                                                _parent, _role, "")))
        self._working.append(o)
        if kind == "market" and self.fill_model == "optimistic" and self.i >= 0:
            c: float = self._m_close[self.i]
            self._fill(o, o.qty, c, c, now)
        return o

    def modify(self, order_id: str, *, qty: int | None = None, price: float | None = None) -> None:
        o = self._get(order_id)
        if o.status not in _LIVE:
            raise VenueError(f"modify {order_id}: order is {o.status.value}")
        if qty is not None:
            if qty <= o.filled:
                raise VenueError(f"modify {order_id}: qty {qty} ≤ filled {o.filled}")
            o.qty = int(qty)
        if price is not None:
            o.price = float(price)
        self._events.append(_tnew(OrderUpdate, (o.order_id, o.tag, ACCEPTED, self._now_ns, o.qty, o.price,
                                                o.kind, o.side, o.parent, o.role, "modified")))

    def cancel(self, order_id: str) -> None:
        o = self._get(order_id)
        if o.status in _LIVE:
            self._cancel(o, "cancel requested")

    def positions(self) -> list[VenuePosition]:
        return [VenuePosition(self.symbol, self.pos, self.avg)] if self.pos else []

    def open_orders(self) -> list[VenueOrder]:
        return [VenueOrder(o.order_id, o.tag, o.side, o.qty, o.filled, o.kind, o.price, o.status)
                for o in self._working]

    def account(self) -> AccountInfo:
        return AccountInfo(self.account_name, self.balance, True)

    def poll_events(self) -> list:
        ev = self._events
        if not ev:
            return []
        self._events = []  # the queue's list goes to the caller whole (no copy)
        return ev

    def has_events(self) -> bool:
        return bool(self._events)

    def has_working(self) -> bool:
        return bool(self._working)

    def has_pending_market(self) -> bool:
        return any(o.kind == "market" for o in self._working)

    # ------------------------------------------------------------------ simulation
    def process_bar(self, i: int) -> None:
        """Advance the venue to bar ``i``: fill market orders at its open, then check stops,
        then limits against its range (see the module docstring)."""
        self.i = i
        ts: int = self._m_ts[i]
        self._now_ns = ts + self.bar_ns
        if not self._working:
            return
        # typed locals: the fill checks below run on C doubles, not boxed floats
        o_: float = self._m_open[i]
        h: float = self._m_high[i]
        l: float = self._m_low[i]  # noqa: E741 - the bar's low, as in OHLC
        slip: float = self._m_slip[i] * self.tick
        live = _LIVE
        snap = tuple(self._working)
        filled_market = False
        for o in snap:
            if o.kind == "market" and o.status in live:
                px = min(o_ + slip, h) if o.side > 0 else max(o_ - slip, l)  # never outside the bar
                self._fill(o, o.qty - o.filled, px, o_, ts)
                filled_market = True
        if filled_market:  # an entry's fill attached its bracket legs: they work on this bar too
            snap = tuple(self._working)
        g = self.guard
        if g is not None and self.pos != 0:
            self._liquidate(g, o_, h, l, slip, ts)
        for o in snap:
            p = o.price  # a stop or limit always has one (place checks)
            if o.kind != "stop" or p is None or o.status not in live:
                continue
            if o.side < 0 and l <= p:
                ref = min(p, o_)
                self._fill(o, o.qty - o.filled, max(ref - slip, l), ref, ts)
            elif o.side > 0 and h >= p:
                ref = max(p, o_)
                self._fill(o, o.qty - o.filled, min(ref + slip, h), ref, ts)
        strict = self.fill_model == "conservative"
        # the same snapshot: a stop's fill adds no order (it only cancels or resizes a sibling,
        # which the status test sees)
        for o in snap:
            p = o.price
            if o.kind != "limit" or p is None or o.status not in live:
                continue
            if o.side < 0 and (h > p if strict else h >= p):
                ref = max(p, o_)
                self._fill(o, o.qty - o.filled, ref, ref, ts)
            elif o.side > 0 and (l < p if strict else l <= p):
                ref = min(p, o_)
                self._fill(o, o.qty - o.filled, ref, ref, ts)
        if g is not None and self.pos == 0:
            lvl: float = g.guard_level()
            if self.balance <= lvl + 1e-9:  # a fill (a gap through a stop) left the balance at the level
                g.on_liquidation(ts, "MLL (balance)", self.balance, lvl)

    def _liquidate(self, g: Any, o_: float, h: float, l: float, slip: float, ts: int) -> None:
        """The venue's MLL liquidation (issue 23), checked after the market orders and before
        the stops and limits of a bar.

        The open position's intraday equity (the venue's balance, net of the costs paid, + the
        open P&L at the bar's ADVERSE extreme, the low of a long / the high of a short; the
        exit's costs are not counted) at or below ``g.guard_level()`` dollars closes the whole
        position at the first tick at or beyond the level's price (at the open when the bar
        opened beyond it) with the bar's adverse slippage ``slip`` (points), never outside the
        bar, and fails the account (``g.on_liquidation``). A protective stop that lies before
        the level fills first (the price reaches it first); its fill may still leave the
        balance at the level, which :meth:`process_bar` checks after the bar's fills. The fill
        is the position's protective stop leg (the kernel's own order: its OCO sibling is
        cancelled, the kernel books the trade) or, without one, a market order tagged
        ``mll_liquidation`` (an order the kernel did not place: its reconcile sees it)."""
        lvl: float = g.guard_level()
        pos = self.pos
        if lvl < -1e300:
            return
        qpv = pos * self.point_value
        px_lvl = self.avg + (lvl - self.balance) / qpv
        tick = self.tick
        if pos > 0:
            if l > px_lvl:
                return
            ref = min(math.floor(px_lvl / tick + 1e-9) * tick, o_)
            px = max(ref - slip, l)
            side = -1
        else:
            if h < px_lvl:
                return
            ref = max(math.ceil(px_lvl / tick - 1e-9) * tick, o_)
            px = min(ref + slip, h)
            side = 1
        leg: _SimOrder | None = None
        for o in self._working:
            if o.kind == "stop" and o.side == side and o.status in _LIVE:
                leg = o
                break
        sp = leg.price if leg is not None else None
        if sp is not None and (sp >= ref if pos > 0 else sp <= ref):
            return  # the protective stop lies before the level: it fills first (the stops below)
        if leg is None:
            leg = self._new_order(side, abs(pos), "market", None, "mll_liquidation", None, "", "")
        qty = min(leg.qty - leg.filled, abs(pos))
        self._fill(leg, qty, px, ref, ts)
        self.liquidations.append((ts, float(px), float(ref), lvl))
        g.on_liquidation(ts, "MLL", self.balance, lvl)

    def _get(self, order_id: str) -> _SimOrder:
        """The order with the venue id ``order_id`` (``"S{n}"``, as :meth:`place` returned it);
        raises :class:`VenueError` for any other string."""
        digits = order_id[1:]
        if order_id[:1] == "S" and digits.isdecimal():
            n = int(digits)
            if 1 <= n <= len(self._orders):
                o = self._orders[n - 1]
                if o.order_id == order_id:  # "S01" is not "S1"
                    return o
        raise VenueError(f"unknown order id {order_id!r}")

    def _cancel(self, o: _SimOrder, reason: str) -> None:
        o.status = CANCELLED
        self._working.remove(o)
        self._events.append(_tnew(OrderUpdate, (o.order_id, o.tag, CANCELLED, self._now_ns, o.qty,
                                                o.price, o.kind, o.side, o.parent, o.role, reason)))

    def _fill(self, o: _SimOrder, qty: int, price: float, ref: float, ts: int) -> None:
        if qty <= 0:
            return
        o.filled += qty
        if o.filled == o.qty:
            o.status = FILLED
            self._working.remove(o)
        else:
            o.status = PARTIALLY_FILLED
        comm = self.cost_per_side * qty
        price, ref = float(price), float(ref)
        ev = self._events
        ev.append(_tnew(FillEvent, (o.order_id, o.tag, o.side, qty, price, ref, abs(price - ref), comm, ts)))
        self._book(o.side * qty, price, comm)
        ev.append(_tnew(PositionUpdate, (self.pos, self.avg, ts)))
        if o.bracket is not None:
            self._attach_legs(o, qty, price)
        parent = o.parent_order
        if parent is not None and self.native_oco:
            for sib in parent.legs:
                if sib is o or sib.status not in _LIVE:
                    continue
                left = sib.qty - qty
                if left <= sib.filled:
                    self._cancel(sib, "OCO sibling filled")
                else:
                    sib.qty = left
                    ev.append(_tnew(OrderUpdate, (sib.order_id, sib.tag, ACCEPTED, ts, sib.qty, sib.price,
                                                  sib.kind, sib.side, sib.parent, sib.role, "OCO resize")))

    def _attach_legs(self, entry: _SimOrder, qty: int, price: float) -> None:
        live = [x for x in entry.legs if x.status in _LIVE]
        if live:
            for leg in live:
                leg.qty += qty
                self._events.append(_tnew(OrderUpdate, (leg.order_id, leg.tag, ACCEPTED, self._now_ns,
                                                        leg.qty, leg.price, leg.kind, leg.side,
                                                        leg.parent, leg.role, "bracket resize")))
            return
        b = entry.bracket
        assert b is not None, "legs attach to a bracketed entry only"
        side = -entry.side
        stop = price - entry.side * b.stop_ticks * self.tick
        target = price + entry.side * b.target_ticks * self.tick
        eid = entry.order_id
        so = self._new_order(side, qty, "stop", stop, entry.tag + ":stop", None, eid, "stop")
        to = self._new_order(side, qty, "limit", target, entry.tag + ":target", None, eid, "target")
        so.parent_order = to.parent_order = entry
        entry.legs = [so, to]  # born on this bar (place)

    def _book(self, dq: int, price: float, comm: float) -> None:
        pv = self.point_value
        pos = self.pos
        if pos == 0 or (dq > 0) == (pos > 0):  # dq ≠ 0: same sign
            new = pos + dq
            self.avg = (self.avg * abs(pos) + price * abs(dq)) / abs(new)
            self.pos = new
        else:
            close = min(abs(dq), abs(pos))
            self.balance += (price - self.avg) * (1 if pos > 0 else -1) * close * pv
            rest = abs(dq) - close
            self.pos += dq
            if self.pos == 0:
                self.avg = 0.0
            elif rest > 0:
                self.avg = price
        self.balance -= comm
