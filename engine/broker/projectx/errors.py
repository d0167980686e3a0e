"""Typed errors of the ProjectX client and the secret redaction used by every broker log line.

Every REST answer is an envelope ``{..., success, errorCode, errorMessage}``; ``success`` false
becomes an :class:`ApiError` subclass chosen from the per-endpoint errorCode table
(``reference/projectx-api.md`` §3.3, from the Swagger transcription in projectx-rs):

- ``*NotFound`` codes → :class:`NotFoundError`
- login / validate / logout failures → :class:`AuthError`
- ``Pending`` / ``UnknownError`` on a mutation (place, modify, cancel, close) → :class:`OutcomeUnknown`
  (the order may exist: reconcile by ``customTag``, never resend; §3.3 and §10 rule 3)
- every other non-zero code → :class:`RejectedError`

Transport problems: HTTP 401 → :class:`UnauthorizedError`, HTTP 429 → :class:`RateLimitedError`,
5xx / timeouts / connection errors on reads (after back-off) → :class:`TransportError`; on a
mutation any answer that does not prove the request was refused → :class:`OutcomeUnknown`.

Secrets (API key, session tokens) never appear in a message: :func:`redact` replaces every
registered secret with ``****``; :class:`RedactingFilter` does the same for log records.
"""

from __future__ import annotations

import logging
import threading

# Per-endpoint errorCode names, index = code (reference §3.3).
_LOGIN = ["Success", "UserNotFound", "PasswordVerificationFailed", "InvalidCredentials",
          "AppNotFound", "AppVerificationFailed", "InvalidDevice", "AgreementsNotSigned",
          "UnknownError", "ApiSubscriptionNotFound", "ApiKeyAuthenticationDisabled"]
_ACCOUNT_Q = ["Success", "AccountNotFound"]
ERROR_CODES: dict[str, list[str]] = {
    "Auth/loginKey": _LOGIN,
    "Auth/loginApp": _LOGIN,
    "Auth/validate": ["Success", "InvalidSession", "SessionNotFound", "ExpiredToken", "UnknownError"],
    "Auth/logout": ["Success", "InvalidSession", "UnknownError"],
    "Account/search": ["Success"],
    "Contract/available": ["Success"],
    "Contract/search": ["Success"],
    "Contract/searchById": ["Success", "ContractNotFound"],
    "History/retrieveBars": ["Success", "ContractNotFound", "UnitInvalid", "UnitNumberInvalid", "LimitInvalid"],
    "Order/search": _ACCOUNT_Q,
    "Order/searchOpen": _ACCOUNT_Q,
    "Order/v2/query": _ACCOUNT_Q,
    "Position/searchOpen": _ACCOUNT_Q,
    "Trade/search": _ACCOUNT_Q,
    "Order/searchById": ["Success", "OrderNotFound"],
    "Order/place": ["Success", "AccountNotFound", "OrderRejected", "InsufficientFunds",
                    "AccountViolation", "OutsideTradingHours", "OrderPending", "UnknownError",
                    "ContractNotFound", "ContractNotActive", "AccountRejected"],
    "Order/cancel": ["Success", "AccountNotFound", "OrderNotFound", "Rejected", "Pending",
                     "UnknownError", "AccountRejected"],
    "Order/modify": ["Success", "AccountNotFound", "OrderNotFound", "Rejected", "Pending",
                     "UnknownError", "AccountRejected", "ContractNotFound"],
    "Position/closeContract": ["Success", "AccountNotFound", "PositionNotFound", "ContractNotFound",
                               "ContractNotActive", "OrderRejected", "OrderPending", "UnknownError",
                               "AccountRejected"],
    "Position/partialCloseContract": ["Success", "AccountNotFound", "PositionNotFound",
                                      "ContractNotFound", "ContractNotActive", "InvalidCloseSize",
                                      "OrderRejected", "OrderPending", "UnknownError",
                                      "AccountRejected"],
}

MUTATIONS = frozenset({"Order/place", "Order/modify", "Order/cancel", "Position/closeContract",
                       "Position/partialCloseContract"})
"""Money-moving endpoints: never retried (reference §10 rule 3)."""

AMBIGUOUS_NAMES = frozenset({"OrderPending", "Pending", "UnknownError"})


def error_name(endpoint: str, code: int) -> str:
    """Name of ``code`` for ``endpoint`` (``"Code<n>"`` when the table does not know it)."""
    names = ERROR_CODES.get(endpoint, ["Success"])
    return names[code] if 0 <= code < len(names) else f"Code{code}"


# ---------------------------------------------------------------- redaction
_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()


def register_secret(secret: str | None) -> None:
    """Remember a secret (API key, token) so that :func:`redact` and log filters hide it.
    Strings shorter than 6 characters are ignored (they would mangle ordinary text)."""
    if secret and len(secret) >= 6:
        with _SECRETS_LOCK:
            _SECRETS.add(secret)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``****``."""
    if not text:
        return text
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, "****")
    return text


class RedactingFilter(logging.Filter):
    """Logging filter: renders the record's message, redacts registered secrets, freezes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a broken format string is logged as is, but still redacted
            msg = str(record.msg)
        red = redact(msg)
        if red != msg or record.args:
            record.msg, record.args = red, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactingFilter()
REDACTED_LOGGERS = ("engine.broker", "engine.broker.projectx.rest", "engine.broker.projectx.hubs",
                    "engine.broker.fake.server", "engine.broker.fake.exchange", "SignalRCoreClient",
                    "aiohttp.access", "aiohttp.server", "aiohttp.web", "aiohttp.client",
                    "aiohttp.websocket")


def install_redaction(extra: tuple[str, ...] = ()) -> None:
    """Attach the redacting filter to the broker's loggers, signalrcore's and aiohttp's
    (idempotent). A filter on a logger sees the records created by that logger only, hence the
    explicit list."""
    for name in REDACTED_LOGGERS + tuple(extra):
        lg = logging.getLogger(name)
        if _FILTER not in lg.filters:
            lg.addFilter(_FILTER)


install_redaction()


# ---------------------------------------------------------------- errors
class ProjectXError(RuntimeError):
    """Base of every ProjectX client error. ``endpoint`` is e.g. ``"Order/place"``."""

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        super().__init__(redact(f"{endpoint}: {message}" if endpoint else message))
        self.endpoint = endpoint


class TransportError(ProjectXError):
    """Network failure, timeout or HTTP 5xx on a read, after the back-off retries ran out."""

    def __init__(self, message: str, *, endpoint: str = "", status: int | None = None) -> None:
        super().__init__(message, endpoint=endpoint)
        self.status = status


class UnauthorizedError(TransportError):
    """HTTP 401: missing, invalid or expired token (the client re-logs in once before raising)."""


class RateLimitedError(TransportError):
    """HTTP 429. Reads raise it only after the back-off ran out; a mutation raises it at once
    (the gateway refused the request, so nothing was placed)."""

    def __init__(self, message: str, *, endpoint: str = "", retry_after_s: float | None = None) -> None:
        super().__init__(message, endpoint=endpoint, status=429)
        self.retry_after_s = retry_after_s


class ApiError(ProjectXError):
    """``success: false`` in the envelope. ``code`` is the errorCode, ``name`` its per-endpoint
    name (``OrderRejected``), ``server_message`` the errorMessage (redacted), ``payload`` the
    rest of the body (e.g. an ``orderId`` of a rejected record)."""

    def __init__(self, endpoint: str, code: int, server_message: str | None, payload: dict | None = None) -> None:
        self.code = int(code)
        self.name = error_name(endpoint, self.code)
        self.server_message = redact(server_message or "")
        self.payload = dict(payload or {})
        super().__init__(f"errorCode {self.code} ({self.name}): {self.server_message or 'no message'}",
                         endpoint=endpoint)


class AuthError(ApiError):
    """Login, validate or logout refused (bad credentials, expired session...)."""


class NotFoundError(ApiError):
    """Contract, order, position or account not found."""


class RejectedError(ApiError):
    """A definitive refusal: the request did nothing (OrderRejected, InsufficientFunds...)."""


class OutcomeUnknown(ProjectXError):
    """A mutation (place/modify/cancel/close) whose outcome is unknown: timeout, connection
    reset, HTTP 5xx, or errorCode Pending/UnknownError. The order may exist. The caller must
    reconcile (search orders by ``custom_tag``); the client never resends.

    Attributes: ``endpoint``, ``custom_tag`` (None for modify/cancel/close), ``order_id``
    (modify/cancel), ``reason`` (short text), ``code`` (errorCode or None)."""

    def __init__(self, endpoint: str, reason: str, *, custom_tag: str | None = None,
                 order_id: int | None = None, code: int | None = None) -> None:
        self.custom_tag = custom_tag
        self.order_id = order_id
        self.reason = redact(reason)
        self.code = code
        tag = f" customTag={custom_tag!r}" if custom_tag else ""
        oid = f" orderId={order_id}" if order_id is not None else ""
        super().__init__(f"outcome unknown ({self.reason}){tag}{oid}; reconcile, do not resend",
                         endpoint=endpoint)


def api_error_for(endpoint: str, code: int, message: str | None, payload: dict | None) -> ProjectXError:
    """The typed error for a ``success: false`` envelope of ``endpoint``."""
    name = error_name(endpoint, code)
    if endpoint.startswith("Auth/"):
        return AuthError(endpoint, code, message, payload)
    if endpoint in MUTATIONS and name in AMBIGUOUS_NAMES:
        p = payload or {}
        return OutcomeUnknown(endpoint, f"errorCode {code} ({name})", custom_tag=p.get("customTag"),
                              order_id=p.get("orderId"), code=code)
    if name.endswith("NotFound"):
        return NotFoundError(endpoint, code, message, payload)
    return RejectedError(endpoint, code, message, payload)
