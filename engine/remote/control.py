"""Remote control of a running session, transport-neutral (issue 26): the commands an operator
away from the terminal may send (``/status /daily /pause /resume /flatten /halt /reset``), the
allow-list, the journal line of every remote action and the broker-confirmed answer.

A transport (Telegram: :mod:`engine.remote.telegram`; any other: see
:class:`engine.alerts.CommandChannel`) hands each incoming text with its chat id to
:meth:`RemoteController.handle` on a thread of its own and sends the returned text back. The
controller talks to the session only through its thread-safe operator commands
(``pause/resume/flatten/halt/reset_halt``, the same the console's keys use), its immutable
snapshot, and :meth:`engine.runtime.session.SessionBase.call_on_engine` (a function run on the
engine thread between bars) for the confirmation: the kernel books the broker's fills and order
states there, then ``broker.reconcile("remote")`` asks the broker itself. A remote action never
touches the kernel from the transport's thread.

Rules (``specs/remote.md``):

- only chat ids in ``[remote] allowed_chats`` are obeyed; any other message is logged (WARNING,
  with its chat id and text) and journaled (``remote_refused``) and gets NO answer;
- every obeyed command is journaled (kind ``remote``) with its chat id, the command and the
  result; the answer carries the broker-confirmed state and the seconds it took;
- ``/halt`` = the console's ctrl+k (kill switch: HALTED, working entries cancelled, position
  flattened, no confirmation); ``/flatten`` closes the position and cancels the working orders,
  state unchanged; ``/reset RESET`` only when ``[remote] allow_reset`` is true, refused otherwise.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

from engine.logs import get_logger

log = get_logger("remote")

COMMANDS = ("status", "daily", "pause", "resume", "flatten", "halt", "reset", "help")
HELP = ("/status state, position and legs, today's P&L, account\n/daily P&L by day (journal)\n"
        "/pause no new entries (protection kept)\n/resume end an operator pause\n"
        "/flatten close the position, cancel working orders\n/halt kill switch: halt and flatten\n"
        "/reset RESET reset a halt (only when [remote] allow_reset)")


@dataclass(frozen=True)
class Confirmation:
    """The broker-confirmed state after an action: ``flat`` (no position at the broker),
    ``working`` (broker working orders on the contract, -1 = not asked), ``qty`` (signed broker
    position), ``source`` (``broker`` or ``engine`` when there is no broker, replay),
    ``seconds`` the wait took (wall), ``timed_out``."""

    flat: bool
    working: int
    qty: int
    source: str
    seconds: float
    timed_out: bool = False

    def text(self) -> str:
        if self.timed_out:
            return (f"NOT CONFIRMED after {self.seconds:.2f} s: {self.source} position {self.qty:+d}, "
                    f"{self.working} working orders")
        what = "flat" if self.flat else f"position {self.qty:+d}"
        orders = "no working order" if self.working == 0 else f"{self.working} working orders"
        return f"{self.source} confirms {what}, {orders} ({self.seconds:.2f} s)"


def engine_state(session: Any) -> tuple[bool, int, int, str]:
    """On the ENGINE thread: ``(done, qty, working, source)``. The kernel has booked every fill
    and order update received (the live session drains its venue before commands); when it is
    flat with no order in flight the broker is asked (``reconcile("remote")``: position and
    working orders); a replay session answers for its simulated venue."""
    k = session.kernel
    if k is None:
        return False, 0, -1, "engine"
    o = k.oco
    busy = bool(k.busy_orders())
    legs = sum(1 for x in (o.stop, o.target) if x is not None and getattr(x, "is_working", False))
    broker = getattr(session, "broker", None)
    if o.pos != 0 or busy or broker is None:
        return (o.pos == 0 and not busy and legs == 0), int(o.pos), legs + int(busy), "engine"
    rep = broker.reconcile("remote")
    return rep.broker_qty == 0 and rep.working_orders == 0, int(rep.broker_qty), int(rep.working_orders), "broker"


class RemoteController:
    """Commands from a remote transport → the session (module docstring).

    Args:
        session: a running :class:`engine.runtime.session.SessionBase` (replay, paper or live).
        allowed_chats: the chat ids obeyed (``[remote] allowed_chats``).
        allow_reset: obey ``/reset RESET`` (``[remote] allow_reset``).
        action_timeout_s: wall seconds to wait for the broker to confirm an action.
        journal: an :class:`engine.journal.Journal` (default: the session's), for ``/daily``
            and the action lines.
        wall: ``() -> float`` monotonic seconds (tests inject a fake; default ``time.monotonic``).
        poll_s: seconds between two confirmation checks.
    """

    def __init__(self, session: Any, allowed_chats: Any, *, allow_reset: bool = False,
                 action_timeout_s: float = 20.0, journal: Any = None,
                 wall: Callable[[], float] | None = None, poll_s: float = 0.05,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.session = session
        self.allowed = frozenset(int(c) for c in allowed_chats)
        self.allow_reset = bool(allow_reset)
        self.action_timeout_s = float(action_timeout_s)
        self._journal_override = journal
        self._wall = wall or time.monotonic
        self._sleep = sleep or time.sleep
        self.poll_s = float(poll_s)
        self.ignored = 0
        """Messages from chats not in the allow-list (logged, journaled, unanswered)."""
        self.actions: list[dict] = []
        """Every obeyed command: ``{"chat": id, "command": text, "result": answer}``."""

    # ------------------------------------------------------------------ entry point
    def handle(self, chat_id: int, text: str) -> str | None:
        """One incoming message. Returns the answer to send back, or None (not allowed, or not
        a command). Never raises: a failure is answered with its one-line reason."""
        text = (text or "").strip()
        if int(chat_id) not in self.allowed:
            self.ignored += 1
            log.warning("remote: chat %s is not in the allow-list; %r ignored", chat_id, text[:80])
            self._journal(f"chat {chat_id} not allowed: {text[:80]!r} ignored", "remote_refused", "warning")
            return None
        if not text.startswith("/"):
            return None
        word, _, rest = text[1:].partition(" ")
        cmd = word.split("@", 1)[0].lower()  # "/halt@my_bot" in a group
        try:
            answer = self._run(cmd, rest.strip())
        except Exception as exc:  # a remote command must never break the session
            log.exception("remote command %s failed", cmd)
            answer = f"/{cmd} failed: {type(exc).__name__}: {exc}"
        if cmd in COMMANDS and cmd not in ("status", "daily", "help"):
            self.actions.append({"chat": int(chat_id), "command": f"/{cmd}", "result": answer})
            self._journal(f"chat {chat_id}: /{cmd} -> {answer}", "remote",
                          "error" if cmd == "halt" else "warning")
            log.warning("remote /%s from chat %s: %s", cmd, chat_id, answer)
        return answer

    # ------------------------------------------------------------------ commands
    def _run(self, cmd: str, arg: str) -> str:
        s = self.session
        if cmd == "status":
            return status_text(self._fresh_snapshot())
        if cmd == "daily":
            return daily_text(self._journal_obj())
        if cmd == "help" or cmd == "start":
            return HELP
        if cmd == "pause":
            s.pause()
            return f"paused: no new entries, protection kept · {self._state_line()}"
        if cmd == "resume":
            s.resume()
            return f"resumed · {self._state_line()}"
        if cmd == "flatten":
            s.flatten()
            return f"flatten: {self.confirm().text()}"
        if cmd == "halt":
            s.halt(f"remote kill switch ({arg or 'no reason given'})")
            return f"HALTED: {self.confirm().text()}"
        if cmd == "reset":
            if not self.allow_reset:
                return "reset refused: not allowed remotely ([remote] allow_reset = false); reset at the console"
            s.reset_halt(arg)
            return f"halt reset · {self._state_line()}"
        return f"unknown command /{cmd}\n{HELP}"

    def _state_line(self) -> str:
        snap = self._fresh_snapshot()
        if snap is None:
            return "state unknown"
        return f"{snap.header.trading_state}" + (f" ({snap.risk.reason})" if snap.risk.reason else "")

    def _fresh_snapshot(self) -> Any:
        """A snapshot published on the engine thread now, after the commands queued so far were
        applied and (live) the venue's events booked; the last published one when the engine
        does not answer within ``action_timeout_s``."""
        s = self.session
        try:
            s.call_on_engine(s._publish).result(self.action_timeout_s)
        except Exception as exc:
            log.warning("remote: no fresh snapshot (%s); answering with the last one", exc)
        return s.snapshot()

    def confirm(self) -> Confirmation:
        """Wait (up to ``action_timeout_s``) until the engine has booked the broker's answers and
        the broker itself reports no position and no working order (:func:`engine_state`)."""
        t0 = self._wall()
        qty, working, source = 0, -1, "engine"
        while True:
            fut: Future = self.session.call_on_engine(lambda: engine_state(self.session))
            try:
                done, qty, working, source = fut.result(max(self.action_timeout_s, 0.1))
            except Exception as exc:
                log.warning("remote confirmation: %s", exc)
                done = False
            el = self._wall() - t0
            if done:
                return Confirmation(True, working, qty, source, el)
            if el >= self.action_timeout_s:
                return Confirmation(qty == 0, working, qty, source, el, timed_out=True)
            self._sleep(self.poll_s)

    # ------------------------------------------------------------------ journal
    def _journal_obj(self) -> Any:
        return self._journal_override if self._journal_override is not None else getattr(self.session, "journal", None)

    def _journal(self, message: str, kind: str, severity: str) -> None:
        j = self._journal_obj()
        if j is None:
            return
        try:
            j.event(int(self.session.clock.now_ns()), kind, message, severity)
        except Exception as exc:  # the journal's own failure is the session's to handle
            log.error("remote: journal write failed: %s", exc)


def _money(x: float) -> str:
    return f"{'+' if x >= 0 else '-'}${abs(x):,.2f}"


def status_text(snap: Any) -> str:
    """``/status``: one block of plain text from a :class:`SessionSnapshot` (README example):
    mode, account and state; the position with its legs; today's P&L; the account verdict and
    the distance to the MLL where the venue's rules are known; the lockouts; the broker check."""
    if snap is None:
        return "no snapshot yet (the session is starting)"
    from engine.calendar import ny_datetime

    h, p, r, b = snap.header, snap.position, snap.risk, snap.broker
    head = f"mes-console {h.mode.upper()} {h.account} {h.symbol} · {h.trading_state}"
    if r.reason:
        head += f" ({r.reason})"
    if h.clock_ns:
        head += f" · {ny_datetime(h.clock_ns).strftime('%Y-%m-%d %H:%M:%S NY')}"
    lines = [head]
    if h.ended:
        lines.append(f"session ended: {h.ended}")
    if p.side == "FLAT":
        lines.append("position FLAT")
    else:
        lines.append(f"position {p.side} {p.size} @ {p.avg_price:.2f} · open {_money(p.unrealized_usd)}")
    for leg in (p.stop, p.target):
        if leg is not None and leg.state in ("WORKING", "PENDING", "PARTIAL"):
            dist = f" ({leg.distance_ticks:.0f} ticks away)" if leg.distance_ticks is not None else ""
            lines.append(f"  {leg.kind} {leg.price:.2f} {leg.state}{dist}")
    if p.side != "FLAT":
        lines.append("  ALL PROTECTED" if p.all_protected else "  UNPROTECTED CONTRACTS")
    lines.append(f"today {_money(p.realized_usd + p.unrealized_usd)} (realized {_money(p.realized_usd)}) · "
                 f"daily loss used ${r.daily_loss_used_usd:,.0f}/${r.daily_loss_limit_usd:,.0f}")
    if r.venue_rules:
        dist = r.venue_distance_usd
        verdict = "at risk" if dist is not None and dist < 500 else "ok"
        lines.append(f"account {r.venue_rules}: {verdict} · MLL ${r.venue_liquidation_usd or 0:,.0f}, "
                     f"distance ${dist if dist is not None else float('nan'):,.0f}")
    else:
        lines.append(f"account: kill switch in ${r.kill_switch_distance_usd:,.0f}, drawdown "
                     f"${r.drawdown_usd:,.0f}/${r.drawdown_limit_usd:,.0f}")
    for line in getattr(r, "lockouts", ()):
        lines.append(f"lockout {line}")
    if b.last_reconcile_ns is not None:
        lines.append(f"broker {b.result}: {b.detail}")
    return "\n".join(lines)


def daily_text(journal: Any, days: int = 10) -> str:
    """``/daily``: the last ``days`` trading days of the journal: round trips, winners, net $."""
    if journal is None:
        return "no journal in this session (replay, or the journal is off)"
    rows = journal.by_day()[-days:]
    if not rows:
        return "journal: no round trips yet"
    out = ["day        trades  won  net"]
    total = 0.0
    for r in rows:
        net = float(r["net_pnl"] or 0.0)
        total += net
        out.append(f"{r['day']}  {int(r['trades']):>5}  {int(r['winners'] or 0):>3}  {_money(net)}")
    out.append(f"total {len(rows)} days {_money(total)}")
    return "\n".join(out)
