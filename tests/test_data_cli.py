"""``mes-console data``: one JSON document on stdout, exit codes 0/1/2 (in-process CliRunner)."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from mes_console.cli import app

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, ["data", *map(str, args)])


def test_inspect_real_1m_json(es_1m_path):
    r = _run("inspect", es_1m_path, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["rows"] == 352_976 and doc["has_volume"] is False and doc["bar_size"] == "1m"
    assert doc["first_utc"] == "2024-12-03 00:00:00 UTC" and doc["first_ny"].endswith("EST")
    assert doc["rth_bars"] > 90_000 and doc["trading_days"] > 250


def test_validate_exit_codes(tmp_path, es_5m_path, topstepx_path, dbn_dir, esm8_trades_path):
    ok = _run("validate", dbn_dir / "test_data.ohlcv-1m.dbn.zst", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True
    bad = _run("validate", topstepx_path, "--json")
    assert bad.exit_code == 1
    assert "in_maintenance_halt" in json.loads(bad.stdout)["problems"]
    ticks = _run("validate", esm8_trades_path, "--json")
    doc = json.loads(ticks.stdout)
    assert ticks.exit_code == 0 and "tick file" in doc["notes"][0] and doc["rows"] == 9_780
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(es_5m_path.read_bytes()[:5000])
    unreadable = _run("validate", cut, "--json")
    assert unreadable.exit_code == 3 and unreadable.stdout == ""
    assert _run("validate", dbn_dir / "test_data.mbo.dbn.zst").exit_code == 3


def test_resample_cli(tmp_path, dbn_dir):
    out = tmp_path / "r.parquet"
    r = _run("resample", dbn_dir / "test_data.ohlcv-1s.dbn.zst", "--to", "5s", "--out", out, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["rows_in"] == 4 and doc["rows_out"] == 2 and out.exists()
    bad = _run("resample", dbn_dir / "test_data.ohlcv-1s.dbn.zst", "--to", "20m", "--out",
               tmp_path / "no.parquet")
    assert bad.exit_code == 3 and not (tmp_path / "no.parquet").exists()   # bad input (README)


def test_download_without_key_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABENTO_API_KEY", raising=False)
    r = _run("download", "--dir", tmp_path, "--start", "2020-12-28", "--end", "2020-12-29")
    assert r.exit_code == 3 and not any(tmp_path.iterdir())
