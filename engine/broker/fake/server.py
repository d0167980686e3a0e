"""The fake gateway's aiohttp server: REST ``/api/*`` and the SignalR hubs ``/hubs/{user,market}``
(reference §9). Start with ``await FakeGateway(...).start(port=0)``; ``base_url`` then points at
it. Loopback only by default.

SignalR JSON protocol: negotiate (``POST /hubs/<hub>/negotiate``) or skip-negotiation
(``GET /hubs/<hub>?access_token=``) upgrade; handshake ``{"protocol":"json","version":1}\\x1e`` →
``{}\\x1e`` (messagepack refused with an error record); records end with 0x1E and several may be
coalesced in one frame; server pings (type 6) every ``ping_interval_s``; a connection silent for
``client_timeout_s`` is closed; invocations with an id get a completion (type 3) or an error
completion; test hooks send close (type 7) or drop the TCP connection, ``GatewayLogout``, and
malformed records.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets as _secrets
import uuid
from collections import deque
from typing import Any

from aiohttp import WSMsgType, web

from engine.broker.fake.exchange import FakeExchange
from engine.broker.fake.faults import Faults
from engine.broker.projectx.errors import register_secret
from engine.broker.projectx.models import parse_ts
from engine.clock import NS_PER_SECOND, Clock

log = logging.getLogger("engine.broker.fake.server")
RS = "\x1e"
NO_AUTH = {"Auth/loginKey", "Auth/loginApp", "Auth/validate"}
USER_METHODS = {"SubscribeAccounts": 0, "SubscribeOrders": 1, "SubscribePositions": 1, "SubscribeTrades": 1,
                "UnsubscribeAccounts": 0, "UnsubscribeOrders": 1, "UnsubscribePositions": 1,
                "UnsubscribeTrades": 1}
MARKET_METHODS = {"SubscribeContractQuotes", "SubscribeContractTrades", "SubscribeContractMarketDepth",
                  "UnsubscribeContractQuotes", "UnsubscribeContractTrades", "UnsubscribeContractMarketDepth"}
USER_KIND = {"GatewayUserAccount": "accounts", "GatewayUserOrder": "orders",
             "GatewayUserPosition": "positions", "GatewayUserTrade": "trades"}


# Request DTOs of the endpoints the fake serves (reference §3; projectx-rs models): field →
# kind. "int" an integer (a float or text is refused, as System.Text.Json binds an int),
# "num" a finite JSON number, "str", "bool", "ts" ISO-8601 text, "obj" an object, "ints" a list
# of integers; a trailing "?" allows null/absent. A body that does not bind answers what ASP.NET
# Core answers: HTTP 400 with a problem-details JSON naming the field ("errors": {"$.field": ...}).
REQUESTS: dict[str, dict[str, str]] = {
    "Auth/loginKey": {"userName": "str", "apiKey": "str"},
    "Account/search": {"onlyActiveAccounts": "bool?"},
    "Contract/search": {"searchText": "str?", "live": "bool?"},
    "Contract/searchById": {"contractId": "str"},
    "Contract/available": {"live": "bool?"},
    "History/retrieveBars": {"contractId": "str", "live": "bool?", "startTime": "ts", "endTime": "ts",
                             "unit": "int", "unitNumber": "int", "limit": "int", "includePartialBar": "bool?"},
    "Order/place": {"accountId": "int", "contractId": "str", "type": "int", "side": "int", "size": "int",
                    "limitPrice": "num?", "stopPrice": "num?", "trailPrice": "num?", "customTag": "tag?",
                    "linkedOrderId": "int?", "stopLossBracket": "obj?", "takeProfitBracket": "obj?"},
    "Order/modify": {"accountId": "int", "orderId": "int", "size": "int?", "limitPrice": "num?",
                     "stopPrice": "num?", "trailPrice": "num?"},
    "Order/cancel": {"accountId": "int", "orderId": "int"},
    "Order/search": {"accountId": "int", "startTimestamp": "ts", "endTimestamp": "ts?"},
    "Order/searchOpen": {"accountId": "int"},
    "Order/searchById": {"accountId": "int?", "orderId": "int"},
    "Position/searchOpen": {"accountId": "int"},
    "Position/closeContract": {"accountId": "int", "contractId": "str"},
    "Position/partialCloseContract": {"accountId": "int", "contractId": "str", "size": "int"},
    "Trade/search": {"accountId": "int", "startTimestamp": "ts", "endTimestamp": "ts?"},
}
BRACKET = {"ticks": "int", "type": "int"}
MAX_TAG = 60
"""``customTag`` length the fake accepts (the engine's own bound, ``ProjectXClient.place_order``:
a 100,000-character tag is refused with a 400, issue 22 item 7)."""
MAX_STR = 4096
"""Any other text field longer than this is refused (400)."""
MAX_DEPTH = 64
"""JSON nesting depth beyond which a body is refused with a 400 (ASP.NET Core's default
``MaxDepth``), never a plain 500 from a ``RecursionError``."""


def _too_deep(raw: str, limit: int = MAX_DEPTH) -> bool:
    """True when the JSON text nests arrays/objects deeper than ``limit`` (strings skipped)."""
    depth, in_str, esc = 0, False, False
    for ch in raw:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _bind_problem(body: Any, schema: dict[str, str], path: str = "$") -> str | None:
    """Why ``body`` does not bind to ``schema`` (the JSON path of the first bad field), or None."""
    import math

    if not isinstance(body, dict):
        return f"{path}: the JSON value could not be converted to an object"
    for key, kind in schema.items():
        opt = kind.endswith("?")
        kind = kind.rstrip("?")
        v = body.get(key)
        where = f"{path}.{key}"
        if v is None:
            if not opt:
                return f"{where}: the field is required"
            continue
        if kind == "int":
            ok = isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**31
        elif kind == "num":
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) < 1e12
        elif kind == "str":
            ok = isinstance(v, str) and len(v) <= MAX_STR
        elif kind == "tag":
            ok = isinstance(v, str) and len(v) <= MAX_TAG
        elif kind == "bool":
            ok = isinstance(v, bool)
        elif kind == "ts":
            try:
                ok = isinstance(v, str) and parse_ts(v) is not None
            except ValueError:
                ok = False
        elif kind == "obj":
            ok = isinstance(v, dict) and _bind_problem(v, BRACKET, where) is None
        else:
            ok = False
        if not ok:
            return f"{where}: the JSON value {json.dumps(v)[:40]} could not be converted to {kind}"
    return None


def _created(entity: dict) -> int:
    """An order's or trade's ``creationTimestamp`` (always set by the fake) as UTC ns."""
    return parse_ts(entity["creationTimestamp"]) or 0


def _problem(status: int, title: str, errors: dict | None = None) -> web.Response:
    doc: dict[str, Any] = {"type": "https://tools.ietf.org/html/rfc9110#section-15.5.1" if status == 400 else
           "https://tools.ietf.org/html/rfc9110#section-15.6.1", "title": title, "status": status,
           "traceId": uuid.uuid4().hex}
    if errors:
        doc["errors"] = errors
    return web.json_response(doc, status=status, content_type="application/problem+json")


def _b64(d: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")


class _HubConn:
    """One WebSocket hub connection: its subscriptions and an ordered outbox."""

    def __init__(self, hub: str, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.hub = hub
        self.ws = ws
        self.request = request
        self.subs: set[tuple[str, Any]] = set()
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.last_quote: dict[str, dict] = {}
        self.last_rx_ns = 0


class FakeGateway:
    """The fake ProjectX gateway.

    Args:
        bars: DataFrame from :func:`engine.broker.fake.exchange.load_bars_frame`.
        clock: clock for token expiry, rate windows and entity timestamps (LiveClock in use).
        username, api_key: the accepted credentials (``PROJECTX_USERNAME`` / ``PROJECTX_API_KEY``).
        token_ttl_s: token lifetime, seconds (24 h like the real one).
        speed: replay speed: minute bars per minute of clock... precisely, a price step (a quarter
            bar) every ``bar_seconds / 4 / speed`` seconds; 0 = no replay task (tests step by hand).
        history_rate, general_rate: the server's own 429 buckets ``(requests, seconds)``.
        ping_interval_s, client_timeout_s: hub keep-alive.
        exchange_kwargs: passed to :class:`FakeExchange` (balance, slippage_ticks, fee_per_contract).

    Attributes: ``faults`` (:class:`Faults`), ``exchange``, ``base_url``, ``calls`` (endpoint →
    count), ``connections`` (live hub connections), ``connects`` (hub → accepted count),
    ``refused`` (requests refused by :data:`REQUESTS`), ``replay_errors``.

    Requests are validated like the real gateway: a body that does not bind to the endpoint's
    DTO (:data:`REQUESTS`: types, required fields, finite numbers) → HTTP 400 problem details;
    business rules (sizes within the account's limits, prices > 0 on the tick grid, working
    orders only...) → HTTP 200 ``success:false`` with the endpoint's errorCode.
    """

    def __init__(self, bars, clock: Clock, *, username: str, api_key: str, token_ttl_s: float = 86_400.0,
                 speed: float = 0.0, history_rate=(50, 30), general_rate=(200, 60),
                 ping_interval_s: float = 15.0, client_timeout_s: float = 30.0,
                 **exchange_kwargs: Any) -> None:
        if not username or not api_key:
            raise ValueError("fake gateway needs credentials: set PROJECTX_USERNAME and PROJECTX_API_KEY or pass flags")
        self.clock = clock
        self.faults = Faults()
        self.exchange = FakeExchange(bars, clock, self.faults, **exchange_kwargs)
        self.exchange.emit = self._emit
        self.username, self.api_key = username, api_key
        register_secret(api_key)
        self.token_ttl_s = float(token_ttl_s)
        self.speed = float(speed)
        self.rates = {"history": (int(history_rate[0]), float(history_rate[1])),
                      "general": (int(general_rate[0]), float(general_rate[1]))}
        self._windows: dict[str, deque] = {"history": deque(), "general": deque()}
        self.ping_interval_s = float(ping_interval_s)
        self.client_timeout_s = float(client_timeout_s)
        self.tokens: dict[str, int] = {}           # token → expiry ns
        self.negotiated: set[str] = set()
        self.connections: list[_HubConn] = []
        self.connects = {"user": 0, "market": 0}
        self.calls: dict[str, int] = {}
        self.refused = 0
        """REST requests refused by the request schema (HTTP 400)."""
        self.replay_errors = 0
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task] = set()
        self.app = web.Application()
        self.app.router.add_get("/api/Status/ping", self._ping)
        self.app.router.add_post("/api/{endpoint:.+}", self._rest)
        self.app.router.add_post("/hubs/{hub}/negotiate", self._negotiate)
        self.app.router.add_get("/hubs/{hub}", self._hub)

    # ---------------------------------------------------------------- lifecycle
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen; returns ``http://host:port``. Starts the replay task when ``speed`` > 0."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        srv = site._server
        if not isinstance(srv, asyncio.base_events.Server):
            raise RuntimeError(f"fake gateway: no listening socket on {host}:{port}")
        real_port = srv.sockets[0].getsockname()[1]
        self.base_url = f"http://{host}:{real_port}"
        if self.speed > 0:
            self._spawn(self._replay())
        log.info("fake gateway on %s, contract %s", self.base_url, self.exchange.contract_id)
        return self.base_url

    async def stop(self) -> None:
        """Close every hub connection, stop the replay, stop listening."""
        for t in list(self._tasks):
            t.cancel()
        for c in list(self.connections):
            await c.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _spawn(self, coro) -> asyncio.Task:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    async def _replay(self) -> None:
        """The market replay: a price step every ``60 / 4 / speed`` s. A step that raises (a bug,
        never an input: the requests are validated) is logged and counted, and the replay goes on."""
        delay = 60.0 / 4.0 / self.speed
        while True:
            try:
                more = self.exchange.step()
            except Exception:
                self.replay_errors += 1
                log.exception("fake gateway: a replay step failed (%d so far); continuing", self.replay_errors)
                more = self.exchange.market.i + 1 < self.exchange.market.n_steps
            if not more:
                break
            await asyncio.sleep(delay)

    # ---------------------------------------------------------------- tokens
    def issue_token(self) -> str:
        now = self.clock.now_ns()
        exp = now + int(self.token_ttl_s * NS_PER_SECOND)
        tok = ".".join([_b64({"alg": "HS256", "typ": "JWT"}),
                        _b64({"sub": self.username, "exp": exp / NS_PER_SECOND, "jti": uuid.uuid4().hex}),
                        _secrets.token_urlsafe(16)])
        register_secret(tok)
        self.tokens[tok] = exp
        return tok

    def token_ok(self, tok: str | None) -> bool:
        return bool(tok) and tok in self.tokens and self.clock.now_ns() < self.tokens[tok]

    def expire_tokens(self) -> None:
        """Test hook: every issued token expires now (open sockets keep working)."""
        now = self.clock.now_ns()
        for t in self.tokens:
            self.tokens[t] = now

    @staticmethod
    def _bearer(request: web.Request) -> str | None:
        h = request.headers.get("Authorization", "")
        if h.startswith("Bearer "):
            return h[7:].strip()
        return request.query.get("access_token")

    # ---------------------------------------------------------------- REST
    async def _ping(self, request: web.Request) -> web.Response:
        return web.Response(text="pong")

    def _rate_ok(self, bucket: str) -> bool:
        n, period = self.rates[bucket]
        now = self.clock.now_ns()
        w = self._windows[bucket]
        while w and w[0] <= now - int(period * NS_PER_SECOND):
            w.popleft()
        if len(w) >= n:
            return False
        w.append(now)
        return True

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        ep = request.match_info["endpoint"]
        self.calls[ep] = self.calls.get(ep, 0) + 1
        f = self.faults
        if ep not in ("Auth/loginKey", "Auth/loginApp"):
            if f.http_500 > 0:
                f.http_500 -= 1
                return web.Response(status=500)
            if f.http_429 > 0:
                f.http_429 -= 1
                hdr = {"Retry-After": str(f.retry_after_s)} if f.retry_after_s is not None else {}
                return web.Response(status=429, headers=hdr)
            if ep not in NO_AUTH and f.http_401 > 0:
                f.http_401 -= 1
                return web.Response(status=401)
            tok = self._bearer(request)
            if ep == "Auth/validate":
                if not tok or tok not in self.tokens:
                    return web.Response(status=401)
            elif not self.token_ok(tok):
                return web.Response(status=401)
            if ep != "Auth/validate" and not self._rate_ok("history" if ep == "History/retrieveBars" else "general"):
                return web.Response(status=429)
        try:
            raw = await request.text() if request.can_read_body else ""
            if _too_deep(raw):
                return _problem(400, "One or more validation errors occurred.",
                                {"$": [f"The JSON value exceeds the maximum depth of {MAX_DEPTH}."]})
            body = json.loads(raw) if raw else {}
        except (ValueError, RecursionError):
            return _problem(400, "One or more validation errors occurred.",
                            {"$": ["The request body is not valid JSON."]})
        if body is None:
            body = {}
        handler = getattr(self, "_ep_" + ep.replace("/", "_"), None)
        if handler is None:
            return web.Response(status=404)
        schema = REQUESTS.get(ep)
        why = _bind_problem(body, schema) if schema is not None else (
            None if isinstance(body, dict) else "$: the JSON value could not be converted to an object")
        if why is not None:
            self.refused += 1
            field_, _, msg = why.partition(": ")
            return _problem(400, "One or more validation errors occurred.", {field_: [msg]})
        if f.delay_s.get(ep):
            await asyncio.sleep(f.delay_s[ep])
        try:
            out = handler(body, request)
        except Exception:   # a bug in the fake: a 500 like the real server, never a dead gateway
            log.exception("fake gateway: %s failed", ep)
            return _problem(500, "An unexpected error occurred.")
        if f.hold_s.get(ep):
            await asyncio.sleep(f.hold_s[ep])
        return web.json_response(out)

    @staticmethod
    def _ok(**payload: Any) -> dict:
        return {**payload, "success": True, "errorCode": 0, "errorMessage": None}

    @staticmethod
    def _err(code: int, msg: str | None, **payload: Any) -> dict:
        return {**payload, "success": False, "errorCode": code, "errorMessage": msg}

    def _ep_Auth_loginKey(self, b: dict, r) -> dict:
        if b.get("userName") != self.username or b.get("apiKey") != self.api_key:
            return self._err(3, "Invalid credentials", token=None)
        return self._ok(token=self.issue_token())

    def _ep_Auth_validate(self, b: dict, r) -> dict:
        tok = self._bearer(r)
        if not self.token_ok(tok):
            return self._err(3, "Token expired", newToken=None)
        return self._ok(newToken=self.issue_token())

    def _ep_Auth_logout(self, b: dict, r) -> dict:
        self.tokens.pop(self._bearer(r) or "", None)
        return self._ok()

    def _ep_Account_search(self, b: dict, r) -> dict:
        return self._ok(accounts=[dict(self.exchange.account)])

    def _ep_Contract_search(self, b: dict, r) -> dict:
        text = str(b.get("searchText", "")).upper()
        rows = [c for c in self.exchange.contracts if text in c["name"].upper() or text in c["symbolId"].upper()]
        return self._ok(contracts=rows[:20])

    def _ep_Contract_searchById(self, b: dict, r) -> dict:
        c = self.exchange.contract(b.get("contractId"))
        return self._ok(contract=c) if c else self._err(1, "Contract not found", contract=None)

    def _ep_Contract_available(self, b: dict, r) -> dict:
        return self._ok(contracts=list(self.exchange.contracts))

    def _ep_History_retrieveBars(self, b: dict, r) -> dict:
        if self.exchange.contract(b.get("contractId")) is None:
            return self._err(1, "Contract not found", bars=None)
        unit, n, limit = b.get("unit"), b.get("unitNumber"), b.get("limit")
        if unit not in range(1, 8):
            return self._err(2, "Invalid unit", bars=None)
        if not isinstance(n, int) or n <= 0:
            return self._err(3, "Invalid unit number", bars=None)
        if not isinstance(limit, int) or not 1 <= limit <= 20_000:
            return self._err(4, "Invalid limit", bars=None)
        secs = {1: 1, 2: 60, 3: 3600, 4: 86400, 5: 7 * 86400}.get(unit) if isinstance(unit, int) else None
        if secs is None or secs < 60:
            return self._ok(bars=[])   # month/tick/second bars: not produced by the fake
        start, end = parse_ts(b.get("startTime")) or 0, parse_ts(b.get("endTime")) or 2**62
        return self._ok(bars=self.exchange.bars_json(start, end, secs * n * NS_PER_SECOND, limit,
                                                     bool(b.get("includePartialBar"))))

    def _ep_Order_place(self, b: dict, r) -> dict:
        code, msg, oid = self.exchange.place(b)
        return self._ok(orderId=oid) if code == 0 else self._err(code, msg, orderId=oid)

    def _ep_Order_modify(self, b: dict, r) -> dict:
        code, msg = self.exchange.modify(b)
        return self._ok() if code == 0 else self._err(code, msg)

    def _ep_Order_cancel(self, b: dict, r) -> dict:
        code, msg = self.exchange.cancel(b)
        return self._ok() if code == 0 else self._err(code, msg)

    def _acct_ok(self, b: dict) -> bool:
        return b.get("accountId", b.get("filter", {}).get("accountId")) == self.exchange.account["id"]

    def _orders_in(self, b: dict, statuses=None) -> list[dict]:
        start = parse_ts(b.get("startTimestamp")) or 0
        end = parse_ts(b.get("endTimestamp")) or 2**62
        out = []
        for o in self.exchange.orders.values():
            t = _created(o)
            if start <= t <= end and o["status"] != 8 and (statuses is None or o["status"] in statuses):
                out.append(FakeExchange.public(o))
        return out

    def _ep_Order_search(self, b: dict, r) -> dict:
        if not self._acct_ok(b):
            return self._err(1, "Account not found", orders=None)
        return self._ok(orders=self._orders_in(b))

    def _ep_Order_searchOpen(self, b: dict, r) -> dict:
        if not self._acct_ok(b):
            return self._err(1, "Account not found", orders=None)
        return self._ok(orders=self._orders_in({}, statuses=(1, 6)))

    def _ep_Order_searchById(self, b: dict, r) -> dict:
        o = self.exchange.orders.get(b.get("orderId"))
        return self._ok(order=FakeExchange.public(o)) if o else self._err(1, "Order not found", order=None)

    def _ep_Order_v2_query(self, b: dict, r) -> dict:
        flt = b.get("filter") or {}
        if not self._acct_ok(b):
            return self._err(1, "Account not found", orders=None)
        st = flt.get("statuses")
        after = parse_ts(flt.get("createdAfter")) or 0
        before = parse_ts(flt.get("createdBefore")) or 2**62
        rows = [FakeExchange.public(o) for o in self.exchange.orders.values()
                if (st is None or o["status"] in st) and (flt.get("contractId") in (None, o["contractId"]))
                and after <= _created(o) <= before]
        rows.sort(key=lambda o: o["id"], reverse=b.get("sortDirection") == 1)
        size, off = int(b.get("pageSize") or 100), int(b.get("pageOffset") or 0)
        extra = {"totalCount": len(rows)} if b.get("includeTotalCount") else {}
        return self._ok(orders=rows[off: off + size], **extra)

    def _ep_Position_searchOpen(self, b: dict, r) -> dict:
        if not self._acct_ok(b):
            return self._err(1, "Account not found", positions=None)
        return self._ok(positions=self.exchange.open_positions())

    def _ep_Position_closeContract(self, b: dict, r) -> dict:
        code, msg = self.exchange.close_position(b, None)
        return self._ok() if code == 0 else self._err(code, msg)

    def _ep_Position_partialCloseContract(self, b: dict, r) -> dict:
        code, msg = self.exchange.close_position(b, int(b.get("size") or 0))
        return self._ok() if code == 0 else self._err(code, msg)

    def _ep_Trade_search(self, b: dict, r) -> dict:
        if not self._acct_ok(b):
            return self._err(1, "Account not found", trades=None)
        start = parse_ts(b.get("startTimestamp")) or 0
        end = parse_ts(b.get("endTimestamp")) or 2**62
        return self._ok(trades=[t for t in self.exchange.trades
                                if start <= _created(t) <= end])

    # ---------------------------------------------------------------- hubs
    async def _negotiate(self, request: web.Request) -> web.Response:
        if request.match_info["hub"] not in ("user", "market") or not self.token_ok(self._bearer(request)):
            return web.Response(status=401)
        if request.match_info["hub"] in self.faults.hubs_down:
            return web.Response(status=503)
        cid = uuid.uuid4().hex
        self.negotiated.add(cid)
        return web.json_response({"connectionId": cid, "connectionToken": cid, "negotiateVersion": 1,
                                  "availableTransports": [{"transport": "WebSockets",
                                                           "transferFormats": ["Text", "Binary"]}]})

    async def _hub(self, request: web.Request) -> web.StreamResponse:
        hub = request.match_info["hub"]
        if hub not in ("user", "market"):
            return web.Response(status=404)
        if hub in self.faults.hubs_down:
            return web.Response(status=503)
        cid = request.query.get("id")
        if cid is not None:
            if cid not in self.negotiated:
                return web.Response(status=404)
            self.negotiated.discard(cid)
        if not self.token_ok(self._bearer(request)):
            return web.Response(status=401)
        ws = web.WebSocketResponse(max_msg_size=4 * 1024 * 1024)
        await ws.prepare(request)
        conn = _HubConn(hub, ws, request)
        conn.last_rx_ns = self.clock.now_ns()
        writer = self._spawn(self._writer(conn))
        pinger = self._spawn(self._pinger(conn))
        handshaken = False
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type == WSMsgType.BINARY:
                        continue
                    break
                conn.last_rx_ns = self.clock.now_ns()
                for rec in [x for x in msg.data.split(RS) if x]:
                    try:
                        d = json.loads(rec)
                    except ValueError:
                        await ws.close()
                        break
                    if not handshaken:
                        if d.get("protocol") != "json":
                            await ws.send_str(json.dumps({"error": f"protocol {d.get('protocol')!r} not supported; use json"}) + RS)
                            await ws.close()
                            break
                        handshaken = True
                        await ws.send_str("{}" + RS)
                        self.connections.append(conn)
                        self.connects[hub] += 1
                        continue
                    self._on_record(conn, d)
        finally:
            if conn in self.connections:
                self.connections.remove(conn)
            writer.cancel()
            pinger.cancel()
        return ws

    async def _writer(self, conn: _HubConn) -> None:
        while True:
            rec = await conn.outbox.get()
            batch = [rec]
            while not conn.outbox.empty():
                batch.append(conn.outbox.get_nowait())
            parts = []
            for r in batch:
                if self.faults.malformed_next > 0:
                    self.faults.malformed_next -= 1
                    parts.append('{"type":1,"target":"GatewayQuote","arguments":[broken')
                else:
                    parts.append(json.dumps(r))
            try:
                await conn.ws.send_str(RS.join(parts) + RS)
            except (ConnectionError, RuntimeError):
                return

    async def _pinger(self, conn: _HubConn) -> None:
        while True:
            await asyncio.sleep(self.ping_interval_s)
            if (self.clock.now_ns() - conn.last_rx_ns) > self.client_timeout_s * NS_PER_SECOND:
                await conn.ws.close()
                return
            conn.outbox.put_nowait({"type": 6})

    def _on_record(self, conn: _HubConn, d: dict) -> None:
        t = d.get("type")
        if t == 6 or t == 7 or t != 1:
            return
        inv, target, args = d.get("invocationId"), d.get("target"), d.get("arguments") or []
        ok = isinstance(target, str) and self._invoke(conn, target, args)
        if inv is not None:
            rec = {"type": 3, "invocationId": inv}
            if not ok:
                rec["error"] = f"An unexpected error occurred invoking '{target}' on the server."
            conn.outbox.put_nowait(rec)

    def _invoke(self, conn: _HubConn, target: str, args: list) -> bool:
        ex = self.exchange
        if conn.hub == "user":
            if target not in USER_METHODS or len(args) != USER_METHODS[target]:
                return False
            if args and (not isinstance(args[0], int) or isinstance(args[0], bool)):
                return False
            kind = target.replace("Unsubscribe", "").replace("Subscribe", "").lower()
            key = (kind, args[0] if args else None)
            if target.startswith("Subscribe"):
                conn.subs.add(key)
            else:
                conn.subs.discard(key)
            return True
        if target not in MARKET_METHODS or len(args) != 1 or not isinstance(args[0], str):
            return False
        if ex.contract(args[0]) is None:
            return False
        kind = {"Quotes": "quotes", "Trades": "trades", "MarketDepth": "depth"}[
            target.replace("Unsubscribe", "").replace("Subscribe", "").replace("Contract", "")]
        key = (kind, args[0])
        if target.startswith("Unsubscribe"):
            conn.subs.discard(key)
            return True
        conn.subs.add(key)
        if kind == "depth":
            conn.outbox.put_nowait({"type": 1, "target": "GatewayDepth", "arguments": [args[0], ex.depth_snapshot()]})
        return True

    def _emit(self, hub: str, target: str, args: list, key: dict) -> None:
        for conn in list(self.connections):
            if conn.hub != hub:
                continue
            if hub == "user":
                kind = USER_KIND[target]
                sub = (kind, None if kind == "accounts" else key["account"])
                if sub not in conn.subs:
                    continue
                a = args
                if self.faults.envelope:
                    a = [{"action": key["action"], "data": args[0]}]
                conn.outbox.put_nowait({"type": 1, "target": target, "arguments": a})
            else:
                if (key["kind"], key["contract"]) not in conn.subs:
                    continue
                a = args
                if target == "GatewayQuote":
                    full = args[1]
                    prev = conn.last_quote.get(args[0])
                    sparse = full if prev is None else {k: v for k, v in full.items()
                                                        if prev.get(k) != v or k in ("symbol", "timestamp")}
                    conn.last_quote[args[0]] = dict(full)
                    a = [args[0], sparse]
                conn.outbox.put_nowait({"type": 1, "target": target, "arguments": a})

    # ---------------------------------------------------------------- test hooks
    async def drop_hub_connections(self, hub: str | None = None, graceful: bool = True) -> int:
        """Disconnect every hub connection (of ``hub``): ``graceful`` sends a close record
        (type 7, allowReconnect) then closes; otherwise the TCP connection is dropped."""
        n = 0
        for c in list(self.connections):
            if hub is not None and c.hub != hub:
                continue
            n += 1
            if c in self.connections:
                self.connections.remove(c)
            if graceful:
                try:
                    await c.ws.send_str(json.dumps({"type": 7, "error": "Server closed the connection.",
                                                    "allowReconnect": True}) + RS)
                except (ConnectionError, RuntimeError):
                    pass
                await c.ws.close()
            else:
                tr = c.request.transport
                if tr is not None:
                    tr.abort()
        return n

    def send_logout(self) -> None:
        """Send ``GatewayLogout`` to every user-hub connection."""
        for c in self.connections:
            if c.hub == "user":
                c.outbox.put_nowait({"type": 1, "target": "GatewayLogout", "arguments": ["Logged in elsewhere"]})
