"""UI thread CPU at the configured refresh rate while the real session replays at full speed.

Runs the console headless at ``--size`` (default 80×24) on the real session runtime (the trading
kernel, risk manager and simulated venue replaying five weeks of the generated MES market as
fast as it can on its own engine thread, or at ``--speed`` simulated seconds per second) for
``--seconds`` real seconds, and prints the UI thread's CPU time as a percentage of one core
(target ≤ 15 % at 10 Hz, issue 5) and the bars the engine replayed meanwhile.

    python bench/bench_ui_cpu.py [--seconds 10] [--hz 10] [--speed max|600] [--size 80x24]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import time

from engine.config import Settings, UiConfig
from mes_console.app import MesConsoleApp


async def measure(seconds: float, speed: float | None, hz: float, size: tuple[int, int]) -> dict:
    from mes_console.commands.run import build_replay_session

    settings = dataclasses.replace(Settings(), ui=UiConfig(refresh_hz=hz))
    rt = build_replay_session(settings, data=None, start="2025-10-06", end="2025-11-07",
                              speed=speed, model=None, report=None)
    if speed:
        rt.cfg.pace_from_ns = 0  # pace from the first bar
    app = MesConsoleApp(rt, settings)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.5)
        rt.start()
        seq0 = app.snapshot.seq
        bars0 = rt.i
        c0, w0 = time.thread_time(), time.perf_counter()  # this coroutine runs on the UI thread
        await asyncio.sleep(seconds)
        c1, w1 = time.thread_time(), time.perf_counter()
        seq1 = app.snapshot.seq
        bars1 = rt.i
        rt.stop("bench done")
        rt.finished.wait(30)
    return {"runtime": "session", "ui_thread_cpu_pct_of_one_core": round(100 * (c1 - c0) / (w1 - w0), 1),
            "target_pct": 15.0, "refresh_hz": hz, "speed": speed or "max", "size": f"{size[0]}x{size[1]}",
            "seconds": round(w1 - w0, 1), "snapshots_seen": seq1 - seq0,
            "engine_bars_replayed": bars1 - bars0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--speed", default="max", help="simulated seconds per second, or max")
    ap.add_argument("--hz", type=float, default=10.0)
    ap.add_argument("--size", default="80x24")
    a = ap.parse_args()
    speed = None if a.speed == "max" else float(a.speed)
    w, h = (int(x) for x in a.size.lower().split("x"))
    print(json.dumps(asyncio.run(measure(a.seconds, speed, a.hz, (w, h)))))


if __name__ == "__main__":
    main()
