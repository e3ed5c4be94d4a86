"""A run summary of the final state counts the stuck replies the node or middleware dropped.

A stuck reply (here: a low self-rated confidence) never enters state, but the
weak model was paid for it. The help that answers it carries its usage, so
``summarize_run`` over the final state equals ``summarize_run`` over every
reply the models produced, whatever rung answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from node_scenarios import PRICES, TOOLS, agent_graph, archive_call, strong_model, weak_model

from langchain_escalate import EscalationMiddleware
from langchain_escalate.cost import PRUNED_USAGE_KEY, PriceBook, RunSummary, summarize_run
from langchain_escalate.node import create_escalating_node
from langchain_escalate.policy import EscalationPolicy

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_core.outputs import LLMResult
    from langchain_core.runnables import RunnableConfig

TASK = "What was the total of our 2023 sales?"
DOUBTFUL = "The 2023 total is probably 40 MEUR.\nConfidence: 0.2"
ANSWER = "The 2023 total is 42 MEUR."


class _Replies(BaseCallbackHandler):
    """Every reply a chat model produced in the run, kept or not."""

    def __init__(self) -> None:
        self.replies: list[AIMessage] = []

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        del kwargs
        for generations in response.generations:
            for generation in generations:
                message = getattr(generation, "message", None)
                if isinstance(message, AIMessage):
                    self.replies.append(message)


def _reported(reply: AIMessage, tokens_in: int) -> AIMessage:
    # Distinct usage per call, so a reply counted twice or not at all shows.
    usage = {"input_tokens": tokens_in, "output_tokens": 30, "total_tokens": tokens_in + 30}
    return reply.model_copy(update={"usage_metadata": usage})


def _weak_script() -> list[AIMessage]:
    replies = [archive_call(), AIMessage(DOUBTFUL), AIMessage(ANSWER)]
    return [_reported(reply, 1000 + 100 * n) for n, reply in enumerate(replies)]


def _strong_script(policy: EscalationPolicy) -> list[Any]:
    if policy.mode == "takeover":
        return [_reported(AIMessage(ANSWER), 5000)]
    return ["Re-read the archive result: it says 42 MEUR."]


def _summary(messages: Sequence[BaseMessage], records: Sequence[dict[str, Any]] = ()) -> RunSummary:
    return summarize_run(
        messages,
        weak_model="weak-model",
        strong_model="strong-model",
        prices=PriceBook(PRICES),
        records=records,
    )


def _figures(summary: RunSummary, *, approx: bool = True) -> dict[str, Any]:
    # Tokens and money; the replies alone carry no records, so no escalation count.
    # Sums over the same replies in another order may differ in the last bit.
    return {
        key: pytest.approx(value) if approx and isinstance(value, float) else value
        for key, value in summary.to_dict().items()
        if key != "escalations"
    }


def _assert_counted_once(
    final: list[BaseMessage], records: list[dict[str, Any]], produced: list[AIMessage]
) -> None:
    doubtful = next(m for m in produced if "Confidence: 0.2" in str(m.content))
    assert doubtful.id not in {m.id for m in final}  # the stuck reply was dropped
    carried = [e["id"] for m in final for e in m.additional_kwargs.get(PRUNED_USAGE_KEY, [])]
    assert doubtful.id in carried
    from_state = _summary(final, records)
    weak_replies = [m for m in produced if m.response_metadata.get("model_name") == "weak-model"]
    assert from_state.weak_tokens_in == sum(1000 + 100 * n for n in range(len(weak_replies)))
    assert _figures(from_state, approx=False) == _figures(_summary(produced))


POLICIES = [
    EscalationPolicy(ladder=("escalate",), mode="advise"),
    EscalationPolicy(ladder=("escalate",), mode="advise", prune_loop=False),
    EscalationPolicy(ladder=("nudge",)),
    EscalationPolicy(ladder=("escalate",), mode="takeover", takeover_steps=0),
]
POLICY_IDS = ["advise", "advise_no_pruning", "nudge", "takeover"]


@pytest.mark.parametrize("policy", POLICIES, ids=POLICY_IDS)
def test_node_final_state_counts_the_dropped_stuck_reply(policy: EscalationPolicy) -> None:
    node = create_escalating_node(
        weak_model(_weak_script()),
        strong_model(_strong_script(policy)),
        tools=TOOLS,
        policy=policy,
        prices=PRICES,
    )
    graph = agent_graph(node).compile(checkpointer=InMemorySaver())
    replies = _Replies()
    config: RunnableConfig = {"configurable": {"thread_id": "dropped"}, "callbacks": [replies]}

    state = graph.invoke({"messages": [HumanMessage(TASK)]}, config)

    assert state["escalations"]
    _assert_counted_once(state["messages"], state["escalations"], replies.replies)


def test_node_stop_counts_the_dropped_stuck_reply() -> None:
    node = create_escalating_node(
        weak_model(_weak_script()[:2]),
        strong_model([]),
        tools=TOOLS,
        policy=EscalationPolicy(ladder=("stop",)),
        prices=PRICES,
    )
    graph = agent_graph(node).compile()
    replies = _Replies()

    state = graph.invoke({"messages": [HumanMessage(TASK)]}, {"callbacks": [replies]})

    doubtful = replies.replies[-1]
    assert doubtful.id not in {m.id for m in state["messages"]}
    from_state = _summary(state["messages"])
    assert _figures(from_state, approx=False) == _figures(_summary(replies.replies))


@pytest.mark.parametrize("policy", [POLICIES[0], POLICIES[3]], ids=["advise", "takeover"])
def test_middleware_final_state_counts_the_removed_stuck_answer(
    policy: EscalationPolicy,
) -> None:
    agent = create_agent(
        weak_model(_weak_script()),
        tools=TOOLS,
        middleware=[
            EscalationMiddleware(strong_model(_strong_script(policy)), policy=policy, prices=PRICES)
        ],
        checkpointer=InMemorySaver(),
    )
    replies = _Replies()
    config: RunnableConfig = {"configurable": {"thread_id": "dropped"}, "callbacks": [replies]}

    # Sync: before Python 3.11 a callback handler does not reach the model calls
    # of an async run, and the test needs it to see every reply that was paid for.
    state = agent.invoke({"messages": [HumanMessage(TASK)]}, config)

    assert state["escalations"]
    _assert_counted_once(state["messages"], state["escalations"], replies.replies)
