"""Contract specifications, CME month codes, ProjectX contract ids, front month and roll dates.

Sources:
- CME Group contract specs: E-mini S&P 500 (ES) $50 × index, tick 0.25 = $12.50; Micro E-mini
  S&P 500 (MES) $5 × index, tick 0.25 = $1.25; E-mini Nasdaq-100 (NQ) $20 × index, tick 0.25 =
  $5.00; Micro E-mini Nasdaq-100 (MNQ) $2 × index, tick 0.25 = $0.50.
- Quarterly cycle H/M/U/Z; the contract expires (last trade) on the third Friday of the contract
  month at 09:30 New York. Volume rolls to the next quarter about eight days before expiry, on the
  Thursday of the week before (CME "roll date" convention); :func:`roll_date` uses that rule.
- ProjectX contract ids ``CON.F.US.<ROOT>.<M><YY>``; the ProjectX roots for ES and NQ are ``EP``
  and ``ENQ`` (``reference/projectx-api.md`` §5), the micros keep their CME roots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

MONTH_CODES: dict[int, str] = {
    1: "F", 2: "G", 3: "H", 4: "J", 5: "K", 6: "M",
    7: "N", 8: "Q", 9: "U", 10: "V", 11: "X", 12: "Z",
}
"""CME month codes, calendar month (1-12) → letter."""

CODE_MONTHS: dict[str, int] = {v: k for k, v in MONTH_CODES.items()}

QUARTERLY_MONTHS = (3, 6, 9, 12)


class InstrumentError(ValueError):
    """An unknown symbol or a malformed contract id."""


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """One futures product.

    Attributes:
        symbol: CME root (``MES``).
        px_root: ProjectX product root (``MES``; ``EP`` for ES, ``ENQ`` for NQ).
        tick_size: minimum price increment, index points.
        tick_value: dollars per contract per tick.
        point_value: dollars per contract per index point (= tick_value / tick_size).
        description: human name.
    """

    symbol: str
    px_root: str
    tick_size: float
    tick_value: float
    point_value: float
    description: str

    @property
    def ticks_per_point(self) -> int:
        return int(round(1.0 / self.tick_size))

    def price_to_ticks(self, points: float) -> float:
        """Index points → ticks (float; no rounding)."""
        return points / self.tick_size

    def ticks_to_dollars(self, ticks: float, contracts: int = 1) -> float:
        """Ticks × contracts → dollars."""
        return ticks * self.tick_value * contracts

    def round_price(self, price: float) -> float:
        """Round an index price to the nearest tick (half away from zero, exact in Decimal)."""
        q = Decimal(str(price)) / Decimal(str(self.tick_size))
        ticks = int(q.to_integral_value(rounding="ROUND_HALF_UP"))
        return float(Decimal(ticks) * Decimal(str(self.tick_size)))

    def px_symbol_id(self) -> str:
        """ProjectX ``symbolId`` (``F.US.MES``)."""
        return f"F.US.{self.px_root}"


SPECS: dict[str, InstrumentSpec] = {
    "MES": InstrumentSpec("MES", "MES", 0.25, 1.25, 5.0, "Micro E-mini S&P 500"),
    "ES": InstrumentSpec("ES", "EP", 0.25, 12.50, 50.0, "E-mini S&P 500"),
    "MNQ": InstrumentSpec("MNQ", "MNQ", 0.25, 0.50, 2.0, "Micro E-mini Nasdaq-100"),
    "NQ": InstrumentSpec("NQ", "ENQ", 0.25, 5.00, 20.0, "E-mini Nasdaq-100"),
}


def spec(symbol: str) -> InstrumentSpec:
    """Specification by CME root (case-insensitive). Raises :class:`InstrumentError`."""
    try:
        return SPECS[symbol.upper()]
    except KeyError:
        raise InstrumentError(f"unknown instrument {symbol!r}; known: {', '.join(SPECS)}") from None


@dataclass(frozen=True, slots=True)
class Contract:
    """One dated contract, e.g. MES December 2025 (``MESZ5`` at CME, ``CON.F.US.MES.Z25``)."""

    symbol: str
    year: int
    month: int

    @property
    def code(self) -> str:
        return MONTH_CODES[self.month]

    @property
    def cme_ticker(self) -> str:
        """CME Globex style ticker with a one-digit year (``MESZ5``)."""
        return f"{self.symbol}{self.code}{self.year % 10}"

    @property
    def px_contract_id(self) -> str:
        """ProjectX contract id (``CON.F.US.MES.Z25``; ``CON.F.US.EP.Z25`` for ES)."""
        return f"CON.F.US.{spec(self.symbol).px_root}.{self.code}{self.year % 100:02d}"

    @property
    def expiry(self) -> date:
        """Last trading day: third Friday of the contract month (CME equity index rule)."""
        return third_friday(self.year, self.month)

    @property
    def roll(self) -> date:
        """Roll date: the Thursday eight days before expiry."""
        return roll_date(self.year, self.month)

    def next(self) -> "Contract":
        """The following quarterly contract."""
        if self.month == 12:
            return Contract(self.symbol, self.year + 1, 3)
        return Contract(self.symbol, self.year, self.month + 3)


_PX_ID = re.compile(r"^CON\.F\.US\.([A-Z0-9]+)\.([FGHJKMNQUVXZ])(\d{2})$")
_CME = re.compile(r"^([A-Z]+?)([FGHJKMNQUVXZ])(\d{1,2})$")


def parse_px_contract_id(contract_id: str) -> Contract:
    """``CON.F.US.MES.Z25`` → ``Contract('MES', 2025, 12)``. Raises :class:`InstrumentError`."""
    m = _PX_ID.match(contract_id.strip())
    if not m:
        raise InstrumentError(
            f"malformed ProjectX contract id {contract_id!r}; expected CON.F.US.<ROOT>.<M><YY>"
        )
    root, code, yy = m.groups()
    by_px = {s.px_root: s.symbol for s in SPECS.values()}
    if root not in by_px:
        raise InstrumentError(f"unknown ProjectX root {root!r} in {contract_id!r}")
    return Contract(by_px[root], 2000 + int(yy), CODE_MONTHS[code])


def parse_cme_ticker(ticker: str, reference_year: int) -> Contract:
    """``ESZ5`` / ``MESZ25`` → Contract; a one-digit year is resolved to the decade nearest
    ``reference_year``. Raises :class:`InstrumentError`."""
    m = _CME.match(ticker.strip().upper())
    if not m or m.group(1) not in SPECS:
        raise InstrumentError(f"not a CME futures ticker of a known product: {ticker!r}")
    root, code, yy = m.groups()
    if len(yy) == 2:
        year = 2000 + int(yy)
    else:
        decade = reference_year - reference_year % 10
        candidates = [decade - 10 + int(yy), decade + int(yy), decade + 10 + int(yy)]
        year = min(candidates, key=lambda y: abs(y - reference_year))
    return Contract(root, year, CODE_MONTHS[code])


def third_friday(year: int, month: int) -> date:
    """Third Friday of a month."""
    first = date(year, month, 1)
    offset = (4 - first.weekday()) % 7  # Friday = 4
    return first + timedelta(days=offset + 14)


def roll_date(year: int, month: int) -> date:
    """Roll date of the quarterly contract expiring in (year, month): expiry − 8 days (a Thursday)."""
    return third_friday(year, month) - timedelta(days=8)


def front_month(symbol: str, on: date) -> Contract:
    """The contract a trader holds on ``on``: the nearest quarterly contract whose roll date is
    after ``on`` (on and after the roll date, the next quarter is the front month)."""
    spec(symbol)
    year, month = on.year, on.month
    q = next(m for m in QUARTERLY_MONTHS if m >= month) if month <= 12 else 3
    c = Contract(symbol.upper(), year, q)
    while on >= c.roll:
        c = c.next()
    return c


def roll_schedule(symbol: str, start: date, end: date) -> list[tuple[date, Contract]]:
    """``[(first_day, contract), ...]``: which contract is the front month from each date on,
    covering ``start`` … ``end`` inclusive."""
    out: list[tuple[date, Contract]] = []
    c = front_month(symbol, start)
    out.append((start, c))
    while True:
        nxt_day = c.roll
        if nxt_day > end:
            break
        c = c.next()
        out.append((nxt_day, c))
    return out
