"""A process SIGKILLed mid-escalation: its resume is granted, and never pays twice.

Real processes (spawned: nothing shared but the ledger) on a SQLite file and a
PostgreSQL table, with a budget that fits one escalation per thread:

1. a worker reserves with the escalation's key and is killed during the
   strong call, holding the reservation;
2. a fresh worker resumes the same escalation (same key): it is granted its
   own leftover reservation, not refused by it, pays, settles the cost and
   the answer, and is killed before it can do anything else;
3. a third worker resumes again: it finds the settled answer and its cost,
   and calls nothing.

The thread is charged once, and a different escalation is still refused.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import TYPE_CHECKING, Any

import pytest

from langchain_escalate.budget import Budget

if TYPE_CHECKING:
    from multiprocessing.context import SpawnContext, SpawnProcess

THREAD = "t-kill"
KEY = f"{THREAD}:1ef-checkpoint:agent:1"
ESTIMATE_USD = 0.05
COST_USD = 0.031
ANSWER = {"text": "Read the config from ./etc, not /etc.", "tokens_out": 412}
LIMITS = {"max_escalations_per_thread": 1, "max_usd_total": 1.0}


def _reserve_then_hang(url: str, reached: Any, report: Any) -> None:
    """Step 1: reserve, then hang 'in the strong call' until killed."""
    reservation = Budget(ledger=url, **LIMITS).reserve(THREAD, ESTIMATE_USD, key=KEY)
    report.put({"granted": reservation.granted, "id": reservation.id})
    reached.set()
    time.sleep(600)


def _resume_pay_settle_then_hang(url: str, reached: Any, report: Any) -> None:
    """Step 2: resume the escalation, pay, settle with the answer, then hang until killed."""
    budget = Budget(ledger=url, **LIMITS)
    reservation = budget.reserve(THREAD, ESTIMATE_USD, key=KEY)
    report.put(
        {"granted": reservation.granted, "resumed": reservation.resumed, "id": reservation.id}
    )
    if reservation.granted and not reservation.already_settled:
        reservation.settle(COST_USD, result=ANSWER)
    reached.set()
    time.sleep(600)


def _resume_again(url: str, report: Any) -> None:
    """Step 3: resume once more, and report what the ledger says."""
    budget = Budget(ledger=url, **LIMITS)
    reservation = budget.reserve(THREAD, ESTIMATE_USD, key=KEY)
    report.put(
        {
            "granted": reservation.granted,
            "already_settled": reservation.already_settled,
            "settled_usd": reservation.settled_usd,
            "settled_result": reservation.settled_result,
            "another_escalation": budget.reserve(THREAD, ESTIMATE_USD, key=f"{KEY}-next").granted,
        }
    )
    budget.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_ledger_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_ledger_url"))


@pytest.fixture(scope="module")
def spawn() -> SpawnContext:
    return multiprocessing.get_context("spawn")


def test_a_killed_escalation_resumes_and_never_pays_twice(
    shared_ledger_url: str, spawn: SpawnContext
) -> None:
    report = spawn.SimpleQueue()  # put() writes at once: safe before a SIGKILL

    first = _run_until_killed(spawn, _reserve_then_hang, shared_ledger_url, report)
    assert first == {"granted": True, "id": first["id"]}

    second = _run_until_killed(spawn, _resume_pay_settle_then_hang, shared_ledger_url, report)
    assert second == {"granted": True, "resumed": True, "id": first["id"]}

    third = spawn.Process(target=_resume_again, args=(shared_ledger_url, report))
    third.start()
    third.join(timeout=120)
    assert third.exitcode == 0
    assert report.get() == {
        "granted": True,
        "already_settled": True,
        "settled_usd": pytest.approx(COST_USD),
        "settled_result": ANSWER,
        "another_escalation": False,  # the one escalation of this thread is spent
    }

    budget = Budget(ledger=shared_ledger_url, **LIMITS)
    assert budget.spent(THREAD) == pytest.approx(COST_USD)  # charged once
    assert budget.escalations(THREAD) == 1
    assert budget.status(THREAD)["usd_total"]["reserved"] == 0.0  # nothing left held
    budget.close()


def test_without_a_key_the_resume_is_refused_by_its_own_reservation(
    shared_ledger_url: str, spawn: SpawnContext
) -> None:
    # What the key protects against: the same kill, then a resume that cannot reuse.
    report = spawn.SimpleQueue()  # put() writes at once: safe before a SIGKILL
    _run_until_killed(spawn, _reserve_then_hang, shared_ledger_url, report)

    budget = Budget(ledger=shared_ledger_url, **LIMITS)
    refused = budget.reserve(THREAD, ESTIMATE_USD)

    assert not refused.granted
    assert refused.reason == f"thread {THREAD} has used 1 of 1 escalations"
    budget.close()


def _run_until_killed(spawn: SpawnContext, target: Any, url: str, report: Any) -> dict[str, Any]:
    """Start ``target`` in a fresh process, wait for its point of no return, SIGKILL it."""
    reached = spawn.Event()
    process: SpawnProcess = spawn.Process(target=target, args=(url, reached, report))
    process.start()
    try:
        assert reached.wait(timeout=120), f"{target.__name__} never got there"
        outcome: dict[str, Any] = report.get()
    finally:
        os.kill(process.pid or 0, signal.SIGKILL)
        process.join()
    assert process.exitcode == -signal.SIGKILL
    return outcome
