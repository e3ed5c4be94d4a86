"""A ledger in a SQLite file, shared by the processes of one machine.

Atomicity: a reservation runs in a ``BEGIN IMMEDIATE`` transaction, which
takes SQLite's write lock before the first read, so no other process can
reserve between this one's check and its insert. Waiting writers queue on the
busy timeout. The file is in WAL mode, so reports (``spent``) do not wait.
Times are this machine's wall clock, which every process on it shares.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from pathlib import Path

from langchain_escalate.budget.ledger import (
    Committed,
    KeyedRow,
    Ledger,
    Limits,
    Reservation,
    Usage,
    from_nanos,
    to_nanos,
)

__all__ = ["DEFAULT_TABLE", "SQLiteLedger"]

DEFAULT_TABLE = "escalate_reservations"
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# A row counts while settled, or while reserved and not expired. Released rows
# are deleted. Amounts are integer nano-dollars (see ledger.py). The
# idempotency key is unique where present; unkeyed rows stay out of its index.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL,
    estimate_nanos INTEGER NOT NULL,
    actual_nanos INTEGER,
    expires_at REAL NOT NULL,
    idempotency_key TEXT,
    result_json TEXT
);
CREATE INDEX IF NOT EXISTS {table}_thread ON {table} (thread_id);
"""
_KEY_INDEX = """
CREATE UNIQUE INDEX IF NOT EXISTS {table}_key ON {table} (idempotency_key)
WHERE idempotency_key IS NOT NULL
"""
# Columns added since the first release: a table made by it gains them on first use.
_ADDED_COLUMNS = {"idempotency_key": "TEXT", "result_json": "TEXT"}
_COMMITTED = """
SELECT count(*), coalesce(sum(coalesce(actual_nanos, estimate_nanos)), 0)
FROM {table} WHERE {where} (actual_nanos IS NOT NULL OR expires_at > ?)
"""
_USAGE = """
SELECT
    sum(CASE WHEN thread_id = :thread AND actual_nanos IS NOT NULL THEN 1 ELSE 0 END),
    sum(CASE WHEN thread_id = :thread THEN actual_nanos ELSE 0 END),
    sum(CASE WHEN thread_id = :thread AND actual_nanos IS NULL AND expires_at > :now
        THEN 1 ELSE 0 END),
    sum(CASE WHEN thread_id = :thread AND actual_nanos IS NULL AND expires_at > :now
        THEN estimate_nanos ELSE 0 END),
    sum(actual_nanos),
    sum(CASE WHEN actual_nanos IS NULL AND expires_at > :now THEN estimate_nanos ELSE 0 END)
FROM {table}
"""


class SQLiteLedger(Ledger):
    """A ledger in a SQLite file: one budget for every process on this machine.

    Created by ``Budget(ledger="sqlite:///path/to/ledger.db")``. The file and
    its table are created on first use.

    Args:
        path: The database file.
        table: The table's name (letters, digits, underscores).
        timeout_s: How long a reservation waits for another process's write lock.

    Raises:
        ValueError: ``table`` is not a plain SQL identifier.

    Example:
        >>> import tempfile
        >>> from langchain_escalate.budget import Budget
        >>> path = tempfile.mkdtemp() + "/ledger.db"
        >>> budget = Budget(max_escalations_per_thread=2, ledger=f"sqlite:///{path}")
        >>> budget.reserve("t1").granted
        True
    """

    def __init__(
        self, path: str | Path, *, table: str = DEFAULT_TABLE, timeout_s: float = 30.0
    ) -> None:
        """Name the file and table; nothing is opened until first use."""
        if not _TABLE_NAME.match(table):
            msg = f"SQLite ledger table name {table!r} must be letters, digits and underscores"
            raise ValueError(msg)
        self.path = Path(path)
        self.table = table
        self._timeout_s = timeout_s
        # sqlite3 connections must stay in the thread that made them; async
        # calls run in worker threads, so each thread gets its own.
        self._local = threading.local()
        # Each thread's connection, with the lock it holds while a statement runs:
        # closing a connection under a running statement crashes the interpreter.
        self._connections: list[_Held] = []
        self._connections_lock = threading.Lock()

    def reserve(
        self,
        thread_id: str,
        *,
        estimate_usd: float,
        limits: Limits,
        ttl_s: float,
        key: str | None = None,
    ) -> Reservation:
        """See ``Ledger.reserve``."""
        with self._connection() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                reservation = self._reserve_locked(
                    connection,
                    thread_id,
                    estimate_usd=estimate_usd,
                    limits=limits,
                    ttl_s=ttl_s,
                    key=key,
                )
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        return reservation

    def settle(
        self, reservation_id: str, *, actual_usd: float | None, result_json: str | None = None
    ) -> None:
        """See ``Ledger.settle``."""
        actual = None if actual_usd is None else to_nanos(actual_usd)
        with self._connection() as connection:
            connection.execute(
                f"UPDATE {self.table} SET actual_nanos = coalesce(?, estimate_nanos), "  # noqa: S608 - validated identifier
                "result_json = ? WHERE id = ? AND actual_nanos IS NULL",
                (actual, result_json, reservation_id),
            )

    def release(self, reservation_id: str) -> None:
        """See ``Ledger.release``."""
        with self._connection() as connection:
            connection.execute(
                f"DELETE FROM {self.table} WHERE id = ? AND actual_nanos IS NULL",  # noqa: S608 - validated identifier
                (reservation_id,),
            )

    def spent(self, thread_id: str | None = None) -> float:
        """See ``Ledger.spent``."""
        where, params = ("AND thread_id = ?", (thread_id,)) if thread_id is not None else ("", ())
        with self._connection() as connection:
            (nanos,) = connection.execute(
                f"SELECT coalesce(sum(actual_nanos), 0) FROM {self.table} "  # noqa: S608 - validated identifier
                f"WHERE actual_nanos IS NOT NULL {where}",
                params,
            ).fetchone()
        return from_nanos(nanos)

    def escalations(self, thread_id: str) -> int:
        """See ``Ledger.escalations``."""
        with self._connection() as connection:
            (count,) = connection.execute(
                f"SELECT count(*) FROM {self.table} "  # noqa: S608 - validated identifier
                "WHERE thread_id = ? AND actual_nanos IS NOT NULL",
                (thread_id,),
            ).fetchone()
        return int(count)

    def usage(self, thread_id: str | None = None) -> Usage:
        """See ``Ledger.usage``."""
        with self._connection() as connection:
            query = _USAGE.format(table=self.table)
            row = connection.execute(query, {"thread": thread_id, "now": time.time()}).fetchone()
        return Usage(*(int(value or 0) for value in row))

    def close(self) -> None:
        """Close every connection this ledger opened, each once its statement in flight ends.

        A thread that uses the ledger afterwards opens a new connection.
        """
        with self._connections_lock:
            opened, self._connections = self._connections, []
            self._local = threading.local()
        for held in opened:
            with held as connection:
                connection.close()

    def _reserve_locked(
        self,
        connection: sqlite3.Connection,
        thread_id: str,
        *,
        estimate_usd: float,
        limits: Limits,
        ttl_s: float,
        key: str | None,
    ) -> Reservation:
        """Reserve inside the write lock: a key's row first, else check limits and insert."""
        now = time.time()
        revive_id = None
        if key is not None and (row := self._key_row(connection, key, now)) is not None:
            found = self._from_key(row, thread_id=thread_id, key=key)
            if found is not None:
                if found.resumed:  # its holder is back: a full TTL again
                    connection.execute(
                        f"UPDATE {self.table} SET expires_at = ? WHERE id = ?",  # noqa: S608 - validated identifier
                        (now + ttl_s, row.id),
                    )
                return found
            revive_id = row.id
        count, nanos = connection.execute(
            _COMMITTED.format(table=self.table, where="thread_id = ? AND"), (thread_id, now)
        ).fetchone()
        total = 0
        if limits.has_total:
            _, total = connection.execute(
                _COMMITTED.format(table=self.table, where=""), (now,)
            ).fetchone()
        reservation = self._decide(
            Committed(thread_escalations=count, thread_nanos=nanos, total_nanos=total),
            thread_id=thread_id,
            estimate_usd=estimate_usd,
            limits=limits,
            key=key,
            revive_id=revive_id,
        )
        if reservation.granted:
            connection.execute(
                f"INSERT INTO {self.table} "  # noqa: S608 - validated identifier
                "(id, thread_id, estimate_nanos, expires_at, idempotency_key) "
                "VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET "
                "estimate_nanos = excluded.estimate_nanos, expires_at = excluded.expires_at",
                (reservation.id, thread_id, to_nanos(estimate_usd), now + ttl_s, key),
            )
        return reservation

    def _key_row(self, connection: sqlite3.Connection, key: str, now: float) -> KeyedRow | None:
        row = connection.execute(
            f"SELECT id, thread_id, estimate_nanos, actual_nanos, expires_at > ?, result_json "  # noqa: S608 - validated identifier
            f"FROM {self.table} WHERE idempotency_key = ?",
            (now, key),
        ).fetchone()
        if row is None:
            return None
        row_id, thread, estimate, actual, live, result_json = row
        return KeyedRow(row_id, thread, estimate, actual, bool(live), result_json)

    def _connection(self) -> _Held:
        """This thread's connection, to use in a ``with`` block so that ``close`` waits for it."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is None:
            held = _Held(self._connect())
            with self._connections_lock:
                self._local.held = held
                self._connections.append(held)
        return held

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode (isolation_level=None): transactions are explicit,
        # so BEGIN IMMEDIATE is what takes the lock; single statements commit
        # on their own. check_same_thread=False only lets close() run from
        # another thread; every other use stays in the owning thread.
        connection = sqlite3.connect(
            self.path, timeout=self._timeout_s, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.format(table=self.table).split(";"):
                if statement.strip():
                    connection.execute(statement)
            columns = {row[1] for row in connection.execute(f"PRAGMA table_info({self.table})")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in columns:
                    connection.execute(f"ALTER TABLE {self.table} ADD COLUMN {column} {kind}")
            connection.execute(_KEY_INDEX.format(table=self.table))
        except BaseException:
            connection.execute("ROLLBACK")
            connection.close()
            raise
        connection.execute("COMMIT")
        return connection


class _Held:
    """A connection and the lock held while it runs a statement (a context manager)."""

    __slots__ = ("connection", "lock")

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection, self.lock = connection, threading.RLock()

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        return self.connection

    def __exit__(self, *exc_info: object) -> None:
        self.lock.release()
