"""Budgets for the strong model: limits, and ledgers that enforce them across processes.

``Budget`` holds the limits; a ledger records reservations atomically:
``MemoryLedger`` (one process, the default), ``SQLiteLedger`` (the processes
of one machine), ``PostgresLedger`` (a fleet; needs the ``postgres`` extra).
"""

from __future__ import annotations

from langchain_escalate.budget.budget import Budget, open_ledger
from langchain_escalate.budget.ledger import Ledger, Limits, MemoryLedger, Reservation
from langchain_escalate.budget.postgres import PostgresLedger
from langchain_escalate.budget.sqlite import SQLiteLedger

__all__ = [
    "Budget",
    "Ledger",
    "Limits",
    "MemoryLedger",
    "PostgresLedger",
    "Reservation",
    "SQLiteLedger",
    "open_ledger",
]
