"""The ONE risk path of every mode (issue 23): the risk manager with the account's rules.

Kept apart from :mod:`engine.risk.manager` and :mod:`engine.risk.account_rules` so that neither
imports the other at run time (the manager only names the rules' type).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.risk.account_rules import rules_from_settings
from engine.risk.manager import RiskManager


def build_risk(settings: Any, clock: Any, calendar: Any, spec: Any, store: Any = None, *,
               research: bool = False, rules_path: str | Path | None = None, **kwargs: Any) -> Any:
    """The ONE risk path of every mode (issue 23): a :class:`engine.risk.RiskManager` on
    ``settings`` (whose ``[risk]`` limits the account profile derived,
    :mod:`engine.risk.profiles`) with the account's :class:`AccountRules` attached
    (:func:`rules_from_settings`; ``rules_path``: where paper/live persist the end-of-day high,
    None = in memory). Backtest, walk-forward, optimize trials and replay build it through
    :func:`engine.parts.sim_parts`, paper and live through the live session. ``kwargs``: the
    manager's other keyword arguments. Raises :class:`AccountRulesError` for an unreadable
    ``rules_path`` and what the manager raises."""
    rm = RiskManager(settings, clock, calendar, spec, store, research=research, **kwargs)
    rm.account_rules = rules_from_settings(settings, spec.symbol, rules_path, research=research)
    return rm


__all__ = ["build_risk"]
