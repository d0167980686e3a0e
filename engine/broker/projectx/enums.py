"""ProjectX wire enums (reference §4). Values are the integers on the wire."""

from __future__ import annotations

from enum import IntEnum


class OrderType(IntEnum):
    """Order type. 3 (StopLimit) appears in responses only and is refused on placement; a
    stop-market is 4 (a known bug elsewhere sends 3)."""
    UNKNOWN = 0
    LIMIT = 1
    MARKET = 2
    STOP_LIMIT = 3
    STOP = 4
    TRAILING_STOP = 5
    JOIN_BID = 6
    JOIN_ASK = 7


class OrderSide(IntEnum):
    """0 = Bid (buy), 1 = Ask (sell)."""
    BUY = 0
    SELL = 1


class OrderStatus(IntEnum):
    """0-6 documented; 7 PendingCancellation and 8 Suspended (bracket children before the
    parent fills) from the Swagger / live evidence."""
    NONE = 0
    OPEN = 1
    FILLED = 2
    CANCELLED = 3
    EXPIRED = 4
    REJECTED = 5
    PENDING = 6
    PENDING_CANCELLATION = 7
    SUSPENDED = 8


WORKING_STATUSES = frozenset({OrderStatus.OPEN, OrderStatus.PENDING,
                              OrderStatus.PENDING_CANCELLATION, OrderStatus.SUSPENDED})
TERMINAL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED,
                               OrderStatus.REJECTED})


class PositionType(IntEnum):
    """1 = Long, 2 = Short (0 on a close event). Size is always positive on the wire."""
    UNDEFINED = 0
    LONG = 1
    SHORT = 2


class TradeLogType(IntEnum):
    """Market tape aggressor side."""
    BUY = 0
    SELL = 1


class DomType(IntEnum):
    """Depth record type."""
    UNKNOWN = 0
    ASK = 1
    BID = 2
    BEST_ASK = 3
    BEST_BID = 4
    TRADE = 5
    RESET = 6
    LOW = 7
    HIGH = 8
    NEW_BEST_BID = 9
    NEW_BEST_ASK = 10
    FILL = 11


class BarUnit(IntEnum):
    """History/retrieveBars ``unit``."""
    SECOND = 1
    MINUTE = 2
    HOUR = 3
    DAY = 4
    WEEK = 5
    MONTH = 6
    TICK = 7
