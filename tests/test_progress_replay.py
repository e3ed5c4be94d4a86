"""Plain-state progress: the bounded replay is exact, bounded, and each node reads its own marks."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from node_scenarios import TOOLS, failing_call, records_in_messages, strong_model, user_input

from langchain_escalate.detector import DetectorConfig, StuckDetector
from langchain_escalate.node import create_escalating_node
from langchain_escalate.policy import EscalationPolicy
from langchain_escalate.progress import is_fed, rebuild_progress
from langchain_escalate.records import RECORD_KEY
from langchain_escalate.testing import ScriptedChatModel, tool_call

CALLS = [("search", {"q": 1}), ("search", {"q": 2}), ("fetch", {"id": 1}), ("fetch", {"id": 2})]
RESULTS = ["ok 1", "ok 2", "ok 3", "Error: not found", "Error: timeout"]
HELP = {RECORD_KEY: {"id": "r", "node": "agent"}}


def _turn_part(draw: st.DrawFn, serial: int) -> list[BaseMessage]:
    """A few messages of a conversation: a step with its results, a reply, a person, help..."""
    kind = draw(st.sampled_from(["call"] * 6 + ["reply", "empty", "invalid", "human", "other"]))
    if kind == "call":
        chosen = draw(st.lists(st.sampled_from(CALLS), min_size=1, max_size=2))
        calls = [tool_call(name, args) for name, args in chosen]
        takeover = draw(st.integers(0, 15)) == 0  # a strong model's step: not fed, nor its results
        step = AIMessage("", tool_calls=calls, additional_kwargs=HELP if takeover else {})
        answered = draw(st.integers(0, len(calls) + 1))  # some left unanswered, or one stray
        results = [
            ToolMessage(
                draw(st.sampled_from(RESULTS)),
                tool_call_id=calls[i]["id"] if i < len(calls) else f"stray-{serial}",
            )
            for i in range(answered)
        ]
        return [step, *results]
    if kind == "reply":
        text = draw(st.sampled_from(["Done.", "Not sure.", "Maybe.\nConfidence: 0.2"]))
        return [AIMessage(text)]
    if kind == "empty":
        return [AIMessage("")]
    if kind == "invalid":
        return [
            AIMessage("", invalid_tool_calls=[{"name": "x", "args": "{", "id": "i", "error": None}])
        ]
    if kind == "human":
        help_ = draw(st.booleans())
        return [
            HumanMessage("Hint." if help_ else "Go on.", additional_kwargs=HELP if help_ else {})
        ]
    return [SystemMessage("note")]


@st.composite
def conversations(draw: st.DrawFn) -> list[BaseMessage]:
    messages: list[BaseMessage] = [HumanMessage("Task.")]
    for serial in range(draw(st.integers(0, 45))):
        messages += _turn_part(draw, serial)
    return messages


configs = st.builds(
    DetectorConfig,
    repeated_action_observation=st.sampled_from([2, 3, 4, None]),
    repeated_action_error=st.sampled_from([2, 3, None]),
    consecutive_failures=st.sampled_from([1, 2, 3, None]),
    monologue=st.sampled_from([2, 3, None]),
    alternating=st.sampled_from([4, 5, None]),
    low_confidence=st.sampled_from([0.5, None]),
    max_steps=st.sampled_from([1, 2, 3, 5, None]),
    reset_on_human=st.booleans(),
)


def _assert_exact(messages: list[BaseMessage], cut: int, config: DetectorConfig) -> None:
    """Rebuilt from ``messages[:cut]``, the detector judges what follows as a full replay does."""
    full = StuckDetector(config)
    verdicts = [full.observe(m) if is_fed(messages, p) else None for p, m in enumerate(messages)]
    expected = full.to_state()
    for exact_indices in (True, False):
        progress, start = rebuild_progress(messages[:cut], config, exact_indices=exact_indices)
        assert progress.detector.settled
        replayed = [
            progress.exact(progress.detector.observe(m)) if is_fed(messages, p) else None
            for p, m in enumerate(messages[start:], start=start)
        ]
        assert replayed == verdicts[start:]
        state = progress.detector.to_state()
        if config.max_steps is None:  # the turn's step count is not kept when no rule reads it
            state["steps"] = expected["steps"]
        if exact_indices:
            assert state == expected


@settings(max_examples=400, deadline=None)
@given(conversations(), configs, st.data())
def test_the_bounded_replay_gives_the_verdicts_of_a_full_replay(
    messages: list[BaseMessage], config: DetectorConfig, data: st.DataObject
) -> None:
    _assert_exact(messages, data.draw(st.integers(0, len(messages)), label="prefix"), config)


def _healthy(length: int) -> list[BaseMessage]:
    messages: list[BaseMessage] = [HumanMessage("Plan a trip.")]
    while len(messages) < length:
        call = tool_call("search", {"q": f"topic {len(messages)}"})
        messages += [
            AIMessage("", tool_calls=[call]),
            ToolMessage("found", tool_call_id=call["id"]),
        ]
    return messages


def test_a_healthy_conversation_replays_a_few_messages_whatever_its_length(
    monkeypatch: Any,
) -> None:
    read: list[int] = []
    real = StuckDetector.observe

    def counting(self: StuckDetector, message: BaseMessage) -> Any:
        read.append(1)
        return real(self, message)

    monkeypatch.setattr(StuckDetector, "observe", counting)
    for length in (100, 2_000):
        read.clear()
        rebuild_progress(_healthy(length), DetectorConfig())
        assert len(read) <= 2 * (StuckDetector.SETTLING_OBSERVATIONS + 1)


def test_a_loop_longer_than_a_threshold_is_replayed_from_where_it_began() -> None:
    """In a loop, where a rule last fired depends on where the loop began: no fixed tail will do."""
    config = DetectorConfig(repeated_action_observation=3)
    loop: list[BaseMessage] = []
    for _ in range(12):
        call = tool_call("search", {"q": "same"})
        loop += [AIMessage("", tool_calls=[call]), ToolMessage("same", tool_call_id=call["id"])]
    messages = [*_healthy(20), *loop]
    for cut in range(20, len(messages) + 1):
        _assert_exact(messages, cut, config)


def test_an_alternation_before_the_tail_is_replayed_exactly() -> None:
    """The case that needs four clean observations: the alternation fires on the second."""
    config = DetectorConfig(alternating=4)
    pairs = {"x": (("search", {"q": 1}), "ok 1"), "y": (("search", {"q": 2}), "ok 2")}
    pairs["z"] = (("fetch", {"id": 1}), "ok 3")
    messages: list[BaseMessage] = [HumanMessage("Task.")]
    for name in "xyxyzyzyzxzx":
        (tool, args), result = pairs[name]
        call = tool_call(tool, args)
        messages += [AIMessage("", tool_calls=[call]), ToolMessage(result, tool_call_id=call["id"])]
    for cut in range(len(messages) + 1):
        _assert_exact(messages, cut, config)


def _looping_node(weak_script: list[Any], strong: ScriptedChatModel) -> Any:
    policy = EscalationPolicy(ladder=["nudge", "escalate"])
    return create_escalating_node(
        ScriptedChatModel(script=weak_script, model_name="weak-model"),
        strong,
        tools=TOOLS,
        policy=policy,
    )


def test_each_node_climbs_its_own_ladder_in_plain_messages_state() -> None:
    """Node B's first firing in the turn is a nudge, though node A was nudged before it."""
    strong = strong_model()
    other_call = AIMessage("", tool_calls=[tool_call("fetch_report", {"year": 2022})])
    builder = StateGraph(MessagesState)
    builder.add_node("a", _looping_node([*(failing_call() for _ in range(3)), "A done."], strong))
    builder.add_node("b", _looping_node([*(other_call for _ in range(3)), "B done."], strong))
    builder.add_node("tools_a", ToolNode(TOOLS, handle_tool_errors=True))
    builder.add_node("tools_b", ToolNode(TOOLS, handle_tool_errors=True))
    builder.add_edge(START, "a")
    builder.add_conditional_edges("a", tools_condition, {"tools": "tools_a", "__end__": "b"})
    builder.add_edge("tools_a", "a")
    builder.add_conditional_edges("b", tools_condition, {"tools": "tools_b", "__end__": "__end__"})
    builder.add_edge("tools_b", "b")

    messages = builder.compile().invoke(user_input())["messages"]

    records = [(r["node"], r["action"]) for r in records_in_messages(messages)]
    assert records == [("a", "nudge"), ("b", "nudge")]
    assert strong.calls == []
    assert messages[-1].content == "B done."
