"""The pieces of a simulated mode (backtest, replay), built in one place.

A simulated mode runs the ONE kernel (:class:`engine.kernel.TradingKernel`) on a
:class:`engine.clock.SimClock` that starts at the first bar's open, against the simulated venue
(:meth:`engine.venue.sim.SimVenue.for_bars`, its per-bar slippage from the batch market inputs
:func:`engine.market.inputs.prepare_market`), with a risk manager on the CME calendar of the bars'
span. :func:`sim_parts` builds exactly that; the backtest runner
(:func:`engine.backtest.runner.run_backtest`) and the replay session
(:class:`engine.runtime.session.Session`) both take their pieces from it, and the composition
root :mod:`engine.compose` chooses the mode. Paper and live swap the clock and the venue for a
broker connection (:mod:`engine.runtime.live`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from engine.calendar import CmeCalendar, calendar_for
from engine.clock import SimClock
from engine.instruments import InstrumentSpec
from engine.instruments import spec as instrument_spec
from engine.kernel import TradingKernel
from engine.market.inputs import MarketInputs, prepare_market
from engine.venue.sim import SimVenue


@dataclass
class SimParts:
    """A simulated mode's pieces. ``market``: the batch market inputs (n = bars; the backtest
    feeds them to the kernel, the replay only takes the venue's slippage from them);
    ``risk``: the risk manager the kernel was given (wrapped by ``wrap_risk`` when one was
    passed to :func:`sim_parts`); ``start_balance``: dollars, ``account.starting_capital``."""

    clock: SimClock
    cal: CmeCalendar
    spec: InstrumentSpec
    market: MarketInputs
    venue: SimVenue
    risk: Any
    kernel: TradingKernel
    start_balance: float


def sim_parts(bars, settings, fill_model: str, *, market: MarketInputs | None = None, native_oco: bool = True,
              risk: Any = None, research: bool = False,
              wrap_risk: Callable[[Any], Any] | None = None) -> SimParts:
    """Build a simulated mode's pieces over ``bars`` (:class:`engine.data.bars.Bars`, sorted,
    non-empty).

    Args:
        settings: :class:`engine.config.Settings`. fill_model: conservative | optimistic |
            realistic. market: precomputed batch inputs for these bars (default: computed).
        native_oco: the venue's bracket mode (see :class:`SimVenue`).
        risk: a risk manager; default the one risk path's
            (:func:`engine.risk.build.build_risk`: an in-memory
            :class:`engine.risk.RiskManager` with the account profile's rules attached) on the
            parts' clock and calendar (``research`` mode as given; no state store). The venue
            liquidates at the MLL of the manager's ``account_rules`` (when it has them).
        wrap_risk: a proxy put between the kernel and the risk manager (the replay's timing
            proxy); the kernel gets ``wrap_risk(risk)``, ``SimParts.risk`` stays the manager.
    Raises :class:`engine.market.inputs.MarketInputError` for no bars and ``ValueError`` for an
    unknown fill model."""
    mk = market if market is not None else prepare_market(bars, settings, fill_model)
    spec = instrument_spec(settings.instrument.symbol)
    start_bal = float(settings.account.starting_capital)
    venue = SimVenue.for_bars(bars, settings, spec, mk.slip, fill_model, native_oco=native_oco)
    clock = SimClock(int(bars.ts[0]))
    cal = calendar_for(int(bars.ts[0]), int(bars.ts[-1]) + bars.bar_ns)
    if risk is None:
        from engine.risk.build import build_risk

        risk = build_risk(settings, clock, cal, spec, None, research=research)
    # the venue liquidates at the account's MLL (engine.risk.account_rules; None: no venue rules)
    venue.guard = getattr(risk, "account_rules", None)
    kernel = TradingKernel(settings, venue, wrap_risk(risk) if wrap_risk is not None else risk, spec,
                           bar_ns=bars.bar_ns, starting_balance=start_bal)
    return SimParts(clock, cal, spec, mk, venue, risk, kernel, start_bal)


__all__ = ["SimParts", "sim_parts"]
