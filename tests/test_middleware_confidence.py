"""Confidence sources and review of risky tool calls in ``EscalationMiddleware`` (issue #10).

Real ``create_agent`` graphs with scripted models: the assertions are on what
each model received, on which tool calls ran, and on the state the agent ends with.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from langchain_escalate import EscalationMiddleware, EscalationPolicy
from langchain_escalate.confidence import VERBALIZED_INSTRUCTION, ConfidenceConfig
from langchain_escalate.cost import PriceBook, summarize_run
from langchain_escalate.testing import ScriptedChatModel, tool_call

REFUNDS: list[dict[str, Any]] = []
PRICES = {
    "weak-model": {"input": 1.0, "output": 2.0},
    "strong-model": {"input": 3.0, "output": 15.0},
}
ESCALATE = EscalationPolicy(ladder=["escalate"])
TASK = "Refund the damaged item of order A-17 (it cost 25.00)."
ADVICE = "The item cost 25.00: refund 25.00, not 250."


@tool
def issue_refund(order_id: str, amount: float) -> str:
    """Refund an amount on an order (irreversible)."""
    REFUNDS.append({"order_id": order_id, "amount": amount})
    return f"refunded {amount} on {order_id}"


def _refund(amount: float) -> AIMessage:
    return AIMessage(
        "", tool_calls=[tool_call("issue_refund", {"order_id": "A-17", "amount": amount})]
    )


def _agent(weak: Any, middleware: list[Any], *, system_prompt: str = "You handle refunds.") -> Any:
    return create_agent(
        weak,
        tools=[issue_refund],
        system_prompt=system_prompt,
        middleware=middleware,
        checkpointer=InMemorySaver(),
    )


async def _run(agent: Any, text: str, *, use_async: bool) -> dict[str, Any]:
    payload = {"messages": [HumanMessage(text)]}
    config = {"configurable": {"thread_id": "t1"}}
    if use_async:
        return await agent.ainvoke(payload, config)  # type: ignore[no-any-return]
    return agent.invoke(payload, config)  # type: ignore[no-any-return]


def _text(messages: list[BaseMessage]) -> str:
    return "\n".join(str(message.content) for message in messages)


def _proposed_amounts(messages: list[BaseMessage]) -> list[float]:
    return [
        call["args"]["amount"]
        for message in messages
        if isinstance(message, AIMessage)
        for call in message.tool_calls
    ]


# --- review before a risky tool runs -------------------------------------------------


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_low_confidence_refund_is_reviewed_and_corrected_before_it_runs(
    use_async: bool,
) -> None:
    REFUNDS.clear()
    # The weak model proposes 250 and disagrees with itself on resampling (25, 2.5);
    # after the advice it proposes 25 and a sample agrees; its final answer is sampled too.
    weak = ScriptedChatModel(
        script=[
            _refund(250.0), _refund(25.0), _refund(2.5),
            _refund(25.0), _refund(25.0),
            "Refunded 25.00.", "Refunded 25.00.",
        ],
        model_name="weak-model",
    )  # fmt: skip
    strong = ScriptedChatModel(script=[ADVICE], model_name="strong-model")
    middleware = EscalationMiddleware(
        strong, policy=ESCALATE, prices=PRICES,
        confidence=ConfidenceConfig(sources=["consistency"], samples=2),
        review_tools=["issue_refund"],
    )  # fmt: skip

    result = await _run(_agent(weak, [middleware]), TASK, use_async=use_async)

    assert REFUNDS == [{"order_id": "A-17", "amount": 25.0}]  # 250 never ran
    (record,) = result["escalations"]
    assert (record["rule"], record["outcome"]) == ("low_confidence", "advised")
    assert "issue_refund" in record["reason"]
    assert "consistency" in record["reason"]
    # The strong model was told which call was held back; its advice reached the weak model.
    assert len(strong.calls) == 1
    assert "250" in _text(strong.calls[0])
    assert ADVICE in _text(weak.calls[3])
    # The dropped proposal is gone from the conversation; the user sees the corrected run.
    assert _proposed_amounts(result["messages"]) == [25.0]
    assert result["messages"][-1].content == "Refunded 25.00."
    assert len(weak.calls) == 7


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_confident_refund_runs_with_no_extra_call(use_async: bool) -> None:
    REFUNDS.clear()
    weak = ScriptedChatModel(script=[_refund(25.0), "Refunded 25.00."], model_name="weak-model")
    strong = ScriptedChatModel(script=[], model_name="strong-model")
    checked: list[Any] = []

    def within_policy(reply: AIMessage, state: Any) -> bool:
        checked.append(reply)
        assert TASK in _text(state["messages"])  # the verifier sees the agent's state
        return all(call["args"].get("amount", 0) <= 100 for call in reply.tool_calls)

    middleware = EscalationMiddleware(
        strong, policy=ESCALATE,
        confidence=ConfidenceConfig(sources=["verify"], verify=within_policy),
        review_tools=["issue_refund"],
    )  # fmt: skip

    result = await _run(_agent(weak, [middleware]), TASK, use_async=use_async)

    assert REFUNDS == [{"order_id": "A-17", "amount": 25.0}]
    assert len(weak.calls) == 2  # no sample, no second look
    assert strong.calls == []
    assert result["escalations"] == []
    assert len(checked) == 2  # the refund and the final answer were both checked


async def test_calls_to_tools_not_under_review_are_not_scored() -> None:
    REFUNDS.clear()
    weak = ScriptedChatModel(
        script=[_refund(250.0), "Refunded.", "Refunded."], model_name="weak-model"
    )
    strong = ScriptedChatModel(script=[], model_name="strong-model")
    middleware = EscalationMiddleware(
        strong, confidence=ConfidenceConfig(sources=["consistency"], samples=2)
    )

    await _run(_agent(weak, [middleware]), TASK, use_async=False)

    # No review_tools: the refund runs unsampled; the final answer gets one agreeing sample.
    assert REFUNDS == [{"order_id": "A-17", "amount": 250.0}]
    assert len(weak.calls) == 3
    assert strong.calls == []


# --- the sources --------------------------------------------------------------------


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_verbalized_confidence_is_asked_for_read_and_stripped(use_async: bool) -> None:
    weak = ScriptedChatModel(
        script=["It is 42.\nConfidence: 0.2", "It is 41.\nConfidence: 0.9"], model_name="weak-model"
    )
    strong = ScriptedChatModel(script=["Recount: it is 41."], model_name="strong-model")
    middleware = EscalationMiddleware(
        strong, policy=ESCALATE, prices=PRICES, confidence=ConfidenceConfig(sources=["verbalized"])
    )
    agent = _agent(weak, [middleware], system_prompt="You count.")

    result = await _run(agent, "How many items?", use_async=use_async)

    system = weak.calls[0][0]
    assert isinstance(system, SystemMessage)
    assert str(system.content).startswith("You count.")  # the agent's own prompt is kept
    assert VERBALIZED_INSTRUCTION in str(system.content)
    assert "Recount" in _text(weak.calls[1])
    assert result["messages"][-1].content == "It is 41."
    assert "Confidence" not in _text(result["messages"])
    (record,) = result["escalations"]
    assert record["rule"] == "low_confidence"
    assert "verbalized" in record["reason"]


class _SeenSettings(AgentMiddleware):
    """An inner middleware recording the model settings each request reaches it with."""

    def __init__(self) -> None:
        super().__init__()
        self.settings: list[dict[str, Any]] = []

    def wrap_model_call(self, request: Any, handler: Any) -> Any:
        self.settings.append(dict(request.model_settings))
        return handler(request)


def _with_logprobs(text: str, logprob: float) -> AIMessage:
    tokens = [{"token": word, "logprob": logprob} for word in text.split(" ")]
    return AIMessage(text, response_metadata={"logprobs": {"content": tokens}})


def test_logprobs_are_asked_for_and_a_doubtful_answer_is_escalated() -> None:
    weak = ScriptedChatModel(
        script=[_with_logprobs("It is 42.", -2.0), _with_logprobs("It is 41.", -0.01)],
        model_name="weak-model",
    )
    strong = ScriptedChatModel(script=["Recount: it is 41."], model_name="strong-model")
    seen = _SeenSettings()
    middleware = EscalationMiddleware(
        strong, policy=ESCALATE, confidence=ConfidenceConfig(sources=["logprobs"])
    )

    result = _agent(weak, [middleware, seen]).invoke(
        {"messages": [HumanMessage("How many?")]}, {"configurable": {"thread_id": "l"}}
    )

    assert seen.settings
    assert all(settings.get("logprobs") is True for settings in seen.settings)
    assert result["messages"][-1].content == "It is 41."
    (record,) = result["escalations"]
    assert "logprobs" in record["reason"]


def test_a_model_without_logprobs_is_not_low_confidence() -> None:
    weak = ScriptedChatModel(script=["It is 42."], model_name="weak-model")
    strong = ScriptedChatModel(script=[], model_name="strong-model")
    middleware = EscalationMiddleware(strong, confidence=ConfidenceConfig(sources=["logprobs"]))

    result = _agent(weak, [middleware]).invoke(
        {"messages": [HumanMessage("How many?")]}, {"configurable": {"thread_id": "n"}}
    )

    assert result["messages"][-1].content == "It is 42."
    assert strong.calls == []
    assert result["escalations"] == []


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_the_samples_consistency_drew_are_counted_in_the_run_summary(
    use_async: bool,
) -> None:
    weak = ScriptedChatModel(
        script=["Paris.", "Paris.", "Paris."],
        model_name="weak-model",
        input_tokens_per_call=100,
        output_tokens_per_call=10,
    )
    strong = ScriptedChatModel(script=[], model_name="strong-model")
    middleware = EscalationMiddleware(
        strong, confidence=ConfidenceConfig(sources=["consistency"], samples=2)
    )

    result = await _run(_agent(weak, [middleware]), "Capital of France?", use_async=use_async)

    # The reply and one agreeing sample: the majority of three is settled, no third call.
    assert len(weak.calls) == 2
    assert [m.content for m in result["messages"] if isinstance(m, AIMessage)] == ["Paris."]
    assert not any(isinstance(m, ToolMessage) for m in result["messages"])
    summary = summarize_run(
        result["messages"], weak_model="weak-model", strong_model="strong-model",
        prices=PriceBook(PRICES),
    )  # fmt: skip
    assert summary.weak_tokens_in == 200
    assert summary.weak_tokens_out == 20


def test_the_samples_of_a_dropped_refund_are_still_counted() -> None:
    REFUNDS.clear()
    weak = ScriptedChatModel(
        script=[
            _refund(250.0),
            _refund(25.0),
            _refund(2.5),
            "I will ask a colleague.",
            "I will ask a colleague.",
        ],
        model_name="weak-model",
    )
    strong = ScriptedChatModel(script=[ADVICE], model_name="strong-model")
    middleware = EscalationMiddleware(
        strong, policy=ESCALATE, prices=PRICES,
        confidence=ConfidenceConfig(sources=["consistency"], samples=2),
        review_tools=["issue_refund"],
    )  # fmt: skip

    result = _agent(weak, [middleware]).invoke(
        {"messages": [HumanMessage(TASK)]}, {"configurable": {"thread_id": "d"}}
    )

    assert REFUNDS == []
    assert len(weak.calls) == 5  # the proposal, its two samples, the answer and its sample
    # The dropped proposal and its samples are gone from the state, not from the bill.
    assert _proposed_amounts(result["messages"]) == []
    summary = summarize_run(
        result["messages"], weak_model="weak-model", strong_model="strong-model",
        prices=PriceBook(PRICES),
    )  # fmt: skip
    assert summary.weak_tokens_in == 500


# --- bad input ------------------------------------------------------------------------


def test_review_tools_need_confidence_sources_and_a_list() -> None:
    strong = ScriptedChatModel(script=[])
    with pytest.raises(ValueError, match=r"review_tools.*confidence"):
        EscalationMiddleware(strong, review_tools=["issue_refund"])
    with pytest.raises(TypeError, match="list of tool names"):
        EscalationMiddleware(
            strong,
            confidence=ConfidenceConfig(sources=["consistency"]),
            review_tools="issue_refund",
        )
