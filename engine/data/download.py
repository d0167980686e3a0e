"""Databento download into a local parquet store (R-DATA-6).

- Client: the official ``databento`` package, ``databento.Historical(api_key)``; the key comes
  only from ``DATABENTO_API_KEY`` (via :mod:`engine.config` secrets) and is never logged.
- Request: dataset ``GLBX.MDP3``, continuous symbology (``stype_in="continuous"``), symbols like
  ``MES.c.0`` / ``ES.c.0`` (front month by calendar roll), schemas ``ohlcv-1s``, ``ohlcv-1m``,
  ``ohlcv-1h``, ``ohlcv-1d``. ``to_df()`` gives prices in float index points and UTC times.
- Store layout: ``<root>/<symbol>/<schema>/year=YYYY/month=MM/bars.parquet`` (one file per
  month, written atomically by :func:`engine.data.save_bars`; re-written when a month changes).
- Incremental: an update asks for ``[last stored bar + bar size, end)``; an empty store needs a
  ``start``. Bars already stored are never duplicated (the newer copy of a timestamp wins).
- Validation on arrival: every downloaded batch goes through :func:`engine.data.validate`; any
  error kind refuses the batch (DataError, nothing written). Gaps are warnings.
- Gap detection and backfill: after the update, holes inside Globex sessions (same rule as the
  validator) are listed; with ``backfill`` each (up to ``max_backfill``) is requested once more and
  whatever arrives is merged. A hole that stays is reported (minutes without trades are normal on
  1-second bars and in thin overnight trading, so a remaining hole is information, not an error).
- The engine never reads the wall clock: the caller passes ``end_ns`` (the CLI uses LiveClock).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.data.bars import NS, Bars
from engine.data.errors import DataError
from engine.data.io import DBN_BAR_NS, dbn_store_frame, load_bars, save_bars

DATASET = "GLBX.MDP3"
SCHEMAS = tuple(DBN_BAR_NS)


def make_client(api_key: str):
    """``databento.Historical`` for ``api_key`` (DataError when the key is empty)."""
    if not api_key:
        raise DataError("no Databento API key: set DATABENTO_API_KEY")
    import databento as db

    return db.Historical(api_key)


def _iso(ns: int) -> str:
    return str(np.datetime64(int(ns), "ns")) + "Z"


def partition_dir(root: str | Path, symbol: str, schema: str) -> Path:
    return Path(root) / symbol.replace("/", "_") / schema


def partition_path(root, symbol: str, schema: str, year: int, month: int) -> Path:
    """``<root>/<symbol>/<schema>/year=YYYY/month=MM/bars.parquet``."""
    return partition_dir(root, symbol, schema) / f"year={year:04d}" / f"month={month:02d}" / "bars.parquet"


def _check_schema(schema: str) -> int:
    if schema not in DBN_BAR_NS:
        raise DataError(f"schema must be one of {SCHEMAS}, not {schema!r}")
    return DBN_BAR_NS[schema]


def load_store(root, symbol: str, schema: str) -> Bars | None:
    """All stored bars of ``symbol``/``schema`` in time order, or None when nothing is stored."""
    bar_ns = _check_schema(schema)
    files = sorted(partition_dir(root, symbol, schema).glob("year=*/month=*/bars.parquet"))
    if not files:
        return None
    parts = [load_bars(f) for f in files]
    return _concat(parts, symbol, bar_ns, str(partition_dir(root, symbol, schema)))


def _concat(parts: list[Bars], symbol: str, bar_ns: int, source: str) -> Bars:
    cols = {k: np.concatenate([getattr(p, k) for p in parts]) for k in
            ("ts", "open", "high", "low", "close", "volume")}
    # newest copy of a timestamp wins: stable sort, keep the last of equal ts
    order = np.argsort(cols["ts"], kind="stable")
    ts = cols["ts"][order]
    keep = np.ones(len(ts), bool)
    keep[:-1] = ts[1:] != ts[:-1]
    sel = order[keep]
    return Bars(cols["ts"][sel], cols["open"][sel], cols["high"][sel], cols["low"][sel],
                cols["close"][sel], cols["volume"][sel], symbol=symbol, bar_ns=bar_ns,
                source=source)


def fetch(client, symbol: str, schema: str, start_ns: int, end_ns: int) -> Bars:
    """One ``timeseries.get_range`` request → Bars restricted to ``[start_ns, end_ns)``."""
    bar_ns = _check_schema(schema)
    store = client.timeseries.get_range(dataset=DATASET, symbols=[symbol], stype_in="continuous",
                                        schema=schema, start=_iso(start_ns), end=_iso(end_ns))
    df = dbn_store_frame(store, where=f"databento {symbol} {schema}")
    if len(df) == 0:
        e = np.empty(0)
        return Bars(np.empty(0, np.int64), e, e, e, e, e, symbol=symbol, bar_ns=bar_ns)
    ts = df.index.as_unit("ns").asi8.astype(np.int64)
    m = (ts >= start_ns) & (ts < end_ns)
    o, h, lo, c, v = (df[k].to_numpy(np.float64)[m] for k in ("open", "high", "low", "close", "volume"))
    return Bars(ts[m], o, h, lo, c, v, symbol=symbol, bar_ns=bar_ns, source=f"databento:{symbol}:{schema}")


def store_bars(root, symbol: str, schema: str, bars: Bars) -> list[Path]:
    """Merge ``bars`` into the monthly partitions (atomic per file); returns the files written."""
    bar_ns = _check_schema(schema)
    if len(bars) == 0:
        return []
    month = bars.ts.astype("datetime64[ns]").astype("datetime64[M]")
    written = []
    for mth in np.unique(month):
        y, mo = int(str(mth)[:4]), int(str(mth)[5:7])
        part = bars.take(month == mth)
        path = partition_path(root, symbol, schema, y, mo)
        if path.exists():
            part = _concat([load_bars(path), part], symbol, bar_ns, str(path))
        part = Bars(part.ts, part.open, part.high, part.low, part.close, part.volume,
                    symbol=symbol, bar_ns=bar_ns, source=str(path))
        written.append(save_bars(part, path))
    return written


def _arrival_check(bars: Bars) -> dict[str, Any]:
    from engine.data.validate import validate

    rep = validate(bars)
    if not rep.ok:
        raise DataError("downloaded bars failed validation: " + ", ".join(
            f"{k} ×{rep.kinds[k].count}" for k in rep.problems) + "; nothing stored",
            path=bars.source)
    return {"rows": len(bars), "warnings": {k: rep.kinds[k].count for k in rep.warnings}}


def update_store(root, *, symbol: str = "MES.c.0", schema: str = "ohlcv-1m",
                 api_key: str | None = None, client=None, start_ns: int | None = None,
                 end_ns: int, backfill: bool = True, max_backfill: int = 50,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Download new bars (resuming after the last stored bar), validate, store, then look for
    gaps and (optionally) backfill them.

    Args:
        root: store directory. ``client``: a ``databento.Historical``-like object (tests pass a
            fake); default ``make_client(api_key)``. ``start_ns``/``end_ns``: UTC ns; ``start_ns``
            is needed only for an empty store.

    Returns:
        A JSON-ready dict: requested range, new rows, stored rows, gaps before/after backfill,
        backfilled rows, arrival validation summary, ``ok``.

    Raises:
        DataError: bad schema, no key, empty store without ``start_ns``, invalid downloaded data.
    """
    bar_ns = _check_schema(schema)
    say = log or (lambda m: None)
    client = client or make_client(api_key or "")
    stored = load_store(root, symbol, schema)
    if stored is not None and len(stored):
        req_start = int(stored.ts[-1]) + bar_ns
    elif start_ns is None:
        raise DataError(f"the store for {symbol} {schema} is empty: give a start",
                        path=partition_dir(root, symbol, schema))
    else:
        req_start = int(start_ns)
    out: dict[str, Any] = {"symbol": symbol, "schema": schema, "dataset": DATASET,
                           "store": str(partition_dir(root, symbol, schema)),
                           "requested": [_iso(req_start), _iso(end_ns)], "new_rows": 0,
                           "backfilled_rows": 0, "ok": True}
    if req_start < end_ns:
        say(f"requesting {symbol} {schema} {_iso(req_start)} → {_iso(end_ns)}")
        new = fetch(client, symbol, schema, req_start, end_ns)
        if len(new):
            out["arrival"] = _arrival_check(new)
            store_bars(root, symbol, schema, new)
        out["new_rows"] = len(new)
    else:
        say("store is up to date")
    allb = load_store(root, symbol, schema)
    if allb is None or bar_ns >= 86_400 * NS:
        out["stored_rows"] = 0 if allb is None else len(allb)
        out["gaps"] = []
        return out
    from engine.data.validate import gap_ranges

    gaps = gap_ranges(allb)
    out["gaps_found"] = len(gaps)
    if backfill and gaps:
        filled = 0
        for s, e in gaps[:max_backfill]:
            say(f"backfill {_iso(s)} → {_iso(e)}")
            got = fetch(client, symbol, schema, s, e)
            if len(got):
                _arrival_check(got)
                store_bars(root, symbol, schema, got)
                filled += len(got)
        out["backfilled_rows"] = filled
        reloaded = load_store(root, symbol, schema)
        if reloaded is None:   # it held bars a moment ago: the store was removed under us
            raise DataError(f"the store for {symbol} {schema} vanished during the backfill",
                            path=partition_dir(root, symbol, schema))
        allb = reloaded
        gaps = gap_ranges(allb)
    out["stored_rows"] = len(allb)
    out["gaps"] = [[_iso(s), _iso(e)] for s, e in gaps[:100]]
    out["gaps_remaining"] = len(gaps)
    return out
