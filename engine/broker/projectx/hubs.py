"""ProjectX real-time hubs over SignalR with signalrcore (R-PX-2; reference §7, §10).

signalrcore runs its own threads (one receive thread per socket). This module owns one
supervisor thread per hub that (re)builds the signalrcore connection with the CURRENT token
(signalrcore's own reconnect would reuse the first URL and its stale token, reference §2.2), so
signalrcore's automatic reconnect is not used. Every event is turned into a :class:`HubEvent`
and put, in arrival order, on a ``queue.Queue`` that the kernel drains on its single thread;
both hubs may share one queue (``seq`` then orders them globally).

Lifecycle per connection attempt: build → start → wait for the handshake (``on_open``) →
invoke every subscription → enqueue ``connected`` (first time) or ``reconnected`` (later) → call
``on_reconnected(hub_name)`` (from the supervisor thread: the callback should only schedule the
REST reconciliation; the queued ``reconnected`` event is the in-order signal). On close, error,
a ``GatewayLogout`` or a forced reconnect: enqueue ``disconnected`` and retry after an
exponential back-off (``backoff_initial_s`` doubling to ``backoff_max_s``, reset after a
successful connect).

Event kinds (``HubEvent.kind``): market: ``quote`` (the MERGED quote dict: sparse updates are
folded into the last full quote per contract), ``trade`` (list of tape prints), ``depth`` (list of
depth rows, ``null`` padding dropped); user: ``account``, ``order``, ``position``, ``user_trade``
(the bare payload; an ``{action, data}`` envelope is unwrapped, ``action`` kept), ``logout``;
both: ``connected``, ``reconnected``, ``disconnected``, ``gap`` (a malformed record was
dropped: reconcile), ``refused`` (market: a quote update that failed
:meth:`MarketHub.quote_problem`, dropped before the merge; ``data["reason"]``), ``error`` (a
failed invocation), ``stale`` (watchdog: no data for
``stale_after_s``; after ``reconnect_after_stale_s`` the hub reconnects).

Tokens are registered for redaction; signalrcore's logger is filtered so no URL with
``access_token`` reaches a log line.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import queue
import socket
import threading
from dataclasses import dataclass
from typing import Any, Callable

from signalrcore.hub_connection_builder import HubConnectionBuilder
from signalrcore.messages.ping_message import PingMessage
from signalrcore.protocol.json_hub_protocol import JsonHubProtocol

from engine.broker.base import price_problem
from engine.broker.projectx.errors import install_redaction, redact, register_secret
from engine.broker.projectx.models import parse_ts
from engine.clock import NS_PER_SECOND, Clock, perf_ns

log = logging.getLogger("engine.broker.projectx.hubs")
install_redaction()

_SEQ = itertools.count(1)


@dataclass(frozen=True)
class HubEvent:
    """One hub event, in arrival order.

    Attributes:
        seq: global arrival number (all hubs sharing a process).
        hub: ``"market"`` or ``"user"``.
        kind: see the module docstring.
        contract_id: market events' contract id, else None.
        data: payload (dict or list, see kinds); for lifecycle kinds a short dict.
        action: the user-hub envelope ``action`` when one was present, else None.
        received_ns: clock time of arrival, UTC ns.
    """
    seq: int
    hub: str
    kind: str
    contract_id: str | None
    data: Any
    action: int | None
    received_ns: int


class _TolerantJson(JsonHubProtocol):
    """JSON hub protocol that drops a malformed record (and reports it) instead of killing the
    receive thread."""

    def __init__(self, on_gap: Callable[[str], None]) -> None:
        super().__init__()
        self._on_gap = on_gap

    def parse_messages(self, raw):
        out = []
        for rec in raw.split(self.record_separator):
            if not rec:
                continue
            try:
                d = json.loads(rec)
            except ValueError:
                self._on_gap(rec[:80])
                continue
            if isinstance(d, dict) and d:
                try:
                    out.append(self.get_message(d))
                except (TypeError, ValueError, KeyError):
                    self._on_gap(rec[:80])
        return out


class HubClient:
    """One SignalR hub connection, supervised. Subclasses register the gateway events.

    Args:
        hub: ``"market"`` or ``"user"``.
        url: hub URL (``https://rtc.topstepx.com/hubs/market`` or ``http://127.0.0.1:P/hubs/market``).
        token_provider: returns the CURRENT session token (``ProjectXClient.current_token``).
        clock: engine clock (arrival times, watchdog).
        events: the queue events are put on (shared with the other hub is fine).
        skip_negotiation: True → connect the WebSocket directly with ``?access_token=`` (as the
            official example); False → POST ``/negotiate`` first.
        on_reconnected: called with the hub name after a REconnect and resubscription.
        backoff_initial_s, backoff_max_s: reconnect back-off, seconds.
        connect_timeout_s: time allowed for socket + handshake.
        keep_alive_s: client keep-alive: a Ping (type 6) goes out when nothing was sent for
            this long (the supervisor sends it: :meth:`_keep_alive`).
        stale_after_s: no data for this long → ``stale`` event (None = off).
        reconnect_after_stale_s: stale this long → forced reconnect (None = never).
        watchdog_period_s: how often the supervisor checks staleness.
    """

    def __init__(self, hub: str, url: str, token_provider: Callable[[], str], clock: Clock,
                 events: "queue.Queue[HubEvent]", *, skip_negotiation: bool = True,
                 on_reconnected: Callable[[str], None] | None = None, backoff_initial_s: float = 0.5,
                 backoff_max_s: float = 30.0, connect_timeout_s: float = 10.0, keep_alive_s: float = 15.0,
                 stale_after_s: float | None = None, reconnect_after_stale_s: float | None = None,
                 watchdog_period_s: float = 0.5) -> None:
        self.hub = hub
        self.url = url.rstrip("/")
        self._token_provider = token_provider
        self.clock = clock
        self.events = events
        self.skip_negotiation = skip_negotiation
        self.on_reconnected = on_reconnected
        self.backoff_initial_s = float(backoff_initial_s)
        self.backoff_max_s = float(backoff_max_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.keep_alive_s = float(keep_alive_s)
        self.stale_after_s = stale_after_s
        self.reconnect_after_stale_s = reconnect_after_stale_s
        self.watchdog_period_s = float(watchdog_period_s)
        self._subs: list[tuple[str, list]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn = None
        self.connected = False
        self.connect_count = 0
        self.last_data_ns = 0
        self._stale_flag = False
        self.last_error: str | None = None
        self.pings = 0
        self._last_sent_ns = 0          # perf_ns of the last record this client sent
        """Keep-alive pings sent (:meth:`_keep_alive`)."""

    # ------------------------------------------------------------ public
    def add_subscription(self, method: str, args: list) -> None:
        """Remember a Subscribe* invocation; it is sent now if connected and on every reconnect."""
        with self._lock:
            if (method, args) in self._subs:
                return
            self._subs.append((method, list(args)))
            conn = self._conn if self.connected else None
        if conn is not None:
            self._invoke(conn, method, args)

    def start(self, wait: bool = True, timeout: float | None = None) -> None:
        """Start the supervisor thread; with ``wait``, block until the first connection is up.
        Raises ``TimeoutError`` (the supervisor keeps retrying) naming the last error."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._supervise, name=f"px-hub-{self.hub}", daemon=True)
            self._thread.start()
        if wait and not self._ready.wait(timeout or self.connect_timeout_s):
            raise TimeoutError(f"{self.hub} hub: not connected within {timeout or self.connect_timeout_s} s "
                               f"(last error: {self.last_error})")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the supervisor and close the connection (no reconnect)."""
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def force_reconnect(self) -> None:
        """Drop the current connection; the supervisor reconnects with the current token."""
        self._kick.set()

    # ------------------------------------------------------------ internals
    def _put(self, kind: str, data: Any = None, contract_id: str | None = None, action: int | None = None) -> None:
        self.events.put(HubEvent(next(_SEQ), self.hub, kind, contract_id, data, action, self.clock.now_ns()))

    def _data_seen(self) -> None:
        self.last_data_ns = self.clock.now_ns()
        self._stale_flag = False

    def _hub_url(self, token: str) -> str:
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}access_token={token}"

    def _build(self, token: str):
        opts = {"access_token_factory": lambda: token, "skip_negotiation": self.skip_negotiation,
                "verify_ssl": True}
        b = HubConnectionBuilder().with_url(self._hub_url(token), options=opts)
        b.keep_alive_interval = self.keep_alive_s
        b.with_hub_protocol(_TolerantJson(lambda rec: self._put("gap", {"record": redact(rec)})))
        conn = b.build()
        self._register(conn)
        return conn

    def _register(self, conn) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _invoke(self, conn, method: str, args: list) -> None:
        def done(msg):
            pass
        try:
            conn.invoke(method, list(args), on_invocation=done)
            self._last_sent_ns = perf_ns()
        except Exception as exc:  # the socket died under us: the supervisor reconnects
            self.last_error = redact(f"{type(exc).__name__}: {exc}")
            log.warning("%s hub: invoke %s failed: %s", self.hub, method, self.last_error)

    @staticmethod
    def _hard_close(conn) -> None:
        try:
            sock = conn.transport._client.sock
            sock.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass
        try:
            conn.stop()
        except Exception:
            pass

    def _supervise(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            opened, closed = threading.Event(), threading.Event()
            conn = None
            try:
                token = self._token_provider()
                register_secret(token)
                conn = self._build(token)
                conn.on_open(opened.set)
                conn.on_close(closed.set)
                conn.on_error(lambda err: self._on_invocation_error(err))
                conn.start()
            except Exception as exc:
                self.last_error = redact(f"{type(exc).__name__}: {exc}")
                log.warning("%s hub: connect failed: %s", self.hub, self.last_error)
                closed.set()
            deadline_ok = False
            if not closed.is_set():
                deadline_ok = opened.wait(self.connect_timeout_s) and not closed.is_set()
            if deadline_ok:
                with self._lock:
                    self._conn = conn
                    self.connected = True
                    subs = list(self._subs)
                for method, args in subs:
                    self._invoke(conn, method, args)
                self.connect_count += 1
                self._last_sent_ns = perf_ns()   # the handshake was just sent
                attempt = 0
                self._data_seen()
                first = self.connect_count == 1
                self._put("connected" if first else "reconnected", {"connects": self.connect_count})
                log.info("%s hub %s", self.hub, "connected" if first else "reconnected and resubscribed")
                self._ready.set()
                if not first and self.on_reconnected is not None:
                    try:
                        self.on_reconnected(self.hub)
                    except Exception:
                        log.exception("%s hub: on_reconnected callback failed", self.hub)
                while not self._stop.is_set() and not closed.is_set():
                    if self._kick.wait(min(self.watchdog_period_s, self.keep_alive_s / 2)):
                        self._kick.clear()
                        break
                    self._watchdog()
                    self._keep_alive(conn)
            with self._lock:
                self.connected = False
                self._conn = None
            if conn is not None:
                self._hard_close(conn)
            if self._stop.is_set():
                break
            if deadline_ok:
                self._put("disconnected", {"error": self.last_error})
                log.warning("%s hub disconnected; reconnecting", self.hub)
            delay = min(self.backoff_max_s, self.backoff_initial_s * (2 ** attempt))
            attempt += 1
            self._stop.wait(delay)
        log.info("%s hub stopped", self.hub)

    def _keep_alive(self, conn) -> None:
        """SignalR keep-alive (protocol: a client sends a Ping, type 6, when it has sent nothing
        for its keep-alive interval; the server drops a client silent for its client timeout,
        30 s by default). signalrcore only starts its own ping thread when its automatic
        reconnect is configured, which this module does not use, so the supervisor pings."""
        tr = getattr(conn, "transport", None)
        if tr is None:
            return
        if perf_ns() - self._last_sent_ns < self.keep_alive_s * NS_PER_SECOND:
            return
        try:
            tr.send(PingMessage())
            self._last_sent_ns = perf_ns()
            self.pings += 1
        except Exception as exc:          # the socket died: reconnect
            self.last_error = redact(f"keep-alive ping failed: {type(exc).__name__}: {exc}")
            log.warning("%s hub: %s", self.hub, self.last_error)
            self._kick.set()

    def _watchdog(self) -> None:
        if self.stale_after_s is None:
            return
        idle_s = (self.clock.now_ns() - self.last_data_ns) / NS_PER_SECOND
        if idle_s > self.stale_after_s and not self._stale_flag:
            self._stale_flag = True
            self._put("stale", {"idle_s": idle_s})
            log.warning("%s hub: no data for %.1f s", self.hub, idle_s)
        if self.reconnect_after_stale_s is not None and idle_s > self.reconnect_after_stale_s:
            self.last_error = f"stale for {idle_s:.1f} s"
            self._kick.set()

    def _on_invocation_error(self, err: Any) -> None:
        text = redact(str(getattr(err, "error", err)))
        self.last_error = text
        self._put("error", {"error": text})


class MarketHub(HubClient):
    """Market hub: quotes (merged), tape trades and depth for subscribed contracts."""

    QUOTE_PRICES = ("bestBid", "bestAsk", "lastPrice", "open", "high", "low")
    QUOTE_NUMBERS = ("volume", "change", "changePercent")
    FUTURE_NS = 86_400 * NS_PER_SECOND

    def __init__(self, url: str, token_provider: Callable[[], str], clock: Clock,
                 events: "queue.Queue[HubEvent]", *, tick: float | None = None, **kwargs: Any) -> None:
        super().__init__("market", url, token_provider, clock, events, **kwargs)
        self.quotes: dict[str, dict] = {}
        self.tick = tick
        """Contract tick size (points): quote prices off this grid are refused (None = not checked)."""
        self.refused = 0

    def quote_problem(self, q: dict, last_good: float | None = None) -> str | None:
        """Why a (sparse) quote update must not be merged, or None: a price that fails the
        magnitude gate (:func:`engine.broker.base.price_problem`: a finite number > 0 below
        ``MAX_PRICE``, on the tick grid, within the band of ``last_good``, the merged last price
        of the contract, points), a non-finite volume/change, or a timestamp that does not
        parse or lies more than a day after the hub clock (wall time: exchange data is never from
        the future). A refused update is dropped whole, so the merged quote never holds it."""
        for k in self.QUOTE_PRICES:
            if k in q and q[k] is not None:
                band_ref = last_good if k in ("bestBid", "bestAsk", "lastPrice") else None
                why = price_problem(q[k], self.tick, band_ref, what=f"quote {k}")
                if why is not None:
                    return why
        for k in self.QUOTE_NUMBERS:
            if k in q and q[k] is not None:
                v = q[k]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    return f"quote {k}: {v!r} is not a finite number"
        for k in ("timestamp", "lastUpdated"):
            if q.get(k) is not None:
                try:
                    ts = parse_ts(q[k])
                except (ValueError, TypeError) as exc:
                    return f"quote {k}: {exc}"
                if ts is not None and ts > self.clock.now_ns() + self.FUTURE_NS:
                    return f"quote {k}: {q[k]!r} is more than a day in the future"
        return None

    def subscribe_contract(self, contract_id: str, *, quotes: bool = True, trades: bool = True,
                           depth: bool = True) -> None:
        """Subscribe ``contract_id`` to quotes / trades / depth (kept across reconnects)."""
        if quotes:
            self.add_subscription("SubscribeContractQuotes", [contract_id])
        if trades:
            self.add_subscription("SubscribeContractTrades", [contract_id])
        if depth:
            self.add_subscription("SubscribeContractMarketDepth", [contract_id])

    def _register(self, conn) -> None:
        conn.on("GatewayQuote", self._on_quote)
        conn.on("GatewayTrade", functools.partial(self._on_rows, "trade", "GatewayTrade"))
        conn.on("GatewayDepth", functools.partial(self._on_rows, "depth", "GatewayDepth"))

    def _on_quote(self, args: list) -> None:
        if len(args) < 2 or not isinstance(args[1], dict):
            self._put("gap", {"record": "GatewayQuote with bad arguments"})
            return
        prev = self.quotes.get(str(args[0])) or {}
        ref = prev.get("lastPrice")
        try:
            why = self.quote_problem(args[1], ref if isinstance(ref, (int, float)) else None)
        except Exception as exc:   # never let one record take the hub down (a one-line log)
            why = f"quote record: {type(exc).__name__}: {exc}"[:200]
        if why is not None:
            self.refused += 1
            self._put("refused", {"reason": why}, str(args[0]))
            return
        cid = str(args[0])
        merged = self.quotes.setdefault(cid, {})
        merged.update(args[1])
        self._data_seen()
        self._put("quote", dict(merged), cid)

    def _on_rows(self, kind: str, record: str, args: list) -> None:
        """A ``record`` message (``GatewayTrade``/``GatewayDepth``: ``[contract_id, row or
        rows]``) → one ``kind`` event holding the list of rows; bad arguments → a ``gap``."""
        if len(args) < 2:
            self._put("gap", {"record": f"{record} with bad arguments"})
            return
        rows = args[1] if isinstance(args[1], list) else [args[1]]
        self._data_seen()
        self._put(kind, [r for r in rows if r is not None], str(args[0]))


class UserHub(HubClient):
    """User hub: account, orders, positions and fills of subscribed accounts."""

    KINDS = {"GatewayUserAccount": "account", "GatewayUserOrder": "order",
             "GatewayUserPosition": "position", "GatewayUserTrade": "user_trade"}

    def __init__(self, url: str, token_provider: Callable[[], str], clock: Clock,
                 events: "queue.Queue[HubEvent]", **kwargs: Any) -> None:
        super().__init__("user", url, token_provider, clock, events, **kwargs)

    def subscribe_account(self, account_id: int) -> None:
        """SubscribeAccounts + Orders/Positions/Trades for ``account_id`` (an int on the wire)."""
        self.add_subscription("SubscribeAccounts", [])
        for m in ("SubscribeOrders", "SubscribePositions", "SubscribeTrades"):
            self.add_subscription(m, [int(account_id)])

    def _register(self, conn) -> None:
        for target, kind in self.KINDS.items():
            conn.on(target, self._handler(kind))
        conn.on("GatewayLogout", self._on_logout)

    def _handler(self, kind: str) -> Callable[[list], None]:
        def handle(args: list) -> None:
            if not args:
                self._put("gap", {"record": f"{kind} without arguments"})
                return
            payload, action = args[0], None
            if isinstance(payload, dict) and "data" in payload and "action" in payload:
                action, payload = payload.get("action"), payload.get("data")
            if not isinstance(payload, dict):
                self._put("gap", {"record": f"{kind} payload is not an object"})
                return
            self._data_seen()
            self._put(kind, payload, None, action)
        return handle

    def _on_logout(self, args: list) -> None:
        self._put("logout", {"arguments": args})
        log.warning("user hub: GatewayLogout received (session kicked elsewhere?)")
        self.force_reconnect()


def drain(events: "queue.Queue[HubEvent]", max_items: int | None = None) -> list[HubEvent]:
    """Take every queued event without blocking (at most ``max_items``), in order."""
    out: list[HubEvent] = []
    while max_items is None or len(out) < max_items:
        try:
            out.append(events.get_nowait())
        except queue.Empty:
            break
    return out
