"""Hostile and unlucky files: one error line each (exit 2), never a hang, a crash or a raw escape.

Issue #11 item 4. Every case runs beside a good file, which must still be reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from langchain_escalate.cli import main, scan

ROOT = Path(__file__).resolve().parent.parent
GOOD = ROOT / "examples" / "conversations" / "healthy_order_tracking.json"
DEEP = 100_000


def run_scan(
    capsys: pytest.CaptureFixture[str], *files: str | Path, fmt: str = "json"
) -> tuple[int, list[str], list[str]]:
    code = main(["scan", "--format", fmt, *map(str, files)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def conversation_with(tool_output: object = "ok", **assistant: object) -> list[dict[str, object]]:
    return [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "run", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": tool_output},
        {"role": "assistant", "content": "done", **assistant},
    ]


HOSTILE_TEXT = {
    "deep-list": "[" * DEEP + "]" * DEEP,
    "deep-object-in-a-message": (
        '[{"role": "user", "content": "x", "extra": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}]"
    ),
    "deep-jsonl-line": '{"role": "user", "content": "x"}\n' + "[" * DEEP + "]" * DEEP,
    "5000-digit-integer": '[{"role": "user", "content": "x", "n": ' + "7" * 5000 + "}]",
    "5000-digit-integer-in-jsonl": '{"role": "user", "content": "x"}\n{"n": ' + "9" * 5000 + "}",
    "not-utf8": '[{"role": "user", "content": "\xff"}]',
}


@pytest.mark.parametrize("name", HOSTILE_TEXT)
def test_a_hostile_file_is_one_line_and_the_others_still_scanned(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    bad = tmp_path / f"{name}.json"
    text = HOSTILE_TEXT[name]
    bad.write_bytes(text.encode("latin-1") if name == "not-utf8" else text.encode())
    code, out, err = run_scan(capsys, bad, GOOD)
    assert code == 2
    [line] = err
    assert line.startswith(f"langchain-escalate scan: {bad}: ")
    assert json.loads(out[0])["file"] == str(GOOD)


@pytest.mark.parametrize(
    "conversation",
    [
        pytest.param(conversation_with("\ud800 lone surrogate \udfff"), id="lone-surrogates"),
        pytest.param(
            conversation_with(logprobs={"content": [{"token": "a", "logprob": 1e308}] * 3}),
            id="huge-logprobs",
        ),
        pytest.param(
            conversation_with(response_metadata={"confidence": 10**400}), id="huge-confidence"
        ),
        pytest.param(conversation_with([{"type": "data", "x": 1e308 * 10}]), id="infinite-float"),
        pytest.param(
            conversation_with("Error: \x1b[2J\x1b]0;pwned\x07 terminal escapes"),
            id="terminal-escapes",
        ),
    ],
)
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_odd_values_are_scanned_and_printed_safely(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    conversation: list[dict[str, object]],
    fmt: str,
) -> None:
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(conversation * 3))
    code, out, err = run_scan(capsys, path, fmt=fmt)
    assert (code, err) == (0, [])
    text = "\n".join(out)
    text.encode("utf-8")  # printable as UTF-8: no lone surrogate reaches the terminal
    assert "\x1b" not in text
    assert "\x07" not in text
    if fmt == "json":
        assert json.loads(out[0])["messages"] == 12


def test_control_characters_in_text_output_are_escaped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "escapes.json"
    loop = conversation_with("Error: \x1b[31mred")[:3]
    path.write_text(json.dumps(loop + loop[1:] + loop[1:]))
    _, out, _ = run_scan(capsys, path, fmt="text")
    assert "STUCK" in out[0]
    assert any("\\x1b[31mred" in line for line in out)


def test_a_fifo_is_refused_without_blocking(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    code, out, err = run_scan(capsys, fifo, GOOD)
    assert code == 2
    assert err == [f"langchain-escalate scan: {fifo}: cannot read: not a regular file"]
    assert len(out) == 1


def test_a_symlink_to_dev_zero_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    link = tmp_path / "zero.json"
    link.symlink_to("/dev/zero")
    code, _, err = run_scan(capsys, link, GOOD)
    assert code == 2
    assert err == [f"langchain-escalate scan: {link}: cannot read: not a regular file"]


def test_a_directory_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_scan(capsys, tmp_path, GOOD)
    assert code == 2
    assert err == [f"langchain-escalate scan: {tmp_path}: cannot read: a directory"]


def test_a_file_over_the_size_limit_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan, "MAX_BYTES", GOOD.stat().st_size)
    big = tmp_path / "big.json"
    big.write_text(json.dumps([{"role": "user", "content": "x" * GOOD.stat().st_size}]))
    code, out, err = run_scan(capsys, big, GOOD)
    assert code == 2
    [line] = err
    assert "larger than" in line
    assert len(out) == 1


def test_oversize_stdin_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # 64 MiB + 1 of stdin, through a real pipe: refused after reading one byte past the limit.
    process = subprocess.run(
        [sys.executable, "-m", "langchain_escalate.cli", "scan", "-"],
        input=b"[" + b" " * scan.MAX_BYTES + b"]",
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert process.returncode == 2
    assert process.stderr.decode().startswith(
        "langchain-escalate scan: <stdin>: larger than 64 MiB"
    )


def test_a_file_name_with_escapes_is_escaped_in_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_scan(capsys, tmp_path / "a\x1b[2Jb.json")
    assert code == 2
    [line] = err
    assert "\x1b" not in line
    assert "a\\x1b[2Jb.json" in line
