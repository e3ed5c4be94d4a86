"""``observe()`` never raises on any message LangChain accepts, and its state always round-trips.

Nastier than ``test_detector_properties.py``: huge integers, NaN and infinities,
lone surrogates, deep nesting, odd content blocks, invalid tool calls, hostile
logprobs and confidences, and long adversarial strings.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_escalate.detector import DetectorConfig, StuckDetector


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    # Huge integers, built lazily: even repr() refuses more than 4300 digits.
    st.sampled_from([400, -5000, 1100]).map(
        lambda digits: (1 if digits > 0 else -1) * 10 ** abs(digits)
    ),
    st.floats(),  # NaN and infinities included
    st.text(max_size=30),
    st.sampled_from(["\ud800", "a\udfffb", "took" + " " * 3000, "1" * 5000, "\x1b[2J", ""]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
) | st.sampled_from([nested(40), nested(300)])
texts = st.one_of(
    st.text(max_size=300),
    st.sampled_from(
        [
            "Error: boom",
            "Traceback (most recent call last):\nValueError: x",
            '{"error": "x"}',
            '{"error": ' + "[" * 5000,
            "Confidence: 0.2",
            "Confidence: " + "9" * 150 + "%",
            "2026-11-28T10:00:00." + "1" * 3000,
            "\ud800 Error: lone",
        ]
    ),
)
blocks = st.lists(
    st.one_of(
        texts,
        st.builds(lambda text: {"type": "text", "text": text}, texts),
        st.dictionaries(st.text(max_size=5), values, max_size=3),
    ),
    max_size=3,
)
contents = texts | blocks
call_ids = st.sampled_from(["a", "b", "c", "\ud800"]) | st.none()

messages = st.one_of(
    st.builds(
        lambda calls, content: AIMessage(content, tool_calls=calls),
        st.lists(
            st.builds(
                lambda name, args, call_id: {"name": name, "args": args, "id": call_id},
                st.text(min_size=1, max_size=8),
                st.dictionaries(st.text(max_size=6), values, max_size=4),
                call_ids,
            ),
            max_size=3,
        ),
        contents,
    ),
    st.builds(
        lambda content, call_id, error: ToolMessage(
            content, tool_call_id=call_id, status="error" if error else "success"
        ),
        contents,
        st.sampled_from(["a", "b", "c", "\ud800", ""]),
        st.booleans(),
    ),
    st.builds(
        lambda content, confidence, logprob: AIMessage(
            content,
            response_metadata={
                "confidence": confidence,
                "logprobs": {"content": [{"token": "x", "logprob": logprob}] * 2},
            },
        ),
        contents,
        values,
        values,
    ),
    st.builds(
        lambda name, args: AIMessage(
            "", invalid_tool_calls=[{"name": name, "args": args, "id": "x", "error": "bad"}]
        ),
        st.text(max_size=5) | st.none(),
        st.text(max_size=50) | st.none(),
    ),
    st.builds(HumanMessage, contents),
    st.builds(SystemMessage, contents),
)
CONFIG = DetectorConfig(monologue=2, alternating=4, max_steps=3, repeated_action_error=2)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(conversation=st.lists(messages, max_size=30), split=st.integers(min_value=0, max_value=30))
def test_observe_never_raises_and_the_state_round_trips(
    conversation: list[Any], split: int
) -> None:
    original = StuckDetector(CONFIG)
    expected = [original.observe(message) for message in conversation]
    for verdict in expected:
        assert verdict.stuck == (verdict.rule is not None)

    split = min(split, len(conversation))
    first = StuckDetector(CONFIG)
    for message in conversation[:split]:
        first.observe(message)
    saved = json.dumps(first.to_state())
    restored = StuckDetector.from_state(json.loads(saved), CONFIG)
    assert [restored.observe(message) for message in conversation[split:]] == expected[split:]
    assert restored.to_state() == original.to_state()


def test_a_positive_huge_logprob_is_no_confidence_and_no_overflow() -> None:
    reply = AIMessage("x", response_metadata={"logprobs": {"content": [{"logprob": 1e308}]}})
    assert not StuckDetector().observe(reply).stuck
    assert math.exp(-1e308) == 0.0  # the other end is harmless
