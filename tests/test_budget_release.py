"""Reservations never leak: whatever ends the block, paid money is settled and the rest freed.

Each test uses a budget that fits one escalation, so a leaked reservation shows
as a refused retry. Every behaviour runs against the three ledgers.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from langchain_escalate.budget import Budget, PostgresLedger

MakeBudget = Callable[..., Budget]


class UnusableAnswerError(Exception):
    """The strong model replied (and billed) but the reply cannot be used."""


def test_keyboard_interrupt_inside_with_releases(make_budget: MakeBudget) -> None:
    budget = make_budget(max_escalations_per_thread=1)

    with pytest.raises(KeyboardInterrupt), budget.reserve("t1", 0.02):
        raise KeyboardInterrupt

    assert budget.reserve("t1", 0.02).granted
    assert budget.spent("t1") == 0.0


def test_a_paid_but_unusable_answer_is_settled_not_released(make_budget: MakeBudget) -> None:
    budget = make_budget(max_escalations_per_thread=1)

    with pytest.raises(UnusableAnswerError):
        _escalate(budget, paid_usd=0.12, then=UnusableAnswerError())  # 20k tokens, empty reply

    assert budget.spent("t1") == pytest.approx(0.12)
    assert budget.escalations("t1") == 1
    assert not budget.reserve("t1", 0.02).granted


def test_a_paid_call_interrupted_by_keyboard_interrupt_is_settled(
    make_budget: MakeBudget,
) -> None:
    budget = make_budget()

    with pytest.raises(KeyboardInterrupt):
        _escalate(budget, paid_usd=None, then=KeyboardInterrupt())  # price unknown: estimate

    assert budget.spent("t1") == pytest.approx(0.05)


def _escalate(budget: Budget, *, paid_usd: float | None, then: BaseException) -> None:
    """An escalation whose strong call was billed, then ended by ``then``."""
    with budget.reserve("t1", 0.05) as reservation:
        reservation.mark_paid(paid_usd)
        raise then


def test_release_after_mark_paid_settles(make_budget: MakeBudget) -> None:
    budget = make_budget()
    reservation = budget.reserve("t1", 0.05)
    reservation.mark_paid(0.03)

    reservation.release()  # a failure path written before the call was known to be billed

    assert budget.spent("t1") == pytest.approx(0.03)


async def test_wait_for_timeout_releases(make_budget: MakeBudget) -> None:
    budget = make_budget(max_escalations_per_thread=1)

    async def escalate() -> None:
        async with await budget.areserve("t1", 0.02):
            await asyncio.sleep(60)  # the strong call, too slow

    with pytest.raises(asyncio.TimeoutError):  # not the builtin before Python 3.11
        await asyncio.wait_for(escalate(), timeout=0.05)

    assert (await budget.areserve("t1", 0.02)).granted
    assert await budget.aspent("t1") == 0.0


async def test_cancelled_after_payment_settles(make_budget: MakeBudget) -> None:
    budget = make_budget(max_escalations_per_thread=1)
    paid = asyncio.Event()

    async def escalate() -> None:
        async with await budget.areserve("t1", 0.05) as reservation:
            reservation.mark_paid(0.04)
            paid.set()
            await asyncio.sleep(60)  # parsing, validating... then cancelled

    task = asyncio.create_task(escalate())
    await paid.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await budget.aspent("t1") == pytest.approx(0.04)


async def test_keyboard_interrupt_inside_async_with_releases(make_budget: MakeBudget) -> None:
    budget = make_budget(max_escalations_per_thread=1)

    with pytest.raises(KeyboardInterrupt):
        async with await budget.areserve("t1", 0.02):
            raise KeyboardInterrupt

    assert (await budget.areserve("t1", 0.02)).granted


# --- cancellation while the ledger itself is busy -------------------------------------
# Another process holds the lock the ledger call needs; the caller is cancelled
# meanwhile. The call must still complete its effect (reserve then release; settle).


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_ledger_url"))


async def test_cancelled_while_reserving_releases_what_the_ledger_reserved(
    shared_url: str,
) -> None:
    budget = Budget(max_usd_total=1.0, max_escalations_per_thread=1, ledger=shared_url)
    await budget.areserve("warm-up", 0.0)  # creates the table
    blocker = await _Blocker.hold(budget)

    reserving = asyncio.create_task(asyncio.wait_for(budget.areserve("t1", 0.02), timeout=0.1))
    await asyncio.sleep(0.3)  # the timeout fired while the ledger waited for the lock
    await blocker.let_go()

    with pytest.raises(asyncio.TimeoutError):  # not the builtin before Python 3.11
        await reserving
    assert (await budget.areserve("t1", 0.02)).granted  # nothing was left held
    await budget.aclose()


async def test_cancelled_while_settling_still_records_the_cost(shared_url: str) -> None:
    budget = Budget(max_usd_total=1.0, ledger=shared_url)
    reservation = await budget.areserve("t1", 0.05)
    blocker = await _Blocker.hold(budget, row=reservation.id)

    settling = asyncio.create_task(reservation.asettle(0.03))
    await asyncio.sleep(0.1)
    settling.cancel()  # cancelled while the write waits for the lock
    await asyncio.sleep(0.1)
    settling.cancel()  # and again
    await blocker.let_go()

    with pytest.raises(asyncio.CancelledError):
        await settling
    assert await budget.aspent("t1") == pytest.approx(0.03)
    await budget.aclose()


class _Blocker:
    """Another process holding the lock a ledger write needs."""

    def __init__(self, release: Callable[[], Any]) -> None:
        self._release = release

    @classmethod
    async def hold(cls, budget: Budget, *, row: str | None = None) -> _Blocker:
        ledger = budget.get_ledger()
        if isinstance(ledger, PostgresLedger):
            import psycopg  # noqa: PLC0415 - optional dependency, present when the fixture is

            connection = await psycopg.AsyncConnection.connect(ledger.dsn)
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))",
                (f"langchain_escalate:{ledger.table}",),
            )
            if row is not None:  # the reservation's row, as a concurrent writer would
                schema, table = ledger.table.split(".")
                await connection.execute(
                    f'SELECT 1 FROM "{schema}"."{table}" WHERE id = %s FOR UPDATE',  # noqa: S608 - test names
                    (row,),
                )

            async def release() -> None:
                await connection.commit()
                await connection.close()

            return cls(release)
        path = Path(str(getattr(ledger, "path", "")))
        blocking = sqlite3.connect(path, isolation_level=None)
        blocking.execute("BEGIN IMMEDIATE")

        async def release_sqlite() -> None:
            blocking.execute("COMMIT")
            blocking.close()

        return cls(release_sqlite)

    async def let_go(self) -> None:
        await self._release()
