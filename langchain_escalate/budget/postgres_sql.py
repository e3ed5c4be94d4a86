"""The SQL statements of the PostgreSQL ledger, one method each; ``postgres.py`` runs them.

Statements are built with ``psycopg.sql`` (identifiers quoted, values as
parameters) and returned as ``Query`` objects; the ledger's steps yield them
to a sync or async driver. Amounts are integer nano-dollars; times are the
server's clock (``clock_timestamp()``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from psycopg.sql import SQL, Composable, Composed

__all__ = ["INSTALL_HINT", "Query", "Statements", "import_psycopg"]

INSTALL_HINT = 'the PostgreSQL ledger needs psycopg: pip install "langchain-escalate[postgres]"'
# Serializes CREATE TABLE IF NOT EXISTS across workers: concurrent creations
# of one table can fail on the catalog's unique index.
_SCHEMA_LOCK_KEY = "langchain_escalate:schema"
_LIVE = "(actual_nanos IS NOT NULL OR expires_at > clock_timestamp())"
_OPEN = "actual_nanos IS NULL AND expires_at > clock_timestamp()"


@dataclass(frozen=True)
class Query:
    """One statement and its parameters."""

    statement: SQL | Composed
    params: Sequence[Any] | Mapping[str, Any] = ()


@dataclass(frozen=True)
class Statements:
    """The statements for one ledger table (optionally ``schema.table``)."""

    table: str

    def lock(self, thread_id: str, *, has_total: bool) -> Query:
        """The transaction's advisory locks: the ledger's alone, or shared plus the thread's."""
        sql, key = _sql(), self.lock_key
        if has_total:
            return Query(sql.SQL("SELECT pg_advisory_xact_lock(hashtext(%s))"), (key,))
        return Query(
            sql.SQL(
                "SELECT pg_advisory_xact_lock_shared(hashtext(%s)), "
                "pg_advisory_xact_lock(hashtext(%s), hashtext(%s))"
            ),
            (key, key, thread_id),
        )

    def committed(self, thread_id: str, *, has_total: bool) -> Query:
        """One row: the thread's escalations and nanos, and (if needed) every thread's nanos."""
        sql = _sql()
        total = "coalesce(sum(coalesce(actual_nanos, estimate_nanos)), 0)::bigint"
        return Query(
            sql.SQL(
                "SELECT count(*) FILTER (WHERE thread_id = %s), "
                "coalesce(sum(coalesce(actual_nanos, estimate_nanos)) "
                "FILTER (WHERE thread_id = %s), 0)::bigint, {total} "
                "FROM {table} WHERE {scope} {live}"
            ).format(
                total=sql.SQL(total if has_total else "0::bigint"),
                table=self.table_sql,
                scope=sql.SQL("" if has_total else "thread_id = %s AND"),
                live=sql.SQL(_LIVE),
            ),
            (thread_id,) * (2 if has_total else 3),
        )

    def key_row(self, key: str) -> Query:
        """The row of an idempotency key, in ``KeyedRow`` order."""
        return Query(
            _sql()
            .SQL(
                "SELECT id, thread_id, estimate_nanos, actual_nanos, "
                "expires_at > clock_timestamp(), result_json "
                "FROM {table} WHERE idempotency_key = %s"
            )
            .format(table=self.table_sql),
            (key,),
        )

    def renew(self, reservation_id: str, ttl_s: float) -> Query:
        """A full TTL again for a reservation whose holder is back."""
        return Query(
            _sql()
            .SQL(
                "UPDATE {table} SET expires_at = "
                "clock_timestamp() + make_interval(secs => %s) WHERE id = %s"
            )
            .format(table=self.table_sql),
            (ttl_s, reservation_id),
        )

    def insert(
        self,
        reservation_id: str,
        thread_id: str,
        estimate_nanos: int,
        ttl_s: float,
        key: str | None,
    ) -> Query:
        """A new reservation, or an expired one of the same id taken back."""
        return Query(
            _sql()
            .SQL(
                "INSERT INTO {table} (id, thread_id, estimate_nanos, expires_at, idempotency_key) "
                "VALUES (%s, %s, %s, clock_timestamp() + make_interval(secs => %s), %s) "
                "ON CONFLICT (id) DO UPDATE SET "
                "estimate_nanos = excluded.estimate_nanos, expires_at = excluded.expires_at"
            )
            .format(table=self.table_sql),
            (reservation_id, thread_id, estimate_nanos, ttl_s, key),
        )

    def settle(
        self, reservation_id: str, actual_nanos: int | None, result_json: str | None
    ) -> Query:
        """Record the cost (``None``: the estimate) and result of an open reservation."""
        return Query(
            _sql()
            .SQL(
                "UPDATE {table} SET actual_nanos = coalesce(%s::bigint, estimate_nanos), "
                "result_json = %s WHERE id = %s AND actual_nanos IS NULL"
            )
            .format(table=self.table_sql),
            (actual_nanos, result_json, reservation_id),
        )

    def release(self, reservation_id: str) -> Query:
        """Delete an open reservation."""
        return Query(
            _sql()
            .SQL("DELETE FROM {table} WHERE id = %s AND actual_nanos IS NULL")
            .format(table=self.table_sql),
            (reservation_id,),
        )

    def spent(self, thread_id: str | None) -> Query:
        """Settled nanos of a thread, or of all."""
        sql = _sql()
        return Query(
            sql.SQL(
                "SELECT coalesce(sum(actual_nanos), 0)::bigint FROM {table} "
                "WHERE actual_nanos IS NOT NULL {where}"
            ).format(
                table=self.table_sql,
                where=sql.SQL("AND thread_id = %s" if thread_id is not None else ""),
            ),
            (thread_id,) if thread_id is not None else (),
        )

    def escalations(self, thread_id: str) -> Query:
        """Settled escalations of a thread."""
        return Query(
            _sql()
            .SQL("SELECT count(*) FROM {table} WHERE thread_id = %s AND actual_nanos IS NOT NULL")
            .format(table=self.table_sql),
            (thread_id,),
        )

    def usage(self, thread_id: str | None) -> Query:
        """One row in ``Usage`` order (NULL sums for no rows)."""
        sql = _sql()
        return Query(
            sql.SQL(
                "SELECT "
                "count(*) FILTER (WHERE thread_id = %(thread)s AND actual_nanos IS NOT NULL), "
                "sum(actual_nanos) FILTER (WHERE thread_id = %(thread)s), "
                "count(*) FILTER (WHERE thread_id = %(thread)s AND {open}), "
                "sum(estimate_nanos) FILTER (WHERE thread_id = %(thread)s AND {open}), "
                "sum(actual_nanos), "
                "sum(estimate_nanos) FILTER (WHERE {open}) "
                "FROM {table}"
            ).format(open=sql.SQL(_OPEN), table=self.table_sql),
            {"thread": thread_id},
        )

    def schema(self) -> list[Query]:
        """Create the table and its indexes, and add columns newer than the table (idempotent)."""
        sql = _sql()
        name = self.table.rsplit(".", 1)[-1]
        return [
            Query(sql.SQL("SELECT pg_advisory_xact_lock(hashtext(%s))"), (_SCHEMA_LOCK_KEY,)),
            Query(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {table} ("
                    "id text PRIMARY KEY, "
                    "thread_id text NOT NULL, "
                    "estimate_nanos bigint NOT NULL, "
                    "actual_nanos bigint, "
                    "expires_at timestamptz NOT NULL, "
                    "created_at timestamptz NOT NULL DEFAULT now())"
                ).format(table=self.table_sql)
            ),
            # Columns added since the first release: a table made by it gains them here.
            Query(
                sql.SQL(
                    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS idempotency_key text, "
                    "ADD COLUMN IF NOT EXISTS result_json text"
                ).format(table=self.table_sql)
            ),
            Query(
                sql.SQL(
                    "CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {table} (idempotency_key) "
                    "WHERE idempotency_key IS NOT NULL"
                ).format(index=sql.Identifier(f"{name}_key"), table=self.table_sql)
            ),
            Query(
                sql.SQL("CREATE INDEX IF NOT EXISTS {index} ON {table} (thread_id)").format(
                    index=sql.Identifier(f"{name}_thread"), table=self.table_sql
                )
            ),
        ]

    @property
    def table_sql(self) -> Composable:
        """The table as a quoted (schema-qualified) identifier."""
        identifier: Composable = _sql().Identifier(*self.table.split("."))
        return identifier

    @property
    def lock_key(self) -> str:
        """The advisory lock key of this ledger (hashed by the server)."""
        return f"langchain_escalate:{self.table}"


def _sql() -> Any:
    psycopg, _ = import_psycopg()
    return psycopg.sql


def import_psycopg() -> tuple[Any, Any]:
    """``psycopg`` and ``psycopg_pool``, or an ``ImportError`` saying how to install them."""
    try:
        import psycopg  # noqa: PLC0415 - optional dependency
        import psycopg.sql  # noqa: PLC0415 - optional dependency
        import psycopg_pool  # noqa: PLC0415 - optional dependency
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return psycopg, psycopg_pool
