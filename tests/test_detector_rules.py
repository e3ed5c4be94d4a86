"""Each rule fires exactly at its threshold, survives noise, and ignores healthy look-alikes."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_escalate.detector import DetectorConfig, StuckDetector, Verdict

_ids = itertools.count(1)


def act(*calls: tuple[str, dict[str, Any]], text: str = "") -> AIMessage:
    """An AI message asking for these tool calls, each with a fresh id."""
    return AIMessage(
        text,
        tool_calls=[
            {"name": name, "args": args, "id": f"call_{next(_ids)}", "type": "tool_call"}
            for name, args in calls
        ],
    )


def answer(request: AIMessage, *outputs: str, status: str = "success") -> list[ToolMessage]:
    """Tool messages answering each call of ``request``, in order."""
    return [
        ToolMessage(output, tool_call_id=call["id"], status=status)
        for call, output in zip(request.tool_calls, outputs, strict=True)
    ]


def attempt(
    name: str, args: dict[str, Any], output: str, *, status: str = "success"
) -> list[BaseMessage]:
    request = act((name, args))
    return [request, *answer(request, output, status=status)]


def stuck_at(
    messages: list[BaseMessage], config: DetectorConfig | None = None
) -> list[tuple[int, Verdict]]:
    """Feed the messages one at a time; return (index, verdict) where a rule fired."""
    detector = StuckDetector(config)
    verdicts = [(index, detector.observe(message)) for index, message in enumerate(messages)]
    return [(index, verdict) for index, verdict in verdicts if verdict.stuck]


def rules_at(
    messages: list[BaseMessage], config: DetectorConfig | None = None
) -> list[tuple[int, str | None]]:
    return [(index, verdict.rule) for index, verdict in stuck_at(messages, config)]


TASK: BaseMessage = HumanMessage("Find the order and tell me its status.")


# repeated_action_observation


def test_same_call_and_result_fires_at_the_fourth_result_not_the_third() -> None:
    loop = [TASK]
    for _ in range(4):
        loop += attempt("get_order", {"order_id": 7}, '{"status": "pending"}')

    assert rules_at(loop[:-1]) == []
    [(index, verdict)] = stuck_at(loop)
    assert index == 8
    assert verdict.rule == "repeated_action_observation"
    assert verdict.evidence == [1, 2, 3, 4, 5, 6, 7, 8]
    assert verdict.loop_start == 1
    assert "get_order" in verdict.reason
    assert "4 times" in verdict.reason


def test_noise_between_identical_attempts_does_not_hide_a_loop() -> None:
    outputs = [
        "pending (at 2026-11-28T10:00:01Z, id 3f2a9c0e-1b2d-4c5e-8f90-a1b2c3d4e5f6, took 12ms)",
        "pending  (at 2026-11-28T10:00:07Z, id 9b1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f, took 1.5s)",
        "pending\n(at 2026-11-28 10:01:13, id 0e1f2a3b-4c5d-4e6f-8a9b-c0d1e2f3a4b5, took 80 ms)",
        "pending (at 2026-11-28T10:02:55+00:00, id 7a8b9c0d-1e2f-4a3b-9c4d-e5f6a7b8c9d0, took 3 s)",
    ]
    argument_orders = [
        {"order_id": 7, "fields": ["status"]},
        {"fields": ["status"], "order_id": 7},
        {"order_id": 7, "fields": ["status"]},
        {"fields": ["status"], "order_id": 7},
    ]
    loop: list[BaseMessage] = [TASK]
    for args, output in zip(argument_orders, outputs, strict=True):
        loop += attempt("get_order", args, output)

    assert rules_at(loop) == [(8, "repeated_action_observation")]


def test_text_beside_the_calls_and_the_order_of_parallel_calls_do_not_matter() -> None:
    loop: list[BaseMessage] = [TASK]
    for attempt_number in range(4):
        calls: list[tuple[str, dict[str, Any]]] = [
            ("get_order", {"order_id": 7}),
            ("get_customer", {"customer_id": "c-1"}),
        ]
        if attempt_number % 2:
            calls.reverse()
        request = act(*calls, text=f"Attempt {attempt_number}: checking both.")
        outputs = {"get_order": "pending", "get_customer": "Ada Lovelace"}
        loop += [
            request,
            *reversed(answer(request, *(outputs[call["name"]] for call in request.tool_calls))),
        ]

    assert rules_at(loop) == [(12, "repeated_action_observation")]


def test_a_poll_whose_status_changes_is_progress() -> None:
    statuses = ["queued", "queued", "queued", "running", "running", "running", "done"]
    poll = [TASK]
    for status in statuses:
        poll += attempt(
            "get_job",
            {"job": "build-42"},
            f'{{"status": "{status}", "at": "2026-11-28T10:00:00Z"}}',
        )
    assert rules_at(poll) == []


def test_a_moving_counter_is_progress() -> None:
    poll = [TASK]
    for done in range(10):
        poll += attempt("get_job", {"job": "import"}, f"imported {done * 100} of 1000 rows")
    assert rules_at(poll) == []


def test_reading_many_different_files_is_not_a_loop() -> None:
    reads = [TASK]
    for number in range(30):
        reads += attempt(
            "read_file", {"path": f"src/module_{number}.py"}, "def main():\n    pass\n"
        )
    assert rules_at(reads) == []


def test_a_loop_that_goes_on_fires_again_after_another_full_threshold() -> None:
    loop = [TASK]
    for _ in range(9):
        loop += attempt("get_order", {"order_id": 7}, "pending")
    assert rules_at(loop) == [
        (8, "repeated_action_observation"),
        (16, "repeated_action_observation"),
    ]


def test_threshold_none_turns_the_rule_off() -> None:
    loop = [TASK]
    for _ in range(12):
        loop += attempt("get_order", {"order_id": 7}, "pending")
    assert rules_at(loop, DetectorConfig(repeated_action_observation=None)) == []


# repeated_action_error


def test_same_failing_call_fires_at_the_third_error_not_the_second() -> None:
    loop = [TASK]
    for _ in range(3):
        loop += attempt(
            "book_flight",
            {"flight": "HAT030"},
            "Error: flight HAT030 not available on date 2024-05-20",
        )

    assert rules_at(loop[:-1]) == []
    [(index, verdict)] = stuck_at(loop)
    assert (index, verdict.rule) == (6, "repeated_action_error")
    assert verdict.evidence == [1, 2, 3, 4, 5, 6]
    assert verdict.loop_start == 1
    assert "not available" in verdict.reason


@pytest.mark.parametrize(
    "errors",
    [
        pytest.param(
            ["Error: ValueError('bad date')\n Please fix your mistakes."] * 3,
            id="langgraph-toolnode",
        ),
        pytest.param(
            [
                "Error: rate limited, retry in 30 seconds (request 5f0c2a1b9e8d7c6b)",
                "Error: rate limited, retry in 12 seconds (request a1b2c3d4e5f60718)",
                "error: upstream returned 503",
            ],
            id="error-texts-differ",
        ),
        pytest.param(
            ['{"error": {"code": 404, "message": "no such order"}}'] * 3, id="json-error-key"
        ),
        pytest.param(
            ["ERROR:\nParameter `old_str` is required for command: str_replace."] * 3,
            id="openhands-editor",
        ),
        pytest.param(["bash: pytest: command not found"] * 3, id="command-not-found"),
    ],
)
def test_known_error_shapes_count_as_errors(errors: list[str]) -> None:
    loop = [TASK]
    for error in errors:
        loop += attempt("get_order", {"order_id": 7}, error)
    assert rules_at(loop) == [(6, "repeated_action_error")]


def test_status_error_counts_whatever_the_text() -> None:
    loop = [TASK]
    for _ in range(3):
        loop += attempt("get_order", {"order_id": 7}, "no luck", status="error")
    assert rules_at(loop) == [(6, "repeated_action_error")]


def test_a_crashing_script_run_three_times_is_work_not_failure() -> None:
    # The agent edits, reruns its reproduction script, and it still crashes:
    # the shell did its job each time.
    crash = 'Traceback (most recent call last):\n  File "/repo/repro.py", line 4\nValueError: bad'
    run = [TASK]
    for attempt_number in range(3):
        run += attempt("str_replace_editor", {"command": "str_replace", "n": attempt_number}, "ok")
        run += attempt("execute_bash", {"command": "python repro.py"}, crash)
    assert rules_at(run) == []


def test_program_failures_between_editor_mistakes_do_not_add_up() -> None:
    run = [TASK]
    run += attempt("execute_bash", {"command": "python repro.py"}, "Traceback (most recent...")
    run += attempt("str_replace_editor", {"command": "create"}, "ERROR:\nInvalid `path` parameter")
    run += attempt("execute_bash", {"command": "pytest -x"}, "1 failed in 0.4s")
    run += attempt("str_replace_editor", {"command": "str_replace"}, "ERROR:\nParameter `old_str`")
    assert rules_at(run) == []


def failing_exit_code(message: ToolMessage) -> bool | None:
    """A user's classifier: a shell command that exits non-zero failed; the rest as default."""
    if message.name == "execute_bash":
        return "[The command completed with exit code 0.]" not in str(message.content)
    return None


def test_a_user_classifier_overrides_the_default() -> None:
    config = DetectorConfig(is_failure=failing_exit_code)
    run = [TASK]
    for seconds in (1, 2, 3):  # the same command failing with changing output
        request = act(("execute_bash", {"command": "pytest"}))
        output = f"{seconds} failed\n[The command completed with exit code 1.]"
        call_id = request.tool_calls[0]["id"]
        run += [request, ToolMessage(output, tool_call_id=call_id, name="execute_bash")]
    assert rules_at(run) == []
    assert rules_at(run, config) == [(6, "repeated_action_error")]


def test_a_user_classifier_returning_none_keeps_the_default() -> None:
    config = DetectorConfig(is_failure="tests.test_detector_rules:failing_exit_code")
    assert config.is_failure is not None
    assert config.is_failure.__name__ == "failing_exit_code"
    loop = [TASK]
    for _ in range(3):
        loop += attempt("get_order", {"order_id": 7}, "Error: timeout")
    assert rules_at(loop, config) == [(6, "repeated_action_error")]
    dumped = config.model_dump(mode="json")["is_failure"]
    assert dumped == "tests.test_detector_rules.failing_exit_code"


def test_errors_that_recover_are_not_a_loop() -> None:
    flaky = [TASK]
    for _ in range(4):
        flaky += attempt("get_order", {"order_id": 7}, "Error: timeout")
        flaky += attempt("get_order", {"order_id": 7}, '{"status": "pending"}')
        flaky += [AIMessage("Order 7 is pending."), HumanMessage("And now?")]
    assert rules_at(flaky) == []


# consecutive_failures


def test_failures_of_different_calls_fire_at_the_third() -> None:
    failures = [
        TASK,
        *attempt("get_order", {"order_id": 7}, "Error: order service down"),
        *attempt("search_orders", {"customer": "ada"}, "Error: search index unavailable"),
        *attempt("get_customer", {"customer_id": "c-1"}, "Error: customer not found"),
    ]
    assert rules_at(failures[:-1]) == []
    [(index, verdict)] = stuck_at(failures)
    assert (index, verdict.rule) == (6, "consecutive_failures")
    assert verdict.evidence == [1, 2, 3, 4, 5, 6]
    assert "customer not found" in verdict.reason


def test_a_success_resets_the_failure_count() -> None:
    mixed = [
        TASK,
        *attempt("get_order", {"order_id": 7}, "Error: order service down"),
        *attempt("search_orders", {"customer": "ada"}, "Error: search index unavailable"),
        *attempt("list_orders", {"customer": "ada"}, "[7, 9]"),
        *attempt("get_customer", {"customer_id": "c-1"}, "Error: customer not found"),
        *attempt("get_order", {"order_id": 9}, "Error: order service down"),
    ]
    assert rules_at(mixed) == []


def test_empty_replies_and_failures_the_node_recorded_count() -> None:
    detector = StuckDetector()
    assert not detector.observe(TASK).stuck
    assert not detector.observe(AIMessage("")).stuck
    assert not detector.record_failure("the model call timed out").stuck
    verdict = detector.observe(AIMessage("   \nConfidence: 0.9"))

    assert verdict.rule == "consecutive_failures"
    assert verdict.evidence == [1, 2]  # the recorded failure has no message
    assert "empty" in verdict.reason
    assert detector.count == 3


def test_a_failure_recorded_by_the_node_can_be_the_one_that_fires() -> None:
    detector = StuckDetector()
    for message in [TASK, *attempt("get_order", {"order_id": 7}, "Error: down")]:
        detector.observe(message)
    detector.record_failure("output failed to parse")
    verdict = detector.record_failure("output failed to parse")
    assert verdict.rule == "consecutive_failures"
    assert "output failed to parse" in verdict.reason
    assert verdict.evidence == [1, 2]


def test_unparseable_tool_calls_are_failures() -> None:
    garbled = AIMessage(
        "",
        invalid_tool_calls=[
            {
                "name": "get_order",
                "args": "{order_id: 7",
                "id": "c",
                "error": "bad JSON",
                "type": "invalid_tool_call",
            }
        ],
    )
    assert rules_at([TASK, garbled, garbled, garbled]) == [(3, "consecutive_failures")]


def test_a_reply_is_a_success() -> None:
    chat = [
        TASK,
        *attempt("get_order", {"order_id": 7}, "Error: order service down"),
        *attempt("get_order", {"order_id": 8}, "Error: order service down"),
        AIMessage("The order service is down; I will retry later."),
        *attempt("get_order", {"order_id": 9}, "Error: order service down"),
    ]
    assert rules_at(chat, DetectorConfig(reset_on_human=False)) == []


# monologue


def test_the_same_reply_fires_at_the_third() -> None:
    replies = [
        TASK,
        AIMessage("I need more information to proceed."),
        AIMessage("I need  more information\nto proceed."),
        AIMessage("I need more information to proceed.\nConfidence: 0.9"),
    ]
    assert rules_at(replies[:-1]) == []
    [(index, verdict)] = stuck_at(replies)
    assert (index, verdict.rule) == (3, "monologue")
    assert verdict.evidence == [1, 2, 3]
    assert verdict.loop_start == 1


def test_an_observation_between_replies_breaks_a_monologue() -> None:
    replies = [
        TASK,
        AIMessage("Checking."),
        AIMessage("Checking."),
        *attempt("get_order", {"order_id": 7}, "pending"),
        AIMessage("Checking."),
        AIMessage("Checking."),
    ]
    assert rules_at(replies) == []


def test_different_replies_are_no_monologue() -> None:
    replies = [
        TASK,
        AIMessage("Step one done."),
        AIMessage("Step two done."),
        AIMessage("Step three done."),
    ]
    assert rules_at(replies) == []


# alternating


def _flip_flop(pairs: int) -> list[BaseMessage]:
    messages: list[BaseMessage] = [TASK]
    for number in range(pairs):
        warehouse = "north" if number % 2 == 0 else "south"
        messages += attempt(
            "check_stock", {"warehouse": warehouse, "sku": "KT"}, f"{warehouse}: 0 available"
        )
    return messages


def test_alternating_pairs_fire_at_the_sixth() -> None:
    assert rules_at(_flip_flop(5)) == []
    [(index, verdict)] = stuck_at(_flip_flop(6))
    assert (index, verdict.rule) == (12, "alternating")
    assert verdict.evidence == list(range(1, 13))
    assert "north" in verdict.reason
    assert "south" in verdict.reason


def test_alternation_with_changing_results_is_progress() -> None:
    messages: list[BaseMessage] = [TASK]
    for number in range(10):
        page = "a" if number % 2 == 0 else "b"
        messages += attempt("read_page", {"page": page}, f"page {page}, revision {number}")
    assert rules_at(messages) == []


def test_a_third_action_breaks_the_alternation() -> None:
    messages = _flip_flop(5) + attempt(
        "check_stock", {"warehouse": "east", "sku": "KT"}, "east: 4 available"
    )
    assert rules_at(messages) == []


# low_confidence


@pytest.mark.parametrize(
    "reply",
    [
        AIMessage("Paris, I think.\nConfidence: 0.35"),
        AIMessage("Paris, I think.\n\n**Confidence:** 35%"),
        AIMessage("Paris, I think.", response_metadata={"confidence": 0.2}),
        AIMessage(
            "Paris.",
            response_metadata={
                "logprobs": {"content": [{"token": "Paris", "logprob": math.log(0.3)}]}
            },
        ),
    ],
    ids=["final-line", "percent", "metadata", "logprobs"],
)
def test_a_reply_below_the_confidence_threshold_fires_at_that_reply(reply: AIMessage) -> None:
    [(index, verdict)] = stuck_at([TASK, reply])
    assert (index, verdict.rule) == (1, "low_confidence")
    assert verdict.evidence == [1]
    assert verdict.loop_start is None


@pytest.mark.parametrize(
    "reply",
    [
        AIMessage("Paris.\nConfidence: 0.5"),
        AIMessage("Paris."),
        AIMessage(
            "Paris.",
            response_metadata={"confidence": 0.9, "logprobs": {"content": [{"logprob": -5.0}]}},
        ),
        AIMessage(
            "",
            tool_calls=[{"name": "search", "args": {}, "id": "1"}],
            response_metadata={"confidence": 0.1},
        ),
    ],
    ids=["at-threshold", "none", "stated-beats-logprobs", "not-a-reply"],
)
def test_replies_at_or_above_the_threshold_or_without_confidence_do_not(reply: AIMessage) -> None:
    assert rules_at([TASK, reply]) == []


# max_steps


def _busy_turn(steps: int) -> list[BaseMessage]:
    messages: list[BaseMessage] = [TASK]
    for number in range(steps):
        messages += attempt("read_file", {"path": f"f{number}.py"}, f"contents {number}")
    return messages


def test_the_hundred_and_first_call_of_a_turn_fires() -> None:
    messages = _busy_turn(101)
    [(index, verdict)] = stuck_at(messages)
    assert index == len(messages) - 2  # the 101st AI message, before its tool result
    assert verdict.rule == "max_steps"
    assert "101" in verdict.reason
    assert rules_at(_busy_turn(100)) == []


def test_a_final_reply_or_a_new_human_turn_restarts_the_step_count() -> None:
    config = DetectorConfig(max_steps=3)
    replied = [*_busy_turn(3), AIMessage("Done."), *_busy_turn(3)[1:]]
    new_turn = [*_busy_turn(3), HumanMessage("Next file please."), *_busy_turn(3)[1:]]
    assert rules_at(replied, config) == []
    assert rules_at(new_turn, config) == []
    assert rules_at(_busy_turn(4), config) == [(7, "max_steps")]


def test_a_runaway_turn_fires_again_after_another_full_threshold() -> None:
    assert rules_at(_busy_turn(8), DetectorConfig(max_steps=3)) == [
        (7, "max_steps"),
        (15, "max_steps"),
    ]


# Priority, turns, and message kinds


def test_when_several_rules_hold_the_first_in_rules_order_is_reported_and_all_start_afresh() -> (
    None
):
    loop = [TASK]
    for _ in range(7):
        loop += attempt("get_order", {"order_id": 7}, "Error: order service down")
    # At the 3rd error both repeated_action_error and consecutive_failures hold;
    # repeated_action_observation would hold at the 4th had its window not restarted.
    assert rules_at(loop) == [(6, "repeated_action_error"), (12, "repeated_action_error")]


def test_a_human_message_starts_a_new_turn() -> None:
    messages = [TASK]
    for number in range(3):
        messages += attempt("get_order", {"order_id": 7}, "Error: order service down")
        messages.append(HumanMessage(f"Try again ({number})."))
    assert rules_at(messages) == []
    assert rules_at(messages, DetectorConfig(reset_on_human=False)) == [
        (8, "repeated_action_error")
    ]


def test_system_messages_are_ignored_but_take_an_index() -> None:
    messages: list[BaseMessage] = [SystemMessage("You are a support agent."), TASK]
    for _ in range(3):
        messages += attempt("get_order", {"order_id": 7}, "Error: down")
        messages.append(SystemMessage("Reminder: be polite."))
    [(index, verdict)] = stuck_at(messages)
    assert index == 9
    assert verdict.evidence == [2, 3, 5, 6, 8, 9]


def test_a_tool_message_answering_no_call_is_ignored() -> None:
    messages: list[BaseMessage] = [TASK]
    for _ in range(3):
        messages += attempt("get_order", {"order_id": 7}, "Error: down")
        messages.append(ToolMessage("Error: stray", tool_call_id="nobody"))
    assert rules_at(messages) == [(8, "repeated_action_error")]


def test_a_parallel_action_completes_only_when_every_call_is_answered() -> None:
    detector = StuckDetector(DetectorConfig(consecutive_failures=1))
    detector.observe(TASK)
    request = act(("a", {}), ("b", {}))
    detector.observe(request)
    first, second = answer(request, "Error: a failed", "ok")
    assert not detector.observe(first).stuck
    verdict = detector.observe(second)
    assert verdict.rule == "consecutive_failures"
    assert verdict.evidence == [1, 2, 3]
