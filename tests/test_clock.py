"""The clock: simulated time fires timers in order and never runs backwards; only engine/clock.py
reads the wall clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from engine.clock import ClockError, SimClock, from_datetime, to_datetime

ENGINE = Path(__file__).resolve().parents[1] / "engine"

# Calls that read the wall clock (module attribute chains).
_BANNED = {
    ("time", "time"), ("time", "time_ns"), ("time", "monotonic"), ("time", "monotonic_ns"),
    ("time", "perf_counter"), ("time", "perf_counter_ns"), ("time", "localtime"), ("time", "gmtime"),
    ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
    ("pd", "Timestamp.now"), ("Timestamp", "now"), ("Timestamp", "utcnow"), ("Timestamp", "today"),
    ("loop", "time"),
}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def wall_clock_reads(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    hits = []
    imported_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "time":
            for a in node.names:
                if a.name in {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns"}:
                    imported_names.add(a.asname or a.name)
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            tail = tuple(name.split(".")[-2:]) if "." in name else ("", name)
            if tail in _BANNED or name in {"pd.Timestamp.now", "pandas.Timestamp.now"} or (
                "." not in name and name in imported_names
            ):
                hits.append(f"{path.name}:{node.lineno}: {name}()")
            if name.endswith("get_event_loop().time") or name.endswith("get_running_loop().time"):
                hits.append(f"{path.name}:{node.lineno}: {name}()")
    return hits


def test_detector_catches_wall_clock_reads(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("import time\nfrom datetime import datetime\nfrom time import monotonic as m\n"
                 "a = time.time()\nb = datetime.now()\nc = m()\n")
    assert len(wall_clock_reads(f)) == 3


def test_no_engine_module_other_than_clock_reads_the_wall_clock() -> None:
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        if path == ENGINE / "clock.py":
            continue
        offenders += wall_clock_reads(path)
    assert not offenders, "wall-clock reads outside engine/clock.py:\n" + "\n".join(offenders)


def test_timers_fire_in_order_with_their_own_time() -> None:
    c = SimClock(1_000)
    seen: list[tuple[str, int]] = []
    c.set_timer("b", 3_000, lambda t: seen.append(("b", t)))
    c.set_timer("a", 2_000, lambda t: seen.append(("a", t)))
    c.set_timer("a2", 2_000, lambda t: seen.append(("a2", t)))
    c.set_timer("late", 9_000, lambda t: seen.append(("late", t)))
    assert c.advance_to(5_000) == 3
    assert seen == [("a", 2_000), ("a2", 2_000), ("b", 3_000)]
    assert c.now_ns() == 5_000
    assert c.timer_names() == ["late"]


def test_rescheduling_and_cancel() -> None:
    c = SimClock(0)
    seen = []
    c.set_timer("x", 10, lambda t: seen.append(t))
    c.set_timer("x", 20, lambda t: seen.append(t))  # replaces the first
    assert c.cancel_timer("nope") is False
    c.advance_to(15)
    assert seen == []
    c.advance_to(25)
    assert seen == [20]
    c.set_timer("y", 30, lambda t: seen.append(t))
    assert c.cancel_timer("y") is True
    c.advance_to(40)
    assert seen == [20]


def test_timer_set_inside_callback_fires_in_same_advance() -> None:
    c = SimClock(0)
    seen = []
    c.set_timer("first", 10, lambda t: (seen.append(t), c.set_timer("second", 15, lambda u: seen.append(u))))
    c.advance_to(100)
    assert seen == [10, 15]


def test_never_runs_backwards() -> None:
    c = SimClock(1_000)
    c.advance_to(2_000)
    with pytest.raises(ClockError, match="backwards"):
        c.advance_to(1_999)
    assert c.now_ns() == 2_000


def test_datetime_round_trip() -> None:
    from datetime import datetime, timezone

    dt = datetime(2025, 3, 9, 7, 0, 0, 123456, tzinfo=timezone.utc)
    assert to_datetime(from_datetime(dt)) == dt
    with pytest.raises(ValueError, match="naive"):
        from_datetime(datetime(2025, 1, 1))
