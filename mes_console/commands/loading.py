"""One validation gate for every command that loads bars: ``train``, ``backtest``, ``run --mode
replay``, ``fake-gateway`` (and ``optimize``).

:func:`load_bars_checked` loads the file (``--front-month`` for multi-contract files, the same
rule as ``mes-console data``), slices it to ``--start``/``--end``, runs
:func:`engine.data.gate.check_bars` and prints the summary on stderr. The summary also rides on
the returned bars (``bars.validation``, a dict) so a command can put it in its ``--json``.

Always refused (one line on stderr, no traceback, ``exit_code``): an unreadable file, an empty
selection, a non-finite price, duplicate or unsorted timestamps. With ``--strict`` (or
``[data] strict = true``) any validation error refuses too, before anything is run or written.
``--repair`` drops the flagged bars and says how many, per kind.

Exit code of a refusal: 3 (bad input, the table of :mod:`mes_console.commands.common`) for
every command: a missing, unreadable or refused data file and a bad ``--start``/``--end``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer

from engine.data.bars import Bars
from mes_console.commands.common import EXIT_UNREADABLE, EXIT_USAGE, check_dates, err_console

StrictOpt = typer.Option(None, "--strict/--no-strict",
                         help="Refuse to run when the data has validation errors (default: "
                              "the data.strict setting, false).")
RepairOpt = typer.Option(False, "--repair",
                         help="Drop the bars the validator flags (errors and bad prints) and say "
                              "how many, per kind.")
FrontMonthOpt = typer.Option(False, "--front-month",
                             help="A file with several contracts: keep the front month per "
                                  "trading day (default: refuse such a file).")


@dataclass(frozen=True)
class CheckedBars(Bars):
    """:class:`Bars` that passed the gate; ``validation`` is the gate's summary (see
    :meth:`engine.data.gate.GateResult.summary`)."""

    validation: dict = field(default_factory=dict, compare=False)


def _say(line: str) -> None:
    from rich.markup import escape

    err_console.print(escape(line), highlight=False, soft_wrap=True)


def load_bars_checked(path: Path | str, *, start: Optional[str] = None, end: Optional[str] = None,
                      front_month: bool = False, strict: Optional[bool] = None,
                      repair: bool = False, settings: Any = None, tz: Optional[str] = None,
                      exit_code: int = EXIT_UNREADABLE, quiet: bool = False) -> CheckedBars:
    """Load, slice, validate; refuse or return the bars to use.

    Args:
        path: bars file (parquet, CSV, DBN).
        start, end: first/last UTC date (YYYY-MM-DD, inclusive), as ``backtest``/``run``.
        front_month: keep the front month per trading day in a multi-contract file.
        strict: refuse on validation errors; None = ``settings.data.strict`` (False without it).
        repair: drop the flagged bars (:data:`engine.data.gate.REPAIR_KINDS`).
        settings: :class:`engine.config.Settings` (tick size from the instrument, ``[data]``).
        tz: zone of naive timestamps in the file.
        exit_code: exit status of a refusal (3, bad input, by default).
        quiet: do not print the summary when the data is clean.

    Returns:
        :class:`CheckedBars` (a :class:`Bars`) with ``validation`` = the summary dict.

    Exits (``typer.Exit``) with ``exit_code`` after one ``error:`` line on stderr when the file
    is unusable or refused; with 3 (bad input) when ``start``/``end`` are not dates, are reversed
    (:func:`mes_console.commands.common.check_dates`, before the file is read) or select nothing.
    """
    from engine.data import DataError, load_bars
    from engine.data.gate import check_bars

    check_dates(start, end)  # a bad or reversed date is named before the file is read
    if strict is None:
        strict = bool(getattr(getattr(settings, "data", None), "strict", False))
    tick = 0.25  # MES/ES/MNQ/NQ all quote in 0.25 points; settings name the instrument
    if settings is not None:
        from engine.instruments import spec

        tick = float(spec(settings.instrument.symbol).tick_size)  # the symbol is validated by config
    try:
        bars = load_bars(Path(path), multi_contract="front-month" if front_month else "refuse",
                         tz=tz)
    except (DataError, OSError) as exc:
        _fail(_text(exc, path), exit_code)
    if start or end:
        from engine.data.gate import require_usable

        try:
            require_usable(bars)  # slicing needs ascending time
        except DataError as exc:
            _fail(_text(exc, path), exit_code)
        from engine.backtest.runner import slice_dates

        try:
            bars = slice_dates(bars, start, end)
        except ValueError as exc:
            _fail(f"{path}: {exc}", EXIT_USAGE)
    try:
        res = check_bars(bars, strict=strict, repair=repair, tick_size=tick)
    except DataError as exc:
        _fail(_text(exc, path), exit_code)
    summary = res.summary()
    if not (quiet and summary["ok"] and not summary["warnings"] and not repair):
        for line in res.lines():
            _say(line)
    b = res.bars
    return CheckedBars(b.ts, b.open, b.high, b.low, b.close, b.volume, b.symbol, b.bar_ns,
                       b.source, validation=summary)


def _fail(message: str, code: int) -> NoReturn:
    """``error: message`` on ONE line of stderr (no wrapping, no markup), then exit ``code``."""
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _text(exc: Exception, path: Path | str) -> str:
    msg = str(exc)
    return msg if str(path) in msg else f"{path}: {msg}"


__all__ = ["load_bars_checked", "CheckedBars", "StrictOpt", "RepairOpt", "FrontMonthOpt"]
