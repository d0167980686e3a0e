"""Typed settings: defaults here, ``config.toml`` files over them, secrets from the environment.

Load order (later wins): the defaults of the dataclasses below (identical to the commented
``config.toml`` at the project root, a test keeps them equal) → the user file
``<platformdirs user_config_dir("mes-console")>/config.toml`` if it exists → the file given with
``--config PATH`` → secrets from ``PROJECTX_USERNAME``, ``PROJECTX_API_KEY``,
``DATABENTO_API_KEY``. Secrets are never read from a file and never printed unmasked.

A wrong type, an unknown key or an impossible value raises :class:`ConfigError` naming the file,
``[section] key``, the value and what is allowed. The schema: declared types (numbers finite:
no nan/inf), ranges and choices in each field's metadata, the row shapes of list settings in
:data:`LIST_SHAPES`, and the cross-field rules of :func:`_check_invariants` (money limits
> 0, smaller than the account and in order). A UTF-8 byte-order mark is tolerated. Every number of REQUIREMENTS §0 lives here.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, get_origin, get_type_hints

import tomllib

APP_NAME = "mes-console"
SECRET_ENV = {
    "projectx_username": "PROJECTX_USERNAME",
    "projectx_api_key": "PROJECTX_API_KEY",
    "databento_api_key": "DATABENTO_API_KEY",
}


class ConfigError(ValueError):
    """Invalid configuration: names the source, the key, the value and what is allowed."""


def _f(default: Any, *, lo: float | None = None, hi: float | None = None,
       choices: tuple | None = None, doc: str = "") -> Any:
    meta = {"lo": lo, "hi": hi, "choices": choices, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class InstrumentConfig:
    symbol: str = _f("MES", choices=("MES", "ES", "MNQ", "NQ"), doc="product traded")


@dataclass(frozen=True)
class AccountConfig:
    starting_capital: float = _f(1000.0, lo=0.0, doc="dollars; default: the profile's account size ($1,000 for none)")
    name: str = _f("", doc="broker account name; empty = the only tradable account")
    rules: str = _f("none", choices=("none", "topstepx-50k", "topstepx-100k", "topstepx-150k", "topstepx-xfa-50k",
                                     "topstepx-xfa-100k", "topstepx-xfa-150k"),
                    doc="account profile (engine/risk/profiles.py): sets the starting capital, the venue's rules and the engine's derived [risk] limits; none = the §0 $1,000 account")
    personal_daily_loss_limit: float = _f(0.0, lo=0.0, doc="dollars, venue profile only; 0 = the profile's (none on TopstepX since 25 Aug 2025)")
    mll_eod_high: float = _f(0.0, lo=0.0, doc="known end-of-day balance high from the venue dashboard; 0 = account size")
    mll_allowance: float = _f(0.0, lo=0.0, doc="$ the MLL trails below the end-of-day high; 0 = the profile's")
    mll_lock: float = _f(0.0, lo=0.0, doc="balance $ at which the MLL stops trailing; 0 = the profile's (the starting balance)")
    max_contracts: int = _f(0, lo=0, doc="venue position cap in full-size contracts (micros 10:1); 0 = the profile's")
    profit_target: float = _f(0.0, lo=0.0, doc="$ profit that passes a Combine; 0 = the profile's")
    consistency_share: float = _f(0.0, lo=0.0, hi=1.0, doc="best day / total profit a pass allows; 0 = the profile's")
    mll_entry_cap: bool = _f(True, doc="cap each entry so its stop-out stays above the MLL (the engine's guard); false = the venue's liquidation alone decides, as for a trader without it")
    evaluation_fee: float = _f(0.0, lo=0.0, doc="$ per evaluation attempt (Monte Carlo expected value); 0 = no economics")
    reset_fee: float = _f(0.0, lo=0.0, doc="$ per reset after a failed attempt (expected value)")
    payout_value: float = _f(0.0, lo=0.0, doc="$ a passed attempt is worth to you (expected value); 0 = no economics")


@dataclass(frozen=True)
class RiskConfig:
    daily_loss_limit: float = _f(50.0, lo=0.0, doc="$: no new trades until the next session")
    daily_drawdown_limit: float = _f(75.0, lo=0.0, doc="$ from the day's equity peak: stop for the day")
    max_risk_per_trade: float = _f(25.0, lo=0.0, doc="$ at the stop, all contracts")
    consecutive_loss_pauses: list = _f(
        [[3, 900], [5, 1800]], doc="[[losses, pause seconds], ...]: auto-resume after the pause"
    )
    kill_switch_loss: float = _f(300.0, lo=0.0, doc="$ cumulative loss: permanent halt, manual reset")
    min_account_balance: float = _f(700.0, lo=0.0, doc="$: no trading below")
    account_drawdown_limit: float = _f(200.0, lo=0.0, doc="$ from the high-water mark: halt for review")
    balance_tiers: list = _f(
        [[700.0, 1, 0.02], [1000.0, 2, 0.02], [1500.0, 3, 0.02], [2000.0, 4, 0.02], [3000.0, 5, 0.015]],
        doc="[[balance from $, max contracts, risk fraction], ...] ascending",
    )
    confidence_multipliers: list = _f(
        [[0.60, 0.5], [0.70, 1.0], [0.80, 1.5], [0.90, 2.0]],
        doc="[[confidence from, size multiplier], ...] ascending; below the first: no trade",
    )
    volatility_breaker_ratio: float = _f(3.0, lo=1.0, doc="ATR / normal ATR above which size halves")
    volatility_action: str = _f("half", choices=("half", "pause"), doc="what the volatility breaker does")
    spread_pause_ticks: float = _f(2.0, lo=0.0, doc="pause entries while spread > this")
    spread_resume_ticks: float = _f(1.0, lo=0.0, doc="resume when spread ≤ this")
    low_volume_ratio: float = _f(0.10, lo=0.0, hi=1.0, doc="volume / its average below which entries pause")
    low_volume_action: str = _f("pause", choices=("reduce", "pause"), doc="what the volume breaker does")


@dataclass(frozen=True)
class CostsConfig:
    commission_per_side: float = _f(0.20, lo=0.0, doc="$ per contract per side")
    exchange_fee_per_side: float = _f(0.22, lo=0.0, doc="$ per contract per side (round trip 0.84)")


@dataclass(frozen=True)
class SlippageConfig:
    market_ticks: float = _f(1.0, lo=0.0, doc="market orders, normal RTH")
    thin_ticks: float = _f(2.0, lo=0.0, doc="market orders in ETH or thin markets")
    high_vol_min_ticks: float = _f(2.0, lo=0.0, doc="high volatility, lower bound")
    high_vol_max_ticks: float = _f(4.0, lo=0.0, doc="high volatility, upper bound (ATR-adaptive)")
    high_vol_atr_ratio: float = _f(1.5, lo=1.0, doc="ATR / normal ATR from which volatility is high")
    limit_ticks: float = _f(0.0, lo=0.0, doc="limit fills")


@dataclass(frozen=True)
class SessionConfig:
    trade_session: str = _f("rth", choices=("rth", "eth", "all"), doc="when entries are allowed")


@dataclass(frozen=True)
class EodConfig:
    reduce_size_multiplier: float = _f(0.5, lo=0.0, hi=1.0, doc="risk budget × this in the reduce phase")
    eod_stop_tighten: float = _f(0.5, lo=0.0, hi=1.0, doc="stop distance × this from the no_new phase")
    profile: str = _f("topstepx", choices=("topstepx", "fixed_ny"),
                      doc="venue deadline: topstepx = flat margin_min before 15:10 CT (16:10 NY) or the exchange close; fixed_ny = the old 16:00/16:15/16:25/16:30 NY")
    margin_min: float = _f(5.0, lo=0.0, hi=120.0, doc="minutes the flat time sits before the venue deadline (topstepx)")
    reduce_min: float = _f(30.0, lo=0.0, hi=240.0, doc="reduce phase (size × reduce_size_multiplier) starts this many minutes before flat")
    no_new_min: float = _f(15.0, lo=0.0, hi=240.0, doc="no new positions from this many minutes before flat")
    exit_min: float = _f(5.0, lo=0.0, hi=240.0, doc="aggressive market exits from this many minutes before flat")


@dataclass(frozen=True)
class StopsConfig:
    method: str = _f("atr", choices=("atr", "fixed", "structure"), doc="initial stop rule")
    atr_period: int = _f(14, lo=1, doc="bars")
    atr_multiplier: float = _f(1.5, lo=0.1, doc="stop = ATR × this")
    fixed_ticks: int = _f(8, lo=1, doc="fixed stop, ticks (8 = $10 per MES contract)")
    structure_lookback: int = _f(10, lo=2, doc="bars for the swing high/low")
    min_stop_ticks: int = _f(4, lo=1, doc="never a stop closer than this")
    max_stop_ticks: int = _f(8, lo=1, doc="never a stop wider than this (8 ticks + costs + slippage fit the $20 budget of a $1,000 account)")
    reward_risk: float = _f(2.0, lo=1.0, hi=3.0, doc="target distance / stop distance (2.0: walk-forward defaults study, specs/research.md)")
    breakeven_after_ticks: int = _f(6, lo=0, doc="move the stop to entry after this profit; 0 = off")
    trailing_ticks: int = _f(0, lo=0, doc="trail the stop this far behind the best price; 0 = off")


@dataclass(frozen=True)
class SignalConfig:
    min_confidence: float = _f(0.60, lo=0.0, hi=1.0, doc="no trade below this model confidence")
    exit_cooldown_s: float = _f(60.0, lo=0.0, doc="no new entry this long after an exit")
    reversal_cooldown_s: float = _f(30.0, lo=0.0, doc="seconds between reversals")
    max_reversals_per_range: int = _f(2, lo=0, doc="reversals allowed within one bar range")
    model_threshold: str = _f("checkpoint", choices=("checkpoint", "config"),
                              doc="a model's entry threshold: checkpoint = the one chosen on validation by after-cost expectancy (min_confidence and the first confidence_multipliers step follow it); config = min_confidence")


@dataclass(frozen=True)
class TargetConfig:
    lookahead_s: int = _f(30, lo=1, doc="label horizon on sub-minute bars, seconds")
    lookahead_minutes: int = _f(5, lo=1, doc="label horizon on bars of a minute or more, minutes")
    threshold_ticks: int = _f(3, lo=1, doc="|move| ≥ this → UP/DOWN, else FLAT")
    kind: str = _f("direction", choices=("direction", "bracket"),
                   doc="direction: ±threshold move over the lookahead; bracket: triple-barrier outcome of the kernel's stop/target, net of costs")
    mode: str = _f("direct", choices=("direct", "meta"),
                   doc="direct: the model picks the side; meta: the model decides whether to take the rule strategy's signal (and its size)")
    time_limit_bars: int = _f(0, lo=0, doc="bracket target's time limit in bars; 0 = the lookahead")


@dataclass(frozen=True)
class TrainingConfig:
    arch: str = _f("mlp", choices=("mlp", "lstm", "hybrid", "transformer"), doc="model family")
    epochs: int = _f(20, lo=1, doc="maximum epochs")
    batch_size: int = _f(1024, lo=1, doc="rows per batch")
    learning_rate: float = _f(1e-3, lo=0.0, doc="AdamW")
    patience: int = _f(3, lo=1, doc="early-stopping epochs without validation improvement")
    seq_len: int = _f(32, lo=1, doc="bars per sequence for the recurrent/attention models")
    seed: int = _f(7, lo=0, doc="deterministic seed")
    train_months: int = _f(6, lo=1, doc="walk-forward train window")
    val_months: int = _f(1, lo=1, doc="walk-forward validation window")
    test_months: int = _f(1, lo=1, doc="walk-forward test window")
    roll_months: int = _f(1, lo=1, doc="walk-forward step")


@dataclass(frozen=True)
class BacktestConfig:
    fill_model: str = _f("conservative", choices=("conservative", "optimistic", "realistic"),
                         doc="R-BT-1 fill model")
    strategy: str = _f("baseline", doc="rule-based strategy when no model is given")
    baseline_lookback: int = _f(30, lo=2, doc="baseline breakout: bars of the Donchian channel")
    research: bool = _f(False, doc="record each account-level halt and resume at the next RTH open (backtest only)")


@dataclass(frozen=True)
class OptimizeConfig:
    sampler: str = _f("tpe", choices=("tpe", "random", "grid"), doc="Optuna sampler")
    trials: int = _f(200, lo=1, doc="completed trials the study aims at (a resumed study counts its earlier ones)")
    workers: int = _f(2, lo=1, doc="worker processes on this machine")
    objective: str = _f("sharpe", choices=("sharpe", "net_pnl", "calmar", "expectancy", "pass_probability", "expected_value"),
                        doc="maximised on the validation window")
    holdout_months: int = _f(3, lo=1, doc="the last months, never seen by the search, for the report")
    min_trades: int = _f(50, lo=0, doc="a trial with fewer validation trades scores -1e9 (not trading is no result)")
    min_active_days_pct: float = _f(20.0, lo=0.0, hi=100.0, doc="a trial trading on fewer % of the validation days scores -1e9 (it stopped trading)")
    storage: str = _f("", doc="Optuna storage URL; empty = SQLite file under the data dir")
    stop_ticks: list = _f([4, 8, 1], doc="[low, high, step] fixed stop distance, ticks (within [stops] min_stop_ticks … max_stop_ticks, checked before the study)")
    reward_risk: list = _f([1.0, 3.0, 0.25], doc="[low, high, step] target / stop")
    min_confidence: list = _f([0.6, 0.9, 0.05], doc="[low, high, step] confidence threshold (models only; below the first confidence_multipliers step no trade is sized)")
    risk_fraction: list = _f([0.01, 0.025, 0.005], doc="[low, high, step] risk fraction of every balance tier (its high is lowered to [risk] max_risk_per_trade / starting capital when above, and the study says so)")
    baseline_lookback: list = _f([10, 120, 5], doc="[low, high, step] baseline breakout channel, bars (rule strategy only)")


@dataclass(frozen=True)
class GoLiveConfig:
    min_sharpe: float = _f(1.0, doc="R-BT-4")
    min_calmar: float = _f(0.5, doc="R-BT-4")
    min_accuracy: float = _f(0.52, lo=0.0, hi=1.0, doc="out-of-sample 3-class accuracy")
    min_trades_per_fold: int = _f(100, lo=0, doc="R-BT-4")


@dataclass(frozen=True)
class LatencyConfig:
    decision_budget_ms: float = _f(10.0, lo=0.0, doc="bar close → order decision")
    features_budget_ms: float = _f(5.0, lo=0.0, doc="features alone")


@dataclass(frozen=True)
class ReconcileConfig:
    mode: str = _f("strict", choices=("strict", "warn", "auto-sync"), doc="R-EXE-4")
    interval_s: float = _f(30.0, lo=1.0, doc="periodic reconciliation")


@dataclass(frozen=True)
class ProjectXConfig:
    api_url: str = _f("https://api.topstepx.com", doc="REST base URL")
    user_hub_url: str = _f("https://rtc.topstepx.com/hubs/user", doc="SignalR user hub")
    market_hub_url: str = _f("https://rtc.topstepx.com/hubs/market", doc="SignalR market hub")
    history_rate: list = _f([50, 30], doc="[requests, seconds] for History/retrieveBars")
    general_rate: list = _f([200, 60], doc="[requests, seconds] for every other endpoint")
    token_renew_margin_s: float = _f(600.0, lo=0.0, doc="renew this long before expiry")
    request_timeout_s: float = _f(10.0, lo=0.1, doc="one REST call")
    stale_feed_s: float = _f(10.0, lo=0.1, doc="no quote for this long → stale banner")


@dataclass(frozen=True)
class AlertsConfig:
    webhook_url: str = _f("", doc="generic JSON webhook; empty = off")
    slack_webhook_url: str = _f("", doc="empty = off")
    discord_webhook_url: str = _f("", doc="empty = off")
    email_to: str = _f("", doc="empty = off")
    smtp_host: str = _f("", doc="SMTP server")
    throttle_s: float = _f(60.0, lo=0.0, doc="same alert at most once per this many seconds")


@dataclass(frozen=True)
class UiConfig:
    refresh_hz: float = _f(10.0, lo=1.0, hi=30.0, doc="snapshot polls per second")
    on_disconnect: str = _f("protect", choices=("protect", "flatten"),
                            doc="UI crash or lost terminal: keep protecting, or flatten and halt")
    key_pause: str = _f("p", doc="pause/resume")
    key_flatten: str = _f("f", doc="flatten (y/n confirm)")
    key_halt: str = _f("ctrl+k", doc="kill switch, priority binding")
    key_reset: str = _f("ctrl+r", doc="reset a halt (typed confirmation)")
    key_backtest: str = _f("b", doc="backtest screen")
    key_train: str = _f("t", doc="training screen")
    key_help: str = _f("question_mark", doc="help")
    key_quit: str = _f("q", doc="quit")


@dataclass(frozen=True)
class PathsConfig:
    data_dir: str = _f("", doc="empty = platformdirs user data dir")
    models_dir: str = _f("", doc="empty = <data dir>/models")
    state_dir: str = _f("", doc="empty = platformdirs user state dir")
    reports_dir: str = _f("", doc="empty = <data dir>/reports")
    log_dir: str = _f("", doc="empty = platformdirs user log dir")


@dataclass(frozen=True)
class DataConfig:
    strict: bool = _f(False, doc="refuse to train/backtest/replay on data with validation errors")


@dataclass(frozen=True)
class LiveStartConfig:
    on_start_position: str = _f("flatten", choices=("flatten", "adopt"),
                                doc="a broker position found at start-up: close it, or adopt it with a protective bracket")
    warm_start: bool = _f(True, doc="warm features and model from History/retrieveBars before streaming")


@dataclass(frozen=True)
class DatabentoConfig:
    dataset: str = _f("GLBX.MDP3", doc="CME Globex")
    symbols: list = _f(["MES.c.0"], doc="continuous front month")


# ---- issue 26: [lockouts] (discipline lockouts in the risk manager), [remote] (Telegram remote
# control) and [watchdog] (dead-man watchdog and heartbeat); specs/remote.md
@dataclass(frozen=True)
class LockoutsConfig:
    max_trades_per_day: int = _f(0, lo=0, doc="round trips per CME trading day, then no entries until 18:00 NY; 0 = off")
    daily_profit_lock: float = _f(0.0, lo=0.0, doc="$ day P&L at which entries stop for the day; 0 = off")
    consistency_share: float = _f(0.0, lo=0.0, hi=1.0, doc="stop entries once the day's P&L reaches this share of consistency_target; 0 = off")
    consistency_target: float = _f(0.0, lo=0.0, doc="$ the account's profit target the consistency share applies to")
    after_open_minutes: float = _f(0.0, lo=0.0, hi=390.0, doc="no entries in the first minutes after the RTH open (09:30 NY); 0 = off")
    blocked_windows: list = _f([], doc='[["HH:MM", "HH:MM"], ...] New York times without entries, every day')
    events_file: str = _f("", doc="economic calendar, .ics or .csv (examples/calendar/); empty = off")
    events_min_importance: str = _f("high", choices=("low", "medium", "high"), doc="events of this importance or more")
    events_before_min: float = _f(5.0, lo=0.0, hi=1440.0, doc="no entries from this many minutes before an event")
    events_after_min: float = _f(5.0, lo=0.0, hi=1440.0, doc="... to this many minutes after it")
    events_action: str = _f("block", choices=("block", "flatten", "breakeven"),
                            doc="at T-before: block entries only, or also flatten / move the stop to break-even")


@dataclass(frozen=True)
class RemoteConfig:
    telegram: bool = _f(False, doc="Telegram remote control; token from MES_TELEGRAM_TOKEN, never a file")
    allowed_chats: list = _f([], doc="chat ids obeyed; every other chat is logged and ignored")
    allow_reset: bool = _f(False, doc="allow /reset RESET remotely")
    base_url: str = _f("", doc="Bot API base URL; empty = https://api.telegram.org/bot")
    poll_timeout_s: float = _f(10.0, lo=0.0, hi=60.0, doc="long-poll timeout, seconds")
    action_timeout_s: float = _f(20.0, lo=1.0, hi=300.0, doc="wait this long for the broker to confirm an action")


@dataclass(frozen=True)
class WatchdogConfig:
    enabled: bool = _f(True, doc="dead-man watchdog in paper and live sessions")
    heartbeat_min: float = _f(60.0, lo=0.0, doc="heartbeat message every this many minutes; 0 = off")
    bar_silence_s: float = _f(180.0, lo=1.0, doc="alert when no bar closed for this long in a session")
    feed_silence_s: float = _f(60.0, lo=1.0, doc="alert when no quote or trade arrived for this long in a session")
    protection_s: float = _f(10.0, lo=1.0, doc="alert when an open position has no broker-confirmed stop for this long")
    flatten_on_alarm: bool = _f(False, doc="also flatten (and pause) when the watchdog fires")


@dataclass(frozen=True)
class Secrets:
    """Secrets from the environment only. ``repr`` masks them."""

    projectx_username: str = ""
    projectx_api_key: str = ""
    databento_api_key: str = ""

    def __repr__(self) -> str:
        return "Secrets(" + ", ".join(f"{k}={mask(getattr(self, k))}" for k in SECRET_ENV) + ")"


@dataclass(frozen=True)
class Settings:
    """All settings. ``sources`` lists the files that were applied, in order."""

    instrument: InstrumentConfig = field(default_factory=InstrumentConfig)
    account: AccountConfig = field(default_factory=AccountConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    costs: CostsConfig = field(default_factory=CostsConfig)
    slippage: SlippageConfig = field(default_factory=SlippageConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    eod: EodConfig = field(default_factory=EodConfig)
    stops: StopsConfig = field(default_factory=StopsConfig)
    signal: SignalConfig = field(default_factory=SignalConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    go_live: GoLiveConfig = field(default_factory=GoLiveConfig)
    optimize: OptimizeConfig = field(default_factory=OptimizeConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)
    projectx: ProjectXConfig = field(default_factory=ProjectXConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    databento: DatabentoConfig = field(default_factory=DatabentoConfig)
    data: DataConfig = field(default_factory=DataConfig)
    live: LiveStartConfig = field(default_factory=LiveStartConfig)
    lockouts: LockoutsConfig = field(default_factory=LockoutsConfig)
    remote: RemoteConfig = field(default_factory=RemoteConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    secrets: Secrets = field(default_factory=Secrets, compare=False)
    sources: tuple = field(default=(), compare=False)
    explicit: frozenset = field(default=frozenset(), compare=False)
    """``"section.key"`` names a config file set (the account profile derives the others)."""

    def to_dict(self, *, mask_secrets: bool = True) -> dict[str, Any]:
        """Plain dict of every section (secrets masked unless told otherwise)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("sources", "explicit"):
                continue
            section = dataclasses.asdict(getattr(self, f.name))
            if f.name == "secrets" and mask_secrets:
                section = {k: mask(v) for k, v in section.items()}
            out[f.name] = section
        return out


def mask(secret: str) -> str:
    """``"abcdef123"`` → ``"****123"``; empty → ``"(unset)"``. Shows at most 3 characters."""
    if not secret:
        return "(unset)"
    return "****" + (secret[-3:] if len(secret) >= 12 else "")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(source: str, key: str, value: Any, tp: Any, meta: dict) -> Any:
    where = f"{source}: [{key.split('.')[0]}] {key.split('.', 1)[1]}"
    origin = get_origin(tp) or tp
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} = {value!r}: expected a number")
        if not math.isfinite(value):
            raise ConfigError(f"{where} = {value!r}: expected a finite number (not nan or inf)")
        value = float(value)
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} = {value!r}: expected an integer")
    elif tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {value!r}: expected true or false")
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} = {value!r}: expected a string")
    elif origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} = {value!r}: expected an array")
        _check_list(where, key, value)
    lo, hi, choices = meta.get("lo"), meta.get("hi"), meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{where} = {value!r}: allowed values are {', '.join(map(repr, choices))}")
    if lo is not None and isinstance(value, (int, float)) and value < lo:
        raise ConfigError(f"{where} = {value!r}: must be ≥ {lo}")
    if hi is not None and isinstance(value, (int, float)) and value > hi:
        raise ConfigError(f"{where} = {value!r}: must be ≤ {hi}")
    return value


# The declared shapes of the list settings (issue 15 item 7): per row, one (what, kind, lo, hi)
# per column; kind "int" (an integer), "num" (a finite number), "str". lo/hi bound the column
# inclusively (None = open); the columns in _ROW_OPEN have an exclusive lower bound.
# A list setting not declared here must still hold only finite numbers and text.
LIST_SHAPES: dict[str, tuple] = {
    "risk.balance_tiers": (("balance from $", "num", 0.0, None), ("max contracts", "int", 1, 100),
                           ("risk fraction", "num", 0.0, 0.1)),
    "risk.confidence_multipliers": (("confidence from", "num", 0.0, 1.0), ("size multiplier", "num", 0.0, 10.0)),
    "risk.consecutive_loss_pauses": (("losses", "int", 1, 1000), ("pause seconds", "num", 0.0, 7 * 86_400.0)),
    "projectx.history_rate": ("requests", "int", 1, None),
    "projectx.general_rate": ("requests", "int", 1, None),
    "lockouts.blocked_windows": (("from HH:MM NY", "str", None, None), ("to HH:MM NY", "str", None, None)),
}
_ROW_OPEN = {("risk.balance_tiers", 2), ("risk.confidence_multipliers", 1)}   # lower bound exclusive


def _check_list(where: str, key: str, value: list) -> None:
    """Validate a list setting against :data:`LIST_SHAPES` (rows of the declared columns, each
    a finite number / integer / text within its bounds); undeclared lists: finite numbers and text
    only. Raises :class:`ConfigError` naming ``[section] key``, the row and the column."""
    shape = LIST_SHAPES.get(key)

    def bad(msg: str):
        raise ConfigError(f"{where} = {value!r}: {msg}")

    def check_cell(v, what, kind, lo, hi, col_key, at):
        if kind == "str":
            if not isinstance(v, str):
                bad(f"{at}: {what} {v!r} must be text")
            return
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            bad(f"{at}: {what} {v!r} must be a number")
        if not math.isfinite(v):
            bad(f"{at}: {what} {v!r} must be finite")
        if kind == "int" and (isinstance(v, float) and v != int(v)):
            bad(f"{at}: {what} {v!r} must be an integer")
        if lo is not None and (v <= lo if col_key in _ROW_OPEN else v < lo):
            bad(f"{at}: {what} {v!r} must be {'>' if col_key in _ROW_OPEN else '≥'} {lo}")
        if hi is not None and v > hi:
            bad(f"{at}: {what} {v!r} must be ≤ {hi}")

    if shape is None:
        def walk(v, at):
            if isinstance(v, list):
                for i, x in enumerate(v):
                    walk(x, f"{at}[{i}]")
            elif isinstance(v, bool) or not isinstance(v, (int, float, str)):
                bad(f"{at}: {v!r} must be a number or text")
            elif isinstance(v, float) and not math.isfinite(v):
                bad(f"{at}: {v!r} must be finite")
        walk(value, "item")
        return
    if isinstance(shape[0], str):          # a flat pair [count, seconds]
        if len(value) != 2:
            bad("expected [requests, seconds]")
        check_cell(value[0], "requests", "int", 1, None, (key, 0), "item 1")
        check_cell(value[1], "seconds", "num", 0.0, None, (key, 1), "item 2")
        if value[1] <= 0:
            bad("item 2: seconds must be > 0")
        return
    names = ", ".join(c[0] for c in shape)
    for i, row in enumerate(value, 1):
        if not isinstance(row, list) or len(row) != len(shape):
            bad(f"row {i} {row!r}: expected [{names}]")
        for j, (what, kind, lo, hi) in enumerate(shape):
            check_cell(row[j], what, kind, lo, hi, (key, j), f"row {i}")


def _apply(settings: Settings, data: dict[str, Any], source: str) -> Settings:
    sections = {f.name: f for f in dataclasses.fields(Settings) if f.name not in ("secrets", "sources", "explicit")}
    changes: dict[str, Any] = {}
    for name, values in data.items():
        if name not in sections:
            raise ConfigError(
                f"{source}: unknown section [{name}]; known sections: {', '.join(sections)}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{name}] must be a table, got {values!r}")
        current = getattr(settings, name)
        cls = type(current)
        hints = get_type_hints(cls)
        fields_ = {f.name: f for f in dataclasses.fields(cls)}
        updates = {}
        for key, value in values.items():
            if key in SECRET_ENV:
                raise ConfigError(
                    f"{source}: [{name}] {key}: secrets are read only from the environment "
                    f"variable {SECRET_ENV[key]}, never from a file"
                )
            if key not in fields_:
                raise ConfigError(
                    f"{source}: unknown key [{name}] {key}; known keys: {', '.join(fields_)}"
                )
            updates[key] = _coerce(source, f"{name}.{key}", value, hints[key], dict(fields_[key].metadata))
        changes[name] = dataclasses.replace(current, **updates)
    explicit = settings.explicit | {f"{name}.{key}" for name, values in data.items() for key in values}
    result = dataclasses.replace(settings, **changes, explicit=frozenset(explicit))
    # the account profile's derived values in every key no file set (engine/risk/profiles.py)
    from engine.risk.profiles import apply_profile

    result = apply_profile(result, result.explicit)
    _check_invariants(result, source)
    return result


def _check_invariants(s: Settings, source: str) -> None:
    r = s.risk
    tiers = r.balance_tiers
    if not tiers or any(not (isinstance(t, list) and len(t) == 3) for t in tiers):
        raise ConfigError(f"{source}: [risk] balance_tiers = {tiers!r}: expected [[balance, contracts, risk], ...]")
    if [t[0] for t in tiers] != sorted(t[0] for t in tiers):
        raise ConfigError(f"{source}: [risk] balance_tiers = {tiers!r}: balances must ascend")
    for t in tiers:
        if int(t[1]) < 1 or not (0 < float(t[2]) <= 0.1):
            raise ConfigError(f"{source}: [risk] balance_tiers row {t!r}: contracts ≥ 1 and 0 < risk ≤ 0.1")
    conf = r.confidence_multipliers
    if not conf or any(not (isinstance(c, list) and len(c) == 2) for c in conf):
        raise ConfigError(f"{source}: [risk] confidence_multipliers = {conf!r}: expected [[confidence, multiplier], ...]")
    if [c[0] for c in conf] != sorted(c[0] for c in conf):
        raise ConfigError(f"{source}: [risk] confidence_multipliers = {conf!r}: confidences must ascend")
    for p in r.consecutive_loss_pauses:
        if not (isinstance(p, list) and len(p) == 2 and int(p[0]) >= 1 and float(p[1]) >= 0):
            raise ConfigError(f"{source}: [risk] consecutive_loss_pauses row {p!r}: expected [losses ≥ 1, seconds ≥ 0]")
    if r.spread_resume_ticks > r.spread_pause_ticks:
        raise ConfigError(
            f"{source}: [risk] spread_resume_ticks = {r.spread_resume_ticks} must be ≤ spread_pause_ticks = {r.spread_pause_ticks}"
        )
    if s.slippage.high_vol_min_ticks > s.slippage.high_vol_max_ticks:
        raise ConfigError(f"{source}: [slippage] high_vol_min_ticks must be ≤ high_vol_max_ticks")
    if s.stops.min_stop_ticks > s.stops.max_stop_ticks:
        raise ConfigError(f"{source}: [stops] min_stop_ticks must be ≤ max_stop_ticks")
    if s.stops.method == "fixed" and not (s.stops.min_stop_ticks <= s.stops.fixed_ticks <= s.stops.max_stop_ticks):
        # issue 24: the kernel would clamp it, so the file would say one stop and trade another
        raise ConfigError(f"{source}: [stops] fixed_ticks = {s.stops.fixed_ticks} lies outside [stops] min_stop_ticks = "
                          f"{s.stops.min_stop_ticks} … max_stop_ticks = {s.stops.max_stop_ticks} (method \"fixed\"): "
                          "the kernel would clamp it")
    e = s.eod
    if not (e.reduce_min >= e.no_new_min >= e.exit_min):
        raise ConfigError(f"{source}: [eod] reduce_min = {e.reduce_min}, no_new_min = {e.no_new_min}, exit_min = "
                          f"{e.exit_min}: must satisfy reduce_min ≥ no_new_min ≥ exit_min")
    for key in ("history_rate", "general_rate"):
        v = getattr(s.projectx, key)
        if not (len(v) == 2 and all(isinstance(x, (int, float)) and x > 0 for x in v)):
            raise ConfigError(f"{source}: [projectx] {key} = {v!r}: expected [requests > 0, seconds > 0]")
    _check_risk_order(s, source)
    _check_lockouts(s, source)
    _check_cross_rules(s, source)


# ---- cross-field rules of issue 22 item 5 (one block: venue deadline, keys, ranges, URLs, training)
_VENUE_DEADLINE_NY = {"topstepx": "16:10"}
"""New York time by which a venue's accounts must be flat, by the profile name's venue prefix
(TopstepX, every profile ``topstepx-*``: 15:10 CT)."""
_FIXED_NY_FLAT = "16:30"
"""Flat time of ``[eod] profile = "fixed_ny"`` (New York)."""
MAX_EPOCHS = 100_000
"""``[training] epochs`` above this is a typo, not a plan (2^70 would never end)."""
_URL_SCHEMES = {"projectx.api_url": ("https", "http"), "projectx.user_hub_url": ("https", "http", "wss", "ws"),
                "projectx.market_hub_url": ("https", "http", "wss", "ws"), "alerts.webhook_url": ("https", "http"),
                "alerts.slack_webhook_url": ("https",), "alerts.discord_webhook_url": ("https",)}
"""Allowed schemes per URL setting (an empty alert URL is off and allowed)."""


def _check_cross_rules(s: Settings, source: str) -> None:
    """Cross-field rules (issue 22 item 5), each refused naming ``[section] key``: the EOD flat
    time lies before the venue profile's deadline (``fixed_ny`` flattens at 16:30 New York, after
    TopstepX's 16:10); the halt, flatten and quit keys are non-empty and differ from each other
    and from every other console key; each ``[optimize]`` range is [low, high, step] with
    low ≤ high and step > 0; URLs use their allowed schemes (:data:`_URL_SCHEMES`) and name a
    host; ``[training] learning_rate`` > 0 and ``epochs`` ≤ :data:`MAX_EPOCHS`."""
    from urllib.parse import urlparse

    deadline = _VENUE_DEADLINE_NY.get(s.account.rules.split("-")[0])
    if deadline is not None and s.eod.profile == "fixed_ny" and _FIXED_NY_FLAT > deadline:
        raise ConfigError(f"{source}: [eod] profile = 'fixed_ny' flattens at {_FIXED_NY_FLAT} New York, after the "
                          f"[account] rules = {s.account.rules!r} deadline {deadline} New York; use profile = 'topstepx'")
    keys = {f.name: getattr(s.ui, f.name) for f in dataclasses.fields(s.ui) if f.name.startswith("key_")}
    for name in ("key_halt", "key_flatten", "key_quit"):
        v = keys.get(name)
        if v is None:
            continue
        if not str(v).strip():
            raise ConfigError(f"{source}: [ui] {name} = {v!r}: must name a key (an empty key can never be pressed)")
        same = [k for k, w in keys.items() if k != name and str(w).strip().lower() == str(v).strip().lower()]
        if same:
            raise ConfigError(f"{source}: [ui] {name} = {v!r}: the same key as [ui] {same[0]}; the kill switch, "
                              "flatten and quit keys must be distinct")
    for f in dataclasses.fields(s.optimize):
        v = getattr(s.optimize, f.name)
        if not isinstance(v, list):
            continue
        if len(v) != 3 or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in v):
            raise ConfigError(f"{source}: [optimize] {f.name} = {v!r}: expected [low, high, step]")
        if v[0] > v[1]:
            raise ConfigError(f"{source}: [optimize] {f.name} = {v!r}: low {v[0]!r} must be ≤ high {v[1]!r}")
        if not v[2] > 0:
            raise ConfigError(f"{source}: [optimize] {f.name} = {v!r}: step {v[2]!r} must be > 0")
    for key, schemes in _URL_SCHEMES.items():
        sec, name = key.split(".")
        url = getattr(getattr(s, sec), name, None)
        if url is None or (sec == "alerts" and url == ""):
            continue
        u = urlparse(str(url))
        if u.scheme not in schemes or not u.hostname:
            raise ConfigError(f"{source}: [{sec}] {name} = {url!r}: expected a {' / '.join(schemes)} URL with a host")
    if not s.training.learning_rate > 0:
        raise ConfigError(f"{source}: [training] learning_rate = {s.training.learning_rate!r}: must be > 0")
    if s.training.epochs > MAX_EPOCHS:
        raise ConfigError(f"{source}: [training] epochs = {s.training.epochs!r}: must be ≤ {MAX_EPOCHS}")


def _check_risk_order(s: Settings, source: str) -> None:
    """Cross-field rules of the money limits (issue 15 item 7): every dollar limit is > 0 and
    smaller than ``[account] starting_capital`` (a limit the account cannot lose never fires),
    the minimum balance lies below the starting capital (else nothing ever trades), and the
    limits come in a sensible order: one trade's risk ≤ the daily loss limit ≤ the kill switch."""
    r, cap = s.risk, s.account.starting_capital
    for key in ("max_risk_per_trade", "daily_loss_limit", "daily_drawdown_limit", "kill_switch_loss",
                "account_drawdown_limit"):
        v = getattr(r, key)
        if v <= 0:
            raise ConfigError(f"{source}: [risk] {key} = {v!r}: must be > 0 (a limit of $0 refuses every trade)")
        if v >= cap:
            raise ConfigError(f"{source}: [risk] {key} = {v!r}: must be smaller than [account] "
                              f"starting_capital = {cap!r} (a limit the account cannot lose never fires)")
    if r.min_account_balance >= cap:
        raise ConfigError(f"{source}: [risk] min_account_balance = {r.min_account_balance!r}: must be below "
                          f"[account] starting_capital = {cap!r} (else no trade is ever allowed)")
    if r.max_risk_per_trade > r.daily_loss_limit:
        raise ConfigError(f"{source}: [risk] max_risk_per_trade = {r.max_risk_per_trade!r}: must be ≤ "
                          f"[risk] daily_loss_limit = {r.daily_loss_limit!r} (one trade must fit the day)")
    if r.daily_loss_limit > r.kill_switch_loss:
        raise ConfigError(f"{source}: [risk] daily_loss_limit = {r.daily_loss_limit!r}: must be ≤ "
                          f"[risk] kill_switch_loss = {r.kill_switch_loss!r} (the day's limit fires first)")


def _check_lockouts(s: Settings, source: str) -> None:
    """[lockouts] blocked_windows rows are ``["HH:MM", "HH:MM"]`` with from < to (New York), its
    events_file is readable (:func:`engine.risk.lockouts.load_events`); [remote] allowed_chats
    holds integer chat ids (issue 26)."""
    for i, row in enumerate(s.lockouts.blocked_windows, 1):
        try:
            a, b = (_hhmm(x) for x in row)
        except (ValueError, TypeError):
            raise ConfigError(f"{source}: [lockouts] blocked_windows row {i} {row!r}: expected "
                              '["HH:MM", "HH:MM"] New York times') from None
        if not a < b:
            raise ConfigError(f"{source}: [lockouts] blocked_windows row {i} {row!r}: from must be before to")
    if s.lockouts.events_file:  # read now: a bad calendar is a settings error, named with its line
        from engine.risk.lockouts import EventsFileError, load_events

        try:
            load_events(s.lockouts.events_file)
        except EventsFileError as exc:
            raise ConfigError(f"{source}: [lockouts] events_file: {exc}") from None
    for c in s.remote.allowed_chats:
        if isinstance(c, bool) or not isinstance(c, int):
            raise ConfigError(f"{source}: [remote] allowed_chats = {s.remote.allowed_chats!r}: chat ids are integers")


def _hhmm(x: Any) -> int:
    """``"HH:MM"`` → minutes after midnight; ValueError otherwise."""
    h, m = str(x).split(":")
    v = int(h) * 60 + int(m)
    if not (0 <= int(h) < 24 and 0 <= int(m) < 60):
        raise ValueError(x)
    return v


def read_toml(path: Path) -> dict[str, Any]:
    """Parse one TOML file; raises :class:`ConfigError` naming the file and the parse error."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if raw.startswith(b"\xef\xbb\xbf"):      # a UTF-8 byte-order mark (Windows editors): tolerated
        raw = raw[3:]
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def user_config_path() -> Path:
    """``<platformdirs user_config_dir>/config.toml``."""
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP_NAME)) / "config.toml"


def load_settings(path: str | Path | None = None, *, use_user_file: bool = True,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Defaults → user file (if present and ``use_user_file``) → ``path`` → environment secrets.

    Raises :class:`ConfigError` for a missing ``path``, invalid TOML, an unknown section or key,
    a wrong type or an impossible value.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    settings = Settings()
    sources: list[str] = []
    files: list[Path] = []
    if use_user_file and user_config_path().is_file():
        files.append(user_config_path())
    if path is not None:
        files.append(Path(path))
    for f in files:
        settings = _apply(settings, read_toml(f), str(f))
        sources.append(str(f))
    secrets = Secrets(**{k: environ.get(v, "") for k, v in SECRET_ENV.items()})
    return dataclasses.replace(settings, secrets=secrets, sources=tuple(sources))


def resolve_dir(configured: str, kind: str) -> Path:
    """A configured directory, or the platformdirs default for ``kind`` (data, models, state,
    reports, log). Created if missing."""
    import platformdirs

    if configured:
        p = Path(configured).expanduser()
    elif kind == "data":
        p = Path(platformdirs.user_data_dir(APP_NAME))
    elif kind in ("models", "reports"):
        p = Path(platformdirs.user_data_dir(APP_NAME)) / kind
    elif kind == "state":
        p = Path(platformdirs.user_state_dir(APP_NAME))
    elif kind == "log":
        p = Path(platformdirs.user_log_dir(APP_NAME))
    else:
        raise ValueError(f"unknown directory kind {kind!r}")
    p.mkdir(parents=True, exist_ok=True)
    return p


def default_toml() -> str:
    """The defaults rendered as TOML with each key's comment (the source of ``config.toml``)."""
    lines = [
        "# mes-console settings. Every key is optional: a missing key keeps its default.",
        "# Secrets never live here: PROJECTX_USERNAME, PROJECTX_API_KEY, DATABENTO_API_KEY.",
        "# Load order: built-in defaults, then the user file under the platformdirs config dir,",
        "# then --config PATH. Check a file with `mes-console config check --config PATH`.",
    ]
    for sec in dataclasses.fields(Settings):
        if sec.name in ("secrets", "sources", "explicit"):
            continue
        obj = getattr(Settings(), sec.name)
        lines.append("")
        lines.append(f"[{sec.name}]")
        for f in dataclasses.fields(obj):
            # the keys the [account] profile derives are shown commented out: a file that sets
            # them overrides the profile (engine/risk/profiles.py)
            pre = "# " if f"{sec.name}.{f.name}" in PROFILE_DERIVED else ""
            lines.append(f"{pre}{f.name} = {_toml_value(getattr(obj, f.name))}  # {f.metadata.get('doc', '')}".rstrip())
    return "\n".join(lines) + "\n"


PROFILE_DERIVED = frozenset({"account.starting_capital", "risk.daily_loss_limit", "risk.daily_drawdown_limit",
                             "risk.max_risk_per_trade", "risk.kill_switch_loss", "risk.min_account_balance",
                             "risk.account_drawdown_limit"})
"""Keys the ``[account]`` profile sets unless a file does (``engine.risk.profiles.apply_profile``):
commented out in the shipped ``config.toml``."""


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)
