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

The engine cannot read the venue's MLL over the ProjectX API (``Account/search`` gives only
the balance), so the end-of-day high is tracked here from the broker's balance at each
trading-day roll and persisted in ``account_rules.json`` beside the risk state; its first value
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


@dataclass(frozen=True)
class AccountProfile:
    """One venue account type. Money in dollars; ``max_contracts`` in full-size contracts
    (ES/NQ); a micro (MES/MNQ) counts ``1 / micro_ratio`` of one."""

    name: str
    account_size: float
    mll_allowance: float
    max_contracts: int
    micro_ratio: int = 10
    consistency_share: float = 0.5
    source: str = "Topstep help centre 8284204 (MLL), 235453748 + 9221977 (position limits)"


PROFILES: dict[str, AccountProfile | None] = {
    "none": None,
    "topstepx-50k": AccountProfile("topstepx-50k", 50_000.0, 2_000.0, 5),
    "topstepx-100k": AccountProfile("topstepx-100k", 100_000.0, 3_000.0, 10),
    "topstepx-150k": AccountProfile("topstepx-150k", 150_000.0, 4_500.0, 15),
}
"""``[account] rules`` → profile (``none``: no venue rules, only §0)."""

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
    """The venue's limits for one account (module docstring).

    Args:
        profile: an :class:`AccountProfile`.
        symbol: the traded instrument (micros count 10:1 against ``max_contracts``).
        path: JSON file for the end-of-day high and the per-day P&L (None: in memory).
        personal_daily_loss_limit: dollars, 0 = none.
        mll_eod_high: a known end-of-day high from the venue's dashboard, dollars (0 = unknown).

    Raises :class:`AccountRulesError` when ``path`` exists but is unreadable.
    """

    def __init__(self, profile: AccountProfile, symbol: str, path: str | Path | None = None, *,
                 personal_daily_loss_limit: float = 0.0, mll_eod_high: float = 0.0) -> None:
        self.profile = profile
        self.symbol = symbol
        self.path = Path(path) if path is not None else None
        self.personal = float(personal_daily_loss_limit)
        self.st: dict[str, Any] = {"eod_high": max(profile.account_size, float(mll_eod_high)),
                                   "day": None, "day_start_balance": None, "day_pnl": {}}
        if self.path is not None and self.path.exists():
            try:
                saved = json.loads(self.path.read_text())
                self.st.update({k: saved[k] for k in self.st})
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
    def liquidation_level(self) -> float:
        """The MLL: ``min(eod_high − allowance, account size)`` dollars (article 8284204)."""
        p = self.profile
        return min(self.eod_high - p.mll_allowance, p.account_size)

    def distance(self, equity: float) -> float:
        """Dollars between ``equity`` (balance + open P&L) and the liquidation level."""
        return float(equity) - self.liquidation_level

    # ------------------------------------------------------------------ inputs
    def on_balance(self, day: str, balance: float) -> None:
        """The broker's balance at a time in trading day ``day`` (ISO). On the first call of a
        new day the balance is the previous day's end-of-day balance: it may raise the
        end-of-day high. Persists the state when it changes."""
        st = self.st
        changed = False
        if st["day"] is None:
            # first sight: a mid-day balance is taken as a high too (a higher level is tighter)
            st["eod_high"] = max(st["eod_high"], float(balance))
            st["day"], st["day_start_balance"] = day, float(balance)
            changed = True
        elif day != st["day"]:
            st["eod_high"] = max(st["eod_high"], float(balance))
            st["day_pnl"][st["day"]] = float(balance) - float(st["day_start_balance"])
            st["day"], st["day_start_balance"] = day, float(balance)
            changed = True
        if changed:
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
        n = int(contracts)
        why = ""
        room = self.max_contracts - abs(int(open_contracts))
        if n > room:
            n = max(0, room)
            why = f"venue position limit {self.max_contracts} {self.symbol} ({self.profile.name})"
        rpc = float(risk_per_contract)
        if rpc > 0 and n > 0:
            level = self.liquidation_level
            fit = int(math.floor((float(equity) - level) / rpc - 1e-9))
            if fit < n:
                n = max(0, fit)
                why = (f"MLL: a stop-out of ${rpc * int(contracts):,.2f} would take the equity "
                       f"${equity:,.2f} to or below the liquidation level ${level:,.2f} "
                       f"({self.profile.name}); {n} contract(s) fit")
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


def rules_from_settings(settings: Any, symbol: str, path: str | Path | None = None) -> AccountRules | None:
    """The :class:`AccountRules` of ``[account] rules`` (None for ``none``)."""
    a = settings.account
    prof = PROFILES[a.rules]
    if prof is None:
        return None
    return AccountRules(prof, symbol, path, personal_daily_loss_limit=a.personal_daily_loss_limit,
                        mll_eod_high=a.mll_eod_high)
