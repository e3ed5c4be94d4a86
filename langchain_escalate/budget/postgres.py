"""A ledger in PostgreSQL, shared by a fleet of workers.

Atomicity: each reservation is one transaction that first takes transaction
advisory locks, then reads what is committed, then inserts. Advisory locks
rather than ``SELECT ... FOR UPDATE`` on a totals row because they need no
extra row to keep in step, cover the "no row yet" case of a new thread, and
are released by the server when the transaction ends - including when the
worker dies mid-transaction (its connection drops). Two levels keep threads
from queueing behind each other when they need not:

- a reservation checked against ``max_usd_total`` takes the ledger's lock
  exclusively: it must see every thread's spend, so it runs alone;
- any other reservation takes the ledger's lock shared (so it waits for
  total-checking ones) and its thread's lock exclusively (so two reservations
  of one thread never interleave).

Both are taken in that order, so they cannot deadlock. Reads run under READ
COMMITTED after the locks are held, so they see every reservation committed
before. Times are the server's clock (``clock_timestamp()``), so the workers'
clocks need not agree.

The sync and async methods run the same steps (the ``_..._steps`` generators,
which yield SQL and receive rows); only the driver that executes them differs.
psycopg is optional: install ``langchain-escalate[postgres]``.
"""

from __future__ import annotations

import asyncio
import re
import threading
import weakref
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, cast

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
from langchain_escalate.budget.postgres_sql import INSTALL_HINT, Query, Statements, import_psycopg

if TYPE_CHECKING:
    from psycopg import AsyncConnection, Connection
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

__all__ = ["DEFAULT_TABLE", "INSTALL_HINT", "PostgresLedger"]

DEFAULT_TABLE = "escalate_reservations"
_TABLE_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*$")

Rows = list[tuple[Any, ...]]
Steps = Generator[Query, Rows, Any]


class PostgresLedger(Ledger):
    """A ledger in PostgreSQL: one budget for every worker that shares the database.

    Created by ``Budget(ledger="postgresql://user@host/db")``. The table is
    created on first use (idempotent, safe when many workers start at once).
    Connections come from a ``psycopg_pool`` pool: one for sync calls, one per
    event loop for async calls.

    Args:
        dsn: A libpq connection string or URL.
        table: The table, optionally schema-qualified (``"billing.reservations"``).
        max_connections: Upper bound of each pool.

    Raises:
        ValueError: ``table`` is not a (schema-qualified) SQL identifier.

    Example:
        >>> from langchain_escalate.budget import Budget
        >>> budget = Budget(max_usd_total=50.0, ledger="postgresql://postgres@127.0.0.1:5432/test")
        >>> budget.ledger
        'postgresql://postgres@127.0.0.1:5432/test'
    """

    def __init__(self, dsn: str, *, table: str = DEFAULT_TABLE, max_connections: int = 10) -> None:
        """Name the database and table; nothing connects until first use."""
        if not _TABLE_NAME.match(table):
            msg = (
                f"PostgreSQL ledger table name {table!r} must be an identifier "
                "(letters, digits, underscores), optionally as schema.table"
            )
            raise ValueError(msg)
        self.dsn, self.table = dsn, table
        self._statements = Statements(table)
        self._max_connections = max_connections
        self._pool: ConnectionPool[Any] | None = None
        self._async_pools: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncConnectionPool[Any]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._schema_ready = False

    # -- sync driver -----------------------------------------------------

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
        steps = self._reserve_steps(
            thread_id, estimate_usd=estimate_usd, limits=limits, ttl_s=ttl_s, key=key
        )
        return cast("Reservation", self._run(steps))

    def settle(
        self, reservation_id: str, *, actual_usd: float | None, result_json: str | None = None
    ) -> None:
        """See ``Ledger.settle``."""
        self._run(self._settle_steps(reservation_id, actual_usd, result_json), atomic=False)

    def release(self, reservation_id: str) -> None:
        """See ``Ledger.release``."""
        self._run(self._release_steps(reservation_id), atomic=False)

    def spent(self, thread_id: str | None = None) -> float:
        """See ``Ledger.spent``."""
        return float(self._run(self._spent_steps(thread_id), atomic=False))

    def escalations(self, thread_id: str) -> int:
        """See ``Ledger.escalations``."""
        return int(self._run(self._escalations_steps(thread_id), atomic=False))

    def usage(self, thread_id: str | None = None) -> Usage:
        """See ``Ledger.usage``."""
        return cast("Usage", self._run(self._usage_steps(thread_id), atomic=False))

    def close(self) -> None:
        """Close the sync pool (async pools: ``aclose`` from their loop)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def _run(self, steps: Steps, *, atomic: bool = True) -> Any:
        """Run steps on a pooled connection, in one transaction when ``atomic``.

        (One statement is atomic alone: autocommit spares the BEGIN/COMMIT round trip.)
        """
        pool = self._sync_pool()
        if not self._schema_ready:
            with pool.connection() as connection, connection.transaction():
                _drive(connection, self._schema_steps())
            self._schema_ready = True
        with pool.connection() as connection:
            if not atomic:
                return _drive(connection, steps)
            with connection.transaction():
                return _drive(connection, steps)

    def _sync_pool(self) -> ConnectionPool[Any]:
        with self._lock:
            if self._pool is None:
                _, pool_module = import_psycopg()
                self._pool = pool_module.ConnectionPool(
                    self.dsn,
                    min_size=1,
                    max_size=self._max_connections,
                    kwargs={"autocommit": True},
                    open=True,
                )
            return self._pool

    # -- async driver ----------------------------------------------------

    async def areserve(
        self,
        thread_id: str,
        *,
        estimate_usd: float,
        limits: Limits,
        ttl_s: float,
        key: str | None = None,
    ) -> Reservation:
        """See ``Ledger.reserve``."""
        steps = self._reserve_steps(
            thread_id, estimate_usd=estimate_usd, limits=limits, ttl_s=ttl_s, key=key
        )
        return cast("Reservation", await self._arun(steps))

    async def asettle(
        self, reservation_id: str, *, actual_usd: float | None, result_json: str | None = None
    ) -> None:
        """See ``Ledger.settle``."""
        await self._arun(self._settle_steps(reservation_id, actual_usd, result_json), atomic=False)

    async def arelease(self, reservation_id: str) -> None:
        """See ``Ledger.release``."""
        await self._arun(self._release_steps(reservation_id), atomic=False)

    async def aspent(self, thread_id: str | None = None) -> float:
        """See ``Ledger.spent``."""
        return float(await self._arun(self._spent_steps(thread_id), atomic=False))

    async def aescalations(self, thread_id: str) -> int:
        """See ``Ledger.escalations``."""
        return int(await self._arun(self._escalations_steps(thread_id), atomic=False))

    async def ausage(self, thread_id: str | None = None) -> Usage:
        """See ``Ledger.usage``."""
        return cast("Usage", await self._arun(self._usage_steps(thread_id), atomic=False))

    async def aclose(self) -> None:
        """Close the pool of the running event loop, and the sync pool."""
        pool = self._async_pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()
        await asyncio.to_thread(self.close)

    async def _arun(self, steps: Steps, *, atomic: bool = True) -> Any:
        pool = await self._async_pool()  # the async twin of ``_run``
        if not self._schema_ready:
            async with pool.connection() as connection, connection.transaction():
                await _adrive(connection, self._schema_steps())
            self._schema_ready = True
        async with pool.connection() as connection:
            if not atomic:
                return await _adrive(connection, steps)
            async with connection.transaction():
                return await _adrive(connection, steps)

    async def _async_pool(self) -> AsyncConnectionPool[Any]:
        # An async pool belongs to the event loop it was opened in.
        loop = asyncio.get_running_loop()
        pool = self._async_pools.get(loop)
        if pool is None:
            _, pool_module = import_psycopg()
            pool = pool_module.AsyncConnectionPool(
                self.dsn,
                min_size=1,
                max_size=self._max_connections,
                kwargs={"autocommit": True},
                open=False,
            )
            self._async_pools[loop] = pool
        await pool.open()  # a no-op once open
        return pool

    # -- the steps both drivers run ----------------------------------------

    def _reserve_steps(
        self,
        thread_id: str,
        *,
        estimate_usd: float,
        limits: Limits,
        ttl_s: float,
        key: str | None,
    ) -> Steps:
        sql = self._statements
        yield sql.lock(thread_id, has_total=limits.has_total)
        revive_id = None
        if key is not None and (rows := (yield sql.key_row(key))):
            row = KeyedRow(*rows[0])
            found = self._from_key(row, thread_id=thread_id, key=key)
            if found is not None:
                if found.resumed:  # its holder is back: a full TTL again
                    yield sql.renew(row.id, ttl_s)
                return found
            revive_id = row.id
        [(count, nanos, total)] = yield sql.committed(thread_id, has_total=limits.has_total)
        reservation = self._decide(
            Committed(thread_escalations=count, thread_nanos=nanos, total_nanos=total),
            thread_id=thread_id,
            estimate_usd=estimate_usd,
            limits=limits,
            key=key,
            revive_id=revive_id,
        )
        if reservation.granted:
            yield sql.insert(reservation.id, thread_id, to_nanos(estimate_usd), ttl_s, key)
        return reservation

    def _settle_steps(
        self, reservation_id: str, actual_usd: float | None, result_json: str | None
    ) -> Steps:
        actual = None if actual_usd is None else to_nanos(actual_usd)
        yield self._statements.settle(reservation_id, actual, result_json)

    def _release_steps(self, reservation_id: str) -> Steps:
        yield self._statements.release(reservation_id)

    def _spent_steps(self, thread_id: str | None) -> Steps:
        [(nanos,)] = yield self._statements.spent(thread_id)
        return from_nanos(nanos)

    def _escalations_steps(self, thread_id: str) -> Steps:
        [(count,)] = yield self._statements.escalations(thread_id)
        return int(count)

    def _usage_steps(self, thread_id: str | None) -> Steps:
        [row] = yield self._statements.usage(thread_id)
        return Usage(*(int(value or 0) for value in row))

    def _schema_steps(self) -> Steps:
        for query in self._statements.schema():  # noqa: UP028 - a list cannot take the rows sent back
            yield query


def _drive(connection: Connection[Any], steps: Steps) -> Any:
    try:
        query = next(steps)
        while True:
            cursor = connection.execute(query.statement, query.params)
            rows = cursor.fetchall() if cursor.description is not None else []
            query = steps.send(rows)
    except StopIteration as done:
        return done.value


async def _adrive(connection: AsyncConnection[Any], steps: Steps) -> Any:
    try:
        query = next(steps)
        while True:
            cursor = await connection.execute(query.statement, query.params)
            rows = await cursor.fetchall() if cursor.description is not None else []
            query = steps.send(rows)
    except StopIteration as done:
        return done.value
