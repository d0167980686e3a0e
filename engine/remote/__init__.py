"""Remote control and the dead-man watchdog (issue 26; ``specs/remote.md``).

- :mod:`engine.remote.control`: the transport-neutral commands (:class:`RemoteController`):
  allow-list, journal line per action, broker-confirmed answers;
- :mod:`engine.remote.telegram`: the Telegram transport (python-telegram-bot), one
  :class:`engine.alerts.CommandChannel`;
- :mod:`engine.remote.watchdog`: heartbeat and the dead-man checks of a paper/live session.

:func:`start_remote` is what the drivers (``mes_console/commands/drive.py``: headless and
console, replay, paper and live) call once the session is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from engine.logs import get_logger
from engine.remote.control import RemoteController, daily_text, status_text
from engine.remote.watchdog import Watchdog

log = get_logger("remote")


class RemoteError(ValueError):
    """The remote control is configured but cannot start (no token, empty allow-list)."""


@dataclass
class RemoteHandle:
    """A started remote control: the controller and its channel; :meth:`close` stops it."""

    controller: RemoteController
    channel: Any

    def close(self) -> None:
        try:
            self.channel.close()
        except Exception:
            log.exception("closing the remote channel failed")


def start_remote(session: Any, settings: Any, *, env: Mapping[str, str] | None = None,
                 channel: Any = None) -> RemoteHandle | None:
    """Start the remote control of ``session`` when ``[remote] telegram`` is on (or a ``channel``,
    any :class:`engine.alerts.CommandChannel`, is given); None when off.

    The Telegram token is read from ``MES_TELEGRAM_TOKEN`` in ``env`` (default the process
    environment) and never stored. The channel also receives the session's warning and critical
    alerts, the watchdog and the heartbeat (:meth:`engine.alerts.AlertRouter.add_channel`).
    Raises :class:`RemoteError` when the bot is on without a token or without an allowed chat
    (nothing is started; the caller refuses to trade: exit code 3)."""
    cfg = settings.remote
    if channel is None and not cfg.telegram:
        return None
    if not cfg.allowed_chats:
        raise RemoteError("[remote] allowed_chats is empty: no chat could control the session")
    if channel is None:
        from engine.remote.telegram import TOKEN_ENV, TelegramChannel

        token = (os.environ if env is None else env).get(TOKEN_ENV, "")
        if not token:
            raise RemoteError(f"[remote] telegram = true but {TOKEN_ENV} is not set in the environment")
        channel = TelegramChannel(token, cfg.allowed_chats, base_url=cfg.base_url,
                                  poll_timeout_s=cfg.poll_timeout_s)
    ctl = RemoteController(session, cfg.allowed_chats, allow_reset=cfg.allow_reset,
                           action_timeout_s=cfg.action_timeout_s)
    channel.start(ctl.handle)
    alerts = getattr(session, "alerts", None)
    if alerts is not None and hasattr(alerts, "add_channel"):
        alerts.add_channel(channel, "warning", kinds=("heartbeat", "watchdog"))
    log.info("remote control on (%s, %d allowed chats)", getattr(channel, "name", "channel"), len(cfg.allowed_chats))
    return RemoteHandle(ctl, channel)


__all__ = ["RemoteController", "RemoteError", "RemoteHandle", "Watchdog", "daily_text", "start_remote",
           "status_text"]
