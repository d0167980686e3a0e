"""UI thread CPU at the configured refresh rate during a max-speed replay.

Runs the console headless (80×24) on the real session runtime (``--runtime session``, default:
the trading kernel replaying five weeks of the generated MES market as fast as it can on its
own engine thread) or on the demo stand-in (``--runtime fake`` at ``--speed``), for
``--seconds`` real seconds, and prints the UI thread's CPU time as a percentage of one core
(target ≤ 15 % at 10 Hz, issue 5) and the bars the engine replayed meanwhile.

    python bench/bench_ui_cpu.py [--seconds 10] [--hz 10] [--runtime session|fake] [--speed 600]
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


async def measure(seconds: float, speed: float, hz: float, runtime: str) -> dict:
    settings = dataclasses.replace(Settings(), ui=UiConfig(refresh_hz=hz))
    if runtime == "session":
        from mes_console.commands.run import build_replay_session

        rt = build_replay_session(settings, data=None, start="2025-10-06", end="2025-11-07",
                                  speed=None, model=None, report=None)
        start, stop = rt.start, (lambda: rt.stop("bench done"))
    else:
        rt = FakeRuntime(settings, long_work_wait_s=0.0)
        start, stop = (lambda: rt.start(speed=speed)), rt.stop
    app = MesConsoleApp(rt, settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
        start()
        seq0 = app.snapshot.seq
        bars0 = getattr(rt, "i", 0)
        c0, w0 = time.thread_time(), time.perf_counter()  # this coroutine runs on the UI thread
        await asyncio.sleep(seconds)
        c1, w1 = time.thread_time(), time.perf_counter()
        seq1 = app.snapshot.seq
        bars1 = getattr(rt, "i", 0)
        stop()
    return {"runtime": runtime, "ui_thread_cpu_pct_of_one_core": round(100 * (c1 - c0) / (w1 - w0), 1),
            "target_pct": 15.0, "refresh_hz": hz, "speed": "max" if runtime == "session" else speed,
            "seconds": round(w1 - w0, 1), "snapshots_seen": seq1 - seq0,
            "engine_bars_replayed": bars1 - bars0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--speed", type=float, default=600.0)
    ap.add_argument("--hz", type=float, default=10.0)
    ap.add_argument("--runtime", choices=("session", "fake"), default="session")
    a = ap.parse_args()
    print(json.dumps(asyncio.run(measure(a.seconds, a.speed, a.hz, a.runtime))))


if __name__ == "__main__":
    main()
