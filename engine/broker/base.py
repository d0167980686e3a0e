"""The broker-neutral interface of a paper/live session (issue 11): what
:class:`engine.runtime.live.LiveSession` needs from a broker, in the engine's own types.

A session talks to ONE object, a :class:`BrokerConnection`. The adapter behind it (ProjectX
today: :class:`engine.broker.projectx.connection.ProjectXConnection`) translates its wire into
the types below; the session never sees a broker field name, a broker report class or a
broker URL. The adapter is built from settings by the caller (``mes_console/commands/run_live.py``
or the composition root), never by the session; ``engine.runtime`` imports ``engine.broker``
only through this module (an import-linter contract in ``pyproject.toml``).

Units everywhere: prices in index points, sizes in contracts (signed: + long / - short),
money in dollars, times in UTC nanoseconds since the epoch (:mod:`engine.clock`), durations in
seconds. What a second broker (Interactive Brokers through ``ib_async``) would supply for each
member: ``specs/live.md``, section "What a second broker must supply".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NotRequired, Protocol, TypedDict, Union
from urllib.parse import urlparse

from engine.venue.base import Venue

# --------------------------------------------------------------------------- the magnitude gate

PRICE_BAND = 0.2
"""How far (fraction of it) a price from the wire may lie from the last good price: 20 %, CME's
widest daily price limit for the equity index futures (7 / 13 / 20 % levels)."""

MAX_PRICE = 1e7
"""No index future trades anywhere near this (points): any larger number from the wire is junk,
and ``price / tick`` stays a finite number that ``round`` can take (1e308 overflowed it)."""


def price_problem(price: object, tick: float | None = None, last_good: float | None = None,
                  band: float = PRICE_BAND, what: str = "price") -> str | None:
    """The magnitude gate every price from the wire passes before any arithmetic (issue 22: the
    market hub, the session's sanity gate and the fake gateway share it). Returns why ``price``
    (points) is refused, starting with ``what`` and ``:``, or None when it is a finite number
    ``0 < price < MAX_PRICE``, on the ``tick`` grid (points; None/0: not checked) and, with a
    ``last_good`` price (points), within ``band`` × ``last_good`` of it. Never raises: a
    ``bool``, a string, NaN, ±inf, 1e308 or -1 are refusals, not exceptions."""
    if isinstance(price, bool) or not isinstance(price, (int, float)):
        return f"{what}: {price!r} is not a finite price > 0"
    p = float(price)
    if not math.isfinite(p) or p <= 0:
        return f"{what}: {price!r} is not a finite price > 0"
    if p >= MAX_PRICE:
        return f"{what}: {price!r} is beyond any plausible price (≥ {MAX_PRICE:g})"
    if last_good is not None and math.isfinite(last_good) and last_good > 0 and abs(p - last_good) > band * last_good:
        return f"{what}: {price!r} is more than {band:.0%} from the last good price {last_good:g}"
    if tick and math.isfinite(tick) and tick > 0:
        q = p / tick
        if abs(q - round(q)) > 1e-6:
            return f"{what}: {price!r} is off the {tick:g} tick grid"
    return None


# --------------------------------------------------------------------------- market data


@dataclass(frozen=True, slots=True)
class Quote:
    """Top of book of the session's contract.

    ``ts_ns``: exchange time of the update (UTC ns; None when the broker sent none or an
    unreadable one). ``bid`` / ``ask`` / ``last``: points, None when unknown."""

    ts_ns: int | None
    bid: float | None = None
    ask: float | None = None
    last: float | None = None


@dataclass(frozen=True, slots=True)
class TradePrint:
    """One print on the tape: exchange time (UTC ns), price (points; a number, maybe not
    finite: the session's sanity gate judges it), volume (contracts; NaN when the feed has
    none), aggressor side (+1 buyer, -1 seller, 0 unknown)."""

    ts_ns: int
    price: float
    volume: float = math.nan
    aggressor: int = 0


@dataclass(frozen=True, slots=True)
class DepthRow:
    """One market-depth update: ``side`` +1 bid / -1 ask; ``price`` points; ``size`` contracts
    resting at that price AFTER the update (0 removes the level); ``best`` True when the row
    is a new best price (every level better than it on that side is gone)."""

    side: int
    price: float
    size: float
    best: bool = False


@dataclass(frozen=True, slots=True)
class DepthUpdate:
    """A batch of depth rows in arrival order. ``reset``: clear the book before applying the
    rows; ``bad``: rows the adapter could not read (dropped, counted by :class:`DepthBook`)."""

    rows: tuple[DepthRow, ...] = ()
    reset: bool = False
    bad: int = 0


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """A market-feed lifecycle event: ``kind`` one of ``FEED_KINDS`` (``connected``,
    ``reconnected``, ``disconnected``, ``stale``, ``logout``, ``gap``, ``error``); ``detail``
    free text for the log."""

    kind: str
    detail: str = ""


FEED_KINDS = ("connected", "reconnected", "disconnected", "stale", "logout", "gap", "error")


@dataclass(frozen=True, slots=True)
class Refused:
    """A market record the adapter (or its feed) refused before translation. ``reason`` starts
    with the field it failed on, then ``:`` (``"trade price: 'x' is not a finite price > 0"``);
    the session counts refusals by that prefix."""

    reason: str


@dataclass(frozen=True, slots=True)
class Prints:
    """The prints and refusals of one broker tape message, in their order (one message may
    carry several prints; a refusal between them keeps its place)."""

    items: tuple[TradePrint | Refused, ...]


MarketEvent = Union[Quote, Prints, DepthUpdate, FeedStatus, Refused]
"""What :meth:`BrokerConnection.market_events` yields."""


class DepthBook:
    """Price → resting size per side, built from :class:`DepthUpdate` (the quote pane's best
    levels). Rows with a non-finite or non-positive price or a negative size are dropped and
    counted in :attr:`bad` (with the adapter's own ``DepthUpdate.bad``)."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.bad = 0

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def apply(self, upd: DepthUpdate) -> None:
        """Apply one update (reset first when ``upd.reset``)."""
        self.bad += int(upd.bad)
        if upd.reset:
            self.clear()
        for r in upd.rows:
            px, size = float(r.price), float(r.size)
            if not (math.isfinite(px) and px > 0 and math.isfinite(size) and size >= 0) or r.side not in (1, -1):
                self.bad += 1
                continue
            side = self.bids if r.side > 0 else self.asks
            if size == 0:
                side.pop(px, None)
            else:
                side[px] = size
            if r.best and r.side > 0:      # a new best bid: no bid above it stands
                for p in [p for p in self.bids if p > px]:
                    del self.bids[p]
            elif r.best:
                for p in [p for p in self.asks if p < px]:
                    del self.asks[p]

    def levels(self, n: int) -> tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]:
        """The best ``n`` (price, size) levels: bids high → low, asks low → high."""
        b = tuple(sorted(self.bids.items(), reverse=True)[:n])
        a = tuple(sorted(self.asks.items())[:n])
        return b, a


# --------------------------------------------------------------------------- account, fills, reconcile


@dataclass(frozen=True, slots=True)
class HistoryBar:
    """One completed history bar: ``ts_ns`` bar OPEN time (UTC ns), OHLC points, volume
    contracts (0 when the broker reports none)."""

    ts_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class BrokerFill:
    """One execution as the broker's trade history reports it (crash recovery, R-RISK-6).

    ``id``: the broker's unique trade id (ints: ProjectX trade id; an IB adapter maps its
    ``execId`` strings to stable ints); ``ts_ns``: broker time (UTC ns; 0 when unknown);
    ``side`` +1 buy / -1 sell; ``qty`` contracts; ``price`` points; ``fees``: dollars charged
    for the fill (commission + exchange fees); ``pnl``: the broker's realized P&L of a closing
    fill before fees (dollars), None for an opening one; ``voided``: cancelled by the broker
    (never booked)."""

    id: int
    ts_ns: int
    side: int
    qty: int
    price: float
    fees: float
    pnl: float | None = None
    voided: bool = False
    order_id: int = 0
    """The broker order the fill belongs to (0 unknown)."""
    ours: bool = False
    """True when that order carries an engine tag (placed by a mes-console session, this one or
    an earlier one): crash recovery tells the engine's own fills from trades made by hand."""


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """One working order on the session's contract as the broker shows it (crash recovery).

    ``id`` broker order id; ``tag`` the order's own tag as sent (``""`` none); ``ours`` placed
    by a mes-console session (an engine tag); ``role`` ``entry`` / ``stop`` / ``target`` for an
    engine order ("" foreign); ``side`` +1 buy / -1 sell; ``qty`` contracts left;
    ``filled`` contracts filled; ``kind`` market / limit / stop; ``price`` points (None for a
    market order or a suspended bracket leg); ``suspended``: a bracket leg waiting for its
    entry's fill."""

    id: int
    tag: str
    ours: bool
    role: str
    side: int
    qty: int
    filled: int
    kind: str
    price: float | None
    suspended: bool = False


class FillMeta(TypedDict):
    """Broker facts of one kernel :class:`~engine.venue.base.FillEvent` (same order as the events of
    :meth:`Venue.poll_events`, see :attr:`BrokerVenue.polled_fill_meta`): ``id`` broker trade id,
    ``signed`` ±contracts, ``fees`` dollars, ``pnl`` broker realized P&L (dollars) or None,
    ``ts_ns`` broker time (UTC ns), ``ours`` False for a fill of an order this session did not
    place (a hand trade, the broker's own close, an earlier session's leg; absent = True). The
    session books round trips into the risk manager by these ids (exactly once across a crash);
    a fill that is not ours is the recovery table's to book (:mod:`engine.runtime.recovery`)."""

    id: int
    signed: int
    fees: float
    pnl: float | None
    ts_ns: int
    ours: NotRequired[bool]


@dataclass
class ReconcileReport:
    """Result of :meth:`BrokerConnection.reconcile` (the broker wins, R-EXE-4).

    Attributes:
        ts_ns: clock time of the reconciliation (UTC ns).
        reason: why it ran ("startup", "periodic", "hub reconnect", "gap", "submission timeout"...).
        ok: True when nothing had to be corrected.
        local_qty, local_avg: the venue's position (signed contracts, points) BEFORE the check.
        broker_qty, broker_avg: the broker's (after the check the venue holds these).
        working_orders: broker working orders on the contract.
        missing_fills: broker trade ids found by the snapshot that the stream had not delivered
            (now emitted as fills).
        order_updates: order state changes found by the snapshot (now emitted).
        resolved_unknown: kernel tags of timed-out placements found at the broker.
        unresolved_unknown: tags still unknown. rejected_unknown: tags declared not placed.
        orphans_cancelled: broker ids of bracket legs cancelled because the broker is flat.
        mismatches: human-readable lines for every correction.
        unexplained: the corrections nothing on the wire explains (a broker position the
            missed fills do not account for): what ``[reconcile] mode`` acts on.
        foreign_orders: broker ids of working orders on the contract that no engine session
            placed (the running session's recovery table cancels them).
    """

    ts_ns: int
    reason: str
    ok: bool = True
    local_qty: int = 0
    local_avg: float = 0.0
    broker_qty: int = 0
    broker_avg: float = 0.0
    working_orders: int = 0
    missing_fills: list = field(default_factory=list)
    order_updates: int = 0
    resolved_unknown: list = field(default_factory=list)
    unresolved_unknown: list = field(default_factory=list)
    rejected_unknown: list = field(default_factory=list)
    orphans_cancelled: list = field(default_factory=list)
    mismatches: list = field(default_factory=list)
    unexplained: list = field(default_factory=list)
    foreign_orders: list = field(default_factory=list)


class BrokerVenue(Venue, Protocol):
    """The kernel's :class:`~engine.venue.base.Venue` as a broker supplies it, plus the broker
    facts of the fills it just returned (:class:`FillMeta`, one per FillEvent of the last
    :meth:`poll_events`, same order)."""

    polled_fill_meta: list[FillMeta]


# --------------------------------------------------------------------------- the connection


class BrokerConnection(Protocol):
    """One account on one contract at one broker, as a paper/live session uses it.

    Threading: every method is called from the session's thread; the adapter runs its own I/O
    threads and hands events over through queues. Lifecycle: :meth:`connect` once, then
    :meth:`close` once (idempotent). Identity (:attr:`endpoint`, :attr:`account_name`) names the
    per-account lock and the risk-state directory (``<state>/<endpoint>-<account>.lock``,
    ``<state>/risk/<mode>-<endpoint>-<account>/``): two sessions on one account at one broker
    must get the same names, so they never trade together (R-LIVE-1).

    Attributes (read after :meth:`connect` unless stated):
        broker: short broker name for messages and the report (``"projectx"``); before connect.
        endpoint: a file-name-safe identity of the broker endpoint (``127.0.0.1_8765`` for a
            local gateway, the API host for the real one); before connect.
        endpoint_url: the endpoint for messages (``http://127.0.0.1:8765``); before connect.
        account_name: the broker's account name/number (lock, journal, report).
        contract_id: the broker's id of the traded contract; the roll calendar parses it
            (:func:`engine.instruments.parse_px_contract_id` today; an adapter for another id
            scheme maps its contract to that form).
        tick: the contract's tick size, points (prices off this grid are refused).
        balance: the account's balance, dollars (realized, after costs), None before known.
        account_events: count of account updates seen (the session re-reads :attr:`balance`
            when it changes).
        position_qty: the broker position the adapter holds, signed contracts.
        stale_feed_s: seconds of market silence after which the feed is stale (the broker's
            feed property; ``[projectx] stale_feed_s`` for ProjectX).
        stats: adapter counters for the session report (``modify_refused`` at least).
        last_reconcile: the last :class:`ReconcileReport` (the adapter's own ones included:
            after a reconnect, a gap or an unknown order outcome), None before the first.
        venue: the kernel's :class:`BrokerVenue` (orders and their events), the SAME object
            for the whole session.
    """

    # read-only for the session: an adapter may use plain attributes or properties
    @property
    def broker(self) -> str: ...

    @property
    def endpoint(self) -> str: ...

    @property
    def endpoint_url(self) -> str: ...

    @property
    def account_name(self) -> str: ...

    @property
    def contract_id(self) -> str | None: ...

    @property
    def tick(self) -> float: ...

    @property
    def balance(self) -> float | None: ...

    @property
    def account_events(self) -> int: ...

    @property
    def stale_feed_s(self) -> float: ...

    @property
    def stats(self) -> dict: ...

    @property
    def last_reconcile(self) -> ReconcileReport | None: ...

    @property
    def venue(self) -> BrokerVenue: ...

    @property
    def position_qty(self) -> int: ...

    def connect(self, timeout_s: float) -> ReconcileReport:
        """Log in, choose the account and the front-month contract, open the order and market
        streams (quotes, prints, depth) and run the start-up reconciliation; returns its report.
        Fills that exist before the call are not the session's. Raises any exception naming
        the failure (the session turns it into a refusal: nothing traded)."""
        ...

    def close(self) -> None:
        """Wait briefly (≤ 2 s) for requests still in flight, then close the streams and the
        connection. Never raises for a connection already gone."""
        ...

    def market_events(self, timeout_s: float) -> list[MarketEvent]:
        """The market events received since the last call, in arrival order, waiting up to
        ``timeout_s`` seconds for the first one (0: never waits). Empty when none came."""
        ...

    def last_quote(self) -> Quote | None:
        """The latest merged top of book of the contract (None before the first)."""
        ...

    def reconcile(self, reason: str) -> ReconcileReport:
        """Compare the adapter's view with the broker's (positions, working orders, fills since
        the session start) and correct it, the broker winning: missed fills and order states
        are emitted through :attr:`venue`, the position is set to the broker's. Raises when the
        broker cannot be read (nothing changed)."""
        ...

    def flatten(self, reason: str) -> list:
        """Close the contract's position at market and cancel every working order on it, both
        at once (R-LIVE-3, kill switch). Returns the ids cancel was sent for. Raises
        :class:`~engine.venue.base.VenueError` when the close is refused."""
        ...

    def cancel_all_working(self, keep_market: bool = True) -> list:
        """Cancel every working order on the contract; returns the broker ids. ``keep_market``:
        leave a working market order alone (an exit in flight; start-up recovery cancels it)."""
        ...

    def cancel_orders(self, ids: list[int]) -> list[int]:
        """Cancel these broker orders (``BrokerOrder.id``; the engine's or not: the recovery
        table's orphan and foreign rows), all at once; returns the ids a cancel was accepted
        for (an order already gone is skipped). Raises when the broker does not answer."""
        ...

    def working_orders(self) -> list[BrokerOrder]:
        """Every working (or suspended) order of the account on the contract, read from the
        broker now, whoever placed it (crash recovery). Raises when the broker cannot answer."""
        ...

    def account_balance(self) -> float | None:
        """Read the account's balance (dollars) from the broker now (also updates
        :attr:`balance`). Raises when the broker cannot answer."""
        ...

    def history(self, start_ns: int, end_ns: int, limit: int, bar_s: int) -> list[HistoryBar]:
        """Completed bars of ``bar_s`` seconds of the contract opening in ``[start_ns, end_ns]``,
        oldest first, at most ``limit`` (the newest); paced by the broker's history limits.
        Raises when the broker cannot answer."""
        ...

    def fills_since(self, since_ns: int) -> list[BrokerFill]:
        """The account's fills on the session's contract from ``since_ns`` (broker time, UTC ns),
        in broker id order (crash recovery). Raises when the broker cannot answer."""
        ...


def api_host(url: str) -> str:
    """``http://127.0.0.1:8765`` → ``127.0.0.1_8765``: a URL's host (and port) as a file-name
    part (account lock and risk-state names)."""
    p = urlparse(url)
    return (p.hostname or "host") + (f"_{p.port}" if p.port else "")
