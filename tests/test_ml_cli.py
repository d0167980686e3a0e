"""`mes-console train` / `model info` / `model bench` end to end on a slice of the real ES file:
--json prints exactly one JSON document on stdout; the checkpoint it writes verifies."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from engine.data import load_bars, save_bars
from mes_console.cli import app


def test_train_info_bench_json(es_1m_path, tmp_path):
    b = load_bars(es_1m_path)
    data = save_bars(b.slice(len(b) - 30_000, len(b)), tmp_path / "tail.parquet")
    runner = CliRunner()
    r = runner.invoke(app, ["train", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "m"),
                            "--name", "cli", "--json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    wf = doc["walk_forward"]
    assert wf["scaled"] and "scaled" in wf["note"] and len(wf["folds"]) == 1
    f = wf["folds"][0]
    assert {"majority", "persistence"} <= set(f["baselines"]) and f["metrics"]["n"] > 0
    assert doc["training"]["volume_features"].startswith("dropped")
    ck = tmp_path / "m" / "cli"
    r = runner.invoke(app, ["model", "info", str(ck), "--json"])
    assert r.exit_code == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["verified"] and info["arch"] == "mlp" and len(info["features"]) == 29
    r = runner.invoke(app, ["model", "bench", str(ck), "--data", str(data), "--bars", "300",
                            "--rows", "50000", "--json"])
    assert r.exit_code == 0, r.stderr
    bench = json.loads(r.stdout)
    assert bench["batch1_inference_only_us"]["n"] == 300 and bench["batch_rows_per_s"] > 0
    # a damaged checkpoint: exit code 3 (bad input) and the reason on stderr
    w = ck / "weights.safetensors"
    raw = bytearray(w.read_bytes())
    raw[100] ^= 0xFF
    w.write_bytes(bytes(raw))
    r = runner.invoke(app, ["model", "info", str(ck)])
    assert r.exit_code == 3 and "weights checksum mismatch" in r.stderr
