"""``langchain-escalate scan``: output formats, exit codes, bad input, and a fast start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
    messages_to_dict,
)

from langchain_escalate.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "conversations"
STUCK = EXAMPLES / "stuck_booking_retry.json"
HEALTHY = EXAMPLES / "healthy_order_tracking.json"
ALTERNATING = EXAMPLES / "stuck_alternating_lookups.jsonl"


def scan(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["scan", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_stuck_example_is_reported_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = scan(capsys, STUCK)
    assert code == 0
    assert err == ""
    first_line, *rest = out.splitlines()
    assert first_line == f"{STUCK}: STUCK at message 10 of 12 (1 verdict)"  # counted from 1
    report = "\n".join(rest)
    assert "message 10: repeated_action_error" in report
    assert "why: The same call failed 3 times in a row" in report
    assert "payment method not found" in report
    assert "evidence:" in report
    assert "book_reservation(" in report  # the evidence shows the calls themselves


def test_json_output_has_the_documented_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = scan(capsys, STUCK, "--format", "json")
    assert code == 0
    [line] = out.splitlines()
    result = json.loads(line)
    assert set(result) == {"file", "stuck", "first_stuck_index", "verdicts", "messages"}
    assert result["file"] == str(STUCK)
    assert result["stuck"] is True
    assert result["first_stuck_index"] == 9
    assert result["messages"] == 12
    [verdict] = result["verdicts"]
    assert set(verdict) == {"index", "rule", "reason", "evidence"}
    assert (verdict["index"], verdict["rule"], verdict["evidence"]) == (
        9,
        "repeated_action_error",
        [4, 5, 6, 7, 8, 9],
    )


def test_a_healthy_conversation_is_not_stuck(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = scan(capsys, HEALTHY, "--format", "json")
    assert code == 0
    result = json.loads(out)
    assert result["stuck"] is False
    assert result["first_stuck_index"] is None
    assert result["verdicts"] == []
    code, out, _ = scan(capsys, HEALTHY)
    assert out.strip() == f"{HEALTHY}: not stuck (17 messages)"


def test_several_files_give_one_json_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = scan(capsys, "--format", "json", STUCK, HEALTHY, ALTERNATING)
    assert code == 0
    results = [json.loads(line) for line in out.splitlines()]
    assert [(r["file"], r["first_stuck_index"]) for r in results] == [
        (str(STUCK), 9),
        (str(HEALTHY), None),
        (str(ALTERNATING), 12),
    ]
    assert results[2]["verdicts"][0]["rule"] == "alternating"


def test_jsonl_of_langchain_dicts_is_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    conversation: list[BaseMessage] = [HumanMessage("hi")]
    for number in range(3):
        conversation += [
            AIMessage("", tool_calls=[{"name": "f", "args": {"x": 1}, "id": f"t{number}"}]),
            ToolMessage("Error: nope", tool_call_id=f"t{number}"),
        ]
    path = tmp_path / "run.jsonl"
    path.write_text("\n".join(json.dumps(item) for item in messages_to_dict(conversation)) + "\n")
    code, out, _ = scan(capsys, path, "--format", "json")
    assert code == 0
    assert json.loads(out)["first_stuck_index"] == 6


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("broken.json", '[{"role": "user", "content": "hi"}', "invalid JSON at line 1 column"),
        (
            "object.json",
            '{\n "conversation": []\n}',
            "the top-level value is an object without a 'messages' list",
        ),
        ("number.json", "42", "the top-level value is a number"),
        ("empty.json", "\n", "empty file"),
        (
            "shape.json",
            '[{"role": "user", "content": "hi"}, {"text": "?"}]',
            "message 1: unknown message shape",
        ),
        (
            "orphan.json",
            json.dumps([{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "c9"}]),
            "message 1: tool message answers no open tool call (tool_call_id 'c9')",
        ),
        (
            "lines.jsonl",
            '{"role": "user", "content": "hi"}\n\n{"role": "assistant"\n',
            "message 1 (line 3): invalid JSON",
        ),
    ],
)
def test_bad_input_is_one_line_naming_the_file_and_the_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, text: str, expected: str
) -> None:
    bad = _write(tmp_path, name, text)
    code, out, err = scan(capsys, bad)
    assert code == 2
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith(f"langchain-escalate scan: {bad}: ")
    assert expected in line


def test_a_missing_file_is_reported_and_the_other_files_are_still_scanned(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.json"
    code, out, err = scan(capsys, "--format", "json", STUCK, missing, HEALTHY)
    assert code == 2
    assert [json.loads(line)["file"] for line in out.splitlines()] == [str(STUCK), str(HEALTHY)]
    assert (
        err.strip() == f"langchain-escalate scan: {missing}: cannot read: No such file or directory"
    )


def test_node_without_config_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = scan(capsys, STUCK, "--node", "planner")
    assert code == 2
    assert out == ""
    assert "--node planner needs --config FILE" in err


def test_thresholds_come_from_the_config_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("langchain_escalate.config")
    config = _write(
        tmp_path,
        "escalate.yaml",
        "defaults:\n  detector:\n    repeated_action_error: 2\nnodes:\n  patient:\n    detector:\n"
        "      repeated_action_error: null\n      consecutive_failures: null\n",
    )
    _, out, _ = scan(capsys, STUCK, "--format", "json", "--config", config)
    assert json.loads(out)["first_stuck_index"] == 7
    _, out, _ = scan(capsys, STUCK, "--format", "json", "--config", config, "--node", "patient")
    # With the error rules off for this node, only the 4th identical attempt gives it away.
    [verdict] = json.loads(out)["verdicts"]
    assert (verdict["index"], verdict["rule"]) == (11, "repeated_action_observation")


def test_an_invalid_config_file_is_reported_without_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("langchain_escalate.config")
    config = _write(tmp_path, "escalate.yaml", "defaults:\n  detector:\n    monologue: -1\n")
    code, out, err = scan(capsys, STUCK, "--config", config)
    assert code == 2
    assert out == ""
    assert err.startswith("langchain-escalate scan: ")
    assert "monologue" in err
    assert "Traceback" not in err


def test_scan_never_imports_litellm_or_langgraph() -> None:
    code = (
        "import sys\n"
        "from langchain_escalate.cli import main\n"
        f"assert main(['scan', {str(STUCK)!r}, '--format', 'json']) == 0\n"
        "loaded = sorted(name for name in ('litellm', 'langgraph') if name in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT)  # noqa: S603 - our own code


def test_the_command_runs_as_a_module() -> None:
    done = subprocess.run(  # noqa: S603 - our own command
        [sys.executable, "-m", "langchain_escalate.cli", "scan", str(STUCK), "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["first_stuck_index"] == 9


def test_output_piped_into_a_reader_that_quits_early_is_no_traceback() -> None:
    # `langchain-escalate scan FILE | head -1`: the pipe closes before scan is done.
    example = (
        Path(__file__).resolve().parent.parent / "examples/conversations/stuck_booking_retry.json"
    )
    code = "import sys; from langchain_escalate.cli import main; sys.exit(main(sys.argv[1:]))"
    scan = subprocess.Popen(  # noqa: S603 - our own command
        [sys.executable, "-c", code, "scan", str(example), str(example), str(example)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert scan.stdout is not None
    scan.stdout.readline()
    scan.stdout.close()
    _, stderr = scan.communicate(timeout=60)
    assert b"Traceback" not in stderr
    assert b"BrokenPipeError" not in stderr
