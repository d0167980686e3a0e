"""The venue's account rules (R-RISK-7): a named profile of TopstepX's limits, checked beside the
engine's own (REQUIREMENTS §0); the tighter one wins.

Sources (Topstep help centre, collected 2026-12-01 in ``shared/reference/topstepx-rules.md``;
rules change, so every number is a profile default that ``[account]`` keys can override):

- Maximum Loss Limit (MLL), help centre article 8284204: the liquidation level trails the
  highest END-OF-DAY balance by the account's allowance ($2,000 on a 50K account) and stops
  rising once it reaches the starting balance (``level = min(eod_high − allowance, start)``);
  an intraday breach of the level liquidates the account.
- Maximum position, articles 235453748 and 9221977: 5 / 10 / 15 contracts on 50K / 100K / 150K
  accounts, micros counted 10:1 (50 MES on a 50K account).
- Daily loss limit, article 9772296: accounts created from 25 August 2025 have none from the
  venue; a personal one can be set (``[account] personal_daily_loss_limit``).
- Consistency target, article 4405772379155: the best day stays below a share of the total
  profit (40 % in the older official article, 50 % reported by third parties; the profile uses
  50 %). A payout rule, not a trading limit: tracked and shown, never blocks an order.

The 100K/150K allowances ($3,000 / $4,500) follow the same article's scale as the 50K's
$2,000 but were not re-verified for this release: check the Topstep dashboard.

Issue 23: profiles (:mod:`engine.risk.profiles`) set the account and derive the engine's
limits; :func:`engine.risk.build.build_risk` attaches the same rules to the risk manager in
every mode; the simulated venue liquidates at the MLL
(:meth:`engine.venue.sim.SimVenue._liquidate`); the verdict (:meth:`AccountRules.verdict`) and
the Monte Carlo pass probability (:mod:`engine.research.montecarlo`) are in every report
(``specs/account.md``).

The engine cannot read the venue's MLL over the ProjectX API (``Account/search`` gives only
the balance), so the end-of-day high is tracked here from the balance at each trading-day roll
(the risk manager's equity in the simulated modes, the broker's in paper/live) and persisted in ``account_rules.json`` beside the risk state; its first value
is ``max(account size, [account] mll_eod_high, the first broker balance seen)``. Set
``mll_eod_high`` from the dashboard when the account made highs before mes-console saw it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from engine.risk.profiles import PROFILES, AccountProfile, effective_profile  # noqa: F401 - re-exported

MICROS = frozenset({"MES", "MNQ", "M2K", "MYM"})


class AccountRulesError(RuntimeError):
    """The persisted account-rules state is unreadable (names the file); never reset silently."""


@dataclass(frozen=True)
class RulesView:
    """What the risk pane shows of the venue's limits (dollars; contracts of the traded symbol)."""

    profile: str
    liquidation_level: float
    distance: float
    eod_high: float
    max_contracts: int
    personal_daily_loss_limit: float
    consistency_best_day_share: float | None
    consistency_target: float


class AccountRules:
    """The venue's limits for one account (module docstring), and its verdict (issue 23).

    Args:
        profile: an :class:`AccountProfile` (with its ``[account]`` overrides applied:
            :func:`engine.risk.profiles.effective_profile`).
        symbol: the traded instrument (micros count 10:1 against ``max_contracts``).
        path: JSON file for the end-of-day high and the per-day P&L (None: in memory).
        personal_daily_loss_limit: dollars, 0 = the profile's ``daily_loss_limit`` (0 = none).
        mll_eod_high: a known end-of-day high from the venue's dashboard, dollars (0 = unknown).
        research: a failure is recorded and a new attempt starts at once from the balance then
            (``[backtest] research``); otherwise a failure ends the account: every entry is
            refused and the verdict stays ``failed``.
        entry_cap: :meth:`cap_entry` keeps each entry's stop-out above the MLL (``[account]
            mll_entry_cap``); False leaves the MLL to the venue's liquidation.

    The verdict (:meth:`verdict`): ``failed`` at the first MLL breach (the simulated venue's
    liquidation, :meth:`on_liquidation`, or a balance at or below the level); ``passed`` at the
    end of the first trading day whose balance is ≥ start + profit target with the best day's
    P&L ≤ ``consistency_share`` × the total profit; else ``open``. After a pass or a failure the
    verdict is frozen and the venue no longer liquidates (the attempt is over; the run goes on as
    the strategy's record, except that a failed account takes no further trade).

    Raises :class:`AccountRulesError` when ``path`` exists but is unreadable.
    """

    def __init__(self, profile: AccountProfile, symbol: str, path: str | Path | None = None, *,
                 personal_daily_loss_limit: float = 0.0, mll_eod_high: float = 0.0,
                 research: bool = False, entry_cap: bool = True) -> None:
        self.profile = profile
        self.entry_cap = bool(entry_cap)
        self.symbol = symbol
        self.path = Path(path) if path is not None else None
        self.personal = float(personal_daily_loss_limit or profile.daily_loss_limit)
        self.research = bool(research)
        self.fed_by_risk = path is None
        """True: the risk manager hands its equity to :meth:`on_balance` at each day roll (the
        simulated modes: the manager owns the balance); False (paper/live, state persisted): the
        session feeds the broker's balance instead (one owner: the broker)."""
        self.st: dict[str, Any] = {"eod_high": max(profile.account_size, float(mll_eod_high)),
                                   "day": None, "day_start_balance": None, "day_pnl": {}}
        # the attempt's starting balance, its end (failed / passed dicts) and research failures
        self.st.update({"start": profile.account_size, "failed": None, "passed": None, "failures": []})
        if self.path is not None and self.path.exists():
            try:
                saved = json.loads(self.path.read_text())
                self.st.update({k: saved[k] for k in ("eod_high", "day", "day_start_balance", "day_pnl")})
                self.st.update({k: saved[k] for k in ("start", "failed", "passed", "failures") if k in saved})
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise AccountRulesError(f"{self.path}: unreadable account-rules state ({exc}); fix or "
                                        "remove it (the end-of-day high it holds sets the MLL)") from None
            self.st["eod_high"] = max(float(self.st["eod_high"]), float(mll_eod_high))

    # ------------------------------------------------------------------ limits
    @property
    def max_contracts(self) -> int:
        """Position limit in contracts of :attr:`symbol` (micros 10:1, articles 235453748/9221977)."""
        p = self.profile
        return p.max_contracts * (p.micro_ratio if self.symbol in MICROS else 1)

    @property
    def eod_high(self) -> float:
        return float(self.st["eod_high"])

    @property
    def start(self) -> float:
        """The attempt's starting balance, dollars (the account size; research: the balance a
        new attempt started from)."""
        return float(self.st["start"])

    @property
    def liquidation_level(self) -> float:
        """The MLL: ``min(eod_high − allowance, lock)`` dollars (article 8284204); the lock is the
        starting balance unless ``[account] mll_lock`` moves it."""
        p = self.profile
        return min(self.eod_high - p.mll_allowance, self.start + (p.lock_level - p.account_size))

    @property
    def failed(self) -> dict[str, Any] | None:
        """The failure that ended the account (None: not failed, or research mode)."""
        return self.st["failed"]

    @property
    def active(self) -> bool:
        """True while the attempt runs (neither passed nor failed): the venue liquidates."""
        return self.st["failed"] is None and self.st["passed"] is None

    def guard_level(self) -> float:
        """The level the simulated venue liquidates at (dollars of intraday equity), −inf once
        the attempt is over (:attr:`active` False)."""
        return self.liquidation_level if self.active else -math.inf

    def distance(self, equity: float) -> float:
        """Dollars between ``equity`` (balance + open P&L) and the liquidation level."""
        return float(equity) - self.liquidation_level

    # ------------------------------------------------------------------ inputs
    def on_balance(self, day: str, balance: float) -> None:
        """The balance at a time in trading day ``day`` (ISO): the broker's (paper/live) or the
        risk manager's equity at the day roll (every mode, :meth:`RiskManager._sync`). On the
        first call of a new day the balance is the previous day's end-of-day balance: it may
        raise the end-of-day high, closes that day's P&L and may pass the attempt. Persists the
        state when it changes."""
        st = self.st
        changed = False
        if st["day"] is None:
            # first sight: a mid-day balance is taken as a high too (a higher level is tighter)
            st["eod_high"] = max(st["eod_high"], float(balance))
            st["day"], st["day_start_balance"] = day, float(balance)
            changed = True
        elif day != st["day"]:
            prev = st["day"]
            st["eod_high"] = max(st["eod_high"], float(balance))
            st["day_pnl"][prev] = float(balance) - float(st["day_start_balance"])
            st["day"], st["day_start_balance"] = day, float(balance)
            if self.active:
                passed = self._pass_check(prev, float(balance), st["day_pnl"])
                if passed is not None:
                    st["passed"] = passed
            changed = True
        if self.active and float(balance) <= self.liquidation_level + 1e-9:
            # the balance itself at the level (a venue liquidation this engine did not see, in
            # paper/live; a first balance already below it): the account has failed
            self.on_liquidation(0, "MLL (balance)", float(balance), self.liquidation_level)
            return
        if changed:
            self.save()

    def _pass_check(self, day: str, balance: float, days: dict[str, float]) -> dict[str, Any] | None:
        """The pass at the end of ``day`` with ``balance`` and the attempt's day P&L ``days``, or
        None: profit ≥ target and best day ≤ consistency share × profit."""
        p = self.profile
        profit = balance - self.start
        if p.profit_target <= 0 or profit + 1e-9 < p.profit_target:
            return None
        best = max(days.values()) if days else 0.0
        share = best / profit if profit > 0 else 1.0
        if p.consistency_share > 0 and share > p.consistency_share + 1e-12:
            return None
        return {"status": "passed", "date": day, "trading_days": sum(1 for v in days.values() if abs(v) > 1e-9),
                "profit": profit, "best_day": best, "best_day_share": share,
                "consistency_share": p.consistency_share, "target": p.profit_target}

    def on_liquidation(self, ts_ns: int, rule: str, balance: float, level: float) -> None:
        """The venue closed the account's position (or found the balance) at the level: the
        attempt fails at ``ts_ns`` (UTC ns) by ``rule``; ``balance`` after it, ``level`` the MLL,
        dollars. Research mode records it and starts a new attempt from ``balance`` at once."""
        st = self.st
        f = {"status": "failed", "date": st["day"], "ts_ns": int(ts_ns), "rule": rule,
             "balance": float(balance), "level": float(level), "attempt": len(st["failures"]) + 1}
        st["failures"].append(f)
        if self.research:
            b = float(balance)
            st["start"] = st["eod_high"] = st["day_start_balance"] = b
            st["day_pnl"] = {}
        else:
            st["failed"] = f
        self.save()

    def day_pnl(self, balance: float) -> float:
        """Today's realised P&L by the broker's balance, dollars."""
        s = self.st["day_start_balance"]
        return 0.0 if s is None else float(balance) - float(s)

    def consistency_share(self, balance: float) -> float | None:
        """Best day's profit / total profit over the days seen (today included), or None while
        the total is not positive (article 4405772379155)."""
        days = dict(self.st["day_pnl"])
        if self.st["day"] is not None:
            days[self.st["day"]] = self.day_pnl(balance)
        total = sum(days.values())
        if total <= 0:
            return None
        return max(days.values()) / total

    def verdict(self, balance: float, equity: float | None = None) -> dict[str, Any]:
        """The account's verdict now (dollars; ``equity`` defaults to ``balance``): a ``failed``
        dict (date, ts_ns, rule, balance, level), a ``passed`` dict (date, trading_days, profit,
        best_day, best_day_share ≤ consistency_share, target) or ``open`` (profit, target,
        to_target, mll_level, to_mll, best_day_share). Today counts as ended (a run's last day).
        Every verdict carries ``profile``, ``research`` and ``failures`` (research mode: each
        failure; the verdict is then the FIRST attempt's: its failure, when one came)."""
        st = self.st
        eq = float(balance if equity is None else equity)
        base = {"profile": self.profile.name, "failures": [dict(f) for f in st["failures"]],
                "research": self.research}
        if st["failed"] is not None:
            return {**st["failed"], **base}
        if st["failures"]:  # research mode: the first attempt failed; later attempts are in failures
            return {**st["failures"][0], **base}
        if st["passed"] is not None:
            return {**st["passed"], **base}
        days = dict(st["day_pnl"])
        if st["day"] is not None:
            days[st["day"]] = self.day_pnl(balance)
            passed = self._pass_check(st["day"], float(balance), days)
            if passed is not None:
                return {**passed, **base}
        p = self.profile
        profit = float(balance) - self.start
        share = self.consistency_share(balance)
        return {"status": "open", "profit": profit, "target": p.profit_target,
                "to_target": (p.profit_target - profit) if p.profit_target > 0 else None,
                "mll_level": self.liquidation_level, "to_mll": self.distance(eq),
                "best_day_share": share, "consistency_share": p.consistency_share,
                "trading_days": sum(1 for v in days.values() if abs(v) > 1e-9), **base}

    # ------------------------------------------------------------------ the check
    def cap_entry(self, contracts: int, risk_per_contract: float, equity: float, balance: float,
                  open_contracts: int = 0) -> tuple[int, str]:
        """The most contracts (≤ ``contracts``) the venue's rules allow for a new entry whose
        stop-out costs ``risk_per_contract`` dollars per contract (stop distance × tick value
        + costs), and the reason when that is fewer than asked:

        - position limit: ``open + new ≤`` :attr:`max_contracts`;
        - MLL: ``equity − n × risk`` must stay strictly above the liquidation level;
        - personal daily loss limit: ``today's P&L + open P&L − n × risk > −limit``.

        Returns ``(n, reason)``; ``n == 0`` means refused."""
        f = self.st["failed"]
        if f is not None:
            return 0, (f"account failed: {f['rule']} on {f['date']} (balance ${f['balance']:,.2f}, "
                       f"level ${f['level']:,.2f}, {self.profile.name}): no further trade")
        n = int(contracts)
        why = ""
        room = self.max_contracts - abs(int(open_contracts))
        if n > room:
            n = max(0, room)
            why = f"venue position limit {self.max_contracts} {self.symbol} ({self.profile.name})"
        rpc = float(risk_per_contract)
        if rpc > 0 and n > 0 and self.entry_cap:
            level = self.liquidation_level
            fit = int(math.floor((float(equity) - level) / rpc - 1e-9))
            if fit < n:
                n = max(0, fit)
                why = (f"MLL: a stop-out of ${rpc * int(contracts):,.2f} would take the equity "
                       f"${equity:,.2f} to or below the liquidation level ${level:,.2f} "
                       f"({self.profile.name}); {n} contract(s) fit")
        if rpc > 0 and n > 0:
            if self.personal > 0:
                used = -(self.day_pnl(balance) + (float(equity) - float(balance)))
                fit = int(math.floor((self.personal - used) / rpc - 1e-9))
                if fit < n:
                    n = max(0, fit)
                    why = (f"personal daily loss limit ${self.personal:,.2f}: ${max(used, 0.0):,.2f} used, "
                           f"a stop-out of ${rpc:,.2f}/contract does not fit; {n} contract(s) fit")
        return n, why

    def view(self, equity: float, balance: float) -> RulesView:
        return RulesView(self.profile.name, self.liquidation_level, self.distance(equity), self.eod_high,
                         self.max_contracts, self.personal, self.consistency_share(balance),
                         self.profile.consistency_share)

    def save(self) -> None:
        """Atomic write (temp file, fsync, rename) of the state; no-op in memory."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(self.st, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def liquidation_doc(trades: list, liquidations: list) -> list[dict[str, Any]]:
    """The simulated venue's MLL liquidations (``SimVenue.liquidations``: (UTC ns, fill price,
    reference price, level $)) as dicts for a report; each trade (kernel ``TradeRecord``) whose
    exit is one of them gets the exit reason ``mll_liquidation`` (backtest and replay alike)."""
    at = {int(t) for t, _, _, _ in liquidations}
    for t in trades:
        if t.exit_ts in at:
            t.exit_reason = "mll_liquidation"
    return [{"ts_ns": int(t), "price": float(px), "ref_price": float(ref), "level": float(lv)}
            for t, px, ref, lv in liquidations]


STALL_DAYS = 5
"""Trading days without a trade (a week) after which an ``open`` account whose entries the MLL
entry cap refused is called stalled (:func:`stall_doc`)."""


def stall_doc(trades: list, day: Any, refused: dict) -> dict[str, Any]:
    """Whether a run that leaves the account ``open`` simply stopped trading: the engine's MLL
    entry cap (``[account] mll_entry_cap``) refuses every entry whose stop-out would reach the
    liquidation level, so an account a few dollars above the MLL can sit ``open`` for the rest
    of the run, which reads as still in the game. ``trades``: the kernel's ``TradeRecord``s
    (``exit_bar``); ``day``: per-bar trading-day numbers (int, days since 1970-01-01; negative
    outside a session: ``BacktestResult.day``); ``refused``: the kernel's refused entries by
    reason. Returns ``last_trade_day`` (ISO date of the last exit's trading day, None without
    trades), ``idle_days`` (trading days of the run after it; all of them without trades),
    ``mll_refused`` (entries refused by the MLL cap: reasons starting ``MLL``) and ``stalled``
    (``mll_refused`` > 0 and ``idle_days`` ≥ :data:`STALL_DAYS`)."""
    import numpy as np

    from engine.calendar import day_date

    d = np.asarray(day, dtype=np.int64)
    days = np.unique(d[d >= 0])
    last = int(d[min(int(trades[-1].exit_bar), len(d) - 1)]) if trades and len(d) else None
    idle = int(np.count_nonzero(days > last)) if last is not None else int(len(days))
    mll = int(sum(int(n) for r, n in refused.items() if str(r).startswith("MLL")))
    return {"last_trade_day": day_date(last).isoformat() if last is not None and last >= 0 else None,
            "idle_days": idle, "mll_refused": mll, "stalled": bool(mll > 0 and idle >= STALL_DAYS)}


def risk_view_fields(rules: AccountRules | None, equity: float, balance: float) -> dict[str, Any]:
    """The :class:`engine.runtime.snapshot.RiskView` fields of the account's rules (the risk
    pane, every mode): profile, MLL level and the equity's distance to it, the position cap,
    the balance, the attempt's profit and target, the best day's share of the profit and the
    verdict's status. Empty for no rules."""
    if rules is None:
        return {}
    v = rules.view(equity, balance)
    st = rules.verdict(balance, equity)["status"]
    return {"venue_rules": v.profile, "venue_liquidation_usd": v.liquidation_level,
            "venue_distance_usd": v.distance, "venue_max_contracts": v.max_contracts,
            "venue_balance_usd": float(balance), "venue_profit_usd": float(balance) - rules.start,
            "venue_target_usd": rules.profile.profit_target, "venue_best_day_share": v.consistency_best_day_share,
            "venue_consistency_share": rules.profile.consistency_share, "venue_status": st}


def rules_from_settings(settings: Any, symbol: str, path: str | Path | None = None, *,
                        research: bool = False) -> AccountRules | None:
    """The :class:`AccountRules` of ``[account] rules`` with its ``[account]`` overrides
    (:func:`engine.risk.profiles.effective_profile`; None for ``none``). ``research``: see
    :class:`AccountRules`. The composition root's one builder for every mode
    (:func:`engine.risk.build.build_risk`)."""
    a = settings.account
    prof = effective_profile(a)
    if prof is None:
        return None
    return AccountRules(prof, symbol, path, personal_daily_loss_limit=prof.daily_loss_limit,
                        mll_eod_high=a.mll_eod_high, research=research, entry_cap=a.mll_entry_cap)
