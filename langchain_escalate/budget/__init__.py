"""Budgets for the strong model: limits, and ledgers that enforce them across processes.

``Budget`` holds the limits; a ledger records reservations atomically:
``MemoryLedger`` (one process, the default), ``SQLiteLedger`` (the processes
of one machine), ``PostgresLedger`` (a fleet; needs the ``postgres`` extra).
A ``Reservation`` is settled or released exactly once (a context manager that
never leaks); an idempotency key lets a resumed run reuse its own.
"""

from __future__ import annotations

from langchain_escalate.budget.budget import Budget, open_ledger
from langchain_escalate.budget.ledger import Ledger, Limits, MemoryLedger, Reservation, Usage
from langchain_escalate.budget.postgres import PostgresLedger
from langchain_escalate.budget.reservation import MAX_RESULT_BYTES, MAX_USD
from langchain_escalate.budget.sqlite import SQLiteLedger

__all__ = [
    "MAX_RESULT_BYTES",
    "MAX_USD",
    "Budget",
    "Ledger",
    "Limits",
    "MemoryLedger",
    "PostgresLedger",
    "Reservation",
    "SQLiteLedger",
    "Usage",
    "open_ledger",
]
