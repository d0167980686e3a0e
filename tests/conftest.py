"""Shared fixtures: paths to the real market data in ``../shared/data``, and the Hypothesis
profiles.

The data lies beside the checkout (CI has ``shared/`` next to the clone). A missing data file is
a setup error, not a reason to skip: the fixtures fail loudly.

Hypothesis profiles, chosen by the environment variable ``HYPOTHESIS_PROFILE`` (default ``ci``;
an unknown name fails the run): ``ci`` 400 examples per property without an explicit count,
derandomized (the same examples on every run: CI is reproducible); ``deep`` 50,000 examples,
random, for a long hunt (``HYPOTHESIS_PROFILE=deep python -m pytest tests/test_oco_props.py``).
A property that fixes ``max_examples`` in its decorator is not deepened: the OCO properties
take their counts from the profile.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings as _hsettings

_hsettings.register_profile("ci", max_examples=400, deadline=None, derandomize=True, print_blob=True)
_hsettings.register_profile("deep", max_examples=50_000, deadline=None, print_blob=True,
                            suppress_health_check=[HealthCheck.too_slow])
_hsettings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"

ES_1M = DATA / "es_1m_2024-12-03_2025-12-15.parquet"
ES_5M = DATA / "es_5m_2024-12-03_2025-12-15.parquet"
TOPSTEPX_1M = DATA / "es_1m_topstepx_2025-08-31_2025-11-03.parquet"
ESM8_TRADES = DATA / "esm8_trades_2018-05-07.parquet"
DBN_DIR = DATA / "databento"


def _need(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"real test data missing: {path} (../shared must sit beside the checkout)")
    return path


@pytest.fixture(scope="session")
def es_1m_path() -> Path:
    return _need(ES_1M)


@pytest.fixture(scope="session")
def es_5m_path() -> Path:
    return _need(ES_5M)


@pytest.fixture(scope="session")
def topstepx_path() -> Path:
    return _need(TOPSTEPX_1M)


@pytest.fixture(scope="session")
def esm8_trades_path() -> Path:
    return _need(ESM8_TRADES)


@pytest.fixture(scope="session")
def dbn_dir() -> Path:
    return _need(DBN_DIR)


@pytest.fixture(scope="session")
def es_1m_summer_path(es_1m_path, tmp_path_factory) -> Path:
    """The real 1-minute bars from 2025-06-01 to 2025-08-31 00:00 UTC (exclusive) saved as their
    own parquet file (three months: train, validation and a held-out month for the optimizer)."""
    import numpy as np

    from engine.data import load_bars, save_bars

    b = load_bars(es_1m_path)
    lo, hi = np.searchsorted(b.ts, [np.datetime64("2025-06-01", "ns").astype(np.int64),
                                    np.datetime64("2025-08-31", "ns").astype(np.int64)])
    return save_bars(b.slice(int(lo), int(hi)), tmp_path_factory.mktemp("summer") / "summer.parquet")


@pytest.fixture(scope="session", autouse=True)
def _isolated_user_dirs(tmp_path_factory):
    """platformdirs' user data/state/log dirs point into a temporary directory for the whole
    run (and the subprocesses tests start): a paper session's default journal, report and log
    files never land in the developer's home."""
    import os

    base = tmp_path_factory.mktemp("xdg")
    old = {k: os.environ.get(k) for k in ("XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME")}
    for k in old:
        os.environ[k] = str(base / k.lower())
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v



@pytest.fixture(autouse=True)
def _restore_loggers():
    """Every test leaves the ``mes`` and ``engine`` loggers as it found them (handlers, level,
    propagation) and no engine clock installed in :mod:`engine.logs`: a test that installs the
    engine's handlers (``logs.install`` sets ``propagate = False``, as the CLI does) must not
    blind a later test's ``caplog``, which sees records only through propagation (before this,
    tests/test_alerts.py failed after tests/test_logs.py in one process)."""
    import logging

    from engine import logs

    saved = {}
    for name in ("mes", "engine"):
        lg = logging.getLogger(name)
        saved[name] = (list(lg.handlers), lg.level, lg.propagate)
    yield
    logs.set_clock(None)
    for name, (handlers, level, propagate) in saved.items():
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if h not in handlers:
                lg.removeHandler(h)
        for h in handlers:
            if h not in lg.handlers:
                lg.addHandler(h)
        lg.setLevel(level)
        lg.propagate = propagate


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``-n 2 --dist loadgroup``): the console tests share one fixed output
    directory (``tests/ui_support._TMP``, whose paths appear in snapshots), so every test module
    that imports ``tests.ui_support`` runs on the same worker, one test after another."""
    uses_ui: dict[str, bool] = {}
    for item in items:
        path = str(item.path)
        if path not in uses_ui:
            uses_ui[path] = "tests.ui_support" in Path(path).read_text(encoding="utf-8")
        if uses_ui[path]:
            item.add_marker(pytest.mark.xdist_group("ui"))
