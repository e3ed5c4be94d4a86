"""Money that always counts and model errors that surface (issue #11), in real graphs.

Each test removes one protection in its head: settle an unusable answer,
release on cancellation, raise a fatal model error, retry a transient one,
bound the strong call by its timeout, keep the advice out of the token stream.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langgraph.graph import START, StateGraph
from node_scenarios import (
    PRICES,
    TOOLS,
    agent_graph,
    failing_call,
    strong_model,
    user_input,
    weak_model,
)

from langchain_escalate.budget import Budget
from langchain_escalate.detector import DetectorConfig
from langchain_escalate.escalation import Escalator
from langchain_escalate.node import create_escalating_node
from langchain_escalate.policy import EscalationPolicy
from langchain_escalate.records import EscalationState
from langchain_escalate.testing import ScriptedChatModel

ESCALATE_ONLY = EscalationPolicy(ladder=["escalate", "stop"], retry_backoff_s=0)
BILLED = {"input_tokens": 20_000, "output_tokens": 0, "total_tokens": 20_000}


class AuthenticationError(Exception):
    """Shaped like litellm's and openai's: a 401 with a status code."""

    status_code = 401


class RateLimitError(Exception):
    status_code = 429


def _three_failures_then(*rest: Any) -> ScriptedChatModel:
    return weak_model([*(failing_call() for _ in range(3)), *rest])


def test_an_unusable_strong_answer_is_settled_at_what_it_cost() -> None:
    budget = Budget(max_usd_per_thread=10.0)
    empty = AIMessage("", usage_metadata=BILLED)  # billed, but says nothing
    strong = ScriptedChatModel(script=[empty], model_name="strong-model")
    node = create_escalating_node(
        _three_failures_then("unused"), strong, tools=TOOLS, policy=ESCALATE_ONLY,
        budget=budget, prices=PRICES,
    )  # fmt: skip
    result = agent_graph(node).compile().invoke(user_input(), {"configurable": {"thread_id": "u"}})

    failed = result["escalations"][0]
    assert (failed["outcome"], failed["tokens_in"]) == ("expert_failed", 20_000)
    assert failed["cost_usd"] == pytest.approx(20_000 * 3.0 / 1e6)
    assert budget.spent("u") == pytest.approx(failed["cost_usd"])


async def test_a_cancelled_strong_call_releases_its_reservation() -> None:
    budget = Budget(max_escalations_per_thread=1)
    started = threading.Event()

    def slow(_: list[Any]) -> AIMessage:
        started.set()
        time.sleep(1)
        return AIMessage("too late")

    escalator = Escalator(ScriptedChatModel(script=[slow]), node="ask", budget=budget)
    task = asyncio.create_task(escalator.aask("Which endpoint?", thread_id="c"))
    while not started.is_set():  # noqa: ASYNC110 - set from the model's worker thread
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    retry = Escalator(strong_model(["Use v2."]), node="ask", budget=budget)
    assert (await retry.aask("Which endpoint?", thread_id="c")).text == "Use v2."


def test_a_fatal_weak_error_raises_unchanged_without_paying_the_strong_model() -> None:
    weak = ScriptedChatModel(script=[AuthenticationError("Missing credentials")])
    strong = strong_model()
    node = create_escalating_node(weak, strong)
    graph = StateGraph(EscalationState).add_node("agent", node).add_edge(START, "agent").compile()

    with pytest.raises(AuthenticationError, match="Missing credentials"):
        graph.invoke(user_input())
    assert strong.calls == []


def test_a_transient_weak_error_is_retried_before_it_counts() -> None:
    weak = weak_model([RateLimitError("slow down"), RateLimitError("slow down"), "It is 42."])
    strong = strong_model()
    node = create_escalating_node(
        weak, strong, detector=DetectorConfig(consecutive_failures=1),
        policy=EscalationPolicy(max_retries=2, retry_backoff_s=0),
    )  # fmt: skip
    graph = StateGraph(EscalationState).add_node("agent", node).add_edge(START, "agent").compile()
    result = graph.invoke(user_input())

    assert result["messages"][-1].content == "It is 42."
    assert result["escalations"] == []  # retried, never counted as a failure
    assert len(weak.calls) == 3


def test_a_fatal_strong_error_raises_and_releases_the_reservation() -> None:
    budget = Budget(max_escalations_per_thread=1)
    strong = ScriptedChatModel(script=[AuthenticationError("bad key")], model_name="strong-model")
    node = create_escalating_node(
        _three_failures_then("unused"), strong, tools=TOOLS, policy=ESCALATE_ONLY, budget=budget
    )
    with pytest.raises(AuthenticationError, match="bad key"):
        agent_graph(node).compile().invoke(user_input(), {"configurable": {"thread_id": "f"}})
    assert budget.reserve("f").granted  # nothing was left reserved


def test_the_strong_timeout_moves_down_the_ladder_and_keeps_the_estimate_spent() -> None:
    def slow(_: list[Any]) -> AIMessage:
        time.sleep(2)
        return AIMessage("late")

    budget = Budget(max_usd_per_thread=10.0)
    strong = ScriptedChatModel(script=[slow], model_name="strong-model")
    policy = EscalationPolicy(
        ladder=["escalate", "stop"], strong_timeout_s=0.2, max_retries=0, retry_backoff_s=0
    )
    node = create_escalating_node(
        _three_failures_then("unused"), strong, tools=TOOLS, policy=policy, budget=budget,
        prices=PRICES,
    )  # fmt: skip
    result = agent_graph(node).compile().invoke(user_input(), {"configurable": {"thread_id": "s"}})

    outcomes = [(r["action"], r["outcome"]) for r in result["escalations"]]
    assert outcomes == [("escalate", "expert_failed"), ("stop", "stopped")]
    assert "did not answer within 0.2 s" in result["escalations"][0]["reason"]
    assert budget.spent("s") > 0  # the provider may have billed the abandoned call


@pytest.mark.parametrize("stream_expert", [False, True])
def test_the_strong_models_tokens_stay_out_of_the_message_stream_unless_asked(
    stream_expert: bool,
) -> None:
    advice = "Call fetch_archive for 2023."
    policy = EscalationPolicy(ladder=["escalate"], stream_expert=stream_expert)
    node = create_escalating_node(
        _three_failures_then("The 2023 total is 42 MEUR."), strong_model([advice]),
        tools=TOOLS, policy=policy, prices=PRICES,
    )  # fmt: skip
    graph = agent_graph(node).compile()

    streamed = [
        chunk.content
        for chunk, _ in graph.stream(user_input(), stream_mode="messages")
        if isinstance(chunk, (AIMessage, AIMessageChunk)) and chunk.content
    ]
    assert (advice in streamed) is stream_expert
    assert "The 2023 total is 42 MEUR." in streamed


def test_help_without_the_in_step_loop_would_end_a_tools_condition_graph() -> None:
    """Why the node calls the weak model again inside the step (docs/decisions.md).

    ``tools_condition`` routes on the node's last message. A node that returned
    only its help message would end the run there; the escalating node ends
    its step on the weak model's next reply, so the loop goes on.
    """

    def help_only(state: dict[str, Any]) -> dict[str, Any]:
        del state
        return {"messages": [HumanMessage("Advice: call fetch_archive.")]}

    ended = agent_graph(help_only).compile().invoke(user_input())
    assert ended["messages"][-1].content == "Advice: call fetch_archive."  # run over, no answer

    node = create_escalating_node(
        _three_failures_then(AIMessage("The 2023 total is 42 MEUR.")), strong_model(),
        tools=TOOLS, policy=ESCALATE_ONLY, prices=PRICES,
    )  # fmt: skip
    finished = agent_graph(node).compile().invoke(user_input())
    assert finished["messages"][-1].content == "The 2023 total is 42 MEUR."
