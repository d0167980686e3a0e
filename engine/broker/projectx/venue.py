"""ProjectXVenue: the kernel's Venue (engine/venue/base.py) over the ProjectX Gateway (R-PX-*,
R-EXE-3/4/5; wire facts in ``reference/projectx-api.md`` §3, §6, §7, §10).

Threads (the kernel is synchronous and single-threaded):

- ``px-venue-loop``: an asyncio loop owned by the venue; the aiohttp :class:`ProjectXClient`
  lives on it, plus a token keeper task that calls ``ensure_token()`` every ``token_check_s``
  (validate → ``newToken`` once within the client's renew margin, reference §2.2).
- ``px-hub-user`` / ``px-hub-market``: the supervisors of :class:`UserHub` / :class:`MarketHub`
  (signalrcore runs its own receive threads under them). Hub events go to queues.
- The CALLER's thread (the kernel's): every public method. ``place/modify/cancel`` and the REST
  reads submit a coroutine with ``asyncio.run_coroutine_threadsafe`` and wait at most
  ``submit_timeout_s``. All venue state (id maps, order and fill bookkeeping, the event queue)
  is touched only from this one thread, so call the venue from one thread only.

Event translation happens on the caller's thread in :meth:`pump` (called by
:meth:`poll_events` and :meth:`has_events`): user-hub events are read in arrival order and
turned into :class:`FillEvent` / :class:`OrderUpdate` / :class:`PositionUpdate`:

- fills come from ``GatewayUserTrade`` only, deduplicated by trade id (a trade seen on the hub
  and again in ``Trade/search`` during a reconciliation yields one FillEvent); commission = the
  trade's ``fees`` (+ ``commissions``) when the gateway reports ``fees``, else
  ``(costs.commission_per_side + costs.exchange_fee_per_side) × size`` from Settings;
- order statuses 6 Pending / 1 Open / 8 Suspended → ACCEPTED (emitted again when size or price
  changes: a confirmed modify, or a Suspended bracket child going Open with its price);
  3 → CANCELLED, 4 → EXPIRED, 5 → REJECTED; 2 Filled is reported by the fills; 7 is ignored.
  A terminal order never goes back to working (events replayed after a reconnect are dropped);
- ``GatewayUserPosition`` on the venue's contract → PositionUpdate (signed size, average price).

Ids: the kernel-facing order id is ``str(broker orderId)``; for a placement whose outcome was
unknown (:class:`SubmissionTimeout`) it is the kernel's TAG, because that is the id the kernel
keeps for an UNKNOWN order. Broker ``customTag`` = ``tag_prefix + tag`` (unique per session: the
gateway refuses a reused tag); events report the kernel's tag (prefix stripped), bracket children
``<tag>-SL`` / ``<tag>-TP`` with ``parent`` = the entry's kernel id and ``role`` stop / target.

Never resent: a placement that times out or raises :class:`OutcomeUnknown` raises
:class:`SubmissionTimeout`; the tag is kept as UNKNOWN and resolved by the hub event carrying
that customTag or by :meth:`reconcile` (``find_orders_by_tag``). When it is still not found
``unknown_grace_s`` after the submission, an OrderUpdate REJECTED ("not found at the broker") is
emitted. modify/cancel with an unknown outcome are logged; the stream or a reconcile tells.

Brackets: ``native_oco=True`` (Auto-OCO accounts) sends ``stopLossBracket {ticks, type 4}`` and
``takeProfitBracket {ticks, type 1}`` with SIGNED ticks (long: stop < 0, target > 0; short the
reverse; reference §6). ``native_oco=False``: a bracket is refused (VenueError); the kernel's
OcoManager places the legs as stop / limit orders itself (managed OCO).

Reconciliation (:meth:`reconcile`, also run automatically from :meth:`pump` after every hub
reconnect, a malformed-record gap, or a submission timeout): REST positions, orders since the
session start (``Order/search`` + ``v2/query`` incl. status 8) and trades since the session
start. Missing order states, missing fills and the position are brought up to date (broker wins:
a position mismatch emits a PositionUpdate with the broker's value and is reported); orphan
bracket legs (working stop/target children while the broker is flat) are cancelled.

Flatten: :meth:`flatten` closes the position (``Position/closeContract``) and cancels every
working order on the contract (``cancel_all_working``: closeContract does not cancel the legs,
reference §6.9), both at once and the cancels concurrently, within ``2 × submit_timeout_s``.
:meth:`cancel` does not wait for the broker's answer (the kill switch's leg cancels and market
exit leave together).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import re
import threading
from collections import deque
from typing import Any, Callable

from engine.broker.base import FillMeta, HistoryBar, ReconcileReport
from engine.broker.projectx.enums import OrderSide, OrderType
from engine.broker.projectx.errors import (
    ApiError, NotFoundError, OutcomeUnknown, ProjectXError, RateLimitedError, install_redaction,
)
from engine.broker.projectx.hubs import HubClient, HubEvent, MarketHub, UserHub
from engine.broker.projectx.models import Bracket as PxBracket, Order as PxOrder, Position, Trade
from engine.broker.projectx.rest import ProjectXClient
from engine.clock import NS_PER_SECOND, Clock
from engine.execution.orders import OrderStatus
from engine.venue.base import (
    AccountInfo, Bracket, FillEvent, OrderUpdate, PositionUpdate, SubmissionTimeout, VenueError,
    VenueOrder, VenuePosition,
)

LOGGER = "engine.broker.projectx.venue"
log = logging.getLogger(LOGGER)
install_redaction((LOGGER,))

S = OrderStatus
KIND_TO_TYPE = {"market": OrderType.MARKET, "limit": OrderType.LIMIT, "stop": OrderType.STOP}
TYPE_TO_KIND = {int(OrderType.MARKET): "market", int(OrderType.LIMIT): "limit",
                int(OrderType.STOP): "stop", int(OrderType.STOP_LIMIT): "stop",
                int(OrderType.TRAILING_STOP): "stop", int(OrderType.JOIN_BID): "limit",
                int(OrderType.JOIN_ASK): "limit"}
WORKING = frozenset({1, 6, 7, 8})
TERMINAL = frozenset({2, 3, 4, 5})
TERMINAL_MAP = {3: S.CANCELLED, 4: S.EXPIRED, 5: S.REJECTED}
SYMBOL_IDS = {"MES": "F.US.MES", "ES": "F.US.EP", "MNQ": "F.US.MNQ", "NQ": "F.US.ENQ"}
ENGINE_TAG = re.compile(r"^mc[0-9a-z]{1,16}-.")
"""A customTag a mes-console session wrote (the default ``tag_prefix``, ``mc<ms base 36>-``):
crash recovery tells the engine's own orders (an earlier process's included) from foreign
ones by it."""


def is_engine_tag(tag: str | None, prefix: str = "") -> bool:
    """True for a customTag placed by a mes-console session: the default tag form
    (:data:`ENGINE_TAG`) or this venue's own ``prefix``."""
    t = tag or ""
    return bool(ENGINE_TAG.match(t)) or bool(prefix) and t.startswith(prefix)


class _Track:
    """What the venue knows of one broker order."""

    __slots__ = ("bid", "kid", "tag", "status", "size", "price", "kind", "side", "parent", "role",
                 "contract", "fill_volume", "mine")

    def __init__(self, bid: int, kid: str, tag: str, kind: str, side: int, parent: str, role: str,
                 contract: str, mine: bool = False) -> None:
        self.bid, self.kid, self.tag = bid, kid, tag
        self.mine = mine
        """True for an order this session placed (its customTag carries the session's prefix,
        bracket children included): its fills are the kernel's; any other fill is outside."""
        self.status: int | None = None
        self.size = 0
        self.price: float | None = None
        self.kind, self.side, self.parent, self.role = kind, side, parent, role
        self.contract = contract
        self.fill_volume = 0


class ProjectXVenue:
    """The Venue protocol over ProjectX REST + SignalR (see the module docstring).

    Args:
        settings: :class:`engine.config.Settings` (``projectx``, ``costs``, ``account.name``,
            ``instrument.symbol``, ``secrets``).
        clock: the engine clock (token expiry, timestamps, the unknown-placement grace period).
        base_url: REST root; default ``settings.projectx.api_url``. When given (paper mode:
            ``http://127.0.0.1:PORT``) and the hub URLs are not, the hubs are
            ``<base_url>/hubs/user`` and ``<base_url>/hubs/market``.
        user_hub_url, market_hub_url: explicit hub URLs (default: see ``base_url``, else the
            settings' ``user_hub_url`` / ``market_hub_url``).
        native_oco: True → native Auto-OCO brackets on the entry; False → managed OCO (the
            kernel's OcoManager places the legs).
        contract_id: e.g. ``CON.F.US.MES.Z25``; default: the active front month of the
            settings' instrument (``Contract/search``).
        account_id: default: the account named ``settings.account.name``, else the only
            tradable account (ValueError when several and none named).
        submit_timeout_s: how long a caller waits for one REST call (default
            ``request_timeout_s`` + 2 s).
        unknown_grace_s: a timed-out placement not found after this long is declared REJECTED.
        unknown_recheck_s: while a placement is unknown, :meth:`pump` reconciles at most this
            often (clock seconds).
        token_check_s: period of the token keeper (``ensure_token``), seconds.
        market: connect the market hub (quotes/trades for reference prices and the runtime).
        market_depth: also subscribe depth. skip_negotiation: hub connect mode.
        hub_kwargs: extra :class:`HubClient` arguments (back-off, watchdog...).
        client_kwargs: extra :class:`ProjectXClient` arguments (request_timeout_s...).
        client: a ready client to use instead (tests); the venue still owns its loop.
        tag_prefix: prefix of every customTag (default ``mc<ms since epoch base 36>-``; keep it
            short: tags are ≤ 60 characters including ``-SL``).
        on_alert: ``(priority, kind, message)`` callback (e.g. ``AlertRouter.send``) for gateway
            logout, reconciliation corrections and unresolved placements.

    Start with :meth:`start` (logs in, picks account and contract, connects both hubs, runs the
    start-up reconciliation); stop with :meth:`stop`. Raises ``ValueError`` for bad arguments.
    """

    def __init__(self, settings: Any, clock: Clock, *, base_url: str | None = None,
                 user_hub_url: str | None = None, market_hub_url: str | None = None,
                 native_oco: bool = True, contract_id: str | None = None,
                 account_id: int | None = None, submit_timeout_s: float | None = None,
                 unknown_grace_s: float = 30.0, unknown_recheck_s: float = 1.0, token_check_s: float = 30.0, market: bool = True,
                 market_depth: bool = False, skip_negotiation: bool = True,
                 hub_kwargs: dict | None = None, client_kwargs: dict | None = None,
                 client: ProjectXClient | None = None, tag_prefix: str | None = None,
                 on_alert: Callable[[str, str, str], None] | None = None) -> None:
        px = settings.projectx
        self.settings = settings
        self.clock = clock
        self.native_oco = bool(native_oco)
        self.client = client or ProjectXClient.from_settings(settings, clock, base_url=base_url,
                                                             **(client_kwargs or {}))
        root = self.client.base_url
        if user_hub_url is None:
            user_hub_url = f"{root}/hubs/user" if base_url else px.user_hub_url
        if market_hub_url is None:
            market_hub_url = f"{root}/hubs/market" if base_url else px.market_hub_url
        self.user_hub_url, self.market_hub_url = user_hub_url, market_hub_url
        self.client.on_auth_failures = lambda n, what: self._alert(
            "critical", "auth_failures", f"{n} authentication failures in a row at the ProjectX gateway "
            f"({what}); re-authenticating")
        self.symbol = settings.instrument.symbol
        if self.symbol not in SYMBOL_IDS:
            raise ValueError(f"instrument.symbol {self.symbol!r}: no ProjectX symbol id")
        self.contract_id = contract_id
        self.account_id = account_id
        self.account_name = ""
        self.tick = 0.25
        self.submit_timeout_s = float(submit_timeout_s if submit_timeout_s is not None
                                      else self.client.request_timeout_s + 2.0)
        self.unknown_grace_ns = int(unknown_grace_s * NS_PER_SECOND)
        self.unknown_recheck_ns = int(unknown_recheck_s * NS_PER_SECOND)
        self._next_unknown_check_ns = 0
        self.token_check_s = float(token_check_s)
        self.cost_per_side = float(settings.costs.commission_per_side + settings.costs.exchange_fee_per_side)
        self.want_market, self.want_depth = bool(market), bool(market_depth)
        self.skip_negotiation = bool(skip_negotiation)
        self.hub_kwargs = dict(hub_kwargs or {})
        self.on_alert = on_alert
        self.reconcile_mode = str(getattr(getattr(settings, "reconcile", None), "mode", "strict"))
        """``[reconcile] mode`` (R-EXE-4): the broker always wins; an unexplained position
        mismatch is logged only (``auto-sync``), alerted as a warning (``warn``) or alerted as
        critical (``strict``; the live session then halts, see :class:`LiveSession`)."""
        if self.reconcile_mode not in ("strict", "warn", "auto-sync"):
            raise ValueError(f"[reconcile] mode {self.reconcile_mode!r}: strict, warn or auto-sync")
        if tag_prefix is None:
            tag_prefix = "mc" + _base36(clock.now_ns() // 1_000_000) + "-"
        if len(tag_prefix) > 24:
            raise ValueError(f"tag_prefix {tag_prefix!r}: at most 24 characters")
        self.tag_prefix = tag_prefix
        # threads and queues
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._keeper: concurrent.futures.Future | None = None
        self.user_events: "queue.Queue[HubEvent]" = queue.Queue()
        self.market_events: "queue.Queue[HubEvent]" = queue.Queue()
        """Market-hub events (quotes, tape, depth, lifecycle) for the runtime to drain; the venue
        reads quotes from :attr:`MarketHub.quotes` and never consumes this queue."""
        self.user_hub: UserHub | None = None
        self.market_hub: MarketHub | None = None
        self._reconcile_flag = threading.Event()
        self._refused_cancels: "queue.Queue[tuple[int, int]]" = queue.Queue()
        """(broker order id, clock ns) of cancels refused because the order was no longer
        working (loop thread → caller's thread)."""
        self._await_final: dict[int, int] = {}
        self.cancel_final_grace_ns = int(5 * NS_PER_SECOND)
        """How long a refused cancel's final order state may take on the hub before a
        reconciliation looks for it (clock ns)."""
        self._inflight: set = set()                      # requests sent without waiting (cancel)
        self._hub_tokens: dict[str, str] = {}
        self._started = False
        # kernel-thread state
        self._out: deque = deque()
        self._out_meta: deque = deque()                  # one entry per FillEvent in _out, same order
        self.polled_fill_meta: list[FillMeta] = []
        """Broker facts of the FillEvents the last :meth:`poll_events` returned, in their order:
        ``{"id": trade id, "signed": ±contracts, "fees": $, "pnl": $ or None, "ts_ns": broker
        time}``; the runtime books round trips into the risk manager by these ids."""
        self._tracks: dict[int, _Track] = {}
        self._kid_to_bid: dict[str, int] = {}
        self._btag_to_kid: dict[str, str] = {}
        self._sent_btags: dict[str, tuple] = {}          # broker tag → (kind, side, ref price)
        self._unknown: dict[str, int] = {}               # kernel tag → submission clock ns
        self._seen_trades: set[int] = set()
        self._kinds: dict[str, str] = {}                 # kernel id → kind (before any event)
        self._trade_orders: dict[int, int] = {}          # trade id → broker order id
        self.pos_qty = 0
        self.pos_avg = 0.0
        self.balance: float | None = None
        self.can_trade = True
        self.account_events = 0
        """``GatewayUserAccount`` events of this account translated so far (the runtime
        re-reads :attr:`balance` when it changes)."""
        self.since_ns = 0
        self.last_reconcile: ReconcileReport | None = None
        self.stats = {"modify_refused": 0, "hub_events": 0, "fills": 0, "dup_fills": 0, "reconciles": 0,
                      "reconnects": 0, "timeouts": 0}

    @property
    def _aid(self) -> int:
        """The broker account id (set by :meth:`start`); VenueError before it is known."""
        if self.account_id is None:
            raise VenueError("ProjectXVenue: no account yet (call start first)")
        return self.account_id

    @property
    def _cid(self) -> str:
        """The traded contract id (set by :meth:`start`); VenueError before it is known."""
        if self.contract_id is None:
            raise VenueError("ProjectXVenue: no contract yet (call start first)")
        return self.contract_id

    # ================================================================ lifecycle
    def start(self, timeout_s: float = 30.0) -> ReconcileReport:
        """Start the loop thread, log in, choose the account and contract, connect and subscribe
        both hubs (waiting up to ``timeout_s`` each), then run the start-up reconciliation
        (R-LIVE-1) and return its report. Trades that exist before the start are marked seen
        (they are not the session's fills). Raises ``ProjectXError`` / ``TimeoutError`` /
        ``ValueError`` (no or ambiguous account)."""
        if self._started:
            raise VenueError("ProjectXVenue already started")
        self._thread = threading.Thread(target=self._loop.run_forever, name="px-venue-loop", daemon=True)
        self._thread.start()
        self._started = True
        try:
            return self._start(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout_s: float) -> ReconcileReport:
        self._call(self.client.login(), timeout_s)
        accounts = self._call(self.client.search_accounts(True), timeout_s)
        if self.account_id is None:
            name = self.settings.account.name
            if name:
                hits = [a for a in accounts if a.name == name]
            else:
                hits = [a for a in accounts if a.can_trade]
            if len(hits) != 1:
                raise ValueError(f"account: {len(hits)} match "
                                 f"{'name ' + repr(name) if name else 'canTrade'} among "
                                 f"{[a.name for a in accounts]}; set [account] name")
            acct = hits[0]
        else:
            acct = next((a for a in accounts if a.id == self.account_id), None)
            if acct is None:
                raise ValueError(f"account id {self.account_id} not among {[a.id for a in accounts]}")
        self.account_id, self.account_name = acct.id, acct.name
        self.balance, self.can_trade = acct.balance, acct.can_trade
        if self.contract_id is None:
            c = self._call(self.client.resolve_front_month(SYMBOL_IDS[self.symbol], self.symbol), timeout_s)
        else:
            c = self._call(self.client.contract_by_id(self.contract_id), timeout_s)
        self.contract_id, self.tick = c.id, float(c.tick_size)
        self.since_ns = self.clock.now_ns() - 3600 * NS_PER_SECOND
        for t in self._call(self.client.search_trades(self.account_id, self.since_ns), timeout_s):
            self._seen_trades.add(t.id)
        kw = dict(self.hub_kwargs)
        self.user_hub = UserHub(self.user_hub_url, self._token_for("user"), self.clock, self.user_events,
                                skip_negotiation=self.skip_negotiation,
                                on_reconnected=self._on_reconnected, **kw)
        self.user_hub.subscribe_account(self.account_id)
        hubs: list[HubClient] = [self.user_hub]
        if self.want_market:
            self.market_hub = MarketHub(self.market_hub_url, self._token_for("market"), self.clock,
                                        self.market_events, tick=self.tick,
                                        skip_negotiation=self.skip_negotiation,
                                        on_reconnected=self._on_reconnected, **kw)
            self.market_hub.subscribe_contract(self.contract_id, quotes=True, trades=True,
                                               depth=self.want_depth)
            hubs.append(self.market_hub)
        for h in hubs:
            h.start(wait=False)
        for h in hubs:
            h.start(wait=True, timeout=timeout_s)
        self._keeper = asyncio.run_coroutine_threadsafe(self._keep_token(), self._loop)
        log.info("ProjectX venue started: account %s, contract %s, native_oco=%s",
                 self.account_name, self.contract_id, self.native_oco)
        return self.reconcile("startup")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop both hubs, the token keeper, close the HTTP session and end the loop thread.
        Working orders and the position are left as they are (call :meth:`flatten` first for a
        flat shutdown, R-LIVE-3). Idempotent."""
        for h in (self.user_hub, self.market_hub):
            if h is not None:
                h.stop(timeout_s)
        if not self._started:
            return
        if self._keeper is not None:
            self._keeper.cancel()
        try:
            self._call(self.client.close(), timeout_s)
        except Exception as exc:  # closing must not mask the caller's own error
            log.warning("closing the HTTP session: %s", exc)
        self._started = False
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        log.info("ProjectX venue stopped")

    def __enter__(self) -> "ProjectXVenue":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ================================================================ loop plumbing
    def _call(self, coro, timeout_s: float | None = None):
        """Run ``coro`` on the venue loop and wait (caller's thread). Raises the coroutine's
        exception, or ``concurrent.futures.TimeoutError`` (the coroutine is cancelled)."""
        if not self._started:
            coro.close()
            raise VenueError("ProjectXVenue not started: call start() first")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(self.submit_timeout_s if timeout_s is None else timeout_s)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise

    async def _keep_token(self) -> None:
        while True:
            await asyncio.sleep(self.token_check_s)
            try:
                await self.client.ensure_token()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("token keeper: %s", exc)

    def _token_for(self, hub: str) -> Callable[[], str]:
        """Token provider of one hub, called by its supervisor thread before every (re)connect:
        a fresh token (``ensure_token``); if the last connect was refused with 401 using the
        token we gave, log in again first (the token died on the server side)."""
        def provide() -> str:
            h = self.user_hub if hub == "user" else self.market_hub
            given = self._hub_tokens.get(hub)
            err = (h.last_error or "") if h is not None else ""
            try:
                if "401" in err and given is not None and given == self.client.current_token():
                    log.warning("%s hub refused the token (401): logging in again", hub)
                    self._call(self._relogin_if(given), self.submit_timeout_s)
                else:
                    self._call(self.client.ensure_token(), self.submit_timeout_s)
            except Exception as exc:
                log.warning("%s hub token refresh failed: %s", hub, exc)
            if h is not None:
                h.last_error = None
            tok = self.client.current_token()
            self._hub_tokens[hub] = tok
            return tok
        return provide

    async def _relogin_if(self, stale: str) -> None:
        if self.client.current_token() == stale:
            await self.client.login()

    def _on_reconnected(self, hub: str) -> None:
        # supervisor thread: only flag; the caller's thread reconciles in pump()
        self.stats["reconnects"] += 1
        self._reconcile_flag.set()

    def _alert(self, priority: str, kind: str, message: str) -> None:
        log.warning("alert %s/%s: %s", priority, kind, message)
        if self.on_alert is not None:
            try:
                self.on_alert(priority, kind, message)
            except Exception:
                log.exception("alert callback failed")

    # ================================================================ Venue protocol
    def place(self, side: int, qty: int, kind: str, price: float | None = None, *, tag: str,
              bracket: Bracket | None = None) -> str:
        """Submit one order (``Order/place``); returns the kernel-facing id ``str(orderId)``.

        ``side`` +1 buy / -1 sell; ``qty`` ≥ 1 contracts; ``kind`` market | limit | stop;
        ``price`` points (rounded to the tick grid); ``bracket`` native OCO (only with
        ``native_oco``). A broker refusal (errorCode 2.., HTTP 429 "not placed", other 4xx)
        returns an id (``str(orderId)`` of the rejected record, else ``rejected:<tag>``) and
        queues an OrderUpdate REJECTED with the broker's message, as the simulated venue does.
        Raises :class:`VenueError` for bad arguments (a bug) or :class:`SubmissionTimeout`
        (timeout / OutcomeUnknown: the order may exist; the venue reconciles by tag and the
        kernel must NOT resend)."""
        if side not in (1, -1) or qty < 1 or kind not in KIND_TO_TYPE:
            raise VenueError(f"bad order: side={side} qty={qty} kind={kind!r} tag={tag!r}")
        if kind != "market" and price is None:
            raise VenueError(f"{kind} order {tag!r} needs a price")
        if bracket is not None and not self.native_oco:
            raise VenueError(f"order {tag!r}: native bracket requested but native_oco=False (managed OCO)")
        btag = self.tag_prefix + tag
        if btag in self._sent_btags or tag in self._kid_to_bid:
            raise VenueError(f"tag {tag!r} already used in this session")
        if len(btag) + 3 > 60:
            raise VenueError(f"tag {btag!r} too long: customTag + '-SL' must be ≤ 60 characters")
        px = None if price is None else self._round(price)
        sl = tp = None
        if bracket is not None:
            if bracket.stop_ticks < 1 or bracket.target_ticks < 1:
                raise VenueError(f"order {tag!r}: bracket ticks must be ≥ 1, got {bracket}")
            sl = PxBracket(-side * int(bracket.stop_ticks), int(OrderType.STOP))
            tp = PxBracket(side * int(bracket.target_ticks), int(OrderType.LIMIT))
        ref = self._ref_price(side, kind, px)
        self._sent_btags[btag] = (kind, side, ref)
        self._btag_to_kid.setdefault(btag, "")
        coro = self.client.place_order(
            self._aid, self._cid, int(KIND_TO_TYPE[kind]),
            int(OrderSide.BUY if side > 0 else OrderSide.SELL), int(qty), custom_tag=btag,
            limit_price=px if kind == "limit" else None, stop_price=px if kind == "stop" else None,
            stop_loss_bracket=sl, take_profit_bracket=tp)
        try:
            bid = self._call(coro)
        except (concurrent.futures.TimeoutError, OutcomeUnknown) as exc:
            self.stats["timeouts"] += 1
            self._unknown[tag] = self.clock.now_ns()
            self._btag_to_kid[btag] = tag
            self._kid_to_bid.pop(tag, None)
            self._reconcile_flag.set()
            why = exc if isinstance(exc, OutcomeUnknown) else f"no answer within {self.submit_timeout_s:.1f} s"
            log.error("place %s: outcome unknown (%s); reconciling by tag, not resending", tag, why)
            raise SubmissionTimeout(f"place {tag!r}: outcome unknown ({why}); reconcile by tag") from None
        except ProjectXError as exc:
            # a definitive refusal (errorCode 2.., HTTP 429 / 4xx): nothing working at the broker.
            # Reported like the simulated venue does: an id and a REJECTED update, so the
            # kernel's OCO rules apply (a rejected stop closes the position).
            rid = exc.payload.get("orderId") if isinstance(exc, ApiError) else None
            kid = str(rid) if rid is not None else f"rejected:{tag}"
            self._btag_to_kid[btag] = kid
            if rid is not None:
                self._kid_to_bid[kid] = int(rid)
            log.warning("place %s refused by the broker: %s", tag, exc)
            self._emit(OrderUpdate(kid, tag, S.REJECTED, self.clock.now_ns(), qty, px, kind, side,
                                   reason=str(exc)))
            return kid
        kid = str(bid)
        self._kid_to_bid[kid] = bid
        self._btag_to_kid[btag] = kid
        self._kinds[kid] = kind
        return kid

    def modify(self, order_id: str, *, qty: int | None = None, price: float | None = None) -> None:
        """``Order/modify`` (size and/or price, points rounded to the tick), sent WITHOUT
        waiting for the answer (issue 22 item 7: a trailing stop's modify never blocks the
        engine thread); confirmed by an ACCEPTED OrderUpdate with the new values. An order
        already final on the hub is not sent anything. A refusal by the broker (typically the
        order went terminal while the request was on its way: a bracket leg cancelled by its
        sibling's fill, a stop that just triggered) is counted in ``stats["modify_refused"]``;
        when it says the order is no longer working it waits for the final state like a refused
        cancel (:meth:`cancel`), any other refusal or an unknown outcome flags a reconciliation.
        The order keeps its old values meanwhile. Raises :class:`VenueError` for an id the venue
        never issued."""
        bid = self._bid(order_id)
        self._drain_hub()
        tr = self._tracks.get(bid)
        if tr is not None and tr.status in TERMINAL:
            log.debug("modify %s not sent: final at the broker (status %s)", order_id, tr.status)
            return
        kind = tr.kind if tr is not None else self._kinds.get(order_id, "limit")
        p = None if price is None else self._round(price)
        self._fire(self.client.modify_order(
            self._aid, bid, size=qty, limit_price=p if kind == "limit" else None,
            stop_price=p if kind == "stop" else None), f"modify {order_id}", bid, modify=True)

    def cancel(self, order_id: str) -> None:
        """``Order/cancel``, sent WITHOUT waiting for the answer (issue 15 item 5: the flatten
        and halt paths cancel both legs and send the market exit at once, so n slow cancels cost
        the time of none); done only when a CANCELLED OrderUpdate arrives. The hub's queued
        events are read first: an order already terminal there (a bracket leg the broker
        cancelled when its sibling filled) is not sent a cancel at all (issue 21 item 9). A
        refusal because the order is no longer working (the fill/cancel crossed the request)
        is expected: it is logged at INFO and reconciled only when the order's final state has
        not arrived within ``cancel_final_grace_s`` (:meth:`pump`); any other refusal or an
        unknown outcome is logged and flags a reconciliation. :meth:`wait_sent` waits for the
        requests in flight. Raises :class:`VenueError` for an id the venue never issued."""
        bid = self._bid(order_id)
        self._drain_hub()
        tr = self._tracks.get(bid)
        if tr is not None and tr.status in TERMINAL:
            log.debug("cancel %s not sent: final at the broker (status %s)", order_id, tr.status)
            return
        self._fire(self.client.cancel_order(self._aid, bid), f"cancel {order_id}", bid)

    def _fire(self, coro, what: str, bid: int | None = None, *, modify: bool = False) -> None:
        """Run ``coro`` on the venue loop without waiting (caller's thread). Its outcome is only
        logged (loop thread) and flags a reconciliation on a refusal or an unknown outcome; the
        client's request timeout bounds it. ``bid``: the broker order a cancel is for: a refusal
        saying it is no longer working is parked for :meth:`pump` instead (see :meth:`cancel`)."""
        if not self._started:
            coro.close()
            raise VenueError("ProjectXVenue not started: call start() first")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        self._inflight.add(fut)

        def done(f: concurrent.futures.Future) -> None:
            self._inflight.discard(f)
            if f.cancelled():
                return
            exc = f.exception()
            if exc is None:
                return
            if modify and isinstance(exc, ProjectXError) and not isinstance(exc, OutcomeUnknown):
                self.stats["modify_refused"] += 1
            if bid is not None and isinstance(exc, ApiError) and _not_working(exc):
                log.info("%s: the order is no longer working at the broker (%s); its final state "
                         "is on the way", what, exc.server_message or exc)
                self._refused_cancels.put((bid, self.clock.now_ns()))
                return
            if isinstance(exc, (ApiError, RateLimitedError)):
                log.warning("%s not done by the broker: %s", what, exc)
            else:
                log.error("%s: outcome unknown (%s); the stream or a reconcile will tell", what, exc)
            self._reconcile_flag.set()
        fut.add_done_callback(done)

    def wait_sent(self, timeout_s: float | None = None) -> bool:
        """Wait until every request sent by :meth:`cancel` has been answered (at most
        ``timeout_s``, default ``submit_timeout_s``). Returns True when none is left in flight."""
        pending = list(self._inflight)
        if pending:
            concurrent.futures.wait(pending, self.submit_timeout_s if timeout_s is None else timeout_s)
        return not any(not f.done() for f in pending)

    def positions(self) -> list[VenuePosition]:
        """``Position/searchOpen`` on the venue's contract (signed contracts, points)."""
        rows = self._call(self.client.search_open_positions(self._aid))
        return [VenuePosition(self.symbol, p.signed_size, p.average_price)
                for p in rows if p.contract_id == self.contract_id and p.size]

    def open_orders(self) -> list[VenueOrder]:
        """Working orders on the contract from ``Order/v2/query`` (statuses 1, 6, 7, 8, so the
        Suspended bracket children are included)."""
        rows = self._call(self.client.working_orders(self._aid, self._cid))
        out = []
        for o in rows:
            kid = self._kid_of(o)
            st = S.PENDING_CANCEL if o.status == 7 else (S.PARTIALLY_FILLED if o.fill_volume else S.ACCEPTED)
            out.append(VenueOrder(kid, self._ktag(o.custom_tag), 1 if o.side == 0 else -1, o.size,
                                  o.fill_volume, TYPE_TO_KIND.get(o.type, "limit"),
                                  o.stop_price if o.type in (3, 4, 5) else o.limit_price, st))
        return out

    def client_working_orders(self) -> list[PxOrder]:
        """The broker's working orders on the contract (``Order/v2/query``, statuses 1, 6, 7, 8)
        as ProjectX orders. Raises ``ProjectXError`` / ``TimeoutError``."""
        return list(self._call(self.client.working_orders(self._aid, self._cid)))

    def orders_since(self, since_ns: int) -> list[PxOrder]:
        """``Order/search`` of the account from ``since_ns`` (broker clock, UTC ns) plus the
        working orders (``v2/query``, suspended legs included), on every contract, by id.
        Raises ``ProjectXError`` / ``TimeoutError``."""
        acct = self._aid

        async def both():
            rows = {o.id: o for o in await self.client.search_orders(acct, int(since_ns))}
            for o in await self.client.query_orders(acct, created_after_ns=int(since_ns)):
                rows[o.id] = o
            return rows
        return sorted(self._call(both(), self.submit_timeout_s * 2).values(), key=lambda o: o.id)

    def account(self) -> AccountInfo:
        """``Account/search``: the venue's account (balance dollars)."""
        for a in self._call(self.client.search_accounts(False)):
            if a.id == self.account_id:
                self.balance, self.can_trade = a.balance, a.can_trade
                return AccountInfo(a.name, a.balance, a.can_trade)
        raise VenueError(f"account {self.account_id} no longer listed by Account/search")

    def poll_events(self) -> list:
        """Translate pending hub events (see :meth:`pump`) and drain the venue's event queue,
        in order."""
        self.pump()
        out = list(self._out)
        self._out.clear()
        self.polled_fill_meta = list(self._out_meta)
        self._out_meta.clear()
        return out

    def has_events(self) -> bool:
        """True when :meth:`poll_events` would return something (translates pending hub events)."""
        self.pump()
        return bool(self._out)

    # ================================================================ extra API
    def flatten(self, reason: str = "flatten") -> list[int]:
        """Close the position at market (``Position/closeContract``; no position → nothing) and
        then cancel EVERY working order on the contract (``cancel_all_working``, reference §6.9).
        Returns the broker ids cancel was sent for. Raises :class:`VenueError` when the close is
        refused; an unknown close outcome is logged and the cancels are still sent."""
        log.warning("flatten (%s): closing %s and cancelling its working orders", reason, self.contract_id)
        acct, cid = self._aid, self._cid

        async def both():
            # concurrently (issue 15 item 5): the close does not wait for slow cancels; the
            # close's own market order is never among the cancelled (keep_market)
            return await asyncio.gather(self.client.close_position(acct, cid),
                                        self.client.cancel_all_working(acct, cid),
                                        return_exceptions=True)
        try:
            closed, cancelled = self._call(both(), self.submit_timeout_s * 2)
        except concurrent.futures.TimeoutError:
            log.error("flatten: no answer within %.1f s; reconcile will tell", self.submit_timeout_s * 2)
            self._reconcile_flag.set()
            return []
        if isinstance(closed, NotFoundError):
            pass
        elif isinstance(closed, ApiError):
            if closed.name != "PositionNotFound":
                raise VenueError(f"flatten: close refused: {closed}") from None
        elif isinstance(closed, (OutcomeUnknown, asyncio.TimeoutError)):
            log.error("flatten: close outcome unknown (%s); reconcile will tell", closed)
            self._reconcile_flag.set()
        elif isinstance(closed, BaseException):
            raise closed
        if isinstance(cancelled, BaseException):
            log.error("flatten: cancelling the working orders failed (%s); reconcile will tell", cancelled)
            self._reconcile_flag.set()
            return []
        return list(cancelled)

    def cancel_all_working(self, keep_market: bool = True) -> list[int]:
        """Cancel every working order (1, 6, 7, 8) on the contract; returns the broker ids.
        ``keep_market``: a working market order (an exit in flight) is left alone."""
        return list(self._call(self.client.cancel_all_working(self._aid, self._cid, keep_market=keep_market),
                               self.submit_timeout_s * 4))

    def cancel_orders(self, broker_ids: list[int]) -> list[int]:
        """Cancel the broker orders ``broker_ids`` (any working order on the account, the
        engine's or not: the recovery table's orphan and foreign rows), all at once; returns the
        ids the broker accepted a cancel for. A refusal (the order is already gone) is logged and
        skipped; the caller verifies with :meth:`client_working_orders`. Raises
        ``TimeoutError`` when the gateway does not answer within ``4 × submit_timeout_s``."""
        acct = self._aid

        async def one(bid: int) -> int | None:
            try:
                await self.client.cancel_order(acct, int(bid))
                return int(bid)
            except ApiError as exc:
                log.warning("cancel of order %d: %s", bid, exc)
                return None

        async def every() -> list:
            return list(await asyncio.gather(*(one(b) for b in broker_ids)))

        done = self._call(every(), self.submit_timeout_s * 4)
        return [int(i) for i in done if i is not None]

    def last_quote(self) -> dict:
        """The merged market-hub quote of the contract (``bestBid``, ``bestAsk``, ``lastPrice``...;
        empty before the first quote)."""
        h = self.market_hub
        if h is None:
            return {}
        try:
            return dict(h.quotes.get(self._cid) or {})
        except RuntimeError:  # dict changed size during the copy (hub thread): retry once
            return dict(h.quotes.get(self._cid) or {})

    def broker_id(self, order_id: str) -> int | None:
        """The broker's orderId behind a kernel-facing id (None while an UNKNOWN tag is unresolved)."""
        return self._kid_to_bid.get(order_id)

    @property
    def unknown_tags(self) -> list[str]:
        """Kernel tags of placements whose outcome is still unknown."""
        return sorted(self._unknown)

    @property
    def connected(self) -> bool:
        """True while the user hub (and the market hub, if used) are connected."""
        hubs = [h for h in (self.user_hub, self.market_hub) if h is not None]
        return bool(hubs) and all(h.connected for h in hubs)

    # ================================================================ translation
    def pump(self) -> int:
        """Translate every queued user-hub event into venue events (caller's thread), then run
        a reconciliation when one is due (hub reconnect, gap, unknown outcome). Returns the
        number of hub events read."""
        n = self._drain_hub()
        self._check_refused_cancels()
        due = self._reconcile_flag.is_set() or (
            self._unknown and self.clock.now_ns() >= self._next_unknown_check_ns)
        if due and self._started:
            self._reconcile_flag.clear()
            try:
                self.reconcile("hub reconnect/gap/unknown outcome")
            except Exception as exc:  # REST down: try again at the next pump
                log.warning("reconcile failed (%s); retrying at the next poll", exc)
                self._reconcile_flag.set()
        return n

    def _check_refused_cancels(self) -> None:
        """Refused cancels whose order has since gone terminal on the hub are done; one still
        not terminal after ``cancel_final_grace_ns`` flags a reconciliation (caller's thread)."""
        while True:
            try:
                bid, t = self._refused_cancels.get_nowait()
            except queue.Empty:
                break
            self._await_final.setdefault(bid, t)
        if not self._await_final:
            return
        now = self.clock.now_ns()
        for bid, t in list(self._await_final.items()):
            tr = self._tracks.get(bid)
            if tr is not None and tr.status in TERMINAL:
                del self._await_final[bid]
            elif now - t >= self.cancel_final_grace_ns:
                del self._await_final[bid]
                log.warning("order %d: cancel refused as not working, and no final state on the hub "
                            "after %.1f s; reconciling", bid, self.cancel_final_grace_ns / 1e9)
                self._reconcile_flag.set()

    def _drain_hub(self) -> int:
        """Translate every queued user-hub event (caller's thread); returns how many."""
        n = 0
        while True:
            try:
                ev = self.user_events.get_nowait()
            except queue.Empty:
                break
            n += 1
            self._on_hub(ev)
        self.stats["hub_events"] += n
        return n

    def _on_hub(self, ev: HubEvent) -> None:
        k = ev.kind
        try:
            if k == "order":
                o = PxOrder.from_json(ev.data)
                if o.account_id == self.account_id and o.contract_id == self.contract_id:
                    self._apply_order(o, ev.received_ns)
            elif k == "user_trade":
                t = Trade.from_json(ev.data)
                if t.account_id == self.account_id and t.contract_id == self.contract_id:
                    self._apply_trade(t, ev.received_ns)
            elif k == "position":
                p = Position.from_json(ev.data)
                if p.account_id == self.account_id and p.contract_id == self.contract_id:
                    self._set_position(p.signed_size, p.average_price if p.size else 0.0,
                                       ev.received_ns)
            elif k == "account":
                if ev.data.get("id") == self.account_id:
                    self.balance = float(ev.data.get("balance") or 0.0)
                    self.can_trade = bool(ev.data.get("canTrade", True))
                    self.account_events += 1
            elif k == "gap":
                self._reconcile_flag.set()
            elif k == "logout":
                self._alert("critical", "gateway_logout", "GatewayLogout: the session was kicked "
                            "(logged in elsewhere?); reconnecting and reconciling")
                self._reconcile_flag.set()
        except ValueError as exc:
            log.error("malformed %s event dropped (%s); reconciling", k, exc)
            self._reconcile_flag.set()

    def _ktag(self, btag: str | None) -> str:
        if not btag:
            return ""
        return btag[len(self.tag_prefix):] if btag.startswith(self.tag_prefix) else btag

    def _kid_of(self, o: PxOrder) -> str:
        """Kernel-facing id of a broker order (aliases a resolved UNKNOWN tag)."""
        tr = self._tracks.get(o.id)
        if tr is not None:
            return tr.kid
        btag = o.custom_tag or ""
        kid = self._btag_to_kid.get(btag) or ""
        if not kid or kid in self._kid_to_bid and self._kid_to_bid[kid] != o.id:
            kid = str(o.id)
        self._kid_to_bid[kid] = o.id
        ktag = self._ktag(btag)
        if ktag in self._unknown and kid == ktag:
            del self._unknown[ktag]
            log.info("timed-out placement %s found at the broker as order %d", ktag, o.id)
        return kid

    def _track(self, o: PxOrder) -> _Track:
        tr = self._tracks.get(o.id)
        if tr is not None:
            return tr
        kid = self._kid_of(o)
        btag = o.custom_tag or ""
        role, parent = "", ""
        if btag.endswith("-SL") or btag.endswith("-TP") or o.parent_order_id is not None:
            role = "stop" if (btag.endswith("-SL") or o.type in (4, 5)) else "target"
            ptag = btag[:-3] if btag[-3:] in ("-SL", "-TP") else ""
            if o.parent_order_id is not None and o.parent_order_id in self._tracks:
                parent = self._tracks[o.parent_order_id].kid
            elif ptag and self._btag_to_kid.get(ptag):
                parent = self._btag_to_kid[ptag]
            elif o.parent_order_id is not None:
                parent = str(o.parent_order_id)
            if not parent:
                role = ""
        tr = _Track(o.id, kid, self._ktag(btag), TYPE_TO_KIND.get(o.type, "limit"),
                    1 if o.side == 0 else -1, parent, role, o.contract_id,
                    mine=bool(self.tag_prefix) and btag.startswith(self.tag_prefix))
        self._tracks[o.id] = tr
        return tr

    def _apply_order(self, o: PxOrder, ts_ns: int, only: str = "all") -> bool:
        """Bring one broker order's state into the venue; emits an OrderUpdate on a change.
        ``only``: "working" / "terminal" restricts which states are applied (reconcile order).
        Returns True when something was emitted."""
        tr = self._track(o)
        st = int(o.status)
        if only == "working" and st not in WORKING or only == "terminal" and st not in TERMINAL:
            return False
        tr.fill_volume = max(tr.fill_volume, o.fill_volume)
        if tr.status in TERMINAL and st in WORKING:
            return False   # a replayed / stale event: a terminal order never works again
        price = o.stop_price if o.type in (3, 4, 5) else o.limit_price
        ts = o.update_ns or ts_ns
        if st in WORKING:
            if st == 7:
                tr.status = st if tr.status is None else tr.status
                return False
            if tr.status in WORKING and tr.size == o.size and tr.price == price:
                tr.status = st
                return False
            changed = tr.status in WORKING
            tr.status, tr.size, tr.price = st, o.size, price
            reason = ("suspended until the entry fills" if st == 8 else
                      "updated (modify / leg active)" if changed else "accepted")
            self._emit(OrderUpdate(tr.kid, tr.tag, S.ACCEPTED, ts, o.size, price, tr.kind, tr.side,
                                   tr.parent, tr.role, reason))
            return True
        if st == tr.status:
            return False
        tr.status = st
        if st == 2:
            return False   # fills are reported by the trades (dedup by trade id)
        self._emit(OrderUpdate(tr.kid, tr.tag, TERMINAL_MAP[st], ts, o.size, price, tr.kind, tr.side,
                               tr.parent, tr.role, {3: "cancelled at the broker", 4: "expired",
                                                    5: "rejected by the broker"}[st]))
        return True

    def _apply_trade(self, t: Trade, ts_ns: int) -> bool:
        if t.id in self._seen_trades:
            self.stats["dup_fills"] += 1
            return False
        self._seen_trades.add(t.id)
        if t.voided:
            log.warning("voided trade %d ignored", t.id)
            return False
        tr = self._tracks.get(t.order_id)
        kid = tr.kid if tr is not None else self._kid_to_bid_rev(t.order_id)
        tag = tr.tag if tr is not None else ""
        side = 1 if t.side == 0 else -1
        kind, ref = "market", None
        if tr is not None:
            kind = tr.kind
            sent = self._sent_btags.get(self.tag_prefix + tr.tag)
            if kind == "market":
                ref = sent[2] if sent is not None else None
            elif kind == "stop":
                ref = tr.price
            else:
                ref = t.price
        if ref is None or side * (t.price - ref) < 0:
            ref = t.price   # unknown reference or price improvement: no slippage booked
        slip = max(0.0, side * (t.price - ref))
        comm = self.trade_cost(t)
        self.stats["fills"] += 1
        # ours: an order of this session (tracked with its prefix, or placed and not yet seen on
        # the hub; while a placement's outcome is unknown, an unseen order may be it: ours, and a
        # reconcile tells); anything else (a hand trade, closeContract, an earlier session's leg)
        # is outside
        ours = tr.mine if tr is not None else (t.order_id in self._kid_to_bid.values() or bool(self._unknown))
        self._emit(FillEvent(kid, tag, side, int(t.size), float(t.price), float(ref), float(slip),
                             float(comm), t.creation_ns or ts_ns))
        self._out_meta.append({"id": int(t.id), "signed": side * int(t.size), "fees": float(comm),
                               "pnl": t.profit_and_loss, "ts_ns": t.creation_ns or ts_ns, "ours": bool(ours)})
        return True

    def trade_cost(self, t: Trade) -> float:
        """Dollars charged for one broker fill: its ``fees`` (+ ``commissions``) when the gateway
        reports ``fees``, else ``(commission + exchange fee per side) × size`` from Settings."""
        raw_fees = t.raw.get("fees")
        if raw_fees is not None:
            return float(raw_fees) + float(t.raw.get("commissions") or 0.0)
        return self.cost_per_side * t.size

    def history(self, start_ns: int, end_ns: int, limit: int, unit_number: int = 1) -> list[HistoryBar]:
        """``History/retrieveBars``: complete minute bars (``unit_number`` minutes) of the
        contract in ``[start_ns, end_ns]`` (UTC ns), oldest first, at most ``limit`` (the
        newest). The client's history bucket (50 / 30 s) paces the call. Raises
        ``ProjectXError`` / ``TimeoutError``."""
        return self._call(self.client.retrieve_bars(self._cid, int(start_ns), int(end_ns),
                                                    unit_number=int(unit_number), limit=int(limit)),
                          self.submit_timeout_s * 4)

    def trades_since(self, since_ns: int) -> list[Trade]:
        """``Trade/search`` of the account from ``since_ns`` (broker clock, UTC ns), oldest id
        first, on every contract (the caller filters). Raises ``ProjectXError`` / ``TimeoutError``."""
        rows = self._call(self.client.search_trades(self._aid, int(since_ns)), self.submit_timeout_s * 2)
        return sorted(rows, key=lambda t: t.id)

    def _kid_to_bid_rev(self, bid: int) -> str:
        for k, v in self._kid_to_bid.items():
            if v == bid:
                return k
        return str(bid)

    def _set_position(self, qty: int, avg: float, ts_ns: int) -> None:
        if qty == self.pos_qty and (qty == 0 or abs(avg - self.pos_avg) < 1e-9):
            return
        self.pos_qty, self.pos_avg = int(qty), float(avg) if qty else 0.0
        self._emit(PositionUpdate(self.pos_qty, self.pos_avg, ts_ns))

    def _emit(self, ev) -> None:
        self._out.append(ev)

    # ================================================================ reconcile
    def reconcile(self, reason: str = "periodic") -> ReconcileReport:
        """Compare the venue's view with the broker's (REST) and correct it (broker wins):
        missing order states and fills are emitted (fills before terminal order states, so a
        kernel never sees a leg cancelled before its sibling's fill), timed-out placements are
        resolved by tag, the position is set to the broker's, and orphan bracket legs are
        cancelled when the broker is flat. Call it from the caller's thread (the runtime's
        periodic reconciliation; it also runs automatically after hub reconnects). Raises
        ``ProjectXError`` / ``TimeoutError`` when REST fails (nothing is changed then)."""
        now = self.clock.now_ns()
        rep = ReconcileReport(ts_ns=now, reason=reason, local_qty=self.pos_qty, local_avg=self.pos_avg)
        acct, cid = self._aid, self._cid

        async def snapshot():
            positions = await self.client.search_open_positions(acct)
            orders = {o.id: o for o in await self.client.search_orders(acct, self.since_ns)}
            for o in await self.client.query_orders(acct, created_after_ns=self.since_ns):
                orders[o.id] = o
            trades = await self.client.search_trades(acct, self.since_ns)
            return positions, orders, trades

        positions, orders, trades = self._call(snapshot(), self.submit_timeout_s * 4)
        self.stats["reconciles"] += 1
        mine = sorted((o for o in orders.values() if o.contract_id == cid), key=lambda o: o.id)
        pending = {self.tag_prefix + t: t for t in self._unknown}
        for o in mine:
            if o.custom_tag in pending and pending[o.custom_tag] in self._unknown:
                rep.resolved_unknown.append(pending[o.custom_tag])
        for o in mine:
            if o.custom_tag in pending or o.id in self._tracks or (o.custom_tag or "").startswith(self.tag_prefix):
                before = self._tracks.get(o.id)
                prev = None if before is None else before.status
                if self._apply_order(o, now, only="working"):
                    rep.order_updates += 1
                    if prev is not None:
                        rep.mismatches.append(f"order {o.id}: status {prev} → {o.status} (missed on the hub)")
        missed_qty = 0
        for t in sorted(trades, key=lambda t: t.id):
            if t.contract_id != cid or t.id in self._seen_trades:
                continue
            if self._apply_trade(t, now):
                rep.missing_fills.append(t.id)
                missed_qty += t.size if t.side == 0 else -t.size
        if rep.missing_fills:
            rep.mismatches.append(f"fills missed on the hub: {rep.missing_fills}")
        for o in mine:
            if o.id in self._tracks:
                prev = self._tracks[o.id].status
                if self._apply_order(o, now, only="terminal"):
                    rep.order_updates += 1
                    rep.mismatches.append(f"order {o.id}: status {prev} → {o.status} (missed on the hub)")
        for tag, t0 in list(self._unknown.items()):
            if now - t0 >= self.unknown_grace_ns:
                del self._unknown[tag]
                rep.rejected_unknown.append(tag)
                self._emit(OrderUpdate(tag, tag, S.REJECTED, now, reason="not found at the broker "
                                       "after a submission timeout (never resent)"))
                self._alert("warning", "unknown_order", f"order {tag}: submission timed out and no "
                            f"order with that tag exists at the broker: treated as not placed")
        rep.unresolved_unknown = sorted(self._unknown)
        self._next_unknown_check_ns = now + self.unknown_recheck_ns
        bq = sum(p.signed_size for p in positions if p.contract_id == cid)
        bavg = next((p.average_price for p in positions if p.contract_id == cid and p.size), 0.0)
        explained = self.pos_qty + missed_qty == bq
        tries = 0
        while not explained and bq != self.pos_qty and reason != "startup" and tries < 2:
            # confirm before calling it unexplained: the hub's position event or the REST trade
            # list may lag the REST position by a moment (a fill during the snapshot)
            tries += 1
            threading.Event().wait(0.25)
            self._drain_hub()
            positions, trades2 = self._call(self._positions_and_trades(), self.submit_timeout_s * 2)
            for t in sorted(trades2, key=lambda t: t.id):
                if t.contract_id == cid and t.id not in self._seen_trades and self._apply_trade(t, now):
                    rep.missing_fills.append(t.id)
                    missed_qty += t.size if t.side == 0 else -t.size
            bq = sum(p.signed_size for p in positions if p.contract_id == cid)
            bavg = next((p.average_price for p in positions if p.contract_id == cid and p.size), 0.0)
            explained = self.pos_qty == bq or self.pos_qty + missed_qty == bq
        rep.broker_qty, rep.broker_avg = bq, bavg
        if bq != self.pos_qty or (bq and abs(bavg - self.pos_avg) > 1e-6):
            rep.mismatches.append(f"position: venue {self.pos_qty} @ {self.pos_avg:.2f}, "
                                  f"broker {bq} @ {bavg:.2f} (broker wins"
                                  + ("; explained by the missed fills)" if explained else ")"))
            self._set_position(bq, bavg, now)
            if not explained and reason != "startup":
                rep.unexplained.append(rep.mismatches[-1])
                mode = self.reconcile_mode
                if mode == "auto-sync":
                    log.info("reconcile (auto-sync): %s", rep.mismatches[-1])
                else:
                    self._alert("critical" if mode == "strict" else "warning", "position_mismatch",
                                rep.mismatches[-1] + (" [strict: trading halts]" if mode == "strict" else ""))
        working = [o for o in mine if o.status in WORKING]
        rep.working_orders = len(working)
        rep.foreign_orders = [o.id for o in working if not is_engine_tag(o.custom_tag, self.tag_prefix)]
        if bq == 0:
            for o in working:
                tr = self._tracks.get(o.id)
                if tr is None or tr.role not in ("stop", "target"):
                    continue
                ptr = self._tracks.get(self._kid_to_bid.get(tr.parent, -1))
                if ptr is not None and ptr.status in TERMINAL:
                    try:
                        self._call(self.client.cancel_order(acct, o.id))
                        rep.orphans_cancelled.append(o.id)
                    except (ProjectXError, concurrent.futures.TimeoutError) as exc:
                        log.warning("orphan leg %d: cancel failed: %s", o.id, exc)
            if rep.orphans_cancelled:
                rep.mismatches.append(f"orphan bracket legs cancelled while flat: {rep.orphans_cancelled}")
        rep.ok = not rep.mismatches and not rep.rejected_unknown
        self.last_reconcile = rep
        if rep.mismatches:
            log.warning("reconcile (%s): %s", reason, "; ".join(rep.mismatches))
        else:
            # A periodic agreement is routine (the console's broker line shows its time): DEBUG,
            # so it does not fill the log pane; start-up/reconnect agreements stay at INFO.
            (log.debug if reason == "periodic" else log.info)(
                "reconcile (%s): in agreement, position %d, %d working orders", reason, bq, rep.working_orders)
        return rep

    async def _positions_and_trades(self):
        positions = await self.client.search_open_positions(self.account_id)
        trades = await self.client.search_trades(self.account_id, self.since_ns)
        return positions, trades

    # ================================================================ helpers
    def _bid(self, order_id: str) -> int:
        bid = self._kid_to_bid.get(order_id)
        if bid is None:
            if order_id in self._unknown:
                raise VenueError(f"order {order_id}: outcome still unknown (not yet reconciled)")
            raise VenueError(f"unknown order id {order_id!r}")
        return bid

    def _round(self, price: float) -> float:
        return round(round(float(price) / self.tick) * self.tick, 10)

    def _ref_price(self, side: int, kind: str, price: float | None) -> float | None:
        if kind != "market":
            return price
        q = self.last_quote()
        v = q.get("bestAsk") if side > 0 else q.get("bestBid")
        if v is None:
            v = q.get("lastPrice")
        return None if v is None else float(v)


def _not_working(exc: ApiError) -> bool:
    """True for a cancel refusal that says the order is no longer working (filled, cancelled,
    expired: the request crossed the order's final state), by the gateway's message."""
    m = (exc.server_message or "").lower()
    return any(w in m for w in ("terminal", "not working", "already", "filled", "cancelled", "canceled"))


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    n = int(n)
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"
