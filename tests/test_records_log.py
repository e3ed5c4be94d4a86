"""The records JSONL: what one process appends, another reads back whole; bad lines are named."""

from __future__ import annotations

import json
import multiprocessing
from typing import TYPE_CHECKING

import pytest
from pydantic import ValidationError

from langchain_escalate.records import EscalationRecord
from langchain_escalate.records_log import RecordsFileError, append_records, read_records

if TYPE_CHECKING:
    from pathlib import Path


def _record(**overrides: object) -> EscalationRecord:
    fields: dict[str, object] = {
        "node": "agent",
        "action": "escalate",
        "rule": "repeated_action_error",
        "reason": "fetch_report failed 3 times",
        "mode": "advise",
        "model": "anthropic/claude-sonnet-4-6",
        "tokens_in": 900,
        "tokens_out": 120,
        "cost_usd": 0.0045,
        "outcome": "advised",
        "thread_id": "t-1",
    }
    fields.update(overrides)
    return EscalationRecord.model_validate(fields)


def test_records_round_trip_in_order_across_appends(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "records.jsonl"  # parent directory created on demand
    first, second, third = _record(), _record(action="nudge", outcome="nudged"), _record()
    assert append_records(path, [first, second]) == 2
    assert append_records(path, [third.to_dict()]) == 1

    assert read_records(path) == [first, second, third]
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3


def test_an_invalid_dict_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    append_records(path, [_record()])
    with pytest.raises(ValidationError):
        append_records(path, [_record(), {"node": "agent"}])
    assert len(read_records(path)) == 1


def test_blank_lines_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text("\n" + json.dumps(_record().to_dict()) + "\n\n", encoding="utf-8")
    assert len(read_records(path)) == 1


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "3: not JSON"),
        ("[1, 2]", "3: expected a JSON object (one record), got list"),
        (
            '{"node": "agent", "action": "escalate"}',
            "3: not an escalation record: rule: field required",
        ),
        (
            json.dumps({**_record().to_dict(), "action": "pray"}),
            "3: not an escalation record: action: input should be",
        ),
    ],
)
def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "records.jsonl"
    append_records(path, [_record(), _record()])
    with path.open("a", encoding="utf-8") as file:
        file.write(line + "\n")
    with pytest.raises(RecordsFileError) as caught:
        read_records(path)
    assert str(caught.value).startswith(f"{path}:{problem}")
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.jsonl"
    with pytest.raises(RecordsFileError, match=r"absent\.jsonl: cannot read: No such file"):
        read_records(path)


def _append_many(path: str, writer: int) -> None:
    for index in range(50):
        append_records(path, [_record(thread_id=f"w{writer}-{index}", reason="x" * 2000)])


def test_concurrent_writers_never_split_a_line(tmp_path: Path) -> None:
    path = str(tmp_path / "records.jsonl")
    # fork where there is one: a spawned writer re-imports LangGraph (seconds each).
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    writers = [context.Process(target=_append_many, args=(path, n)) for n in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
        assert writer.exitcode == 0
    records = read_records(path)
    assert sorted(r.thread_id or "" for r in records) == sorted(
        f"w{n}-{i}" for n in range(3) for i in range(50)
    )
