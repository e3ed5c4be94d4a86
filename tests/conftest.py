"""Shared fixtures; each section is owned by the part named in its header."""

# --- budget ledgers (owner: cost & budget) -------------------------------------
# PostgreSQL for the ledger tests: a unique schema per test session, dropped at
# the end, and a fresh table per test inside it. Without a reachable server the
# tests are skipped with the reason shown, except under CI, where they fail.

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

POSTGRES_DSN = os.environ.get(
    "ESCALATE_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The test server's DSN; skips (fails under CI) when it cannot be reached."""
    try:
        import psycopg  # noqa: PLC0415 - optional: its absence is a skip reason too

        with psycopg.connect(POSTGRES_DSN, connect_timeout=3):
            pass
    except Exception as error:  # noqa: BLE001 - any failure means "no usable server"
        reason = f"PostgreSQL not reachable at {POSTGRES_DSN} ({type(error).__name__}: {error})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must provide it (ESCALATE_TEST_POSTGRES_DSN)")
        pytest.skip(reason)
    return POSTGRES_DSN


@pytest.fixture(scope="session")
def postgres_schema(postgres_dsn: str) -> Iterator[str]:
    """A schema private to this test session, dropped with everything in it at the end."""
    import psycopg  # noqa: PLC0415 - optional dependency
    from psycopg import sql  # noqa: PLC0415 - optional dependency

    schema = f"escalate_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield schema
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def postgres_ledger_url(postgres_dsn: str, postgres_schema: str) -> str:
    """A ``postgresql://...?table=<schema>.<fresh table>`` ledger URL for one test."""
    separator = "&" if "?" in postgres_dsn else "?"
    table = f"{postgres_schema}.reservations_{uuid.uuid4().hex[:8]}"
    return f"{postgres_dsn}{separator}table={table}"


@pytest.fixture
def sqlite_ledger_url(tmp_path: Path) -> str:
    """A ``sqlite:////abs/path`` ledger URL in the test's tmp dir."""
    return f"sqlite:///{tmp_path}/ledger.db"


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest) -> str:
    """Each ledger in turn: ``memory://``, a SQLite file, a PostgreSQL table."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_ledger_url"))
    return str(request.getfixturevalue("postgres_ledger_url"))


@pytest.fixture
def make_budget(ledger_url: str) -> Iterator[Callable[..., Any]]:
    """Budgets sharing one ledger (one MemoryLedger object stands for the shared store)."""
    from langchain_escalate.budget import Budget, MemoryLedger  # noqa: PLC0415 - budget tests only

    shared: Any = MemoryLedger() if ledger_url == "memory://" else ledger_url
    made: list[Budget] = []

    def make(**limits: Any) -> Budget:
        budget = Budget(ledger=shared, **limits)
        made.append(budget)
        return budget

    yield make
    for budget in made:
        budget.close()


# --- end budget ledgers ----------------------------------------------------------
