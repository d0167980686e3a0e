"""A loaded strategy in the console's Backtest screen: the Model field takes a strategy spec
(``file.py:Class``, ``package.module:Class``, an entry-point name) besides a checkpoint or
``baseline``; with Walk-fwd on, the walk-forward optimization of its declared parameters
(:func:`engine.strategy.walkforward.strategy_walk_forward`, run for the console by
``engine.runtime.work``) instead of one model per fold.

:func:`is_strategy_spec` tells the two apart; :func:`found_specs` lists the strategies found.
"""

from __future__ import annotations

from pathlib import Path

from engine.strategy.loader import BUILTINS, _entry_points


def is_strategy_spec(text: str) -> bool:
    """True for ``random``, a ``*.py`` path (with or without ``:Class``), ``module:Class`` or a
    registered entry-point name; False for ``baseline``/empty (the session's baseline) and for an
    existing directory (a checkpoint)."""
    t = (text or "").strip()
    if not t or t == "baseline" or Path(t).expanduser().is_dir():
        return False
    return t in BUILTINS or ".py" in t or ":" in t or t in _entry_points()


def found_specs() -> list[str]:
    """``--strategy`` specs of the strategies found (:func:`engine.strategy.loader.discover`),
    for the screens' suggestions."""
    from engine.strategy.loader import default_dirs, discover

    return [r["spec"] for r in discover(default_dirs())]


__all__ = ["is_strategy_spec", "found_specs"]
