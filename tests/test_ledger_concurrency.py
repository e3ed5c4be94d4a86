"""Concurrent agents cannot overspend: races on a budget that fits exactly N escalations.

SQLite and PostgreSQL: 8 processes (spawned, so nothing is shared but the
ledger) start together and each tries several escalations. Memory: 32 threads.
In every race exactly N reservations are granted and the settled spend equals,
never exceeds, the cap. A process killed while holding a reservation stops
counting once its reservation expires.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from langchain_escalate.budget import Budget, MemoryLedger

if TYPE_CHECKING:
    from collections.abc import Iterator
    from multiprocessing.pool import Pool

PROCESSES = 8
THREADS = 32
ATTEMPTS_PER_WORKER = 3
FITS = 5  # the budget fits exactly this many escalations
ESTIMATE_USD = 0.01

# Two races: the total cap shared by many threads, and one thread's caps.
SCENARIOS = {
    "total": {"max_usd_total": FITS * ESTIMATE_USD},
    "thread": {"max_escalations_per_thread": FITS, "max_usd_per_thread": 1.0},
}


def _thread_id(scenario: str, worker: int, attempt: int) -> str:
    return "shared" if scenario == "thread" else f"w{worker}-a{attempt}"


_start: Any = None  # in each racer process: the barrier every racer waits on


def _set_start(barrier: Any) -> None:
    global _start  # noqa: PLW0603 - a pool initializer can only hand state over this way
    _start = barrier


def _race_in_process(ledger_url: str, scenario: str, worker: int) -> int:
    return _race(ledger_url, scenario, worker, _start)


def _race(ledger: Any, scenario: str, worker: int, start: Any) -> int:
    """One racer: wait for the others, then try to escalate a few times."""
    budget = Budget(ledger=ledger, **SCENARIOS[scenario])
    start.wait()
    granted = 0
    for attempt in range(ATTEMPTS_PER_WORKER):
        reservation = budget.reserve(_thread_id(scenario, worker, attempt), ESTIMATE_USD)
        if reservation.granted:
            reservation.settle(ESTIMATE_USD)
            granted += 1
    if isinstance(ledger, str):
        budget.close()
    return granted


def _race_one_key_in_process(ledger_url: str, worker: int) -> tuple[bool, str]:
    """One racer retrying the same escalation (one key) as every other racer."""
    budget = Budget(ledger=ledger_url, max_escalations_per_thread=1)
    _start.wait()
    reservation = budget.reserve("one-escalation", ESTIMATE_USD, key="one-escalation:ckpt:1")
    if reservation.granted and reservation.open:
        reservation.settle(ESTIMATE_USD * (worker + 1))  # whoever settles first is counted
    budget.close()
    return reservation.granted, reservation.id


def _hold_and_wait_to_be_killed(ledger_url: str, ttl_s: float, reserved: Any) -> None:
    budget = Budget(ledger=ledger_url, max_escalations_per_thread=1, reservation_ttl_s=ttl_s)
    reservation = budget.reserve("victim", ESTIMATE_USD)
    if reservation.granted:
        reserved.set()
    time.sleep(600)  # killed long before this ends


@pytest.fixture(scope="module")
def spawn() -> multiprocessing.context.SpawnContext:
    return multiprocessing.get_context("spawn")


@pytest.fixture(scope="module")
def racers(spawn: multiprocessing.context.SpawnContext) -> Iterator[Pool]:
    """8 spawned processes sharing one barrier (reusable: it resets after each race)."""
    barrier = spawn.Barrier(PROCESSES)
    with spawn.Pool(PROCESSES, initializer=_set_start, initargs=(barrier,)) as pool:
        yield pool


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_ledger_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_ledger_url"))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_processes_racing_get_exactly_n(
    shared_ledger_url: str, scenario: str, racers: Pool
) -> None:
    Budget(ledger=shared_ledger_url).spent()  # create the table before the race

    granted = racers.starmap(
        _race_in_process,
        [(shared_ledger_url, scenario, worker) for worker in range(PROCESSES)],
        chunksize=1,
    )

    budget = Budget(ledger=shared_ledger_url)
    assert sum(granted) == FITS
    assert budget.spent() == pytest.approx(FITS * ESTIMATE_USD)
    assert budget.spent() <= FITS * ESTIMATE_USD + 1e-12
    if scenario == "thread":
        assert budget.escalations("shared") == FITS
    budget.close()


def test_processes_racing_with_one_key_share_one_reservation(
    shared_ledger_url: str, racers: Pool
) -> None:
    Budget(ledger=shared_ledger_url).spent()  # create the table before the race

    outcomes = racers.starmap(
        _race_one_key_in_process,
        [(shared_ledger_url, worker) for worker in range(PROCESSES)],
        chunksize=1,
    )

    assert all(granted for granted, _ in outcomes)  # none refused by its own escalation
    assert len({reservation_id for _, reservation_id in outcomes}) == 1
    budget = Budget(ledger=shared_ledger_url)
    assert budget.escalations("one-escalation") == 1  # charged once
    settled_by = round(budget.spent() / ESTIMATE_USD)  # one racer's cost, not a sum
    assert budget.spent() == pytest.approx(settled_by * ESTIMATE_USD)
    assert 1 <= settled_by <= PROCESSES
    budget.close()


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_threads_racing_on_the_memory_ledger_get_exactly_n(scenario: str) -> None:
    ledger = MemoryLedger()
    start = threading.Barrier(THREADS)

    with ThreadPoolExecutor(THREADS) as executor:
        granted = list(
            executor.map(lambda worker: _race(ledger, scenario, worker, start), range(THREADS))
        )

    assert sum(granted) == FITS
    assert ledger.spent() == pytest.approx(FITS * ESTIMATE_USD)


def test_a_killed_process_reservation_expires(
    shared_ledger_url: str, spawn: multiprocessing.context.SpawnContext
) -> None:
    ttl_s = 2.0
    reserved = spawn.Event()
    holder = spawn.Process(
        target=_hold_and_wait_to_be_killed, args=(shared_ledger_url, ttl_s, reserved)
    )
    holder.start()
    try:
        assert reserved.wait(timeout=60), "the holder never got its reservation"
    finally:
        os.kill(holder.pid or 0, signal.SIGKILL)
        holder.join()
    assert holder.exitcode == -signal.SIGKILL

    budget = Budget(ledger=shared_ledger_url, max_escalations_per_thread=1)
    assert not budget.reserve("victim", ESTIMATE_USD).granted  # the dead holder's still counts
    assert _granted_eventually(budget, "victim", give_up_after_s=30 * ttl_s)
    budget.close()


def _granted_eventually(budget: Budget, thread_id: str, *, give_up_after_s: float) -> bool:
    deadline = time.monotonic() + give_up_after_s
    while time.monotonic() < deadline:
        if budget.reserve(thread_id, ESTIMATE_USD).granted:
            return True
        time.sleep(0.1)
    return False
