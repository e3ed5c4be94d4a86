"""Budgets: what each limit refuses, and how reservations are settled, released and expire.

Every behaviour runs against the three ledgers (memory, SQLite file, PostgreSQL).
"""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest

from langchain_escalate.budget import (
    Budget,
    MemoryLedger,
    PostgresLedger,
    SQLiteLedger,
    open_ledger,
)
from langchain_escalate.budget import ledger as ledger_module
from langchain_escalate.budget import sqlite as sqlite_module

MakeBudget = Callable[..., Budget]


def test_escalations_per_thread_refuses_the_next_one_with_a_reason(make_budget: MakeBudget) -> None:
    budget = make_budget(max_escalations_per_thread=2)
    for _ in range(2):
        budget.reserve("t1", 0.01).settle(0.01)

    refused = budget.reserve("t1", 0.01)

    assert not refused.granted
    assert refused.reason == "thread t1 has used 2 of 2 escalations"
    assert budget.reserve("t2", 0.01).granted  # another thread has its own count


def test_live_reservations_count_against_the_thread(make_budget: MakeBudget) -> None:
    budget = make_budget(max_escalations_per_thread=1)
    held = budget.reserve("t1", 0.01)

    assert held.granted
    assert not budget.reserve("t1", 0.01).granted


def test_usd_per_thread_includes_the_estimate(make_budget: MakeBudget) -> None:
    budget = make_budget(max_usd_per_thread=0.10)
    budget.reserve("t1", 0.06).settle(0.06)

    refused = budget.reserve("t1", 0.05)

    assert not refused.granted
    assert refused.reason == (
        "thread t1 has spent or reserved $0.0600 of its $0.1000; "
        "this escalation is estimated at $0.0500"
    )
    assert budget.reserve("t1", 0.04).granted  # exactly up to the limit fits


def test_total_usd_spans_threads_and_budgets(make_budget: MakeBudget) -> None:
    first = make_budget(max_usd_total=0.30)
    second = make_budget(max_usd_total=0.30)  # another worker on the same ledger
    for thread in ("a", "b", "c"):
        assert first.reserve(thread, 0.10).granted

    refused = second.reserve("d", 0.10)

    assert not refused.granted
    assert "total budget" in refused.reason
    assert "$0.3000 spent or reserved of $0.3000" in refused.reason


def test_a_budget_that_fits_n_escalations_grants_exactly_n(make_budget: MakeBudget) -> None:
    # 0.1 + 0.1 + 0.1 > 0.3 in floats: amounts are counted in nano-dollars.
    budget = make_budget(max_usd_total=0.3)
    granted = [budget.reserve(f"t{i}", 0.1).granted for i in range(5)]
    assert granted == [True, True, True, False, False]


def test_release_frees_the_reservation(make_budget: MakeBudget) -> None:
    budget = make_budget(max_escalations_per_thread=1)
    budget.reserve("t1", 0.01).release()

    assert budget.reserve("t1", 0.01).granted
    assert budget.spent("t1") == 0.0


def test_settle_replaces_the_estimate_with_the_actual_cost(make_budget: MakeBudget) -> None:
    budget = make_budget(max_usd_per_thread=0.10)
    budget.reserve("t1", 0.08).settle(0.02)

    assert budget.spent("t1") == pytest.approx(0.02)
    assert budget.escalations("t1") == 1
    assert budget.reserve("t1", 0.08).granted  # the unused 0.06 came back


def test_settling_an_unknown_cost_keeps_the_estimate(make_budget: MakeBudget) -> None:
    budget = make_budget()
    budget.reserve("t1", 0.04).settle(None)
    assert budget.spent("t1") == pytest.approx(0.04)


def test_no_estimate_reserves_the_default(make_budget: MakeBudget) -> None:
    budget = make_budget(max_usd_per_thread=0.10, default_estimate_usd=0.06)
    assert budget.reserve("t1").granted
    assert not budget.reserve("t1").granted


def test_spent_reports_per_thread_and_in_total(make_budget: MakeBudget) -> None:
    budget = make_budget()
    budget.reserve("t1", 0.05).settle(0.01)
    budget.reserve("t2", 0.05).settle(0.02)
    budget.reserve("t2", 0.05)  # live, not spent yet

    assert budget.spent("t1") == pytest.approx(0.01)
    assert budget.spent() == pytest.approx(0.03)
    assert budget.escalations("t2") == 1


def test_context_manager_releases_unless_settled(make_budget: MakeBudget) -> None:
    budget = make_budget(max_escalations_per_thread=1)
    with pytest.raises(RuntimeError, match="strong model failed"):  # noqa: SIM117 - the error is the point
        with budget.reserve("t1", 0.01):
            raise RuntimeError("strong model failed")
    assert budget.reserve("t1", 0.01).granted


def test_a_refused_reservation_cannot_be_settled(make_budget: MakeBudget) -> None:
    budget = make_budget(max_escalations_per_thread=0)
    refused = budget.reserve("t1", 0.01)
    refused.release()  # harmless
    with pytest.raises(ValueError, match="refused reservation for thread t1"):
        refused.settle(0.01)


def test_settling_twice_is_an_error_and_release_after_settle_is_not(
    make_budget: MakeBudget,
) -> None:
    budget = make_budget()
    reservation = budget.reserve("t1", 0.01)
    reservation.settle(0.01)
    reservation.release()
    with pytest.raises(RuntimeError, match="already settled or released"):
        reservation.settle(0.01)
    assert budget.spent("t1") == pytest.approx(0.01)


async def test_async_twins_share_the_ledger(make_budget: MakeBudget) -> None:
    budget = make_budget(max_escalations_per_thread=2)
    try:
        first = await budget.areserve("t1", 0.02)
        await first.asettle(0.01)
        second = await budget.areserve("t1", 0.02)
        await second.arelease()

        assert budget.spent("t1") == pytest.approx(0.01)
        assert await budget.aspent() == pytest.approx(0.01)
        assert await budget.aescalations("t1") == 1
        assert (await budget.areserve("t1", 0.02)).granted
    finally:
        # An async pool belongs to this test's event loop: close it here, before the
        # loop closes (left open, the loop's shutdown can wait on its workers).
        await budget.aclose()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])  # Postgres: test_ledger_concurrency
def test_reservations_of_a_dead_holder_expire(
    kind: str, sqlite_ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _FakeClock(monkeypatch)
    ledger = "memory://" if kind == "memory" else sqlite_ledger_url
    budget = Budget(max_escalations_per_thread=1, reservation_ttl_s=60, ledger=ledger)
    abandoned = budget.reserve("t1", 0.01)

    clock.advance(59)
    assert not budget.reserve("t1", 0.01).granted
    clock.advance(2)
    assert budget.reserve("t1", 0.01).granted

    abandoned.settle(0.01)  # a late settle is still counted: the money was spent
    assert budget.spent("t1") == pytest.approx(0.01)
    budget.close()


class _FakeClock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1_000_000.0
        fake_time = type("FakeTime", (), {"monotonic": self.read, "time": self.read})
        monkeypatch.setattr(ledger_module, "time", fake_time)
        monkeypatch.setattr(sqlite_module, "time", fake_time)

    def read(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- async does not block the event loop -------------------------------------------


async def test_sqlite_areserve_waits_for_the_lock_without_blocking_the_loop(
    sqlite_ledger_url: str,
) -> None:
    budget = Budget(ledger=sqlite_ledger_url)
    budget.reserve("warm-up", 0.0).settle(0.0)  # creates the file and table
    path = Path(sqlite_ledger_url.removeprefix("sqlite:///"))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock

    reserving = asyncio.create_task(budget.areserve("t1", 0.01))
    ticks = await _ticks_while_pending(reserving)
    blocker.execute("COMMIT")
    blocker.close()

    assert ticks >= 3
    assert (await reserving).granted
    budget.close()


@pytest.mark.postgres
async def test_postgres_areserve_waits_for_the_lock_without_blocking_the_loop(
    postgres_ledger_url: str,
) -> None:
    import psycopg  # noqa: PLC0415 - optional dependency, present when the fixture is

    budget = Budget(max_usd_total=1.0, ledger=postgres_ledger_url)
    await budget.areserve("warm-up", 0.0)
    ledger = budget.get_ledger()
    assert isinstance(ledger, PostgresLedger)
    blocker = await psycopg.AsyncConnection.connect(ledger.dsn)
    # Another worker in the middle of a total-checking reservation.
    await blocker.execute(
        "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"langchain_escalate:{ledger.table}",)
    )

    reserving = asyncio.create_task(budget.areserve("t1", 0.01))
    ticks = await _ticks_while_pending(reserving)
    await blocker.commit()
    await blocker.close()

    assert ticks >= 3
    assert (await reserving).granted
    await budget.aclose()


async def _ticks_while_pending(task: asyncio.Task[Any], ticks: int = 3) -> int:
    """Run the loop for a few ticks while ``task`` is blocked on a lock; count them."""
    count = 0
    for _ in range(ticks):
        await asyncio.sleep(0.02)
        assert not task.done(), "the reservation did not wait for the lock"
        count += 1
    return count


# --- configuration ------------------------------------------------------------------


def test_ledger_is_opened_lazily_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ledger.db"
    budget = Budget(ledger=f"sqlite:///{path}")
    assert not path.exists()

    budget.reserve("t1", 0.01)

    assert path.exists()
    assert budget.get_ledger() is budget.get_ledger()
    budget.close()


@pytest.mark.parametrize(
    ("url", "kind", "target"),
    [
        ("memory://", MemoryLedger, None),
        ("sqlite:///relative/ledger.db", SQLiteLedger, "relative/ledger.db"),
        ("sqlite:////abs/ledger.db", SQLiteLedger, "/abs/ledger.db"),
        ("postgresql://u@h:5432/db", PostgresLedger, "postgresql://u@h:5432/db"),
        ("postgres://u@h/db?sslmode=disable", PostgresLedger, "postgres://u@h/db?sslmode=disable"),
    ],
)
def test_ledger_urls(url: str, kind: type, target: str | None) -> None:
    ledger = open_ledger(url)
    assert isinstance(ledger, kind)
    if isinstance(ledger, SQLiteLedger):
        assert str(ledger.path) == target
    if isinstance(ledger, PostgresLedger):
        assert ledger.dsn == target
        assert ledger.table == "escalate_reservations"


def test_table_comes_from_the_url_and_is_removed_from_the_dsn() -> None:
    ledger = open_ledger("postgresql://u@h/db?sslmode=disable&table=billing.spend")
    assert isinstance(ledger, PostgresLedger)
    assert ledger.table == "billing.spend"
    assert ledger.dsn == "postgresql://u@h/db?sslmode=disable"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://localhost", "is not a ledger URL"),
        ("sqlite://", "names no SQLite file"),
        ("sqlite:///:memory:", "names no SQLite file"),
        ("sqlite:///x.db?table=drop table", "must be letters, digits and underscores"),
    ],
)
def test_bad_ledger_urls_say_what_to_write(url: str, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        Budget(ledger=url)


def test_budget_rejects_unknown_and_negative_settings() -> None:
    with pytest.raises(pydantic.ValidationError, match="max_usd_per_threads"):
        Budget(max_usd_per_threads=1.0)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError, match="greater than or equal to 0"):
        Budget(max_usd_total=-1)
    with pytest.raises(ValueError, match="estimate_usd must be a finite number of USD"):
        Budget().reserve("t1", -0.01)


def test_json_schema_describes_the_ledger_as_a_url() -> None:
    schema = Budget.model_json_schema()
    assert schema["properties"]["ledger"]["type"] == "string"
    assert schema["additionalProperties"] is False


def test_postgres_without_psycopg_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    ledger = PostgresLedger("postgresql://u@h/db")
    with pytest.raises(ImportError, match=r'pip install "langchain-escalate\[postgres\]"'):
        ledger.spent()


def test_a_pickled_budget_opens_its_own_ledger_on_the_same_file(sqlite_ledger_url: str) -> None:
    budget = Budget(max_escalations_per_thread=1, ledger=sqlite_ledger_url)
    budget.reserve("t1", 0.01).settle(0.01)

    copy_in_another_worker = pickle.loads(pickle.dumps(budget))  # noqa: S301 - our own bytes

    assert copy_in_another_worker.get_ledger() is not budget.get_ledger()
    assert copy_in_another_worker.reserve("t1", 0.01).reason == (
        "thread t1 has used 1 of 1 escalations"
    )
    copy_in_another_worker.close()
    budget.close()


def test_a_deep_copy_is_the_same_budget() -> None:
    budget = Budget(max_escalations_per_thread=1)
    budget.reserve("t1", 0.01)
    assert not copy.deepcopy(budget).reserve("t1", 0.01).granted


@pytest.mark.parametrize(
    "field", ["max_usd_per_thread", "max_usd_total", "default_estimate_usd", "reservation_ttl_s"]
)
@pytest.mark.parametrize("value", [float("inf"), float("nan"), "1e309", "-inf", ".inf"])
def test_budget_amounts_must_be_finite(field: str, value: object) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        Budget(**{field: value})
    [error] = caught.value.errors()
    assert error["loc"] == (field,)
    assert error["type"] in ("finite_number", "float_parsing")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_usd_total", -0.01, "greater than or equal to 0"),
        ("max_usd_per_thread", -1, "greater than or equal to 0"),
        ("max_escalations_per_thread", -1, "greater than or equal to 0"),
        ("max_usd_total", 1e300, "less than or equal to 1000000000"),
        ("reservation_ttl_s", 0, "greater than 0"),
        ("reservation_ttl_s", 1e12, "less than or equal to 31536000"),
        ("max_escalations_per_thread", float("inf"), "finite number"),
    ],
)
def test_budget_limits_out_of_range_say_which_and_why(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        Budget(**{field: value})


def test_the_largest_budget_still_reserves(make_budget: MakeBudget) -> None:
    budget = make_budget(max_usd_total=1e9, max_usd_per_thread=1e9)
    assert budget.reserve("t1", 1e9).granted
    assert not budget.reserve("t2", 0.01).granted


@pytest.mark.parametrize("cost", [float("inf"), float("nan"), -0.01, 1e309])
def test_an_impossible_cost_settles_the_estimate_then_raises(
    make_budget: MakeBudget, cost: float
) -> None:
    budget = make_budget()
    reservation = budget.reserve("t1", 0.05)

    with pytest.raises(ValueError, match="actual_usd must be a finite number of USD"):
        reservation.settle(cost)

    assert budget.spent("t1") == pytest.approx(0.05)  # the money counts, at its estimate


@pytest.mark.parametrize("estimate", [float("inf"), float("nan"), 1e10])
def test_an_impossible_estimate_is_refused_before_reserving(
    make_budget: MakeBudget, estimate: float
) -> None:
    budget = make_budget(max_escalations_per_thread=1)
    with pytest.raises(ValueError, match="estimate_usd must be a finite number of USD"):
        budget.reserve("t1", estimate)
    assert budget.reserve("t1", 0.01).granted


# --- status -------------------------------------------------------------------------


def test_status_reports_spent_reserved_and_remaining_per_limit(make_budget: MakeBudget) -> None:
    budget = make_budget(max_escalations_per_thread=3, max_usd_per_thread=0.5, max_usd_total=1.0)
    budget.reserve("t1", 0.25).settle(0.2)
    budget.reserve("t1", 0.1)  # open
    budget.reserve("t2", 0.3).settle(0.3)
    budget.reserve("t2", 0.05).release()

    status = budget.status("t1")

    assert status["thread_id"] == "t1"
    assert status["escalations_per_thread"] == {
        "limit": 3,
        "spent": 1,
        "reserved": 1,
        "remaining": 1,
    }
    assert status["usd_per_thread"] == pytest.approx(
        {"limit": 0.5, "spent": 0.2, "reserved": 0.1, "remaining": 0.2}
    )
    assert status["usd_total"] == pytest.approx(
        {"limit": 1.0, "spent": 0.5, "reserved": 0.1, "remaining": 0.4}
    )
    assert json.loads(json.dumps(status)) == status


async def test_status_without_a_thread_or_limits(make_budget: MakeBudget) -> None:
    budget = make_budget(max_usd_total=0.1)
    budget.reserve("t1", 0.08).settle(0.15)  # spend above the limit: remaining floors at 0

    status = await budget.astatus()
    await budget.aclose()  # its async pool belongs to this test's event loop

    assert status["escalations_per_thread"] is None
    assert status["usd_per_thread"] is None
    assert status["usd_total"] == pytest.approx(
        {"limit": 0.1, "spent": 0.15, "reserved": 0.0, "remaining": 0.0}
    )
    unlimited = make_budget().status("nobody")
    assert unlimited["usd_per_thread"] == {
        "limit": None,
        "spent": 0.0,
        "reserved": 0.0,
        "remaining": None,
    }
    assert unlimited["ledger"].endswith("Ledger")


_CLOSE_RACE = """
import sys, threading, time
from langchain_escalate.budget import SQLiteLedger
from langchain_escalate.budget.ledger import Limits

ledger = SQLiteLedger(sys.argv[1])
stop = threading.Event()
errors = []

def work():
    while not stop.is_set():
        try:
            reservation = ledger.reserve("t", estimate_usd=0.01, limits=Limits(), ttl_s=60)
            ledger.settle(reservation.id, actual_usd=0.01)
            ledger.usage("t")
        except Exception as error:
            errors.append(repr(error))

workers = [threading.Thread(target=work) for _ in range(4)]
for worker in workers:
    worker.start()
for _ in range(300):
    ledger.close()
    time.sleep(0.001)
stop.set()
for worker in workers:
    worker.join()
# Closing the last connection checkpoints and removes the WAL file; a thread opening a
# new connection at that instant may be told "database is locked" (an error, no crash).
others = [error for error in errors if "database is locked" not in error]
print(others[:3], ledger.escalations("t") > 0)
"""


def test_closing_an_sqlite_ledger_while_threads_use_it_crashes_nothing(tmp_path: Path) -> None:
    # In a child process: closing a connection under a running statement killed the
    # interpreter (SIGSEGV); close now waits for the statement, and the workers reopen.
    # Python 3.10's CI run once saw one "database is locked" among ~1,000 statements.
    done = subprocess.run(  # noqa: S603 (this interpreter, a script of this test)
        [sys.executable, "-c", _CLOSE_RACE, str(tmp_path / "ledger.db")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[] True"  # no statement failed, and work was done
