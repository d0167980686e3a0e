"""Shared fixtures: paths to the real market data in ``../shared/data``.

The data lies beside the checkout (CI has ``shared/`` next to the clone). A missing data file is
a setup error, not a reason to skip: the fixtures fail loudly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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
