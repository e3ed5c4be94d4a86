"""Idempotency keys: a retried escalation reuses its own reservation and never pays twice.

Every behaviour runs against the three ledgers (memory, SQLite file, PostgreSQL).
The kill-and-resume proof with real processes is ``test_budget_kill.py``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from langchain_escalate.budget import Budget, SQLiteLedger
from langchain_escalate.budget.reservation import MAX_RESULT_BYTES

if TYPE_CHECKING:
    from pathlib import Path

MakeBudget = Callable[..., Budget]
KEY = "t1:ckpt-7:agent:1"


def test_an_open_keyed_reservation_is_reused_not_refused(make_budget: MakeBudget) -> None:
    budget = make_budget(max_escalations_per_thread=1)
    first = budget.reserve("t1", 0.02, key=KEY)

    again = budget.reserve("t1", 0.02, key=KEY)  # the same escalation, retried

    assert again.granted
    assert again.resumed
    assert again.id == first.id
    assert not budget.reserve("t1", 0.02, key="t1:ckpt-8:agent:1").granted  # still one
    again.settle(0.01)
    assert budget.escalations("t1") == 1
    assert budget.spent("t1") == pytest.approx(0.01)


def test_a_settled_key_returns_its_cost_and_result_without_a_second_charge(
    make_budget: MakeBudget,
) -> None:
    budget = make_budget(max_escalations_per_thread=1, max_usd_total=1.0)
    answer = {"text": "Use the v2 endpoint.", "tool_calls": [], "tokens": [1200, 85]}
    budget.reserve("t1", 0.05, key=KEY).settle(0.013, result=answer)

    again = budget.reserve("t1", 0.05, key=KEY)

    assert again.granted
    assert again.already_settled
    assert not again.open
    assert again.settled_usd == pytest.approx(0.013)
    assert again.settled_result == answer
    again.release()  # harmless: nothing is held
    assert budget.spent() == pytest.approx(0.013)
    assert budget.escalations("t1") == 1
    with pytest.raises(RuntimeError, match="by an earlier attempt with key"):
        again.settle(0.013)


def test_a_settled_key_without_a_result_says_so(make_budget: MakeBudget) -> None:
    budget = make_budget()
    budget.reserve("t1", 0.05, key=KEY).settle(None)

    again = budget.reserve("t1", 0.05, key=KEY)

    assert again.already_settled
    assert again.settled_result is None
    assert again.settled_usd == pytest.approx(0.05)  # an unknown cost keeps the estimate


def test_a_released_key_reserves_afresh(make_budget: MakeBudget) -> None:
    budget = make_budget(max_escalations_per_thread=1)
    first = budget.reserve("t1", 0.02, key=KEY)
    first.release()

    again = budget.reserve("t1", 0.02, key=KEY)

    assert again.granted
    assert not again.resumed
    assert again.open


def test_keys_do_not_change_unkeyed_reservations(make_budget: MakeBudget) -> None:
    budget = make_budget(max_escalations_per_thread=2)
    budget.reserve("t1", 0.01, key=KEY)
    assert budget.reserve("t1", 0.01).granted
    assert not budget.reserve("t1", 0.01).granted


def test_a_key_belongs_to_one_thread(make_budget: MakeBudget) -> None:
    budget = make_budget()
    budget.reserve("t1", 0.01, key=KEY)
    with pytest.raises(ValueError, match="belongs to thread 't1', not 't2'"):
        budget.reserve("t2", 0.01, key=KEY)


async def test_async_keys_behave_the_same(make_budget: MakeBudget) -> None:
    budget = make_budget(max_escalations_per_thread=1)
    first = await budget.areserve("t1", 0.02, key=KEY)
    resumed = await budget.areserve("t1", 0.02, key=KEY)
    assert resumed.resumed
    assert resumed.id == first.id
    await resumed.asettle(0.01, result={"text": "done"})

    settled = await budget.areserve("t1", 0.02, key=KEY)

    assert settled.already_settled
    assert settled.settled_result == {"text": "done"}
    assert await budget.aescalations("t1") == 1


def test_a_result_over_the_limit_is_not_stored_but_the_cost_is(
    make_budget: MakeBudget, caplog: pytest.LogCaptureFixture
) -> None:
    budget = make_budget()
    huge = {"text": "x" * (MAX_RESULT_BYTES + 1)}
    with caplog.at_level(logging.WARNING):
        budget.reserve("t1", 0.05, key=KEY).settle(0.02, result=huge)

    again = budget.reserve("t1", 0.05, key=KEY)

    assert again.already_settled
    assert again.settled_result is None
    assert budget.spent("t1") == pytest.approx(0.02)
    assert "over the 65536-byte limit: not stored" in caplog.text


@pytest.mark.parametrize(
    "result",
    [{"when": object()}, {"score": float("nan")}, ["not", "an", "object"]],
)
def test_a_result_that_is_not_json_raises_after_the_cost_is_recorded(
    make_budget: MakeBudget, result: object
) -> None:
    budget = make_budget()
    reservation = budget.reserve("t1", 0.05, key=KEY)

    with pytest.raises(ValueError, match=r"result of reservation \w+ of thread t1"):
        reservation.settle(0.02, result=result)  # type: ignore[arg-type]

    assert budget.spent("t1") == pytest.approx(0.02)  # the money still counts
    assert not reservation.open


def test_an_expired_keyed_reservation_is_checked_again(make_budget: MakeBudget) -> None:
    budget = make_budget(max_escalations_per_thread=1, reservation_ttl_s=0.05)
    other = make_budget(max_escalations_per_thread=1)
    first = budget.reserve("t1", 0.02, key=KEY)
    assert _granted_once_expired(other, "t1")  # the slot came free, and is taken again

    refused = budget.reserve("t1", 0.02, key=KEY)

    assert not refused.granted  # a dead key does not jump the queue
    first.settle(0.02)  # its slow holder settles late: still counted
    assert budget.spent("t1") == pytest.approx(0.02)


def test_an_expired_keyed_reservation_is_revived_when_the_limits_allow(
    make_budget: MakeBudget,
) -> None:
    budget = make_budget(max_escalations_per_thread=1, reservation_ttl_s=0.05)
    first = budget.reserve("t1", 0.02, key=KEY)
    deadline = time.monotonic() + 30
    while budget.status("t1")["escalations_per_thread"]["reserved"]:
        assert time.monotonic() < deadline, "the reservation never expired"
        time.sleep(0.02)

    revived = budget.reserve("t1", 0.03, key=KEY)

    assert revived.granted
    assert revived.id == first.id  # the same row: one escalation, counted once
    assert revived.estimate_usd == pytest.approx(0.03)
    first.settle(0.01)  # the slow first holder settles; the revived one finds it done
    revived.settle(0.02)
    assert budget.spent("t1") == pytest.approx(0.01)
    assert budget.escalations("t1") == 1


def test_an_old_table_gains_the_key_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:  # the table as the first release made it
        connection.execute(
            "CREATE TABLE escalate_reservations (id TEXT PRIMARY KEY, thread_id TEXT NOT NULL, "
            "estimate_nanos INTEGER NOT NULL, actual_nanos INTEGER, expires_at REAL NOT NULL)"
        )
        connection.execute(
            "INSERT INTO escalate_reservations VALUES ('old', 't1', 10000000, 10000000, 0)"
        )
    connection.close()
    budget = Budget(ledger=SQLiteLedger(path), max_escalations_per_thread=2)

    budget.reserve("t1", 0.01, key=KEY).settle(0.01, result={"text": "ok"})

    assert budget.reserve("t1", 0.01, key=KEY).settled_result == {"text": "ok"}
    assert budget.escalations("t1") == 2
    budget.get_ledger().close()


def _granted_once_expired(budget: Budget, thread_id: str) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if budget.reserve(thread_id, 0.02).granted:
            return True
        time.sleep(0.02)
    return False
