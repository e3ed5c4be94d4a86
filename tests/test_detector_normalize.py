"""Normalization, error recognition, confidence, and reading recorded conversations."""

from __future__ import annotations

import math

import pytest
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    messages_to_dict,
)

from langchain_escalate.detector import (
    MessageFormatError,
    messages_from_dicts,
    read_confidence,
    strip_confidence,
)
from langchain_escalate.detector.formats import check_tool_answers
from langchain_escalate.detector.steps import action_key, calls_of, is_error, normalize_text

# Volatile tokens


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("at 2026-11-28T17:50:31Z", "at 2026-11-28T17:52:02.123456+01:00"),
        ("at 2026-11-28 17:50:31", "at 2026-11-29 08:00"),
        ("Date: Sat, 28 Nov 2026 17:50:31 GMT", "Date: Sun, 29 Nov 2026 01:02:03 GMT"),
        ("logged 17:50:31.120", "logged 17:50:35.004"),
        ("id 3f2a9c0e-1b2d-4c5e-8f90-a1b2c3d4e5f6", "id 9B1D2E3F-4A5B-4C6D-8E7F-0A1B2C3D4E5F"),
        ("object at 0x7f3a2c10", "object at 0x10ffe0"),
        ("trace 5f0c2a1b9e8d7c6b", "trace a1b2c3d4e5f60718aa"),
        ("request req_8f14e45fceea167a5a36", "request req_c9f0f895fb98ab9159f5"),
        ("done in 12ms", "done in 1.5s"),
        ("took 3 seconds", "took 47 seconds"),
        ("elapsed: 2 minutes", "elapsed: 14 minutes"),
        ("a  b\n\tc ", "a b c"),
    ],
)
def test_volatile_tokens_do_not_make_attempts_differ(first: str, second: str) -> None:
    assert normalize_text(first) == normalize_text(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("status: queued", "status: running"),
        ("imported 100 of 1000 rows", "imported 200 of 1000 rows"),
        ("flight on 2024-05-20", "flight on 2024-05-21"),
        ("departs 06:00:00", "departs 13:00:00"),
        ("card 4111111111111111", "card 4111111111111112"),
        ("balance 1203.0", "balance 1208.0"),
        ("retry 3 of 5", "retry 4 of 5"),
        ("ETA 5 minutes", "ETA 4 minutes"),
    ],
)
def test_data_that_means_progress_is_kept(first: str, second: str) -> None:
    assert normalize_text(first) != normalize_text(second)


# Actions


def _ai(*calls: tuple[str, dict[str, object], str], text: str = "") -> AIMessage:
    return AIMessage(
        text, tool_calls=[{"name": n, "args": a, "id": i, "type": "tool_call"} for n, a, i in calls]
    )


def test_an_action_ignores_ids_key_order_text_and_call_order() -> None:
    first = _ai(
        ("search", {"q": "kettle", "limit": 5}, "call_1"),
        ("stock", {"sku": "KT"}, "call_2"),
        text="Let me look.",
    )
    second = _ai(
        ("stock", {"sku": "KT"}, "toolu_9"), ("search", {"limit": 5, "q": "kettle"}, "toolu_8")
    )
    assert action_key(calls_of(first)) == action_key(calls_of(second))


def test_an_action_normalizes_white_space_and_volatile_tokens_in_arguments() -> None:
    first = _ai(("log", {"msg": "retry  at 2026-11-28T10:00:00Z"}, "a"))
    second = _ai(("log", {"msg": "retry at 2026-11-28T10:00:09Z "}, "b"))
    assert action_key(calls_of(first)) == action_key(calls_of(second))


@pytest.mark.parametrize(
    "other",
    [
        _ai(("search", {"q": "kettles"}, "x")),
        _ai(("lookup", {"q": "kettle"}, "x")),
        _ai(("search", {"q": "kettle"}, "x"), ("search", {"q": "kettle"}, "y")),
        _ai(("search", {"q": "kettle", "page": 2}, "x")),
    ],
)
def test_different_calls_are_different_actions(other: AIMessage) -> None:
    assert action_key(calls_of(_ai(("search", {"q": "kettle"}, "a")))) != action_key(
        calls_of(other)
    )


# Errors


@pytest.mark.parametrize(
    "text",
    [
        "Error: user not found",
        "error: flight HAT030 not available on date 2024-05-20",
        "ERROR - connection refused",
        "Error: ValueError('x')\n Please fix your mistakes.",
        "Error executing tool 'search' with kwargs {} with error:\n boom\n Please fix the error.",
        "Error invoking tool 'search' with kwargs {'q': 1} with error:\n bad",
        "ValueError: invalid literal for int()",
        "requests.exceptions.HTTPError: 500 Server Error",
        "ERROR:\nInvalid `path` parameter: /repo/x.py. The path /repo/x.py does not exist.",
        "ERROR:\nNo replacement was performed, old_str `foo()` did not appear verbatim in a.py.",
        "No replacement was performed. Multiple occurrences of old_str `x = 1`.",
        "Invalid `view_range` parameter: [1, 500].",
        "Parameter `old_str` is required for command: str_replace.",
        "bash: pytest: command not found",
        "zsh: command not found: pytest",
        "sh: 1: pytest: not found",
        '{"error": "rate limited"}',
        '{"error": {"code": 403}}',
        '{"errors": [{"message": "Field not found"}]}',
    ],
)
def test_known_error_shapes_are_errors(text: str) -> None:
    assert is_error(ToolMessage(text, tool_call_id="1"))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Transfer successful",
        "Errors: 0, warnings: 2",
        "Error rate is below 1%",
        "Error-free run completed",
        '{"error": null, "result": 4}',
        '{"errors": [], "data": {"id": 1}}',
        '{"status": "failed", "job": 3}',
        "The user reported an error: the page was blank.",
        "1203.0",
        # A program the agent ran reported its own failure: the shell did its job.
        "Traceback (most recent call last):\n  File 'repro.py', line 1\nZeroDivisionError: oops",
        "Running repro...\nTraceback (most recent call last):\n  File 'repro.py'\nKeyError: 'a'",
        "FAILED tests/test_x.py::test_y - AssertionError: 1 != 2\n1 failed, 3 passed in 0.2s",
        "make: *** [Makefile:192: build] Error 2\n[The command completed with exit code 2.]",
        "ls: cannot access 'src/lib': No such file or directory",
        "x.c:3:5: error: expected ';' before '}' token",
        "echo hi\nhi\nbash: line 3: foo: command not found",
    ],
)
def test_successful_outputs_are_not_errors(text: str) -> None:
    assert not is_error(ToolMessage(text, tool_call_id="1"))


def test_a_tool_message_with_status_error_is_an_error() -> None:
    assert is_error(ToolMessage("whatever", tool_call_id="1", status="error"))


# Confidence


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (AIMessage("Done.\nConfidence: 0.35"), 0.35),
        (AIMessage("Done.\n\nconfidence = .8\n"), 0.8),
        (AIMessage("Done.\n**Confidence:** 35%"), 0.35),
        (
            AIMessage(
                [{"type": "text", "text": "Done."}, {"type": "text", "text": "\nConfidence: 0.6"}]
            ),
            0.6,
        ),
        (AIMessage("Done.", response_metadata={"confidence": 0.7}), 0.7),
        (AIMessage("Done.\nConfidence: 0.1", response_metadata={"confidence": 0.7}), 0.7),
        (
            AIMessage(
                "Done.",
                response_metadata={"logprobs": {"content": [{"logprob": -0.1}, {"logprob": -0.3}]}},
            ),
            math.exp(-0.2),
        ),
        (AIMessage("Done.\nConfidence: 35"), None),
        (AIMessage("Done.", response_metadata={"confidence": True}), None),
        (AIMessage("Confidence: 0.9 is what I would say, but here is more text."), None),
        (AIMessage("Done."), None),
    ],
)
def test_read_confidence(message: AIMessage, expected: float | None) -> None:
    assert read_confidence(message) == (None if expected is None else pytest.approx(expected))


def test_strip_confidence_removes_only_the_final_line() -> None:
    assert strip_confidence("Paris.\nConfidence: 0.35") == "Paris."
    assert strip_confidence("Paris.\n\n**Confidence:** 90%\n") == "Paris."
    assert (
        strip_confidence("Confidence: 0.2 in the middle\nParis.")
        == "Confidence: 0.2 in the middle\nParis."
    )
    assert strip_confidence("Paris.") == "Paris."


# Recorded conversations


OPENAI = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Status of order 7?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_order", "arguments": '{"order_id": 7}'},
            },
            {
                "id": "c2",
                "type": "function",
                "function": {"name": "get_order", "arguments": "{not json"},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "name": "get_order", "content": "pending"},
    {"role": "assistant", "content": "Pending.", "response_metadata": {"confidence": 0.9}},
]


def test_openai_chat_format_becomes_langchain_messages() -> None:
    messages = messages_from_dicts(OPENAI)
    assert [type(message) for message in messages] == [
        SystemMessage,
        HumanMessage,
        AIMessage,
        ToolMessage,
        AIMessage,
    ]
    request = messages[2]
    assert isinstance(request, AIMessage)
    assert request.tool_calls[0]["args"] == {"order_id": 7}
    assert request.tool_calls[0]["id"] == "c1"
    # Unparseable arguments are the model's failure, recorded as an invalid tool call.
    assert request.invalid_tool_calls[0]["name"] == "get_order"
    assert request.invalid_tool_calls[0]["args"] == "{not json"
    assert messages[3].tool_call_id == "c1"  # type: ignore[attr-defined]
    assert read_confidence(messages[4]) == 0.9  # type: ignore[arg-type]


def test_langchain_dicts_round_trip() -> None:
    original = [
        HumanMessage("hi"),
        AIMessage(
            "", tool_calls=[{"name": "f", "args": {"x": 1}, "id": "t1", "type": "tool_call"}]
        ),
        ToolMessage("Error: no", tool_call_id="t1", status="error"),
        AIMessage("bye"),
    ]
    restored = messages_from_dicts(messages_to_dict(original))
    assert restored == original


def test_flat_langchain_dicts_are_accepted() -> None:
    [message] = messages_from_dicts([{"type": "human", "content": "hi"}])
    assert message == HumanMessage("hi")


@pytest.mark.parametrize(
    ("items", "index", "fragment"),
    [
        ([{"role": "user", "content": "x"}, "hello"], 1, "expected a message object"),
        ([{"content": "x"}], 0, "unknown message shape"),
        (
            [{"role": "user", "content": "x"}, {"role": "robot", "content": "x"}],
            1,
            "unknown role 'robot'",
        ),
        ([{"role": "tool", "content": "x"}], 0, "tool_call_id"),
        ([{"role": "assistant", "content": 3}], 0, "'content' must be"),
        (
            [{"role": "assistant", "content": "", "tool_calls": [{"id": "1"}]}],
            0,
            "no function name",
        ),
        ([{"type": "alien", "data": {"content": "x"}}], 0, "alien"),
        ([{"type": "ai", "data": {"content": 5}}], 0, "content"),
    ],
)
def test_bad_messages_name_their_index(items: list[object], index: int, fragment: str) -> None:
    with pytest.raises(MessageFormatError) as caught:
        messages_from_dicts(items)
    assert caught.value.index == index
    assert fragment in caught.value.why
    assert "\n" not in str(caught.value)


def test_a_tool_message_answering_no_call_is_reported() -> None:
    messages = messages_from_dicts(
        [
            *OPENAI[:4],
            {"role": "tool", "tool_call_id": "c1", "content": "again"},
        ]  # c1 is already answered
    )
    with pytest.raises(MessageFormatError) as caught:
        check_tool_answers(messages)
    assert caught.value.index == 4
    assert "'c1'" in caught.value.why


def test_tool_messages_answering_open_calls_pass() -> None:
    check_tool_answers(messages_from_dicts(OPENAI))
