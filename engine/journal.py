"""The trade journal: a local SQLite file that outlives every session (issue 14 item 6).

Every fill, round trip, halt, manual action and session summary of a paper/live session is
written AS IT HAPPENS, one autocommitted statement each, to ``<data dir>/journal.sqlite3``
(``[paths] data_dir``, default the platformdirs user data dir; :func:`default_journal_path`).
The demo and replay sessions write the same tables to their own file,
``<data dir>/journal-sim.sqlite3`` (:func:`default_sim_journal_path`).

Durability: WAL journal mode with ``synchronous=FULL``: a committed row survives a SIGKILL of
the process (and a power loss) the moment :meth:`Journal.fill` returns. Several processes may
read while one writes (``mes-console journal`` during a session). A journal's schema is
versioned (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`); a file with a newer version, or
one that is not a journal, is refused with :class:`JournalError` naming the file, never
rewritten.

Tables (times ``*_ns`` are int64 UTC nanoseconds; money in dollars; prices in index points;
``day`` is the trading day, ISO ``YYYY-MM-DD``, of the CME session the event belongs to):

- ``sessions``: one row per session: mode, account, contract, symbol, clock kind, start/end
  (engine clock), starting and ending balance, net P&L, round trips, exit reason, and the full
  session report (JSON) when the session ended in order. A session killed hard keeps
  ``ended_ns`` NULL: its fills and trades are still there.
- ``fills``: one row per broker fill (``broker_id`` unique: the gateway's trade id, so a fill
  replayed by a reconciliation is written once), side +1 buy / -1 sell, contracts, price,
  fees, the broker's realised P&L of a closing fill, engine-clock and broker times.
- ``trades``: one row per round trip the kernel closed (the :class:`engine.kernel.TradeRecord`
  fields), and one per round trip start-up recovery booked from the broker's fills
  (``exit_reason`` ``recovery``, the broker's P&L and fees); in paper/live ``broker_ids`` holds
  the broker trade ids of its fills (``"5000002,5000003"``, unique: a round trip is written once
  across any crash, whoever writes it).
- ``bars`` (created on first use): the bars a paper/live session saw, its warm-up history flagged
  ``warm``, for ``mes-console drift`` (:mod:`engine.backtest.drift`).
- ``events``: halts, resets, pauses, manual actions (flatten, quit), alerts: kind, severity,
  message.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable

SCHEMA_VERSION = 2
"""``PRAGMA user_version`` of a journal written by this code (2: ``trades.broker_ids``; a
version-1 file opened for writing gains the column)."""

FILE_NAME = "journal.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mode TEXT NOT NULL, account TEXT NOT NULL, contract TEXT NOT NULL, symbol TEXT NOT NULL,
    clock TEXT NOT NULL, started_ns INTEGER NOT NULL, started_wall_ns INTEGER NOT NULL,
    ended_ns INTEGER, start_balance REAL, end_balance REAL, net_pnl REAL, trades INTEGER,
    exit_reason TEXT, report TEXT
);
CREATE TABLE IF NOT EXISTS fills (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    broker_id INTEGER UNIQUE, order_id TEXT, tag TEXT, kind TEXT,
    side INTEGER NOT NULL, qty INTEGER NOT NULL, price REAL NOT NULL, fees REAL NOT NULL,
    pnl REAL, ts_ns INTEGER NOT NULL, broker_ts_ns INTEGER, day TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trades (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    entry_ns INTEGER NOT NULL, exit_ns INTEGER NOT NULL, direction INTEGER NOT NULL,
    contracts INTEGER NOT NULL, entry_price REAL NOT NULL, exit_price REAL NOT NULL,
    gross_pnl REAL NOT NULL, commission REAL NOT NULL, slippage REAL NOT NULL, net_pnl REAL NOT NULL,
    exit_reason TEXT NOT NULL, confidence REAL, day TEXT NOT NULL, broker_ids TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    ts_ns INTEGER NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL, message TEXT NOT NULL,
    day TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS trades_day ON trades(day);
CREATE UNIQUE INDEX IF NOT EXISTS trades_broker_ids ON trades(broker_ids);
CREATE INDEX IF NOT EXISTS fills_day ON fills(day);
"""


class JournalError(RuntimeError):
    """The journal file cannot be opened, is not a journal, or has a newer schema; the message
    names the file."""


def default_journal_path(settings: Any) -> Path:
    """``<[paths] data_dir or the platformdirs user data dir>/journal.sqlite3`` (directory
    created)."""
    from engine.config import resolve_dir

    return resolve_dir(settings.paths.data_dir, "data") / FILE_NAME


SIM_FILE_NAME = "journal-sim.sqlite3"
"""The journal of the simulated sessions (the demo and ``run --mode replay``): the same tables,
another file, so that simulated money never mixes with a broker account's P&L by day."""


def default_sim_journal_path(settings: Any) -> Path:
    """``<[paths] data_dir or the platformdirs user data dir>/journal-sim.sqlite3`` (directory
    created): :data:`SIM_FILE_NAME`, where demo and replay sessions write."""
    from engine.config import resolve_dir

    return resolve_dir(settings.paths.data_dir, "data") / SIM_FILE_NAME


def _iso_day(ts_ns: int) -> str:
    """Fallback trading day when no calendar is given: the New York date of ``ts_ns``, rolled
    to the next day from 18:00 New York (the CME Globex session opens then)."""
    from zoneinfo import ZoneInfo

    t = _dt.datetime.fromtimestamp(ts_ns / 1e9, tz=ZoneInfo("America/New_York"))
    if t.hour >= 18:
        t = t + _dt.timedelta(days=1)
    return t.date().isoformat()


class Journal:
    """One SQLite journal file (module docstring). Thread-safe: every write takes a lock and is
    committed at once.

    Args:
        path: the journal file (created with its directory when missing, unless ``readonly``).
        readonly: open for queries only (``mes-console journal``); a missing file raises.
        day_of: ``ts_ns → "YYYY-MM-DD"`` trading day; default a New York 18:00 roll (the
            session's calendar gives the CME day with its holidays).

    Raises :class:`JournalError` naming the file when it cannot be opened or is not a journal
    of a known schema version.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False, day_of=None) -> None:
        self.path = Path(path)
        self.day_of = day_of or _iso_day
        self.session_id: int | None = None
        self._lock = threading.Lock()
        try:
            if readonly:
                if not self.path.is_file():
                    raise JournalError(f"journal {self.path}: no such file (no session has written one yet)")
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False,
                                           isolation_level=None, timeout=5.0)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None,
                                           timeout=5.0)
            self._db.row_factory = sqlite3.Row
            ver = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if ver > SCHEMA_VERSION:
                raise JournalError(f"journal {self.path}: schema version {ver} is newer than this "
                                   f"program's {SCHEMA_VERSION}; upgrade mes-console")
            if not readonly:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                if ver == 0:
                    names = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
                    if names - {"sessions", "fills", "trades", "events", "trades_day", "fills_day",
                                "trades_broker_ids", "sqlite_sequence", "bars"}:
                        raise JournalError(f"journal {self.path}: not a mes-console journal "
                                           f"(tables {sorted(names)})")
                    self._db.executescript(_SCHEMA)
                    self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                elif ver == 1:     # version 1 → 2: the round trips' broker trade ids
                    self._db.execute("ALTER TABLE trades ADD COLUMN broker_ids TEXT")
                    self._db.execute("CREATE UNIQUE INDEX IF NOT EXISTS trades_broker_ids ON trades(broker_ids)")
                    self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif ver == 0:
                raise JournalError(f"journal {self.path}: not a mes-console journal (no schema version)")
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"journal {self.path}: {exc}") from None

    # ------------------------------------------------------------------ writing
    def _exec(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._db.execute(sql, tuple(args))
            except sqlite3.DatabaseError as exc:
                raise JournalError(f"journal {self.path}: {exc}") from None

    def open_session(self, *, mode: str, account: str, contract: str, symbol: str, clock: str,
                     started_ns: int, started_wall_ns: int, start_balance: float | None) -> int:
        """A new ``sessions`` row; later writes belong to it. Returns its id."""
        cur = self._exec("INSERT INTO sessions (mode, account, contract, symbol, clock, started_ns, "
                         "started_wall_ns, start_balance) VALUES (?,?,?,?,?,?,?,?)",
                         (mode, account, contract, symbol, clock, int(started_ns), int(started_wall_ns),
                          None if start_balance is None else float(start_balance)))
        if cur.lastrowid is None:
            raise JournalError(f"journal {self.path}: the session row was not written")
        self.session_id = int(cur.lastrowid)
        return self.session_id

    def _sid(self) -> int:
        if self.session_id is None:
            raise JournalError(f"journal {self.path}: no session opened")
        return self.session_id

    def fill(self, *, ts_ns: int, side: int, qty: int, price: float, fees: float,
             broker_id: int | None = None, order_id: str = "", tag: str = "", kind: str = "",
             pnl: float | None = None, broker_ts_ns: int | None = None) -> bool:
        """One broker fill (side +1 buy / -1 sell, contracts, points, fees $, the broker's
        realised P&L $ of a closing fill). A ``broker_id`` already written is ignored (returns
        False)."""
        cur = self._exec("INSERT OR IGNORE INTO fills (session_id, broker_id, order_id, tag, kind, side, "
                         "qty, price, fees, pnl, ts_ns, broker_ts_ns, day) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         (self._sid(), broker_id, str(order_id), tag, kind, int(side), int(qty),
                          float(price), float(fees), None if pnl is None else float(pnl), int(ts_ns),
                          None if broker_ts_ns is None else int(broker_ts_ns), self.day_of(int(ts_ns))))
        return cur.rowcount == 1

    def trade(self, t: Any, broker_ids: Iterable[int] | None = None) -> bool:
        """One closed round trip (:class:`engine.kernel.TradeRecord`), dated by its exit.
        ``broker_ids``: the broker trade ids of its fills (paper/live; stored as ``"1,2"``,
        unique: a round trip already written under the same ids is ignored, returns False)."""
        ids = None if broker_ids is None else ",".join(str(int(i)) for i in broker_ids) or None
        cur = self._exec("INSERT OR IGNORE INTO trades (session_id, entry_ns, exit_ns, direction, contracts, "
                         "entry_price, exit_price, gross_pnl, commission, slippage, net_pnl, exit_reason, "
                         "confidence, day, broker_ids) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         (self._sid(), int(t.entry_ts), int(t.exit_ts), int(t.direction), int(t.contracts),
                          float(t.entry_price), float(t.exit_price), float(t.gross_pnl), float(t.commission),
                          float(t.slippage), float(t.net_pnl), str(t.exit_reason),
                          float(t.confidence) if t.confidence == t.confidence else None,
                          self.day_of(int(t.exit_ts)), ids))
        return cur.rowcount == 1

    def has_trade(self, broker_ids: Iterable[int]) -> bool:
        """True when a round trip with exactly these broker trade ids is written (a restart's
        recovery never writes a round trip the killed process already wrote)."""
        ids = ",".join(str(int(i)) for i in broker_ids)
        return bool(self._exec("SELECT 1 FROM trades WHERE broker_ids = ? LIMIT 1", (ids,)).fetchone())

    def event(self, ts_ns: int, kind: str, message: str, severity: str = "information") -> None:
        """A halt, reset, pause, manual action or alert."""
        self._exec("INSERT INTO events (session_id, ts_ns, kind, severity, message, day) VALUES (?,?,?,?,?,?)",
                   (self._sid(), int(ts_ns), kind, severity, message, self.day_of(int(ts_ns))))

    # ---- issue 26: the bars a session saw, for `mes-console drift` (engine/backtest/drift.py)
    _BARS_SQL = ("CREATE TABLE IF NOT EXISTS bars (session_id INTEGER NOT NULL REFERENCES sessions(id), "
                 "ts_ns INTEGER NOT NULL, open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, "
                 "close REAL NOT NULL, volume REAL, warm INTEGER NOT NULL DEFAULT 0)")

    def bars_write(self, rows: Iterable[tuple], *, warm: bool = False) -> None:
        """Bars the session processed (``warm``: the history bars that warmed its features, not
        traded on): rows of ``(open ts UTC ns, open, high, low, close, volume)``, points. The
        ``bars`` table is created on first use (older journals have none)."""
        self._exec(self._BARS_SQL)
        sid = self._sid()
        with self._lock:
            try:
                self._db.executemany("INSERT INTO bars (session_id, ts_ns, open, high, low, close, volume, warm) "
                                     "VALUES (?,?,?,?,?,?,?,?)",
                                     [(sid, int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]),
                                       None if r[5] != r[5] else float(r[5]), int(bool(warm))) for r in rows])
            except sqlite3.DatabaseError as exc:
                raise JournalError(f"journal {self.path}: {exc}") from None

    def bars(self, session: int) -> list[dict]:
        """The bars recorded for ``session`` in time order (``warm`` first), [] when none."""
        names = {r["name"] for r in self._rows("SELECT name FROM sqlite_master WHERE type='table'")}
        if "bars" not in names:
            return []
        return self._rows("SELECT ts_ns, open, high, low, close, volume, warm FROM bars WHERE session_id = ? "
                          "ORDER BY ts_ns", (int(session),))

    def close_session(self, *, ended_ns: int, end_balance: float | None, net_pnl: float, trades: int,
                      exit_reason: str, report: dict | None = None) -> None:
        """The session summary (and the session report, JSON) on the session's row."""
        self._exec("UPDATE sessions SET ended_ns=?, end_balance=?, net_pnl=?, trades=?, exit_reason=?, "
                   "report=? WHERE id=?",
                   (int(ended_ns), None if end_balance is None else float(end_balance), float(net_pnl),
                    int(trades), exit_reason,
                    None if report is None else json.dumps(report, default=str), self._sid()))

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:
                pass

    # ------------------------------------------------------------------ queries
    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[dict]:
        return [dict(r) for r in self._exec(sql, args).fetchall()]

    @staticmethod
    def _where(day_from: str | None, day_to: str | None, session: int | None) -> tuple[str, list]:
        cond: list[str] = []
        args: list[str | int] = []
        if day_from:
            cond.append("day >= ?")
            args.append(day_from)
        if day_to:
            cond.append("day <= ?")
            args.append(day_to)
        if session is not None:
            cond.append("session_id = ?")
            args.append(int(session))
        return (" WHERE " + " AND ".join(cond)) if cond else "", args

    def trades(self, day_from: str | None = None, day_to: str | None = None,
               session: int | None = None) -> list[dict]:
        """Round trips, oldest first (columns of the ``trades`` table)."""
        w, a = self._where(day_from, day_to, session)
        return self._rows(f"SELECT * FROM trades{w} ORDER BY exit_ns, id", a)

    def fills(self, day_from: str | None = None, day_to: str | None = None,
              session: int | None = None) -> list[dict]:
        """Broker fills, in the order written."""
        w, a = self._where(day_from, day_to, session)
        return self._rows(f"SELECT * FROM fills{w} ORDER BY id", a)

    def events(self, day_from: str | None = None, day_to: str | None = None,
               session: int | None = None) -> list[dict]:
        w, a = self._where(day_from, day_to, session)
        return self._rows(f"SELECT * FROM events{w} ORDER BY id", a)

    def by_day(self, day_from: str | None = None, day_to: str | None = None) -> list[dict]:
        """Per trading day: round trips, winners, gross, commission, slippage, net ($)."""
        w, a = self._where(day_from, day_to, None)
        return self._rows("SELECT day, COUNT(*) AS trades, SUM(net_pnl > 0) AS winners, "
                          "SUM(gross_pnl) AS gross_pnl, SUM(commission) AS commission, "
                          f"SUM(slippage) AS slippage, SUM(net_pnl) AS net_pnl FROM trades{w} "
                          "GROUP BY day ORDER BY day", a)

    def by_session(self) -> list[dict]:
        """Per session: its row (without the report) and the round trips/net P&L/fills written
        under it (counted from the journal, so a killed session shows what it did)."""
        return self._rows(
            "SELECT s.id, s.mode, s.account, s.contract, s.symbol, s.clock, s.started_ns, s.ended_ns, "
            "s.start_balance, s.end_balance, s.exit_reason, "
            "(SELECT COUNT(*) FROM trades t WHERE t.session_id = s.id) AS trades, "
            "(SELECT COALESCE(SUM(net_pnl), 0.0) FROM trades t WHERE t.session_id = s.id) AS net_pnl, "
            "(SELECT COUNT(*) FROM fills f WHERE f.session_id = s.id) AS fills "
            "FROM sessions s ORDER BY s.id")
