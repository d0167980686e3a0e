"""ProjectX REST client on aiohttp (R-PX-1; wire facts in ``reference/projectx-api.md`` §2-§3).

Rules the client enforces:

- Key login (``Auth/loginKey``), then the token is renewed by ``Auth/validate`` once the
  injected :class:`~engine.clock.Clock` says it is within ``renew_margin_s`` of expiry (expiry from
  the JWT ``exp`` claim when readable, else login time + ``token_ttl_s``, 24 h by default). A
  failed validate falls back to a fresh login. An HTTP 401 on any call triggers one re-login and
  one resend: a 401 proves the request was never executed, so this holds for mutations too.
- Client-side rate limits with aiolimiter: ``History/retrieveBars`` ``history_rate`` (50 / 30 s),
  every other authenticated call ``general_rate`` (200 / 60 s); login and ping are not counted.
- Reads back off exponentially on HTTP 429 / 5xx / timeouts / connection errors (``Retry-After``
  honoured), up to ``max_read_retries`` retries, then raise.
- Mutations (place, modify, cancel, close, partial close) are NEVER retried. A timeout, a
  connection error after sending, HTTP 5xx or errorCode Pending/UnknownError raises
  :class:`OutcomeUnknown` carrying the ``customTag``: the caller reconciles with
  :meth:`ProjectXClient.find_orders_by_tag`. HTTP 429 on a mutation raises
  :class:`RateLimitedError` (refused, nothing placed).
- The API key and every token are registered for redaction and never reach a log line or an
  exception message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import threading
from typing import Any, Awaitable, Callable, Sequence

import aiohttp
from aiolimiter import AsyncLimiter

from engine.broker.projectx.enums import BarUnit, OrderStatus, OrderType
from engine.broker.projectx.errors import (
    MUTATIONS, ApiError, AuthError, OutcomeUnknown, ProjectXError, RateLimitedError,
    TransportError, UnauthorizedError, api_error_for, register_secret,
)
from engine.broker.projectx.models import (
    Account, Bar, Bracket, Contract, HistoryBar, Order, Position, Trade, format_ts,
)
from engine.clock import NS_PER_SECOND, Clock

log = logging.getLogger("engine.broker.projectx.rest")

NO_AUTH = frozenset({"Auth/loginKey", "Auth/loginApp"})
HISTORY = "History/retrieveBars"


def jwt_expiry_ns(token: str) -> int | None:
    """The ``exp`` claim (seconds) of a JWT as UTC ns, or None when the token is not a readable
    JWT. The signature is not checked (the server does that)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        pad = "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + pad))
        exp = claims.get("exp")
        return int(float(exp) * NS_PER_SECOND) if exp is not None else None
    except (ValueError, TypeError, AttributeError):
        return None


class ProjectXClient:
    """Async ProjectX REST client. Use as ``async with ProjectXClient(...) as px: await px.login()``.

    Args:
        base_url: REST root, e.g. ``https://api.topstepx.com`` or ``http://127.0.0.1:PORT``
            (plain http is allowed for loopback hosts only; anything else raises ValueError).
        username, api_key: credentials (``PROJECTX_USERNAME`` / ``PROJECTX_API_KEY``).
        clock: the engine clock, used for token-expiry math only.
        history_rate, general_rate: ``(requests, seconds)`` client-side limits.
        request_timeout_s: total time for one HTTP call, seconds.
        token_ttl_s: assumed lifetime of a non-JWT token, seconds (docs: 24 h).
        renew_margin_s: renew this long before expiry, seconds.
        max_read_retries: back-off retries of a read (429/5xx/timeout) before it raises.
        backoff_base_s, backoff_max_s: exponential back-off, seconds (jitter ±20 %).
        sleep: awaitable sleep used for back-off (injected in tests).
    """

    def __init__(self, base_url: str, username: str, api_key: str, clock: Clock, *,
                 history_rate: Sequence[float] = (50, 30), general_rate: Sequence[float] = (200, 60),
                 request_timeout_s: float = 10.0, token_ttl_s: float = 86_400.0,
                 renew_margin_s: float = 600.0, max_read_retries: int = 4,
                 backoff_base_s: float = 0.5, backoff_max_s: float = 8.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if not username or not api_key:
            raise ValueError("ProjectX credentials missing: set PROJECTX_USERNAME and PROJECTX_API_KEY")
        base = base_url.rstrip("/")
        host = base.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
        if base.startswith("http://") and host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
            raise ValueError(f"plain http is allowed for loopback only, got {base!r}; use https")
        self.base_url = base
        self._username = username
        self._api_key = api_key
        register_secret(api_key)
        self.clock = clock
        self._history_limiter = AsyncLimiter(float(history_rate[0]), float(history_rate[1]))
        self._general_limiter = AsyncLimiter(float(general_rate[0]), float(general_rate[1]))
        self.request_timeout_s = float(request_timeout_s)
        self.token_ttl_s = float(token_ttl_s)
        self.renew_margin_s = float(renew_margin_s)
        self.max_read_retries = int(max_read_retries)
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_expiry_ns: int = 0
        self._token_lock = threading.Lock()
        self._auth_lock: asyncio.Lock | None = None
        self.stats = {"requests": 0, "retries": 0, "logins": 0, "validations": 0, "http_429": 0,
                      "http_401": 0, "auth_failures": 0}
        self.auth_failures_in_a_row = 0
        """Authentication failures (a 401 on a call, a refused login or validate) since the last
        successful login/validate (R-LIVE-4)."""
        self.on_auth_failures: Callable[[int, str], None] | None = None
        """Called ``(count, what)`` when the streak reaches 2 (once per streak): the venue alerts."""

    @classmethod
    def from_settings(cls, settings: Any, clock: Clock, *, base_url: str | None = None,
                      **kwargs: Any) -> "ProjectXClient":
        """Build from :class:`engine.config.Settings` (``[projectx]`` + env secrets)."""
        px = settings.projectx
        return cls(base_url or px.api_url, settings.secrets.projectx_username,
                   settings.secrets.projectx_api_key, clock, history_rate=px.history_rate,
                   general_rate=px.general_rate, request_timeout_s=px.request_timeout_s,
                   renew_margin_s=px.token_renew_margin_s, **kwargs)

    def __repr__(self) -> str:
        return f"ProjectXClient({self.base_url!r}, user={self._username!r}, token={'set' if self._token else 'none'})"

    # ------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> "ProjectXClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.request_timeout_s),
                headers={"Accept": "application/json"})
        return self._session

    async def close(self) -> None:
        """Close the HTTP session (the token is kept; call :meth:`logout` to end it)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    # ------------------------------------------------------------ token
    def current_token(self) -> str:
        """The current session token (thread-safe; hubs call it on every (re)connect).
        Raises :class:`ProjectXError` before the first login."""
        with self._token_lock:
            if not self._token:
                raise ProjectXError("not logged in: call login() first")
            return self._token

    @property
    def token_expiry_ns(self) -> int:
        """UTC ns at which the current token expires (0 before login)."""
        return self._token_expiry_ns

    def _set_token(self, token: Any) -> None:
        if not isinstance(token, str) or not token:
            raise AuthError("Auth/loginKey", 8, "gateway returned an empty token")
        register_secret(token)
        exp = jwt_expiry_ns(token)
        now = self.clock.now_ns()
        if exp is None or exp <= now:
            exp = now + int(self.token_ttl_s * NS_PER_SECOND)
        with self._token_lock:
            self._token = token
            self._token_expiry_ns = exp

    def _lock(self) -> asyncio.Lock:
        if self._auth_lock is None:
            self._auth_lock = asyncio.Lock()
        return self._auth_lock

    async def login(self) -> None:
        """``Auth/loginKey`` with the configured user name and API key. Raises :class:`AuthError`
        (bad credentials: errorCode 3 InvalidCredentials etc.) or :class:`TransportError`."""
        try:
            body = await self._call("Auth/loginKey", {"userName": self._username, "apiKey": self._api_key})
            self._set_token(body.get("token"))
        except (AuthError, UnauthorizedError) as exc:
            self._auth_failed(f"login refused: {exc}")
            raise
        self.auth_failures_in_a_row = 0
        self.stats["logins"] += 1
        log.info("ProjectX login ok (user %s), token valid for %.0f s", self._username,
                 (self._token_expiry_ns - self.clock.now_ns()) / NS_PER_SECOND)

    async def validate(self) -> None:
        """``Auth/validate``: swap to ``newToken``. Raises :class:`AuthError` on a dead session."""
        try:
            body = await self._call("Auth/validate", {})
        except (AuthError, UnauthorizedError) as exc:
            self._auth_failed(f"validate refused: {exc}")
            raise
        new = body.get("newToken") or self.current_token()
        self._set_token(new)
        self.auth_failures_in_a_row = 0
        self.stats["validations"] += 1
        log.info("ProjectX token renewed")

    async def logout(self) -> None:
        """``Auth/logout``; forgets the token."""
        try:
            await self._call("Auth/logout", {})
        finally:
            with self._token_lock:
                self._token = None
                self._token_expiry_ns = 0

    async def ensure_token(self) -> str:
        """Log in if needed, renew if within ``renew_margin_s`` of expiry (clock time); returns
        the token. A failing validate falls back to a fresh login."""
        async with self._lock():
            if not self._token:
                await self.login()
            elif self.clock.now_ns() >= self._token_expiry_ns - int(self.renew_margin_s * NS_PER_SECOND):
                try:
                    await self.validate()
                except (AuthError, UnauthorizedError) as exc:
                    log.warning("token validate failed (%s); logging in again", exc)
                    await self.login()
            return self.current_token()

    def _auth_failed(self, what: str) -> None:
        """Count one authentication failure; at the second in a row call
        :attr:`on_auth_failures` (R-LIVE-4: re-authenticate, alert after two failures)."""
        self.auth_failures_in_a_row += 1
        self.stats["auth_failures"] += 1
        if self.auth_failures_in_a_row == 2 and self.on_auth_failures is not None:
            try:
                self.on_auth_failures(self.auth_failures_in_a_row, what)
            except Exception:
                log.exception("auth-failure callback failed")

    async def _relogin(self, stale: str | None) -> None:
        async with self._lock():
            if self._token and self._token != stale:
                return  # someone already renewed
            await self.login()

    # ------------------------------------------------------------ transport
    async def ping(self) -> str:
        """``GET /api/Status/ping`` → ``"pong"``."""
        async with self._http().get(f"{self.base_url}/api/Status/ping") as resp:
            if resp.status != 200:
                raise TransportError(f"HTTP {resp.status}", endpoint="Status/ping", status=resp.status)
            return (await resp.text()).strip().strip('"')

    async def _call(self, endpoint: str, payload: dict, *, custom_tag: str | None = None,
                    order_id: int | None = None) -> dict:
        """POST ``/api/<endpoint>`` with the policy of the module docstring; returns the body."""
        mutation = endpoint in MUTATIONS
        attempt = 0
        reauthed = False
        while True:
            token = None
            if endpoint not in NO_AUTH:
                token = await self.ensure_token() if not endpoint.startswith("Auth/") else self.current_token()
                limiter = self._history_limiter if endpoint == HISTORY else self._general_limiter
                await limiter.acquire()
            headers = {"Content-Type": "application/json"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            self.stats["requests"] += 1
            retry_after: float | None = None
            try:
                async with self._http().post(f"{self.base_url}/api/{endpoint}", json=payload,
                                             headers=headers) as resp:
                    status = resp.status
                    text = await resp.text()
                    if status == 429:
                        self.stats["http_429"] += 1
                        ra = resp.headers.get("Retry-After")
                        retry_after = float(ra) if ra and ra.replace(".", "", 1).isdigit() else None
            except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if mutation:
                    log.error("%s: %s; outcome unknown (customTag=%s)", endpoint, reason, custom_tag)
                    raise OutcomeUnknown(endpoint, reason, custom_tag=custom_tag, order_id=order_id) from None
                if attempt < self.max_read_retries:
                    attempt += 1
                    await self._backoff(endpoint, attempt, None, reason)
                    continue
                raise TransportError(reason, endpoint=endpoint) from None

            if status == 401:
                self.stats["http_401"] += 1
                if not endpoint.startswith("Auth/"):   # Auth/* failures are counted by login/validate
                    self._auth_failed(f"{endpoint}: HTTP 401")
                if endpoint.startswith("Auth/") or reauthed:
                    raise UnauthorizedError("HTTP 401 (token rejected)", endpoint=endpoint, status=401)
                log.warning("%s: HTTP 401, logging in again and resending once", endpoint)
                reauthed = True
                await self._relogin(token)
                continue
            if status == 429:
                if mutation:
                    raise RateLimitedError("HTTP 429: refused by the gateway rate limit, not placed",
                                           endpoint=endpoint, retry_after_s=retry_after)
                if attempt < self.max_read_retries:
                    attempt += 1
                    await self._backoff(endpoint, attempt, retry_after, "HTTP 429")
                    continue
                raise RateLimitedError(f"HTTP 429 after {attempt} retries", endpoint=endpoint,
                                       retry_after_s=retry_after)
            if status >= 500:
                if mutation:
                    raise OutcomeUnknown(endpoint, f"HTTP {status}", custom_tag=custom_tag, order_id=order_id)
                if attempt < self.max_read_retries:
                    attempt += 1
                    await self._backoff(endpoint, attempt, None, f"HTTP {status}")
                    continue
                raise TransportError(f"HTTP {status} after {attempt} retries", endpoint=endpoint, status=status)
            if status != 200:
                raise TransportError(f"HTTP {status}", endpoint=endpoint, status=status)
            if endpoint not in NO_AUTH:
                self.auth_failures_in_a_row = 0   # the token was accepted: authentication works
            try:
                body = json.loads(text)
            except ValueError:
                if mutation:
                    raise OutcomeUnknown(endpoint, "response is not JSON", custom_tag=custom_tag,
                                         order_id=order_id) from None
                raise TransportError("response is not JSON", endpoint=endpoint, status=status) from None
            if not isinstance(body, dict) or "success" not in body:
                if mutation:
                    raise OutcomeUnknown(endpoint, "response has no success field",
                                         custom_tag=custom_tag, order_id=order_id)
                raise TransportError("response has no success field", endpoint=endpoint, status=status)
            code = int(body.get("errorCode") or 0)
            if body["success"] is not True or code != 0:
                if body["success"] is True or code == 0:
                    err_code = code if code else 7 if mutation else -1
                    if mutation:
                        raise OutcomeUnknown(endpoint, "inconsistent success/errorCode",
                                             custom_tag=custom_tag, order_id=order_id, code=err_code)
                    raise TransportError("inconsistent success/errorCode", endpoint=endpoint, status=status)
                payload_ctx = dict(body)
                if custom_tag is not None:
                    payload_ctx.setdefault("customTag", custom_tag)
                if order_id is not None:
                    payload_ctx.setdefault("orderId", order_id)
                raise api_error_for(endpoint, code, body.get("errorMessage"), payload_ctx)
            return body

    async def _backoff(self, endpoint: str, attempt: int, retry_after: float | None, why: str) -> None:
        self.stats["retries"] += 1
        delay = min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempt - 1)))
        delay *= random.uniform(0.8, 1.2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        log.warning("%s: %s, retry %d/%d in %.2f s", endpoint, why, attempt, self.max_read_retries, delay)
        await self._sleep(delay)

    # ------------------------------------------------------------ reads
    async def search_accounts(self, only_active: bool = True) -> list[Account]:
        """``Account/search`` → accounts."""
        body = await self._call("Account/search", {"onlyActiveAccounts": bool(only_active)})
        return [Account.from_json(a) for a in body.get("accounts") or []]

    async def search_contracts(self, search_text: str, live: bool = False) -> list[Contract]:
        """``Contract/search`` (at most 20 rows)."""
        body = await self._call("Contract/search", {"searchText": search_text, "live": bool(live)})
        return [Contract.from_json(c) for c in body.get("contracts") or []]

    async def contract_by_id(self, contract_id: str) -> Contract:
        """``Contract/searchById``; accepts ``{contract}`` or the older ``{contracts:[..]}``.
        Raises :class:`NotFoundError`."""
        body = await self._call("Contract/searchById", {"contractId": contract_id})
        c = body.get("contract")
        if c is None and body.get("contracts"):
            c = body["contracts"][0]
        if c is None:
            raise ApiError("Contract/searchById", 1, f"no contract {contract_id!r} in the answer")
        return Contract.from_json(c)

    async def available_contracts(self, live: bool = False) -> list[Contract]:
        """``Contract/available``."""
        body = await self._call("Contract/available", {"live": bool(live)})
        return [Contract.from_json(c) for c in body.get("contracts") or []]

    async def resolve_front_month(self, symbol_id: str = "F.US.MES", search_text: str = "MES",
                                  live: bool = False) -> Contract:
        """The active contract of ``symbol_id`` (reference §5: search, then pick
        ``symbolId == symbol_id and activeContract``; names are never parsed). Raises
        :class:`ProjectXError` when none or several match."""
        rows = await self.search_contracts(search_text, live)
        hits = [c for c in rows if c.symbol_id == symbol_id and c.active]
        if len(hits) != 1:
            raise ProjectXError(
                f"front month of {symbol_id}: {len(hits)} active contracts among "
                f"{[(c.id, c.symbol_id, c.active) for c in rows]}", endpoint="Contract/search")
        return hits[0]

    async def retrieve_bars(self, contract_id: str, start_ns: int, end_ns: int, *,
                            unit: int = BarUnit.MINUTE, unit_number: int = 1, limit: int = 20_000,
                            include_partial_bar: bool = False, live: bool = False) -> list[HistoryBar]:
        """``History/retrieveBars`` for ``[start_ns, end_ns]`` (UTC ns); returns bars OLDEST
        first (the gateway sends newest first). At most ``limit`` ≤ 20,000 bars."""
        body = await self._call(HISTORY, {
            "contractId": contract_id, "live": bool(live), "startTime": format_ts(start_ns),
            "endTime": format_ts(end_ns), "unit": int(unit), "unitNumber": int(unit_number),
            "limit": int(limit), "includePartialBar": bool(include_partial_bar)})
        bars = [Bar.from_json(b) for b in body.get("bars") or []]
        bars.sort(key=lambda b: b.ts_ns)
        return bars

    async def search_orders(self, account_id: int, start_ns: int, end_ns: int | None = None) -> list[Order]:
        """``Order/search``: orders created in the window (status-8 children are NOT listed)."""
        body = await self._search_window("Order/search", account_id, start_ns, end_ns)
        return [Order.from_json(o) for o in body.get("orders") or []]

    async def _search_window(self, endpoint: str, account_id: int, start_ns: int,
                             end_ns: int | None) -> dict:
        """The body of a search ``endpoint`` over ``[start_ns, end_ns]`` (UTC ns; None = open
        end) of an account: ``Order/search`` and ``Trade/search`` take the same window."""
        p: dict[str, Any] = {"accountId": int(account_id), "startTimestamp": format_ts(start_ns)}
        if end_ns is not None:
            p["endTimestamp"] = format_ts(end_ns)
        return await self._call(endpoint, p)

    async def search_open_orders(self, account_id: int) -> list[Order]:
        """``Order/searchOpen`` (excludes Suspended bracket children: use :meth:`working_orders`)."""
        body = await self._call("Order/searchOpen", {"accountId": int(account_id)})
        return [Order.from_json(o) for o in body.get("orders") or []]

    async def order_by_id(self, account_id: int, order_id: int) -> Order:
        """``Order/searchById``. Raises :class:`NotFoundError`."""
        body = await self._call("Order/searchById", {"accountId": int(account_id), "orderId": int(order_id)})
        return Order.from_json(body["order"])

    async def query_orders(self, account_id: int, *, statuses: Sequence[int] | None = None,
                           contract_id: str | None = None, created_after_ns: int | None = None,
                           created_before_ns: int | None = None, page_size: int = 200,
                           max_pages: int = 50) -> list[Order]:
        """``Order/v2/query`` (the only view that shows status 8), all pages, oldest first."""
        flt: dict[str, Any] = {"accountId": int(account_id)}
        if statuses is not None:
            flt["statuses"] = [int(s) for s in statuses]
        if contract_id is not None:
            flt["contractId"] = contract_id
        if created_after_ns is not None:
            flt["createdAfter"] = format_ts(created_after_ns)
        if created_before_ns is not None:
            flt["createdBefore"] = format_ts(created_before_ns)
        out: list[Order] = []
        for page in range(max_pages):
            body = await self._call("Order/v2/query", {
                "filter": flt, "pageSize": page_size, "pageOffset": page * page_size,
                "sortBy": 1, "sortDirection": 0, "includeTotalCount": True})
            rows = body.get("orders") or []
            out.extend(Order.from_json(o) for o in rows)
            total = body.get("totalCount")
            if len(rows) < page_size or (total is not None and len(out) >= int(total)):
                return out
        raise ProjectXError(f"more than {max_pages} pages of orders", endpoint="Order/v2/query")

    async def working_orders(self, account_id: int, contract_id: str | None = None) -> list[Order]:
        """Every working order incl. Suspended children: v2 query with statuses 1, 6, 7, 8
        (reference §3.1 "complete working-order reconciliation")."""
        return await self.query_orders(account_id, statuses=[1, 6, 7, 8], contract_id=contract_id)

    async def find_orders_by_tag(self, account_id: int, custom_tag: str, since_ns: int) -> list[Order]:
        """Orders whose ``customTag`` is ``custom_tag`` or its ``-SL``/``-TP`` children, created
        since ``since_ns``: how an :class:`OutcomeUnknown` placement is reconciled."""
        tags = {custom_tag, f"{custom_tag}-SL", f"{custom_tag}-TP"}
        found = {o.id: o for o in await self.search_orders(account_id, since_ns) if o.custom_tag in tags}
        for o in await self.query_orders(account_id, created_after_ns=since_ns):
            if o.custom_tag in tags:
                found[o.id] = o
        return sorted(found.values(), key=lambda o: o.id)

    async def search_open_positions(self, account_id: int) -> list[Position]:
        """``Position/searchOpen``: one net row per contract."""
        body = await self._call("Position/searchOpen", {"accountId": int(account_id)})
        return [Position.from_json(p) for p in body.get("positions") or []]

    async def search_trades(self, account_id: int, start_ns: int, end_ns: int | None = None) -> list[Trade]:
        """``Trade/search``: fills in the window."""
        body = await self._search_window("Trade/search", account_id, start_ns, end_ns)
        return [Trade.from_json(t) for t in body.get("trades") or []]

    # ------------------------------------------------------------ mutations (never retried)
    async def place_order(self, account_id: int, contract_id: str, type: int, side: int, size: int, *,
                          custom_tag: str, limit_price: float | None = None,
                          stop_price: float | None = None, trail_price: float | None = None,
                          stop_loss_bracket: Bracket | None = None,
                          take_profit_bracket: Bracket | None = None) -> int:
        """``Order/place`` → the entry's ``orderId``. ``custom_tag`` is required (unique per
        account, ≤ 60 chars, so that an unknown outcome can be reconciled). Raises
        :class:`RejectedError` (errorCode 2 etc., ``payload['orderId']`` may hold a rejected
        record), :class:`OutcomeUnknown` (timeout/5xx/Pending/UnknownError), :class:`RateLimitedError`."""
        if not custom_tag or len(custom_tag) > 60:
            raise ValueError(f"custom_tag {custom_tag!r}: required, at most 60 characters")
        if size <= 0:
            raise ValueError(f"size {size}: must be ≥ 1")
        p: dict[str, Any] = {"accountId": int(account_id), "contractId": contract_id, "type": int(type),
                             "side": int(side), "size": int(size), "customTag": custom_tag}
        if limit_price is not None:
            p["limitPrice"] = float(limit_price)
        if stop_price is not None:
            p["stopPrice"] = float(stop_price)
        if trail_price is not None:
            p["trailPrice"] = float(trail_price)
        if stop_loss_bracket is not None:
            p["stopLossBracket"] = stop_loss_bracket.to_json()
        if take_profit_bracket is not None:
            p["takeProfitBracket"] = take_profit_bracket.to_json()
        body = await self._call("Order/place", p, custom_tag=custom_tag)
        oid = body.get("orderId")
        if oid is None:
            raise OutcomeUnknown("Order/place", "success without orderId", custom_tag=custom_tag)
        return int(oid)

    async def modify_order(self, account_id: int, order_id: int, *, size: int | None = None,
                           limit_price: float | None = None, stop_price: float | None = None,
                           trail_price: float | None = None) -> None:
        """``Order/modify`` (absolute prices). Never retried."""
        p: dict[str, Any] = {"accountId": int(account_id), "orderId": int(order_id)}
        for k, v in (("size", size), ("limitPrice", limit_price), ("stopPrice", stop_price),
                     ("trailPrice", trail_price)):
            if v is not None:
                p[k] = v
        await self._call("Order/modify", p, order_id=int(order_id))

    async def cancel_order(self, account_id: int, order_id: int) -> None:
        """``Order/cancel``. Never retried; a cancel is only final once the stream/REST shows
        status 3."""
        await self._call("Order/cancel", {"accountId": int(account_id), "orderId": int(order_id)},
                         order_id=int(order_id))

    async def close_position(self, account_id: int, contract_id: str) -> None:
        """``Position/closeContract`` (market). Does NOT cancel bracket legs: cancel every
        working order on the contract afterwards (reference §6.9)."""
        await self._call("Position/closeContract", {"accountId": int(account_id), "contractId": contract_id})

    async def partial_close_position(self, account_id: int, contract_id: str, size: int) -> None:
        """``Position/partialCloseContract`` for ``size`` contracts (market)."""
        await self._call("Position/partialCloseContract",
                         {"accountId": int(account_id), "contractId": contract_id, "size": int(size)})

    async def cancel_all_working(self, account_id: int, contract_id: str, *,
                                 keep_market: bool = True) -> list[int]:
        """Cancel every working order (statuses 1, 6, 7, 8) on ``contract_id``, all at once
        (concurrent requests); returns the ids cancel was sent for. ``keep_market``: a working
        market order is an exit in flight (a flatten's close): it is not cancelled. Errors on
        single orders are logged and skipped (an order may already be gone); the caller confirms
        through the stream or REST."""
        todo = [o for o in await self.working_orders(account_id, contract_id)
                if o.status != OrderStatus.PENDING_CANCELLATION
                and not (keep_market and o.type == OrderType.MARKET)]

        async def one(o):
            try:
                await self.cancel_order(account_id, o.id)
                return o.id
            except ApiError as exc:
                log.warning("cancel of order %d after flatten: %s", o.id, exc)
                return None
        # concurrently: n slow cancels take the time of one, not n (issue 15 item 5)
        done = await asyncio.gather(*(one(o) for o in todo))
        return [i for i in done if i is not None]
