"""Parameter search on Optuna (R-BT-6): the study behind ``mes-console optimize``.

Windows: the data (optionally cut to ``--start``/``--end``, UTC dates) is split by UTC date into
the VALIDATION window (everything before the last ``holdout_months`` months) on which every
trial is scored, and the HELD-OUT window (the last ``holdout_months`` months) that the search
never sees; only the chosen parameters are run on it, once, for the report.

Space (``[optimize]`` or ``--space NAME=LOW:HIGH[:STEP]``): ``stop_ticks`` (the kernel's stop
becomes ``[stops] method = "fixed"`` with ``fixed_ticks`` = this), ``reward_risk`` (target =
floor(reward_risk × stop) ticks), ``risk_fraction`` (the risk fraction of every balance tier),
``min_confidence`` (a model's confidence threshold; not searched for the rule strategy, whose
confidence is fixed) and ``baseline_lookback`` (the rule strategy's own channel length; not
searched with a model). With a loaded strategy (``optimize --strategy FILE``) the rule
strategy's two are left out and each declared parameter is a dimension ``strategy.<name>``
(:func:`strategy_space`, :class:`StrategyTrialRunner`).

A trial is the real kernel (:func:`engine.backtest.runner.run_backtest`) in the backtest's
RESEARCH mode over the validation window: account-level halts are recorded and lifted at the
next RTH open (``BacktestResult.halts``), so every trial covers the whole window; the report
says how many halts the chosen parameters hit. Features and model predictions (or the rule
strategy's signals, once per lookback) and the market arrays (ATR, slippage, EOD phases) are
computed once per study and process, never once per trial.

A trial with fewer than ``min_trades`` validation trades scores -1e9: when every setting
loses after costs, "never trade" (risk too small for one contract) would otherwise win.

Objective (maximised): ``sharpe`` (annualised Sharpe of the daily $ P&L), ``net_pnl``, ``calmar`` or ``expectancy`` ($ per trade);
with an ``[account]`` profile also ``pass_probability`` (the Monte Carlo P(pass) of the trial's
trading days, :data:`TRIAL_MC_PATHS` paths, :mod:`engine.research.montecarlo`) and, with the
evaluation economics, ``expected_value`` ($ per attempt). Every trial under a profile stores its
account verdict (``verdict`` user attribute: status, date, rule, P(pass)); the report carries the
best trial's and the held-out run's. Each trial also stores its daily
P&L (``daily_pnl`` user attribute) for the overfitting measures of :mod:`engine.research.overfit`:
the deflated Sharpe ratio of the chosen trial given every trial of the study, and the PBO by
CSCV over the matrix of the trials' daily P&L.

Storage: any Optuna RDB URL (``sqlite:///path``; ``postgresql://user@host/db`` for several
machines on one study); default a SQLite file ``optuna.db`` under the platformdirs data dir.
Studies are resumable: the same ``--study`` name continues, trials left RUNNING by a killed
worker are marked FAIL (Optuna heartbeats) and not counted, and the study stops once it holds
``trials`` COMPLETE trials. Workers: ``workers`` forked processes on this machine, each with its
own storage connection; more machines may run the same command on the same storage URL.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time  # sleep only: durations come from engine.clock.perf_ns
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.clock import perf_ns

SPACE_NAMES = ("stop_ticks", "reward_risk", "risk_fraction", "min_confidence", "baseline_lookback")
INT_PARAMS = ("stop_ticks", "baseline_lookback")
ANNUAL_DAYS = 252
HEARTBEAT_S = 5
GRACE_S = 12


class OptimizeError(ValueError):
    """A study problem (storage, a study whose recorded set-up differs, failed workers)."""


class OptimizeUsageError(OptimizeError):
    """Bad input: space, sampler, objective, windows, strategy (the CLI's exit code 3)."""


class OptimizeDataError(OptimizeError):
    """The bars file cannot be read (the CLI's exit code 2)."""


# ----------------------------------------------------------------------------------- space
@dataclass(frozen=True)
class Dim:
    """One searched parameter: ``[low, high]`` with ``step`` (ints for stop ticks / lookback)."""

    name: str
    low: float
    high: float
    step: float
    integer: bool = False
    """An integer dimension not in :data:`INT_PARAMS` (a strategy's declared int parameter)."""

    def grid(self) -> list:
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        vals = [self.low + i * self.step for i in range(n)]
        return [int(round(v)) for v in vals] if self.is_int else [round(v, 10) for v in vals]

    @property
    def is_int(self) -> bool:
        return self.integer or self.name in INT_PARAMS

    def to_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "step": self.step}


def build_space(opt_cfg: Any, overrides: list[str] | None = None, *, model: bool) -> dict[str, Dim]:
    """The searched dimensions from ``[optimize]`` and ``--space NAME=LOW:HIGH[:STEP]`` flags.
    With a model, ``baseline_lookback`` is left out; without one, ``min_confidence`` (the rule
    strategy's confidence is fixed). Raises :class:`OptimizeError` naming a bad flag or range."""
    raw = {n: list(getattr(opt_cfg, n)) for n in SPACE_NAMES}
    for o in overrides or []:
        name, _, rng = o.partition("=")
        name = name.strip()
        if name not in SPACE_NAMES:
            raise OptimizeUsageError(f"--space {o!r}: unknown parameter {name!r}; allowed: {', '.join(SPACE_NAMES)}")
        try:
            parts = [float(x) for x in rng.split(":")]
        except ValueError:
            raise OptimizeUsageError(f"--space {o!r}: expected NAME=LOW:HIGH[:STEP] with numbers") from None
        if len(parts) not in (1, 2, 3):
            raise OptimizeUsageError(f"--space {o!r}: expected NAME=LOW:HIGH[:STEP]")
        if len(parts) == 1:
            parts = [parts[0], parts[0], 1.0]
        elif len(parts) == 2:
            parts.append(raw[name][2] if len(raw[name]) > 2 else 1.0)
        raw[name] = parts
    skip = "baseline_lookback" if model else "min_confidence"
    space = {}
    for n in SPACE_NAMES:
        if n == skip:
            continue
        v = raw[n]
        if len(v) != 3:
            raise OptimizeUsageError(f"[optimize] {n} = {v!r}: expected [low, high, step]")
        lo, hi, st = (float(x) for x in v)
        if not (hi >= lo and st > 0):
            raise OptimizeUsageError(f"[optimize] {n} = {v!r}: need high ≥ low and step > 0")
        if n in INT_PARAMS and not (lo == int(lo) and hi == int(hi) and st == int(st)):
            raise OptimizeUsageError(f"[optimize] {n} = {v!r}: whole numbers expected")
        space[n] = Dim(n, lo, hi, st)
    return space


def apply_params(settings: Any, params: dict) -> Any:
    """Settings with the searched parameters applied (see the module docstring); also turns the
    backtest's research mode on (``[backtest] research = true``)."""
    s = settings
    rep = dataclasses.replace
    if "stop_ticks" in params or "reward_risk" in params:
        st = s.stops
        kw: dict[str, Any] = {}
        if "stop_ticks" in params:
            kw.update(method="fixed", fixed_ticks=int(params["stop_ticks"]))
        if "reward_risk" in params:
            kw["reward_risk"] = float(params["reward_risk"])
        s = rep(s, stops=rep(st, **kw))
    if "risk_fraction" in params:
        f = float(params["risk_fraction"])
        s = rep(s, risk=rep(s.risk, balance_tiers=[[float(b), int(c), f] for b, c, _ in s.risk.balance_tiers]))
    if "min_confidence" in params:
        s = rep(s, signal=rep(s.signal, min_confidence=float(params["min_confidence"])))
    if "baseline_lookback" in params:
        s = rep(s, backtest=rep(s.backtest, baseline_lookback=int(params["baseline_lookback"])))
    return rep(s, backtest=rep(s.backtest, research=True))


def settings_toml(settings: Any, header: list[str] | None = None) -> str:
    """Every section and key of ``settings`` (not the secrets) as TOML, with each key's comment:
    a complete config file that ``--config`` reads back to the same settings."""
    from engine.config import Settings, _toml_value

    lines = [f"# {h}" for h in (header or [])]
    for sec in dataclasses.fields(Settings):
        if sec.name in ("secrets", "sources", "explicit"):
            continue
        obj = getattr(settings, sec.name)
        lines.append("")
        lines.append(f"[{sec.name}]")
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            v = _listify(v)
            lines.append(f"{f.name} = {_toml_value(v)}  # {f.metadata.get('doc', '')}".rstrip())
    return "\n".join(lines) + "\n"


def _listify(v):
    if isinstance(v, (list, tuple)):
        return [_listify(x) for x in v]
    return v


# ----------------------------------------------------------------------------------- windows
def split_windows(bars: Any, holdout_months: int) -> dict:
    """UTC dates (ISO, inclusive, as ``backtest --start/--end`` take them) of the validation and
    held-out windows: held-out = the last ``holdout_months`` calendar months up to the last bar's
    date. Raises :class:`OptimizeError` when either window would be empty or under 5 days."""
    import pandas as pd

    first = pd.Timestamp(int(bars.ts[0]), tz="UTC").normalize()
    last = pd.Timestamp(int(bars.ts[-1]), tz="UTC").normalize()
    h_start = (last - pd.DateOffset(months=int(holdout_months)) + pd.Timedelta(days=1)).normalize()
    v_end = h_start - pd.Timedelta(days=1)
    if (v_end - first).days < 5 or (last - h_start).days < 5:
        raise OptimizeUsageError(f"data {first.date()} … {last.date()} is too short for a validation window and "
                            f"{holdout_months} held-out month(s)")
    return {"validation": (str(first.date()), str(v_end.date())), "holdout": (str(h_start.date()), str(last.date()))}


# ----------------------------------------------------------------------------------- trials
class TrialRunner:
    """Runs trials on one window with everything parameter-independent computed once.

    ``bars``: the validation-window bars. ``settings``: base settings. ``model``: checkpoint path
    or None (the rule strategy ``baseline``). Signals: the model's predictions once; the rule
    strategy's once per lookback (cached). Market arrays once (they depend on the ATR period,
    slippage settings and fill model, none of which is searched).
    """

    def __init__(self, bars: Any, settings: Any, model: str | Path | None = None) -> None:
        from engine.market.inputs import prepare_market

        self.bars = bars
        self.settings = settings
        self.fill = settings.backtest.fill_model
        self.model = model
        self.market = prepare_market(bars, settings, self.fill)
        self._signals: dict = {}
        if model is not None:
            from engine.strategy import ModelStrategy

            self._signals["model"] = ModelStrategy(model).signals(bars)

    def signals(self, s: Any):
        if self.model is not None:
            return self._signals["model"]
        key = int(s.backtest.baseline_lookback)
        if key not in self._signals:
            from engine.strategy import BreakoutBaseline

            self._signals[key] = BreakoutBaseline(lookback=key).signals(self.bars)
        return self._signals[key]

    def run(self, params: dict) -> dict:
        """One trial: the kernel in research mode with ``params`` applied; returns the metrics
        (``compute_metrics``), ``daily_pnl`` (list of $ per trading day), ``halts`` (count by
        kind) and ``elapsed_s``."""
        from engine.backtest.metrics import compute_metrics, daily_equity
        from engine.backtest.runner import run_backtest

        t0 = perf_ns() / 1e9
        s = apply_params(self.settings, params)
        res = run_backtest(self.bars, self.signals(s), s, fill_model=self.fill, market=self.market,
                           research=True, strategy_name="optimize")
        m = compute_metrics(res.trades, res.equity, res.day, res.starting_balance, res.ts)
        _, deq = daily_equity(res.equity, res.day)
        pnl = np.diff(np.concatenate([[res.starting_balance], deq]))
        sd = float(pnl.std(ddof=1)) if len(pnl) > 1 else 0.0
        m["sharpe_usd"] = float(pnl.mean() / sd * math.sqrt(ANNUAL_DAYS)) if sd > 0 else 0.0
        verdict = account_figures(res, s, m)
        return {"metrics": m, "daily_pnl": [round(float(x), 2) for x in pnl],
                "halts": halt_counts(res.halts), "elapsed_s": perf_ns() / 1e9 - t0, "verdict": verdict}


TRIAL_MC_PATHS = 2_000
"""Monte Carlo paths per trial for the ``pass_probability`` / ``expected_value`` objectives
(seed 0 in every trial, so trials compare on the same draws of their own days)."""


def account_figures(res: Any, settings: Any, m: dict) -> dict | None:
    """A trial's account verdict (issue 23): ``status``, ``date``, ``rule`` of
    :attr:`BacktestResult.account`, and into ``m`` its ``pass_probability`` (and
    ``expected_value`` with ``[account]`` economics) from :data:`TRIAL_MC_PATHS` bootstrap paths.
    None (and nothing added) for ``rules = "none"``."""
    if res.account is None:
        return None
    from engine.research.montecarlo import result_pass_probability

    mc = result_pass_probability(res, settings, n_paths=TRIAL_MC_PATHS, seed=0)
    if mc is not None:
        m["pass_probability"] = mc["p_pass"]
        if "expected_value" in mc:
            m["expected_value"] = mc["expected_value"]
    a = res.account
    return {"status": a["status"], "date": a.get("date"), "rule": a.get("rule"),
            "failures": len(a.get("failures") or []), "p_pass": m.get("pass_probability")}


def halt_counts(halts: list) -> dict:
    """``{kind: count}`` of ``BacktestResult.halts``."""
    out: dict = {}
    for h in halts:
        k = str(h.get("kind", "?"))
        out[k] = out.get(k, 0) + 1
    return out


OBJECTIVE_KEYS = {"sharpe": "sharpe_usd", "net_pnl": "net_pnl", "calmar": "calmar", "expectancy": "expectancy",
                  "pass_probability": "pass_probability", "expected_value": "expected_value"}
ACCOUNT_OBJECTIVES = ("pass_probability", "expected_value")
"""Objectives that need an ``[account]`` profile (``expected_value``: and its economics)."""


def objective_value(m: dict, objective: str) -> float:
    """The maximised number of a trial's metrics (see the module docstring); non-finite → -1e9.
    ``sharpe`` is the annualised Sharpe ratio of the daily $ P&L (``sharpe_usd``: mean / std ×
    √252 on the fixed starting capital), not the report's return-based Sharpe, which loses its
    meaning once research mode lets the equity fall to or below zero."""
    v = float(m.get(OBJECTIVE_KEYS[objective], float("nan")))
    return v if math.isfinite(v) else -1e9


# ----------------------------------------------------------------------------------- storage
def default_storage(settings: Any) -> str:
    """``sqlite:///<data dir>/optuna.db`` (platformdirs data dir unless ``[paths] data_dir``)."""
    from engine.config import resolve_dir

    return f"sqlite:///{resolve_dir(settings.paths.data_dir, 'data') / 'optuna.db'}"


def make_storage(url: str):
    """An Optuna RDB storage with heartbeats (stale RUNNING trials of killed workers become FAIL).
    Raises :class:`OptimizeError` naming the URL when it cannot be opened."""
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                          engine_kwargs={"pool_pre_ping": True})
    except Exception as exc:  # noqa: BLE001 - sqlalchemy/driver errors differ per backend
        raise OptimizeError(f"optuna storage {_redact(url)}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None


def fail_orphaned_trials(storage, study) -> int:
    """Mark FAIL the RUNNING trials of ``study`` that have no heartbeat at all and started more
    than ``GRACE_S`` seconds ago: a worker killed between creating its trial and recording the
    first heartbeat (both times on the database's clock). Optuna's ``fail_stale_trials`` skips trials without a heartbeat row
    (optuna ``storages/_rdb/storage.py`` ``_get_stale_trial_ids``), so such a trial would stay
    RUNNING for ever. A live worker records its first heartbeat right after creating a trial,
    far inside the grace period. Reads Optuna's RDB schema (tables ``trials`` and
    ``trial_heartbeats``); the state change goes through the storage API. Returns the count."""
    import datetime as _dt

    import optuna
    import sqlalchemy

    q = sqlalchemy.text(
        "SELECT t.trial_id FROM trials t LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
        "WHERE t.study_id = :sid AND t.state = 'RUNNING' AND h.trial_id IS NULL "
        "AND t.datetime_start < :cutoff")
    with storage.engine.connect() as conn:
        # the database's clock, as Optuna's own stale check uses (trial times are naive UTC)
        db_now = conn.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        if isinstance(db_now, str):  # SQLite answers CURRENT_TIMESTAMP as text
            db_now = _dt.datetime.fromisoformat(db_now)
        cutoff = db_now.replace(tzinfo=None) - _dt.timedelta(seconds=GRACE_S)
        ids = [int(r[0]) for r in conn.execute(q, {"sid": study._study_id, "cutoff": cutoff})]
    n = 0
    for tid in ids:
        try:
            if storage.set_trial_state_values(tid, optuna.trial.TrialState.FAIL):
                n += 1
        except RuntimeError:  # finished meanwhile (the storage refuses a change of a finished trial)
            pass
    return n


def _redact(url: str) -> str:
    import re

    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:****@", url)


def make_sampler(kind: str, space: dict[str, Dim], seed: int):
    import optuna

    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        return optuna.samplers.GridSampler({n: d.grid() for n, d in space.items()}, seed=seed)
    raise OptimizeUsageError(f"unknown sampler {kind!r}: tpe | random | grid")


def suggest(trial: Any, space: dict[str, Dim]) -> dict:
    out = {}
    for n, d in space.items():
        if d.is_int:
            out[n] = trial.suggest_int(n, int(d.low), int(d.high), step=int(d.step))
        else:
            out[n] = trial.suggest_float(n, d.low, d.high, step=d.step)
    return out


# ----------------------------------------------------------------------------------- study
@dataclass
class StudyPlan:
    """Everything a worker needs (picklable, inherited by forked workers)."""

    storage: str
    study: str
    sampler: str
    space: dict
    objective: str
    trials: int
    seed: int = 7
    min_trades: int = 0
    setup: dict = field(default_factory=dict)   # recorded on the study; a resume must match


def open_study(plan: StudyPlan, storage=None):
    """Create or load the study; refuses a resumed study whose recorded set-up (data, windows,
    space, objective, sampler, base settings digest) differs, naming the key."""
    import json

    import optuna

    storage = storage or make_storage(plan.storage)
    setup = json.loads(json.dumps(plan.setup))  # as stored (tuples become lists)
    st = optuna.create_study(study_name=plan.study, storage=storage, direction="maximize",
                             sampler=make_sampler(plan.sampler, plan.space, plan.seed), load_if_exists=True)
    rec = st.user_attrs.get("setup")
    if rec is None:
        st.set_user_attr("setup", setup)
    else:
        for k in sorted(set(rec) | set(setup)):
            if rec.get(k) != setup.get(k):
                raise OptimizeError(f"study {plan.study!r} was started with {k} = {rec.get(k)!r}, this run has "
                                    f"{setup.get(k)!r}: use another --study name")
    return st


def complete_trials(study) -> list:
    import optuna

    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def _worker(plan: StudyPlan, runner: TrialRunner, index: int, stop_flag=None, on_trial=None) -> None:
    import optuna
    from optuna.study import MaxTrialsCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(plan.storage)
    study = optuna.load_study(study_name=plan.study, storage=storage,
                              sampler=make_sampler(plan.sampler, plan.space, plan.seed + 1000 * index))

    def objective(trial):
        params = suggest(trial, plan.space)
        r = runner.run(params)
        m = r["metrics"]
        for k in ("net_pnl", "sharpe_usd", "sharpe", "calmar", "expectancy", "max_drawdown", "win_rate", "profit_factor",
                  "pass_probability", "expected_value"):
            v = float(m.get(k, float("nan")))
            trial.set_user_attr(k, v if math.isfinite(v) else None)
        trial.set_user_attr("trades", int(m["trades"]))
        trial.set_user_attr("verdict", r.get("verdict"))
        trial.set_user_attr("daily_pnl", r["daily_pnl"])
        trial.set_user_attr("halts", r["halts"])
        trial.set_user_attr("elapsed_s", round(r["elapsed_s"], 4))
        trial.set_user_attr("worker", f"{os.uname().nodename}:{os.getpid()}")
        if int(m["trades"]) < plan.min_trades:
            trial.set_user_attr("too_few_trades", True)
            return -1e9
        return objective_value(m, plan.objective)

    def stop_cb(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if stop_flag is not None and stop_flag.is_set():
            study.stop()
        if on_trial is not None:
            on_trial(trial)

    remaining = max(0, plan.trials - len(complete_trials(study)))
    if remaining == 0:
        return
    cbs: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = [MaxTrialsCallback(plan.trials, states=(optuna.trial.TrialState.COMPLETE,)), stop_cb]
    study.optimize(objective, n_trials=remaining, callbacks=cbs, gc_after_trial=False)


def run_workers(plan: StudyPlan, runner: TrialRunner, workers: int, *,
                on_progress: Callable[[dict], None] | None = None, stop_flag=None, poll_s: float = 0.5) -> dict:
    """Run the study with ``workers`` processes until it holds ``plan.trials`` COMPLETE trials
    (or ``stop_flag`` is set). One worker runs in this process; more are forked (each opens its
    own storage connection; the parent polls the storage for progress). ``on_progress`` gets
    ``{"complete", "target", "best_value", "best_params", "last": [values of new trials]}``.
    Returns ``{"elapsed_s", "new_trials", "trials_per_min", "workers"}``."""
    import multiprocessing as mp

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(plan.storage)
    study = open_study(plan, storage)
    optuna.storages.fail_stale_trials(study)
    fail_orphaned_trials(storage, study)
    before = len(complete_trials(study))
    t0 = perf_ns() / 1e9
    seen = {t.number for t in complete_trials(study)}

    def emit():
        if on_progress is None:
            return
        done = complete_trials(study)
        new = sorted((t for t in done if t.number not in seen), key=lambda t: t.number)
        seen.update(t.number for t in new)
        best = max(done, key=lambda t: t.value) if done else None
        on_progress({"complete": len(done), "target": plan.trials,
                     "best_value": None if best is None else best.value,
                     "best_params": None if best is None else best.params,
                     "last": [(t.number, t.value) for t in new]})

    if workers <= 1:
        _worker(plan, runner, 0, stop_flag, on_trial=lambda t: emit())
    else:
        ctx = mp.get_context("fork")
        flag = stop_flag
        procs = [ctx.Process(target=_child, args=(plan, runner, i, flag), daemon=True) for i in range(workers)]
        for p in procs:
            p.start()
        try:
            while any(p.is_alive() for p in procs):
                time.sleep(poll_s)
                emit()
        finally:
            for p in procs:
                if p.is_alive() and stop_flag is not None and stop_flag.is_set():
                    p.join(timeout=30)
            for p in procs:
                if p.is_alive():
                    p.terminate()
                p.join()
        bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
        if bad and not (stop_flag is not None and stop_flag.is_set()):
            emit()
            raise OptimizeError(f"{len(bad)} worker process(es) failed (exit codes {bad}); the study keeps "
                                "every finished trial: run the same command again to resume")
    emit()
    elapsed = perf_ns() / 1e9 - t0
    new = len(complete_trials(study)) - before
    return {"elapsed_s": elapsed, "new_trials": new, "trials_per_min": 60 * new / elapsed if elapsed > 0 else 0.0,
            "workers": workers}


def _child(plan, runner, index, stop_flag) -> None:  # pragma: no cover - runs in a forked process
    code = 0
    try:
        _worker(plan, runner, index, stop_flag)
    except BaseException as exc:  # noqa: BLE001 - reported by the exit code, one line on stderr
        import sys

        print(f"optimize worker {index}: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    os._exit(code)  # skip the inherited objects' finalizers (the parent's storage connections)


# ----------------------------------------------------------------------------------- report
def study_report(study, objective: str) -> dict:
    """Best trial, its validation figures, and the overfitting measures over the COMPLETE trials
    the search could select (those with at least ``min_trades`` trades; NaN when none has): ``dsr`` (:func:`engine.research.overfit.deflated_sharpe_ratio` on daily
    P&L) and ``pbo`` (:func:`engine.research.overfit.pbo_cscv`)."""
    import optuna

    from engine.research.overfit import deflated_sharpe_ratio, pbo_cscv, sharpe

    done = complete_trials(study)
    if not done:
        raise OptimizeError(f"study {study.study_name!r} has no complete trial")
    best = max(done, key=lambda t: (t.value, -t.number))
    # the measures judge the search's own selection rule: trials it could select (enough trades)
    eligible = [t for t in done if not t.user_attrs.get("too_few_trades")]
    rows = [t for t in eligible if len(t.user_attrs.get("daily_pnl", [])) == len(best.user_attrs["daily_pnl"])]
    if rows:
        M = np.array([t.user_attrs["daily_pnl"] for t in rows], np.float64).T  # (days, trials)
        srs = np.array([sharpe(M[:, j]) for j in range(M.shape[1])])
        dsr, pbo = deflated_sharpe_ratio(np.asarray(best.user_attrs["daily_pnl"]), srs), pbo_cscv(M)
    else:  # no trial reached min_trades: nothing was selected, the measures are undefined
        nan = float("nan")
        dsr = {"dsr": nan, "sharpe": nan, "sr0": nan, "n_trials": 0, "var_sharpe": nan, "skew": nan,
               "kurtosis": nan, "T": 0}
        pbo = {"pbo": nan, "combinations": 0, "blocks": 0, "logit_median": nan, "trials": 0, "periods": 0}
    states = {s.name: 0 for s in optuna.trial.TrialState}
    for t in study.get_trials(deepcopy=False):
        states[t.state.name] += 1
    return {
        "study": study.study_name, "objective": objective, "trials": {k: v for k, v in states.items() if v},
        "best": {"number": best.number, "value": best.value, "params": best.params,
                 "validation": {k: best.user_attrs.get(k) for k in ("net_pnl", "sharpe_usd", "sharpe", "calmar", "expectancy",
                                                                    "max_drawdown", "win_rate", "profit_factor",
                                                                    "trades", "pass_probability",
                                                                    "expected_value")},
                 "halts": best.user_attrs.get("halts", {}), "verdict": best.user_attrs.get("verdict")},
        "dsr": dsr, "pbo": pbo, "eligible_trials": len(rows),
        "history": [(t.number, t.value) for t in sorted(done, key=lambda t: t.number)],
    }


# ----------------------------------------------------------------------------------- one call
def optimize_study(settings: Any, data: str | Path, *, model: str | Path | None = None, sampler: str | None = None,
                   trials: int | None = None, workers: int | None = None, storage: str | None = None,
                   study: str | None = None, objective: str | None = None, space: list[str] | None = None,
                   holdout_months: int | None = None, start: str | None = None, end: str | None = None,
                   seed: int = 7, write_config: str | Path | None = None,
                   on_start: Callable[[dict], None] | None = None,
                   on_progress: Callable[[dict], None] | None = None, stop_flag=None, strategy: Any = None) -> dict:
    """The whole study as ``mes-console optimize`` and the optimize screen run it: load the bars,
    split the windows, run the trials (``workers`` processes), report (best trial, DSR, PBO), run
    the best parameters on the held-out window exactly as ``backtest --config FILE --start --end``
    does, and write the config file. ``None`` arguments come from ``settings.optimize``.
    ``on_start(setup)`` once before the trials; ``on_progress``: see :func:`run_workers`;
    ``stop_flag`` (``threading.Event`` / ``multiprocessing.Event``): set it to stop after the
    running trials. ``strategy``: a loaded strategy (:class:`engine.strategy.loader.LoadedStrategy`)
    whose declared parameters are searched with the risk ones (:func:`strategy_space`). Returns the JSON-ready report. Raises :class:`OptimizeUsageError`,
    :class:`OptimizeDataError` or :class:`OptimizeError`."""
    import hashlib
    import json

    from engine.backtest.report import _clean
    from engine.backtest.runner import BacktestError, slice_dates
    from engine.config import resolve_dir
    from engine.data.io import load_bars

    oc = settings.optimize
    sampler_, trials_, workers_ = sampler or oc.sampler, int(trials or oc.trials), int(workers or oc.workers)
    objective_ = objective or oc.objective
    if sampler_ not in ("tpe", "random", "grid"):
        raise OptimizeUsageError(f"sampler {sampler_!r}: allowed tpe, random, grid")
    if objective_ not in OBJECTIVE_KEYS:
        raise OptimizeUsageError(f"objective {objective_!r}: allowed {', '.join(OBJECTIVE_KEYS)}")
    if objective_ in ACCOUNT_OBJECTIVES and settings.account.rules == "none":
        raise OptimizeUsageError(f"objective {objective_}: needs an account profile ([account] rules, e.g. topstepx-50k)")
    if objective_ == "expected_value" and settings.account.payout_value <= 0:
        raise OptimizeUsageError("objective expected_value: needs the evaluation economics ([account] payout_value > 0, "
                                 "evaluation_fee, reset_fee)")
    if model is None and strategy is None and settings.backtest.strategy != "baseline":
        raise OptimizeUsageError(f"[backtest] strategy = {settings.backtest.strategy!r}: optimize searches the rule "
                                 "strategy 'baseline' or a model")
    sp = build_space(oc, space, model=model is not None)
    if strategy is not None:
        sp = {**{k: d for k, d in sp.items() if k not in ("baseline_lookback", "min_confidence")},
              **strategy_space(strategy)}
    data = Path(data)
    try:
        bars = load_bars(data)
    except Exception as exc:  # noqa: BLE001 - the loader names file and row
        raise OptimizeDataError(f"{data}: {exc}") from None
    try:
        bars = slice_dates(bars, start, end)
        win = split_windows(bars, holdout_months or oc.holdout_months)
        val_bars = slice_dates(bars, *win["validation"])
    except BacktestError as exc:
        raise OptimizeUsageError(str(exc)) from None
    url = storage or oc.storage or default_storage(settings)
    name = study or f"optimize-{data.stem}"
    setup = {"data": data.name, "bars": int(len(bars)), "first_ts": int(bars.ts[0]), "last_ts": int(bars.ts[-1]),
             "windows": win, "space": {k: d.to_dict() for k, d in sp.items()}, "objective": objective_,
             "sampler": sampler_, "model": Path(model).name if model else (strategy.identity() if strategy is not None
                                                                          else "baseline"),
             "settings_sha": hashlib.sha256(settings_toml(settings).encode()).hexdigest()[:16],
             "min_trades": int(oc.min_trades)}
    plan = StudyPlan(url, name, sampler_, sp, objective_, trials_, seed=seed, setup=setup, min_trades=int(oc.min_trades))
    if on_start is not None:
        on_start({"study": name, "storage": _redact(url), "sampler": sampler_, "objective": objective_,
                  "windows": win, "validation_bars": int(len(val_bars)), "space": setup["space"], "trials": trials_})
    runner = TrialRunner(val_bars, settings, model) if strategy is None else StrategyTrialRunner(val_bars, settings, strategy)
    speed = run_workers(plan, runner, workers_, on_progress=on_progress, stop_flag=stop_flag)
    rep = study_report(open_study(plan, make_storage(url)), objective_)
    best_s = apply_params(settings, rep["best"]["params"])
    best_strat = strategy.with_params(strategy_values(rep["best"]["params"])) if strategy is not None else None
    res, hm = holdout_backtest(bars, best_s, win["holdout"], model, strategy=best_strat)
    held_verdict = account_figures(res, best_s, hm)  # the held-out account verdict and P(pass)
    held = {"window": win["holdout"], "metrics": _clean(hm), "halts": halt_counts(res.halts), "verdict": held_verdict}
    cfg_path = Path(write_config) if write_config else resolve_dir(settings.paths.reports_dir, "reports") / f"{name}.toml"
    repro = (f"mes-console backtest --data {data} --config {cfg_path} --start {win['holdout'][0]} "
             f"--end {win['holdout'][1]}" + (f" --model {model}" if model else "")
             + (f" --strategy {strategy.spec}" + "".join(f" --param {k}={v}" for k, v in best_strat.params.items())
                if best_strat is not None else ""))
    header = [f"mes-console optimize: best of study {name!r} (trial {rep['best']['number']}, {objective_} "
              f"{rep['best']['value']:.6g} on {win['validation'][0]}…{win['validation'][1]})",
              f"params: {json.dumps(rep['best']['params'])}",
              f"held-out net P&L {hm['net_pnl']:.2f} $ over {hm['trades']} trades; reproduce with:", repro]
    try:
        cfg_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(cfg_path) + ".tmp")
        tmp.write_text(settings_toml(best_s, header))
        os.replace(tmp, cfg_path)
    except OSError as exc:
        raise OptimizeError(f"{cfg_path}: cannot write the config: {exc}") from None
    return {"study": name, "storage": _redact(url), "sampler": sampler_, "windows": win, "space": setup["space"],
            "speed": speed, **rep, "holdout": held, "config": str(cfg_path), "reproduce": repro,
            **({"strategy": best_strat.describe()} if best_strat is not None else {})}


def holdout_backtest(bars: Any, settings: Any, window: tuple[str, str], model: str | Path | None,
                     strategy: Any = None):
    """The held-out run exactly as ``backtest --config … --start … --end …`` does it: slice by
    UTC date, the strategy's signals on the slice, fresh market arrays. Returns (result, metrics
    with ``sharpe_usd``)."""
    from engine.backtest.metrics import compute_metrics, daily_equity
    from engine.backtest.runner import run_backtest, slice_dates
    from engine.strategy import ModelStrategy, strategy_by_name

    part = slice_dates(bars, *window)
    strat = ModelStrategy(model) if model is not None else strategy if strategy is not None else strategy_by_name(
        settings.backtest.strategy, lookback=settings.backtest.baseline_lookback)
    res = run_backtest(part, strat.signals(part), settings, fill_model=settings.backtest.fill_model,
                       strategy_name=strat.name)
    m = compute_metrics(res.trades, res.equity, res.day, res.starting_balance, res.ts)
    _, deq = daily_equity(res.equity, res.day)
    pnl = np.diff(np.concatenate([[res.starting_balance], deq]))
    sd = float(pnl.std(ddof=1)) if len(pnl) > 1 else 0.0
    m["sharpe_usd"] = float(pnl.mean() / sd * math.sqrt(ANNUAL_DAYS)) if sd > 0 else 0.0
    return res, m


# ----------------------------------------------------------------------------------- strategy parameters
STRATEGY_PREFIX = "strategy."
"""Searched dimensions of a loaded strategy's declared parameters are named ``strategy.<name>``."""


def strategy_space(strategy: Any) -> dict[str, Dim]:
    """The dimensions of a loaded strategy's declared parameters
    (:class:`engine.strategy.api.Param`: range and grid step), named ``strategy.<name>``. Raises
    :class:`OptimizeUsageError` when it declares none."""
    decl = strategy.declared
    if not decl:
        raise OptimizeUsageError(f"{strategy.where}: declares no parameters to search (engine.strategy.api.StrategyBase"
                                 " params); only the risk parameters would be searched")
    return {STRATEGY_PREFIX + p.name: Dim(STRATEGY_PREFIX + p.name, float(p.low), float(p.high), p.grid_step,
                                          integer=p.kind == "int") for p in decl}


def strategy_values(params: dict) -> dict:
    """The strategy's own values out of a trial's parameters (prefix removed)."""
    return {k[len(STRATEGY_PREFIX):]: v for k, v in params.items() if k.startswith(STRATEGY_PREFIX)}


class StrategyTrialRunner(TrialRunner):
    """:class:`TrialRunner` for a loaded strategy: each trial's ``strategy.*`` values build the
    strategy (checked signals, cached for the last 8 value sets), the rest are the risk
    parameters of :func:`apply_params`."""

    def __init__(self, bars: Any, settings: Any, strategy: Any) -> None:
        super().__init__(bars, settings, None)
        self.strategy = strategy
        self._current: dict = {}
        self._cache: dict = {}

    def signals(self, s: Any):
        key = tuple(sorted(self._current.items()))
        sig = self._cache.get(key)
        if sig is None:
            sig = self.strategy.with_params(self._current).signals(self.bars)
            if len(self._cache) >= 8:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = sig
        return sig

    def run(self, params: dict) -> dict:
        self._current = strategy_values(params)
        return super().run({k: v for k, v in params.items() if not k.startswith(STRATEGY_PREFIX)})
