"""State and matching engine of the fake gateway (reference §9.1 "fill engine", §6, §9.2 script).

Market: each historical bar is expanded into four price steps O → (L, H or H, L) → C (down-bar
first high, up-bar first low), each on the 0.25 tick grid; after a step, ``last`` is the step
price, ``bid = last``, ``ask = last + tick`` (``faults.spread_ticks`` ticks above). :meth:`FakeExchange.step` advances one step (the
server's replay task calls it at ``speed``; tests call it by hand).

Fills (all prices in index points):
- Market: buy at ask + ``slippage_ticks``, sell at bid − ``slippage_ticks``, at once when a price
  exists, else on the first step.
- Limit: marketable on arrival → at the touch; else fills at the limit when ``last`` trades
  THROUGH it (buy: last < limit; sell: last > limit).
- Stop (4): triggers when last ≥ stop (buy) / ≤ stop (sell), fills like a market order.
- JoinBid/JoinAsk: a limit at the bid / ask of the moment.
- Native brackets (Auto-OCO): children are created Suspended (8) with the parent; when the parent
  is completely filled they become Open (1) at fill ± ticks × tick; when one leg fills the sibling
  is cancelled (3), unless ``faults.bracket_race`` (then both fill).
- Position: one net row per contract; realized P&L of a reducing fill = (exit − avg) / tick ×
  tick value × qty, sign by side; ``fee_per_contract`` per contract per fill. The account balance
  moves by P&L − fees.

Order, trade and position timestamps come from the injected clock (a real gateway stamps real
time); market events carry the replayed bar time. Events go out through ``emit(hub, target,
args, key)`` supplied by the server.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from engine.broker.base import price_problem
from engine.broker.fake.faults import Faults
from engine.broker.projectx.models import format_ts
from engine.clock import Clock
from engine.instruments import front_month

log = logging.getLogger("engine.broker.fake.exchange")

NS_MIN = 60_000_000_000
Emit = Callable[[str, str, list, Any], None]


def load_bars_frame(path: str | Path, start: str | None = None, max_rows: int | None = None):
    """Read a bar parquet (``ts_event`` UTC bar open time, open/high/low/close/volume) → a pandas
    DataFrame sorted by time, optionally from ``start`` (ISO) and truncated to ``max_rows``.
    Raises ``FileNotFoundError`` / ``ValueError`` naming the file and the missing column."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"fake gateway data file not found: {p}")
    df = pd.read_parquet(p)
    for col in ("ts_event", "open", "high", "low", "close"):
        if col not in df.columns:
            raise ValueError(f"{p}: column {col!r} missing (have {list(df.columns)})")
    df = df.sort_values("ts_event").reset_index(drop=True)
    if start:
        df = df[df["ts_event"] >= pd.Timestamp(start, tz="UTC")].reset_index(drop=True)
    if max_rows is not None:
        df = df.iloc[:max_rows].reset_index(drop=True)
    if len(df) == 0:
        raise ValueError(f"{p}: no bars left after start={start!r}")
    return df


@dataclass
class Market:
    """The replayed market: steps, current index, running session stats."""
    ts: np.ndarray        # int64 ns, bar open times
    o: np.ndarray
    h: np.ndarray
    lo: np.ndarray
    c: np.ndarray
    v: np.ndarray
    tick: float = 0.25
    i: int = -1           # global step index (bar = i // 4)
    last: float | None = None
    sess_open: float | None = None
    sess_high: float = -np.inf
    sess_low: float = np.inf
    volume: float = 0.0

    @property
    def n_steps(self) -> int:
        return 4 * len(self.ts)

    def path(self, k: int) -> float:
        b, s = divmod(k, 4)
        up = self.c[b] >= self.o[b]
        seq = (self.o[b], self.lo[b], self.h[b], self.c[b]) if up else (self.o[b], self.h[b], self.lo[b], self.c[b])
        return round(float(seq[s]) / self.tick) * self.tick

    def step_ts(self, k: int) -> int:
        b, s = divmod(k, 4)
        return int(self.ts[b]) + s * (NS_MIN // 4)

    def price(self) -> float:
        """The last price, points; ValueError before the first step."""
        if self.last is None:
            raise ValueError("fake market: no price before the first step")
        return self.last

    @property
    def bid(self) -> float | None:
        return self.last

    spread_ticks: int = 1

    @property
    def ask(self) -> float | None:
        return None if self.last is None else self.last + self.spread_ticks * self.tick


class FakeExchange:
    """Accounts, contracts, orders, positions, trades and the replayed market of the fake.

    Args:
        bars: DataFrame from :func:`load_bars_frame`.
        clock: clock for entity timestamps.
        faults: shared :class:`Faults`.
        balance: starting balance of the account, dollars.
        slippage_ticks: market/stop fill slippage, ticks.
        fee_per_contract: dollars per contract per fill (§0: 0.20 + 0.22).
        account_id, account_name: the one practice account.
        max_contracts: the account's size limit (contracts per order and net position; a
            TopstepX 50K account: 5 minis = 50 micros); beyond it ``Order/place`` is refused.
        history: bars BEFORE the replay start (same columns as ``bars``): served by
            ``History/retrieveBars`` like the real gateway's history, together with every bar
            already replayed (never a bar after the replay's current time).
    """

    def __init__(self, bars, clock: Clock, faults: Faults, *, balance: float = 50_000.0,
                 slippage_ticks: int = 1, fee_per_contract: float = 0.42,
                 account_id: int = 1001, account_name: str = "PRAC-V2-FAKE-1",
                 max_contracts: int = 50, history=None) -> None:
        self.clock = clock
        self.max_contracts = int(max_contracts)
        self.faults = faults
        ts = bars["ts_event"].astype("datetime64[ns, UTC]").astype("int64").to_numpy()
        vol = bars["volume"].to_numpy(dtype=float) if "volume" in bars.columns else np.full(len(ts), np.nan)
        self.market = Market(ts, bars["open"].to_numpy(float), bars["high"].to_numpy(float),
                             bars["low"].to_numpy(float), bars["close"].to_numpy(float), vol)
        self.history: tuple[np.ndarray, ...] | None = None
        if history is not None and len(history):
            hts = history["ts_event"].astype("datetime64[ns, UTC]").astype("int64").to_numpy()
            keep = hts < ts[0]
            hv = (history["volume"].to_numpy(dtype=float) if "volume" in history.columns
                  else np.full(len(hts), np.nan))
            self.history = (hts[keep], history["open"].to_numpy(float)[keep], history["high"].to_numpy(float)[keep],
                            history["low"].to_numpy(float)[keep], history["close"].to_numpy(float)[keep], hv[keep])
        from datetime import datetime, timezone
        first_day = datetime.fromtimestamp(int(ts[0]) / 1e9, tz=timezone.utc).date()
        fm = front_month("MES", first_day)
        nxt = fm.next()
        self.contract_id = fm.px_contract_id
        months = ["", "January", "February", "March", "April", "May", "June", "July", "August",
                  "September", "October", "November", "December"]

        def mes(c, active):
            return {"id": c.px_contract_id, "name": c.cme_ticker, "description":
                    f"Micro E-mini S&P 500: {months[c.month]} {c.year}", "tickSize": 0.25,
                    "tickValue": 1.25, "activeContract": active, "symbolId": "F.US.MES"}
        ep = {"id": fm.px_contract_id.replace(".MES.", ".EP."), "name": "ES" + fm.code + str(fm.year % 10),
              "description": "E-mini S&P 500", "tickSize": 0.25, "tickValue": 12.5,
              "activeContract": True, "symbolId": "F.US.EP"}
        lookalike = {"id": "CON.F.US.MESX.Z25", "name": "MESX", "description": "look-alike root",
                     "tickSize": 0.25, "tickValue": 1.25, "activeContract": True, "symbolId": "F.US.MESX"}
        self.contracts = [mes(fm, True), mes(nxt, False), ep, lookalike]
        self._mes = mes
        self._extra = [ep, lookalike]
        self._rolled_from: list[str] = []
        self._front = fm
        self._roll_hour = -1
        self.account: dict[str, Any] = {"id": account_id, "name": account_name, "balance": float(balance),
                        "canTrade": True, "isVisible": True, "simulated": True}
        self.slippage_ticks = int(slippage_ticks)
        self.fee_per_contract = float(fee_per_contract)
        self.orders: dict[Any, dict] = {}      # keyed by int ids; looked up by raw JSON values
        self.trades: list[dict] = []
        self.position: dict[Any, dict] = {}   # contractId → {size signed, avg, id, created}
        self._next_order = 9_000_001
        self._next_trade = 5_000_001
        self._next_pos = 7_001
        self._pending_partial: dict[int, int] = {}   # order id → qty left for the next step
        self.emit: Emit = lambda hub, target, args, key: None
        self.order_books = 0

    # ---------------------------------------------------------------- helpers
    def now_iso(self) -> str:
        return format_ts(self.clock.now_ns())

    def contract(self, cid: Any) -> dict | None:
        """The contract with id ``cid`` (a raw JSON value: anything else than a known id → None)."""
        return next((c for c in self.contracts if c["id"] == cid), None)

    def _known(self, cid: Any) -> dict:
        """The contract of an order already accepted (its id was validated by :meth:`place`)."""
        c = self.contract(cid)
        if c is None:
            raise KeyError(f"fake gateway: contract {cid!r} of an accepted order is unknown")
        return c

    def _emit_user(self, target: str, payload: dict, action: int) -> None:
        self.emit("user", target, [payload], {"account": self.account["id"], "action": action,
                                              "kind": target})

    def _emit_order(self, o: dict, action: int = 1) -> None:
        self._emit_user("GatewayUserOrder", self.public(o), action)

    # ---------------------------------------------------------------- market
    def step(self) -> bool:
        """Advance the market one price step; emit quote/trade/depth; match. False at the end."""
        m = self.market
        if m.i + 1 >= m.n_steps:
            return False
        m.i += 1
        m.spread_ticks = max(1, int(self.faults.spread_ticks))
        self._roll(m.step_ts(m.i))
        prev = m.last
        m.last = m.path(m.i)
        if m.sess_open is None:
            m.sess_open = m.last
        m.sess_high = max(m.sess_high, m.last)
        m.sess_low = min(m.sess_low, m.last)
        vol = m.v[m.i // 4]
        step_vol = 1.0 if not np.isfinite(vol) else max(1.0, float(vol) / 4.0)
        m.volume += step_vol
        ts = format_ts(m.step_ts(m.i))
        for cid in [self.contract_id] + self._rolled_from:   # the expiring contract trades on
            self._publish(cid, ts, prev)
        self._match()
        return True

    def _publish(self, cid: str, ts: str, prev: float | None) -> None:
        m = self.market
        last = m.price()
        so = last if m.sess_open is None else m.sess_open
        step_vol = 1.0 if not np.isfinite(m.v[m.i // 4]) else max(1.0, float(m.v[m.i // 4]) / 4.0)
        quote = {"symbol": "F.US.MES", "symbolName": "/MES", "lastPrice": last, "bestBid": m.bid,
                 "bestAsk": m.ask, "change": last - so,
                 "changePercent": (last - so) / so * 100.0,
                 "open": m.sess_open, "high": m.sess_high, "low": m.sess_low, "volume": m.volume,
                 "lastUpdated": ts, "timestamp": ts}
        self.emit("market", "GatewayQuote", [cid, quote], {"contract": cid, "kind": "quotes"})
        aggressor = 0 if prev is None or last >= prev else 1
        self.emit("market", "GatewayTrade", [cid, [{"symbolId": "F.US.MES", "price": m.last,
                                                    "timestamp": ts, "type": aggressor,
                                                    "volume": step_vol}]],
                  {"contract": cid, "kind": "trades"})
        self.emit("market", "GatewayDepth", [cid, self.depth_update(ts)], {"contract": cid, "kind": "depth"})

    def adjust_balance(self, delta: float) -> None:
        """Change the balance outside any order (a manual trade on another platform, a fee, a
        deposit) and send ``GatewayUserAccount``, as the real gateway does."""
        self.account["balance"] = round(self.account["balance"] + float(delta), 2)
        self._emit_user("GatewayUserAccount", dict(self.account), 1)

    def _roll(self, ts_ns: int) -> None:
        """The roll calendar (:func:`engine.instruments.front_month` of the CME trading day:
        from 18:00 New York the next day): from the roll date the next quarter is the active
        contract (``Contract/search``) and the market data is published under its id (and
        still under the expiring one's, which trades until expiry), once the position in the
        old one is flat (a replay spanning a roll switches as the real gateway's active
        contract does)."""
        hour = ts_ns // 3_600_000_000_000
        if hour == self._roll_hour:
            return
        self._roll_hour = hour
        from datetime import datetime, timedelta
        from zoneinfo import ZoneInfo

        t = datetime.fromtimestamp(ts_ns / 1e9, tz=ZoneInfo("America/New_York"))
        day = (t + timedelta(days=1)).date() if t.hour >= 18 else t.date()
        fm = front_month("MES", day)
        if fm == self._front or self.position.get(self.contract_id, {}).get("size", 0) != 0:
            return
        log.info("fake gateway: roll from %s to %s on %s", self.contract_id, fm.px_contract_id, day)
        old, self._front = self._front, fm
        self._rolled_from.append(self.contract_id)
        self.contract_id = fm.px_contract_id
        self.contracts = [self._mes(fm, True), self._mes(fm.next(), False), self._mes(old, False)] + self._extra

    def depth_snapshot(self) -> list:
        """Reset + 10 levels a side (+ null padding), reference §9.2."""
        m = self.market
        ts = format_ts(m.step_ts(max(m.i, 0)))
        rows: list = [{"timestamp": ts, "type": 6, "price": 0, "volume": 0, "currentVolume": 0}]
        if m.last is not None:
            bid, ask = m.last, m.last + m.spread_ticks * m.tick
            for k in range(10):
                size = 10 + (k * 7) % 23
                rows.append({"timestamp": ts, "type": 2, "price": bid - k * m.tick, "volume": size, "currentVolume": size})
                rows.append({"timestamp": ts, "type": 1, "price": ask + k * m.tick, "volume": size, "currentVolume": size})
        rows.append(None)
        return rows

    def depth_update(self, ts: str) -> list:
        m = self.market
        size = 10 + (m.i * 5) % 17
        return [{"timestamp": ts, "type": 4, "price": m.bid, "volume": size, "currentVolume": size},
                {"timestamp": ts, "type": 3, "price": m.ask, "volume": size + 1, "currentVolume": size + 1}]

    def bars_json(self, start_ns: int, end_ns: int, period_ns: int, limit: int, partial: bool) -> list[dict]:
        """Bars of ``period_ns`` aggregated from the minute bars already replayed (no future
        bars), ``[start, end]``, newest first, at most ``limit``."""
        m = self.market
        done = (m.i + 1) // 4 if m.i >= 0 else 0     # complete minute bars
        upto = done + (1 if partial and m.i % 4 != 3 and m.i >= 0 else 0)
        cols: tuple[np.ndarray, ...] = (m.ts[:upto], m.o[:upto], m.h[:upto], m.lo[:upto], m.c[:upto], m.v[:upto])
        if self.history is not None:   # the bars before the replay start, then the replayed ones
            cols = tuple(np.concatenate([hc, rc]) for hc, rc in zip(self.history, cols))
        ts, o_, h_, l_, c_, v_ = cols
        sel = np.nonzero((ts >= start_ns) & (ts <= end_ns))[0]
        out: dict[int, dict] = {}
        for j in sel:
            key = int(ts[j]) // period_ns * period_ns
            v = 0.0 if not np.isfinite(v_[j]) else float(v_[j])
            b = out.get(key)
            if b is None:
                out[key] = {"t": format_ts(key), "o": float(o_[j]), "h": float(h_[j]),
                            "l": float(l_[j]), "c": float(c_[j]), "v": v}
            else:
                b["h"] = max(b["h"], float(h_[j])); b["l"] = min(b["l"], float(l_[j]))
                b["c"] = float(c_[j]); b["v"] += v
        rows = [out[k] for k in sorted(out, reverse=True)]
        return rows[:limit]

    # ---------------------------------------------------------------- orders
    def place(self, p: dict) -> tuple[int, str | None, int | None]:
        """Validate and create an order (+ Suspended bracket children). Returns
        ``(errorCode, errorMessage, orderId)``; errorCode 0 on success."""
        f = self.faults
        acct = p.get("accountId")
        if acct != self.account["id"]:
            return 1, f"Account {acct} not found", None
        c = self.contract(p.get("contractId"))
        if c is None:
            return 8, f"Contract {p.get('contractId')!r} not found", None
        if not c["activeContract"]:
            return 9, "Contract is not active", None
        if not self.account["canTrade"]:
            return 10, "Account cannot trade", None
        if f.reject_next_place:
            msg, f.reject_next_place = f.reject_next_place, None
            return 2, msg, None
        typ, side, size = p.get("type"), p.get("side"), p.get("size")
        if typ not in (1, 2, 4, 5, 6, 7):
            return 2, f"Invalid order type ({typ})", None
        if side not in (0, 1) or not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            return 2, "Invalid side or size", None
        if size > self.max_contracts:
            return 2, f"Invalid size ({size}): at most {self.max_contracts} contracts per order", None
        if f.margin_max_contracts is not None and size > f.margin_max_contracts:
            return 3, f"Insufficient funds: margin covers {f.margin_max_contracts} contracts, not {size}", None
        cur = self.position.get(p.get("contractId"), {}).get("size", 0)
        if abs(cur + (size if side == 0 else -size)) > self.max_contracts:
            return 2, (f"Order exceeds the account's maximum position size ({self.max_contracts}); "
                       f"position {cur}"), None
        tag = p.get("customTag")
        if tag and any(o.get("customTag") == tag for o in self.orders.values()):
            return 2, f"Custom tag {tag!r} is already in use", None
        tick = c["tickSize"]
        for k in ("limitPrice", "stopPrice", "trailPrice"):
            if self._bad_price(p.get(k), tick):
                return 2, "Invalid price", None
        if typ == 1 and p.get("limitPrice") is None:
            return 2, "Invalid price", None
        if typ == 4 and p.get("stopPrice") is None:
            return 2, "Invalid price", None
        sl, tp = p.get("stopLossBracket"), p.get("takeProfitBracket")
        if sl or tp:
            if f.position_brackets:
                return 2, "Brackets cannot be used with Position Brackets. You must enable Auto OCO Brackets.", None
            long_ = side == 0
            if sl:
                t = int(sl.get("ticks", 0))
                if int(sl.get("type", 0)) != 4:
                    return 2, f"Invalid stop loss type ({'Limit' if sl.get('type') == 1 else sl.get('type')})", None
                if (long_ and t >= 0) or (not long_ and t <= 0):
                    return 2, (f"Invalid stop loss ticks ({t}). Ticks should be "
                               f"{'less' if long_ else 'greater'} than zero when {'longing' if long_ else 'shorting'}."), None
            if tp:
                t = int(tp.get("ticks", 0))
                if (long_ and t <= 0) or (not long_ and t >= 0):
                    return 2, (f"Invalid take profit ticks ({t}). Ticks should be "
                               f"{'greater' if long_ else 'less'} than zero when {'longing' if long_ else 'going short'}."), None
        now = self.now_iso()
        oid = self._new_order_id()
        entry = {"id": oid, "accountId": self.account["id"], "contractId": c["id"], "symbolId": c["symbolId"],
                 "creationTimestamp": now, "updateTimestamp": now, "status": 6, "type": typ, "side": side,
                 "size": size, "limitPrice": p.get("limitPrice"), "stopPrice": p.get("stopPrice"),
                 "fillVolume": 0, "filledPrice": None, "customTag": tag}
        if typ == 5:
            entry["trailPrice"] = p.get("trailPrice")
            entry["stopPrice"] = p.get("trailPrice")
        if typ in (6, 7):
            entry["type"] = 1
            entry["limitPrice"] = self.market.bid if typ == 6 else self.market.ask
        self.orders[oid] = entry
        batch = [entry]
        sl_id = None
        for leg, suffix, ltype in ((sl, "-SL", 4), (tp, "-TP", 1)):
            if not leg:
                continue
            cid = self._new_order_id()
            child = {"id": cid, "accountId": entry["accountId"], "contractId": c["id"], "symbolId": c["symbolId"],
                     "creationTimestamp": now, "updateTimestamp": now, "status": 8, "type": ltype,
                     "side": 1 - side, "size": size, "limitPrice": None, "stopPrice": None, "fillVolume": 0,
                     "filledPrice": None, "customTag": (tag + suffix) if tag else None,
                     "parentOrderId": oid, "trailDistance": int(leg["ticks"])}
            if suffix == "-SL":
                sl_id = cid
            elif sl_id is not None:
                child["linkedOrderId"] = sl_id
            self.orders[cid] = child
            batch.append(child)
        for o in batch:
            self._emit_order(o, action=0)
        entry["status"] = 1
        if self.market.last is not None:
            self._try_fill(entry, arriving=True)
        if entry["status"] == 1:
            self._emit_order(entry)
        return 0, None, oid

    @staticmethod
    def _bad_price(v, tick: float) -> bool:
        """True for a price that is given but fails the magnitude gate the engine uses
        (:func:`engine.broker.base.price_problem`: a finite number > 0, below ``MAX_PRICE``,
        on the tick grid): 1e308 is refused, never an ``OverflowError``."""
        return v is not None and price_problem(v, tick) is not None

    def _new_order_id(self) -> int:
        self._next_order += 1
        return self._next_order

    def _order_in(self, p: dict, statuses: tuple[int, ...], refusal: str) -> tuple[int, str | None, dict | None]:
        """The account's order ``p["orderId"]`` when its status is one of ``statuses``:
        ``(0, None, order)``; else the gateway's refusal ``(code, message, None)``: 1 account
        not found, 2 order not found, 3 ``Order <id> is <refusal> (status <s>)``."""
        o = self.orders.get(p.get("orderId"))
        if p.get("accountId") != self.account["id"]:
            return 1, "Account not found", None
        if o is None:
            return 2, "Order not found", None
        if o["status"] not in statuses:
            return 3, f"Order {o['id']} is {refusal} (status {o['status']})", None
        return 0, None, o

    def modify(self, p: dict) -> tuple[int, str | None]:
        code, msg, o = self._order_in(p, (1, 8), "not working")
        if o is None:
            return code, msg
        size = p.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool)
                                 or not 1 <= size <= self.max_contracts):
            return 2, f"Invalid size ({size!r}): 1 to {self.max_contracts} contracts"
        tick = self._known(o["contractId"])["tickSize"]
        for k in ("limitPrice", "stopPrice", "trailPrice"):
            if self._bad_price(p.get(k), tick):
                return 2, "Invalid price"
        if p.get("limitPrice") is not None and o["type"] != 1:
            return 2, "Invalid price: limitPrice on an order that is not a limit"
        if p.get("stopPrice") is not None and o["type"] not in (4, 5):
            return 2, "Invalid price: stopPrice on an order that is not a stop"
        for k in ("size", "limitPrice", "stopPrice"):
            if p.get(k) is not None:
                o[k] = p[k]
        o["updateTimestamp"] = self.now_iso()
        self._emit_order(o)
        return 0, None

    def cancel(self, p: dict) -> tuple[int, str | None]:
        code, msg, o = self._order_in(p, (1, 6, 8), "already terminal")
        if o is None:
            return code, msg
        self._set_status(o, 3)
        return 0, None

    def _set_status(self, o: dict, status: int) -> None:
        o["status"] = status
        o["updateTimestamp"] = self.now_iso()
        self._emit_order(o)

    def close_position(self, p: dict, size: int | None) -> tuple[int, str | None]:
        if p.get("accountId") != self.account["id"]:
            return 1, "Account not found"
        pos = self.position.get(p.get("contractId"))
        if pos is None or pos["size"] == 0:
            return 2, "Position not found"
        have = abs(pos["size"])
        qty = have if size is None else size
        if size is not None and (size <= 0 or size > have):
            return 5, f"Invalid close size ({size}), position is {have}"
        side = 1 if pos["size"] > 0 else 0
        code, msg, _ = self.place({"accountId": p["accountId"], "contractId": p["contractId"], "type": 2,
                                   "side": side, "size": qty, "customTag": None})
        return (0, None) if code == 0 else (6 if size is not None else 5, msg)

    # ---------------------------------------------------------------- matching
    def _match(self) -> None:
        for oid, left in list(self._pending_partial.items()):
            o = self.orders[oid]
            del self._pending_partial[oid]
            if o["status"] == 1:
                self._fill(o, left, o["_partial_px"])
        for o in list(self.orders.values()):
            if o["status"] == 1 and o["fillVolume"] == 0 and o["id"] not in self._pending_partial:
                self._try_fill(o, arriving=False)

    def _try_fill(self, o: dict, arriving: bool) -> None:
        m = self.market
        if m.last is None:      # no market yet (before the first step): the order waits
            return
        last = bid = m.last
        ask = last + m.spread_ticks * m.tick
        buy = o["side"] == 0
        slip = self.slippage_ticks * m.tick
        px = None
        if o["type"] == 2:
            px = ask + slip if buy else bid - slip
        elif o["type"] == 1:
            lim = o["limitPrice"]
            if arriving:
                if buy and ask <= lim:
                    px = ask
                elif not buy and bid >= lim:
                    px = bid
            elif (buy and last < lim) or (not buy and last > lim):
                px = lim
        elif o["type"] in (4, 5):
            stop = o["stopPrice"]
            if stop is not None and ((buy and last >= stop) or (not buy and last <= stop)):
                px = ask + slip if buy else bid - slip
        if px is None:
            return
        qty = o["size"] - o["fillVolume"]
        if self.faults.partial_fills and qty >= 2 and o["fillVolume"] == 0:
            first = qty // 2
            o["_partial_px"] = px
            self._pending_partial[o["id"]] = qty - first
            self._fill(o, first, px)
        else:
            self._fill(o, qty, px)

    def _fill(self, o: dict, qty: int, px: float) -> None:
        c = self._known(o["contractId"])
        prev = o["fillVolume"]
        o["filledPrice"] = px if not prev else (o["filledPrice"] * prev + px * qty) / (prev + qty)
        o["fillVolume"] = prev + qty
        done = o["fillVolume"] >= o["size"]
        o["status"] = 2 if done else 1
        o["updateTimestamp"] = self.now_iso()
        self._emit_order(o)
        signed = qty if o["side"] == 0 else -qty
        pnl = self._apply_position(o["contractId"], signed, px, c)
        fees = round(self.fee_per_contract * qty, 2)
        self._next_trade += 1
        tr = {"id": self._next_trade, "accountId": o["accountId"], "contractId": o["contractId"],
              "creationTimestamp": self.now_iso(), "price": px, "profitAndLoss": pnl, "fees": fees,
              "commissions": 0.0, "side": o["side"], "size": qty, "voided": False, "orderId": o["id"]}
        self.trades.append(tr)
        self._emit_user("GatewayUserTrade", dict(tr), 0)
        pos = self.position[o["contractId"]]
        if pos["size"] == 0:
            self._emit_user("GatewayUserPosition", {"id": pos["id"], "accountId": o["accountId"],
                                                    "contractId": o["contractId"], "creationTimestamp": pos["created"],
                                                    "type": 0, "size": 0, "averagePrice": 0.0}, 2)
        else:
            self._emit_user("GatewayUserPosition", self.position_json(o["contractId"]), 1)
        self.account["balance"] = round(self.account["balance"] + (pnl or 0.0) - fees, 2)
        self._emit_user("GatewayUserAccount", dict(self.account), 1)
        if done:
            self._after_full_fill(o)

    def _after_full_fill(self, o: dict) -> None:
        tick = self.market.tick
        children = [k for k in self.orders.values() if k.get("parentOrderId") == o["id"] and k["status"] == 8]
        for k in children:
            price = o["filledPrice"] + k["trailDistance"] * tick
            if k["type"] == 4:
                k["stopPrice"] = price
            else:
                k["limitPrice"] = price
            k["size"] = o["fillVolume"]
            self._set_status(k, 1)
        parent = o.get("parentOrderId")
        if parent is not None:
            siblings = [k for k in self.orders.values() if k.get("parentOrderId") == parent
                        and k["id"] != o["id"] and k["status"] in (1, 8)]
            for s in siblings:
                if self.faults.bracket_race:
                    lvl = s["stopPrice"] if s["type"] == 4 else s["limitPrice"]
                    self._fill(s, s["size"] - s["fillVolume"], lvl)
                else:
                    self._set_status(s, 3)

    def _apply_position(self, cid: str, signed: int, px: float, c: dict) -> float | None:
        pos = self.position.get(cid)
        if pos is None or pos["size"] == 0:
            self._next_pos += 1
            self.position[cid] = {"size": signed, "avg": px, "id": self._next_pos, "created": self.now_iso()}
            return None
        size, avg = pos["size"], pos["avg"]
        if (size > 0) == (signed > 0):
            pos["avg"] = (avg * abs(size) + px * abs(signed)) / (abs(size) + abs(signed))
            pos["size"] = size + signed
            return None
        closing = min(abs(size), abs(signed))
        direction = 1 if size > 0 else -1
        pnl = round((px - avg) * direction / c["tickSize"] * c["tickValue"] * closing, 2)
        new = size + signed
        if new == 0:
            pos["size"] = 0
        elif (new > 0) != (size > 0):
            pos.update(size=new, avg=px, created=self.now_iso())
        else:
            pos["size"] = new
        return pnl

    def position_json(self, cid: str) -> dict:
        pos = self.position[cid]
        return {"id": pos["id"], "accountId": self.account["id"], "contractId": cid,
                "contractDisplayName": "MES", "creationTimestamp": pos["created"],
                "type": 1 if pos["size"] > 0 else 2, "size": abs(pos["size"]), "averagePrice": pos["avg"]}

    def open_positions(self) -> list[dict]:
        return [self.position_json(cid) for cid, p in self.position.items() if p["size"] != 0]

    @staticmethod
    def public(o: dict) -> dict:
        """The order as the API shows it (internal keys dropped)."""
        return {k: v for k, v in o.items() if not k.startswith("_")}
