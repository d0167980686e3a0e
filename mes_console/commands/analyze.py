"""``mes-console analyze lookahead|warmup|streaming``: checks of a strategy's (or a model's)
signals on real bars before any money is at stake (:mod:`engine.strategy.analysis`).

- ``lookahead``: signals of the whole data vs the data truncated at ``--points`` cut points;
  exit 1 naming the first offending bars when a signal changes once later bars are removed.
- ``warmup``: the bars of history the signals need before they stop changing.
- ``streaming``: a strategy's streaming ``update`` vs its batch ``signals``; exit 1 naming the
  first differing bars.

A pass of ``lookahead`` / ``streaming`` is recorded for the strategy (file, class, version, file
hash, parameters) and the bar size in ``<state dir>/strategy_checks.json``: ``backtest`` and
``run --mode live`` warn without a lookahead pass; ``run --mode live`` refuses a strategy with an
``update`` that has no streaming pass. Exit codes: 0 pass, 1 problems found, 2 unreadable data,
3 bad input (a bad strategy file: one line naming it).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mes_console.commands.common import EXIT_PROBLEMS, EXIT_UNREADABLE, EXIT_USAGE, fail, out_console, print_json, settings_from
from mes_console.commands.options import ConfigOpt, DataOpt, JsonOpt
from mes_console.commands.strategy import ParamOpt, StrategyOpt, cli_strategy

app = typer.Typer(help="Lookahead, warm-up and batch = streaming checks of a strategy's signals.", no_args_is_help=True)

ModelOpt = typer.Option(None, "--model", help="A model checkpoint instead of --strategy.")
StartOpt = typer.Option(None, "--start", help="First UTC date (YYYY-MM-DD), inclusive.")
EndOpt = typer.Option(None, "--end", help="Last UTC date (YYYY-MM-DD), inclusive.")


def _subject(strategy: Optional[str], params, model: Optional[Path], settings):
    from engine.strategy.loader import LoadedStrategy

    if (strategy is None) == (model is None):
        fail("give --strategy or --model (one of them)", code=EXIT_USAGE)
    if model is not None:
        from engine.strategy.model import ModelStrategy

        if not Path(model).exists():
            fail(f"{model}: no such checkpoint", code=EXIT_USAGE)
        return LoadedStrategy(ModelStrategy(model), str(model), f"model:{model}", None, "model", {}, ModelStrategy)
    return cli_strategy(strategy, params, settings=settings)


def _bars(data: Path, start, end, settings):
    from mes_console.commands.loading import load_bars_checked

    return load_bars_checked(data, start=start, end=end, settings=settings, exit_code=EXIT_UNREADABLE, quiet=True)


def _guard(call):
    from engine.ml.checkpoint import CheckpointError
    from engine.strategy.loader import StrategyError

    try:
        return call()
    except (StrategyError, CheckpointError) as exc:
        fail(str(exc), code=EXIT_USAGE)
    except ValueError as exc:
        fail(str(exc), code=EXIT_USAGE)


@app.command("lookahead")
def lookahead_cmd(ctx: typer.Context, data: Path = DataOpt, strategy: Optional[str] = StrategyOpt,
                  param: Optional[List[str]] = ParamOpt, model: Optional[Path] = ModelOpt,
                  start: Optional[str] = StartOpt, end: Optional[str] = EndOpt,
                  points: int = typer.Option(20, "--points", min=1, help="Cut points (truncations) checked."),
                  config: Optional[Path] = ConfigOpt, json_out: bool = JsonOpt) -> None:
    """Flag any bar whose signal changes when later bars are removed (exit 1, first bars named)."""
    from engine.strategy.analysis import CheckRecords, bar_seconds, lookahead

    s = settings_from(ctx, config)
    subj = _subject(strategy, param, model, s)
    bars = _bars(data, start, end, s)
    r = _guard(lambda: lookahead(subj, bars, points=points))
    r["strategy"] = subj.describe()
    r["bar_seconds"] = bar_seconds(bars)
    if r["pass"]:
        _guard(lambda: CheckRecords.for_settings(s).record(subj, "lookahead", bar_seconds(bars), r))
    if json_out:
        print_json(r)
    elif r["pass"]:
        out_console.print(f"lookahead: PASS · {subj.label()} · {r['bars']:,} bars, {r['cuts']} truncations: no signal "
                          "changed when later bars were removed", highlight=False)
    else:
        out_console.print(f"lookahead: FAIL · {subj.label()} · {r['offending']} bar(s) changed when later bars were "
                          "removed (the signal used the future); first:", highlight=False)
        for b in r["first"]:
            out_console.print(f"  bar {b['bar']} at {b['time']}: full data {b['full']}, data cut at bar {b['cut']} "
                              f"{b['truncated']} (direction, confidence)", highlight=False)
    if not r["pass"]:
        raise typer.Exit(EXIT_PROBLEMS)


@app.command("warmup")
def warmup_cmd(ctx: typer.Context, data: Path = DataOpt, strategy: Optional[str] = StrategyOpt,
               param: Optional[List[str]] = ParamOpt, model: Optional[Path] = ModelOpt,
               start: Optional[str] = StartOpt, end: Optional[str] = EndOpt,
               samples: int = typer.Option(30, "--samples", min=1, help="Bars sampled over the second half."),
               config: Optional[Path] = ConfigOpt, json_out: bool = JsonOpt) -> None:
    """Bars of history the signals need before they stop changing with more history (exit 1 when
    the declared warm-up is shorter)."""
    from engine.strategy.analysis import warmup

    s = settings_from(ctx, config)
    subj = _subject(strategy, param, model, s)
    bars = _bars(data, start, end, s)
    r = _guard(lambda: warmup(subj, bars, samples=samples))
    r["strategy"] = subj.describe()
    if json_out:
        print_json(r)
    else:
        need = "more than the longest history tried" if r["needed"] is None else f"{r['needed']} bars"
        out_console.print(f"warm-up: {subj.label()} needs {need} of history (declared warmup {r['declared']}); "
                          f"samples differing by history length: {r['tried']}", highlight=False)
        if not r["ok"]:
            out_console.print("the declared warmup is too short: a live session's trailing window would give "
                              "other signals than the backtest", highlight=False)
    if not r["ok"]:
        raise typer.Exit(EXIT_PROBLEMS)


@app.command("streaming")
def streaming_cmd(ctx: typer.Context, data: Path = DataOpt, strategy: str = typer.Option(..., "--strategy", help="The strategy (with an update method)."),
                  param: Optional[List[str]] = ParamOpt, start: Optional[str] = StartOpt,
                  end: Optional[str] = EndOpt, config: Optional[Path] = ConfigOpt,
                  json_out: bool = JsonOpt) -> None:
    """Batch = streaming: the strategy's update(), bar by bar, against its signals() (exit 1 on a
    difference; live trading is refused until this passes on the bar size)."""
    from engine.strategy.analysis import CheckRecords, bar_seconds
    from engine.strategy.runtime import check_stream

    s = settings_from(ctx, config)
    subj = cli_strategy(strategy, param, settings=s)
    if not subj.has_update:
        fail(f"{subj.where}: has no update(ts, o, h, l, c, v) method: sessions use its batch signals", code=EXIT_USAGE)
    bars = _bars(data, start, end, s)
    fresh = subj.with_params(subj.params)
    r = _guard(lambda: check_stream(subj, fresh, bars))
    r["strategy"] = subj.describe()
    if r["pass"]:
        _guard(lambda: CheckRecords.for_settings(s).record(subj, "streaming", bar_seconds(bars), r))
    if json_out:
        print_json(r)
    else:
        out_console.print(f"batch = streaming: {'PASS' if r['pass'] else 'FAIL'} · {subj.label()} · {r['bars']:,} bars"
                          + ("" if r["pass"] else f", {r['differ']} differ; first bars {r['first']}"), highlight=False)
    if not r["pass"]:
        raise typer.Exit(EXIT_PROBLEMS)
