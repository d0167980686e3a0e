"""Loading and saving bars and trade ticks (R-DATA-1, R-DATA-4 tick aggregation).

Sources: parquet (pyarrow, read by columns and row groups), CSV (pandas) and Databento DBN
(``databento.DBNStore.from_file(path).to_df()``, OHLCV schemas for bars, ``trades`` for ticks).
Everything becomes :class:`engine.data.bars.Bars`: ``int64`` UTC ns bar-open times, ``float64``
OHLC in index points, ``float64`` volume in contracts (NaN where the source has none).

Column names are matched case-insensitively: the time column is the first of ``ts_event``,
``ts``, ``timestamp``, ``time``, ``datetime``, ``date``; prices ``open/high/low/close`` (or ``o/h/l/c``);
volume ``volume`` / ``vol`` / ``v`` (optional); ``symbol`` (optional). Integer epoch times are
read as ns, us, ms or s by magnitude (> 1e17 ns, > 1e14 us, > 1e11 ms, else s). Naive
(timezone-less) times are refused unless ``tz`` names their zone: guessing UTC vs New York is
exactly the silent error this loader exists to prevent.

The loader checks structure (readable file, required columns, parseable times, numeric prices);
row-level quality (NaN, unsorted, off-tick...) is the validator's job, and the consumers that
cannot work on bad rows (resample, save, target) refuse them with :class:`DataError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from engine.atomic import atomic_path
from engine.data.bars import NS, Bars
from engine.data.errors import DataError
from engine.data.validate import require_clean_rows  # noqa: F401 - re-exported (engine.data)

Progress = Callable[[int, int], None]
"""``progress(rows_done, rows_total)``; called while loading (the CLI draws a bar from it)."""

MULTI_CONTRACT_MODES = ("refuse", "front-month")
TIME_COLUMNS = ("ts_event", "ts", "timestamp", "time", "datetime", "date")
PRICE_ALIASES = {"open": ("open", "o"), "high": ("high", "h"), "low": ("low", "l"),
                 "close": ("close", "c")}
VOLUME_ALIASES = ("volume", "vol", "v")
TICK_PRICE_ALIASES = ("price", "px", "last")
TICK_SIZE_ALIASES = ("size", "qty", "quantity", "volume")

BYTES_PER_BAR = 48
"""Six 8-byte columns of the final :class:`Bars`."""

DBN_BAR_NS = {"ohlcv-1s": NS, "ohlcv-1m": 60 * NS, "ohlcv-1h": 3600 * NS, "ohlcv-1d": 86_400 * NS}
"""Bar size of the Databento OHLCV schemas (known from the schema, not inferred)."""

MEMORY_HEADROOM = 0.8
"""Fraction of the currently available memory (psutil) a load may plan to use."""


# --------------------------------------------------------------------------- memory
def available_memory() -> int:
    """Bytes of memory available now (``psutil.virtual_memory().available``)."""
    import psutil

    return int(psutil.virtual_memory().available)


def check_memory(path: object, needed: int, *, limit: int | None = None) -> None:
    """Raise :class:`DataError` when ``needed`` bytes exceed ``limit`` (default: 80 % of the
    available memory). The message gives both figures in GiB."""
    cap = int(available_memory() * MEMORY_HEADROOM) if limit is None else int(limit)
    if needed > cap:
        raise DataError(
            f"loading needs about {needed / 2**30:.2f} GiB but only {cap / 2**30:.2f} GiB may be "
            "used (80 % of the available memory); load a shorter range or free memory", path=path)


def estimate_load_bytes(path: str | os.PathLike) -> int:
    """Estimated peak bytes to load ``path`` as Bars (parquet: exact row count from the footer;
    CSV: 6 × file size, pandas parsing; DBN: 40 × compressed size for ``.zst``, else 3 ×)."""
    p = Path(path)
    kind = _kind(p)
    size = p.stat().st_size
    if kind == "parquet":
        pf = _open_parquet(p)
        rows = pf.metadata.num_rows
        biggest = max((pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)),
                      default=0)
        # final arrays + one row group in arrow and as converted numpy
        return rows * BYTES_PER_BAR + biggest * BYTES_PER_BAR * 3
    if kind == "csv":
        return size * 6
    return size * (40 if p.name.endswith(".zst") else 3)


# --------------------------------------------------------------------------- helpers
def _kind(p: Path) -> str:
    name = p.name.lower()
    if name.endswith(".parquet") or name.endswith(".pq") or p.is_dir():
        return "parquet"
    if name.endswith(".csv") or name.endswith(".csv.gz") or name.endswith(".txt"):
        return "csv"
    if ".dbn" in name:
        return "dbn"
    raise DataError("unknown file type (expected .parquet, .csv or .dbn[.zst])", path=p)


def _open_parquet(p: Path):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(p)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError on damaged files
        raise DataError(f"not a readable parquet file ({exc})", path=p) from None


def _find(names: dict[str, str], aliases: tuple[str, ...]) -> str | None:
    for a in aliases:
        if a in names:
            return names[a]
    return None


def _epoch_to_ns(values: np.ndarray) -> np.ndarray:
    v = values.astype(np.int64, copy=False)
    if v.size == 0:
        return v
    mag = int(np.abs(v).max())
    if mag > 10**17:
        return v
    if mag > 10**14:
        return v * 1_000
    if mag > 10**11:
        return v * 1_000_000
    return v * NS


def _times_from_pandas(col, path, name: str, tz: str | None) -> np.ndarray:
    """A pandas Series of times → int64 UTC ns."""
    import pandas as pd

    if pd.api.types.is_integer_dtype(col.dtype):
        return _epoch_to_ns(col.to_numpy())
    if pd.api.types.is_float_dtype(col.dtype):
        if col.isna().any():
            raise DataError(f"missing time at row {int(np.flatnonzero(col.isna().to_numpy())[0])}",
                            path=path, column=name)
        return _epoch_to_ns(col.to_numpy().astype(np.int64))
    try:
        parsed = pd.to_datetime(col, format="ISO8601", utc=False) if not \
            isinstance(col.dtype, pd.DatetimeTZDtype) and not \
            pd.api.types.is_datetime64_dtype(col.dtype) else col
    except (ValueError, TypeError) as exc:
        raise DataError(f"unparseable time ({exc})", path=path, column=name) from None
    if getattr(parsed.dt, "tz", None) is None:
        if tz is None:
            raise DataError("times carry no timezone; give tz= (e.g. 'UTC' or "
                            "'America/New_York') so they are not guessed", path=path, column=name)
        parsed = parsed.dt.tz_localize(tz, ambiguous="raise", nonexistent="raise")
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise DataError("missing time", path=path, row=row, column=name)
    return parsed.dt.tz_convert("UTC").dt.as_unit("ns").astype("int64").to_numpy()


def _arrow_times(arr, path, name: str, tz: str | None) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = arr.type
    if pa.types.is_timestamp(t):
        if arr.null_count:
            row = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError("missing time", path=path, row=row, column=name)
        if t.tz is None:
            if tz is None:
                raise DataError("timestamps carry no timezone; give tz= (e.g. 'UTC') so they "
                                "are not guessed", path=path, column=name)
            import pandas as pd

            s = pd.Series(arr.to_pandas()).dt.tz_localize(tz, ambiguous="raise",
                                                          nonexistent="raise")
            return s.dt.tz_convert("UTC").dt.as_unit("ns").astype("int64").to_numpy()
        return pc.cast(arr, pa.timestamp("ns", tz=t.tz)).cast(pa.int64()).to_numpy(
            zero_copy_only=False).astype(np.int64, copy=False)
    if pa.types.is_integer(t):
        return _epoch_to_ns(arr.to_numpy(zero_copy_only=False))
    import pandas as pd

    return _times_from_pandas(pd.Series(arr.to_pandas()), path, name, tz)


def _float_col(arr, path, name: str, offset: int) -> np.ndarray:
    import pyarrow as pa

    if not (pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type)
            or pa.types.is_decimal(arr.type)):
        raise DataError(f"not numeric (type {arr.type})", path=path, column=name)
    out = arr.to_numpy(zero_copy_only=False)
    return out.astype(np.float64, copy=False)


def infer_bar_ns(ts: np.ndarray) -> int:
    """Nominal bar length: the most common positive difference of consecutive timestamps, from
    up to 200,000 differences at the start, middle and end of the series. 0 for < 2 bars."""
    n = len(ts)
    if n < 2:
        return 0
    k = 66_667
    if n <= 3 * k + 1:
        d = np.diff(ts)
    else:
        m = n // 2
        d = np.concatenate([np.diff(ts[: k + 1]), np.diff(ts[m: m + k + 1]), np.diff(ts[-k - 1:])])
    d = d[d > 0]
    if d.size == 0:
        return 0
    vals, counts = np.unique(d, return_counts=True)
    return int(vals[np.argmax(counts)])


# --------------------------------------------------------------------------- bars
def load_bars(path: str | os.PathLike, *, symbol: str | None = None,
              multi_contract: str = "refuse", progress: Progress | None = None,
              tz: str | None = None, max_memory_bytes: int | None = None) -> Bars:
    """Load an OHLCV file into :class:`Bars`.

    Args:
        path: ``.parquet`` (file or dataset directory), ``.csv`` or ``.dbn[.zst]`` (OHLCV schema).
        symbol: label for the series; default: the file's single ``symbol`` value (or the front-
            month description), else the file name.
        multi_contract: what to do when the ``symbol`` column holds several contracts:
            ``"refuse"`` (DataError saying so) or ``"front-month"`` (per CME trading day keep the
            contract with the most volume; without volume, the one :func:`engine.instruments.
            front_month` names for parseable tickers such as ``ESZ5``).
        progress: ``progress(rows_done, rows_total)`` callback.
        tz: zone of naive (timezone-less) times; naive times are refused without it.
        max_memory_bytes: cap for the memory estimate (default 80 % of the available memory).

    Returns:
        Bars with ``source`` = the path and ``bar_ns`` from the DBN schema, else inferred
        (:func:`infer_bar_ns`).

    Raises:
        DataError: unreadable/truncated file, missing column, unparseable or naive times,
            non-numeric prices, a tick file (use :func:`load_ticks`), several contracts with
            ``multi_contract="refuse"``, or a load that would not fit in memory.
    """
    p = Path(path)
    if not p.exists():
        raise DataError("no such file", path=p)
    if multi_contract not in MULTI_CONTRACT_MODES:
        raise DataError(f"multi_contract must be one of {MULTI_CONTRACT_MODES}, not {multi_contract!r}")
    check_memory(p, estimate_load_bytes(p), limit=max_memory_bytes)
    kind = _kind(p)
    known_ns = None
    if kind == "parquet":
        ts, cols, syms = _load_parquet(p, progress, tz)
    elif kind == "csv":
        ts, cols, syms = _load_csv(p, progress, tz)
    else:
        ts, cols, syms, known_ns = _load_dbn(p, progress)
    label = symbol
    if syms is not None and syms[0] is not None and len(syms[0]) > 1:
        ts, cols, label_auto = _split_contracts(p, ts, cols, syms, multi_contract)
        label = label or label_auto
    elif syms is not None and syms[0] is not None and len(syms[0]) == 1:
        label = label or str(syms[0][0])
    label = label or p.name.split(".")[0]
    return Bars(ts, cols["open"], cols["high"], cols["low"], cols["close"], cols["volume"],
                symbol=label, bar_ns=known_ns or infer_bar_ns(ts), source=str(p))


def _bar_columns(names: list[str], p: Path) -> tuple[str, dict[str, str], str | None, str | None]:
    low = {n.lower(): n for n in names}
    tcol = _find(low, TIME_COLUMNS)
    prices = {k: _find(low, a) for k, a in PRICE_ALIASES.items()}
    missing = [k for k, v in prices.items() if v is None]
    if missing:
        if _find(low, TICK_PRICE_ALIASES) is not None:
            raise DataError("this is a tick (trade print) file: it has a price column but no "
                            "open/high/low/close; aggregate it first (load_ticks + ticks_to_bars)",
                            path=p)
        raise DataError(f"missing OHLC column(s) {missing}; columns are {names}", path=p)
    if tcol is None:
        raise DataError(f"no time column (one of {TIME_COLUMNS}); columns are {names}", path=p)
    return tcol, {k: v for k, v in prices.items() if v is not None}, _find(low, VOLUME_ALIASES), _find(low, ("symbol",))


def _load_parquet(p: Path, progress, tz):
    pf = _open_parquet(p)
    names = pf.schema_arrow.names
    tcol, prices, vcol, scol = _bar_columns(names, p)
    n = pf.metadata.num_rows
    ts = np.empty(n, np.int64)
    cols = {k: np.empty(n, np.float64) for k in PRICE_ALIASES}
    cols["volume"] = np.full(n, np.nan)
    wanted = [tcol, *prices.values()] + ([vcol] if vcol else [])
    symbols = _parquet_single_symbol(pf, scol)
    sym_codes = None
    sym_values: list | None = None
    if scol is not None and symbols is None:
        sym_codes = np.empty(n, np.int32)
        sym_values = []
    pos = 0
    for g in range(pf.num_row_groups):
        try:
            tbl = pf.read_row_group(g, columns=wanted + ([scol] if sym_codes is not None else []),
                                    use_threads=True)
        except Exception as exc:
            raise DataError(f"damaged or truncated parquet in row group {g} ({exc})",
                            path=p) from None
        m = tbl.num_rows
        ts[pos:pos + m] = _arrow_times(tbl.column(tcol).combine_chunks(), p, tcol, tz)
        for k, c in prices.items():
            cols[k][pos:pos + m] = _float_col(tbl.column(c).combine_chunks(), p, c, pos)
        if vcol:
            cols["volume"][pos:pos + m] = _float_col(tbl.column(vcol).combine_chunks(), p, vcol, pos)
        if sym_codes is not None and sym_values is not None:
            import pyarrow.compute as pc

            enc = pc.dictionary_encode(tbl.column(scol).combine_chunks())
            dic = [str(x) for x in enc.dictionary.to_pylist()]
            idx = enc.indices.to_numpy(zero_copy_only=False)
            remap = np.array([_intern(sym_values, d) for d in dic] or [0], dtype=np.int32)
            sym_codes[pos:pos + m] = remap[idx]
        pos += m
        del tbl
        if progress:
            progress(pos, n)
    if pos != n:
        raise DataError(f"footer says {n} rows but {pos} were read (truncated file?)", path=p)
    if symbols is not None:
        return ts, cols, (symbols, None)
    if sym_codes is not None:
        return ts, cols, (sym_values, sym_codes)
    return ts, cols, None


def _intern(values: list, v: str) -> int:
    if v not in values:
        values.append(v)
    return values.index(v)


def _parquet_single_symbol(pf, scol: str | None) -> list | None:
    """The one symbol from row-group statistics when every group has min == max == the same
    value (no column read); None when the statistics cannot tell."""
    if scol is None:
        return None
    idx = pf.schema_arrow.get_field_index(scol)
    seen = set()
    for g in range(pf.num_row_groups):
        st = pf.metadata.row_group(g).column(idx).statistics
        if st is None or not st.has_min_max or st.min != st.max or st.null_count:
            return None
        seen.add(st.min if isinstance(st.min, str) else bytes(st.min).decode())
    return sorted(seen) if len(seen) == 1 else None


def _load_csv(p: Path, progress, tz):
    import pandas as pd

    try:
        df = pd.read_csv(p)
    except Exception as exc:
        raise DataError(f"not a readable CSV file ({exc})", path=p) from None
    df.columns = [str(c).strip() for c in df.columns]
    tcol, prices, vcol, scol = _bar_columns(list(df.columns), p)
    ts = _times_from_pandas(df[tcol], p, tcol, tz)
    cols = {}
    for k, c in prices.items():
        s = df[c]
        if not pd.api.types.is_numeric_dtype(s.dtype):
            conv = pd.to_numeric(s, errors="coerce")
            bad = np.flatnonzero(conv.isna().to_numpy() & s.notna().to_numpy())
            if bad.size:
                raise DataError(f"not a number: {s.iloc[bad[0]]!r}", path=p, row=int(bad[0]),
                                column=c)
            s = conv
        cols[k] = s.to_numpy(dtype=np.float64, na_value=np.nan)
    cols["volume"] = (pd.to_numeric(df[vcol], errors="coerce").to_numpy(dtype=np.float64,
                      na_value=np.nan) if vcol else np.full(len(df), np.nan))
    if progress:
        progress(len(df), len(df))
    return ts, cols, _symbols_from_series(df[scol]) if scol else None


def _symbols_from_series(s):
    codes, uniques = s.astype("str").factorize()
    vals = [str(u) for u in uniques]
    return (vals, codes.astype(np.int32)) if len(vals) > 1 else (vals, None)


def _load_dbn(p: Path, progress):
    df = _dbn_frame(p)
    schema = df.attrs.get("schema", "")
    if not str(schema).startswith("ohlcv"):
        if str(schema) == "trades":
            raise DataError("this is a DBN trades (tick) file: aggregate it first "
                            "(load_ticks + ticks_to_bars)", path=p)
        raise DataError(f"DBN schema {schema!r} holds no OHLCV bars (need ohlcv-1s/1m/1h/1d)",
                        path=p)
    ts = df.index.as_unit("ns").asi8.astype(np.int64) if hasattr(df.index, "asi8") else \
        df.index.to_numpy().astype("datetime64[ns]").astype(np.int64)
    cols = {k: df[k].to_numpy(dtype=np.float64) for k in PRICE_ALIASES}
    cols["volume"] = df["volume"].to_numpy(dtype=np.float64)
    if progress:
        progress(len(df), len(df))
    syms = _symbols_from_series(df["symbol"]) if "symbol" in df.columns else None
    return ts, cols, syms, DBN_BAR_NS.get(str(schema))


def _dbn_frame(p: Path):
    import databento as db

    try:
        store = db.DBNStore.from_file(p)
    except Exception as exc:
        raise DataError(f"not a readable DBN file ({exc})", path=p) from None
    return dbn_store_frame(store, p)


def dbn_store_frame(store, where: object = None):
    """``DBNStore`` → DataFrame (``to_df()``: prices as float points, UTC index) with
    ``attrs['schema']`` set to the store's schema name."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the client's own pandas deprecation noise
        try:
            df = store.to_df()
        except Exception as exc:
            raise DataError(f"DBN records could not be decoded ({exc})", path=where) from None
    df.attrs["schema"] = str(getattr(store.schema, "value", store.schema))
    return df


def _split_contracts(p, ts, cols, syms, mode):
    values, codes = syms
    if mode == "refuse":
        raise DataError(
            f"the symbol column holds {len(values)} contracts ({', '.join(values[:6])}"
            f"{', ...' if len(values) > 6 else ''}); mixing them would splice different prices "
            "into one series. Pass multi_contract='front-month' (CLI: --front-month) to keep "
            "one contract per trading day, or split the file", path=p, column="symbol")
    from engine.calendar import calendar_for

    cal = calendar_for(int(ts.min()), int(ts.max()))
    day = cal.label(ts).trading_day
    vol = cols["volume"]
    keep_code = {}
    if not np.isnan(vol).all():
        import pandas as pd

        g = pd.DataFrame({"d": day, "c": codes, "v": np.nan_to_num(vol)}).groupby(["d", "c"])["v"].sum()
        best = g.reset_index().sort_values(["d", "v"], ascending=[True, False]).drop_duplicates("d")
        keep_code = dict(zip(best.d.to_numpy().tolist(), best.c.to_numpy().tolist()))
        rule = "most volume per trading day"
    else:
        from datetime import date, timedelta

        from engine.instruments import InstrumentError, front_month, parse_cme_ticker

        ref_year = int(np.datetime64(int(ts.min()), "ns").astype("datetime64[Y]").astype(int)) + 1970
        parsed = {}
        for i, v in enumerate(values):
            try:
                parsed[i] = parse_cme_ticker(v.split()[0], ref_year)
            except InstrumentError:
                raise DataError(f"several contracts, no volume to pick the front month and "
                                f"{v!r} is not a CME ticker", path=p, column="symbol") from None
        for d in np.unique(day).tolist():
            on = date(1970, 1, 1) + timedelta(days=int(d))
            for i, c in parsed.items():
                fm = front_month(c.symbol, on)
                if (fm.year, fm.month) == (c.year, c.month):
                    keep_code[d] = i
                    break
        rule = "engine.instruments.front_month roll calendar"
    lut_days = np.array(sorted(keep_code), dtype=np.int64)
    lut_codes = np.array([keep_code[d] for d in lut_days.tolist()], dtype=np.int32)
    pos = np.searchsorted(lut_days, day)
    pos_c = np.minimum(pos, max(len(lut_days) - 1, 0))
    mask = (len(lut_days) > 0) & (lut_days[pos_c] == day) & (lut_codes[pos_c] == codes) \
        if len(lut_days) else np.zeros(len(ts), bool)
    used = []  # contracts in the order they were traded (first trading day kept), not file order
    for c in lut_codes.tolist():  # lut_days is sorted: first use in time order
        if values[c] not in used:
            used.append(values[c])
    label = f"front-month ({rule}): {'→'.join(used)}"
    keep = np.flatnonzero(mask)
    keep = keep[np.argsort(ts[keep], kind="stable")]  # a file grouped by contract → time order
    return ts[keep], {k: v[keep] for k, v in cols.items()}, label


# --------------------------------------------------------------------------- save
def save_bars(bars: Bars, path: str | os.PathLike) -> Path:
    """Write bars as parquet atomically (temp file in the same folder + ``os.replace``).

    Columns: ``ts_event`` timestamp[ns, UTC], ``open/high/low/close/volume`` float64, ``symbol``
    (dictionary string); file metadata ``mes_console.bar_ns``.

    Raises:
        DataError: unsorted timestamps or non-finite prices (named row and column) — nothing is
            written, and a half-written temp file is removed on any failure.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    require_clean_rows(bars)
    tbl = pa.table({
        "ts_event": pa.array(bars.ts, type=pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
        "open": bars.open, "high": bars.high, "low": bars.low, "close": bars.close,
        "volume": bars.volume,
        "symbol": pa.DictionaryArray.from_arrays(np.zeros(len(bars), np.int32), [bars.symbol]),
    }).replace_schema_metadata({"mes_console.bar_ns": str(bars.bar_ns)})
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p) as tmp:
        pq.write_table(tbl, tmp, row_group_size=1_000_000)
    return p


# --------------------------------------------------------------------------- ticks
def load_ticks(path: str | os.PathLike, *, tz: str | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Load trade prints: parquet/CSV with a time column and ``price`` (optional ``size``/
    ``qty``/``volume``), or a DBN ``trades`` file.

    Returns:
        ``(ts int64 UTC ns, price float64 points, size float64 contracts or NaN when the file has
        no size)``, in file order (must be non-decreasing in time).

    Raises:
        DataError: unreadable file, missing columns, NaN price, or time running backwards (row).
    """
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise DataError("no such file", path=p)
    check_memory(p, estimate_load_bytes(p))
    kind = _kind(p)
    if kind == "dbn":
        df = _dbn_frame(p)
        if df.attrs.get("schema") not in ("trades", "tbbo", "mbp-1"):
            raise DataError(f"DBN schema {df.attrs.get('schema')!r} holds no trade prints", path=p)
        ts = df.index.as_unit("ns").asi8.astype(np.int64)
        price = df["price"].to_numpy(np.float64)
        size = df["size"].to_numpy(np.float64)
    else:
        if kind == "parquet":
            try:
                df = _open_parquet(p).read().to_pandas()
            except DataError:
                raise
            except Exception as exc:
                raise DataError(f"damaged parquet ({exc})", path=p) from None
        else:
            df = pd.read_csv(p)
        low = {str(c).lower(): str(c) for c in df.columns}
        tcol = _find(low, TIME_COLUMNS)
        pcol = _find(low, TICK_PRICE_ALIASES)
        if tcol is None or pcol is None:
            raise DataError(f"a tick file needs a time and a price column; columns are "
                            f"{list(df.columns)}", path=p)
        scol = _find(low, TICK_SIZE_ALIASES)
        ts = _times_from_pandas(df[tcol], p, tcol, tz)
        price = df[pcol].to_numpy(np.float64)
        size = df[scol].to_numpy(np.float64) if scol else np.full(len(df), np.nan)
    bad = np.flatnonzero(~np.isfinite(price))
    if bad.size:
        raise DataError("non-finite price", path=p, row=int(bad[0]), column="price")
    back = np.flatnonzero(np.diff(ts) < 0)
    if back.size:
        raise DataError("time runs backwards", path=p, row=int(back[0]) + 1, column="ts")
    return ts, price, size


def ticks_to_bars(ts: np.ndarray, price: np.ndarray, size: np.ndarray | None,
                  bar_ns: int = NS, symbol: str = "") -> Bars:
    """Aggregate trade prints into bars of ``bar_ns`` (default 1 second).

    A bar opens at ``floor(ts / bar_ns) * bar_ns`` (UTC ns); open/high/low/close are the first/
    highest/lowest/last trade price inside it. Only intervals with at least one trade produce a
    bar (no forward-filled empty bars). ``volume`` is the sum of the trade sizes in contracts; when
    the prints carry no size (all NaN, as in the ESM8 file) the volume is NaN — never a trade count,
    which would be a different unit under the same name.

    Raises:
        DataError: ``bar_ns`` not positive, unsorted times (row), non-finite price (row).
    """
    ts = np.ascontiguousarray(ts, dtype=np.int64)
    price = np.ascontiguousarray(price, dtype=np.float64)
    size = np.full(len(ts), np.nan) if size is None else np.ascontiguousarray(size, np.float64)
    if bar_ns <= 0:
        raise DataError(f"bar_ns must be positive, not {bar_ns}")
    if not (len(ts) == len(price) == len(size)):
        raise DataError("ts, price and size differ in length")
    back = np.flatnonzero(np.diff(ts) < 0)
    if back.size:
        raise DataError("tick times run backwards", row=int(back[0]) + 1, column="ts")
    bad = np.flatnonzero(~np.isfinite(price))
    if bad.size:
        raise DataError("non-finite tick price", row=int(bad[0]), column="price")
    from engine.data.resample import ticks_agg

    o, h, l_, c, v, t = ticks_agg(ts, price, size, np.int64(bar_ns))
    return Bars(t, o, h, l_, c, v, symbol=symbol, bar_ns=int(bar_ns), source="ticks")
