"""Telegram transport of the remote control (issue 26), on python-telegram-bot's :class:`telegram.Bot`.

One daemon thread (``remote-telegram``) runs its own asyncio loop: a long-poll ``getUpdates``
loop (``[remote] poll_timeout_s``), each message handed to the controller on a worker thread
(``asyncio.to_thread``: a ``/halt`` waiting for the broker never blocks the polling), the answer
sent with ``sendMessage``. Nothing here touches the engine: the session keeps trading and
protecting whatever the bot does.

- The token comes from the environment variable ``MES_TELEGRAM_TOKEN`` only; it is never
  written to a file or a log: the HTTP libraries' request logs (``httpx``, ``httpcore``,
  ``telegram``) are held at WARNING and every line they or this module write passes a filter
  that replaces the token with ``***``.
- A lost connection (refused, timeout, HTTP error) is logged (without the URL) and retried with
  a backoff from 1 s doubling to 30 s; :attr:`TelegramChannel.errors` counts the failures and
  :attr:`TelegramChannel.connected` says whether the last poll succeeded.
- Messages older than ``max_age_s`` (120 s) when received (sent while the bot was down) are not
  obeyed: the chat is told so. Only allow-listed chats get an answer at all.
- ``base_url``: the Bot API root (``[remote] base_url``; tests point it at a local fake).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Callable

from engine.alerts import CommandChannel
from engine.clock import LiveClock
from engine.logs import get_logger

log = get_logger("remote.telegram")
# the wall clock only for the age of an incoming message (older than max_age_s: not obeyed, answered)
_WALL = LiveClock()

TOKEN_ENV = "MES_TELEGRAM_TOKEN"
DEFAULT_BASE_URL = "https://api.telegram.org/bot"
_NOISY = ("httpx", "httpcore", "telegram", "hpack")


class _Redact(logging.Filter):
    """Replace the token in a record's message (and drop its args) wherever it appears."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:
            return True
        if self.token and self.token in msg:
            record.msg, record.args = msg.replace(self.token, "***"), ()
        if record.exc_info and record.exc_info[1] is not None and self.token in str(record.exc_info[1]):
            record.exc_info = None
            record.exc_text = None
            record.msg = f"{record.msg} (exception text withheld: it carried the token)"
        return True


class TelegramChannel(CommandChannel):
    """A :class:`engine.alerts.CommandChannel` over the Telegram Bot API (module docstring).

    Args:
        token: the bot token (from ``MES_TELEGRAM_TOKEN``; never stored elsewhere).
        allowed_chats: chat ids that receive broadcasts (alerts, heartbeat); commands are
            filtered by the controller's allow-list.
        base_url: Bot API root (default ``https://api.telegram.org/bot``).
        poll_timeout_s: ``getUpdates`` long-poll timeout, seconds.
        max_age_s: messages older than this are refused (sent while the bot was offline).
        backoff_s: (first, max) retry delay after a failed poll, seconds.
    """

    name = "telegram"

    def __init__(self, token: str, allowed_chats: Any, *, base_url: str = "", poll_timeout_s: float = 10.0,
                 max_age_s: float = 120.0, backoff_s: tuple[float, float] = (1.0, 30.0)) -> None:
        if not token:
            raise ValueError(f"Telegram: no bot token (set {TOKEN_ENV})")
        self._token = token
        self.chats = tuple(int(c) for c in allowed_chats)
        self.base_url = base_url or DEFAULT_BASE_URL
        self.poll_timeout_s = float(poll_timeout_s)
        self.max_age_s = float(max_age_s)
        self.backoff_s = (float(backoff_s[0]), float(backoff_s[1]))
        self.connected = False
        self.errors = 0
        self.received = 0
        self.sent = 0
        self._handler: Callable[[int, str], str | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task | None = None
        self._closed = False
        self._ready = threading.Event()
        self._filter = _Redact(token)
        for name in _NOISY:
            lg = logging.getLogger(name)
            if lg.level == logging.NOTSET or lg.level < logging.WARNING:
                lg.setLevel(logging.WARNING)
            lg.addFilter(self._filter)
            if not lg.handlers:  # no stderr fallback: it would draw over the console's screen
                lg.addHandler(logging.NullHandler())
        from engine import logs

        logs.REDACT.add(token)  # every handler engine.logs makes redacts it

    def __repr__(self) -> str:  # never the token
        return f"TelegramChannel(chats={list(self.chats)}, base_url={self._safe_url()!r})"

    def _safe_url(self) -> str:
        return self.base_url.replace(self._token, "***")

    # ------------------------------------------------------------------ CommandChannel
    def start(self, handler: Callable[[int, str], str | None]) -> None:
        self._handler = handler
        self._thread = threading.Thread(target=self._run, name="remote-telegram", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)

    def broadcast(self, text: str) -> None:
        loop = self._loop
        if loop is None or self._closed or not self.chats:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._send_all(text), loop)
        except RuntimeError:  # the loop is closing
            pass

    def close(self, timeout_s: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout_s)
        for name in _NOISY:
            logging.getLogger(name).removeFilter(self._filter)

    # ------------------------------------------------------------------ bot thread
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self._main())
            self._ready.set()
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception:  # never reaches the session
            log.exception("telegram thread ended by an error")
        finally:
            self._ready.set()
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            except Exception:
                pass
            loop.close()

    def _bot(self) -> Any:
        from urllib.parse import urlparse

        from telegram import Bot
        from telegram.request import HTTPXRequest

        host = urlparse(self.base_url).hostname or ""
        local = host in ("127.0.0.1", "localhost", "::1")
        kw: dict = {"httpx_kwargs": {"trust_env": False}} if local else {}
        req = HTTPXRequest(connect_timeout=5.0, read_timeout=10.0, **kw)
        poll = HTTPXRequest(connect_timeout=5.0, read_timeout=self.poll_timeout_s + 10.0, **kw)
        return Bot(self._token, base_url=self.base_url, request=req, get_updates_request=poll)

    async def _main(self) -> None:
        bot = self._bot()
        offset: int | None = None
        delay = self.backoff_s[0]
        tasks: set[asyncio.Task] = set()
        self._bot_obj = bot
        try:
            while not self._closed:
                try:
                    updates = await bot.get_updates(offset=offset, timeout=int(self.poll_timeout_s),
                                                    allowed_updates=["message"])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.connected = False
                    self.errors += 1
                    log.warning("telegram: poll failed (%s); retry in %.1f s", self._describe(exc), delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.backoff_s[1])
                    continue
                if not self.connected:
                    log.info("telegram: connected")
                self.connected = True
                delay = self.backoff_s[0]
                for u in updates:
                    offset = u.update_id + 1
                    m, chat = u.effective_message, u.effective_chat
                    if m is None or chat is None or not m.text:
                        continue
                    self.received += 1
                    age = _WALL.now_ns() / 1e9 - m.date.timestamp() if m.date is not None else 0.0
                    t = asyncio.create_task(self._serve(bot, int(chat.id), m.text, age))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
        finally:
            for t in list(tasks):
                t.cancel()
            try:
                await bot.shutdown()
            except Exception:
                pass

    async def _serve(self, bot: Any, chat: int, text: str, age_s: float) -> None:
        handler = self._handler
        if handler is None:
            return
        if age_s > self.max_age_s and chat in self.chats:
            await self._send(bot, chat, f"not obeyed: {text[:40]!r} was sent {age_s:.0f} s ago (bot offline); "
                                        "send it again")
            return
        try:
            answer = await asyncio.to_thread(handler, chat, text)
        except Exception:
            log.exception("telegram: handler failed")
            answer = "internal error (see the session log)"
        if answer:
            await self._send(bot, chat, answer)

    async def _send_all(self, text: str) -> None:
        bot = getattr(self, "_bot_obj", None)
        if bot is None:
            return
        for c in self.chats:
            await self._send(bot, c, text)

    async def _send(self, bot: Any, chat: int, text: str) -> None:
        try:
            await bot.send_message(chat_id=chat, text=text[:4000])
            self.sent += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.errors += 1
            log.warning("telegram: sending to chat %s failed (%s)", chat, self._describe(exc))

    def _describe(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        return text.replace(self._token, "***")[:200]
