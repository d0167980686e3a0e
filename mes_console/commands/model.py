"""``mes-console model info|bench``: inspect a verified checkpoint and time its inference."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from mes_console.commands.common import EXIT_PROBLEMS, EXIT_UNREADABLE, fail, out_console, print_json

app = typer.Typer(help="Inspect and benchmark model checkpoints.", no_args_is_help=True)


def _load(ckpt: Path):
    from engine.features import FeatureSet
    from engine.ml.checkpoint import CheckpointError, load_checkpoint

    try:
        cp = load_checkpoint(ckpt)
        fs = FeatureSet.from_manifest(cp.body["feature_set"])
        return load_checkpoint(ckpt, expected_feature_set=fs), fs
    except (CheckpointError, ValueError) as exc:
        fail(str(exc), code=EXIT_UNREADABLE)


@app.command("info")
def info(ckpt: Path = typer.Argument(..., help="Checkpoint directory."),
         json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout.")) -> None:
    """Verify the checksums and show architecture, features, target, data range and metrics."""
    cp, _ = _load(ckpt)
    b = cp.body
    wf = b["metrics"]
    doc = {"path": str(ckpt), "verified": True, "checksums": cp.checksums, "arch": b["arch"],
           "hparams": b["hparams"], "package_version": b["package_version"], "bar_ns": b["bar_ns"],
           "features": b["feature_names"], "feature_set": b["feature_set"], "target": b["target"],
           "class_moves": b["class_moves"],
           "training": {k: v for k, v in b["training"].items() if k != "history"},
           "combined": wf.get("combined"), "walk_forward_note": wf.get("note")}
    if json_out:
        print_json(doc)
        return
    t = Table(show_header=False, box=None, title=f"checkpoint {ckpt} (checksums verified)", title_justify="left")
    tr = b["training"]
    rows = [("arch", f"{b['arch']} {b['hparams']}"), ("package", b["package_version"]),
            ("bar size", f"{b['bar_ns'] / 1e9:g} s"), ("features", f"{len(b['feature_names'])}: {', '.join(b['feature_names'])}"),
            ("volume", tr.get("volume_features", "")),
            ("target", f"{b['target']['lookahead_bars']} bars ({b['target']['lookahead_s']:g} s), ±{b['target']['threshold_ticks']} ticks"
             if b["target"].get("kind", "direction") == "direction" else
             f"bracket outcome (triple barrier) within {b['target'].get('horizon_bars')} bars, net of costs, "
             f"mode {b['target'].get('mode', 'direct')}"),
            ("data", f"{tr['data_path']} {tr['data_start']} → {tr['data_end']} ({tr['rows']:,} bars) sha256 {tr['data_sha256'][:16]}…"),
            ("walk-forward", wf.get("note", ""))]
    c = wf.get("combined")
    if c:
        rows.append(("out-of-sample", f"acc {c['model']['accuracy']:.4f} vs majority {c['majority']['accuracy']:.4f}, "
                                      f"persistence {c['persistence']['accuracy']:.4f}; log loss {c['model']['log_loss']:.4f}"))
    rows.append(("weights sha256", cp.checksums["weights_sha256"]))
    for k, v in rows:
        t.add_row(k, str(v))
    out_console.print(t)


@app.command("bench")
def bench(ckpt: Path = typer.Argument(..., help="Checkpoint directory."),
          data: Optional[Path] = typer.Option(None, "--data", help="Bars to replay (default: the training data path)."),
          bars_n: int = typer.Option(3000, "--bars", min=10, help="Bars for the batch-1 latency run."),
          rows: int = typer.Option(1_000_000, "--rows", min=1000, help="Rows for the batch throughput run."),
          json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout.")) -> None:
    """Batch-1 latency (features + inference, median/p99) and batch throughput (rows/s)."""
    from engine.ml.bench import bench_predictor
    from engine.ml.predictor import Predictor

    cp, fs = _load(ckpt)
    path = data or Path(cp.body["training"].get("data_path", ""))
    from mes_console.commands.loading import load_bars_checked

    bars = load_bars_checked(path, exit_code=EXIT_UNREADABLE, quiet=True)  # the validation gate
    pred = Predictor(cp, fs)
    try:
        res = bench_predictor(pred, bars, n_stream=bars_n, n_rows=rows)
    except ValueError as exc:
        fail(str(exc), code=EXIT_PROBLEMS)
    res["checkpoint"] = str(ckpt)
    if json_out:
        print_json(res)
        return
    t = Table(title=f"inference benchmark: {cp.arch} ({res['threads']} torch threads)", title_justify="left")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("target", justify="right")
    s1 = res["batch1_features_plus_inference_us"]
    s2 = res["batch1_inference_only_us"]
    t.add_row("batch-1 features+inference median", f"{s1['median']:.1f} µs", "")
    t.add_row("batch-1 features+inference p99", f"{s1['p99']:.1f} µs", "")
    t.add_row("batch-1 inference median", f"{s2['median']:.1f} µs", "")
    t.add_row("batch-1 inference p99", f"{s2['p99']:.1f} µs", "≤ 250 µs (MLP)")
    t.add_row("batch throughput", f"{res['batch_rows_per_s']:,.0f} rows/s", "≥ 1,000,000 (MLP)")
    out_console.print(t)
