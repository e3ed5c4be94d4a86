"""A records JSONL file: one ``EscalationRecord.to_dict()`` JSON object a line.

Written by processes that keep no graph state (the MCP server) and read by
``langchain-escalate report``. Appending is one ``write`` of whole lines to a
file opened in append mode, so records from several processes interleave by
line, never inside one. Reading is strict: a line that is not a record is an
error naming the file and the line, never skipped, so nothing is lost silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from langchain_escalate.records import EscalationRecord

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Mapping

__all__ = ["RecordsFileError", "append_records", "read_records"]


class RecordsFileError(ValueError):
    """A records file could not be read; the message is ``FILE:LINE: problem``."""


def append_records(
    path: str | os.PathLike[str], records: Iterable[EscalationRecord | Mapping[str, Any]]
) -> int:
    """Append records to a JSONL file, one JSON object a line.

    The file and its parent directories are created when missing. All lines
    are written with a single ``write`` call, so concurrent writers do not
    split each other's lines.

    Args:
        path: The records file.
        records: ``EscalationRecord`` objects or their dicts (validated).

    Returns:
        How many records were written.

    Raises:
        pydantic.ValidationError: A dict is not a valid ``EscalationRecord``
            (nothing is written then).

    Example:
        >>> import tempfile
        >>> from langchain_escalate.records import EscalationRecord
        >>> record = EscalationRecord(
        ...     node="agent", action="nudge", rule="monologue", reason="r", outcome="nudged"
        ... )
        >>> path = Path(tempfile.mkdtemp()) / "records.jsonl"
        >>> append_records(path, [record])
        1
        >>> read_records(path)[0].id == record.id
        True
    """
    validated = [
        record if isinstance(record, EscalationRecord) else EscalationRecord.model_validate(record)
        for record in records
    ]
    if not validated:
        return 0
    text = "".join(json.dumps(record.to_dict(), ensure_ascii=False) + "\n" for record in validated)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as file:
        file.write(text)
    return len(validated)


def read_records(path: str | os.PathLike[str]) -> list[EscalationRecord]:
    """Read every record of a JSONL file, in file order.

    Blank lines are ignored. Any other line must be a JSON object that is a
    valid ``EscalationRecord``.

    Args:
        path: The records file.

    Returns:
        The records.

    Raises:
        RecordsFileError: The file cannot be read, or a line is not a record;
            the message is ``FILE:LINE: problem`` (``FILE: problem`` for the
            whole file).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "records.jsonl"
        >>> _ = path.write_text('{"node": "agent"}', encoding="utf-8")
        >>> try:
        ...     read_records(path)
        ... except RecordsFileError as error:
        ...     print(str(error).removeprefix(str(path)))
        :1: not an escalation record: action: field required; rule: field required; ...
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        msg = f"{path}: cannot read: {_reason(error)}"
        raise RecordsFileError(msg) from error
    return [
        _parse_line(path, number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def _parse_line(path: str | os.PathLike[str], number: int, line: str) -> EscalationRecord:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        msg = f"{path}:{number}: not JSON: {error.msg} at column {error.colno}"
        raise RecordsFileError(msg) from error
    if not isinstance(data, dict):
        msg = f"{path}:{number}: expected a JSON object (one record), got {type(data).__name__}"
        raise RecordsFileError(msg)
    try:
        return EscalationRecord.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or 'record'}: {issue['msg'].lower()}"
            for issue in error.errors()
        )
        msg = f"{path}:{number}: not an escalation record: {problems}"
        raise RecordsFileError(msg) from error


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)
