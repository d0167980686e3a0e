"""Typed views of ProjectX JSON entities (reference §3.2) and timestamp helpers.

Every model keeps the original dict in ``raw``. Times are int UTC nanoseconds; prices are index
points (float); IDs are parsed defensively (a stream may deliver ``"123"`` or ``123.0``).
Parsing a malformed entity raises ``ValueError`` naming the entity and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Callable, Self

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


def _need(d: dict, key: str, what: str) -> Any:
    if key not in d:
        raise ValueError(f"{what}: field {key!r} missing in {sorted(d)}")
    return d[key]


# Field parsers ``(value, "Entity.key") → typed value`` for :func:`_wire`.
def _id(v: Any, what: str) -> int:
    return parse_id(v, what)


def _opt_id(v: Any, what: str) -> int | None:
    return None if v is None else parse_id(v, what)


def _opt_f(v: Any, what: str) -> float | None:
    return None if v is None else float(v)


def _f0(v: Any, what: str) -> float:
    return float(v or 0.0)   # null or missing → 0.0


def _i0(v: Any, what: str) -> int:
    return int(v or 0)       # null or missing → 0


def _ts(v: Any, what: str) -> int | None:
    return parse_ts(v)


def _as_is(v: Any, what: str) -> Any:
    return v


def _to(conv: Callable[[Any], Any]) -> Callable[[Any, str], Any]:
    return lambda v, what: conv(v)


_REQUIRED = object()


def _wire(key: str, parse: Callable[[Any, str], Any], absent: Any = _REQUIRED, **kw: Any) -> Any:
    """A model field read from the JSON ``key`` through ``parse(value, "Entity.key")``; a key
    not in the entity → ``absent`` (parsed too), or ``ValueError`` naming entity and key when
    the field is required (``absent`` not given). ``kw`` go to :func:`dataclasses.field`."""
    return field(metadata={"wire": (key, parse, absent)}, **kw)


@dataclass(frozen=True)
class _Entity:
    """A ProjectX JSON entity: the original dict in ``raw``; :meth:`from_json` fills every
    other field from its :func:`_wire` spec (the wire key and parser), in declaration order
    (the first bad field raises)."""
    raw: dict = field(default_factory=dict, compare=False, repr=False, kw_only=True)

    @classmethod
    def from_json(cls, d: dict) -> Self:
        """Parse one entity dict. Raises ``ValueError`` naming the entity and field."""
        what = cls.__name__
        values = {}
        for f in fields(cls):
            if "wire" in f.metadata:
                key, parse, absent = f.metadata["wire"]
                v = _need(d, key, what) if absent is _REQUIRED else d.get(key, absent)
                values[f.name] = parse(v, f"{what}.{key}")
        return cls(**values, raw=dict(d))


@dataclass(frozen=True)
class Account(_Entity):
    """A trading account. ``balance`` in dollars."""
    id: int = _wire("id", _id)
    name: str = _wire("name", _to(str), "")
    balance: float = _wire("balance", _f0, None)
    can_trade: bool = _wire("canTrade", _to(bool), False)
    is_visible: bool = _wire("isVisible", _to(bool), True)
    simulated: bool | None = _wire("simulated", _as_is, None, default=None)


@dataclass(frozen=True)
class Contract(_Entity):
    """A contract (``CON.F.US.MES.Z25``). ``tick_size`` points, ``tick_value`` dollars."""
    id: str = _wire("id", _to(str))
    name: str = _wire("name", _to(str), "")
    description: str = _wire("description", _to(str), "")
    tick_size: float = _wire("tickSize", _to(float))
    tick_value: float = _wire("tickValue", _to(float))
    active: bool = _wire("activeContract", _to(bool), False)
    symbol_id: str | None = _wire("symbolId", _as_is, None)


@dataclass(frozen=True)
class Order(_Entity):
    """An order as REST or the user hub reports it (statuses per :class:`OrderStatus`)."""
    id: int = _wire("id", _id)
    account_id: int = _wire("accountId", _id)
    contract_id: str = _wire("contractId", _to(str))
    status: int = _wire("status", _to(int))
    type: int = _wire("type", _to(int))
    side: int = _wire("side", _to(int))
    size: int = _wire("size", _to(int))
    limit_price: float | None = _wire("limitPrice", _opt_f, None)
    stop_price: float | None = _wire("stopPrice", _opt_f, None)
    fill_volume: int = _wire("fillVolume", _i0, None)
    filled_price: float | None = _wire("filledPrice", _opt_f, None)
    custom_tag: str | None = _wire("customTag", _as_is, None)
    creation_ns: int | None = _wire("creationTimestamp", _ts, None)
    update_ns: int | None = _wire("updateTimestamp", _ts, None)
    parent_order_id: int | None = _wire("parentOrderId", _opt_id, None, default=None)
    linked_order_id: int | None = _wire("linkedOrderId", _opt_id, None, default=None)
    trail_distance: float | None = _wire("trailDistance", _opt_f, None, default=None)


@dataclass(frozen=True)
class Position(_Entity):
    """One net position row. ``type`` 1 long / 2 short, ``size`` > 0 (0 on a close event);
    ``signed_size`` is +size long, −size short."""
    id: int = _wire("id", _id, 0)
    account_id: int = _wire("accountId", _id)
    contract_id: str = _wire("contractId", _to(str))
    type: int = _wire("type", _to(int))
    size: int = _wire("size", _to(int))
    average_price: float = _wire("averagePrice", _f0, None)
    creation_ns: int | None = _wire("creationTimestamp", _ts, None)

    @property
    def signed_size(self) -> int:
        return self.size if self.type == 1 else (-self.size if self.type == 2 else 0)


@dataclass(frozen=True)
class Trade(_Entity):
    """A fill. ``profit_and_loss`` None on an opening half-turn; ``fees`` dollars."""
    id: int = _wire("id", _id)
    account_id: int = _wire("accountId", _id)
    contract_id: str = _wire("contractId", _to(str))
    order_id: int = _wire("orderId", _id)
    price: float = _wire("price", _to(float))
    side: int = _wire("side", _to(int))
    size: int = _wire("size", _to(int))
    profit_and_loss: float | None = _wire("profitAndLoss", _opt_f, None)
    fees: float = _wire("fees", _f0, None)
    voided: bool = _wire("voided", _to(bool), False)
    creation_ns: int | None = _wire("creationTimestamp", _ts, None)


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
