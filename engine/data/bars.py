"""The one in-memory bar schema of the engine.

Every loader (parquet, CSV, DBN, ticks) produces :class:`Bars`; every consumer (validation,
sessions, features, target, backtest, replay) reads it. Columns are contiguous numpy arrays so
that compiled loops can take them without copies.

Schema (R-DATA-1):
    ts      int64   bar OPEN time, UTC nanoseconds since the epoch, ascending
    open    float64 index points
    high    float64 index points
    low     float64 index points
    close   float64 index points
    volume  float64 contracts; NaN where the source has no volume
    symbol  str     one label for the whole series (a multi-contract file is split or refused
                    before it becomes Bars)
    bar_ns  int     nominal bar length in ns (60_000_000_000 for 1-minute bars); 0 for ticks
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.clock import NS  # nanoseconds per second: one definition

COLUMNS = ("ts", "open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Bars:
    """An OHLCV series. Arrays share one length ``n``; see the module docstring for units."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    symbol: str = ""
    bar_ns: int = 60 * NS
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        n = len(self.ts)
        for name in COLUMNS:
            arr = getattr(self, name)
            if len(arr) != n:
                raise ValueError(f"Bars column {name!r} has {len(arr)} rows, ts has {n}")

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def has_volume(self) -> bool:
        """True when at least one bar has a known (non-NaN) volume."""
        return bool(len(self.volume)) and not bool(np.isnan(self.volume).all())

    @property
    def bar_seconds(self) -> float:
        return self.bar_ns / NS

    def slice(self, start: int, stop: int) -> "Bars":
        """Rows ``start:stop`` (views, no copy)."""
        return Bars(
            self.ts[start:stop], self.open[start:stop], self.high[start:stop],
            self.low[start:stop], self.close[start:stop], self.volume[start:stop],
            self.symbol, self.bar_ns, self.source,
        )

    def take(self, mask_or_index: np.ndarray) -> "Bars":
        """Rows selected by a boolean mask or an index array (copies)."""
        return Bars(
            self.ts[mask_or_index], self.open[mask_or_index], self.high[mask_or_index],
            self.low[mask_or_index], self.close[mask_or_index], self.volume[mask_or_index],
            self.symbol, self.bar_ns, self.source,
        )

    def to_frame(self):
        """A pandas DataFrame with ``ts_event`` (datetime64[ns, UTC]) and the OHLCV columns."""
        import pandas as pd

        return pd.DataFrame(
            {
                "ts_event": pd.to_datetime(self.ts, utc=True),
                "open": self.open, "high": self.high, "low": self.low,
                "close": self.close, "volume": self.volume,
                "symbol": self.symbol,
            }
        )
