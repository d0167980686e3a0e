"""``mes-console fake-gateway`` serves, answers a client login, and refuses missing credentials."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from typer.testing import CliRunner

from mes_console.cli import app


def test_fake_gateway_needs_credentials(topstepx_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROJECTX_")}
    r = CliRunner().invoke(app, ["fake-gateway", "--data", str(topstepx_path), "--port", "0"], env=env)
    assert r.exit_code == 3 and "PROJECTX_API_KEY" in r.output


def test_fake_gateway_serves_and_client_logs_in(topstepx_path):
    env = dict(os.environ, PROJECTX_USERNAME="cli-user", PROJECTX_API_KEY="cli-key-0123456789")
    p = subprocess.Popen([sys.executable, "-m", "mes_console.cli", "fake-gateway", "--data", str(topstepx_path),
                          "--port", "0", "--json", "--start", "2025-10-01T13:30:00"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        doc = json.loads(_read_json(p))
        assert doc["contract_id"] == "CON.F.US.MES.Z25"
        code = ("import asyncio\nfrom engine.broker.projectx.rest import ProjectXClient\nfrom engine.clock import LiveClock\n"
                "async def main():\n    async with ProjectXClient(%r, 'cli-user', 'cli-key-0123456789', LiveClock()) as px:\n"
                "        await px.login(); print((await px.resolve_front_month()).id)\nasyncio.run(main())\n" % doc["api_url"])
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "CON.F.US.MES.Z25", out.stderr
    finally:
        p.terminate()
        p.wait(timeout=10)


def _read_json(p) -> str:
    lines = []
    for _ in range(200):
        line = p.stdout.readline()
        if not line:
            time.sleep(0.05)
            continue
        lines.append(line)
        if line.startswith("}"):
            return "".join(lines)
    raise AssertionError("no JSON document from fake-gateway")
