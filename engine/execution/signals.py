"""Signal generation (R-EXE-2): from a strategy's (direction, confidence) to one trading signal.

Rules (numbers from :class:`engine.config.SignalConfig`):
- confidence below ``min_confidence`` (0.60) or direction 0 → HOLD;
- flat: LONG_ENTRY / SHORT_ENTRY, unless within ``exit_cooldown_s`` (60 s) of the last exit;
- in a position with the same direction → HOLD (never a duplicate entry);
- in a position with the opposite direction → REVERSE_TO_LONG / REVERSE_TO_SHORT when a reversal
  is allowed, else EXIT_LONG / EXIT_SHORT. A reversal is allowed when the last one is at least
  ``reversal_cooldown_s`` (30 s) ago and fewer than ``max_reversals_per_range`` (2) reversals
  happened within one bar range (the last ``bar_ns`` nanoseconds: the span of one bar).
- FLATTEN is never produced here: EOD and the risk manager order it through the kernel.
All times are the engine clock's UTC ns.
"""

from __future__ import annotations

from enum import Enum

from engine.clock import NS  # nanoseconds per second: one definition


class Signal(str, Enum):
    LONG_ENTRY = "long_entry"
    SHORT_ENTRY = "short_entry"
    EXIT_LONG = "exit_long"
    EXIT_SHORT = "exit_short"
    REVERSE_TO_LONG = "reverse_to_long"
    REVERSE_TO_SHORT = "reverse_to_short"
    FLATTEN = "flatten"
    HOLD = "hold"


(LONG_ENTRY, SHORT_ENTRY, EXIT_LONG, EXIT_SHORT, REVERSE_TO_LONG, REVERSE_TO_SHORT, FLATTEN,
 HOLD) = Signal
# module-level names: ``Signal.X`` is an Enum class-attribute lookup (~75 ns on CPython 3.11)
ENTRIES = frozenset({LONG_ENTRY, SHORT_ENTRY})
EXITS = frozenset({EXIT_LONG, EXIT_SHORT})
REVERSALS = frozenset({REVERSE_TO_LONG, REVERSE_TO_SHORT})


class SignalGenerator:
    """Position-aware signal state machine. ``bar_ns`` is the bar length (the reversal range)."""

    def __init__(self, cfg, bar_ns: int) -> None:
        self.min_conf = float(cfg.min_confidence)
        self.exit_cooldown_ns = int(cfg.exit_cooldown_s * NS)
        self.rev_cooldown_ns = int(cfg.reversal_cooldown_s * NS)
        self.max_rev = int(cfg.max_reversals_per_range)
        self.range_ns = max(int(bar_ns), 1)
        self.last_exit_ns: int | None = None
        self.reversals: list[int] = []

    def decide(self, direction: int, confidence: float, position: int, now_ns: int) -> Signal:
        """Signal for a strategy output. ``direction`` ∈ {-1, 0, 1}; ``position`` signed
        contracts. Pure: state changes only through :meth:`on_exit` / :meth:`on_reversal`."""
        if direction == 0 or not (confidence >= self.min_conf):
            return HOLD
        if position == 0:
            if self.last_exit_ns is not None and now_ns - self.last_exit_ns < self.exit_cooldown_ns:
                return HOLD
            return LONG_ENTRY if direction > 0 else SHORT_ENTRY
        if (position > 0) == (direction > 0):
            return HOLD
        if self.reversal_allowed(now_ns):
            return REVERSE_TO_LONG if direction > 0 else REVERSE_TO_SHORT
        return EXIT_SHORT if position < 0 else EXIT_LONG

    def actionable(self, direction, confidence):
        """The confidence gate of :meth:`decide` over whole arrays: ``direction != 0`` and
        ``confidence >= min_confidence`` (a NaN confidence fails). ``direction`` int8 (n,),
        ``confidence`` float64 (n,) → bool (n,); scalars give a bool."""
        return (direction != 0) & (confidence >= self.min_conf)

    def next_entry_ns(self) -> int | None:
        """UTC ns from which :meth:`decide` may give an entry again (the exit cooldown's end);
        None when no exit happened yet."""
        return None if self.last_exit_ns is None else self.last_exit_ns + self.exit_cooldown_ns

    def can_enter(self, now_ns: int) -> bool:
        """False while the exit cooldown runs."""
        return self.last_exit_ns is None or now_ns - self.last_exit_ns >= self.exit_cooldown_ns

    def reversal_allowed(self, now_ns: int) -> bool:
        recent = [t for t in self.reversals if now_ns - t < self.range_ns]
        if len(recent) >= self.max_rev:
            return False
        return not self.reversals or now_ns - self.reversals[-1] >= self.rev_cooldown_ns

    def on_exit(self, ts_ns: int) -> None:
        """A position was closed at ``ts_ns`` (starts the exit cooldown)."""
        self.last_exit_ns = int(ts_ns)

    def on_reversal(self, ts_ns: int) -> None:
        self.reversals.append(int(ts_ns))
        self.reversals = self.reversals[-8:]
