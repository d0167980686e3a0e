"""Typed views of ProjectX JSON entities (reference §3.2) and timestamp helpers.

Every model keeps the original dict in ``raw``. Times are int UTC nanoseconds; prices are index
points (float); IDs are parsed defensively (a stream may deliver ``"123"`` or ``123.0``).
Parsing a malformed entity raises ``ValueError`` naming the entity and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from engine.broker.base import HistoryBar
from engine.clock import from_datetime, to_datetime

_FRACTION = re.compile(r"\.(\d+)")


def parse_ts(value: Any) -> int | None:
    """ISO-8601 text → UTC ns. Accepts ``Z``, ``+00:00``, no zone (taken as UTC, seen in the
    wild) and 1-9 fractional digits. ``None``/empty → None. Raises ``ValueError`` otherwise."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"timestamp {value!r}: expected ISO-8601 text")
    s = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    extra_ns = 0
    m = _FRACTION.search(s)
    if m:
        digits = m.group(1)
        padded = (digits + "000000000")[:9]
        extra_ns = int(padded[6:])
        s = s[: m.start()] + "." + padded[:6] + s[m.end():]
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return from_datetime(dt) + extra_ns


def format_ts(ts_ns: int) -> str:
    """UTC ns → ISO-8601 with ``+00:00`` and microseconds (the gateway's format)."""
    return to_datetime(int(ts_ns)).isoformat(timespec="microseconds")


def parse_id(value: Any, what: str = "id") -> int:
    """A numeric ID that may arrive as int, numeric string or near-integer float."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{what} {value!r}: expected an integer id")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if abs(value - round(value)) > 1e-6:
            raise ValueError(f"{what} {value!r}: not an integer")
        return int(round(value))
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ValueError(f"{what} {value!r}: expected an integer id")


def _opt_id(d: dict, key: str, what: str) -> int | None:
    v = d.get(key)
    return None if v is None else parse_id(v, f"{what}.{key}")


def _opt_f(d: dict, key: str) -> float | None:
    v = d.get(key)
    return None if v is None else float(v)


def _need(d: dict, key: str, what: str) -> Any:
    if key not in d:
        raise ValueError(f"{what}: field {key!r} missing in {sorted(d)}")
    return d[key]


@dataclass(frozen=True)
class Account:
    """A trading account. ``balance`` in dollars."""
    id: int
    name: str
    balance: float
    can_trade: bool
    is_visible: bool
    simulated: bool | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, d: dict) -> "Account":
        return cls(parse_id(_need(d, "id", "Account"), "Account.id"), str(d.get("name", "")),
                   float(d.get("balance") or 0.0), bool(d.get("canTrade", False)),
                   bool(d.get("isVisible", True)), d.get("simulated"), dict(d))


@dataclass(frozen=True)
class Contract:
    """A contract (``CON.F.US.MES.Z25``). ``tick_size`` points, ``tick_value`` dollars."""
    id: str
    name: str
    description: str
    tick_size: float
    tick_value: float
    active: bool
    symbol_id: str | None
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, d: dict) -> "Contract":
        return cls(str(_need(d, "id", "Contract")), str(d.get("name", "")), str(d.get("description", "")),
                   float(_need(d, "tickSize", "Contract")), float(_need(d, "tickValue", "Contract")),
                   bool(d.get("activeContract", False)), d.get("symbolId"), dict(d))


@dataclass(frozen=True)
class Order:
    """An order as REST or the user hub reports it (statuses per :class:`OrderStatus`)."""
    id: int
    account_id: int
    contract_id: str
    status: int
    type: int
    side: int
    size: int
    limit_price: float | None
    stop_price: float | None
    fill_volume: int
    filled_price: float | None
    custom_tag: str | None
    creation_ns: int | None
    update_ns: int | None
    parent_order_id: int | None = None
    linked_order_id: int | None = None
    trail_distance: float | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, d: dict) -> "Order":
        return cls(parse_id(_need(d, "id", "Order"), "Order.id"),
                   parse_id(_need(d, "accountId", "Order"), "Order.accountId"),
                   str(_need(d, "contractId", "Order")), int(_need(d, "status", "Order")),
                   int(_need(d, "type", "Order")), int(_need(d, "side", "Order")),
                   int(_need(d, "size", "Order")), _opt_f(d, "limitPrice"), _opt_f(d, "stopPrice"),
                   int(d.get("fillVolume") or 0), _opt_f(d, "filledPrice"), d.get("customTag"),
                   parse_ts(d.get("creationTimestamp")), parse_ts(d.get("updateTimestamp")),
                   _opt_id(d, "parentOrderId", "Order"), _opt_id(d, "linkedOrderId", "Order"),
                   _opt_f(d, "trailDistance"), dict(d))


@dataclass(frozen=True)
class Position:
    """One net position row. ``type`` 1 long / 2 short, ``size`` > 0 (0 on a close event);
    ``signed_size`` is +size long, −size short."""
    id: int
    account_id: int
    contract_id: str
    type: int
    size: int
    average_price: float
    creation_ns: int | None
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def signed_size(self) -> int:
        return self.size if self.type == 1 else (-self.size if self.type == 2 else 0)

    @classmethod
    def from_json(cls, d: dict) -> "Position":
        return cls(parse_id(d.get("id", 0), "Position.id"),
                   parse_id(_need(d, "accountId", "Position"), "Position.accountId"),
                   str(_need(d, "contractId", "Position")), int(_need(d, "type", "Position")),
                   int(_need(d, "size", "Position")), float(d.get("averagePrice") or 0.0),
                   parse_ts(d.get("creationTimestamp")), dict(d))


@dataclass(frozen=True)
class Trade:
    """A fill. ``profit_and_loss`` None on an opening half-turn; ``fees`` dollars."""
    id: int
    account_id: int
    contract_id: str
    order_id: int
    price: float
    side: int
    size: int
    profit_and_loss: float | None
    fees: float
    voided: bool
    creation_ns: int | None
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, d: dict) -> "Trade":
        return cls(parse_id(_need(d, "id", "Trade"), "Trade.id"),
                   parse_id(_need(d, "accountId", "Trade"), "Trade.accountId"),
                   str(_need(d, "contractId", "Trade")),
                   parse_id(_need(d, "orderId", "Trade"), "Trade.orderId"),
                   float(_need(d, "price", "Trade")), int(_need(d, "side", "Trade")),
                   int(_need(d, "size", "Trade")), _opt_f(d, "profitAndLoss"),
                   float(d.get("fees") or 0.0), bool(d.get("voided", False)),
                   parse_ts(d.get("creationTimestamp")), dict(d))


class Bar:
    """``History/retrieveBars`` rows (``{t, o, h, l, c, v}``) → the engine's
    :class:`engine.broker.base.HistoryBar` (``ts_ns`` bar open time UTC ns, OHLC points, volume
    contracts; ``v`` missing → 0)."""

    @staticmethod
    def from_json(d: dict) -> HistoryBar:
        ts = parse_ts(_need(d, "t", "Bar"))
        if ts is None:
            raise ValueError("Bar: field 't' is empty")
        return HistoryBar(ts, float(d["o"]), float(d["h"]), float(d["l"]),
                          float(d["c"]), float(d.get("v") or 0.0))


@dataclass(frozen=True)
class Bracket:
    """A native bracket leg for ``Order/place``: signed ``ticks`` from the fill price (long: stop
    < 0, target > 0; short: the reverse) and the leg's order ``type`` (stop 4, target 1)."""
    ticks: int
    type: int

    def to_json(self) -> dict:
        return {"ticks": int(self.ticks), "type": int(self.type)}
