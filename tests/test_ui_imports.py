"""Import hygiene: the demo market and the runtime boundary never pull in textual or rich."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_engine_market_and_runtime_do_not_import_ui():
    code = (
        "import sys, engine.market, engine.runtime, engine.runtime.snapshot, engine.runtime.session\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'mes_console', 'screens'))\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
