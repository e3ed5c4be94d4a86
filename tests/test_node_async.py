"""Async twins: ainvoke and astream run the same logic as invoke and stream."""

from __future__ import annotations

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from node_scenarios import (
    ADVICE,
    PRICES,
    STRONG_COST,
    TOOLS,
    agent_graph,
    archive_call,
    assert_tool_calls_answered,
    failing_call,
    strong_model,
    user_input,
    weak_model,
    weak_script,
)

from langchain_escalate.node import create_escalating_node
from langchain_escalate.policy import EscalationPolicy
from langchain_escalate.testing import ScriptedChatModel


async def test_ainvoke_advise() -> None:
    weak, strong = weak_model(), strong_model()
    node = create_escalating_node(weak, strong, tools=TOOLS, prices=PRICES)
    result = await agent_graph(node).compile().ainvoke(user_input())

    assert result["messages"][-1].content == "The 2023 total is 42 MEUR."
    assert len(strong.calls) == 1
    assert [r["outcome"] for r in result["escalations"]] == ["nudged", "advised"]
    assert result["escalations"][1]["cost_usd"] == pytest.approx(STRONG_COST)
    assert ADVICE in weak.calls[6][-1].content
    assert_tool_calls_answered(result["messages"])


async def test_ainvoke_takeover() -> None:
    weak = weak_model([*weak_script()[:6], "The 2023 total is 42 MEUR."])
    strong = strong_model([archive_call()])
    policy = EscalationPolicy(mode="takeover", takeover_steps=0)
    node = create_escalating_node(weak, strong, tools=TOOLS, policy=policy, prices=PRICES)
    result = await agent_graph(node).compile().ainvoke(user_input())

    assert result["messages"][-1].content == "The 2023 total is 42 MEUR."
    assert len(strong.calls) == 1
    assert result["escalations"][-1]["outcome"] == "took_over"


async def test_astream_custom_events() -> None:
    node = create_escalating_node(weak_model(), strong_model(), tools=TOOLS, prices=PRICES)
    graph = agent_graph(node).compile()
    events = [event async for event in graph.astream(user_input(), stream_mode="custom")]
    assert [e["escalation"]["outcome"] for e in events] == ["nudged", "advised"]


async def test_async_expert_failure_moves_down_the_ladder() -> None:
    weak = weak_model([*(failing_call() for _ in range(3)), "unused"])
    strong = ScriptedChatModel(script=[RuntimeError("boom")], model_name="strong-model")
    policy = EscalationPolicy(ladder=["escalate", "stop"])
    node = create_escalating_node(weak, strong, tools=TOOLS, policy=policy)
    result = await agent_graph(node).compile().ainvoke(user_input())
    assert [r["outcome"] for r in result["escalations"]] == ["expert_failed", "stopped"]


async def test_async_interrupt_and_resume_pays_once() -> None:
    weak = weak_model([*(failing_call() for _ in range(9)), archive_call(), "Total: 42 MEUR."])
    strong = strong_model(["Try again."])
    node = create_escalating_node(weak, strong, tools=TOOLS, prices=PRICES)
    graph = agent_graph(node).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "a"}}

    await graph.ainvoke(user_input(), config)
    assert (await graph.aget_state(config)).interrupts
    calls_before = len(weak.calls)
    result = await graph.ainvoke(Command(resume="Use fetch_archive."), config)

    assert result["messages"][-1].content == "Total: 42 MEUR."
    assert len(strong.calls) == 1
    assert len(weak.calls) == calls_before + 2
    assert [r["outcome"] for r in result["escalations"]] == ["nudged", "advised", "human"]
