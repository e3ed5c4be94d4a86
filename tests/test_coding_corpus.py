"""The default detector on coding-agent runs: quiet on healthy work, exact on real loops.

``tests/data/coding/`` holds conversations in OpenAI chat format written from
how OpenHands- and SWE-agent-style agents work (an ``execute_bash`` shell with
OpenHands' exit-code footer, a ``str_replace_editor`` with its real error
texts): reproduction scripts that crash, test runs that fail then pass, editor
mistakes that recover, and real loops. ``expected.json`` says, per file,
``{"healthy": true}`` or the exact first message index and rule.

The three real OpenHands runs (``../shared/data/openhands-llama4``, or
``ESCALATE_OPENHANDS_DATA``) are pinned too when present.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from langchain_escalate.cli.scan import read_conversation
from langchain_escalate.detector import StuckDetector

CORPUS = Path(__file__).parent / "data" / "coding"
EXPECTED: dict[str, dict[str, object]] = json.loads((CORPUS / "expected.json").read_text())
OPENHANDS = Path(
    os.environ.get(
        "ESCALATE_OPENHANDS_DATA",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "openhands-llama4",
    )
)


def verdicts_of(path: Path) -> list[tuple[int, str | None]]:
    detector = StuckDetector()
    found = []
    for index, message in enumerate(read_conversation(str(path))):
        verdict = detector.observe(message)
        if verdict.stuck:
            found.append((index, verdict.rule))
    return found


def test_the_manifest_covers_every_conversation_and_both_kinds() -> None:
    files = {path.name for path in CORPUS.glob("*.json")} - {"expected.json"}
    assert files == set(EXPECTED)
    healthy = [name for name, expected in EXPECTED.items() if expected.get("healthy")]
    assert len(healthy) >= 8
    assert len(EXPECTED) - len(healthy) >= 5


@pytest.mark.parametrize(
    "name", sorted(name for name, expected in EXPECTED.items() if expected.get("healthy"))
)
def test_no_false_alarm_on_a_healthy_coding_run(name: str) -> None:
    assert verdicts_of(CORPUS / name) == []


@pytest.mark.parametrize(
    "name", sorted(name for name, expected in EXPECTED.items() if not expected.get("healthy"))
)
def test_a_real_loop_is_caught_at_its_exact_message(name: str) -> None:
    expected = EXPECTED[name]
    found = verdicts_of(CORPUS / name)
    assert found, f"{name}: the loop was not caught"
    assert found[0] == (expected["first_stuck_index"], expected["rule"])


def test_crashes_inside_successful_results_are_in_the_corpus() -> None:
    # The corpus must keep exercising the shape of issue #9's false alarms.
    text = (CORPUS / "healthy_crash_then_two_editor_mistakes.json").read_text()
    assert "Traceback (most recent call last)" in text
    assert "Parameter `old_str` is required" in text
    assert "Cannot overwrite files using command `create`" in text


@pytest.fixture(scope="module")
def openhands() -> Path:
    if not OPENHANDS.is_dir():
        pytest.skip(f"OpenHands runs not found at {OPENHANDS} (set ESCALATE_OPENHANDS_DATA)")
    return OPENHANDS


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        # A healthy run: one editor error, `command not found` once, make errors as content.
        ("ponylang__ponyc-4595.json", []),
        # Editor errors: old_str not found, not unique, not found again.
        ("ponylang__ponyc-4588.json", [(33, "consecutive_failures")]),
        # Missing `old_str` twice, then old_str not found: the model later gives up.
        ("ponylang__ponyc-4593.json", [(47, "consecutive_failures")]),
    ],
)
def test_real_openhands_runs(openhands: Path, run: str, expected: list[tuple[int, str]]) -> None:
    assert verdicts_of(openhands / run) == expected
