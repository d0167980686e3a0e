"""Databento download, offline: a fake client serving the official DBN test fixtures."""

from __future__ import annotations

import databento as db
import numpy as np
import pandas as pd
import pytest

from engine.data import DataError, load_bars
from engine.data import download as dl

T0 = pd.Timestamp("2020-12-28 00:00", tz="UTC").value
MIN = 60 * 10**9


class FakeClient:
    """Answers every get_range with the fixture file, minus the bar timestamps in ``drop``."""

    def __init__(self, path, drop=()):
        self.path = path
        self.drop = set(drop)
        self.calls: list[dict] = []
        self.timeseries = self

    def get_range(self, **kw):
        self.calls.append(kw)
        store = db.DBNStore.from_file(self.path)
        if not self.drop:
            return store
        return _DroppedStore(store, self.drop)


class _DroppedStore:
    def __init__(self, store, drop):
        self._s, self._drop = store, drop
        self.schema = store.schema

    def to_df(self):
        df = self._s.to_df()
        return df[[t not in self._drop for t in df.index.as_unit("ns").asi8]]


def test_download_incremental_gap_backfill(tmp_path, dbn_dir, monkeypatch):
    fixture = dbn_dir / "test_data.ohlcv-1m.dbn.zst"
    first = FakeClient(fixture, drop={T0 + 2 * MIN})
    monkeypatch.setattr(dl, "make_client", lambda key: first)
    res = dl.update_store(tmp_path, symbol="ES.c.0", schema="ohlcv-1m", api_key="k",
                          start_ns=T0, end_ns=T0 + 10 * MIN, backfill=False)
    assert res["new_rows"] == 3 and res["gaps_found"] == 1
    assert first.calls[0]["stype_in"] == "continuous" and first.calls[0]["symbols"] == ["ES.c.0"]
    part = dl.partition_path(tmp_path, "ES.c.0", "ohlcv-1m", 2020, 12)
    assert part.exists()
    # second run: resumes after the last stored bar and backfills the hole with a full answer
    second = FakeClient(fixture)
    monkeypatch.setattr(dl, "make_client", lambda key: second)
    res = dl.update_store(tmp_path, symbol="ES.c.0", schema="ohlcv-1m", api_key="k",
                          end_ns=T0 + 10 * MIN)
    assert second.calls[0]["start"].startswith("2020-12-28T00:04")
    assert res["new_rows"] == 0 and res["backfilled_rows"] == 1 and res["gaps_remaining"] == 0
    bars = load_bars(part)
    assert len(bars) == 4 and np.all(np.diff(bars.ts) == MIN) and bars.has_volume
    direct = load_bars(fixture)
    np.testing.assert_array_equal(bars.close, direct.close)


def test_download_refuses_invalid_arrivals(tmp_path, dbn_dir, monkeypatch):
    class Bad(FakeClient):
        def get_range(self, **kw):
            store = db.DBNStore.from_file(self.path)

            class S:
                schema = store.schema

                def to_df(self_inner):
                    df = store.to_df()
                    df.loc[df.index[1], "high"] = df["low"].iloc[1] - 1.0
                    return df
            return S()

    monkeypatch.setattr(dl, "make_client", lambda key: Bad(dbn_dir / "test_data.ohlcv-1m.dbn.zst"))
    with pytest.raises(DataError, match="ohlc_relation"):
        dl.update_store(tmp_path, symbol="ES.c.0", schema="ohlcv-1m", api_key="k",
                        start_ns=T0, end_ns=T0 + 10 * MIN)
    assert not any(tmp_path.rglob("*.parquet"))


def test_download_needs_start_key_and_schema(tmp_path):
    with pytest.raises(DataError, match="schema"):
        dl.update_store(tmp_path, schema="mbo", api_key="k", start_ns=T0, end_ns=T0 + MIN)
    with pytest.raises(DataError, match="DATABENTO_API_KEY"):
        dl.update_store(tmp_path, api_key="", start_ns=T0, end_ns=T0 + MIN)
    with pytest.raises(DataError, match="give a start"):
        dl.update_store(tmp_path, client=object(), end_ns=T0 + MIN)
