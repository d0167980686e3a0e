"""Strategies: batch signal producers consumed by the trading kernel.

``strategy_by_name(name, **kw)``: "baseline" (the documented rule-based baseline), "random"
(random entries for validation). :class:`ModelStrategy` consumes a model checkpoint's batch
predictions.

A trader's own strategy (specs/strategy.md): the public API in :mod:`engine.strategy.api`
(:class:`StrategyBase`, :class:`Param`, ``make_signals``), loaded from a ``--strategy`` spec and
checked by :mod:`engine.strategy.loader`, run in sessions by :mod:`engine.strategy.runtime`,
analysed by :mod:`engine.strategy.analysis`, walk-forward optimized by
:mod:`engine.strategy.walkforward`.
"""

from engine.strategy.api import FloatParam, IntParam, Param, StrategyBase, make_signals
from engine.strategy.base import Strategy, StrategySignals
from engine.strategy.baseline import BreakoutBaseline
from engine.strategy.random_entry import RandomEntry
from engine.strategy.model import ModelStrategy

STRATEGIES = ("baseline", "random")


def strategy_by_name(name: str, **kw) -> Strategy:
    """A rule-based strategy by name; raises ``ValueError`` naming the allowed names."""
    if name == "baseline":
        return BreakoutBaseline(**kw)
    if name == "random":
        return RandomEntry(**kw)
    raise ValueError(f"unknown strategy {name!r}; allowed: {', '.join(STRATEGIES)} (or --model CKPT)")


__all__ = ["StrategyBase", "Param", "IntParam", "FloatParam", "make_signals", "Strategy", "StrategySignals", "BreakoutBaseline", "RandomEntry", "ModelStrategy",
           "strategy_by_name", "STRATEGIES"]
