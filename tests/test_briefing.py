"""The briefing the strong model reads: what it contains, and its bound."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately

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
    messages: list[BaseMessage] = [HumanMessage("Task")]
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


# --- what the expert needs, kept whole (issue #9) ---------------------------------

ISSUE_PROMPT = (
    "<uploaded_files>\n/workspace/app\n</uploaded_files>\n"
    "I've uploaded a repository. Consider the following issue description:\n\n"
    "<issue_description>\n"
    "Parser crashes on empty input\n"
    "Calling parse('') raises IndexError instead of returning an empty list.\n"
    "Traceback (most recent call last):\n"
    '  File "app/parser.py", line 12, in parse\n'
    "    head = tokens[0]\n"
    "IndexError: list index out of range\n" + "More detail about the setup. " * 20 + "\n"
    "</issue_description>\n\n"
    "Follow these steps to resolve the issue:\n"
    + "".join(f"{n}. A generic instruction the harness adds to every task.\n" for n in range(40))
    + "Your thinking should be thorough."
)


def _call(name: str, args: dict[str, object], result: str, **kwargs: str) -> list[BaseMessage]:
    call = tool_call(name, args)
    return [
        AIMessage("", tool_calls=[call]),
        ToolMessage(result, tool_call_id=call["id"], **kwargs),
    ]


def _tokens(text: str) -> int:
    return count_tokens_approximately([HumanMessage(text)])


def test_a_task_that_fits_in_half_the_bound_is_kept_whole_verbatim() -> None:
    task = "Fix the parser.\n\n```python\ndef parse(text):\n    return text.split()[0]\n```"
    messages = [HumanMessage(task)] + _call("run", {"cmd": "pytest"}, "x" * 50_000) * 30
    for max_tokens in (200, 800, 4_000):
        assert _tokens(task) <= max_tokens // 2
        assert f"## Task\n{task}\n" in build_briefing(messages, max_tokens=max_tokens)


def test_a_long_prompt_keeps_the_issue_whole_and_cuts_the_boilerplate_after_it() -> None:
    messages = [HumanMessage(ISSUE_PROMPT), *_call("run", {"cmd": "make"}, "y" * 20_000) * 20]
    issue_end = ISSUE_PROMPT.index("</issue_description>") + len("</issue_description>")
    assert _tokens(ISSUE_PROMPT) > 1_500 // 2 >= _tokens(ISSUE_PROMPT[:issue_end])

    text = build_briefing(messages, verdict=VERDICT, max_tokens=1_500)

    assert ISSUE_PROMPT[:issue_end] in text  # the symptom and its traceback, verbatim
    assert "the rest of the task is cut here" in text
    assert "A generic instruction the harness adds to every task.\n" * 30 not in text
    assert "Your thinking should be thorough." in text  # a short last line stays


def test_a_task_too_long_for_its_share_keeps_its_head() -> None:
    symptom = "The export job fails with 'disk quota exceeded' since Monday."
    task = symptom + "\n" + "Context line that goes on and on.\n" * 2_000
    text = build_briefing([HumanMessage(task)], verdict=VERDICT, max_tokens=500)
    assert text.startswith(f"## Task\n{symptom}\n")
    assert _tokens(text) <= 500


def test_please_continue_does_not_replace_the_task() -> None:
    messages = [
        HumanMessage("Make the nightly build green."),
        *_call("run", {"cmd": "make"}, "Error: missing header foo.h", status="error"),
        AIMessage("I could not find foo.h."),
        HumanMessage("Please continue."),
        *_call("run", {"cmd": "make"}, "Error: missing header foo.h", status="error"),
    ]
    text = build_briefing(messages, verdict=VERDICT)
    assert text.startswith("## Task\nMake the nightly build green.\n")
    assert "- user said: Please continue." in text


def test_an_answer_to_the_assistants_question_continues_the_task() -> None:
    messages = [
        HumanMessage("Book me a flight from New York to Seattle on May 20."),
        AIMessage("Could you give me your user id?"),
        HumanMessage("mia_li_3668"),
        *_call("book", {"user": "mia_li_3668"}, "Error: no flights", status="error"),
    ]
    text = build_briefing(messages, verdict=VERDICT)
    assert text.startswith("## Task\nBook me a flight from New York to Seattle on May 20.\n")
    assert "- user said: mia_li_3668" in text


def test_failures_are_labelled_from_the_content_not_only_the_status() -> None:
    messages = [
        HumanMessage("Edit the config."),
        *_call("editor", {"command": "create"}, "ERROR:\nFile already exists at: /app/a.cfg."),
        *_call("editor", {"command": "view"}, "key = value"),
    ]
    text = build_briefing(messages, verdict=VERDICT)
    assert "  -> error:\n```\nERROR:\nFile already exists at: /app/a.cfg.\n```" in text
    assert "  -> result: key = value" in text


def test_the_latest_error_and_the_evidence_stay_verbatim_among_many_long_steps() -> None:
    early_error = "Error: permission denied: /etc/app.cfg (errno 13)"
    messages: list[BaseMessage] = [HumanMessage("Deploy the app.")]
    messages += _call("deploy", {"target": "prod"}, early_error)  # messages 1 and 2
    messages += _call("read", {"path": "big.log"}, "log line\n" * 5_000) * 40
    latest = "Error: deploy refused: 3 replicas unhealthy\n  replica-1: CrashLoopBackOff"
    messages += _call("deploy", {"target": "prod"}, latest)
    verdict = Verdict(stuck=True, rule="repeated_action_error", reason="r", evidence=[1, 2])

    text = build_briefing(messages, verdict=verdict, max_tokens=1_500)

    assert latest in text
    assert early_error in text
    assert "steps omitted" in text
    assert _tokens(text) <= 1_500


def test_long_tool_outputs_keep_head_and_tail_and_multi_line_outputs_stay_verbatim() -> None:
    output = "BUILD START\n" + "compiling unit\n" * 3_000 + "```\nBUILD FAILED: 1 error"
    messages = [HumanMessage("Build it."), *_call("run", {"cmd": "make"}, output)]
    text = build_briefing(messages, verdict=VERDICT, max_tokens=800)
    assert "BUILD START\ncompiling unit" in text
    assert "```\nBUILD FAILED: 1 error\n````" in text  # a longer fence than the output's own
    assert "[...]" in text


def test_an_invalid_tool_call_is_shown_as_a_failure() -> None:
    broken = AIMessage(
        "",
        invalid_tool_calls=[
            {
                "name": "search",
                "args": "{'q': oops",
                "id": "1",
                "error": "bad JSON",
                "type": "invalid_tool_call",
            }
        ],
    )
    text = build_briefing([HumanMessage("Find it."), broken], verdict=VERDICT)
    assert "- called search({'q': oops) [invalid: bad JSON]" in text


def test_never_over_the_bound_in_count_tokens_approximately_tokens() -> None:
    messages: list[BaseMessage] = [HumanMessage(ISSUE_PROMPT * 3)]
    for number in range(300):
        messages += _call("run", {"cmd": f"step {number}", "pad": "p" * 300}, "z\n" * (number * 40))
    for max_tokens in (50, 200, 333, 800, 1_500, 4_000, 8_000):
        text = build_briefing(
            messages,
            verdict=VERDICT,
            question="Q? " * 500,
            context="C. " * 900,
            max_tokens=max_tokens,
        )
        assert _tokens(text) <= max_tokens
        assert estimate_tokens(text) == _tokens(text)


def test_a_bound_too_small_for_a_briefing_is_refused() -> None:
    with pytest.raises(ValueError, match="max_tokens must be at least 50, got 20"):
        build_briefing([HumanMessage("x")], max_tokens=20)
