"""The boundary between the engine session and any console: an immutable snapshot and a command
protocol.

The engine never calls into the UI. A console polls :meth:`RuntimeCommands.snapshot` a few times
a second (``settings.ui.refresh_hz``) and gets a :class:`SessionSnapshot`: a tree of frozen
dataclasses holding only ints, floats, strings, bools and tuples, so a snapshot can be handed to
another thread, compared by value (a pane redraws only when its part changed) and never mutated.
Discrete happenings (fills, state changes, alerts) are in :attr:`SessionSnapshot.events`, each
with an increasing ``seq``, so the console can tell which ones it has not shown yet.

Units: times are ``int`` UTC nanoseconds since the epoch (engine clock); ages are milliseconds of
the engine clock; prices are index points; distances are ticks (0.25 point for MES); money is
dollars. ``None`` means "not known / not applicable" and is shown as such, never as 0.

The console calls the engine only through :class:`RuntimeCommands`. Every command is thread-safe
and returns quickly; long work (:meth:`RuntimeCommands.run_backtest`,
:meth:`RuntimeCommands.run_training`) blocks its caller, so the console runs it in a worker
thread, and reports progress through the ``on_progress`` callback (called on that same thread).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date
from typing import Callable, Literal, Protocol, runtime_checkable

from engine.risk.manager import RESET_WORD

def money(x: float, sign: bool = False) -> str:
    """Dollars as the console, the session log and the summary print them, ONE way everywhere:
    the sign before the dollar sign, an ASCII hyphen for a loss, thousands separated, cents
    (``-$12.09``, ``$1,000.00``; ``sign=True``: ``+$3.25`` for a gain)."""
    v = float(x)
    if v != v:
        return "$n/a"
    if round(v, 2) == 0:
        v = 0.0   # no "-$0.00"
    lead = "-" if v < 0 else ("+" if sign else "")
    return f"{lead}${abs(v):,.2f}"


TradingState = Literal["ACTIVE", "REDUCING", "HALTED"]
"""ACTIVE: entries allowed; REDUCING: only exposure-reducing orders; HALTED: no submits, cancels
pass, protection kept until flat (architecture §5)."""

QuitPolicy = Literal["flatten", "keep_protected"]
"""What quitting does with an open position: flatten it, or leave it with its OCO bracket
working at the broker."""

DisconnectPolicy = Literal["protect", "flatten"]
"""``settings.ui.on_disconnect``: what happens when the console dies (crash, lost terminal)."""

TRADING_STATES: tuple[str, ...] = ("ACTIVE", "REDUCING", "HALTED")
RESET_PHRASE = RESET_WORD
"""The word the operator types to reset a halt (type-to-confirm): the risk manager's."""


@dataclass(frozen=True)
class HeaderView:
    """Session identity and clock. ``mode``: ``replay``/``paper``/``live``/``demo``;
    ``clock_ns``: engine clock (UTC ns); ``data_age_ms``: engine clock minus the time of the
    last market data received (None before the first); ``speed``: replay speed label
    (``"1x"``, ``"60x"``, ``"max"``, ``""`` live); ``ended``: why the session has ended
    (``"end of data"``, ``"operator quit (flatten)"``...), ``""`` while it runs."""

    mode: str
    account: str
    trading_state: str
    paused: bool
    clock_ns: int
    data_age_ms: float | None
    symbol: str = "MES"
    speed: str = ""
    ended: str = ""


@dataclass(frozen=True)
class QuoteView:
    """Top of book. ``spread_ticks`` = (ask - bid) / tick; ``recent``: the last closes (points,
    oldest first) for a sparkline; ``quote_age_ms``: engine clock minus the quote's time;
    ``stale``: the feed is older than ``settings.projectx.stale_feed_s``."""

    bid: float | None
    ask: float | None
    last: float | None
    spread_ticks: float | None
    recent: tuple[float, ...]
    quote_age_ms: float | None
    stale: bool = False
    bid_levels: tuple = ()
    """Market depth where the feed gives it: the best (price, size) bids, best first."""
    ask_levels: tuple = ()
    """The best (price, size) asks, best first."""


@dataclass(frozen=True)
class ModelView:
    """The last prediction. ``label``: what produces signals (a checkpoint name, or
    ``"rule-based baseline"`` when no model is loaded; ``is_baseline`` says which); ``classes``
    and ``probs`` align (probabilities sum to 1); ``confidence`` = max(probs), traded only when
    ≥ ``threshold``; ``signal``: ``LONG``/``SHORT``/``NONE``; ``prediction_age_ms`` on the engine
    clock; ``inference_us``: measured wall time of the last inference, microseconds."""

    label: str
    is_baseline: bool
    classes: tuple[str, ...] = ("DOWN", "FLAT", "UP")
    probs: tuple[float, ...] = ()
    confidence: float | None = None
    threshold: float = 0.60
    signal: str = "NONE"
    prediction_age_ms: float | None = None
    inference_us: float | None = None


@dataclass(frozen=True)
class OrderLegView:
    """One leg of the OCO bracket. ``kind``: ``stop`` or ``target``; ``price`` points;
    ``distance_ticks``: from the last price to this leg (positive = away from the market);
    ``state``: the order's state (``WORKING``, ``PENDING``, ``FILLED``, ``CANCELED``,
    ``REJECTED``, ...)."""

    kind: str
    price: float
    distance_ticks: float | None
    state: str
    order_id: str = ""


@dataclass(frozen=True)
class PositionView:
    """The position and its protection. ``side``: ``FLAT``/``LONG``/``SHORT``; ``size``
    contracts (≥ 0); ``avg_price`` points; ``unrealized_usd``/``realized_usd`` dollars (realized
    since the trading day began, after costs; unrealized = the open position marked at the last
    price less the costs it has paid, its entry commission, so that realized + unrealized =
    equity now − equity at the day's start); ``all_protected``: every open contract is covered
    by a working stop or by a market exit in flight (True when flat); ``exiting``: the position
    is being closed at market (flatten, halt, EOD or risk exit in flight)."""

    side: str
    size: int
    avg_price: float | None
    unrealized_usd: float
    realized_usd: float
    stop: OrderLegView | None
    target: OrderLegView | None
    all_protected: bool
    exiting: bool = False


@dataclass(frozen=True)
class RiskView:
    """Risk meters (REQUIREMENTS §4). Dollars; ``kill_switch_distance_usd``: how much more
    cumulative loss triggers the permanent halt; ``breakers``: names of active circuit
    breakers; ``pause_until_ns``: end of a consecutive-loss or operator pause on the engine
    clock (None when not paused); ``reason``: why the state is not ACTIVE ("" when it is)."""

    state: str
    reason: str
    daily_loss_used_usd: float
    daily_loss_limit_usd: float
    drawdown_usd: float
    drawdown_limit_usd: float
    consecutive_losses: int
    kill_switch_distance_usd: float
    kill_switch_loss_usd: float
    breakers: tuple[str, ...] = ()
    pause_until_ns: int | None = None
    venue_rules: str = ""
    """The venue's account-rules profile (R-RISK-7; "" = none): then the liquidation level
    (MLL, dollars), the equity's distance to it and the venue's position limit (contracts)."""
    venue_liquidation_usd: float | None = None
    venue_distance_usd: float | None = None
    venue_max_contracts: int | None = None
    venue_balance_usd: float | None = None
    """The account's balance, its profit since the attempt's start, the profit target (0 =
    none), the best day's share of the profit (None while no profit), the consistency share a
    pass allows and the verdict so far (open / passed / failed): issue 23."""
    venue_profit_usd: float | None = None
    venue_target_usd: float = 0.0
    venue_best_day_share: float | None = None
    venue_consistency_share: float = 0.0
    venue_status: str = ""
    lockouts: tuple[str, ...] = ()
    """The discipline lockouts (issue 26), one line each: ``LOCKED …`` while it refuses entries."""


@dataclass(frozen=True)
class EodView:
    """End-of-day phases of the current CME trading day. ``phase``: ``normal``, ``reduce``,
    ``no_new``, ``exit``, ``flat`` or ``closed``; ``times``: (phase name, UTC ns) for
    reduce/no_new/exit/flat (16:00/16:15/16:25/16:30 New York on a normal day, earlier on an
    early close); ``trading_day``: ISO date."""

    phase: str
    times: tuple[tuple[str, int], ...]
    trading_day: str


@dataclass(frozen=True)
class BrokerView:
    """Does the broker agree with us? ``last_reconcile_ns``: engine clock of the last
    reconciliation (None = never); ``result``: ``agree``, ``mismatch`` or ``never``;
    ``detail``: a short explanation of a mismatch; ``journal``: today's round trips and net
    P&L read back from the trade journal (paper/live; "" without a journal), so trades of an
    earlier session of the same trading day count too."""

    last_reconcile_ns: int | None
    result: str
    detail: str = ""
    journal: str = ""


@dataclass(frozen=True)
class LogLine:
    """One log record: engine-clock time, level name (``DEBUG``..``CRITICAL``), logger, text
    (same tuple as :class:`engine.logs.RingHandler` keeps)."""

    ts_ns: int
    level: str
    source: str
    message: str


@dataclass(frozen=True)
class SessionEvent:
    """A discrete happening the console should announce once. ``kind``: ``fill``, ``state``
    (trading-state change), ``alert``, ``order`` or ``info``; ``seq`` increases by one per
    event over the session."""

    seq: int
    ts_ns: int
    kind: str
    message: str
    severity: str = "information"  # information | warning | error


@dataclass(frozen=True)
class SessionSnapshot:
    """Everything a console shows, at one instant of the engine clock. Built by the runtime on
    its own thread; immutable; ``seq`` increases with every new snapshot. ``equity``: account
    equity in dollars over the whole session (at most 300 points spread evenly over the bars
    processed, the last one = now)."""

    seq: int
    header: HeaderView
    quote: QuoteView
    model: ModelView
    position: PositionView
    risk: RiskView
    eod: EodView
    broker: BrokerView
    equity: tuple[float, ...] = ()
    logs: tuple[LogLine, ...] = ()
    events: tuple[SessionEvent, ...] = ()


# ----------------------------------------------------------------------------- long work
@dataclass(frozen=True)
class BacktestParams:
    """A backtest request from the console. ``data``: a bars file path, or ``"demo"`` for the
    embedded generated market; ``start``/``end``: CME trading days (inclusive, None = the
    file's span); ``model``: a checkpoint path or ``"baseline"``; ``fill_model``: one of
    ``conservative``/``optimistic``/``realistic`` (R-BT-1); ``seed`` for generated data.
    Parameters (None = the session's settings): ``max_stop_ticks`` (``[stops]``, ticks),
    ``reward_risk`` (``[stops]``, target/stop), ``min_confidence`` (``[signal]``, 0-1);
    ``research``: record account-level halts and resume at the next RTH open
    (``[backtest] research``, :func:`engine.backtest.runner.run_backtest`)."""

    data: str = "demo"
    start: date | None = None
    end: date | None = None
    model: str = "baseline"
    fill_model: str = "conservative"
    seed: int = 0
    max_stop_ticks: int | None = None
    reward_risk: float | None = None
    min_confidence: float | None = None
    research: bool = False
    walk_forward: tuple[int, int, int] | None = None
    """Train/validation/test months of a walk-forward backtest (:meth:`RuntimeCommands.run_walk_forward`:
    one model per fold, ``[training] arch`` or ``model`` when it names an architecture); None = a
    plain backtest."""
    epochs: int | None = None
    """With ``walk_forward``: maximum epochs per fold model (None = ``[training] epochs``)."""


@dataclass(frozen=True)
class Progress:
    """Progress of long work: ``done`` of ``total`` units (days, epochs), a short message, and
    optional named figures (e.g. ``{"train_loss": 0.9, "val_acc": 0.51}`` for training,
    ``{"equity": 1012.5}`` for a backtest)."""

    done: int
    total: int
    message: str = ""
    figures: tuple[tuple[str, float], ...] = ()
    fold: int = 0
    folds: int = 0


@dataclass(frozen=True)
class TradeRow:
    """One round trip: entry/exit UTC ns, side, contracts, prices (points), P&L in dollars after
    costs, exit reason (``stop``, ``target``, ``eod``, ``signal``, ``flatten``)."""

    entry_ns: int
    exit_ns: int
    side: str
    size: int
    entry_price: float
    exit_price: float
    pnl_usd: float
    reason: str


@dataclass(frozen=True)
class BacktestResult:
    """``metrics``: (name, formatted value) rows in display order; ``equity``: account equity in
    dollars after each trade (first = starting capital); ``trades``; ``report_path``: where the
    report was saved ("" = not saved); ``limits``: what stopped or limited trading, one fact a
    line (:func:`engine.backtest.report.summary_text`: halts with time and reason, blocks,
    pauses, refusal counts)."""

    metrics: tuple[tuple[str, str], ...]
    equity: tuple[float, ...]
    trades: tuple[TradeRow, ...]
    report_path: str = ""
    limits: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainingParams:
    """A training request. ``arch``: ``mlp``/``lstm``/``hybrid``/``transformer``; ``data``: bars
    file or ``"demo"``; walk-forward windows in months (``walk_forward=False`` = one
    train/validation/test split); ``epochs``: maximum per fold."""

    arch: str = "mlp"
    data: str = "demo"
    walk_forward: bool = True
    train_months: int = 6
    val_months: int = 1
    test_months: int = 1
    epochs: int = 20


@dataclass(frozen=True)
class TrainingResult:
    """``metrics``: (name, formatted value) rows; ``checkpoint_path``: the saved model
    ("" = nothing saved); ``history``: per epoch (fold, epoch, train_loss, val_loss,
    val_accuracy)."""

    metrics: tuple[tuple[str, str], ...]
    checkpoint_path: str
    history: tuple[tuple[int, int, float, float, float], ...] = field(default=())


@dataclass(frozen=True)
class FoldRow:
    """One walk-forward fold: its number (from 1), the out-of-sample test window (bar open
    times, UTC ns, ``[start_ns, end_ns)``), trades, net P&L in dollars after costs, Sharpe
    (annualised, :func:`engine.backtest.metrics.compute_metrics`), max drawdown in dollars and
    the model's out-of-sample accuracy (0-1)."""

    fold: int
    start_ns: int
    end_ns: int
    trades: int
    net_pnl: float
    sharpe: float
    max_drawdown: float
    accuracy: float


@dataclass(frozen=True)
class GoLiveRow:
    """One criterion of the R-BT-4 go-live check (:func:`engine.backtest.walkforward.go_live_check`):
    name, measured value and threshold as text, passed or failed."""

    criterion: str
    value: str
    threshold: str
    passed: bool


@dataclass(frozen=True)
class WalkForwardRun:
    """A walk-forward backtest (R-BT-4): ``backtest`` holds the stitched out-of-sample metrics,
    the equity after each trade (dollars; the folds chained), every fold's trades and the limits;
    ``folds`` one row per fold; ``go_live`` the criteria and ``go_live_pass`` their conjunction;
    ``note`` the window plan (months, or days when the data is short)."""

    backtest: BacktestResult
    folds: tuple[FoldRow, ...]
    go_live: tuple[GoLiveRow, ...]
    go_live_pass: bool
    note: str = ""


ProgressCallback = Callable[[Progress], None]


@runtime_checkable
class RuntimeCommands(Protocol):
    """What a console may ask of a running session. Thread-safe; every method except the two
    long ones returns at once (the engine acts on its own thread).

    Raises (all methods): :class:`RuntimeCommandError` when the command is refused (the message
    says why, e.g. a wrong reset phrase)."""

    def snapshot(self) -> SessionSnapshot:
        """The latest immutable snapshot (cheap; safe to call 30 times a second)."""
        ...

    def pause(self) -> None:
        """Stop opening positions (protection and exits continue) until :meth:`resume`."""
        ...

    def resume(self) -> None:
        """Undo an operator :meth:`pause` (does not lift a halt or a risk pause)."""
        ...

    def flatten(self) -> None:
        """Cancel working entries and close the position at market; brackets go with it."""
        ...

    def halt(self, reason: str) -> None:
        """Kill switch: trading state HALTED at once, no new orders, protection kept until flat.
        Never asks for confirmation; idempotent."""
        ...

    def reset_halt(self, confirmation: str) -> None:
        """Lift a halt. ``confirmation`` must equal :data:`RESET_PHRASE`; the reset is audited
        (logged with the engine time). Raises :class:`RuntimeCommandError` otherwise."""
        ...

    def quit(self, policy: QuitPolicy) -> None:
        """Orderly shutdown (R-LIVE-3): cancel working entries, then ``flatten`` or keep the
        position with its bracket working (``keep_protected``), save state, write the report."""
        ...

    def ui_lost(self, policy: DisconnectPolicy, reason: str) -> None:
        """The console died (crash, dropped terminal) without a quit: apply
        ``settings.ui.on_disconnect``: ``protect`` keeps the position and its bracket working
        at the broker; ``flatten`` flattens and halts."""
        ...

    def run_backtest(self, params: BacktestParams, on_progress: ProgressCallback) -> BacktestResult:
        """Run a backtest (blocking; call from a worker thread). Raises on bad params/data."""
        ...

    def run_training(self, params: TrainingParams, on_progress: ProgressCallback) -> TrainingResult:
        """Train a model (blocking; call from a worker thread). Raises on bad params/data."""
        ...

    def run_walk_forward(self, params: BacktestParams, on_progress: ProgressCallback,
                         stop: threading.Event | None = None) -> WalkForwardRun:
        """Walk-forward backtest (blocking; call from a worker thread): per fold train the
        fold's model and backtest its test window. Setting ``stop`` ends it early (raises
        ``engine.runtime.work.WorkStopped``). Raises on bad params/data."""
        ...


class RuntimeCommandError(RuntimeError):
    """A command the runtime refused; the message says why."""
