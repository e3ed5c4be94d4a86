"""``scan`` reads stdin, state dumps and LangSmith runs; ``--briefing`` shows the help."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.load import dumpd
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage, messages_to_dict

from langchain_escalate.cli import main

ROOT = Path(__file__).resolve().parent.parent
STUCK = ROOT / "examples" / "conversations" / "stuck_booking_retry.json"
CODING = ROOT / "tests" / "data" / "coding" / "stuck_same_failing_str_replace.json"


def scan(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["scan", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def looping_messages() -> list[Any]:
    messages: list[Any] = [HumanMessage("Where is order 7?")]
    for attempt in range(3):
        call_id = f"call_{attempt}"
        messages.append(
            AIMessage("", tool_calls=[{"name": "track", "args": {"order": 7}, "id": call_id}])
        )
        messages.append(ToolMessage("Error: tracking service down", tool_call_id=call_id))
    return messages


def only_verdicts(out: str) -> list[tuple[int, str]]:
    result = json.loads(out)
    return [(verdict["index"], verdict["rule"]) for verdict in result["verdicts"]]


def test_stdin_is_read_for_a_dash(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = STUCK.read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    code, out, err = scan(capsys, "-", "--format", "json")
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert result["file"] == "-"
    assert result["first_stuck_index"] == 9


def test_stdin_in_a_real_pipe() -> None:
    process = subprocess.run(
        [sys.executable, "-m", "langchain_escalate.cli", "scan", "-"],
        input=STUCK.read_bytes(),
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.decode().startswith("<stdin>: STUCK at message 10 of 12")


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda m: {"messages": messages_to_dict(m)}, id="state-dump"),
        pytest.param(lambda m: {"values": {"messages": messages_to_dict(m)}}, id="state-snapshot"),
        pytest.param(
            lambda m: {
                "run_type": "chain",
                "inputs": {"messages": [dumpd(m[0])]},
                "outputs": {"messages": [dumpd(message) for message in m]},
            },
            id="langsmith-graph-run",
        ),
        pytest.param(
            lambda m: {
                "run_type": "llm",
                "inputs": {"messages": [[dumpd(message) for message in m]]},
                "outputs": {"generations": [[{"text": "", "message": dumpd(AIMessage("ok"))}]]},
            },
            id="langsmith-chat-model-run",
        ),
    ],
)
def test_state_dumps_and_langsmith_runs_are_conversations(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, wrap: Any
) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(wrap(looping_messages())))
    code, out, err = scan(capsys, path, "--format", "json")
    assert (code, err) == (0, "")
    assert only_verdicts(out) == [(6, "repeated_action_error")]


def test_a_chat_model_run_ends_with_its_generated_reply(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = {
        "inputs": {"messages": [[dumpd(HumanMessage("hi"))]]},
        "outputs": {"generations": [[{"message": dumpd(AIMessage("hello"))}]]},
    }
    path = tmp_path / "llm.json"
    path.write_text(json.dumps(run))
    code, out, _ = scan(capsys, path, "--format", "json")
    assert code == 0
    assert json.loads(out)["messages"] == 2


def test_briefing_in_json_is_a_string_on_each_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = scan(capsys, CODING, "--format", "json", "--briefing")
    assert (code, err) == (0, "")
    [verdict] = json.loads(out)["verdicts"]
    briefing = verdict["briefing"]
    assert isinstance(briefing, str)
    # What the expert needs: the task, and the failing attempt's error verbatim.
    assert "add_months crashes on month ends" in briefing
    assert "No replacement was performed" in briefing


def test_briefing_is_bounded_by_briefing_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    _, small, _ = scan(capsys, CODING, "--format", "json", "--briefing", "--briefing-tokens", "300")
    _, large, _ = scan(
        capsys, CODING, "--format", "json", "--briefing", "--briefing-tokens", "3000"
    )
    short = json.loads(small)["verdicts"][0]["briefing"]
    long = json.loads(large)["verdicts"][0]["briefing"]
    assert len(short) < len(long)


def test_briefing_in_text_is_printed_under_its_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = scan(capsys, CODING, "--briefing")
    assert code == 0
    lines = out.splitlines()
    verdict_at = lines.index("  message 18: repeated_action_error")
    briefing_at = lines.index("    briefing:")
    assert briefing_at > verdict_at
    assert all(line.startswith("      | ") for line in lines[briefing_at + 1 :])
    assert "add_months crashes on month ends" in out


def test_without_briefing_there_is_no_briefing_key(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = scan(capsys, CODING, "--format", "json")
    assert "briefing" not in json.loads(out)["verdicts"][0]


def test_no_progress_bar_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = scan(capsys, *([STUCK] * 25), "--format", "json")
    assert (code, err) == (0, "")


def test_a_progress_bar_on_a_terminal_and_only_on_stderr() -> None:
    leader, follower = pty.openpty()
    process = subprocess.run(  # noqa: S603 - this interpreter, our own module
        [sys.executable, "-m", "langchain_escalate.cli", "scan", "--format", "json", *[STUCK] * 25],
        stdout=subprocess.PIPE,
        stderr=follower,
        check=False,
        timeout=120,
    )
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end is closed: all read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    assert process.returncode == 0
    assert len(process.stdout.splitlines()) == 25  # stdout stays clean JSON lines
    assert all(json.loads(line)["stuck"] for line in process.stdout.splitlines())
    assert b"scanning" in drawn
