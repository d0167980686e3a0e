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
(``--json``: a JSON line too). Exit 1 when any round mismatched.

    python bench/bench_crash_matrix.py [--rounds 20] [--busy 2] [--json]
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
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if not DATA.exists():
        print(f"error: {DATA}: real bars missing", file=sys.stderr)
        return 3
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
    mismatches, times = 0, []
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
    finally:
        stop.set()
        for h in hogs:
            h.join(5)
    print(f"kill matrix + running recovery: {a.rounds} rounds × {len(cases)} cases under {a.busy} busy-loop "
          f"processes: {mismatches} mismatches")
    if a.json:
        print(json.dumps({"bench": "crash_matrix", "rounds": a.rounds, "cases": len(cases), "busy": a.busy,
                          "mismatches": mismatches, "round_s_max": max(times) if times else None}))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
