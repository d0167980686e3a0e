"""Alerts (R-LIVE-5): console/log, generic webhook, Slack, Discord (aiohttp) and e-mail (smtplib),
with priority routing, throttling and de-duplication; delivery never blocks and never raises
into the caller.

Rules:

- Priorities: ``info`` < ``warning`` < ``critical``. Every accepted alert is logged at once on
  the caller's thread through ``engine.logs.get_logger("alerts")`` (INFO / WARNING / CRITICAL).
  Routing (default :data:`DEFAULT_ROUTES`): info → log only; warning and critical → log + every
  CONFIGURED sink (a sink whose URL / address is empty in ``[alerts]`` is off).
- Throttling: the same ``kind`` is delivered at most once per ``throttle_s`` (``[alerts]``,
  60 s), measured on the injected clock. Exception: a HIGHER priority than the last delivered
  alert of that kind passes at once (a warning storm does not hide the critical). Suppressed
  alerts are counted and the next delivered alert of that kind says ``(+N suppressed)``.
- De-duplication: an identical ``(kind, message)`` is dropped for ``dedup_s`` (600 s) after it
  was delivered, even when the kind's throttle window has passed.
- Suppressed alerts are logged at DEBUG only.
- Delivery runs on one background thread (``alerts-delivery``) with its own asyncio loop and
  one aiohttp session. The hand-over is a bounded ``queue.Queue`` (``queue_size``, 256): when
  it is full the alert is dropped, counted in ``stats["dropped"]`` and logged; :meth:`send`
  returns at once in every case. Each HTTP POST has a ``timeout_s`` limit (5 s); e-mail uses
  ``smtplib.SMTP(host, port, timeout=timeout_s)`` on the delivery thread. A failing sink (HTTP
  status ≥ 300, timeout, refused connection, SMTP error) is logged with the sink's NAME only —
  webhook URLs carry secrets and are never logged — and counted in ``stats["failed"]``.
- Payloads: webhook ``{"source": "mes-console", "priority", "kind", "message", "ts_ns",
  "ts"}``; Slack ``{"text"}``; Discord ``{"content"}`` (≤ 2000 characters); e-mail subject
  ``[mes-console] <PRIORITY> <kind>``, body the message and the UTC time.
- :meth:`send` never raises: an unknown priority is logged as an error and treated as
  ``critical`` (an alert must not be lost to a typo).
"""

from __future__ import annotations

import asyncio
import queue
import smtplib
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import aiohttp

from engine.clock import NS_PER_SECOND, Clock, to_datetime
from engine.logs import get_logger

PRIORITIES = {"info": 0, "warning": 1, "critical": 2}
SINKS = ("log", "webhook", "slack", "discord", "email")
DEFAULT_ROUTES: dict[str, tuple[str, ...]] = {
    "info": ("log",),
    "warning": SINKS,
    "critical": SINKS,
}
"""Priority → sinks. "log" is always applied, whatever the route says."""

log = get_logger("alerts")
_LEVEL = {"info": 20, "warning": 30, "critical": 50}


@dataclass(frozen=True)
class Alert:
    """One alert handed to the delivery thread. ``ts_ns`` UTC ns from the router's clock;
    ``suppressed`` how many alerts of the kind were held back since the last delivery."""

    priority: str
    kind: str
    message: str
    ts_ns: int
    suppressed: int = 0

    def text(self) -> str:
        extra = f" (+{self.suppressed} suppressed)" if self.suppressed else ""
        return f"[{self.priority.upper()}] {self.kind}: {self.message}{extra}"


_STOP = object()


class AlertRouter:
    """Routes alerts to the log and the configured sinks (see the module docstring).

    Args:
        cfg: :class:`engine.config.AlertsConfig` (``webhook_url``, ``slack_webhook_url``,
            ``discord_webhook_url``, ``email_to`` (comma-separated), ``smtp_host`` (``host`` or
            ``host:port``), ``throttle_s``).
        clock: the engine clock (throttling, de-duplication, alert time).
        routes: priority → sink names (default :data:`DEFAULT_ROUTES`).
        dedup_s: identical (kind, message) window, seconds.
        queue_size: bounded hand-over queue length.
        timeout_s: per HTTP POST / SMTP connection, seconds.
        smtp_port: used when ``smtp_host`` has no ``:port`` (25).
        email_from: sender address.
        start: start the delivery thread now (else on the first delivery).

    Raises ``ValueError`` for an unknown sink or priority in ``routes``, or e-mail configured
    without ``smtp_host``.
    """

    def __init__(self, cfg: Any, clock: Clock, *, routes: dict | None = None, dedup_s: float = 600.0,
                 queue_size: int = 256, timeout_s: float = 5.0, smtp_port: int = 25,
                 email_from: str = "mes-console@localhost", start: bool = True) -> None:
        self.clock = clock
        self.throttle_ns = int(float(cfg.throttle_s) * NS_PER_SECOND)
        self.dedup_ns = int(float(dedup_s) * NS_PER_SECOND)
        self.timeout_s = float(timeout_s)
        self.urls = {"webhook": cfg.webhook_url, "slack": cfg.slack_webhook_url,
                     "discord": cfg.discord_webhook_url}
        self.email_to = [a.strip() for a in (cfg.email_to or "").split(",") if a.strip()]
        host = cfg.smtp_host or ""
        if self.email_to and not host:
            raise ValueError("[alerts] email_to is set but smtp_host is empty")
        if ":" in host:
            host, port = host.rsplit(":", 1)
            smtp_port = int(port)
        self.smtp_host, self.smtp_port, self.email_from = host, int(smtp_port), email_from
        routes = dict(DEFAULT_ROUTES if routes is None else routes)
        for p, sinks in routes.items():
            if p not in PRIORITIES:
                raise ValueError(f"alert routes: unknown priority {p!r}; allowed {list(PRIORITIES)}")
            bad = [s for s in sinks if s not in SINKS]
            if bad:
                raise ValueError(f"alert routes[{p!r}]: unknown sinks {bad}; allowed {list(SINKS)}")
        self.routes = {p: tuple(routes.get(p, ("log",))) for p in PRIORITIES}
        self._q: "queue.Queue" = queue.Queue(maxsize=int(queue_size))
        self._lock = threading.Lock()
        self._last: dict[str, tuple[int, int]] = {}          # kind → (ts_ns, priority rank)
        self._held: dict[str, int] = {}                      # kind → suppressed count
        self._recent: dict[tuple[str, str], int] = {}        # (kind, message) → ts_ns delivered
        self._idle = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self.stats = {"accepted": 0, "throttled": 0, "deduplicated": 0, "dropped": 0, "sent": 0,
                      "failed": 0}
        self.sent: dict[str, int] = {s: 0 for s in SINKS}
        self._channels: list[tuple[CommandChannel, int, frozenset]] = []   # issue 26: two-way channels
        if start:
            self._ensure_thread()

    def add_channel(self, channel: "CommandChannel", min_priority: str = "warning",
                    kinds: tuple[str, ...] = ()) -> None:
        """Also deliver every accepted alert of ``min_priority`` or higher, and every alert whose
        kind is in ``kinds`` whatever its priority, to ``channel`` (:meth:`CommandChannel.broadcast`,
        on the caller's thread: a channel's broadcast queues and returns at once). Issue 26: the
        Telegram bot receives the warnings, the criticals, the watchdog and the heartbeat."""
        if min_priority not in PRIORITIES:
            raise ValueError(f"unknown priority {min_priority!r}; allowed {list(PRIORITIES)}")
        self._channels.append((channel, PRIORITIES[min_priority], frozenset(kinds)))

    @property
    def configured(self) -> list[str]:
        """Sinks that are on (log always)."""
        out = ["log"] + [k for k, u in self.urls.items() if u]
        return out + (["email"] if self.email_to else [])

    # ------------------------------------------------------------ caller side
    def send(self, priority: str, kind: str, message: str) -> bool:
        """Raise an alert. Returns True when it was accepted (logged, and queued for the
        external sinks its priority routes to), False when throttled, de-duplicated or dropped
        (queue full). Never blocks on I/O and never raises."""
        try:
            return self._send(priority, kind, message)
        except Exception:  # an alert must never break trading
            try:
                log.exception("alert %s/%s could not be processed", priority, kind)
            except Exception:
                pass
            return False

    def _send(self, priority: str, kind: str, message: str) -> bool:
        if priority not in PRIORITIES:
            log.error("alert %s: unknown priority %r, treated as critical", kind, priority)
            priority = "critical"
        now = self.clock.now_ns()
        rank = PRIORITIES[priority]
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last[0] < self.throttle_ns and rank <= last[1]:
                self._held[kind] = self._held.get(kind, 0) + 1
                self.stats["throttled"] += 1
                log.debug("alert %s throttled: %s", kind, message)
                return False
            seen = self._recent.get((kind, message))
            if seen is not None and now - seen < self.dedup_ns:
                self.stats["deduplicated"] += 1
                log.debug("alert %s duplicate dropped: %s", kind, message)
                return False
            self._last[kind] = (now, rank)
            self._recent[(kind, message)] = now
            if len(self._recent) > 4096:
                cut = now - self.dedup_ns
                self._recent = {k: t for k, t in self._recent.items() if t >= cut}
            alert = Alert(priority, kind, message, now, self._held.pop(kind, 0))
            self.stats["accepted"] += 1
        log.log(_LEVEL[priority], "ALERT %s", alert.text(), extra={"event": "alert", "kind": kind,
                                                                    "priority": priority})
        for ch, lo, kinds in self._channels:  # issue 26: two-way channels (Telegram)
            if rank >= lo or kind in kinds:
                try:
                    ch.broadcast(alert.text())
                except Exception:
                    log.exception("alert channel %s failed", getattr(ch, "name", "?"))
        sinks = [s for s in self.routes[priority] if s != "log" and s in self.configured]
        if not sinks or self._closed:
            return True
        self._ensure_thread()
        with self._idle:
            self._pending += 1
        try:
            self._q.put_nowait((alert, sinks))
        except queue.Full:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()
            self.stats["dropped"] += 1
            log.error("alert queue full (%d): %s not delivered to %s", self._q.maxsize, kind, sinks)
            return False
        return True

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued alert was attempted; True when done within ``timeout_s``."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout_s``), then stop the delivery thread.
        Idempotent; later alerts are logged only."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            try:
                self._q.put(_STOP, timeout=timeout_s)
            except queue.Full:
                log.error("alert queue still full at close: undelivered alerts are lost")
            self._thread.join(timeout_s)
            self._thread = None

    # ------------------------------------------------------------ delivery thread
    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="alerts-delivery", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        session: list = [None]
        try:
            while True:
                item = self._q.get()
                if item is _STOP:
                    break
                alert, sinks = item
                try:
                    loop.run_until_complete(self._deliver(alert, sinks, session))
                except Exception:
                    log.exception("alert delivery crashed for %s", alert.kind)
                finally:
                    with self._idle:
                        self._pending -= 1
                        self._idle.notify_all()
        finally:
            if session[0] is not None:
                loop.run_until_complete(session[0].close())
            loop.close()

    async def _deliver(self, alert: Alert, sinks: list[str], session: list) -> None:
        if session[0] is None:
            session[0] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        jobs = []
        for s in sinks:
            if s == "email":
                jobs.append(self._guard(s, asyncio.to_thread(self._email, alert)))
            else:
                jobs.append(self._guard(s, self._post(session[0], self.urls[s], self._payload(s, alert))))
        await asyncio.gather(*jobs)

    async def _guard(self, sink: str, coro) -> None:
        try:
            await coro
            self.sent[sink] += 1
            self.stats["sent"] += 1
        except Exception as exc:
            self.stats["failed"] += 1
            log.warning("alert sink %s failed: %s", sink, _describe(exc))

    @staticmethod
    def _payload(sink: str, alert: Alert) -> dict:
        text = alert.text()
        if sink == "slack":
            return {"text": text}
        if sink == "discord":
            return {"content": text[:2000]}
        return {"source": "mes-console", "priority": alert.priority, "kind": alert.kind,
                "message": alert.message, "suppressed": alert.suppressed, "ts_ns": alert.ts_ns,
                "ts": to_datetime(alert.ts_ns).isoformat(timespec="milliseconds")}

    @staticmethod
    async def _post(session: aiohttp.ClientSession, url: str, payload: dict) -> None:
        async with session.post(url, json=payload) as resp:
            if resp.status >= 300:
                raise _SinkError(f"HTTP {resp.status}")

    def _email(self, alert: Alert) -> None:
        msg = EmailMessage()
        msg["Subject"] = f"[mes-console] {alert.priority.upper()} {alert.kind}"
        msg["From"] = self.email_from
        msg["To"] = ", ".join(self.email_to)
        msg.set_content(f"{alert.text()}\n\ntime (UTC): {to_datetime(alert.ts_ns).isoformat()}\n")
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout_s) as smtp:
            smtp.send_message(msg)


# ---------------------------------------------------------------- two-way channels (issue 26)
class CommandChannel:
    """A two-way transport for remote control (issue 26; Telegram:
    :class:`engine.remote.telegram.TelegramChannel`). Where Telegram is not wanted, another
    transport subclasses this and is handed to :func:`engine.remote.start_remote` (or to an
    :class:`AlertRouter` with :meth:`AlertRouter.add_channel`):

    - :meth:`start` ``(handler)``: begin receiving on a thread of its own; for every incoming
      text call ``handler(chat_id: int, text: str) -> str | None``
      (:meth:`engine.remote.control.RemoteController.handle`, which applies the allow-list,
      journals the action and waits for the broker) and send a non-None answer back to that
      chat. It must never raise into the caller; a lost connection is retried by the channel
      and never reaches the session;
    - :meth:`broadcast` ``(text)``: send ``text`` to every allowed chat (alerts, heartbeat,
      watchdog); returns at once, never raises;
    - :meth:`close`: stop receiving (idempotent).
    """

    name = "channel"

    def start(self, handler: Any) -> None:
        raise NotImplementedError

    def broadcast(self, text: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _SinkError(RuntimeError):
    """A sink answered with a failure status."""


def _describe(exc: BaseException) -> str:
    """Exception text without URLs (webhook URLs are secrets)."""
    if isinstance(exc, _SinkError):
        return str(exc)
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection refused/unreachable"
    if isinstance(exc, (smtplib.SMTPException, OSError)):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__
