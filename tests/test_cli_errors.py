"""Every CLI command turns bad input into ONE ``error:`` line on stderr and the exit code of
README's table ("Exit codes", the same table in ``mes_console.commands.common``), never a
traceback:

- 2 usage: an unknown option, a value of the wrong type, a missing required option/argument;
- 3 bad input: a bad date, a reversed range, a bad value, a missing file (bars, model, settings),
  an unreadable bars file, bad settings;
- 1 problems found (``data validate``) or an internal error (traceback saved to a file);
- 4 ``run`` stopped by SIGTERM: ``tests/test_runtime_session.py::test_sigterm_headless_flattens_
  and_writes_report`` (a real session in a subprocess).
"""

from __future__ import annotations

import re
from datetime import date

import pytest
import typer

from engine.data.io import save_bars
from engine.market import generate_bars
from mes_console.cli import app
from mes_console.commands.common import guarded

MISSING = "/nonexistent/mes-bars.parquet"
MISSING_MODEL = "/nonexistent/mes-model"
MISSING_CONFIG = "/nonexistent/mes-config.toml"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two generated days written as a small parquet file (no real data is copied), a file that
    is not a bars file, a settings file with a wrong value and an empty directory."""
    d = tmp_path_factory.mktemp("cli")
    bars = d / "bars.parquet"
    save_bars(generate_bars(date(2025, 3, 3), date(2025, 3, 4), seed=1), bars)
    garbage = d / "garbage.parquet"
    garbage.write_bytes(b"this is not a parquet file\n" * 10)
    bad_cfg = d / "bad.toml"
    bad_cfg.write_text("[risk]\nrisk_per_trade_pct = -5\n")
    return {"bars": str(bars), "garbage": str(garbage), "bad_cfg": str(bad_cfg), "tmp": str(d)}


def _table(f: dict) -> dict[str, list[tuple[str, list[str], int, str]]]:
    """command → [(kind of bad input, argv, README's exit code, a word the error line names)]."""
    b, g, cfg, tmp = f["bars"], f["garbage"], f["bad_cfg"], f["tmp"]
    out = f"{tmp}/x.parquet"
    return {
        "backtest": [
            ("unknown option", ["backtest", "--data", b, "--bogus"], 2, "--bogus"),
            ("wrong type", ["backtest", "--data", b, "--seed", "x"], 2, "--seed"),
            ("missing option", ["backtest"], 2, "--data"),
            ("bad date", ["backtest", "--data", b, "--start", "2025-13-01"], 3, "--start"),
            ("reversed range", ["backtest", "--data", b, "--start", "2025-03-04", "--end", "2025-03-03"], 3, "reversed"),
            ("bad value", ["backtest", "--data", b, "--fill", "magic"], 3, "--fill"),
            ("missing file", ["backtest", "--data", MISSING], 3, "mes-bars.parquet"),
            ("unreadable file", ["backtest", "--data", g], 3, "garbage.parquet"),
            ("missing model", ["backtest", "--data", b, "--model", MISSING_MODEL], 3, "mes-model"),
            ("missing settings", ["backtest", "--data", b, "--config", MISSING_CONFIG], 3, "mes-config.toml"),
            ("bad settings", ["backtest", "--data", b, "--config", cfg], 3, "risk_per_trade_pct"),
        ],
        "run": [
            ("unknown option", ["run", "--no-tui", "--bogus"], 2, "--bogus"),
            ("wrong type", ["run", "--no-tui", "--seed", "x"], 2, "--seed"),
            ("bad date", ["run", "--no-tui", "--start", "2025-13-01"], 3, "--start"),
            ("reversed range", ["run", "--no-tui", "--data", b, "--start", "2025-03-04", "--end", "2025-03-03"], 3, "reversed"),
            ("bad value", ["run", "--no-tui", "--speed", "fast"], 3, "--speed"),
            ("missing file", ["run", "--no-tui", "--data", MISSING], 3, "mes-bars.parquet"),
            ("unreadable file", ["run", "--no-tui", "--data", g], 3, "garbage.parquet"),
            ("missing model", ["run", "--no-tui", "--data", b, "--model", MISSING_MODEL], 3, "mes-model"),
            ("missing settings", ["run", "--no-tui", "--config", MISSING_CONFIG], 3, "mes-config.toml"),
            ("bad settings", ["run", "--no-tui", "--config", cfg], 3, "risk_per_trade_pct"),
        ],
        "train": [
            ("unknown option", ["train", "--data", b, "--bogus"], 2, "--bogus"),
            ("wrong type", ["train", "--data", b, "--epochs", "abc"], 2, "--epochs"),
            ("missing option", ["train"], 2, "--data"),
            ("bad value", ["train", "--data", b, "--arch", "abacus"], 3, "--arch"),
            ("missing file", ["train", "--data", MISSING], 3, "mes-bars.parquet"),
            ("unreadable file", ["train", "--data", g], 3, "garbage.parquet"),
            ("missing settings", ["train", "--data", b, "--config", MISSING_CONFIG], 3, "mes-config.toml"),
            ("bad settings", ["train", "--data", b, "--config", cfg], 3, "risk_per_trade_pct"),
        ],
        "optimize": [
            ("unknown option", ["optimize", "--data", b, "--bogus"], 2, "--bogus"),
            ("wrong type", ["optimize", "--data", b, "--trials", "many"], 2, "--trials"),
            ("missing option", ["optimize"], 2, "--data"),
            ("bad date", ["optimize", "--data", b, "--start", "2025-13-01"], 3, "--start"),
            ("reversed range", ["optimize", "--data", b, "--start", "2025-03-04", "--end", "2025-03-03"], 3, "reversed"),
            ("bad value", ["optimize", "--data", b, "--objective", "luck"], 3, "luck"),
            ("missing file", ["optimize", "--data", MISSING], 3, "mes-bars.parquet"),
            ("missing settings", ["optimize", "--data", b, "--config", MISSING_CONFIG], 3, "mes-config.toml"),
            ("bad settings", ["optimize", "--data", b, "--config", cfg], 3, "risk_per_trade_pct"),
        ],
        "data inspect": [
            ("unknown option", ["data", "inspect", b, "--bogus"], 2, "--bogus"),
            ("missing argument", ["data", "inspect"], 2, "path"),
            ("missing file", ["data", "inspect", MISSING], 3, "mes-bars.parquet"),
            ("unreadable file", ["data", "inspect", g], 3, "garbage.parquet"),
        ],
        "data validate": [
            ("unknown option", ["data", "validate", b, "--bogus"], 2, "--bogus"),
            ("missing argument", ["data", "validate"], 2, "path"),
            ("missing file", ["data", "validate", MISSING], 3, "mes-bars.parquet"),
            ("unreadable file", ["data", "validate", g], 3, "garbage.parquet"),
        ],
        "data resample": [
            ("unknown option", ["data", "resample", b, "--to", "5m", "--out", out, "--bogus"], 2, "--bogus"),
            ("missing option", ["data", "resample", b, "--out", out], 2, "--to"),
            ("bad value", ["data", "resample", b, "--to", "7q", "--out", out], 3, "7q"),
            ("missing file", ["data", "resample", MISSING, "--to", "5m", "--out", out], 3, "mes-bars.parquet"),
            ("unreadable file", ["data", "resample", g, "--to", "5m", "--out", out], 3, "garbage.parquet"),
        ],
        "data download": [
            ("unknown option", ["data", "download", "--bogus"], 2, "--bogus"),
            ("missing settings", ["--config", MISSING_CONFIG, "data", "download"], 3, "mes-config.toml"),
            ("bad settings", ["--config", cfg, "data", "download"], 3, "risk_per_trade_pct"),
        ],
        "model info": [
            ("unknown option", ["model", "info", MISSING_MODEL, "--bogus"], 2, "--bogus"),
            ("missing argument", ["model", "info"], 2, "ckpt"),
            ("missing model", ["model", "info", MISSING_MODEL], 3, "mes-model"),
            ("unreadable model", ["model", "info", tmp], 3, tmp.rsplit("/", 1)[-1]),
        ],
        "model bench": [
            ("wrong type", ["model", "bench", MISSING_MODEL, "--bars", "x"], 2, "--bars"),
            ("missing model", ["model", "bench", MISSING_MODEL], 3, "mes-model"),
        ],
        "config show": [
            ("unknown option", ["config", "show", "--bogus"], 2, "--bogus"),
            ("missing settings", ["config", "show", "--config", MISSING_CONFIG], 3, "mes-config.toml"),
            ("bad settings", ["config", "show", "--config", cfg], 3, "risk_per_trade_pct"),
        ],
        "config check": [
            ("unknown option", ["config", "check", "--bogus"], 2, "--bogus"),
            ("missing settings", ["config", "check", "--config", MISSING_CONFIG], 3, "mes-config.toml"),
            ("bad settings", ["config", "check", "--config", cfg], 3, "risk_per_trade_pct"),
        ],
        "fake-gateway": [
            ("wrong type", ["fake-gateway", "--data", b, "--port", "x"], 2, "--port"),
            ("missing option", ["fake-gateway", "--data", b], 2, "--port"),
            ("bad date", ["fake-gateway", "--data", b, "--port", "1", "--start", "2025-13-01"], 3, "--start"),
            ("missing file", ["fake-gateway", "--data", MISSING, "--port", "1", "--username", "u", "--api-key", "k"], 3, "mes-bars.parquet"),
            ("unreadable file", ["fake-gateway", "--data", g, "--port", "1", "--username", "u", "--api-key", "k"], 3, "garbage.parquet"),
        ],
        "drift": [
            ("unknown option", ["drift", "--bogus"], 2, "--bogus"),
            ("wrong type", ["drift", "--session", "x"], 2, "--session"),
            ("missing file", ["drift", "--path", "/nonexistent/mes-journal.sqlite3"], 3, "mes-journal.sqlite3"),
            ("unreadable file", ["drift", "--path", g], 3, "garbage.parquet"),
            ("missing settings", ["drift", "--config", MISSING_CONFIG], 3, "mes-config.toml"),
        ],
        "analyze": [
            ("unknown option", ["analyze", "warmup", "--data", b, "--bogus"], 2, "--bogus"),
            ("missing option", ["analyze", "lookahead", "--strategy", "baseline"], 2, "--data"),
            ("wrong type", ["analyze", "warmup", "--data", b, "--samples", "x"], 2, "--samples"),
            ("bad date", ["analyze", "warmup", "--data", b, "--strategy", "baseline", "--start", "2025-13-01"], 3, "--start"),
            ("reversed range", ["analyze", "warmup", "--data", b, "--strategy", "baseline", "--start", "2025-03-04",
                                "--end", "2025-03-03"], 3, "reversed"),
            ("bad value", ["analyze", "lookahead", "--data", b, "--strategy", "nosuch"], 3, "nosuch"),
            ("missing file", ["analyze", "warmup", "--data", MISSING, "--strategy", "baseline"], 3, "mes-bars.parquet"),
            ("missing settings", ["analyze", "warmup", "--data", b, "--strategy", "baseline", "--config", MISSING_CONFIG],
             3, "mes-config.toml"),
            ("bad settings", ["analyze", "warmup", "--data", b, "--strategy", "baseline", "--config", cfg], 3,
             "risk_per_trade_pct"),
        ],
        "strategy": [
            ("unknown option", ["strategy", "list", "--bogus"], 2, "--bogus"),
            ("missing argument", ["strategy", "new"], 2, "name"),
            ("bad value", ["strategy", "new", "9bad", "--out", f"{tmp}/strategies"], 3, "9bad"),
        ],
        "build": [
            ("unknown option", ["build", "--bogus"], 2, "--bogus"),
            ("wrong type", ["build", "--jobs", "0"], 2, "--jobs"),
        ],
        "journal": [
            ("unknown option", ["journal", "--bogus"], 2, "--bogus"),
            ("wrong type", ["journal", "--session", "x"], 2, "--session"),
            ("bad date", ["journal", "--path", f"{tmp}/j.sqlite3", "--from", "2025-13-01"], 3, "--from"),
            ("reversed range", ["journal", "--path", f"{tmp}/j.sqlite3", "--from", "2025-03-04", "--to", "2025-03-03"], 3, "reversed"),
            ("unreadable file", ["journal", "--path", g], 3, "garbage.parquet"),
            ("missing settings", ["journal", "--config", MISSING_CONFIG], 3, "mes-config.toml"),
            ("bad settings", ["journal", "--config", cfg], 3, "risk_per_trade_pct"),
        ],
    }


def test_every_command_answers_each_bad_input_with_the_documented_code(files, capsys, monkeypatch):
    """README's table, command by command: every kind of bad input a command can get exits with
    the documented code after exactly one ``error:`` line naming what was wrong."""
    monkeypatch.delenv("DATABENTO_API_KEY", raising=False)
    table = _table(files)
    # every command the CLI lists is in the table
    listed = {c.name for c in typer.main.get_command(app).commands.values()}
    assert listed <= {name.split()[0] for name in table}, listed
    assert set(table) == {"backtest", "run", "train", "optimize", "data inspect", "data validate",
                          "data resample", "data download", "model info", "model bench",
                          "config show", "config check", "fake-gateway", "journal", "drift", "analyze",
                          "strategy", "build"}
    failures = []
    for command, cases in table.items():
        for kind, argv, code, word in cases:
            rc = guarded(app, argv)
            out, err = capsys.readouterr()
            lines = [ln for ln in err.splitlines() if ln.strip()]
            errors = [ln for ln in lines if ln.startswith("error:")]
            ok = (rc == code and len(errors) == 1 and lines[-1] == errors[0] and word in errors[0]
                  and "Traceback" not in err + out)
            if not ok:
                failures.append(f"{command} / {kind}: {' '.join(argv)} -> rc {rc} (README: {code}), stderr {err!r}")
    assert not failures, "\n".join(failures)


def test_problems_found_exit_1(files, tmp_path, capsys):
    """1: ``data validate`` found problems (a bar with high < low)."""
    import numpy as np

    from engine.data.io import load_bars

    b = load_bars(files["bars"])
    low = b.low.copy()
    low[5] = b.high[5] + 1.0
    bad = tmp_path / "bad.parquet"
    save_bars(type(b)(b.ts, b.open, b.high, low, b.close, b.volume, b.symbol, b.bar_ns, b.source), bad)
    assert np.any(low > b.high)
    assert guarded(app, ["data", "validate", str(bad), "--json"]) == 1
    capsys.readouterr()


def test_help_and_config_show_print_what_they_say(capsys, monkeypatch):
    """Help texts and ``config show`` print their brackets and placeholders as written: the
    section names (``[risk]``), ``<data dir>``-like placeholders, the live-trading flag whole at
    80 columns, no ``<bool>`` for on/off flags."""
    monkeypatch.setenv("COLUMNS", "80")
    assert guarded(app, ["config", "show"]) == 0
    out = capsys.readouterr().out
    for section in ("[risk]", "[account]", "[eod]", "[ui]", "[paths]"):
        assert re.search(rf"^{re.escape(section)} *$", out, re.M), section
    helps = {}
    for argv in (["--help"], ["run", "--help"], ["backtest", "--help"], ["train", "--help"],
                 ["optimize", "--help"], ["journal", "--help"], ["data", "validate", "--help"],
                 ["fake-gateway", "--help"], ["config", "show", "--help"]):
        assert guarded(app, argv) == 0
        helps[argv[0]] = text = capsys.readouterr().out
        assert "<bool>" not in text and "…" not in text, argv
        assert all(len(line) <= 80 for line in text.splitlines()), argv
    assert "--i-understand-this-trades-real-money" in helps["run"]
    assert "journal.sqlite3 in the data" in helps["journal"]
    assert "optimize-<data file" in " ".join(helps["optimize"].split())
    assert "[training] epochs" in helps["train"]


def test_an_internal_error_is_one_line_with_the_traceback_in_a_file(capsys, monkeypatch, tmp_path):
    import typer

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    boom = typer.Typer()

    @boom.command()
    def explode() -> None:
        raise ZeroDivisionError("a bug")

    rc = guarded(boom, [])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("internal error: ZeroDivisionError: a bug (traceback: ")
    path = err.split("(traceback: ")[1].split(")")[0]
    assert "ZeroDivisionError" in open(path).read()
    assert "Traceback" not in err
