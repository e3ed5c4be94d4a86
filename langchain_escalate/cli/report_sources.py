"""Where ``langchain-escalate report`` reads escalation records from.

A SOURCE is one of:

- a records JSONL file (``records_log``): records only, no messages;
- a SQLite checkpointer database, as a path or a ``sqlite:///relative.db`` /
  ``sqlite:////absolute.db`` URL (LangGraph's ``SqliteSaver``), opened read-only;
- a ``postgresql://`` URL (LangGraph's ``PostgresSaver``).

Checkpoints are read through the checkpointer's public ``list`` method, never
its tables: for each thread, the latest checkpoint of every namespace (the
graph and its subgraphs) gives the records (``EscalationState.escalations``
and the records riding in message metadata, counted once by id), and the
graph's own latest checkpoint gives the messages, which carry the weak
model's usage. Nothing is written to the database: the tables are never created.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from langchain_escalate.records import ESCALATIONS_KEY, RECORD_KEY, EscalationRecord
from langchain_escalate.records_log import RecordsFileError, read_records

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from langchain_core.messages import BaseMessage
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple

__all__ = ["ReportSourceError", "ThreadRun", "load_threads", "shown_source"]

ATTEMPTS_KEY = "escalation_attempts"
"""``additional_kwargs`` key of the records of rungs that could not run (``merge.ATTEMPTS_KEY``)."""

_SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_SUFFIXES = frozenset({".db", ".sqlite", ".sqlite3"})
_POSTGRES_SCHEMES = frozenset({"postgres", "postgresql"})
_POSTGRES_CONNECT_TIMEOUT_S = 10


class ReportSourceError(Exception):
    """A SOURCE that cannot be read; the message is one line for stderr."""


@dataclass
class ThreadRun:
    """What one thread left behind.

    Attributes:
        thread_id: The thread; ``None`` for records that name none.
        records: Its escalation records, each once, oldest first.
        messages: Its messages (latest checkpoint); ``None`` when the source
            keeps no messages (a records JSONL).
    """

    thread_id: str | None
    records: list[EscalationRecord] = field(default_factory=list)
    messages: list[BaseMessage] | None = None


def load_threads(source: str, *, thread: str | None = None) -> list[ThreadRun]:
    """Read the records (and messages, from a checkpointer) of every thread in SOURCE.

    Args:
        source: A records JSONL path, a SQLite path or ``sqlite:///`` URL, or a
            ``postgresql://`` URL.
        thread: Only this thread.

    Returns:
        The threads, in order of their first record (threads without records last).

    Raises:
        ReportSourceError: The source cannot be read, is not a checkpointer
            database, holds no checkpoints (or none of ``thread``), or holds a
            malformed record.
    """
    scheme = urlsplit(source).scheme.lower() if "://" in source else ""
    if scheme in _POSTGRES_SCHEMES:
        return _from_checkpointer(source, _open_postgres(source), thread)
    if scheme == "sqlite":
        return _from_checkpointer(source, _open_sqlite(source, _sqlite_path(source)), thread)
    if scheme:
        msg = (
            f"{shown_source(source)}: unsupported URL scheme {scheme!r}: use a records "
            "JSONL file, a SQLite database (path or sqlite:///path.db) or postgresql://..."
        )
        raise ReportSourceError(msg)
    path = Path(source)
    if _is_sqlite_file(path):
        return _from_checkpointer(source, _open_sqlite(source, path), thread)
    return _from_records_file(source, thread)


def shown_source(source: str) -> str:
    """Return SOURCE as it may be printed: a password in a URL becomes ``***``.

    Args:
        source: The SOURCE argument.

    Returns:
        The source without its password.

    Example:
        >>> shown_source("postgresql://app:s3cret@db.internal:5432/prod")
        'postgresql://app:***@db.internal:5432/prod'
    """
    if "://" not in source:
        return source
    parts = urlsplit(source)
    if parts.password is None:
        return source
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _from_records_file(source: str, thread: str | None) -> list[ThreadRun]:
    try:
        records = read_records(source)
    except RecordsFileError as error:
        raise ReportSourceError(str(error)) from error
    if not records:
        msg = f"{source}: no escalation records in this file"
        raise ReportSourceError(msg)
    runs: dict[str | None, ThreadRun] = {}
    for record in records:
        if thread is None or record.thread_id == thread:
            runs.setdefault(record.thread_id, ThreadRun(record.thread_id)).records.append(record)
    if not runs:
        msg = f"{source}: no records of thread {thread!r}"
        raise ReportSourceError(msg)
    return list(runs.values())


def _is_sqlite_file(path: Path) -> bool:
    if path.suffix.lower() in _SQLITE_SUFFIXES:
        return True
    try:
        with path.open("rb") as file:
            return file.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False  # reported by the records reader, which names the problem


def _sqlite_path(url: str) -> Path:
    # SQLAlchemy's convention, as for budget ledgers: three slashes then the path.
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path or path == ":memory:":
        msg = (
            f"{url}: names no SQLite file: use sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db"
        )
        raise ReportSourceError(msg)
    return Path(path)


def _open_sqlite(source: str, path: Path) -> BaseCheckpointSaver[Any]:
    if not path.is_file():
        msg = f"{source}: no such file" if not path.exists() else f"{source}: not a file"
        raise ReportSourceError(msg)
    try:
        from langgraph.checkpoint.sqlite import SqliteSaver  # noqa: PLC0415 - optional
    except ImportError as error:
        msg = f"{source}: reading a SQLite checkpointer needs langgraph-checkpoint-sqlite"
        raise ReportSourceError(msg) from error
    # Read-only: a wrong path must not leave an empty database (or tables) behind.
    connection = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
    )
    return SqliteSaver(connection)


def _open_postgres(source: str) -> BaseCheckpointSaver[Any]:
    try:
        import psycopg  # noqa: PLC0415 - optional
        from langgraph.checkpoint.postgres import PostgresSaver  # noqa: PLC0415 - optional
        from psycopg.rows import dict_row  # noqa: PLC0415 - optional
    except ImportError as error:
        msg = (
            f"{shown_source(source)}: reading a PostgreSQL checkpointer needs "
            "langgraph-checkpoint-postgres and langchain-escalate[postgres]"
        )
        raise ReportSourceError(msg) from error
    try:
        # The keywords PostgresSaver.from_conn_string uses, plus a timeout.
        connection = psycopg.Connection.connect(
            source,
            autocommit=True,
            prepare_threshold=0,
            row_factory=dict_row,
            connect_timeout=_POSTGRES_CONNECT_TIMEOUT_S,
        )
    except (psycopg.Error, ValueError) as error:
        msg = f"{shown_source(source)}: cannot connect: {_one_line(error)}"
        raise ReportSourceError(msg) from error
    return PostgresSaver(connection)


def _from_checkpointer(
    source: str, saver: BaseCheckpointSaver[Any], thread: str | None
) -> list[ThreadRun]:
    shown = shown_source(source)
    try:
        latest = _latest_per_namespace(saver, thread)
    except Exception as error:
        raise ReportSourceError(_checkpointer_problem(shown, error)) from error
    finally:
        _close(saver)
    if not latest:
        where = f"of thread {thread!r} " if thread is not None else ""
        msg = f"{shown}: no checkpoints {where}in this database"
        raise ReportSourceError(msg)
    by_thread: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for (thread_id, namespace), values in sorted(latest.items()):
        by_thread.setdefault(thread_id, []).append((namespace, values))
    runs = [_thread_run(shown, thread_id, states) for thread_id, states in by_thread.items()]
    return sorted(runs, key=lambda run: run.records[0].created_at if run.records else "\uffff")


def _latest_per_namespace(
    saver: BaseCheckpointSaver[Any], thread: str | None
) -> dict[tuple[str, str], Mapping[str, Any]]:
    config: RunnableConfig | None = None
    if thread is not None:
        config = {"configurable": {"thread_id": thread}}
    latest: dict[tuple[str, str], tuple[str, Mapping[str, Any]]] = {}
    for found in saver.list(config):
        key, checkpoint_id = _key_of(found)
        # Checkpoint ids are time-ordered (uuid6): the largest is the latest.
        if key not in latest or checkpoint_id > latest[key][0]:
            latest[key] = (checkpoint_id, found.checkpoint.get("channel_values", {}))
    return {key: values for key, (_, values) in latest.items()}


def _key_of(found: CheckpointTuple) -> tuple[tuple[str, str], str]:
    configurable = found.config["configurable"]
    key = (str(configurable["thread_id"]), str(configurable.get("checkpoint_ns", "")))
    return key, str(configurable["checkpoint_id"])


def _thread_run(
    shown: str, thread_id: str, states: Iterable[tuple[str, Mapping[str, Any]]]
) -> ThreadRun:
    """Records from every namespace (each once), messages from the graph's own state.

    A subgraph's messages are left out: an expert graph's replies are the
    strong model's, already counted by their records.
    """
    records: dict[str, EscalationRecord] = {}
    messages: list[BaseMessage] = []
    for namespace, values in states:
        state_messages = list(values.get("messages") or [])
        for raw in _raw_records(values.get(ESCALATIONS_KEY) or [], state_messages):
            record = _validated(shown, thread_id, raw)
            records.setdefault(record.id, record)
        if namespace == "":
            messages = state_messages
    for record in records.values():
        if record.thread_id is None:
            record.thread_id = thread_id
    ordered = sorted(records.values(), key=lambda record: record.created_at)
    return ThreadRun(thread_id, ordered, messages)


def _raw_records(
    in_state: Iterable[Mapping[str, Any]], messages: Iterable[BaseMessage]
) -> Iterator[Mapping[str, Any] | EscalationRecord]:
    yield from in_state
    for message in messages:
        kwargs = message.additional_kwargs
        if RECORD_KEY in kwargs:
            yield kwargs[RECORD_KEY]
        yield from kwargs.get(ATTEMPTS_KEY, [])


def _validated(
    shown: str, thread_id: str, raw: Mapping[str, Any] | EscalationRecord
) -> EscalationRecord:
    if isinstance(raw, EscalationRecord):
        return raw
    try:
        return EscalationRecord.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "record"
        msg = (
            f"{shown}: thread {thread_id!r}: escalation record {raw.get('id')!r} is malformed "
            f"({where}: {first['msg'].lower()})"
        )
        raise ReportSourceError(msg) from error


def _checkpointer_problem(shown: str, error: Exception) -> str:
    text = _one_line(error)
    # SQLite, opened read-only, refuses the saver's CREATE TABLE; PostgreSQL
    # says the relation does not exist: either way, the tables are missing.
    if "readonly" in text or "no such table" in text or 'relation "checkpoints"' in text:
        return (
            f"{shown}: not a LangGraph checkpointer database: it has no checkpoints table "
            "(SqliteSaver and PostgresSaver create it in setup())"
        )
    return f"{shown}: cannot read checkpoints: {type(error).__name__}: {text}"


def _close(saver: BaseCheckpointSaver[Any]) -> None:
    connection = getattr(saver, "conn", None)
    if connection is not None:
        connection.close()


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
