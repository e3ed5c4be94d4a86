"""The briefing the strong model reads: what it contains, and its bound."""

from __future__ import annotations

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_escalate.detector import Verdict
from langchain_escalate.expert.briefing import (
    CHARS_PER_TOKEN,
    DEFAULT_QUESTION,
    build_briefing,
    estimate_tokens,
    truncate_middle,
)
from langchain_escalate.records import RECORD_KEY
from langchain_escalate.testing import tool_call

VERDICT = Verdict(
    stuck=True,
    rule="repeated_action_error",
    reason="fetch_report(year=2023) failed 3 times in a row.",
    evidence=[1, 2, 3],
    loop_start=1,
)


def _attempts(count: int, *, result: str = "Error: report 2023 not found") -> list[BaseMessage]:
    messages: list[BaseMessage] = []
    for _ in range(count):
        call = tool_call("fetch_report", {"year": 2023})
        messages.append(AIMessage("", tool_calls=[call]))
        messages.append(ToolMessage(result, tool_call_id=call["id"], status="error"))
    return messages


def test_briefing_has_the_task_the_attempts_the_reason_and_the_question() -> None:
    messages = [
        SystemMessage("You are a sales analyst."),
        HumanMessage("What was the 2022 total?"),
        AIMessage("It was 40."),
        HumanMessage("And the 2023 total?"),
        *_attempts(3),
    ]
    text = build_briefing(messages, verdict=VERDICT)

    assert "## Task\nAnd the 2023 total?" in text
    assert "2022" not in text  # an earlier turn is not this task
    assert text.count('called fetch_report({"year":2023})') == 3
    assert text.count("error: Error: report 2023 not found") == 3
    assert "repeated_action_error" in text
    assert VERDICT.reason in text
    assert text.rstrip().endswith(DEFAULT_QUESTION)


def test_help_added_by_an_escalation_is_not_the_task() -> None:
    nudge = HumanMessage(
        "You repeated it; try something else.", additional_kwargs={RECORD_KEY: {"action": "nudge"}}
    )
    messages = [HumanMessage("Find the 2023 total."), *_attempts(1), nudge, *_attempts(1)]
    text = build_briefing(messages, verdict=VERDICT)

    assert "## Task\nFind the 2023 total." in text
    assert "received help: You repeated it" in text


def test_question_and_context_from_the_ask_expert_tool() -> None:
    text = build_briefing(
        [HumanMessage("Fix the build.")],
        question="Which flag disables LTO?",
        context="We use clang 17.",
    )
    assert "## Context\nWe use clang 17." in text
    assert text.rstrip().endswith("Which flag disables LTO?")
    assert "Stuck detector" not in text


def test_briefing_is_bounded_whatever_the_history_length() -> None:
    huge = "Error: " + "stack frame\n" * 5_000
    messages = [HumanMessage("Find the 2023 total."), *_attempts(1_000, result=huge)]
    for max_tokens in (200, 1_500, 4_000):
        text = build_briefing(messages, verdict=VERDICT, max_tokens=max_tokens)
        assert estimate_tokens(text) <= max_tokens
        assert "Find the 2023 total." in text
        assert "steps omitted" in text
        assert VERDICT.reason in text
        assert text.rstrip().endswith(DEFAULT_QUESTION)


def test_the_most_recent_steps_are_kept_and_long_observations_cut_in_the_middle() -> None:
    messages = [HumanMessage("Task")]
    messages += _attempts(50)
    last_call = tool_call("fetch_archive", {"year": 2023})
    long_result = "HEAD of the result " + "x" * 20_000 + " TAIL of the result"
    messages += [
        AIMessage("", tool_calls=[last_call]),
        ToolMessage(long_result, tool_call_id=last_call["id"]),
    ]
    text = build_briefing(messages, verdict=VERDICT, max_tokens=1_000)

    assert "fetch_archive" in text
    assert "HEAD of the result" in text
    assert "TAIL of the result" in text
    assert "[...]" in text


def test_a_long_task_is_cut_but_the_question_survives() -> None:
    task = "Please analyse this log:\n" + "line of log\n" * 10_000 + "What failed?"
    text = build_briefing([HumanMessage(task)], verdict=VERDICT, max_tokens=300)
    assert len(text) <= 300 * CHARS_PER_TOKEN
    assert text.startswith("## Task\nPlease analyse this log:")
    assert "What failed?" in text
    assert text.rstrip().endswith(DEFAULT_QUESTION)


def test_truncate_middle_keeps_both_ends() -> None:
    assert truncate_middle("short", 10) == "short"
    cut = truncate_middle("a" * 50 + "b" * 50, 30)
    assert len(cut) <= 30
    assert cut.startswith("a")
    assert cut.endswith("b")
