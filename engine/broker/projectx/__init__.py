"""ProjectX Gateway (TopstepX) client: REST, SignalR hubs, enums, models, typed errors."""

from engine.broker.projectx.enums import (  # noqa: F401
    BarUnit, DomType, OrderSide, OrderStatus, OrderType, PositionType, TradeLogType,
    TERMINAL_STATUSES, WORKING_STATUSES,
)
from engine.broker.projectx.errors import (  # noqa: F401
    ApiError, AuthError, NotFoundError, OutcomeUnknown, ProjectXError, RateLimitedError,
    RejectedError, TransportError, UnauthorizedError,
)
