"""The node's contract at its edges: bad input, budget, stop, streaming, subgraphs."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.message import add_messages
from node_scenarios import (
    ADVICE,
    PRICES,
    TOOLS,
    agent_graph,
    archive_call,
    assert_tool_calls_answered,
    broken_report,
    failing_call,
    strong_model,
    user_input,
    weak_model,
)
from pydantic import BaseModel
from typing_extensions import TypedDict

from langchain_escalate.budget import Budget
from langchain_escalate.detector import DetectorConfig
from langchain_escalate.escalation import EscalationStopped
from langchain_escalate.node import create_escalating_node
from langchain_escalate.policy import EscalationPolicy
from langchain_escalate.records import EscalationState, add_records, merge_progress
from langchain_escalate.testing import ScriptedChatModel, tool_call

ESCALATE_THEN_STOP = EscalationPolicy(ladder=["escalate", "stop"])


def _three_failures_then(*rest: Any) -> ScriptedChatModel:
    return weak_model([*(failing_call() for _ in range(3)), *rest])


# -- bad input ---------------------------------------------------------------


def test_state_without_messages_is_a_clear_error_naming_the_node() -> None:
    class State(TypedDict):
        question: str

    node = create_escalating_node(weak_model(), strong_model())
    graph = StateGraph(State).add_node("solver", node).add_edge(START, "solver").compile()
    with pytest.raises(ValueError, match=r"node 'solver'.*'messages'"):
        graph.invoke({"question": "hi"})


@pytest.mark.parametrize("weak", [42, None, ["a", "list"]])
def test_weak_of_a_wrong_kind_is_a_type_error_naming_the_node(weak: Any) -> None:
    expected = r"node 'planner'.*'provider:model'.*'provider/model'.*callable or Runnable"
    with pytest.raises(TypeError, match=expected):
        create_escalating_node(weak, strong_model(), name="planner")


def test_strong_of_a_wrong_kind_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="compiled graph"):
        create_escalating_node(weak_model(), 3.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("answer", "why"),
    [(TimeoutError("provider timed out"), "TimeoutError"), ("   ", "empty answer")],
    ids=["raises", "empty"],
)
def test_expert_that_fails_moves_down_the_ladder_without_a_half_state(
    answer: Any, why: str
) -> None:
    weak = _three_failures_then("unused")
    # A timeout is transient: retried (policy.max_retries, 2 by default) before it fails.
    strong = ScriptedChatModel(script=[answer] * 3, model_name="strong-model")
    node = create_escalating_node(
        weak, strong, tools=TOOLS, policy=ESCALATE_THEN_STOP, prices=PRICES
    )
    result = agent_graph(node).compile().invoke(user_input())

    outcomes = [(r["action"], r["outcome"]) for r in result["escalations"]]
    assert outcomes == [("escalate", "expert_failed"), ("stop", "stopped")]
    assert why in result["escalations"][0]["reason"]
    last = result["messages"][-1]
    assert isinstance(last, AIMessage)
    assert "stuck" in last.content
    assert not last.tool_calls
    # No guidance message was written for the failed call.
    assert not [
        m for m in result["messages"] if isinstance(m, HumanMessage) and "Advice" in m.content
    ]
    assert_tool_calls_answered(result["messages"])


def test_weak_model_that_raises_is_counted_as_failures_and_never_half_written() -> None:
    weak = weak_model(
        [ConnectionError("down"), ConnectionError("down"), ConnectionError("down"), "It is 42."]
    )
    node = create_escalating_node(
        weak,
        strong_model(),
        detector=DetectorConfig(consecutive_failures=3),
        policy=EscalationPolicy(max_retries=0),
    )
    graph = StateGraph(EscalationState).add_node("agent", node).add_edge(START, "agent").compile()
    result = graph.invoke(user_input())

    assert [r["rule"] for r in result["escalations"]] == ["consecutive_failures"]
    assert [type(m).__name__ for m in result["messages"]] == [
        "HumanMessage",
        "HumanMessage",
        "AIMessage",
    ]
    assert result["messages"][-1].content == "It is 42."


def test_weak_model_that_keeps_raising_raises_and_writes_nothing() -> None:
    weak = ScriptedChatModel(script=[ConnectionError("down")], repeat_last=True)
    node = create_escalating_node(
        weak, strong_model(["Retry later."]), detector=DetectorConfig(consecutive_failures=None)
    )
    graph = StateGraph(EscalationState).add_node("agent", node).add_edge(START, "agent")
    app = graph.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    with pytest.raises(ConnectionError):
        app.invoke(user_input(), config)
    assert len(app.get_state(config).values["messages"]) == 1


def test_tool_that_raises_inside_tool_node_is_escalated_too() -> None:
    weak = weak_model(
        [
            *(
                AIMessage("", tool_calls=[tool_call("broken_report", {"year": 2023})])
                for _ in range(3)
            ),
            "I could not fetch it.",
        ]
    )
    strong = strong_model()
    node = create_escalating_node(
        weak, strong, tools=[broken_report], policy=ESCALATE_THEN_STOP, prices=PRICES
    )
    result = agent_graph(node, tools=[broken_report]).compile().invoke(user_input())

    assert len(strong.calls) == 1
    assert "connection reset" in strong.calls[0][-1].content
    assert result["messages"][-1].content == "I could not fetch it."


# -- budget, no checkpointer, stop -------------------------------------------


def test_refused_budget_moves_down_to_stop_without_calling_the_expert() -> None:
    strong = strong_model()
    node = create_escalating_node(
        _three_failures_then("unused"),
        strong,
        tools=TOOLS,
        policy=ESCALATE_THEN_STOP,
        budget=Budget(max_escalations_per_thread=0),
        prices=PRICES,
    )
    result = agent_graph(node).compile().invoke(user_input(), {"configurable": {"thread_id": "b"}})

    assert strong.calls == []
    assert [r["outcome"] for r in result["escalations"]] == ["over_budget", "stopped"]
    assert "Budget refused" in result["escalations"][0]["reason"]


def test_budget_is_settled_with_the_actual_cost() -> None:
    budget = Budget(max_usd_per_thread=1.0)
    node = create_escalating_node(
        _three_failures_then(archive_call(), "Total 42."), strong_model(), tools=TOOLS,
        policy=ESCALATE_THEN_STOP, budget=budget, prices=PRICES,
    )  # fmt: skip
    result = agent_graph(node).compile().invoke(user_input(), {"configurable": {"thread_id": "s"}})
    assert budget.spent("s") == pytest.approx(result["escalations"][0]["cost_usd"])
    assert budget.escalations("s") == 1


def test_human_without_a_checkpointer_is_skipped_to_stop_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = EscalationPolicy(ladder=["human"])
    node = create_escalating_node(
        _three_failures_then("unused"), strong_model(), tools=TOOLS, policy=policy
    )
    with (
        pytest.warns(RuntimeWarning, match="node 'agent'.*checkpointer"),
        caplog.at_level(logging.WARNING, "langchain_escalate"),
    ):
        result = agent_graph(node).compile().invoke(user_input())

    assert [r["outcome"] for r in result["escalations"]] == ["skipped", "stopped"]
    assert "checkpointer" in caplog.text


def test_stop_behavior_raise_raises_and_leaves_state_unwritten() -> None:
    policy = EscalationPolicy(ladder=["stop"], stop_behavior="raise")
    node = create_escalating_node(
        _three_failures_then("unused"), strong_model(), tools=TOOLS, policy=policy
    )
    app = agent_graph(node).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "r"}}
    with pytest.raises(EscalationStopped, match="node 'agent' stopped the turn") as caught:
        app.invoke(user_input(), config)
    assert caught.value.record.rule == "repeated_action_error"
    assert isinstance(app.get_state(config).values["messages"][-1], ToolMessage)


# -- streaming, tracing, subgraphs --------------------------------------------


def test_records_stream_as_custom_events_and_the_expert_call_is_tagged() -> None:
    strong = strong_model()
    node = create_escalating_node(weak_model(), strong, tools=TOOLS, prices=PRICES)
    seen: list[dict[str, Any]] = []

    from langchain_core.callbacks import BaseCallbackHandler  # noqa: PLC0415

    class Spy(BaseCallbackHandler):
        def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
            seen.append({"tags": kwargs.get("tags"), "metadata": kwargs.get("metadata")})

    events = list(
        agent_graph(node)
        .compile()
        .stream(user_input(), {"callbacks": [Spy()]}, stream_mode="custom")
    )

    assert [e["escalation"]["action"] for e in events] == ["nudge", "escalate"]
    assert events[1]["escalation"]["cost_usd"] is not None
    tagged = [s for s in seen if "escalation" in (s["tags"] or [])]
    assert len(tagged) == 1
    assert tagged[0]["metadata"]["escalation_rule"] == "repeated_action_error"
    assert tagged[0]["metadata"]["escalation_node"] == "agent"


def test_node_inside_a_subgraph() -> None:
    strong = strong_model()
    node = create_escalating_node(weak_model(), strong, tools=TOOLS, prices=PRICES)
    inner = agent_graph(node).compile()
    parent = StateGraph(EscalationState).add_node("worker", inner).add_edge(START, "worker")
    result = parent.compile().invoke(user_input())

    assert result["messages"][-1].content == "The 2023 total is 42 MEUR."
    assert len(strong.calls) == 1
    assert [r["outcome"] for r in result["escalations"]] == ["nudged", "advised"]
    assert any(ADVICE in str(m.content) for m in result["messages"])


def test_human_rung_inside_a_subgraph_uses_the_parents_checkpointer() -> None:
    from langgraph.types import Command  # noqa: PLC0415

    weak = _three_failures_then(archive_call(), "Total 42.")
    policy = EscalationPolicy(ladder=["human"])
    inner = agent_graph(create_escalating_node(weak, strong_model(), tools=TOOLS, policy=policy))
    parent = StateGraph(EscalationState).add_node("worker", inner.compile())
    parent = parent.add_edge(START, "worker").compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "sub"}}

    parent.invoke(user_input(), config)
    (interrupt,) = parent.get_state(config, subgraphs=True).tasks[0].state.interrupts
    assert interrupt.value["node"] == "agent"
    result = parent.invoke(Command(resume="Use fetch_archive."), config)
    assert result["messages"][-1].content == "Total 42."
    assert [r["outcome"] for r in result["escalations"]] == ["human"]


def test_healthy_run_adds_nothing_but_the_reply() -> None:
    weak = weak_model([archive_call(), "Total 42."])
    strong = strong_model()
    node = create_escalating_node(weak, strong, tools=TOOLS)
    result = agent_graph(node, state=MessagesState).compile().invoke(user_input())
    assert [type(m).__name__ for m in result["messages"]] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    assert strong.calls == []
    assert all(not m.additional_kwargs for m in result["messages"])


class PydanticState(BaseModel):
    messages: Annotated[list[AnyMessage], add_messages]
    escalations: Annotated[list[dict[str, Any]], add_records] = []
    escalation_progress: Annotated[dict[str, Any], merge_progress] = {}


def test_pydantic_state_with_the_escalation_keys() -> None:
    strong = strong_model()
    node = create_escalating_node(weak_model(), strong, tools=TOOLS, prices=PRICES)
    result = agent_graph(node, state=PydanticState).compile().invoke(user_input())

    assert result["messages"][-1].content == "The 2023 total is 42 MEUR."
    assert [r["outcome"] for r in result["escalations"]] == ["nudged", "advised"]
    assert len(strong.calls) == 1


def test_each_record_is_streamed_once_when_rungs_fail() -> None:
    strong = ScriptedChatModel(script=[RuntimeError("overloaded")], model_name="strong-model")
    node = create_escalating_node(
        _three_failures_then("unused"), strong, tools=TOOLS, policy=ESCALATE_THEN_STOP
    )
    events = list(agent_graph(node).compile().stream(user_input(), stream_mode="custom"))
    assert [e["escalation"]["outcome"] for e in events] == ["expert_failed", "stopped"]


def test_progress_saved_by_another_release_is_rebuilt_not_an_error() -> None:
    node = create_escalating_node(weak_model(["It is 42."]), strong_model())
    graph = StateGraph(EscalationState).add_node("agent", node).add_edge(START, "agent").compile()
    stale = {"agent": {"detector": {"version": 999}, "last_id": "x", "fired": 1, "pending": None}}
    result = graph.invoke({**user_input(), "escalation_progress": stale})
    assert result["messages"][-1].content == "It is 42."
    assert result["escalation_progress"]["agent"]["detector"]["version"] != 999
