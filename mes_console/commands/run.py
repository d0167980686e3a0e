"""``mes-console run`` and the bare ``mes-console`` demo: a trading session in the console or
headless.

Headless (``--no-tui``) never imports textual: logs are JSON lines on stdout, SIGINT/SIGTERM shut
down in order (cancel working entries, flatten, save state, write the report).

Exit codes: 0 the session ended (end of data or operator quit); 1 an unhandled error (the
session flattened and halted first); 3 bad arguments, settings, data or checkpoint (nothing
traded); 4 stopped by SIGINT/SIGTERM after an orderly shutdown.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from mes_console.commands.common import EXIT_USAGE, check_dates, fail, settings_from
from mes_console.commands.drive import run_headless, run_tui
from mes_console.commands.loading import FrontMonthOpt, RepairOpt, StrictOpt

def _parse_speed(text: str) -> float | None:
    if text.lower() == "max":
        return None
    try:
        v = float(text.rstrip("xX"))
    except ValueError:
        fail(f"--speed {text!r}: give a number of simulated seconds per second (e.g. 60) or 'max'",
             code=EXIT_USAGE)
    if v <= 0:
        fail(f"--speed {text!r}: must be > 0 or 'max'", code=EXIT_USAGE)
    return v


def build_replay_session(settings, *, data: Path | None, start: str | None, end: str | None,
                         speed: float | None, model: Path | None, report: Path | None,
                         ring=None, seed: int = 0, mode_label: str = "replay", bars=None,
                         journal: Path | None = None, strategy=None):
    """The replay :class:`Session`, built by the composition root (:mod:`engine.compose`): its
    market-data source (``data`` sliced to ``start``..``end``, or the generated market) and the
    session. Raises ``engine`` errors with messages naming the file or checkpoint. ``bars``
    given (already through the validation gate and sliced) are used instead of loading ``data``.
    ``journal``: the trade journal the session writes (None = none). ``strategy``: a loaded
    strategy (:class:`engine.strategy.loader.LoadedStrategy`) instead of the model/baseline."""
    from engine import compose

    pace_from = 0
    if bars is None:
        bars, pace_from, label = compose.replay_bars(settings, data=data, start=start, end=end, seed=seed)
        if label == "demo":
            mode_label = label
    return compose.replay(settings, bars, model=model, speed=speed, report=report, ring=ring,
                          pace_from_ns=pace_from, mode_label=mode_label, journal=journal,
                          strategy=strategy)


def default_outputs(settings, label: str) -> tuple[Path, Path]:
    """(report, journal) of a demo/replay session started from the command line: the JSON
    report ``session-<demo|replay>-<UTC stamp>.json`` in the reports directory (as a paper/live
    session's), and the simulated sessions' journal
    (:func:`engine.journal.default_sim_journal_path`)."""
    from datetime import datetime, timezone

    from engine.config import resolve_dir
    from engine.journal import default_sim_journal_path

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    report = resolve_dir(settings.paths.reports_dir, "reports") / f"session-{label}-{stamp}.json"
    return report, default_sim_journal_path(settings)


def execute(ctx: typer.Context | None, *, mode: str = "replay", data: Optional[Path] = None,
            start: Optional[str] = None, end: Optional[str] = None, speed: str = "60",
            model: Optional[Path] = None, no_tui: bool = False, json_report: Optional[Path] = None,
            seed: int = 0, config: Optional[Path] = None, live_options: dict | None = None,
            data_options: dict | None = None, strategy: Optional[str] = None,
            params: Optional[list] = None) -> int:
    """Shared body of ``run`` and the bare demo. ``live_options`` (paper/live only):
    ``gateway_url``, ``confirm_live``. ``strategy``/``params``: ``--strategy``/``--param``
    (:func:`mes_console.commands.strategy.cli_strategy`)."""
    from engine import logs
    from engine.config import ConfigError

    check_dates(start, end)
    settings = settings_from(ctx, config)
    loaded = None
    if strategy is not None or params:
        from mes_console.commands.strategy import cli_strategy

        if model is not None:
            fail("give --model or --strategy, not both", code=EXIT_USAGE)
        loaded = cli_strategy(strategy or settings.backtest.strategy, params, settings=settings, seed=seed)
    if mode in ("paper", "live"):
        from mes_console.commands.run_live import execute_live

        return execute_live(ctx, settings, mode=mode, model=model, no_tui=no_tui,
                            json_report=json_report, strategy=loaded, **(live_options or {}))
    if mode != "replay":
        fail(f"--mode {mode!r}: choose replay, paper or live", code=EXIT_USAGE)
    spd = _parse_speed(speed)
    bars = None
    if data is not None:
        from mes_console.commands.loading import load_bars_checked

        opts = data_options or {}
        bars = load_bars_checked(data, start=start, end=end, settings=settings,
                                 exit_code=EXIT_USAGE, strict=opts.get("strict"),
                                 repair=bool(opts.get("repair")),
                                 front_month=bool(opts.get("front_month")))
    ring = logs.RingHandler(500)
    logs.reset()
    if no_tui:
        logs.install([logs.json_handler(sys.stdout), ring])
    else:
        logs.install([ring])
    # every record carries the session's simulated clock (from its first bar), the records of
    # the build too: held until set_clock, released on any way out (engine.logs)
    with logs.holding():
        try:
            report, journal = default_outputs(settings, "demo" if data is None else "replay")
            session = build_replay_session(settings, data=data, start=start, end=end, speed=spd,
                                           model=model, report=json_report or report, ring=ring, seed=seed,
                                           bars=bars, journal=journal, strategy=loaded)
        except (ConfigError, ValueError, FileNotFoundError, OSError) as exc:
            fail(str(exc), code=EXIT_USAGE)
        logs.set_clock(session.clock.now_ns)
        if no_tui:
            return run_headless(session, f"{session.cfg.mode}, {len(session.bars)} bars, "
                                         f"signals: {session.signals.label}")
        return run_tui(session, settings)


def demo(ctx: typer.Context) -> None:
    """Bare ``mes-console``: the embedded demo replay in the console."""
    obj = ctx.find_root().obj or {}
    raise typer.Exit(execute(ctx, strategy=obj.get("strategy")))


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        ctx: typer.Context,
        mode: str = typer.Option("replay", "--mode", help="replay (bars through the simulated venue), paper or live."),
        data: Optional[Path] = typer.Option(None, "--data", help="Bars file (parquet/CSV/DBN). Default: the embedded generated MES market."),
        start: Optional[str] = typer.Option(None, "--start", help="First day (YYYY-MM-DD, UTC date of the bar open)."),
        end: Optional[str] = typer.Option(None, "--end", help="Last day, inclusive."),
        speed: str = typer.Option("60", "--speed", help="Simulated seconds per real second (1 = real time), or 'max'."),
        model: Optional[Path] = typer.Option(None, "--model", help="Model checkpoint directory. Default: the rule-based baseline."),
        strategy: Optional[str] = typer.Option(None, "--strategy", help="A strategy instead of a model: baseline | random | path/file.py:Class | package.module:Class | an entry-point name."),
        param: Optional[List[str]] = typer.Option(None, "--param", help="NAME=VALUE of a declared strategy parameter; repeatable."),
        no_tui: bool = typer.Option(False, "--no-tui", help="Headless: no console, JSON-lines logs on stdout."),
        json_report: Optional[Path] = typer.Option(None, "--json-report", help="Write the session report (JSON) here at shutdown (default: session-MODE-STAMP.json in the reports directory)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the generated market (no --data)."),
        config: Optional[Path] = typer.Option(None, "--config", help="TOML settings file."),
        gateway_url: Optional[str] = typer.Option(None, "--gateway-url", help="paper: ProjectX gateway base URL (e.g. a local `mes-console fake-gateway`)."),
        confirm_live: bool = typer.Option(False, "--i-understand-this-trades-real-money", help="live + --no-tui: the explicit confirmation that live trading needs headless."),
        strict: Optional[bool] = StrictOpt,
        repair: bool = RepairOpt,
        front_month: bool = FrontMonthOpt,
    ) -> None:
        """Run a trading session: the backtest's kernel, bar by bar, with streaming features and model.

        Exit codes: 0 ended, 1 error (flattened and halted first), 3 bad input (including --data
        refused by the validation gate: non-finite prices, unsorted rows, or --strict errors), 4
        stopped by SIGINT/SIGTERM after an orderly shutdown.
        """
        raise typer.Exit(execute(ctx, mode=mode, data=data, start=start, end=end, speed=speed,
                                 model=model, no_tui=no_tui, json_report=json_report, seed=seed,
                                 config=config, strategy=strategy, params=param,
                                 live_options={"gateway_url": gateway_url, "confirm_live": confirm_live},
                                 data_options={"strict": strict, "repair": repair,
                                               "front_month": front_month}))
