"""Risk manager: limits, sizing, stops, EOD phases, breakers, trading states, persistence.

Public API (stable; documented in ``specs/risk.md``)::

    TradingState, RiskDecision, RiskSnapshot, RiskManager, RiskActionError
    RiskStateStore, AccountLock, AuditLog, RiskStateError, AccountLockError
    compute_bracket, update_trailing (pure, in engine.risk.stops), size_position (engine.risk.sizing)
"""

from engine.risk.manager import (
    RESET_WORD,
    RiskActionError,
    RiskDecision,
    RiskManager,
    RiskSnapshot,
    TradingState,
)
from engine.risk.sizing import SizeResult, SizingError, confidence_multiplier, size_position, tier_for
from engine.risk.stops import StopError, compute_bracket, update_trailing
from engine.risk.store import AccountLock, AccountLockError, AuditLog, RiskStateError, RiskStateStore

__all__ = [
    "RESET_WORD", "RiskActionError", "RiskDecision", "RiskManager", "RiskSnapshot", "TradingState",
    "SizeResult", "SizingError", "confidence_multiplier", "size_position", "tier_for",
    "StopError", "compute_bracket", "update_trailing",
    "AccountLock", "AccountLockError", "AuditLog", "RiskStateError", "RiskStateStore",
]
