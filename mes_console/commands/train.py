"""``mes-console train``: walk-forward training of a 3-class model on real bars (R-ML-3, R-ML-4).

Progress (folds, epochs, losses) is drawn with rich on stderr; the per-fold out-of-sample table
(model accuracy next to the majority-class and persistence baselines) goes to stdout, or one JSON
document with ``--json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mes_console.commands.loading import FrontMonthOpt, RepairOpt, StrictOpt
from mes_console.commands.options import ConfigOpt, DataOpt, JsonOpt

from mes_console.commands.common import (EXIT_PROBLEMS, EXIT_UNREADABLE, EXIT_USAGE, err_console, fail,
                                         out_console, print_json, settings_from)


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def results_table(summary: dict) -> Table:
    """Per-fold out-of-sample accuracy next to the majority-class and persistence baselines,
    plus the combined row (per-class figures and confusion matrices are in ``--json``)."""
    from rich import box

    t = Table(title="out-of-sample test months: accuracy vs majority-class and persistence "
              "baselines; log loss vs the training class prior", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("fold", "test", "rows", "model", "majority", "persist", "logloss", "prior", "win"):
        t.add_column(col, justify="left" if col == "test from" else "right", no_wrap=True)
    for f in summary["folds"]:
        m, b = f["metrics"], f["baselines"]
        acc, ma, pa = m["accuracy"], b["majority"]["accuracy"], b["persistence"]["accuracy"]
        t.add_row(str(f["fold"] + 1), f["test"]["start"][:7], str(m["n"]), _pct(acc),
                  _pct(ma), _pct(pa), f"{m['log_loss']:.4f}",
                  f"{b['prior_log_loss']:.4f}", "[green]yes[/]" if acc > max(ma, pa) else "[red]no[/]")
    c = summary["combined"]
    acc, ma, pa = c["model"]["accuracy"], c["majority"]["accuracy"], c["persistence"]["accuracy"]
    t.add_row("all", "all", str(c["model"]["n"]), _pct(acc), _pct(ma), _pct(pa),
              f"{c['model']['log_loss']:.4f}", f"{c['prior_log_loss']:.4f}", "[green]yes[/]" if acc > max(ma, pa) else "[red]no[/]",
              style="bold")
    return t


def trades_table(summary: dict) -> Table | None:
    """Per-fold out-of-sample trades after costs (bracket outcome of each signal, one position
    at a time): the model at the kernel's confidence threshold, the model at any confidence, and
    the rule strategy on the same test window. Expectancy in ticks (± standard error) and $ per
    contract per trade."""
    from rich import box

    folds = summary["folds"]
    if not folds or not folds[0].get("trading"):
        return None
    thr = folds[0]["trading"]["min_confidence"]
    t = Table(title=f"out-of-sample trades after costs, one at a time: model at confidence ≥ {thr:g}, "
              "model at any confidence, rule strategy", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("fold", "test", "n", "ticks", "$/tr", "n any", "$ any", "n rule", "$ rule"):
        t.add_column(col, justify="right", no_wrap=True)

    def cells(tr):
        m, a, r = (tr[k]["one_at_a_time"] for k in ("model", "model_any", "rule"))
        return (str(m["trades"]), f"{m['mean_ticks']:+.2f}±{m['se_ticks']:.2f}", f"{m['mean_usd']:+.2f}",
                str(a["trades"]), f"{a['mean_usd']:+.2f}", str(r["trades"]), f"{r['mean_usd']:+.2f}")

    for f in folds:
        t.add_row(str(f["fold"] + 1), f["test"]["start"][2:7], *cells(f["trading"]))
    t.add_row("all", "all", *cells(summary["combined"]["trading"]), style="bold")
    return t


def register(root_app: typer.Typer) -> None:
    """Add the top-level ``train`` command to ``root_app``."""

    @root_app.command("train")
    def train(
        ctx: typer.Context,
        data: Path = DataOpt,
        arch: Optional[str] = typer.Option(None, "--arch", help="mlp | lstm | hybrid | transformer (default: [training] arch)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Directory for the checkpoint (default: the models dir)."),
        walk_forward: bool = typer.Option(False, "--walk-forward", help="Train and test every fold, not only the most recent."),
        epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Maximum epochs (default: [training] epochs)."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Seed (default: [training] seed)."),
        name: Optional[str] = typer.Option(None, "--name", help="Checkpoint directory name."),
        config: Optional[Path] = ConfigOpt,
        json_out: bool = JsonOpt,
        strict: Optional[bool] = StrictOpt,
        repair: bool = RepairOpt,
        front_month: bool = FrontMonthOpt,
    ) -> None:
        """Train a 3-class model (DOWN/FLAT/UP) and save a verified checkpoint.

        The bars pass the validation gate first: exit 3 with one line on stderr for unusable
        data and, with --strict, for any validation error."""
        from engine.config import resolve_dir
        from engine.instruments import spec
        from engine.ml.models import ARCHS
        from engine.ml.pipeline import train_from_bars
        from engine.ml.training import TrainParams

        s = settings_from(ctx, config)
        arch_ = arch or s.training.arch
        if arch_ not in ARCHS:
            fail(f"--arch {arch_!r}: allowed {', '.join(ARCHS)}", code=EXIT_USAGE)
        out_dir = out if out is not None else resolve_dir(s.paths.models_dir, "models")
        from mes_console.commands.loading import load_bars_checked

        bars = load_bars_checked(data, front_month=front_month, strict=strict, repair=repair,
                                 settings=s, exit_code=EXIT_UNREADABLE)
        params = TrainParams.from_config(s.training, epochs=epochs, seed=seed)
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                            console=err_console, transient=False)
        tasks: dict = {}

        def on_progress(ev: dict) -> None:
            kind = ev["event"]
            if kind == "plan":
                err_console.print(f"{ev['note']}; {ev['usable_rows']:,} of {ev['rows']:,} bars usable; "
                                  f"{len(ev['features'])} features"
                                  f"{'' if ev['has_volume'] else ' (volume features dropped: the data has no volume)'}; "
                                  f"device {ev['device']}; labels {ev['class_balance']}", highlight=False)
                tasks["folds"] = progress.add_task("folds", total=ev["folds"], info="")
            elif kind == "fold_start":
                if "epochs" in tasks:
                    progress.remove_task(tasks["epochs"])
                tasks["epochs"] = progress.add_task(f"fold {ev['fold'] + 1} epochs", total=params.epochs, info="")
            elif kind == "epoch":
                progress.update(tasks["epochs"], completed=ev["epoch"],
                                info=f"train {ev['train_loss']:.4f} val {ev['val_loss']:.4f} acc {ev['val_acc']:.3f}")
            elif kind == "done":
                progress.update(tasks["epochs"], total=ev["epochs_run"], completed=ev["epochs_run"])
            elif kind == "fold_done":
                progress.update(tasks["folds"], advance=1,
                                info=f"fold {ev['fold'] + 1}: acc {ev['test_acc']:.3f} vs majority "
                                     f"{ev['majority_acc']:.3f} / persistence {ev['persistence_acc']:.3f}")

        try:
            with progress:
                rep = train_from_bars(bars, out_dir=out_dir, arch=arch_, walk_forward=walk_forward,
                                      params=params, training_cfg=s.training, target_cfg=s.target,
                                      tick_size=spec(s.instrument.symbol).tick_size, data_path=str(data),
                                      name=name, on_progress=on_progress, settings=s)
        except ValueError as exc:
            fail(str(exc), code=EXIT_PROBLEMS)
        if json_out:
            print_json({**rep.summary, "data_validation": bars.validation})
            return
        out_console.print(results_table(rep.summary["walk_forward"]))
        tt = trades_table(rep.summary["walk_forward"])
        if tt is not None:
            out_console.print(tt)
        c = rep.summary["walk_forward"]["combined"]
        beats = c["model"]["accuracy"] > max(c["majority"]["accuracy"], c["persistence"]["accuracy"])
        out_console.print(
            f"combined out-of-sample accuracy {_pct(c['model']['accuracy'])} vs majority "
            f"{_pct(c['majority']['accuracy'])} and persistence {_pct(c['persistence']['accuracy'])}: "
            + ("the model beats both baselines" if beats else "the model does NOT beat both baselines")
            + f"; log loss {c['model']['log_loss']:.4f} vs {c['prior_log_loss']:.4f} for the training class prior.")
        tr = c.get("trading")
        if tr:
            m, a, r = (tr[k]["one_at_a_time"] for k in ("model", "model_any", "rule"))
            out_console.print(
                f"out-of-sample trades after costs (bracket outcome within {tr['horizon_bars']} bars, one position "
                f"at a time): model at confidence ≥ {tr['min_confidence']:g}: {m['trades']} trades, "
                f"{m['mean_ticks']:+.2f} ± {m['se_ticks']:.2f} ticks = {m['mean_usd']:+.2f} $ per contract per trade "
                f"({m['total_usd']:+,.2f} $ in all); at any confidence: {a['trades']} trades, {a['mean_usd']:+.2f} $ "
                f"per trade; rule strategy: {r['trades']} trades, {r['mean_usd']:+.2f} $ per trade.")
        out_console.print(f"checkpoint: {rep.checkpoint}")
