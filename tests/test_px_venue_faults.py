"""ProjectXVenue fault tests over loopback: both bracket legs racing under a real TradingKernel,
20 forced hub disconnects (no lost or duplicated fill, position reconciled after each), and
token expiry mid-session (renewed, no gap)."""

from __future__ import annotations

import logging
import time

from engine.config import Settings
from engine.instruments import spec
from engine.kernel import BarInput, TradingKernel
from engine.risk.manager import RiskDecision
from engine.venue.base import FillEvent
from tests.px_fixtures import KEY
from tests.test_px_venue_support import GatewayThread, collect, make_venue, settle


class _ApproveAll:
    """A stand-in risk manager: approves every entry, 1 contract, stop/target ±2 points (8 ticks).
    The real RiskManager is tested elsewhere; here only the venue path matters."""

    def __init__(self):
        self.closed = []

    balance = 5000.0  # KernelRisk: the cash the kernel marks from (no trade is booked here)

    def on_mark(self, equity, now):
        pass

    def on_market(self, *a):
        pass

    def flatten_reason(self, now):
        return None

    def update_trailing(self, *a, **k):
        return None

    def evaluate_entry(self, side, conf, close, atr, highs, lows, ts, is_rth):
        return RiskDecision(True, 1, "", close - side * 2.0, close + side * 2.0, 10.0)

    def on_trade_closed(self, net, ts):
        self.closed.append(net)


def test_both_legs_racing_kernel_flattens_the_excess(topstepx_path):
    gt = GatewayThread(topstepx_path)
    gt.step(4)
    v = make_venue(gt)
    v.start(timeout_s=10)
    try:
        gt.gw.faults.bracket_race = True
        k = TradingKernel(Settings(), v, _ApproveAll(), spec("MES"), bar_ns=60_000_000_000,
                          starting_balance=50_000.0)
        ex = gt.gw.exchange
        for i in range(120):
            gt.step(4)
            settle(gt, v)
            m = ex.market
            b = m.i // 4
            direction = 1 if i == 0 else 0            # one long entry on the first bar
            k.step(BarInput(i, int(m.ts[b]) + 60_000_000_000, float(m.o[b]), float(m.h[b]),
                            float(m.lo[b]), float(m.c[b]), 2.0, True, True, 0, 0, direction, 0.9, 2))
            if len(k.trades) >= 2 and k.position == 0 and not k.busy_orders():
                break
        settle(gt, v)
        kinds = [a[1] for a in k.stats.alerts]
        assert "oco_excess" in kinds                    # both legs filled → excess flattened + alert
        orders, trades, pos = gt.state()
        assert pos == 0 and k.position == 0 and v.pos_qty == 0
        assert list(orders.values()).count(1) == 0 and list(orders.values()).count(8) == 0
        # entry, both legs, one excess exit: four fills, each booked once by the kernel
        assert len(trades) == 4 and len(k.trades) == 2
        assert k.trades[0].exit_reason in ("stop", "target") and k.trades[0].contracts == 1
        assert v.reconcile().ok
    finally:
        v.stop()
        gt.close()


def test_twenty_hub_disconnects_no_lost_or_duplicated_fill(topstepx_path):
    gt = GatewayThread(topstepx_path)
    gt.step(4)
    v = make_venue(gt, market=False)
    v.start(timeout_s=10)
    reports = []
    orig = v.reconcile

    def spy(reason="periodic"):
        reports.append(orig(reason))
        return reports[-1]
    v.reconcile = spy
    try:
        fills: list = []
        placed = []
        pos = 0
        for k in range(20):
            before = v.stats["reconnects"]
            gt.drop("user", graceful=bool(k % 2))
            side = 1 if pos <= 0 else -1                 # open, close, open, close...
            placed.append(v.place(side, 1, "market", tag=f"d{k}"))   # fills while the hub is down
            pos += side
            end = time.perf_counter() + 8
            while v.stats["reconnects"] == before:
                assert time.perf_counter() < end, "user hub did not reconnect"
                time.sleep(0.01)
            fills = collect(v, lambda ev: sum(isinstance(e, FillEvent) for e in ev) >= k + 1, got=fills)
            assert reports and reports[-1].broker_qty == pos and v.pos_qty == pos   # reconciled
        settle(gt, v)
        fills += v.poll_events()
        fe = [e for e in fills if isinstance(e, FillEvent)]
        orders, trades, bpos = gt.state()
        assert len(fe) == len(trades) == 20                           # none lost, none doubled
        assert [e.order_id for e in fe] == placed
        assert len(orders) == 20 and bpos == pos == 0                 # no duplicate entry
        assert list(orders.values()).count(1) == 0                    # no orphan order
        assert sum(len(r.missing_fills) for r in reports) >= 1        # the gaps really lost events
        assert v.stats["dup_fills"] >= 0 and gt.gw.connects["user"] >= 21
    finally:
        v.stop()
        gt.close()


def test_token_expiry_mid_session_renewed_without_a_gap(topstepx_path, caplog):
    caplog.set_level(logging.DEBUG)
    gt = GatewayThread(topstepx_path, token_ttl_s=1.5)
    gt.step(4)
    v = make_venue(gt, token_check_s=0.1, market=False, client_kwargs={"renew_margin_s": 0.8})
    v.start(timeout_s=10)
    try:
        first = v.client.current_token()
        seen: list = []
        for k in range(3):
            oid = v.place(1 if k % 2 == 0 else -1, 1, "market", tag=f"tok{k}")
            seen = collect(v, lambda ev: any(isinstance(e, FillEvent) and e.order_id == oid for e in ev), got=seen)
            time.sleep(0.8)
        assert gt.gw.calls.get("Auth/validate", 0) >= 2           # renewed by the keeper
        assert v.client.current_token() != first and v.client.stats["http_401"] == 0
        # the first token is dead now: a hub reconnect must use the current one
        before = v.stats["reconnects"]
        gt.drop("user", graceful=False)
        end = time.perf_counter() + 8
        while v.stats["reconnects"] == before:
            assert time.perf_counter() < end
            time.sleep(0.01)
        assert gt.gw.calls["Auth/loginKey"] == 1                  # never needed a fresh login
        # server-side kill of every token: REST re-logs in, the hub's 401 leads to a login too
        gt.call(gt.gw.expire_tokens)
        before = v.stats["reconnects"]
        gt.drop("user", graceful=True)
        oid = v.place(1, 1, "market", tag="after-kill")
        end = time.perf_counter() + 10
        while v.stats["reconnects"] == before:
            assert time.perf_counter() < end, f"no reconnect after token kill: {v.user_hub.last_error}"
            time.sleep(0.01)
        seen = collect(v, lambda ev: any(isinstance(e, FillEvent) and e.order_id == oid for e in ev), got=seen)
        settle(gt, v)
        assert v.pos_qty == 2 and len([e for e in seen if isinstance(e, FillEvent)]) == 4
    finally:
        v.stop()
        gt.close()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert KEY not in text and all(t not in text for t in list(gt.gw.tokens))
