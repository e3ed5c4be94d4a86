"""Consultation threads: the questions and answers of each ``thread_id``, in SQLite.

A thread is a list of turns, so it lives in one SQLite table rather than a
LangGraph checkpointer: no graph runs here, and a table is readable with any
SQLite tool. Each call opens its own short connection (WAL mode), so several
server processes of one machine can share the file and a thread survives a
restart.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from langchain_escalate.records import RECORD_KEY

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_escalate.records import EscalationRecord

__all__ = ["ThreadStore", "Turn", "thread_messages"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mcp_turns (
    thread_id TEXT NOT NULL,
    turn INTEGER NOT NULL,
    question TEXT NOT NULL,
    context TEXT,
    answer TEXT NOT NULL,
    record TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (thread_id, turn)
)
"""
_BUSY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Turn:
    """One answered question of a thread.

    Attributes:
        question: What was asked.
        context: The context sent with it (attached files included), if any.
        answer: The expert's answer.
        record: The ``EscalationRecord`` of the answer, as JSON text.
    """

    question: str
    context: str | None
    answer: str
    record: str


class ThreadStore:
    """The turns of every consultation thread, in a SQLite file.

    Args:
        path: The SQLite file; created (with its directory) when missing.
            ``None`` keeps the threads in memory, for this process only.

    Example:
        >>> import tempfile
        >>> from langchain_escalate.records import EscalationRecord
        >>> store = ThreadStore(Path(tempfile.mkdtemp()) / "threads.db")
        >>> record = EscalationRecord(
        ...     node="mcp", action="escalate", rule=None, reason="asked", outcome="answered"
        ... )
        >>> store.append("t1", "Which endpoint?", None, "Use v2.", record)
        1
        >>> [turn.answer for turn in store.turns("t1")]
        ['Use v2.']
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        """Open (and create) the file."""
        self.path = Path(path).resolve() if path is not None else None
        self._keepalive: sqlite3.Connection | None = None
        if self.path is None:
            # A shared-cache memory database lives while one connection to it is open.
            self._target = f"file:mcp-threads-{uuid.uuid4().hex}?mode=memory&cache=shared"
            self._keepalive = self._connect()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._target = f"file:{quote(os.fspath(self.path))}"
        with closing(self._connect()) as connection, connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_SCHEMA)

    def turns(self, thread_id: str) -> list[Turn]:
        """Return a thread's turns, oldest first (none for a new thread)."""
        with closing(self._connect()) as connection:
            rows = connection.execute(
                "SELECT question, context, answer, record FROM mcp_turns "
                "WHERE thread_id = ? ORDER BY turn",
                (thread_id,),
            ).fetchall()
        return [Turn(*row) for row in rows]

    def append(
        self,
        thread_id: str,
        question: str,
        context: str | None,
        answer: str,
        record: EscalationRecord,
    ) -> int:
        """Add an answered question to a thread; return its turn number (1 = first)."""
        now = datetime.now(timezone.utc).isoformat()
        with closing(self._connect()) as connection, connection:
            # One statement: the turn number is taken under SQLite's write lock.
            connection.execute(
                "INSERT INTO mcp_turns "
                "SELECT ?, COALESCE(MAX(turn), 0) + 1, ?, ?, ?, ?, ? "
                "FROM mcp_turns WHERE thread_id = ?",
                (thread_id, question, context, answer, record.model_dump_json(), now, thread_id),
            )
            row = connection.execute(
                "SELECT MAX(turn) FROM mcp_turns WHERE thread_id = ?", (thread_id,)
            ).fetchone()
        return int(row[0])

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(
            self._target, timeout=_BUSY_TIMEOUT_S, uri=True, check_same_thread=False
        )


def thread_messages(turns: Sequence[Turn]) -> list[BaseMessage]:
    """Return a thread as the conversation the briefing reads.

    The first question (with its context) is the task. Each answer is help
    already received (a message carrying its record, as an escalation merges
    help into a graph), and each later question is the asker's next step, so
    the expert reads the whole consultation and the briefing keeps it bounded.

    Args:
        turns: The thread's turns, oldest first.

    Returns:
        The messages; empty for a new thread.
    """
    messages: list[BaseMessage] = []
    for position, turn in enumerate(turns):
        asked = turn.question if not turn.context else f"{turn.question}\n\n{turn.context}"
        if position == 0:
            messages.append(HumanMessage(asked))
        else:
            messages.append(AIMessage(f"Follow-up question: {asked}"))
        messages.append(
            HumanMessage(turn.answer, additional_kwargs={RECORD_KEY: json.loads(turn.record)})
        )
    return messages
