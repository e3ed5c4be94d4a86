"""Arbitrary conversations: no crash, bounded state, exact restore, invariance to noise."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.tool import ToolCall

from langchain_escalate.detector import RULES, DetectorConfig, StuckDetector

STATE_LIMIT = 6_000
"""Bytes of JSON the default detector's state stays under, whatever the conversation's length."""

TOOLS = ("search", "read_file", "book")
ARGS: tuple[dict[str, Any], ...] = (
    {},
    {"q": "kettle"},
    {"q": "kettle", "page": 2},
    {"path": "a.py", "lines": [1, 2]},
)
OUTPUTS = (
    "ok",
    "",
    '{"status": "pending"}',
    '{"status": "done"}',
    "Error: not found",
    "Error: ValueError('x')\n Please fix your mistakes.",
    '{"error": "rate limited"}',
    "done at 2026-11-28T10:00:00Z in 12ms",
)
REPLIES = (
    "Done.",
    "",
    "I need more details.",
    "Paris.\nConfidence: 0.3",
    "Paris.\nConfidence: 0.9",
)

calls = st.lists(
    st.tuples(st.sampled_from(TOOLS), st.sampled_from(range(len(ARGS)))), min_size=1, max_size=3
)
events = st.one_of(
    st.tuples(st.just("act"), calls),
    st.tuples(st.just("answer"), st.sampled_from(range(len(OUTPUTS))), st.booleans()),
    st.tuples(st.just("stray"), st.sampled_from(range(len(OUTPUTS)))),
    st.tuples(st.just("reply"), st.sampled_from(range(len(REPLIES)))),
    st.tuples(st.just("human")),
    st.tuples(st.just("system")),
    st.tuples(st.just("failure")),
)


class Conversation:
    """Builds messages (and ``"failure"`` markers for ``record_failure``) from events.

    ``answer`` answers the oldest unanswered call of the last action (a stray
    tool message when none is open); ``noise`` reorders argument keys, adds
    text beside the calls, and puts fresh timestamps into outputs.
    """

    def __init__(self, *, id_prefix: str, noise: bool) -> None:
        self.items: list[Any] = []
        self.pending: list[str] = []
        self.counter = 0
        self.id_prefix = id_prefix
        self.noise = noise

    def act(self, calls: list[tuple[str, int]]) -> None:
        self.pending = []
        tool_calls: list[ToolCall] = []
        for name, arg_index in calls:
            self.counter += 1
            args = dict(ARGS[arg_index])
            if self.noise:
                args = dict(reversed(list(args.items())))
            call_id = f"{self.id_prefix}_{self.counter}"
            tool_calls.append(ToolCall(name=name, args=args, id=call_id, type="tool_call"))
            self.pending.append(call_id)
        self.items.append(AIMessage("Trying." if self.noise else "", tool_calls=tool_calls))

    def answer(self, output_index: int, error: bool) -> None:
        if not self.pending:
            self.stray(output_index)
            return
        output = OUTPUTS[output_index]
        if self.noise:
            fresh = f"2026-12-0{self.counter % 9 + 1}T1{self.counter % 10}:00:00Z"
            output = output.replace("2026-11-28T10:00:00Z", fresh)
        status = "error" if error else "success"
        self.items.append(ToolMessage(output, tool_call_id=self.pending.pop(0), status=status))

    def stray(self, output_index: int) -> None:
        self.items.append(
            ToolMessage(OUTPUTS[output_index], tool_call_id=f"{self.id_prefix}_stray")
        )

    def reply(self, reply_index: int) -> None:
        self.pending = []
        self.items.append(AIMessage(REPLIES[reply_index]))

    def human(self) -> None:
        self.items.append(HumanMessage("next"))

    def system(self) -> None:
        self.items.append(SystemMessage("rules"))

    def failure(self) -> None:
        self.items.append("failure")


def build(
    script: list[tuple[Any, ...]], *, id_prefix: str = "call", noise: bool = False
) -> list[Any]:
    conversation = Conversation(id_prefix=id_prefix, noise=noise)
    for kind, *params in script:
        getattr(conversation, kind)(*params)
    return conversation.items


def run(detector: StuckDetector, items: list[Any]) -> list[Any]:
    return [
        detector.record_failure("boom") if item == "failure" else detector.observe(item)
        for item in items
    ]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=st.lists(events, max_size=120))
def test_arbitrary_conversations_never_crash_and_verdicts_are_well_formed(
    script: list[tuple[Any, ...]],
) -> None:
    detector = StuckDetector()
    for verdict in run(detector, build(script)):
        assert verdict.stuck == (verdict.rule is not None)
        if verdict.stuck:
            assert verdict.rule in RULES
            assert verdict.reason.endswith(".")
            assert all(0 <= index < detector.count for index in verdict.evidence)
            assert verdict.evidence == sorted(set(verdict.evidence))
        else:
            assert verdict.evidence == []
    assert len(json.dumps(detector.to_state())) < STATE_LIMIT


@settings(max_examples=100, deadline=None)
@given(script=st.lists(events, max_size=80), split=st.integers(min_value=0, max_value=80))
def test_a_restored_detector_continues_exactly_as_the_original(
    script: list[tuple[Any, ...]], split: int
) -> None:
    config = DetectorConfig(max_steps=5, alternating=4, repeated_action_observation=2)
    items = build(script)
    split = min(split, len(items))

    original = StuckDetector(config)
    expected = run(original, items)

    first_half = StuckDetector(config)
    before = run(first_half, items[:split])
    restored = StuckDetector.from_state(json.loads(json.dumps(first_half.to_state())), config)
    assert before + run(restored, items[split:]) == expected
    assert restored.to_state() == original.to_state()


@settings(max_examples=100, deadline=None)
@given(script=st.lists(events, max_size=80))
def test_ids_key_order_and_timestamps_do_not_change_verdicts(script: list[tuple[Any, ...]]) -> None:
    plain = run(StuckDetector(), build(script))
    noisy = run(StuckDetector(), build(script, id_prefix="toolu", noise=True))
    assert [(v.rule, v.evidence) for v in plain] == [(v.rule, v.evidence) for v in noisy]


def test_state_stays_bounded_over_a_very_long_conversation() -> None:
    generator = random.Random(7)  # noqa: S311 - a reproducible workload, not a secret
    detector = StuckDetector()
    largest = 0
    for chunk in range(64):
        script: list[tuple[Any, ...]] = []
        for _ in range(200):
            kind = generator.choice(["act", "answer", "answer", "reply", "human", "failure"])
            if kind == "act":
                script.append(("act", [(generator.choice(TOOLS), generator.randrange(len(ARGS)))]))
            elif kind == "answer":
                script.append(("answer", generator.randrange(len(OUTPUTS)), False))
            elif kind == "reply":
                script.append(("reply", generator.randrange(len(REPLIES))))
            else:
                script.append((kind,))
        run(detector, build(script, id_prefix=f"c{chunk}"))
        largest = max(largest, len(json.dumps(detector.to_state())))
    assert detector.count > 10_000
    assert largest < STATE_LIMIT


def test_state_of_an_endless_loop_stays_bounded() -> None:
    detector = StuckDetector(DetectorConfig(max_steps=None))
    sizes = []
    for number in range(3_000):
        detector.observe(
            AIMessage("", tool_calls=[{"name": "search", "args": {"q": "x"}, "id": f"c{number}"}])
        )
        detector.observe(
            ToolMessage("Error: not found" if number % 7 else "ok", tool_call_id=f"c{number}")
        )
        if number in {100, 2_999}:
            sizes.append(len(json.dumps(detector.to_state())))
    assert sizes[1] <= sizes[0] + 200  # the indices grow by a few digits, nothing else does


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
free_text = st.text(max_size=200) | st.sampled_from(OUTPUTS + REPLIES)
any_message = st.one_of(
    st.builds(
        lambda name, args, call_id, text: AIMessage(
            text, tool_calls=[{"name": name, "args": args, "id": call_id}]
        ),
        st.text(min_size=1, max_size=10),
        st.dictionaries(st.text(max_size=8), json_values, max_size=4),
        st.sampled_from(["a", "b", "c"]) | st.none(),
        free_text,
    ),
    st.builds(
        lambda text, call_id, error: ToolMessage(
            text, tool_call_id=call_id, status="error" if error else "success"
        ),
        free_text,
        st.sampled_from(["a", "b", "c", "zzz"]),
        st.booleans(),
    ),
    st.builds(
        lambda text, confidence: AIMessage(text, response_metadata={"confidence": confidence}),
        free_text,
        json_values,
    ),
    st.builds(HumanMessage, free_text),
    st.builds(SystemMessage, free_text),
)


@settings(max_examples=100, deadline=None)
@given(messages=st.lists(any_message, max_size=60))
def test_arbitrary_texts_and_arguments_never_crash(messages: list[Any]) -> None:
    detector = StuckDetector(DetectorConfig(monologue=2, alternating=4, max_steps=3))
    for message in messages:
        detector.observe(message)
    restored = StuckDetector.from_state(
        json.loads(json.dumps(detector.to_state())), detector.config
    )
    assert restored.to_state() == detector.to_state()
