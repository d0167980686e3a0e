"""Shared helpers for the console tests: the REAL replay :class:`engine.runtime.session.Session`
(kernel, risk manager, simulated venue) over the embedded generated MES market, stepped by
hand to a fixed engine time (a simulated clock: no engine thread, commands apply at once).

The first session of a test process costs ~4 s (imports, compiled kernels); later ones ~2 ms,
so every UI test builds its own fresh session.
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from engine import logs
from engine.clock import from_datetime
from engine.config import PathsConfig, Settings
from engine.runtime.session import Session
from mes_console.commands.run import build_replay_session

FIXED_NY = datetime(2025, 3, 4, 15, 47, 30, tzinfo=ZoneInfo("America/New_York"))
"""Engine time of every UI test (a Tuesday afternoon, before the EOD phases)."""

_TMP = Path(tempfile.gettempdir()) / "mes-ui-tests"
"""A fixed directory (not mkdtemp): report and checkpoint paths shown in snapshots stay stable.
Every test module that uses it runs on one xdist worker (``tests/conftest.py``: group ``ui``), so
two workers never write the same report or checkpoint."""


def ui_settings(**ui) -> Settings:
    """Default settings with reports/models/state in a temporary directory (never the user's)."""
    s = Settings()
    paths = PathsConfig(data_dir=str(_TMP), models_dir=str(_TMP / "models"), state_dir=str(_TMP / "state"),
                        reports_dir=str(_TMP / "reports"), log_dir=str(_TMP / "logs"))
    s = dataclasses.replace(s, paths=paths)
    if ui:
        s = dataclasses.replace(s, ui=dataclasses.replace(s.ui, **ui))
    return s


def walk_forward_settings() -> Settings:
    """:func:`ui_settings` with a confidence gate that one-epoch fold models reach and the
    bracket target (as the CLI's walk-forward test), so that a walk-forward's folds trade."""
    from engine.config import RiskConfig, SignalConfig, TargetConfig

    s = ui_settings()
    return dataclasses.replace(
        s, signal=dataclasses.replace(SignalConfig(), min_confidence=0.34, model_threshold="config"),
        risk=dataclasses.replace(RiskConfig(), confidence_multipliers=[[0.34, 1.0]]),
        target=dataclasses.replace(TargetConfig(), kind="bracket", time_limit_bars=30))


def make_session(settings: Settings | None = None, at: datetime = FIXED_NY,
                 gate: threading.Event | None = None) -> Session:
    """A real replay session over the generated market of 2025-03-03..05, stepped to ``at``,
    with a log ring shown in the log pane. ``gate``: long work (backtest) waits for it."""
    settings = settings or ui_settings()
    ring = logs.RingHandler(500)
    logs.reset()
    logs.install([ring])
    sess = build_replay_session(settings, data=None, start="2025-03-03", end="2025-03-05", speed=None,
                                model=None, report=None, ring=ring)
    logs.set_clock(sess.clock.now_ns)
    sess.advance_to(from_datetime(at))
    if gate is not None:
        real = sess.run_backtest

        def gated(params, on_progress):
            assert gate.wait(30), "test gate never opened"
            return real(params, on_progress)

        sess.run_backtest = gated  # type: ignore[method-assign]
    return sess


def advance(sess: Session, seconds: float) -> None:
    """Move the engine clock ``seconds`` forward, bar by bar."""
    sess.advance_to(sess.clock.now_ns() + int(seconds * 1e9))


def open_position(sess: Session) -> None:
    """Step the market bar by bar until the baseline holds a position that survived one more bar
    (an entry whose stop fills inside its own bar is closed by the next step's fill events)."""
    held = False
    for _ in range(3000):
        if sess.kernel.oco.pos != 0:
            if held:
                sess._publish()
                return
            held = True
        else:
            held = False
        assert sess.step(), "data ended before the baseline held a position"
    raise AssertionError("the baseline never held a position in 3000 bars")


def audit_actions(sess: Session) -> list[str]:
    """The risk manager's audit trail (``halt``, ``pause``, ``resume``, ``reset``...)."""
    return [r["action"] for r in sess.risk.audit_records]
