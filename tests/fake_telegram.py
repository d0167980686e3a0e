"""A local fake of the Telegram Bot API on 127.0.0.1 (issue 26 tests): ``getMe``, ``getUpdates``
(long poll), ``sendMessage``; anything else answers ``true``. Runs on its own thread and loop.

``push(chat_id, text)`` queues a message from a chat; ``sent`` lists ``(chat_id, text)`` the bot
sent; ``stop()`` / ``start()`` take the server down and up again on the same port (a lost
connection: the bot sees refused connections)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from aiohttp import web


class FakeTelegram:
    def __init__(self, token: str, max_poll_s: float = 0.5) -> None:
        self.token = token
        self.max_poll_s = max_poll_s
        self.updates: list[dict] = []
        self.sent: list[tuple[int, str]] = []
        self.calls: dict[str, int] = {}
        self.offset = 0
        self._next_id = 1
        self._msg_id = 1
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-telegram", daemon=True)
        self.thread.start()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._cond: asyncio.Condition | None = None
        self.run(self._start())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def run(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        self._cond = self._cond or asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if not self.port:
            self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> None:
        self.run(self._start())

    def stop(self) -> None:
        self.run(self._stop())

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)

    # ------------------------------------------------------------------ test side
    def push(self, chat_id: int, text: str, age_s: float = 0.0) -> int:
        async def add() -> int:
            uid = self._next_id
            self._next_id += 1
            self.updates.append({"update_id": uid, "message": {
                "message_id": uid, "date": int(time.time() - age_s), "text": text,
                "chat": {"id": chat_id, "type": "private"},
                "from": {"id": chat_id, "is_bot": False, "first_name": "operator"}}})
            assert self._cond is not None
            async with self._cond:
                self._cond.notify_all()
            return uid
        return self.run(add())

    def consumed(self, update_id: int) -> bool:
        """The bot has acknowledged ``update_id`` (asked for a later offset)."""
        return self.offset > update_id

    def sent_to(self, chat_id: int) -> list[str]:
        return [t for c, t in list(self.sent) if c == chat_id]

    # ------------------------------------------------------------------ server side
    async def _params(self, request: web.Request) -> dict:
        if request.content_type == "application/json":
            try:
                return dict(await request.json())
            except json.JSONDecodeError:
                return {}
        data = await request.post()
        return {k: v for k, v in data.items()}

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls[method] = self.calls.get(method, 0) + 1
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        p = await self._params(request)
        if method == "getMe":
            return self._ok({"id": 4242, "is_bot": True, "first_name": "mes", "username": "mes_test_bot"})
        if method == "getUpdates":
            off = int(p.get("offset") or 0)
            self.offset = max(self.offset, off)
            wait = min(float(p.get("timeout") or 0), self.max_poll_s)
            end = time.monotonic() + wait
            assert self._cond is not None
            while True:
                ready = [u for u in self.updates if u["update_id"] >= self.offset]
                left = end - time.monotonic()
                if ready or left <= 0:
                    return self._ok(ready)
                async with self._cond:
                    try:
                        await asyncio.wait_for(self._cond.wait(), left)
                    except asyncio.TimeoutError:
                        pass
        if method == "sendMessage":
            chat = int(p["chat_id"])
            text = str(p.get("text", ""))
            self.sent.append((chat, text))
            self._msg_id += 1
            return self._ok({"message_id": self._msg_id, "date": int(time.time()), "text": text,
                             "chat": {"id": chat, "type": "private"}})
        return self._ok(True)

    @staticmethod
    def _ok(result) -> web.Response:
        return web.json_response({"ok": True, "result": result})
