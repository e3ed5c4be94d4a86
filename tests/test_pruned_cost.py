"""A run summary of the final state counts the weak replies that loop pruning removed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, RemoveMessage
from langgraph.checkpoint.memory import InMemorySaver
from node_scenarios import (
    ADVICE,
    PRICES,
    TOOLS,
    agent_graph,
    archive_call,
    failing_call,
    strong_model,
    user_input,
    weak_model,
)

from langchain_escalate.cost import PRUNED_USAGE_KEY, PriceBook, RunSummary, summarize_run
from langchain_escalate.node import create_escalating_node
from langchain_escalate.policy import EscalationPolicy

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_core.runnables import RunnableConfig

PRICES_WITH_CACHE = {
    "weak-model": {**PRICES["weak-model"], "cache_write": 0.125},
    "strong-model": {**PRICES["strong-model"], "cache_write": 3.75},
}


def _reported(reply: AIMessage, tokens_in: int) -> AIMessage:
    # Each weak call reports its own usage, cache writes included, so a reply
    # counted twice or not at all changes the figures.
    usage = {
        "input_tokens": tokens_in,
        "output_tokens": 30,
        "total_tokens": tokens_in + 30,
        "input_token_details": {"cache_creation": tokens_in // 4},
    }
    return reply.model_copy(update={"usage_metadata": usage})


def _weak_script(failures: int, *, takeover: bool = False) -> list[AIMessage]:
    calls = [failing_call() for _ in range(failures)]
    answer = AIMessage("The 2023 total is 42 MEUR.")
    ending = [answer] if takeover else [archive_call(), answer]
    return [_reported(reply, 1000 + 100 * n) for n, reply in enumerate([*calls, *ending])]


def _run(
    *, failures: int, policy: EscalationPolicy, escalations: int
) -> tuple[list[BaseMessage], list[BaseMessage], list[dict[str, Any]]]:
    """Stream the agent loop: the final messages, every message the stream carried, the records."""
    takeover = policy.mode == "takeover"
    node = create_escalating_node(
        weak_model(_weak_script(failures, takeover=takeover)),
        strong_model([archive_call()] if takeover else [ADVICE] * escalations),
        tools=TOOLS,
        policy=policy,
        prices=PRICES_WITH_CACHE,
    )
    graph = agent_graph(node).compile(checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "pruned"}}
    produced: dict[str, BaseMessage] = {}
    for update in graph.stream(user_input(), config, stream_mode="updates"):
        for node_update in update.values():
            for message in (node_update or {}).get("messages", []):
                if not isinstance(message, RemoveMessage):
                    produced[str(message.id)] = message
    state = graph.get_state(config).values
    return state["messages"], list(produced.values()), state["escalations"]


def _summary(messages: Sequence[BaseMessage], records: list[dict[str, Any]]) -> RunSummary:
    return summarize_run(
        messages,
        weak_model="weak-model",
        strong_model="strong-model",
        prices=PriceBook(PRICES_WITH_CACHE),
        records=records,
    )


def _figures(summary: RunSummary) -> dict[str, Any]:
    # Sums over the same replies in another order may differ in the last bit.
    return {
        key: pytest.approx(value) if isinstance(value, float) else value
        for key, value in summary.to_dict().items()
    }


@pytest.mark.parametrize(
    ("failures", "policy", "escalations"),
    [
        (6, EscalationPolicy(mode="advise"), 1),
        # A second escalation prunes again, after the first pruning's summary.
        (9, EscalationPolicy(ladder=("nudge", "escalate", "escalate"), mode="advise"), 2),
        (6, EscalationPolicy(mode="takeover", takeover_steps=0), 1),
    ],
    ids=["advise", "advise_twice", "takeover"],
)
def test_final_state_summary_counts_every_weak_reply_of_the_run(
    failures: int, policy: EscalationPolicy, escalations: int
) -> None:
    final, produced, records = _run(failures=failures, policy=policy, escalations=escalations)
    replies = [m for m in produced if isinstance(m, AIMessage)]
    # Each escalation pruned weak replies from state.
    assert len([m for m in final if PRUNED_USAGE_KEY in m.additional_kwargs]) == escalations
    assert {m.id for m in replies} - {m.id for m in final}

    from_state = _summary(final, records)

    assert from_state.escalations == escalations
    weak_calls = failures + (1 if policy.mode == "takeover" else 2)
    assert from_state.weak_tokens_in == sum(1000 + 100 * n for n in range(weak_calls))
    assert from_state.to_dict() == _figures(_summary(replies, records))
    # Every message of the stream (pruned replies and the summaries that carry them) counts once.
    assert from_state.to_dict() == _figures(_summary(produced, records))


def test_the_summary_message_carries_the_removed_replies_usage() -> None:
    policy = EscalationPolicy(mode="advise")
    final, produced, _ = _run(failures=6, policy=policy, escalations=1)
    removed = {m.id for m in produced if isinstance(m, AIMessage)} - {m.id for m in final}

    carried = [e for m in final for e in m.additional_kwargs.get(PRUNED_USAGE_KEY, [])]

    assert {e["id"] for e in carried} == removed
    assert all(e["model"] == "weak-model" for e in carried)
    assert all(e["cache_write"] == e["tokens_in"] // 4 for e in carried)
