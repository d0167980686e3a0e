"""Kill-switch latency: operator key press (``session.halt``) to broker-flat with no working order.

A real paper :class:`engine.runtime.live.LiveSession` (real signalrcore hubs, aiohttp REST) trades
the baseline on real TopstepX bars against the fake gateway over 127.0.0.1 until it holds a
position with its native bracket working; then the halt command is timed until the fake
exchange is flat and holds no working order (and, separately, until the position alone is
flat: the market exit does not wait for the cancels). Runs ``--runs`` sessions without and with a
``--delay`` s delay on every ``Order/cancel`` (issue 15 item 5) and prints min / median / max in
ms, and a JSON line with ``--json``.

    python bench/bench_kill_switch.py [--runs 3] [--delay 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.broker.fake import FakeGateway, load_bars_frame  # noqa: E402
from engine.broker.projectx.rest import ProjectXClient  # noqa: E402
from engine.broker.projectx.venue import ProjectXVenue  # noqa: E402
from engine.broker.projectx.connection import ProjectXConnection  # noqa: E402
from engine.clock import LiveClock  # noqa: E402
from engine.config import Secrets, Settings  # noqa: E402
from engine.runtime.live import LiveConfig, LiveSession  # noqa: E402

USER, KEY = "bench-user", "px-bench-key-123456789abc"
DATA = ROOT.parent / "shared" / "data" / "es_1m_topstepx_2025-08-31_2025-11-03.parquet"


def one_run(frame, delay_s: float, state: Path) -> float:
    loop = asyncio.new_event_loop()
    th = threading.Thread(target=loop.run_forever, daemon=True)
    th.start()

    def run(coro, timeout=15.0):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    async def make():
        gw = FakeGateway(frame, LiveClock(), username=USER, api_key=KEY, balance=100_000.0)
        await gw.start()
        return gw
    gw = run(make())
    ex = gw.exchange

    def call(fn):
        async def f():
            return fn()
        return run(f())

    s = Settings()
    risk = dataclasses.replace(s.risk, daily_loss_limit=40_000.0, daily_drawdown_limit=45_000.0,
                               kill_switch_loss=60_000.0, account_drawdown_limit=50_000.0,
                               consecutive_loss_pauses=[[1000, 1]])
    s = dataclasses.replace(s, risk=risk, account=dataclasses.replace(s.account, starting_capital=100_000.0),
                            paths=dataclasses.replace(s.paths, state_dir=str(state)),
                            secrets=Secrets(projectx_username=USER, projectx_api_key=KEY))
    wall = LiveClock()
    client = ProjectXClient(gw.base_url, USER, KEY, wall, request_timeout_s=10.0)
    venue = ProjectXVenue(s, wall, base_url=gw.base_url, client=client, native_oco=True)
    sess = LiveSession(s, ProjectXConnection(venue), LiveConfig(mode="paper", clock="exchange", state_dir=state,
                                            feed_end_s=30.0))
    try:
        sess.start()
        end = time.monotonic() + 60
        while not any(c.hub == "market" and len(c.subs) >= 2 for c in gw.connections):
            assert time.monotonic() < end, "no market subscription"
            time.sleep(0.01)

        def working():
            return [o for o in ex.orders.values() if o["status"] in (1, 6, 8)]

        def ready():
            pos = sum(p["size"] for p in ex.position.values())
            return pos != 0 and sum(1 for o in working() if o["status"] == 1) == 2

        while not call(ready):
            assert time.monotonic() < end, "no position with a working bracket"
            if not call(ex.step):
                raise RuntimeError("the bars ended before a position opened")
            time.sleep(0.003)
        time.sleep(0.2)                  # let the session see the bracket legs
        if delay_s:
            gw.faults.delay_s["Order/cancel"] = delay_s
        t0 = time.perf_counter()
        sess.halt("bench kill switch")
        pos_ms = None
        while True:
            pos0, none_working = call(lambda: (sum(p["size"] for p in ex.position.values()) == 0,
                                               not working()))
            if pos0 and pos_ms is None:
                pos_ms = (time.perf_counter() - t0) * 1e3
            if pos0 and none_working:
                return pos_ms, (time.perf_counter() - t0) * 1e3
            if time.perf_counter() - t0 > 30:
                raise RuntimeError("not flat within 30 s")
            time.sleep(0.001)
    finally:
        gw.faults.delay_s.clear()
        sess.stop("bench over")
        sess.finished.wait(15)
        run(gw.stop())
        loop.call_soon_threadsafe(loop.stop)
        th.join(5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--delay", type=float, default=3.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    frame = load_bars_frame(DATA, start="2025-09-04T13:20:00+00:00", max_rows=200)
    out = {}
    for label, delay in (("no_delay", 0.0), (f"cancel_delay_{a.delay:g}s", a.delay)):
        ms, pos = [], []
        for _ in range(a.runs):
            with tempfile.TemporaryDirectory() as d:
                p_ms, f_ms = one_run(frame, delay, Path(d))
            ms.append(f_ms)
            pos.append(p_ms)
        out[label] = {"min_ms": min(ms), "median_ms": statistics.median(ms), "max_ms": max(ms), "runs": ms,
                      "position_flat_median_ms": statistics.median(pos)}
        print(f"{label:>20}: key press → broker flat, no working order: min {min(ms):.0f} ms, "
              f"median {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms ({a.runs} runs); "
              f"position flat after {statistics.median(pos):.0f} ms (median)")
    if a.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
