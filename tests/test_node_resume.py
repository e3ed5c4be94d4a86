"""The human rung: interrupt, resume from a new graph object, and no escalation paid twice."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.types import Command
from node_scenarios import (
    PRICES,
    TOOLS,
    agent_graph,
    archive_call,
    assert_tool_calls_answered,
    failing_call,
    strong_model,
    user_input,
    weak_model,
)

from langchain_escalate.budget import Budget
from langchain_escalate.node import create_escalating_node
from langchain_escalate.policy import EscalationPolicy
from langchain_escalate.records import EscalationState
from langchain_escalate.testing import ScriptedChatModel

if TYPE_CHECKING:
    from pathlib import Path

GUIDANCE = "Use fetch_archive for 2023."
USAGE = {"input_tokens": 100, "output_tokens": 20, "total_tokens": 120}


def _sqlite_graph(path: Path, node: Any, *, state: type = EscalationState) -> Any:
    connection = sqlite3.connect(path, check_same_thread=False)
    return agent_graph(node, state=state).compile(checkpointer=SqliteSaver(connection))


@pytest.mark.parametrize("state", [EscalationState, MessagesState], ids=["mixin", "plain"])
def test_interrupted_at_the_human_rung_and_resumed_from_a_new_graph(
    tmp_path: Path, state: type
) -> None:
    # Nine failing calls: nudge after 3, escalate after 6, human after 9.
    weak = weak_model([*(failing_call() for _ in range(9)), archive_call(), "Total: 42 MEUR."])
    strong = strong_model(["Try again with the same year."])
    path = tmp_path / "checkpoints.sqlite"
    config = {"configurable": {"thread_id": "t-1"}}

    def node() -> Any:
        return create_escalating_node(weak, strong, tools=TOOLS, prices=PRICES)

    first = _sqlite_graph(path, node(), state=state)
    first.invoke(user_input(), config)
    snapshot = first.get_state(config)
    (interrupt,) = snapshot.interrupts
    assert interrupt.value["node"] == "agent"
    assert interrupt.value["rule"] == "repeated_action_error"
    assert "fetch_report" in interrupt.value["briefing"]
    calls_before = len(weak.calls)

    second = _sqlite_graph(path, node(), state=state)  # as after a process restart
    result = second.invoke(Command(resume=GUIDANCE), config)

    assert result["messages"][-1].content == "Total: 42 MEUR."
    assert len(strong.calls) == 1  # the escalation before the interrupt was not paid again
    assert len(weak.calls) == calls_before + 2  # no weak call replayed either
    assert GUIDANCE in weak.calls[calls_before][-1].content
    assert_tool_calls_answered(result["messages"])
    if state is EscalationState:
        outcomes = [r["outcome"] for r in result["escalations"]]
        assert outcomes == ["nudged", "advised", "human"]


def test_human_after_a_paid_escalation_runs_in_a_fresh_step(tmp_path: Path) -> None:
    # The advice does not help: the weak reply is still unsure, so the ladder
    # reaches `human` in the same step as a paid call. That step must not be
    # replayed on resume, so the node ends it and asks the person in the next.
    weak = ScriptedChatModel(
        script=[
            "Maybe 12?\nConfidence: 0.2",
            "Perhaps 13?\nConfidence: 0.3",
            "It is 42.\nConfidence: 0.9",
        ],
        model_name="weak-model",
    )
    strong = strong_model(["Look it up in the archive."])
    policy = EscalationPolicy(ladder=["escalate", "human"])
    node = create_escalating_node(weak, strong, policy=policy, prices=PRICES)
    builder = StateGraph(EscalationState).add_node("agent", node).add_edge(START, "agent")
    path = tmp_path / "checkpoints.sqlite"
    config = {"configurable": {"thread_id": "t-2"}}

    first = builder.compile(
        checkpointer=SqliteSaver(sqlite3.connect(path, check_same_thread=False))
    )
    first.invoke(user_input(), config)
    assert first.get_state(config).interrupts
    assert (len(weak.calls), len(strong.calls)) == (2, 1)

    second = builder.compile(
        checkpointer=SqliteSaver(sqlite3.connect(path, check_same_thread=False))
    )
    result = second.invoke(Command(resume={"guidance": "It is 42 MEUR."}), config)

    assert (len(weak.calls), len(strong.calls)) == (3, 1)
    assert result["messages"][-1].content == "It is 42."
    assert [r["outcome"] for r in result["escalations"]] == ["advised", "human"]


def test_expert_failure_then_human_does_not_call_the_expert_again() -> None:
    weak = weak_model([*(failing_call() for _ in range(3)), archive_call(), "Total: 42 MEUR."])
    strong = ScriptedChatModel(
        script=[TimeoutError("provider timed out")], model_name="strong-model"
    )
    policy = EscalationPolicy(ladder=["escalate", "human"], max_retries=0)
    node = create_escalating_node(weak, strong, tools=TOOLS, policy=policy, prices=PRICES)
    graph = agent_graph(node, state=MessagesState).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t-3"}}

    graph.invoke(user_input(), config)
    assert graph.get_state(config).interrupts
    result = graph.invoke(Command(resume=GUIDANCE), config)

    assert len(strong.calls) == 1
    assert result["messages"][-1].content == "Total: 42 MEUR."
    help_texts = [m.content for m in result["messages"] if isinstance(m, HumanMessage)]
    assert any(GUIDANCE in text for text in help_texts)


def test_resume_with_a_value_that_is_not_guidance_names_the_node() -> None:
    weak = weak_model([*(failing_call() for _ in range(3)), "unused"])
    policy = EscalationPolicy(ladder=["human"])
    node = create_escalating_node(weak, strong_model(), tools=TOOLS, policy=policy)
    graph = agent_graph(node).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t-4"}}
    graph.invoke(user_input(), config)

    with pytest.raises(ValueError, match=r"node 'agent'.*Command\(resume="):
        graph.invoke(Command(resume={"answer": 1}), config)


def test_interrupt_inside_the_expert_graph_releases_its_reservation() -> None:
    from langgraph.types import interrupt  # noqa: PLC0415

    def ask_colleague(state: MessagesState) -> dict[str, Any]:
        answer = interrupt({"question": "Which report id?"})
        reply = AIMessage(
            f"Use report {answer}.",
            usage_metadata=USAGE,
            response_metadata={"model_name": "strong-model"},
        )
        return {"messages": [reply]}

    expert = (
        StateGraph(MessagesState).add_node("ask", ask_colleague).add_edge(START, "ask").compile()
    )
    budget = Budget(max_escalations_per_thread=1)
    weak = weak_model([*(failing_call() for _ in range(3)), archive_call(), "Total: 42 MEUR."])
    policy = EscalationPolicy(ladder=["escalate"])
    node = create_escalating_node(
        weak, expert, tools=TOOLS, policy=policy, budget=budget, prices=PRICES
    )
    graph = agent_graph(node).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t-5"}}

    graph.invoke(user_input(), config)
    assert graph.get_state(config).interrupts
    result = graph.invoke(Command(resume="A-17"), config)

    assert [r["outcome"] for r in result["escalations"]] == ["advised"]
    assert budget.escalations("t-5") == 1
    assert result["messages"][-1].content == "Total: 42 MEUR."


def test_interrupt_in_your_own_weak_node_is_not_a_failure() -> None:
    from langgraph.types import interrupt  # noqa: PLC0415

    def my_agent(state: dict[str, Any]) -> dict[str, Any]:
        approved = interrupt("approve?")
        return {"messages": [AIMessage(f"Approved: {approved}")]}

    node = create_escalating_node(my_agent, strong_model())
    graph = StateGraph(EscalationState).add_node("agent", node).add_edge(START, "agent")
    app = graph.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t-6"}}
    app.invoke(user_input(), config)
    result = app.invoke(Command(resume="yes"), config)

    assert result["messages"][-1].content == "Approved: yes"
    assert result["escalations"] == []
    assert result["escalation_progress"]["agent"]["detector"]["failures"]["length"] == 0
