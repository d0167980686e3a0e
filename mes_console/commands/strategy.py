"""``mes-console strategy new|list``, and the ``--strategy`` plumbing the other commands share.

- ``strategy new NAME [--out DIR]``: writes ``DIR/NAME.py`` (a commented, working strategy on
  :class:`engine.strategy.api.StrategyBase` with one declared parameter) and
  ``DIR/test_NAME.py`` (its test: shapes, no lookahead, a backtest). ``DIR`` defaults to
  ``./strategies``. Refuses (exit 3) to overwrite an existing file or a NAME that is no Python
  identifier.
- ``strategy list``: the strategies found (built-ins, entry points of ``mes_console.strategies``,
  ``./strategies/*.py``, the project's ``examples/strategies``) and where (``--json``).

:func:`cli_strategy` turns ``--strategy SPEC`` and ``--param NAME=VALUE`` into a loaded strategy
or ONE ``error:`` line (exit 3) naming the file, the class and the problem.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional

import typer

from mes_console.commands.common import EXIT_USAGE, err_console, fail, out_console, print_json

app = typer.Typer(help="Write a new strategy from the template, list the strategies found.", no_args_is_help=True)

StrategyOpt = typer.Option(None, "--strategy", help="baseline | random | path/file.py:Class | package.module:Class | "
                                                    "an entry-point name (group mes_console.strategies).")
ParamOpt = typer.Option(None, "--param", help="NAME=VALUE of a declared strategy parameter; repeatable.")


def cli_strategy(spec: str, params: Optional[List[str]] = None, *, settings=None, seed: int = 7):
    """The :class:`engine.strategy.loader.LoadedStrategy` of ``--strategy spec`` with ``--param``
    values (built-ins take ``[backtest] baseline_lookback`` / ``--seed``); exits 3 with one
    line on any problem."""
    from engine.strategy.loader import StrategyError, load_strategy, parse_params

    kw: dict = {}
    if spec == "random":
        kw = {"seed": seed}
    elif spec == "baseline" and settings is not None:
        kw = {"lookback": settings.backtest.baseline_lookback}
    try:
        return load_strategy(spec, parse_params(params), builtin_kw=kw)
    except StrategyError as exc:
        fail(str(exc), code=EXIT_USAGE)


def warn(message: str) -> None:
    err_console.print(f"[bold red]warning:[/] {message}", highlight=False, soft_wrap=True, markup=True)


# ----------------------------------------------------------------------------- template
TEMPLATE = '''"""{title}: a strategy for mes-console (written by `mes-console strategy new {name}`).

Run it:
    mes-console backtest --data BARS.parquet --strategy {path}:{cls}
    mes-console analyze lookahead --data BARS.parquet --strategy {path}:{cls}
    mes-console optimize --data BARS.parquet --strategy {path}:{cls}      # searches `lookback`
    mes-console run --data BARS.parquet --strategy {path}:{cls}           # replay in the console

The rule (edit it): at the close of bar i, go LONG when the close is above the highest high of
the previous `lookback` bars and the previous bar was not already above its channel; SHORT on
the mirror rule. Everything else (bracket, size, end of day, risk limits) is the engine's.

The contract (specs/strategy.md):
- `signals(bars)` gets every bar at once (engine.data.bars.Bars: ts int64 UTC ns of the bar
  OPEN, open/high/low/close float64 points, volume float64, NaN where unknown) and returns one
  signal per bar: engine.strategy.api.make_signals(direction, confidence).
- The signal of bar i may use bars 0..i only, never later ones (`analyze lookahead` checks it).
- `warmup`: the bars of history one signal needs; a live session evaluates `signals` on the
  last `warmup + 1` bars at every bar close, so a signal must not depend on older bars.
- `params`: what `optimize` and `backtest --walk-forward` search; `__init__` sets each one as an
  attribute (self.lookback).
- `version`: recorded in every report and in the journal; bump it when the rule changes.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from engine.strategy.api import IntParam, StrategyBase, make_signals


class {cls}(StrategyBase):
    name = "{name}"
    version = "1"
    params = (IntParam("lookback", 10, 120, 30, step=5, doc="channel length, bars"),)
    warmup = 121          # the longest lookback + 1: the bars one signal may look back on
    lookback: int         # set by StrategyBase.__init__ from `params`

    def signals(self, bars):
        n, k = len(bars), self.lookback
        state = np.zeros(n, np.int8)          # +1 above the channel, -1 below, 0 inside
        prev = np.zeros(n, np.int8)           # the state of the bar before
        if n > k:
            # highest high / lowest low of the k bars BEFORE bar i (bar i itself excluded)
            hh = sliding_window_view(bars.high, k)[:-1].max(axis=1)
            ll = sliding_window_view(bars.low, k)[:-1].min(axis=1)
            c = bars.close[k:]
            state[k:] = np.where(c > hh, 1, np.where(c < ll, -1, 0))
            prev[k + 1:] = state[k:-1]
            prev[k] = state[k]                # the first bar with a channel has no previous state
        direction = np.where((state != 0) & (state != prev), state, 0)
        return make_signals(direction, confidence=0.70)   # 0.70: size multiplier 1.0 by default
'''

TEST_TEMPLATE = '''"""Tests of {path} (written by `mes-console strategy new {name}`): run with
`python -m pytest {test_path}`. BARS: set MES_BARS to a bars file, or the project's real data
beside the checkout is used."""

import os
from pathlib import Path

import numpy as np

from engine.data import load_bars
from engine.backtest.runner import run_backtest, slice_dates
from engine.config import Settings
from engine.strategy.analysis import lookahead
from engine.strategy.loader import load_strategy

HERE = Path(__file__).resolve().parent
SPEC = f"{{HERE / '{file}'}}:{cls}"


def _bars():
    path = os.environ.get("MES_BARS") or next(
        p for p in (Path.cwd().parent / "shared/data/es_1m_2024-12-03_2025-12-15.parquet",
                    HERE.parent.parent / "shared/data/es_1m_2024-12-03_2025-12-15.parquet") if p.exists())
    return slice_dates(load_bars(path), "2025-10-06", "2025-10-08")


def test_one_signal_per_bar_and_no_lookahead():
    bars = _bars()
    s = load_strategy(SPEC)
    sig = s.signals(bars)                       # checked: length, dtype, directions, confidence
    assert len(sig.direction) == len(bars) and (sig.direction != 0).sum() > 0
    assert lookahead(s, bars, points=8)["pass"]


def test_backtest_runs():
    bars = _bars()
    res = run_backtest(bars, load_strategy(SPEC, {{"lookback": 20}}).signals(bars), Settings())
    assert res.bars == len(bars) and np.isfinite(res.equity).all()
'''


@app.command("new")
def new(name: str = typer.Argument(..., help="Strategy name: a Python identifier (file NAME.py)."),
        out: Path = typer.Option(Path("strategies"), "--out", help="Folder for NAME.py and test_NAME.py.")) -> None:
    """Write a commented, working strategy file and its test."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        fail(f"strategy name {name!r}: use a Python identifier (letters, digits, _)", code=EXIT_USAGE)
    cls = "".join(p[:1].upper() + p[1:] for p in name.split("_") if p) or "Strategy"
    f, t = out / f"{name}.py", out / f"test_{name}.py"
    for p in (f, t):
        if p.exists():
            fail(f"{p}: exists; not overwritten", code=EXIT_USAGE)
    out.mkdir(parents=True, exist_ok=True)
    title = name.replace("_", " ").capitalize()
    f.write_text(TEMPLATE.format(title=title, name=name, cls=cls, path=f))
    t.write_text(TEST_TEMPLATE.format(name=name, cls=cls, path=f, file=f.name, test_path=t))
    out_console.print(f"wrote {f} (class {cls}) and {t}", highlight=False)
    out_console.print(f"try: mes-console backtest --data BARS --strategy {f}:{cls}", highlight=False)


@app.command("list")
def list_(json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
          folder: Optional[List[Path]] = typer.Option(None, "--dir", help="Also read the *.py files of this folder; repeatable.")) -> None:
    """The strategies found (built-ins, entry points, ./strategies, examples/strategies) and where."""
    from engine.strategy.loader import default_dirs, discover

    rows = discover(default_dirs() + list(folder or []))
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    import os

    t = Table(title="strategies found")
    for c in ("name", "kind", "--strategy (files relative to here)", "where"):
        t.add_column(c, overflow="fold")
    for r in rows:
        spec = r["spec"]
        if r["kind"].startswith("file"):
            rel = os.path.relpath(spec)
            spec = rel if len(rel) < len(spec) else spec
            where = ""
        else:
            where = r["where"]
        t.add_row(r["name"], r["kind"], spec, where)
    out_console.print(t)


# ----------------------------------------------------------------------------- walk-forward output
def print_walk_forward(r, doc: dict, objective: str) -> None:
    """The per-fold table (chosen parameters, test figures), the stitched out-of-sample line and
    the go-live table of :func:`engine.strategy.walkforward.strategy_walk_forward`."""
    from rich.table import Table

    t = Table(title=f"walk-forward optimization · {doc['strategy']['name']} v{doc['strategy']['version']} · "
                    f"{doc['fill_model']} · {doc['windows']}")
    for c in ("fold", "test", "params", f"in-sample {objective}", "trades", "net $", "sharpe", "max dd $"):
        t.add_column(c, justify="right")
    for f in doc["folds"]:
        ins = f["in_sample"].get(objective)
        t.add_row(str(f["fold"] + 1), f["test"]["start"][:10], ", ".join(f"{k}={v}" for k, v in f["params"].items()),
                  "—" if ins is None else f"{ins:.3g}", str(f["trades"]), f"{f['net_pnl']:,.2f}",
                  f"{f['sharpe']:.2f}", f"{f['max_drawdown']:,.2f}")
    m = doc["metrics"]
    t.add_row("all", "stitched", "", "", str(m.get("trades", 0)), f"{m.get('net_pnl', 0.0):,.2f}",
              f"{m.get('sharpe', 0.0):.2f}", f"{m.get('max_drawdown', 0.0):,.2f}", style="bold")
    out_console.print(t)
    out_console.print(go_live_table(r.go_live, "go-live check (R-BT-4; accuracy = out-of-sample trade win rate)"))
    out_console.print("go live: " + ("PASS" if r.go_live["pass"] else "NO — at least one criterion failed"))


def go_live_table(go_live: dict, title: str):
    """A rich table of the R-BT-4 go-live checks (:func:`engine.backtest.walkforward.go_live_check`):
    criterion, value, threshold, pass/FAIL."""
    from rich.table import Table

    g = Table(title=title)
    for c in ("criterion", "value", "threshold", "result"):
        g.add_column(c)
    for name, c in go_live["checks"].items():
        v = c["value"]
        if isinstance(v, dict):
            missing = [k for k, ok in v.items() if not ok]
            v = "all" if not missing else "not exercised: " + ", ".join(missing)
        elif isinstance(v, float):
            v = f"{v:.3f}"
        g.add_row(name, str(v), str(c["threshold"]), "[green]pass[/]" if c["pass"] else "[red]FAIL[/]")
    return g


__all__ = ["go_live_table", "app", "cli_strategy", "StrategyOpt", "ParamOpt", "print_walk_forward", "TEMPLATE", "warn"]
