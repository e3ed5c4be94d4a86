"""End to end, per mode: a weak model repeating a failing tool call is nudged, then escalated."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import START, MessagesState, StateGraph
from node_scenarios import (
    ADVICE,
    PRICES,
    STRONG_COST,
    TASK,
    TOOLS,
    agent_graph,
    archive_call,
    assert_tool_calls_answered,
    failing_calls_seen,
    records_in_messages,
    strong_model,
    user_input,
    weak_model,
    weak_script,
)

from langchain_escalate.merge import TAKEOVER_KEY
from langchain_escalate.node import create_escalating_node
from langchain_escalate.policy import EscalationPolicy
from langchain_escalate.testing import ScriptedChatModel


def test_advise_nudges_then_escalates_and_the_task_completes() -> None:
    weak, strong = weak_model(), strong_model()
    node = create_escalating_node(weak, strong, tools=TOOLS, prices=PRICES)
    result = agent_graph(node).compile().invoke(user_input())

    assert result["messages"][-1].content == "The 2023 total is 42 MEUR."
    assert len(strong.calls) == 1
    briefing = strong.calls[0][-1].content
    assert TASK in briefing
    assert "fetch_report" in briefing
    assert "not found" in briefing
    assert "repeated_action_error" in briefing

    actions = [(r["action"], r["outcome"]) for r in result["escalations"]]
    assert actions == [("nudge", "nudged"), ("escalate", "advised")]
    escalation = result["escalations"][1]
    assert escalation["model"] == "strong-model"
    assert escalation["mode"] == "advise"
    assert escalation["cost_usd"] == pytest.approx(STRONG_COST)
    assert (escalation["tokens_in"], escalation["tokens_out"]) == (100, 20)
    assert escalation["rule"] == "repeated_action_error"

    # The nudge reached the weak model before its 4th call, the advice before its 7th.
    assert "fetch_report" in weak.calls[3][-1].content
    assert isinstance(weak.calls[3][-1], HumanMessage)
    assert ADVICE in weak.calls[6][-1].content
    # The loop after the nudge was pruned: the weak model no longer reads those failures.
    assert failing_calls_seen(weak.calls[6]) < failing_calls_seen(weak.calls[5])
    assert_tool_calls_answered(result["messages"])


def test_records_ride_in_message_metadata_with_plain_messages_state() -> None:
    strong = strong_model()
    node = create_escalating_node(weak_model(), strong, tools=TOOLS, prices=PRICES)
    result = agent_graph(node, state=MessagesState).compile().invoke(user_input())

    assert result["messages"][-1].content == "The 2023 total is 42 MEUR."
    assert len(strong.calls) == 1
    records = records_in_messages(result["messages"])
    assert [r["outcome"] for r in records] == ["nudged", "advised"]
    assert records[1]["cost_usd"] == pytest.approx(STRONG_COST)
    assert "escalations" not in result
    assert_tool_calls_answered(result["messages"])


def test_takeover_strong_model_acts_with_the_same_tools_then_hands_back() -> None:
    weak = weak_model([*weak_script()[:6], "The 2023 total is 42 MEUR."])
    strong = strong_model([archive_call()])
    policy = EscalationPolicy(mode="takeover", takeover_steps=0)
    node = create_escalating_node(weak, strong, tools=TOOLS, policy=policy, prices=PRICES)
    result = agent_graph(node).compile().invoke(user_input())

    assert result["messages"][-1].content == "The 2023 total is 42 MEUR."
    assert len(strong.calls) == 1
    assert strong.bound_tools == ["fetch_report", "fetch_archive"]
    takeover = [m for m in result["messages"] if TAKEOVER_KEY in m.additional_kwargs]
    assert [c["name"] for c in takeover[0].tool_calls] == ["fetch_archive"]
    escalation = result["escalations"][-1]
    assert (escalation["mode"], escalation["outcome"]) == ("takeover", "took_over")
    assert escalation["cost_usd"] == pytest.approx(STRONG_COST)
    # After the takeover the weak model read the archive's result and answered.
    assert "total 42" in weak.calls[-1][-1].content
    assert_tool_calls_answered(result["messages"])


def test_takeover_keeps_the_turn_for_takeover_steps_more_steps() -> None:
    weak = weak_model([*weak_script()[:6], "unused"])
    strong = strong_model([archive_call(), "The 2023 total is 42 MEUR (from the archive)."])
    policy = EscalationPolicy(mode="takeover", takeover_steps=1)
    node = create_escalating_node(weak, strong, tools=TOOLS, policy=policy, prices=PRICES)
    result = agent_graph(node).compile().invoke(user_input())

    assert result["messages"][-1].content == "The 2023 total is 42 MEUR (from the archive)."
    assert len(strong.calls) == 2
    # The second takeover step read its own first step's tool result.
    assert "total 42" in strong.calls[1][-1].content
    assert len(weak.calls) == 6
    assert [r["outcome"] for r in result["escalations"]] == ["nudged", "took_over", "took_over"]


def test_users_compiled_graph_as_expert_gets_the_briefing() -> None:
    inner_model = strong_model()

    def think(state: MessagesState) -> dict[str, Any]:
        return {"messages": [inner_model.invoke(state["messages"])]}

    expert = StateGraph(MessagesState).add_node("think", think).add_edge(START, "think").compile()
    weak = weak_model()
    node = create_escalating_node(weak, expert, tools=TOOLS, prices=PRICES)
    result = agent_graph(node).compile().invoke(user_input())

    assert result["messages"][-1].content == "The 2023 total is 42 MEUR."
    assert len(inner_model.calls) == 1
    assert TASK in inner_model.calls[0][0].content
    escalation = result["escalations"][-1]
    assert (escalation["mode"], escalation["outcome"]) == ("graph", "advised")
    assert escalation["cost_usd"] == pytest.approx(STRONG_COST)
    assert ADVICE in weak.calls[6][-1].content


def test_user_node_as_weak_step_keeps_its_other_updates() -> None:
    model = weak_model()

    def my_agent(state: dict[str, Any]) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])], "steps": state.get("steps", 0) + 1}

    class State(MessagesState):
        steps: int

    strong = strong_model()
    node = create_escalating_node(my_agent, strong, prices=PRICES)
    result = agent_graph(node, state=State).compile().invoke(user_input())

    assert result["messages"][-1].content == "The 2023 total is 42 MEUR."
    assert len(strong.calls) == 1
    assert result["steps"] == 8
    assert ADVICE in model.calls[6][-1].content


def test_a_new_human_turn_restarts_the_ladder() -> None:
    from langgraph.checkpoint.memory import InMemorySaver  # noqa: PLC0415

    weak = weak_model([*weak_script(), *weak_script()[:3], "ok"])
    strong = strong_model()
    node = create_escalating_node(weak, strong, tools=TOOLS, prices=PRICES)
    graph = agent_graph(node).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke(user_input(), config)
    result = graph.invoke(user_input("And again?"), config)

    # The second turn's first firing is a nudge again (not the 3rd rung, human).
    assert [r["action"] for r in result["escalations"]] == ["nudge", "escalate", "nudge"]
    assert len(strong.calls) == 1


def test_low_confidence_reply_is_replaced_by_an_advised_answer() -> None:
    weak = ScriptedChatModel(
        script=["Maybe 12?\nConfidence: 0.2", "It is 42 MEUR.\nConfidence: 0.9"],
        model_name="weak-model",
    )
    strong = strong_model(["Check the archive: the total is 42 MEUR."])
    policy = EscalationPolicy(ladder=["escalate", "stop"])
    node = create_escalating_node(weak, strong, policy=policy, prices=PRICES)
    graph = StateGraph(MessagesState).add_node("agent", node).add_edge(START, "agent").compile()
    result = graph.invoke(user_input())

    replies = [m for m in result["messages"] if isinstance(m, AIMessage)]
    assert [m.content for m in replies] == ["It is 42 MEUR."]  # confidence line stripped
    assert len(strong.calls) == 1
    assert "low_confidence" in strong.calls[0][-1].content
