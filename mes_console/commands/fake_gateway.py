"""``mes-console fake-gateway``: a local ProjectX gateway (REST + SignalR hubs) over historical
bars, for paper trading and tests. Credentials come from PROJECTX_USERNAME / PROJECTX_API_KEY
(or --username / --api-key), so one pair of variables configures both the client and the fake."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Optional

import typer

from mes_console.commands.common import EXIT_UNREADABLE, EXIT_USAGE, check_dates, err_console, fail, print_json
from mes_console.commands.loading import FrontMonthOpt, RepairOpt, StrictOpt


def register(root_app: typer.Typer) -> None:
    """Add the top-level ``fake-gateway`` command to ``root_app``."""

    @root_app.command("fake-gateway")
    def fake_gateway(
        data: Path = typer.Option(..., "--data", help="Bar parquet (ts_event, open, high, low, close[, volume])."),
        port: int = typer.Option(..., "--port", help="TCP port (0 = any free port)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Listen address (loopback by default)."),
        speed: float = typer.Option(60.0, "--speed", help="Replay speed: 60 = one minute bar per second; 0 = frozen."),
        start: Optional[str] = typer.Option(None, "--start", help="First bar replayed (ISO, UTC); the bars before it are served as History/retrieveBars."),
        username: Optional[str] = typer.Option(None, "--username", help="Accepted user (default $PROJECTX_USERNAME)."),
        api_key: Optional[str] = typer.Option(None, "--api-key", help="Accepted API key (default $PROJECTX_API_KEY)."),
        token_ttl_s: float = typer.Option(86_400.0, "--token-ttl", help="Token lifetime, seconds."),
        balance: float = typer.Option(50_000.0, "--balance", help="Starting account balance, dollars."),
        slippage_ticks: int = typer.Option(1, "--slippage-ticks", help="Market/stop fill slippage, ticks."),
        max_contracts: int = typer.Option(50, "--max-contracts", min=1,
                                          help="The account's size limit (per order and net position)."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON document with the URLs, then serve."),
        strict: Optional[bool] = StrictOpt,
        repair: bool = RepairOpt,
        front_month: bool = FrontMonthOpt,
    ) -> None:
        """Serve a fake ProjectX gateway until Ctrl-C.

        The bars pass the validation gate first: exit 3 with one line on stderr for unusable
        data (non-finite prices, unsorted or duplicate rows, no bars) and, with --strict, for
        any validation error."""
        from engine.broker.fake import FakeGateway
        from engine.config import load_settings
        from mes_console.commands.loading import load_bars_checked
        from engine.clock import LiveClock

        check_dates(start, None)
        user = username or os.environ.get("PROJECTX_USERNAME", "")
        key = api_key or os.environ.get("PROJECTX_API_KEY", "")
        if not user or not key:
            fail("credentials missing: set PROJECTX_USERNAME and PROJECTX_API_KEY (or --username/--api-key)",
                 code=EXIT_USAGE)
        try:
            settings = load_settings(None)
        except ValueError:
            settings = None
        bars = load_bars_checked(data, front_month=front_month, strict=strict, repair=repair,
                                 settings=settings, exit_code=EXIT_UNREADABLE)
        frame = bars.to_frame()
        history = None
        if start:
            import pandas as pd

            try:
                t0 = pd.Timestamp(start)
            except ValueError as exc:
                fail(f"--start {start!r}: {exc}", code=EXIT_USAGE)
            t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0.tz_convert("UTC")
            history = frame[frame["ts_event"] < t0].reset_index(drop=True)   # served as History
            frame = frame[frame["ts_event"] >= t0].reset_index(drop=True)
            if len(frame) == 0:
                fail(f"{data}: no bars left after start={start!r}", code=EXIT_USAGE)

        async def serve() -> None:
            gw = FakeGateway(frame, LiveClock(), username=user, api_key=key, token_ttl_s=token_ttl_s,
                             speed=speed, balance=balance, slippage_ticks=slippage_ticks,
                             max_contracts=max_contracts, history=history)
            url = await gw.start(host, port)
            doc = {"api_url": url, "user_hub_url": f"{url}/hubs/user", "market_hub_url": f"{url}/hubs/market",
                   "contract_id": gw.exchange.contract_id, "account_id": gw.exchange.account["id"],
                   "bars": len(frame), "speed": speed}
            if json_out:
                print_json(doc)
            else:
                err_console.print(f"fake gateway on [bold]{url}[/] (contract {doc['contract_id']}, "
                                  f"account {doc['account_id']}, {len(frame)} bars, speed {speed}×); Ctrl-C stops")
            try:
                while True:
                    await asyncio.sleep(3600)
            finally:
                await gw.stop()

        try:
            asyncio.run(serve())
        except KeyboardInterrupt:
            err_console.print("fake gateway stopped")
