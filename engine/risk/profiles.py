"""Account profiles (issue 23, R-RISK-7, R-BT-7): the account a strategy trades, and the engine's
own limits derived from it.

A profile names the account type and sets the starting balance, the Maximum Loss Limit (MLL)
allowance and its lock, the position cap (full-size contracts; micros count 10:1), an optional
venue daily loss limit, the profit target and the consistency share. ``[account] rules`` picks
one; every number is overridable by an ``[account]`` key (0 = the profile's value; see
``config.toml``). Sources (``shared/reference/topstepx-rules.md``, collected 2026-12-01; rules
change, verify on Topstep's own pages):

| profile | start $ | MLL $ | lock | max | DLL $ | target $ | consistency | source |
|---|---|---|---|---|---|---|---|---|
| ``none`` | 1,000 | none | - | - | - | - | - | REQUIREMENTS §0 (the engine's own table) |
| ``topstepx-50k`` | 50,000 | 2,000 | start | 5 (50 MES) | none | 3,000 | 50 % | help centre 8284204 (MLL), 235453748 + 9221977 (position), 9772296 (no DLL from 25 Aug 2025), 4405772379155 (consistency); target: third-party (tradingfunder.com) |
| ``topstepx-100k`` | 100,000 | 3,000 | start | 10 | none | 6,000 | 50 % | as 50K; MLL $3,000 not re-verified |
| ``topstepx-150k`` | 150,000 | 4,500 | start | 15 | none | 9,000 | 50 % | as 50K; MLL $4,500 not re-verified |
| ``topstepx-xfa-50k`` | 50,000 | 2,000 | start | 2 (20 MES) | none | none | none | funded account: the dashboard starts at $0 (here: at the account size, the same distances); scaling plan's first step, third-party |
| ``topstepx-xfa-100k`` | 100,000 | 3,000 | start | 3 | none | none | none | as XFA 50K |
| ``topstepx-xfa-150k`` | 150,000 | 4,500 | start | 3 | none | none | none | as XFA 50K |

The engine's own limits (REQUIREMENTS §0) are derived from the account by one documented rule
(:func:`derived_limits`) unless a ``[risk]`` key sets them in a config file:

- the §0 table belongs to a $1,000 account whose loss room is $300 (capital − minimum balance =
  the kill switch); a venue account's loss room is its MLL allowance ``A``, so the §0 dollar
  limits scale by ``k = A / 300``: daily loss ``50 k`` (or the venue's daily loss limit when
  tighter), daily drawdown ``75 k``, max risk per trade ``25 k`` (at most the daily loss);
- the account-level limits sit AT the venue's, never inside it, so that the MLL can fire:
  kill switch ``A`` (cumulative loss from the starting balance: the MLL's first level),
  minimum balance ``start − A`` (the same level), account drawdown ``A`` from the intraday
  high-water mark (tighter than the MLL only when the intraday peak sits above the end-of-day
  high: §0's ``200 k`` would always fire before the MLL);
- every limit is checked; the tighter one fires first (the MLL intrabar at the venue, the
  engine's at the bar close).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

S0_LOSS_ROOM = 300.0
"""Dollars: the §0 account's loss room (starting capital $1,000 − minimum balance $700)."""


@dataclass(frozen=True)
class AccountProfile:
    """One venue account type. Money in dollars; ``max_contracts`` in full-size contracts
    (ES/NQ), a micro (MES/MNQ) counts ``1 / micro_ratio`` of one. ``mll_lock``: the balance at
    which the MLL stops trailing (0 = ``account_size``). ``daily_loss_limit``: the venue's, 0 =
    none. ``profit_target``: 0 = none (funded accounts). ``consistency_share``: the best day's
    share of the total profit a pass allows (0 = no consistency rule). ``kind``: combine | xfa."""

    name: str
    account_size: float
    mll_allowance: float
    max_contracts: int
    micro_ratio: int = 10
    consistency_share: float = 0.5
    profit_target: float = 0.0
    daily_loss_limit: float = 0.0
    mll_lock: float = 0.0
    kind: str = "combine"
    source: str = "Topstep help centre 8284204 (MLL), 235453748 + 9221977 (position limits)"

    @property
    def lock_level(self) -> float:
        """The balance at which the MLL stops trailing, dollars."""
        return self.mll_lock if self.mll_lock > 0 else self.account_size


_TGT = "; profit target third-party (tradingfunder.com Topstep Combine rules)"
_XFA = ("funded account (XFA): no profit target; position = scaling plan's first step (third-party); "
        "MLL as the Combine (help centre 8284204)")
PROFILES: dict[str, AccountProfile | None] = {
    "none": None,
    "topstepx-50k": AccountProfile("topstepx-50k", 50_000.0, 2_000.0, 5, profit_target=3_000.0,
                                   source=AccountProfile.source + _TGT),
    "topstepx-100k": AccountProfile("topstepx-100k", 100_000.0, 3_000.0, 10, profit_target=6_000.0,
                                    source=AccountProfile.source + _TGT + "; MLL $3,000 not re-verified"),
    "topstepx-150k": AccountProfile("topstepx-150k", 150_000.0, 4_500.0, 15, profit_target=9_000.0,
                                    source=AccountProfile.source + _TGT + "; MLL $4,500 not re-verified"),
    "topstepx-xfa-50k": AccountProfile("topstepx-xfa-50k", 50_000.0, 2_000.0, 2, consistency_share=0.0,
                                       kind="xfa", source=_XFA),
    "topstepx-xfa-100k": AccountProfile("topstepx-xfa-100k", 100_000.0, 3_000.0, 3, consistency_share=0.0,
                                        kind="xfa", source=_XFA),
    "topstepx-xfa-150k": AccountProfile("topstepx-xfa-150k", 150_000.0, 4_500.0, 3, consistency_share=0.0,
                                        kind="xfa", source=_XFA),
}
"""``[account] rules`` → profile (``none``: the §0 personal account, no venue rules)."""

PROFILE_NAMES = tuple(PROFILES)

_OVERRIDES = {"mll_allowance": "mll_allowance", "max_contracts": "max_contracts",
              "profit_target": "profit_target", "consistency_share": "consistency_share",
              "mll_lock": "mll_lock", "personal_daily_loss_limit": "daily_loss_limit"}
"""``[account]`` key → :class:`AccountProfile` field it overrides when > 0."""

DERIVED_RISK_KEYS = ("daily_loss_limit", "daily_drawdown_limit", "max_risk_per_trade", "kill_switch_loss",
                     "min_account_balance", "account_drawdown_limit")
"""The ``[risk]`` keys :func:`derived_limits` sets for a venue profile."""


def effective_profile(account: Any) -> AccountProfile | None:
    """The profile of ``account`` (:class:`engine.config.AccountConfig`) with its ``[account]``
    overrides applied: ``starting_capital`` becomes the account size, and each of
    ``mll_allowance``, ``max_contracts``, ``profit_target``, ``consistency_share``, ``mll_lock``,
    ``personal_daily_loss_limit`` replaces the profile's value when > 0. None for ``none``.
    Raises ``KeyError`` for an unknown profile (the config validates the name first)."""
    p = PROFILES[account.rules]
    if p is None:
        return None
    upd: dict[str, Any] = {"account_size": float(account.starting_capital)}
    for key, fld in _OVERRIDES.items():
        v = getattr(account, key, 0)
        if v and v > 0:
            upd[fld] = int(v) if fld == "max_contracts" else float(v)
    return dataclasses.replace(p, **upd)


def derived_limits(p: AccountProfile) -> dict[str, tuple[float, str]]:
    """The engine's own ``[risk]`` limits for profile ``p`` (module docstring's rule): key →
    (dollars, the rule that set it)."""
    a, k = p.mll_allowance, p.mll_allowance / S0_LOSS_ROOM
    daily = round(50.0 * k, 2)
    daily_why = f"§0 $50 × {k:.4g} (MLL ${a:,.0f} / §0 loss room $300)"
    if 0 < p.daily_loss_limit < daily:
        daily, daily_why = p.daily_loss_limit, f"the venue's daily loss limit ({p.name})"
    risk = min(round(25.0 * k, 2), daily)
    return {
        "daily_loss_limit": (daily, daily_why),
        "daily_drawdown_limit": (round(75.0 * k, 2), f"§0 $75 × {k:.4g}"),
        "max_risk_per_trade": (risk, f"§0 $25 × {k:.4g}" + (" (capped at the daily loss limit)"
                                                            if risk < round(25.0 * k, 2) else "")),
        "kill_switch_loss": (a, f"= MLL allowance ({p.name}): the MLL's first level"),
        "min_account_balance": (p.account_size - a, f"start − MLL allowance ({p.name}): the MLL's first level"),
        "account_drawdown_limit": (a, f"= MLL allowance ({p.name}), so the end-of-day MLL can fire"),
    }


def apply_profile(settings: Any, explicit: frozenset) -> Any:
    """``settings`` with the account profile's derived values in every key a config file did not
    set (``explicit``: ``"section.key"`` names set by a file): ``account.starting_capital`` (the
    profile's account size) and the :data:`DERIVED_RISK_KEYS`; with ``rules = "none"`` those keys
    go back to their built-in (§0) defaults. Pure; the config loader calls it after each file."""
    acc = settings.account
    base = PROFILES.get(acc.rules)
    if "account.starting_capital" not in explicit:
        cap = base.account_size if base is not None else type(acc)().starting_capital
        acc = dataclasses.replace(acc, starting_capital=cap)
    p = effective_profile(acc) if base is not None else None
    d0 = type(settings.risk)()  # the built-in (§0) defaults
    upd: dict[str, float] = {}
    limits = derived_limits(p) if p is not None else {}
    for key in DERIVED_RISK_KEYS:
        if f"risk.{key}" in explicit:
            continue
        upd[key] = limits[key][0] if p is not None else getattr(d0, key)
    return dataclasses.replace(settings, account=acc, risk=dataclasses.replace(settings.risk, **upd))


def limit_sources(settings: Any) -> list[tuple[str, Any, str]]:
    """``config show``'s account table: (key, effective value, which rule set it) for the
    account's numbers and the engine's derived limits."""
    explicit: frozenset = getattr(settings, "explicit", frozenset())
    acc = settings.account
    p = effective_profile(acc)
    base = PROFILES[acc.rules]
    out: list[tuple[str, Any, str]] = [("rules", acc.rules, "config file" if "account.rules" in explicit
                                        else "built-in default")]
    if base is not None:
        out.append(("source", base.source, f"profile {acc.rules}"))

    def src(key: str, prof_note: str) -> str:
        return "config file" if key in explicit else prof_note

    out.append(("starting_capital", acc.starting_capital,
                src("account.starting_capital", f"profile {acc.rules}" if base else "§0 default")))
    if p is not None and base is not None:
        for key, fld in _OVERRIDES.items():
            val = p.lock_level if fld == "mll_lock" else getattr(p, fld)
            note = f"[account] {key}" if getattr(acc, key, 0) > 0 else f"profile {acc.rules}"
            out.append((fld if key != "personal_daily_loss_limit" else "venue daily_loss_limit", val, note))
        limits = derived_limits(p)
    else:
        limits = {}
    for key in DERIVED_RISK_KEYS:
        val = getattr(settings.risk, key)
        if f"risk.{key}" in explicit:
            note = "config file [risk]"
        elif key in limits:
            note = f"derived: {limits[key][1]}"
        else:
            note = "§0 default"
        out.append((f"risk.{key}", val, note))
    return out


__all__ = ["AccountProfile", "PROFILES", "PROFILE_NAMES", "DERIVED_RISK_KEYS", "S0_LOSS_ROOM",
           "effective_profile", "derived_limits", "apply_profile", "limit_sources"]
