"""Start-up recovery of a paper/live session (issue 22, R-LIVE-1, R-LIVE-4, R-RISK-6, R-EXE-4):
what the broker shows when a session starts (after a crash, a SIGKILL, a hand trade while no
engine ran) is classified against the saved risk state, and one documented action is taken per
case, before anything trades. The table (also in ``specs/live.md``, "Start-up recovery table"):

========================  ===================================================  ==========================================
row                       the broker shows                                     action
========================  ===================================================  ==========================================
``flat``                  no position, no working order                        trade
``orphan_orders``         working orders an engine session placed (its tag)    cancel them (warning alert)
                          and no position: bracket legs left working when the
                          position was closed while the engine was dead
``foreign_orders``        working orders the engine did not place              cancel them (critical alert): one owner
                                                                               of the contract's position
``legs_of_position``      engine orders working beside a position              cancelled first; the position row acts
``entry_partial``         an engine entry partly filled, its rest working      cancelled first (its native legs are
                          (native legs still suspended: the part filled is     suspended: nothing protects the part
                          unprotected)                                         filled); the position row acts
``position_ours``         a position the engine's own unbooked fills explain   flatten (or adopt and protect: ``[live]
                          (a session died with it open)                        on_start_position = "adopt"``); warning
``position_not_ours``     a position no engine fill explains (opened by hand)  the same action; critical alert
``position_size``         a position of another size than the engine's fills   the same action; critical alert
                          explain (a partial entry, a hand trade on top)
``fills_unbooked``        fills after the saved state's watermark that it     booked by broker trade id into the risk
                          does not hold (the crash window, the actions above)  state and the journal (fills and round
                                                                               trips at the broker's P&L − fees)
========================  ===================================================  ==========================================

Order of work (:meth:`Recovery.run`): classify → cancel every working order on the contract →
read the position again (a leg may have filled meanwhile: the re-read decides) → flatten it (or
keep it for adoption) → verify with the broker (flat and no working order; else retried twice,
then refused: :class:`SessionError`, nothing traded). The books come after the broker agrees
(:meth:`Recovery.book`): the broker's trades, the account balance, the trades again; when the
two trade reads differ (a fill landed in between) the reads repeat, so the balance taken is
the one after the last booked trade id (one consistent read). A balance that then still differs
from the booked one is activity recovery cannot attribute: that alone raises the "outside the
engine" alert.

At a running session (:meth:`Recovery.running`, R-EXE-4 "after every reconnect"): the same
table runs after every hub reconnect, after a fill of an order this session did not place (a
hand trade, the broker's own close, an earlier session's leg: :attr:`FillMeta.ours` False), and
after a reconciliation whose broker position differs from the kernel's or that lists a foreign
working order. The kernel is brought up to date first (the reconciliation's missed fills and
order states), then what the broker shows is classified against the KERNEL (its position and
its live orders) rather than a saved state:

========================  ===================================================  ==========================================
row                       the broker shows                                     action
========================  ===================================================  ==========================================
``flat``                  the kernel's position and orders, nothing else       trade on (nothing logged above DEBUG)
``orphan_orders``         engine orders the kernel does not hold (legs left    cancel those orders (warning alert)
                          by a position closed outside the engine)
``foreign_orders``        working orders no engine session placed              cancel those orders (critical alert)
``position_not_ours``     a position while the kernel is flat                  close everything (critical alert)
``position_size``         a position of another size than the kernel's (a      close everything (critical alert)
                          hand close, a hand trade on top)
``fills_unbooked``        fills of orders the engine did not place             booked by trade id; with the kernel in a
                                                                               position or an order in flight: close
                                                                               everything first (critical alert)
========================  ===================================================  ==========================================

"Close everything" is the start-up action (cancel every working order, close the position,
verify with the broker: flat, no working order), then the kernel is told the broker is flat
(:meth:`engine.kernel.TradingKernel.broker_flat`: its orders cancelled, its open trade dropped
unbooked; the events of what recovery closed never reach it) and every broker fill the risk
state lacks is booked by trade id (risk state and journal at the broker's P&L and fees). A
position mismatch is confirmed by a second read 0.25 s later before anything is closed (a fill
in flight). Nothing trades meanwhile (the table runs on the session's thread); when the broker
does not confirm, new entries are held and the table runs again a second later
(:class:`~engine.runtime.session.SessionError` reaches the session, which never stops on it).
A running session never adopts: the position's owner is the engine alone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from engine.broker.base import BrokerFill, BrokerOrder, ReconcileReport
from engine.clock import NS_PER_SECOND
from engine.logs import get_logger
from engine.runtime.session import SessionError
from engine.runtime.snapshot import money

if TYPE_CHECKING:
    from collections import deque

    from engine.alerts import AlertRouter
    from engine.broker.base import BrokerConnection
    from engine.clock import Clock
    from engine.config import Settings
    from engine.instruments import InstrumentSpec
    from engine.journal import Journal
    from engine.kernel import TradingKernel
    from engine.risk.manager import RiskManager


class LiveSession(Protocol):
    """What recovery reads and calls of the live session (:class:`engine.runtime.live.LiveSession`
    satisfies it structurally): a Protocol rather than an import, so the two modules do not
    import each other (``tests/test_import_cycles.py``)."""

    settings: Settings
    spec: InstrumentSpec
    broker: BrokerConnection
    alerts: AlertRouter
    wall: Clock
    clock: Clock
    venue: Any
    closes: deque
    adopted: dict | None
    _hi: deque
    _lo: deque
    _reconciled_wall: int
    cfg: Any
    journal: Journal | None

    def _risk(self) -> RiskManager: ...

    def _journal(self, what: str, *args: Any, **kw: Any) -> None: ...

    def _refresh_journal_today(self) -> None: ...

    def _kernel(self) -> TradingKernel: ...

    def _event(self, kind: str, message: str, severity: str = "information") -> None: ...

    def _note_reconcile(self, rep: ReconcileReport) -> None: ...

    def _drain_kernel(self) -> None: ...

log = get_logger("live")

ROWS: dict[str, tuple[str, str]] = {
    "flat": ("no position, no working order", "trade"),
    "orphan_orders": ("working orders of an engine session and no position", "cancel them"),
    "foreign_orders": ("working orders the engine did not place", "cancel them (critical alert)"),
    "legs_of_position": ("engine orders working beside a position", "cancel, then the position row"),
    "entry_partial": ("an engine entry partly filled, the rest working", "cancel, then the position row"),
    "position_ours": ("a position the engine's fills explain", "flatten, or adopt and protect"),
    "position_not_ours": ("a position no engine fill explains", "flatten, or adopt and protect (critical)"),
    "position_size": ("a position of another size than the engine's fills", "flatten, or adopt and protect (critical)"),
    "fills_unbooked": ("fills after the saved state the risk state lacks", "book by trade id (risk + journal)"),
}
"""The recovery table: row → (what the broker shows, the action). See the module docstring."""

RUNNING_ROWS: dict[str, str] = {
    "flat": "trade on",
    "orphan_orders": "cancel those orders",
    "foreign_orders": "cancel those orders (critical alert)",
    "legs_of_position": "cancel, then the position row",
    "entry_partial": "cancel, then the position row",
    "position_ours": "close everything",
    "position_not_ours": "close everything (critical alert)",
    "position_size": "close everything (critical alert)",
    "fills_unbooked": "book by trade id (close everything first while the kernel trades)",
}
"""The actions at a running session (the module docstring's second table)."""

VERIFY_TRIES = 3
"""Attempts (cancel / flatten / re-read) before a start-up that the broker does not confirm
flat (or adopted) is refused."""


@dataclass
class Plan:
    """The classification of one start-up: ``rows`` the table rows that apply (in order), with
    a detail line each; ``orders`` the broker's working orders; ``fills`` the broker's fills from
    the watermark (``since_ns``) not yet booked; ``qty`` / ``avg`` the broker's position (signed
    contracts, points)."""

    rows: list[tuple[str, str]] = field(default_factory=list)
    orders: list[BrokerOrder] = field(default_factory=list)
    fills: list[BrokerFill] = field(default_factory=list)
    since_ns: int | None = None
    qty: int = 0
    avg: float = 0.0

    @property
    def names(self) -> list[str]:
        return [r for r, _ in self.rows]


@dataclass
class RecoveredTrade:
    """A round trip recovery booked from the broker's fills, in the journal's trade fields
    (:meth:`engine.journal.Journal.trade`): times UTC ns, direction ±1, contracts, points, dollars."""

    entry_ts: int
    exit_ts: int
    direction: int
    contracts: int
    entry_price: float
    exit_price: float
    gross_pnl: float
    commission: float
    net_pnl: float
    exit_reason: str
    slippage: float = 0.0
    confidence: float = float("nan")


def round_trip(fills: list[BrokerFill], ts_ns: int) -> RecoveredTrade:
    """The journal row of a round trip made of ``fills`` (the last one closing; broker P&L and
    fees summed). ``ts_ns``: the engine-clock time it is booked at (exit time when the broker
    gave none). ``exit_reason`` is ``recovery``; the journal keeps the broker ids beside it."""
    direction = fills[0].side
    opening = [f for f in fills if f.side == direction]
    closing = [f for f in fills if f.side != direction] or fills[-1:]
    q_in = sum(f.qty for f in opening)
    q_out = sum(f.qty for f in closing)
    gross = float(sum(f.pnl or 0.0 for f in fills))
    fees = float(sum(f.fees for f in fills))
    return RecoveredTrade(
        entry_ts=int(fills[0].ts_ns or ts_ns), exit_ts=int(ts_ns), direction=int(direction), contracts=int(q_in),
        entry_price=float(sum(f.price * f.qty for f in opening) / max(q_in, 1)),
        exit_price=float(sum(f.price * f.qty for f in closing) / max(q_out, 1)),
        gross_pnl=round(gross, 2), commission=round(fees, 2), net_pnl=round(gross - fees, 2),
        exit_reason="recovery")


class Recovery:
    """One start-up's recovery over a :class:`~engine.runtime.live.LiveSession` whose broker is
    connected and whose risk manager (and journal) are open (module docstring).

    Args:
        sess: the session (its ``broker``, ``risk``, ``journal``, ``alerts``, clocks, settings).
        new_state: True when the risk state has no watermark yet (first session on the account):
            the broker's earlier trades are recorded as not this state's, never booked.
    """

    def __init__(self, sess: "LiveSession", new_state: bool, when: str = "start-up") -> None:
        self.s = sess
        self.new_state = bool(new_state)
        self.when = when
        """What the table runs for (log lines, alerts): ``start-up``, ``hub reconnect``, ``outside
        fill``, ``reconcile (...)``."""
        self.plan: Plan | None = None
        self.booked_trips = 0
        self.booked_net = 0.0
        self._left: set[int] = set()
        self.open_fills: list[BrokerFill] = []
        """Unbooked fills of the position still open after recovery (adopted), oldest first."""
        self.pending_fees = 0.0
        """Fees (dollars) of fills of a position still open after recovery (adopted): the
        broker's balance already paid them, the risk manager books them with the round trip."""

    # ------------------------------------------------------------------ classify
    def _unbooked(self) -> tuple[list[BrokerFill], int | None]:
        risk, broker = self.s._risk(), self.s.broker
        info = risk.book_broker_trades()
        since, booked = info["since_ns"], info["ids"]
        start = self.s.wall.now_ns() - 3600 * NS_PER_SECOND if since is None else since
        try:
            fills = broker.fills_since(start)
        except Exception as exc:
            raise SessionError(f"{self.when} recovery: reading the broker's trades failed: "
                               f"{type(exc).__name__}: {exc}; not trading on a risk state that may "
                               "miss P&L") from None
        return [f for f in fills if f.id not in booked], since

    def classify(self, rep: ReconcileReport) -> Plan:
        """The table rows that apply to what the broker shows now (``rep``: the start-up
        reconciliation; the working orders and the fills are read here). Raises
        :class:`SessionError` when the broker cannot be read."""
        try:
            orders = list(self.s.broker.working_orders())
        except Exception as exc:
            raise SessionError(f"{self.when} recovery: reading the broker's working orders failed: "
                               f"{type(exc).__name__}: {exc}") from None
        fills, since = self._unbooked()
        p = Plan(orders=orders, fills=fills, since_ns=since, qty=int(rep.broker_qty), avg=float(rep.broker_avg))
        live = [f for f in fills if not f.voided]
        ours_net = sum(f.side * f.qty for f in live if f.ours)
        foreign_net = sum(f.side * f.qty for f in live if not f.ours)
        partial = [o for o in orders if o.ours and o.role == "entry" and o.filled > 0]
        mine = [o for o in orders if o.ours]
        foreign = [o for o in orders if not o.ours]
        if p.qty == 0 and not orders:
            p.rows.append(("flat", "broker flat, no working order"))
        if mine and p.qty == 0:
            p.rows.append(("orphan_orders", f"{len(mine)} engine order(s) working with no position: "
                           + ", ".join(f"{o.id} {o.role or o.kind}" for o in mine)))
        if mine and p.qty != 0:
            p.rows.append(("legs_of_position", f"{len(mine)} engine order(s) working beside {p.qty:+d}"))
        if foreign:
            p.rows.append(("foreign_orders", f"{len(foreign)} order(s) not placed by the engine: "
                           + ", ".join(f"{o.id} {o.kind} {o.side:+d}x{o.qty}" for o in foreign)))
        if partial:
            p.rows.append(("entry_partial", ", ".join(f"entry {o.id} filled {o.filled}, {o.qty} left" for o in partial)))
        if p.qty != 0:
            if partial or (ours_net != 0 and ours_net != p.qty) or (ours_net and foreign_net):
                p.rows.append(("position_size", f"broker {p.qty:+d} @ {p.avg:.2f}; the engine's fills explain "
                               f"{ours_net:+d}, other fills {foreign_net:+d}"))
            elif ours_net == p.qty:
                p.rows.append(("position_ours", f"broker {p.qty:+d} @ {p.avg:.2f}, opened by an engine session"))
            else:
                p.rows.append(("position_not_ours", f"broker {p.qty:+d} @ {p.avg:.2f}; no engine fill explains it "
                               f"(other fills {foreign_net:+d})"))
        if fills and not self.new_state:
            p.rows.append(("fills_unbooked", f"{len(fills)} broker fill(s) after the saved state: "
                           + ",".join(str(f.id) for f in fills[:20])))
        self.plan = p
        return p

    # ------------------------------------------------------------------ act
    def _say(self, row: str, detail: str) -> None:
        sev = "critical" if row in ("foreign_orders", "position_not_ours", "position_size") else "warning"
        action = ROWS[row][1] if self.when == "start-up" else RUNNING_ROWS[row]
        msg = f"{self.when} recovery [{row}]: {detail} → {action}"
        if row in ("flat",):
            log.info(msg)
            return
        log.warning(msg)
        self.s.alerts.send(sev, "startup_recovery" if self.when == "start-up" else "recovery", msg[:300])
        self.s._event("alert", msg[:200], "warning" if sev == "warning" else "error")

    def resolve(self, plan: Plan, adopt: bool, cancel_first: bool = False) -> ReconcileReport | None:
        """Act on ``plan`` (module docstring): cancel every working order, re-read the position,
        flatten it (``adopt`` False) and verify with the broker. Returns the broker's position
        report to adopt (``adopt`` True and the broker still holds a position), else None.
        Raises :class:`SessionError` (after a critical alert) when the broker is not confirmed
        flat with no working order."""
        for row, detail in plan.rows:
            self._say(row, detail)
        b = self.s.broker
        last = ""
        for attempt in range(VERIFY_TRIES):
            try:
                if attempt or plan.orders or cancel_first:
                    b.cancel_all_working(keep_market=False)
                rep = b.reconcile(f"{self.when} recovery")
                self.s._note_reconcile(rep)
                if rep.broker_qty != 0 and adopt:
                    if not b.working_orders():
                        return rep
                    last = "orders still working after the cancel"
                    continue
                if rep.broker_qty != 0:
                    b.flatten(f"{self.when} recovery: position not kept")
                    rep = b.reconcile(f"after {self.when} flatten")
                    self.s._note_reconcile(rep)
                left = b.working_orders()
                if rep.broker_qty == 0 and not left:
                    if attempt:
                        log.info("%s recovery: the broker agrees after %d attempts", self.when, attempt + 1)
                    return None
                last = f"broker {rep.broker_qty:+d}, {len(left)} working order(s)"
            except SessionError:
                raise
            except Exception as exc:
                last = f"{type(exc).__name__}: {exc}"
                log.warning("%s recovery attempt %d: %s", self.when, attempt + 1, last)
            threading.Event().wait(0.25)
        msg = (f"{self.when} recovery: the broker is not flat with no working order after {VERIFY_TRIES} "
               f"attempts ({last}); not trading")
        self.s.alerts.send("critical", "startup_recovery" if self.when == "start-up" else "recovery", msg)
        raise SessionError(msg)

    # ------------------------------------------------------------------ a running session
    def running(self) -> list[str]:
        """The table at a running session (module docstring, "At a running session"): bring
        the kernel up to date, classify what the broker shows against the kernel, act, book the
        broker's fills the risk state lacks by trade id. Returns the row names (``["flat"]``
        when the broker and the kernel agree). Raises :class:`SessionError` when the broker
        cannot be read or does not confirm the action (the caller holds new entries and runs
        the table again)."""
        s = self.s
        k = s._kernel()
        p = self._classify_running()
        if p.qty != k.oco.pos:      # a fill in flight? confirm with a second read before closing
            threading.Event().wait(0.25)
            p = self._classify_running()
        if not p.rows:
            s.venue.outside.clear()
            return ["flat"]
        names = p.names
        outside = "fills_unbooked" in names
        if p.qty != k.oco.pos or (outside and (k.oco.pos != 0 or k.busy_orders())):
            self.resolve(p, adopt=False, cancel_first=True)   # cancel all, close, verify flat (or SessionError)
            s.venue.poll_events()                 # what recovery closed never reaches the kernel
            k.broker_flat(s.clock.now_ns(), f"{self.when} recovery")
            s.venue.rt.clear()
        else:
            for row, detail in p.rows:
                self._say(row, detail)
            ids = [o.id for o in p.orders]
            if ids:
                self._cancel_only(ids)
            if not outside:     # the kernel's own open trade (partial exits too) is the kernel's to book
                s.venue.outside.clear()   # (fills booked already, if any)
                return names
        s.venue.outside.clear()
        self.book(f"{self.when} recovery")   # flat now, or the kernel flat with only outside fills
        return names

    def _classify_running(self) -> Plan:
        s, b = self.s, self.s.broker
        k = s._kernel()
        s._drain_kernel()
        try:
            rep = b.reconcile(f"{self.when}: recovery check")
            s._note_reconcile(rep)
            s._drain_kernel()                 # the reconciliation's missed fills and order states
            orders = list(b.working_orders())
        except Exception as exc:
            raise SessionError(f"{self.when} recovery: reading the broker failed: {type(exc).__name__}: {exc}") from None
        booked = s._risk().book_broker_trades()["ids"]
        outside = [m for m in s.venue.outside if int(m["id"]) not in booked]
        ids, tags = self._held(k)

        def held(o: BrokerOrder) -> bool:
            t = o.tag or ""
            return o.id in ids or t in tags or (t[-3:] in ("-SL", "-TP") and t[:-3] in tags)

        orphan = [o for o in orders if o.ours and not held(o)]
        foreign = [o for o in orders if not o.ours]
        p = Plan(orders=orphan + foreign, qty=int(rep.broker_qty), avg=float(rep.broker_avg))
        kpos = int(k.oco.pos)
        if orphan:
            p.rows.append(("orphan_orders", f"{len(orphan)} engine order(s) working that the kernel does not hold: "
                           + ", ".join(f"{o.id} {o.role or o.kind}" for o in orphan)))
        if foreign:
            p.rows.append(("foreign_orders", f"{len(foreign)} order(s) not placed by the engine: "
                           + ", ".join(f"{o.id} {o.kind} {o.side:+d}x{o.qty}" for o in foreign)))
        if p.qty != kpos:
            p.rows.append(("position_not_ours" if kpos == 0 else "position_size",
                           f"broker {p.qty:+d} @ {p.avg:.2f}, the kernel holds {kpos:+d}"))
        if outside:
            p.rows.append(("fills_unbooked", f"{len(outside)} fill(s) of orders the engine did not place: "
                           + ",".join(str(m["id"]) for m in outside[:20])))
        self.plan = p
        return p

    def _held(self, k: TradingKernel) -> tuple[set[int], set[str]]:
        """Broker ids and customTags of the orders the kernel holds (not terminal), and the
        tag of its entry while it holds a position or the entry works (native bracket legs
        carry the entry's tag + ``-SL`` / ``-TP``)."""
        from engine.execution.orders import TERMINAL

        v = self.s.venue
        to_bid = getattr(v, "broker_id", None)
        prefix = str(getattr(v, "tag_prefix", "") or "")
        ids: set[int] = set()
        tags: set[str] = set()
        for o in k.oco.orders.values():
            if o.status in TERMINAL:
                continue
            bid = to_bid(o.order_id) if to_bid is not None else None
            if bid is None and str(o.order_id).isdigit():
                bid = int(o.order_id)
            if bid is not None:
                ids.add(int(bid))
            tags.add(prefix + o.tag)
        e = k.oco.entry
        if e is not None and (k.oco.pos != 0 or e.status not in TERMINAL):
            tags.add(prefix + e.tag)
        return ids, tags

    def _cancel_only(self, ids: list[int]) -> None:
        """Cancel the broker orders ``ids`` and verify they no longer work (``VERIFY_TRIES``
        attempts); raises :class:`SessionError` (critical alert) otherwise."""
        b = self.s.broker
        left = list(ids)
        last = ""
        for _attempt in range(VERIFY_TRIES):
            try:
                b.cancel_orders(left)
                left = [o.id for o in b.working_orders() if o.id in set(ids)]
                if not left:
                    return
                last = f"still working: {left}"
            except Exception as exc:
                last = f"{type(exc).__name__}: {exc}"
            threading.Event().wait(0.25)
        msg = f"{self.when} recovery: orders not cancelled after {VERIFY_TRIES} attempts ({last}); entries held"
        self.s.alerts.send("critical", "recovery", msg)
        raise SessionError(msg)

    # ------------------------------------------------------------------ book
    def book(self, why: str = "start-up") -> float | None:
        """Book every broker fill the risk state lacks (by trade id, exactly once), write each
        to the journal (fills, and a trade row per round trip), and return the account balance
        read AFTER the last booked trade (None when the broker reports none). The trades are
        read before and after the balance; a difference (a fill in between) repeats the reads.
        Raises :class:`SessionError` when the broker cannot be read."""
        bal: float | None = None
        for _ in range(VERIFY_TRIES):
            fills, since = self._unbooked()
            self._book(fills, since, why)
            try:
                bal = self.s.broker.account_balance()
            except Exception as exc:
                raise SessionError(f"{why}: reading the broker's balance failed: {type(exc).__name__}: {exc}") from None
            after, _ = self._unbooked()
            if {f.id for f in after} == self._left:
                break     # no fill between the two trade reads: the balance follows the last booked id
            log.info("%s: a broker fill landed during the balance read; reading again", why)
        return bal

    def _book(self, trades: list[BrokerFill], since: int | None, why: str) -> None:
        s = self.s
        risk = s._risk()
        now_wall = s.wall.now_ns()
        if since is None:
            risk.book_broker_trades([t.id for t in trades], None, since_ns=now_wall - 60 * NS_PER_SECOND)
            if trades:
                log.info("%s: %d broker trades before this risk state's first session recorded, "
                         "not booked", why, len(trades))
            self.pending_fees = 0.0
            self.open_fills = []
            self._left = set()
            return
        pend: list[BrokerFill] = []
        n, total = 0, 0.0
        for t in trades:
            self._journal_fill(t)
            if t.voided:
                risk.book_broker_trades([t.id], None)
                continue
            pend.append(t)
            if t.pnl is None:
                continue
            fees = sum(f.fees for f in pend)
            net = float(t.pnl) - fees
            if s.cfg.clock == "exchange" or not t.ts_ns:
                ts = s.clock.now_ns()
            else:
                ts = min(int(t.ts_ns), s.clock.now_ns())
            mark = (t.ts_ns or now_wall) - 60 * NS_PER_SECOND
            if risk.book_broker_trades([f.id for f in pend], net, ts, since_ns=mark)["booked"]:
                n += 1
                total += net
                self._journal_trip(pend, ts)
            pend = []
        self.pending_fees = float(sum(f.fees for f in pend))
        self.open_fills = list(pend)
        self._left = {f.id for f in pend}
        self.booked_trips += n
        self.booked_net += total
        if n:
            away = "while the engine was away" if self.when == "start-up" else "by broker trade id"
            msg = (f"{why}: booked {n} round trip(s) the broker filled {away}: "
                   f"net {money(total, sign=True)}; balance now {money(risk.balance)}")
            log.warning(msg)
            s.alerts.send("warning", "crash_recovery", msg)
            s._event("alert", msg[:200], "warning")

    def _journal_fill(self, t: BrokerFill) -> None:
        s = self.s
        if s.journal is None:
            return
        s._journal("fill", ts_ns=s.clock.now_ns(), side=int(t.side), qty=int(t.qty), price=float(t.price),
                   fees=float(t.fees), broker_id=int(t.id), order_id=str(t.order_id or ""),
                   tag="recovery", pnl=t.pnl, broker_ts_ns=int(t.ts_ns) if t.ts_ns else None)

    def _journal_trip(self, fills: list[BrokerFill], ts: int) -> None:
        s = self.s
        j = s.journal
        if j is None:
            return
        ids = [f.id for f in fills]
        try:
            if j.has_trade(ids):     # the killed process wrote it before its booking
                return
        except Exception:
            log.exception("journal read failed")
            return
        s._journal("trade", round_trip(fills, ts), broker_ids=ids)
        s._refresh_journal_today()


def adopt(sess: "LiveSession", rep: ReconcileReport, open_fills: list[BrokerFill] | None = None) -> None:
    """``[live] on_start_position = "adopt"``: take the broker's position (size and average
    price) into the kernel and protect it at once. ``open_fills``: the broker's unbooked fills
    that opened it (recovery's): their fees become the adopted round trip's opening commission
    and their trade ids lead the round trip's ids, so the kernel books the whole round trip by
    id at its close (the risk state and the journal then equal the broker's). Then the broker's working orders on the
    contract are cancelled (again), then a stop and a target from the current stop rules
    (:meth:`RiskManager.compute_bracket` at the average price; it runs before the warm start,
    so the ATR is the fixed-tick stop's equivalent) are placed as standalone legs. A position
    already beyond that stop (the stop would trigger at once) is closed instead, with a
    critical alert. Never trades an unprotected position."""
    from engine.kernel import _OpenTrade

    qty, avg = int(rep.broker_qty), float(rep.broker_avg)
    side = 1 if qty > 0 else -1
    k, r = sess._kernel(), sess._risk()
    now = sess.clock.now_ns()
    try:
        sess.broker.cancel_all_working()
    except Exception as exc:
        log.error("adopt: cancelling the broker's working orders failed (%s)", exc)
    row: Any = getattr(sess, "_warm_row", None)
    atr = float(row.atr) if row is not None else float("nan")
    st = sess.settings.stops
    if not np.isfinite(atr):
        atr = st.fixed_ticks * sess.spec.tick_size / max(st.atr_multiplier, 1e-9)
    tick = sess.spec.tick_size
    try:
        stop, target = r.compute_bracket(side, avg, atr, np.fromiter(sess._hi, float),
                                         np.fromiter(sess._lo, float), r.eod_phase(now))
        stop_ticks = max(1, int(round(abs(avg - stop) / tick)))
        target_ticks = max(1, int(round(abs(target - avg) / tick)))
    except Exception as exc:   # e.g. a structure stop with no bars yet: the fixed-tick rule
        log.warning("adopt: stop rule failed (%s); fixed %d-tick stop", exc, st.fixed_ticks)
        stop_ticks = int(st.fixed_ticks)
        target_ticks = max(1, int(round(stop_ticks * st.reward_risk)))
    q = sess.broker.last_quote()
    last = (q.last if q is not None else None) or (sess.closes[-1] if sess.closes else None)
    beyond = last is not None and side * (float(last) - (avg - side * stop_ticks * tick)) <= 0
    k.oco.adopt(qty, avg, stop_ticks, target_ticks, protect=not beyond)   # books it: one owner
    t = k._open = _OpenTrade(entry_ts=now, entry_bar=0, direction=side)
    t.qty_in, t.px_in, t.ref_in = abs(qty), avg * abs(qty), avg * abs(qty)
    t.stop_ticks, t.confidence = stop_ticks, float("nan")
    if open_fills and sum(f.side * f.qty for f in open_fills) == qty:
        t.commission = float(sum(f.fees for f in open_fills))
        sess.venue.rt[:0] = [{"id": int(f.id), "signed": int(f.side * f.qty), "fees": float(f.fees),
                              "pnl": f.pnl, "ts_ns": int(f.ts_ns)} for f in open_fills]
    k._best = avg
    if beyond:
        msg = (f"start-up: adopted {qty:+d} @ {avg:.2f} is already beyond its stop "
               f"({stop_ticks} ticks, last {last}): closing it at once")
        k.oco.flatten("risk")
        sess.alerts.send("critical", "startup_position", msg)
        sess._event("order", msg, "error")
        return
    sess.adopted = {"qty": qty, "avg": avg, "stop_ticks": stop_ticks, "target_ticks": target_ticks,
                    "protected_after_s": (sess.wall.monotonic_ns() - sess._reconciled_wall) / 1e9}
    msg = (f"start-up: ADOPTED the broker's {qty:+d} @ {avg:.2f}; protective stop {stop_ticks} ticks, "
           f"target {target_ticks} ticks placed")
    sess.alerts.send("warning", "startup_position", msg)
    sess._event("order", msg, "warning")
