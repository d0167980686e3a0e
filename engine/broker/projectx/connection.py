"""ProjectX (TopstepX) as a :class:`engine.broker.base.BrokerConnection`: the first adapter.

It wraps a :class:`~engine.broker.projectx.venue.ProjectXVenue` (orders, user hub, REST
reconciliation; the kernel's venue) and translates the ProjectX market hub's events
(``GatewayQuote`` / ``GatewayTrade`` / ``GatewayDepth`` payloads, wire facts in
``reference/projectx-api.md`` §4 and §8) into the engine's market types, so
:class:`engine.runtime.live.LiveSession` never reads a ProjectX field name:

- a quote → :class:`Quote` (``timestamp``, else ``lastUpdated`` → ``ts_ns``; ``bestBid`` /
  ``bestAsk`` / ``lastPrice``); an unreadable timestamp is logged and the quote kept without a
  time (it then moves nothing);
- a trade list → one :class:`Prints` (per row: ``timestamp`` → ``ts_ns``, ``price``, ``volume``,
  ``type`` 0 buy / 1 sell → aggressor +1 / -1). Rows the wire makes unreadable become
  :class:`Refused` with the field named first (``trade record``, ``trade timestamp``,
  ``trade time``, ``trade price`` (not a number), ``trade volume`` (not a finite number ≥ 0),
  ``trade type`` (not 0/1)); the session's gate judges the rest (finite price > 0 on the tick
  grid, time within its window);
- depth rows → :class:`DepthUpdate` (DomType, reference §4: 1 Ask, 2 Bid, 3 BestAsk, 4 BestBid,
  6 Reset, 9 NewBestBid, 10 NewBestAsk; other types carry no book level; ``currentVolume``,
  else ``volume``, is the size at the price after the update);
- the hub's own ``refused`` events (a quote it would not merge) → :class:`Refused`; lifecycle
  kinds (``connected`` … ``error``) → :class:`FeedStatus`.

Identity for the account lock: :attr:`endpoint` = the REST root's host and port
(``127.0.0.1_8765``), the names the session used before this interface existed.
"""

from __future__ import annotations

import math
import queue
from typing import Any, Callable, Generic, TypeVar, overload

from engine.broker.base import (
    FEED_KINDS, BrokerFill, BrokerOrder, DepthRow, DepthUpdate, FeedStatus, HistoryBar, MarketEvent, Prints, Quote,
    ReconcileReport, Refused, TradePrint, api_host,
)
from engine.broker.projectx.hubs import HubEvent
from engine.broker.projectx.models import parse_ts
from engine.broker.projectx.venue import TYPE_TO_KIND, ProjectXVenue, is_engine_tag
from engine.clock import Clock
from engine.config import Secrets
from engine.logs import REDACT, get_logger

log = get_logger("live")   # the session's logger: the messages read as before the adapter existed

_BID = (2, 4, 9)
_ASK = (1, 3, 10)
_BEST = (3, 4, 9, 10)

T = TypeVar("T")


def _credentials(secrets: Secrets) -> Secrets:
    """``secrets`` (:class:`engine.config.Secrets`) when they hold the ProjectX username and
    API key; raises ``ValueError`` naming the environment variables otherwise."""
    if not secrets.projectx_username or not secrets.projectx_api_key:
        raise ValueError("ProjectX credentials missing: set PROJECTX_USERNAME and PROJECTX_API_KEY")
    return secrets


class _VenueValue(Generic[T]):
    """A read-only attribute of a :class:`ProjectXConnection` that reads the attribute ``attr``
    of its :class:`ProjectXVenue` at each access (through ``convert`` when given): the live
    state (account, contract, balance, position...) a ``BrokerConnection`` exposes, declared
    once as a table instead of one delegating property each. Setting it raises
    ``AttributeError`` naming it, as a property without a setter would."""

    def __init__(self, attr: str, convert: Callable[[Any], T] | None = None) -> None:
        self.attr = attr
        self.convert = convert
        self.name = attr

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> "_VenueValue[T]": ...

    @overload
    def __get__(self, obj: "ProjectXConnection", owner: type | None = None) -> T: ...

    def __get__(self, obj: "ProjectXConnection | None", owner: type | None = None) -> "T | _VenueValue[T]":
        if obj is None:
            return self
        value = getattr(obj.venue, self.attr)
        return value if self.convert is None else self.convert(value)

    def __set__(self, obj: "ProjectXConnection", value: Any) -> None:
        raise AttributeError(f"{self.name}: read-only (the venue's {self.attr})")


class ProjectXConnection:
    """:class:`~engine.broker.base.BrokerConnection` over one :class:`ProjectXVenue` (see the
    module docstring). Build it with :meth:`from_settings` (the command or composition root does)
    or around a ready venue (tests). ``stale_feed_s`` default: ``settings.projectx.stale_feed_s``
    of the venue's settings.

    Raises ``ValueError`` when the venue's settings lack the ProjectX credentials
    (``PROJECTX_USERNAME`` / ``PROJECTX_API_KEY``)."""

    broker = "projectx"

    def __init__(self, venue: ProjectXVenue, *, stale_feed_s: float | None = None) -> None:
        s = venue.settings
        sec = _credentials(s.secrets)
        REDACT.add(sec.projectx_api_key)
        self._v = venue
        self.endpoint_url = str(venue.client.base_url)
        self.endpoint = api_host(self.endpoint_url)
        self.stale_feed_s = float(s.projectx.stale_feed_s if stale_feed_s is None else stale_feed_s)

    @classmethod
    def from_settings(cls, settings: Any, wall: Clock, *, base_url: str | None = None,
                      **venue_kwargs: Any) -> "ProjectXConnection":
        """A connection to ``base_url`` (a local or practice gateway) or the configured
        ``[projectx] api_url``; ``venue_kwargs`` go to :class:`ProjectXVenue` (``native_oco``,
        ``on_alert``, ``market_depth``...). ``wall``: the real clock (token expiry, order
        searches). Raises ``ValueError`` for bad settings or missing credentials."""
        _credentials(settings.secrets)
        return cls(ProjectXVenue(settings, wall, base_url=base_url, **venue_kwargs))

    # ------------------------------------------------------------------ identity and state
    @property
    def venue(self) -> ProjectXVenue:
        """The kernel's venue (the same object for the whole session)."""
        return self._v

    # the venue's live state, read at each access (meanings: BrokerConnection's docstring)
    account_name = _VenueValue[str]("account_name")
    contract_id = _VenueValue[str | None]("contract_id")
    tick = _VenueValue[float]("tick", float)
    balance = _VenueValue[float | None]("balance")
    account_events = _VenueValue[int]("account_events")
    position_qty = _VenueValue[int]("pos_qty", int)
    stats = _VenueValue[dict]("stats")
    last_reconcile = _VenueValue[ReconcileReport | None]("last_reconcile")

    # ------------------------------------------------------------------ lifecycle
    def connect(self, timeout_s: float) -> ReconcileReport:
        """:meth:`ProjectXVenue.start`: login, account, front month, both hubs, start-up reconcile."""
        return self._v.start(timeout_s)

    def close(self) -> None:
        """Cancels still on their way are answered first (≤ 2 s), then the venue stops."""
        try:
            self._v.wait_sent(2.0)
        finally:
            self._v.stop()

    # ------------------------------------------------------------------ market data
    def market_events(self, timeout_s: float) -> list[MarketEvent]:
        q = self._v.market_events
        raw: list[HubEvent] = []
        if timeout_s > 0:
            try:
                raw.append(q.get(timeout=timeout_s))
            except queue.Empty:
                return []
        while True:
            try:
                raw.append(q.get_nowait())
            except queue.Empty:
                break
        out: list[MarketEvent] = []
        for ev in raw:
            m = translate_market(ev)
            if m is not None:
                out.append(m)
        return out

    def last_quote(self) -> Quote | None:
        q = self._v.last_quote()
        if not q:
            return None
        return Quote(None, _num(q.get("bestBid")), _num(q.get("bestAsk")), _num(q.get("lastPrice")))

    # ------------------------------------------------------------------ account and orders
    def reconcile(self, reason: str) -> ReconcileReport:
        return self._v.reconcile(reason)

    def flatten(self, reason: str) -> list:
        return self._v.flatten(reason)

    def cancel_all_working(self, keep_market: bool = True) -> list:
        return self._v.cancel_all_working(keep_market)

    def cancel_orders(self, ids: list[int]) -> list[int]:
        """``Order/cancel`` for each id, concurrently (:meth:`ProjectXVenue.cancel_orders`)."""
        return self._v.cancel_orders([int(i) for i in ids])

    def working_orders(self) -> list[BrokerOrder]:
        """``Order/v2/query`` working statuses on the contract (suspended bracket legs included),
        each with its tag, whether an engine tag (:func:`is_engine_tag`) and its role."""
        v = self._v
        out = []
        for o in v.client_working_orders():
            tag = o.custom_tag or ""
            ours = is_engine_tag(tag, v.tag_prefix)
            role = ("stop" if tag.endswith("-SL") else "target" if tag.endswith("-TP") else "entry") if ours else ""
            kind = TYPE_TO_KIND.get(o.type, "limit")
            px = o.stop_price if o.type in (4, 5) else o.limit_price
            out.append(BrokerOrder(int(o.id), tag, ours, role, 1 if o.side == 0 else -1,
                                   int(o.size) - int(o.fill_volume or 0), int(o.fill_volume or 0), kind,
                                   None if px is None else float(px), int(o.status) == 8))
        return out

    def account_balance(self) -> float | None:
        """``Account/search`` now (:meth:`ProjectXVenue.account`)."""
        return float(self._v.account().balance)

    def history(self, start_ns: int, end_ns: int, limit: int, bar_s: int) -> list[HistoryBar]:
        """``History/retrieveBars`` in minute units (``bar_s`` rounded down to whole minutes, at
        least 1); paced by the client's history bucket (50 / 30 s)."""
        unit = max(1, int(bar_s) // 60)
        return self._v.history(int(start_ns), int(end_ns), int(limit), unit_number=unit)

    def fills_since(self, since_ns: int) -> list[BrokerFill]:
        """``Trade/search`` from ``since_ns``, the session's contract only, id order; ``fees`` as
        :meth:`ProjectXVenue.trade_cost`; ``pnl`` the trade's ``profitAndLoss``; ``ours`` from
        the customTag of the trade's order (``Order/search`` over the same window, an hour
        earlier: the order of a fill may be older than the fill)."""
        v = self._v
        cid = v.contract_id
        trades = [t for t in v.trades_since(int(since_ns)) if t.contract_id == cid]
        tags: dict[int, str] = {}
        if trades:
            tags = {o.id: o.custom_tag or "" for o in v.orders_since(int(since_ns) - 3600 * 10**9)}
        return [BrokerFill(int(t.id), int(t.creation_ns or 0), 1 if t.side == 0 else -1, int(t.size),
                           float(t.price), float(v.trade_cost(t)), t.profit_and_loss, bool(t.voided),
                           int(t.order_id), is_engine_tag(tags.get(t.order_id), v.tag_prefix))
                for t in trades]


# ---------------------------------------------------------------------- translation


def translate_market(ev: HubEvent) -> MarketEvent | None:
    """One ProjectX market-hub event → an engine market event (None for kinds the session does
    not use). See the module docstring."""
    k = ev.kind
    if k == "refused":
        d = ev.data if isinstance(ev.data, dict) else {}
        return Refused(str(d.get("reason", "quote refused by the hub")))
    if k == "quote":
        d = ev.data if isinstance(ev.data, dict) else {}
        ts: int | None = None
        try:
            ts = parse_ts(d.get("timestamp") or d.get("lastUpdated"))
        except ValueError as exc:
            log.error("market quote with a bad timestamp ignored: %s", exc)
        return Quote(ts, _num(d.get("bestBid")), _num(d.get("bestAsk")), _num(d.get("lastPrice")))
    if k == "trade":
        return Prints(tuple(_print(r) for r in (ev.data or ())))
    if k == "depth":
        return depth_update(ev.data or ())
    if k in FEED_KINDS:
        return FeedStatus(k, str(ev.data or "")[:200])
    return None


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _num(x: Any) -> float | None:
    return float(x) if _is_num(x) else None


def _print(row: Any) -> TradePrint | Refused:
    if not isinstance(row, dict):
        return Refused(f"trade record: {str(row)[:60]!r} is not an object")
    try:
        ts = parse_ts(row.get("timestamp"))
    except (ValueError, TypeError) as exc:
        return Refused(f"trade timestamp: {exc}")
    if ts is None:
        return Refused("trade time: missing")
    px = row.get("price")
    price = _num(px)
    if price is None:
        return Refused(f"trade price: {px!r} is not a finite price > 0")
    vol = row.get("volume")
    volume = math.nan if vol is None else _num(vol)
    if volume is None or (vol is not None and not (math.isfinite(volume) and volume >= 0)):
        return Refused(f"trade volume: {vol!r} is not a finite number ≥ 0")
    t = row.get("type")
    if t not in (None, 0, 1):
        return Refused(f"trade type: {t!r} is not 0 (buy) / 1 (sell)")
    return TradePrint(int(ts), price, volume, 0 if t is None else (1 if t == 0 else -1))


def depth_update(rows: Any) -> DepthUpdate:
    """ProjectX ``GatewayDepth`` rows → one :class:`DepthUpdate`. A Reset (type 6) row clears
    the book: the rows before it are dropped (the book would clear them), the update carries
    ``reset``. Malformed rows are counted in ``bad``."""
    out: list[DepthRow] = []
    reset, bad = False, 0
    for r in rows:
        try:
            t = int(r.get("type"))
            if t == 6:
                reset, out = True, []
                continue
            side = 1 if t in _BID else -1 if t in _ASK else 0
            if side == 0:
                continue
            px = float(r["price"])
            raw = r.get("currentVolume")
            size = float(r.get("volume") if raw is None else raw)
            if not (math.isfinite(px) and px > 0 and math.isfinite(size) and size >= 0):
                raise ValueError("non-finite")
        except (TypeError, ValueError, KeyError, AttributeError):
            bad += 1
            continue
        out.append(DepthRow(side, px, size, t in _BEST))
    return DepthUpdate(tuple(out), reset, bad)

