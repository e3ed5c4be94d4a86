"""The detector's state: JSON round trips, clear(), and bad states."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from langchain_escalate.detector import DetectorConfig, StuckDetector


def _attempt(number: int, output: str) -> list[BaseMessage]:
    call_id = f"call_{number}"
    request = AIMessage(
        "", tool_calls=[{"name": "get_order", "args": {"order_id": 7}, "id": call_id}]
    )
    return [request, ToolMessage(output, tool_call_id=call_id)]


def _through_json(detector: StuckDetector, config: DetectorConfig | None = None) -> StuckDetector:
    return StuckDetector.from_state(json.loads(json.dumps(detector.to_state())), config)


def test_a_restored_detector_continues_where_the_original_stopped() -> None:
    original = StuckDetector()
    original.observe(HumanMessage("Where is order 7?"))
    for message in _attempt(1, "Error: down") + _attempt(2, "Error: down"):
        original.observe(message)
    restored = _through_json(original)

    third = _attempt(3, "Error: down")
    assert restored.count == original.count == 5
    assert [restored.observe(m) for m in third] == [original.observe(m) for m in third]
    assert original.observe(AIMessage("x")) == restored.observe(AIMessage("x"))
    assert restored.to_state() == original.to_state()


def test_a_restored_detector_keeps_an_action_waiting_for_results() -> None:
    detector = StuckDetector(DetectorConfig(consecutive_failures=1))
    request = AIMessage(
        "",
        tool_calls=[
            {"name": "a", "args": {}, "id": "call_a"},
            {"name": "b", "args": {}, "id": "call_b"},
        ],
    )
    detector.observe(request)
    detector.observe(ToolMessage("Error: a failed", tool_call_id="call_a"))
    restored = _through_json(detector, DetectorConfig(consecutive_failures=1))

    verdict = restored.observe(ToolMessage("ok", tool_call_id="call_b"))
    assert verdict.rule == "consecutive_failures"
    assert verdict.evidence == [0, 1, 2]


def test_state_holds_hashes_not_the_conversation() -> None:
    detector = StuckDetector()
    secret = "customer card 4111 1111 1111 1111, " + "x" * 5000
    detector.observe(HumanMessage(secret))
    detector.observe(
        AIMessage("", tool_calls=[{"name": "pay", "args": {"card": secret}, "id": "call_1"}])
    )
    detector.observe(ToolMessage(secret, tool_call_id="call_1"))
    assert len(json.dumps(detector.to_state())) < 2000


def test_clear_forgets_the_windows_but_keeps_the_index_and_the_step_count() -> None:
    detector = StuckDetector(DetectorConfig(max_steps=3))
    detector.observe(HumanMessage("go"))
    for message in _attempt(1, "Error: down") + _attempt(2, "Error: down"):
        detector.observe(message)
    detector.clear()

    third = _attempt(3, "Error: down")
    assert not detector.observe(third[0]).stuck  # step 3 of 3
    assert not detector.observe(third[1]).stuck  # the failure count started afresh
    assert detector.count == 7
    assert detector.observe(_attempt(4, "ok")[0]).rule == "max_steps"  # step 4 > 3


def test_record_failure_takes_no_index() -> None:
    detector = StuckDetector()
    detector.record_failure("model call raised")
    assert detector.count == 0


def test_from_state_refuses_another_version() -> None:
    state = StuckDetector().to_state()
    state["version"] = 99
    with pytest.raises(ValueError, match="version 99"):
        StuckDetector.from_state(state)


def test_from_state_refuses_a_malformed_state() -> None:
    state = StuckDetector().to_state()
    state["failures"] = {"length": "many"}
    with pytest.raises(ValueError, match="failures"):
        StuckDetector.from_state(state)


def test_from_state_refuses_something_else() -> None:
    with pytest.raises(ValueError, match="to_state"):
        StuckDetector.from_state([1, 2, 3])  # type: ignore[arg-type]


def test_observe_refuses_a_dict() -> None:
    with pytest.raises(TypeError, match="messages_from_dicts"):
        StuckDetector().observe({"role": "user", "content": "hi"})  # type: ignore[arg-type]
