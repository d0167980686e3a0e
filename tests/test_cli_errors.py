"""Every CLI command turns bad input into ONE ``error:`` line on stderr and the exit code
documented in ``mes_console.commands.common`` (2 usage / unreadable data, 3 bad input), never a
traceback: a bad date, a missing file and a value of the wrong type, per command."""

from __future__ import annotations

from datetime import date

import pytest

from engine.data.io import save_bars
from engine.market import generate_bars
from mes_console.cli import app
from mes_console.commands.common import guarded

MISSING = "/nonexistent/mes-bars.parquet"


@pytest.fixture(scope="module")
def bars_file(tmp_path_factory):
    """Two generated days written as a small parquet file (no real data is copied)."""
    p = tmp_path_factory.mktemp("cli") / "bars.parquet"
    save_bars(generate_bars(date(2025, 3, 3), date(2025, 3, 4), seed=1), p)
    return str(p)


def _cases(bars: str, tmp: str):
    return [
        # (argv, expected code, a word the one line must contain)
        (["backtest", "--data", bars, "--start", "2025-13-01"], 3, "month"),
        (["backtest", "--data", MISSING], (2, 3), "mes-bars.parquet"),
        (["backtest", "--data", bars, "--seed", "x"], 2, "--seed"),
        (["run", "--no-tui", "--start", "2025-13-01"], 3, "month"),
        (["run", "--no-tui", "--data", MISSING], 3, "mes-bars.parquet"),
        (["run", "--no-tui", "--seed", "x"], 2, "--seed"),
        (["run", "--no-tui", "--speed", "fast"], 3, "--speed"),
        (["train", "--data", MISSING], (2, 3), "mes-bars.parquet"),
        (["train", "--data", bars, "--epochs", "abc"], 2, "--epochs"),
        (["data", "inspect", MISSING], (2, 3), "mes-bars.parquet"),
        (["data", "validate", MISSING], (2, 3), "mes-bars.parquet"),
        (["data", "resample", MISSING, "--to", "5m", "--out", f"{tmp}/x.parquet"], (2, 3), "mes-bars.parquet"),
        # `data resample` documents 1 for a resample the engine refuses (mes_console/commands/data.py)
        (["data", "resample", bars, "--to", "banana", "--out", f"{tmp}/x.parquet"], (1, 3), "banana"),
        (["model", "info", MISSING], (2, 3), "mes-bars.parquet"),
        (["model", "bench", MISSING, "--bars", "x"], 2, "--bars"),
        (["config", "check", "--config", "/nonexistent/config.toml"], 3, "config.toml"),
        (["config", "show", "--config", "/nonexistent/config.toml"], 3, "config.toml"),
        (["fake-gateway", "--data", bars, "--port", "x"], 2, "--port"),
        (["fake-gateway", "--data", bars, "--port", "1", "--start", "2025-13-01"], 3, ""),
    ]


def test_every_command_answers_bad_input_with_one_line(bars_file, tmp_path, capsys):
    failures = []
    for argv, code, word in _cases(bars_file, str(tmp_path)):
        rc = guarded(app, argv)
        out, err = capsys.readouterr()
        codes = code if isinstance(code, tuple) else (code,)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        ok = (rc in codes and bool(lines) and lines[-1].startswith("error:") and "Traceback" not in err + out
              and len([ln for ln in lines if ln.startswith("error:")]) == 1 and word in lines[-1])
        if not ok:
            failures.append(f"{' '.join(argv)} -> rc {rc}, stderr {err!r}")
    assert not failures, "\n".join(failures)


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
