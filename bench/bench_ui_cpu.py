"""UI thread CPU at the configured refresh rate while the demo market runs fast.

Runs the console headless (80×24) on the demo FakeRuntime advancing at ``--speed`` simulated
seconds per real second on its own thread, for ``--seconds`` real seconds, and prints the UI
thread's CPU time as a percentage of one core (target ≤ 15 % at 10 Hz, issue 5).

    python bench/bench_ui_cpu.py [--seconds 10] [--speed 600] [--hz 10]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import time

from engine.config import Settings, UiConfig
from engine.runtime.demo import FakeRuntime
from mes_console.app import MesConsoleApp


async def measure(seconds: float, speed: float, hz: float) -> dict:
    settings = dataclasses.replace(Settings(), ui=UiConfig(refresh_hz=hz))
    rt = FakeRuntime(settings, long_work_wait_s=0.0)
    app = MesConsoleApp(rt, settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
        rt.start(speed=speed)
        seq0 = app.snapshot.seq
        c0, w0 = time.thread_time(), time.perf_counter()  # this coroutine runs on the UI thread
        await asyncio.sleep(seconds)
        c1, w1 = time.thread_time(), time.perf_counter()
        seq1 = app.snapshot.seq
        rt.stop()
    return {"ui_thread_cpu_pct_of_one_core": round(100 * (c1 - c0) / (w1 - w0), 1),
            "refresh_hz": hz, "speed": speed, "seconds": round(w1 - w0, 1),
            "snapshots_seen": seq1 - seq0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--speed", type=float, default=600.0)
    ap.add_argument("--hz", type=float, default=10.0)
    a = ap.parse_args()
    print(json.dumps(asyncio.run(measure(a.seconds, a.speed, a.hz))))


if __name__ == "__main__":
    main()
