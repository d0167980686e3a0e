"""Fault switches of the fake gateway. Mutate the fields of ``gateway.faults`` from a test; each
counter is consumed one request/record at a time."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Faults:
    """Switchable faults (all off by default).

    REST:
        http_401: the next N authenticated REST calls answer HTTP 401 (empty body).
        http_429: the next N REST calls (not login) answer HTTP 429.
        http_500: the next N REST calls answer HTTP 500.
        retry_after_s: ``Retry-After`` header value on the injected 429s (None = no header).
        delay_s: endpoint (``"Order/place"``) → seconds to wait BEFORE processing.
        hold_s: endpoint → seconds to wait AFTER processing, before answering: the request took
            effect but a client with a shorter timeout cannot know (the ambiguous outcome).
        reject_next_place: the next ``Order/place`` is refused with errorCode 2 and this message.
        margin_max_contracts: an ``Order/place`` of more contracts than this is refused with
            errorCode 3 (InsufficientFunds), as when the account's margin does not cover it.
    Matching:
        partial_fills: an order of size ≥ 2 fills in two parts on consecutive price steps.
        bracket_race: when one bracket leg fills, its sibling fills too (both legs racing).
        position_brackets: the account is in Position-Brackets mode (bracket fields refused).
        spread_ticks: the quoted spread (ask − bid, ticks; default 1): a wide market for the
            spread breaker (issue 22). Fills at the touch follow it.
    Hubs:
        envelope: user-hub payloads wrapped as ``{"action": n, "data": {...}}``.
        malformed_next: the next N hub records are sent as broken JSON.
        hubs_down: hub names (``"user"``, ``"market"``) whose negotiate and connect requests are
            refused with HTTP 503 while listed: an outage that lasts until the test ends it.
    """

    http_401: int = 0
    http_429: int = 0
    http_500: int = 0
    retry_after_s: float | None = None
    delay_s: dict = field(default_factory=dict)
    hold_s: dict = field(default_factory=dict)
    reject_next_place: str | None = None
    margin_max_contracts: int | None = None
    partial_fills: bool = False
    bracket_race: bool = False
    position_brackets: bool = False
    spread_ticks: int = 1
    envelope: bool = False
    malformed_next: int = 0
    hubs_down: set = field(default_factory=set)
