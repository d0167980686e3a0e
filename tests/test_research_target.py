"""The bracket-outcome (triple-barrier) target, the meta-label, the expectancy of a model's trades
after costs, and "the checkpoint decides the features" — on real ES bars."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from engine.backtest.runner import prepare_market
from engine.config import Settings, TargetConfig
from engine.data import load_bars
from engine.data.target import (DOWN, FLAT, NO_LABEL, UP, bracket_outcomes, make_bracket_target,
                                trade_expectancy)
from engine.data.sessions import session_labels
from engine.ml import CheckpointError, TrainParams
from engine.ml.pipeline import build_dataset, train_from_bars
from engine.strategy import BreakoutBaseline, ModelStrategy


@pytest.fixture(scope="module")
def bars(es_1m_path):
    b = load_bars(es_1m_path)
    return b.slice(len(b) - 30_000, len(b))


def _reference(bars, s, t, side, H, mk):
    """Plain-Python bracket of the kernel's rules (ATR stop, floor(rr × stop) target) for one bar."""
    tick, st = 0.25, s.stops
    lab = session_labels(bars)
    e = t + 1 + H
    if e >= len(bars) or lab.session[t] < 0 or lab.session[e] != lab.session[t] \
            or bars.ts[e] - bars.ts[t] != (H + 1) * bars.bar_ns or not mk.atr[t] > 0:
        return math.nan
    k = min(max(math.ceil(mk.atr[t] * st.atr_multiplier / tick - 1e-9), st.min_stop_ticks), st.max_stop_ticks)
    tg = math.floor(st.reward_risk * k + 1e-9)
    entry = bars.open[t + 1] + side * mk.slip[t + 1] * tick
    stop, target = entry - side * k * tick, entry + side * tg * tick
    cost = 2 * (s.costs.commission_per_side + s.costs.exchange_fee_per_side) / 1.25
    for j in range(t + 1, e + 1):
        hit_stop = bars.low[j] <= stop if side > 0 else bars.high[j] >= stop
        hit_tgt = bars.high[j] >= target if side > 0 else bars.low[j] <= target
        if hit_stop:  # a bar touching both counts as a stop (conservative)
            px = stop if j == t + 1 else (min(bars.open[j], stop) if side > 0 else max(bars.open[j], stop))
            return side * (px - side * mk.slip[j] * tick - entry) / tick - cost
        if hit_tgt:
            return side * (target - entry) / tick - cost
    return side * (bars.close[e] - side * mk.slip[e] * tick - entry) / tick - cost


def test_bracket_outcomes_match_a_plain_reference(bars):
    s = Settings()
    mk = prepare_market(bars, s, "conservative")
    out = bracket_outcomes(bars, s, horizon_bars=20, market=mk)
    rng = np.random.default_rng(1)
    for t in rng.choice(len(bars) - 30, 300, replace=False):
        for side, got in ((1, out.long_ticks[t]), (-1, out.short_ticks[t])):
            ref = _reference(bars, s, int(t), side, 20, mk)
            assert (math.isnan(ref) and math.isnan(got)) or abs(ref - got) < 1e-9, (t, side, ref, got)
    ok = np.isfinite(out.long_ticks)
    assert ok.mean() > 0.8
    # the bracket sits around the fill (as the kernel's): a target exit earns exactly
    # floor(rr × stop) ticks minus the round-trip costs (0.84 $ = 0.672 ticks); rr = the shipped 2.0
    tg = out.long_how == 2
    assert tg.sum() > 100
    assert np.allclose(out.long_ticks[tg], np.floor(2.0 * out.stop_ticks[tg] + 1e-9) - 0.84 / 1.25)


def test_bracket_target_classes_and_meta_label(bars):
    s = Settings()
    out = bracket_outcomes(bars, s, horizon_bars=30)
    y = make_bracket_target(out)
    assert set(np.unique(y)) == {NO_LABEL, DOWN, FLAT, UP}
    assert not np.any((out.long_ticks > 0) & (out.short_ticks > 0))  # never both
    assert np.all(y[y == UP] == UP) and np.all(out.long_ticks[y == UP] > 0)
    assert np.all(out.short_ticks[y == DOWN] > 0)
    side = BreakoutBaseline().signals(bars).direction
    ym = make_bracket_target(out, side)
    on = ym >= 0
    assert np.all(side[on] != 0) and on.sum() > 100
    assert np.all(ym[on & (side > 0)] != DOWN) and np.all(ym[on & (side < 0)] != UP)
    assert np.all((ym[on] == FLAT) == ~(out.side_ticks(side)[on] > 0))


def test_trade_expectancy_one_at_a_time_never_overlaps(bars):
    out = bracket_outcomes(bars, Settings(), horizon_bars=30)
    side = BreakoutBaseline().signals(bars).direction
    e = trade_expectancy(out, side)
    ps, one = e["per_signal"], e["one_at_a_time"]
    assert 0 < one["trades"] < ps["trades"]
    v = out.side_ticks(side)
    assert ps["mean_ticks"] == pytest.approx(np.nanmean(v[side != 0]))
    assert ps["mean_usd"] == pytest.approx(ps["mean_ticks"] * 1.25)


def test_meta_mode_refuses_the_direction_target(bars):
    with pytest.raises(ValueError, match="meta"):
        build_dataset(bars, target_cfg=TargetConfig(mode="meta"), tick_size=0.25)


@pytest.fixture(scope="module")
def volume_free_model(bars, tmp_path_factory):
    out = tmp_path_factory.mktemp("ck")
    s = Settings()
    s = dataclasses.replace(s, target=TargetConfig(kind="bracket", time_limit_bars=30))
    rep = train_from_bars(bars, out_dir=out, arch="mlp", walk_forward=False,
                          params=TrainParams(epochs=1, batch_size=4096, seed=3), training_cfg=s.training,
                          target_cfg=s.target, tick_size=0.25, hparams={"hidden": [8]}, name="nv", settings=s)
    return rep


def test_training_report_has_expectancy_after_costs(volume_free_model):
    c = volume_free_model.summary["walk_forward"]["combined"]["trading"]
    for who in ("model", "rule"):
        for k in ("trades", "mean_ticks", "mean_usd", "se_ticks"):
            assert k in c[who]["one_at_a_time"]
    assert volume_free_model.summary["target"]["kind"] == "bracket"


def test_checkpoint_decides_the_features(volume_free_model, topstepx_path, tmp_path):
    vb = load_bars(topstepx_path)
    assert vb.has_volume
    sig = ModelStrategy(volume_free_model.checkpoint).signals(vb.slice(0, 5000))  # volume ignored
    assert np.isfinite(sig.confidence).sum() > 1000
    s = Settings()
    rep = train_from_bars(vb.slice(0, 30_000), out_dir=tmp_path, arch="mlp", walk_forward=False,
                          params=TrainParams(epochs=1, batch_size=4096, seed=3), training_cfg=s.training,
                          target_cfg=s.target, tick_size=0.25, hparams={"hidden": [8]}, name="v")
    with pytest.raises(CheckpointError, match="vol_delta"):
        ModelStrategy(rep.checkpoint).signals(_no_volume(vb.slice(0, 5000)))


def _no_volume(b):
    from engine.data.bars import Bars

    return Bars(b.ts, b.open, b.high, b.low, b.close, np.full(len(b), np.nan), bar_ns=b.bar_ns, symbol=b.symbol)


def test_fixed_stop_method_and_time_limit_exits(bars):
    s = Settings()
    s = dataclasses.replace(s, stops=dataclasses.replace(s.stops, method="fixed", fixed_ticks=10, max_stop_ticks=40,
                                                       reward_risk=2.0))
    out = bracket_outcomes(bars, s, horizon_bars=3)
    ok = np.isfinite(out.long_ticks)
    assert (out.stop_ticks[ok] == 10).all()
    assert set(np.unique(out.long_how[ok])) == {1, 2, 3}  # stop, target and time limit all occur
    cost = 0.84 / 1.25
    assert np.allclose(out.long_ticks[out.long_how == 2], 20 - cost)
    assert (out.long_exit[ok] - np.flatnonzero(ok) <= 4).all() and (out.long_exit[ok] > np.flatnonzero(ok)).all()


def test_meta_take_probability_leaves_the_impossible_class_out():
    from engine.data.target import meta_take_probability

    p = np.array([[0.1, 0.3, 0.6]] * 3)
    got = meta_take_probability(p, np.array([1, -1, 0]))
    assert got[0] == pytest.approx(0.6 / 0.9) and got[1] == pytest.approx(0.1 / 0.4) and np.isnan(got[2])
