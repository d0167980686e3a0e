"""Crash-recovery stress (issue 22): the kill matrix of ``tests/test_px_crash.py`` (a real paper
session PROCESS against the fake gateway on real TopstepX bars, SIGKILLed with a position open
while the market moves on, ~100 ms after an exit filled, and with a position that is closed at
the broker while it is dead, bracket legs left working) run ``--rounds`` times while ``--busy``
busy-loop processes load the CPU. After every restart the broker must be flat with no working
order, and the risk state and the journal must equal the broker's trades to the cent; a round
that fails any check counts as a mismatch. Each round also runs the recovery table at a running
session (``tests/test_live_recovery.py``, in process, the real client over loopback): a position
closed by hand during a user-hub outage with both legs left working, and a position and a resting
order placed by hand during an outage; after each the broker must be flat with no working order and
the risk state and journal equal to the broker's. Prints one line per round and the mismatch count
(``--json``: a JSON line too). ``--test-runs N`` then runs the crash test files themselves
(``tests/test_px_crash.py``, ``tests/test_live_recovery.py``, pytest in a subprocess) N times under
the same load and prints how many runs passed. Exit 1 when any round mismatched or any run failed.

    python bench/bench_crash_matrix.py [--rounds 20] [--busy 2] [--test-runs 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data" / "es_1m_topstepx_2025-08-31_2025-11-03.parquet"


def _busy(stop) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x = (x * 1_103_515_245 + 12_345) & 0xFFFFFFFF


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--busy", type=int, default=2, help="busy-loop processes loading the CPU")
    ap.add_argument("--test-runs", type=int, default=0,
                    help="then run the crash test files this many times under the same load")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if not DATA.exists():
        print(f"error: {DATA}: real bars missing", file=sys.stderr)
        return 3
    import os

    xdg = tempfile.mkdtemp(prefix="mes-crash-xdg-")   # as tests/conftest.py: the sessions' default
    for k in ("XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):   # reports and journals stay
        os.environ[k] = os.path.join(xdg, k.lower())                  # out of the user's home
    from tests import test_live_recovery as rec
    from tests.test_live_account import T_MID
    from tests.test_px_crash import test_sigkill_with_position_and_after_exit_books_broker_pnl_once as matrix

    rec._FR["f"] = rec._frames(DATA, T_MID, 40, 10)
    for name in ("engine", "mes"):   # the in-process sessions' log lines: not this report's
        lg = logging.getLogger(name)
        lg.addHandler(logging.NullHandler())
        lg.propagate = False
    cases = [("kill matrix", lambda d: matrix(DATA, d)),
             ("reconnect: closed by hand", rec.test_reconnect_position_closed_by_hand_while_the_hub_was_down),
             ("reconnect: hand position + order", rec.test_reconnect_hand_position_and_foreign_order_closed)]

    stop = mp.Event()
    hogs = [mp.Process(target=_busy, args=(stop,), daemon=True) for _ in range(a.busy)]
    for h in hogs:
        h.start()
    mismatches, times, passed = 0, [], 0
    try:
        for r in range(a.rounds):
            t0 = time.monotonic()
            said = []
            for name, case in cases:
                with tempfile.TemporaryDirectory(prefix="mes-crash-") as d:
                    try:
                        case(Path(d))
                        said.append(f"{name} ok")
                    except AssertionError as exc:
                        mismatches += 1
                        where = traceback.extract_tb(exc.__traceback__)[-1]
                        said.append(f"{name} MISMATCH at {Path(where.filename).name}:{where.lineno} "
                                    f"{where.line}: {str(exc)[:400]}")
                    except Exception:
                        mismatches += 1
                        said.append(f"{name} ERROR: " + traceback.format_exc().strip().splitlines()[-1][:200])
            times.append(time.monotonic() - t0)
            print(f"round {r + 1}/{a.rounds}: {'; '.join(said)} ({times[-1]:.1f} s)", flush=True)
        passed = _test_runs(a.test_runs)
    finally:
        stop.set()
        for h in hogs:
            h.join(5)
    print(f"kill matrix + running recovery: {a.rounds} rounds × {len(cases)} cases under {a.busy} busy-loop "
          f"processes: {mismatches} mismatches")
    if a.json:
        print(json.dumps({"bench": "crash_matrix", "rounds": a.rounds, "cases": len(cases), "busy": a.busy,
                          "mismatches": mismatches, "round_s_max": max(times) if times else None,
                          "test_runs": a.test_runs, "test_runs_passed": passed}))
    return 1 if mismatches or passed < a.test_runs else 0


def _test_runs(n: int) -> int:
    """Run the crash test files ``n`` times (pytest subprocesses, the caller's load running);
    prints one line per run and the count; returns how many passed."""
    import subprocess

    if n <= 0:
        return 0
    passed = 0
    for i in range(n):
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "tests/test_px_crash.py", "tests/test_live_recovery.py"],
                           cwd=ROOT, capture_output=True, text=True, timeout=900)
        tail = (p.stdout.strip().splitlines() or ["(no output)"])[-1]
        passed += p.returncode == 0
        print(f"crash tests run {i + 1}/{n}: {'ok' if p.returncode == 0 else 'FAILED'}: {tail} "
              f"({time.monotonic() - t0:.1f} s)", flush=True)
    print(f"crash tests: {passed} of {n} runs passed")
    return passed


if __name__ == "__main__":
    sys.exit(main())
