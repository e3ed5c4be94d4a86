"""Confidence sources and review of risky tool calls in the escalating node (issue #10)."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langchain_escalate.confidence import VERBALIZED_INSTRUCTION, ConfidenceConfig
from langchain_escalate.cost import PriceBook, summarize_run
from langchain_escalate.node import create_escalating_node
from langchain_escalate.policy import EscalationPolicy
from langchain_escalate.records import EscalationState
from langchain_escalate.testing import ScriptedChatModel, tool_call

REFUNDS: list[dict[str, Any]] = []
PRICES = {
    "weak-model": {"input": 1.0, "output": 2.0},
    "strong-model": {"input": 3.0, "output": 15.0},
}
ESCALATE = EscalationPolicy(ladder=["escalate"])


@tool
def issue_refund(order_id: str, amount: float) -> str:
    """Refund an amount on an order (irreversible)."""
    REFUNDS.append({"order_id": order_id, "amount": amount})
    return f"refunded {amount} on {order_id}"


def _refund(amount: float) -> AIMessage:
    return AIMessage(
        "", tool_calls=[tool_call("issue_refund", {"order_id": "A-17", "amount": amount})]
    )


def _graph(node: Any) -> Any:
    builder = StateGraph(EscalationState)
    builder.add_node("agent", node)
    builder.add_node("tools", ToolNode([issue_refund], handle_tool_errors=True))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile()


def _ask(text: str = "Refund the damaged item of order A-17 (it cost 25.00).") -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}


def test_a_low_confidence_refund_is_reviewed_and_corrected_before_it_runs() -> None:
    REFUNDS.clear()
    # The weak model proposes 250, then disagrees with itself on resampling; after
    # the advice it proposes 25 and a sample agrees; its final answer is sampled too.
    weak = ScriptedChatModel(
        script=[
            _refund(250.0), _refund(25.0), _refund(2.5),
            _refund(25.0), _refund(25.0),
            "Refunded 25.00.", "Refunded 25.00.",
        ],
        model_name="weak-model",
    )  # fmt: skip
    strong = ScriptedChatModel(
        script=["The item cost 25.00: refund 25.00."], model_name="strong-model"
    )
    node = create_escalating_node(
        weak, strong, tools=[issue_refund], policy=ESCALATE, prices=PRICES,
        confidence=ConfidenceConfig(sources=["consistency"], samples=2),
        review_tools=["issue_refund"],
    )  # fmt: skip
    result = _graph(node).invoke(_ask())

    assert REFUNDS == [{"order_id": "A-17", "amount": 25.0}]  # 250 never ran
    (record,) = result["escalations"]
    assert (record["rule"], record["outcome"]) == ("low_confidence", "advised")
    assert "issue_refund" in record["reason"]
    assert "consistency" in record["reason"]
    assert result["messages"][-1].content == "Refunded 25.00."


def test_a_confident_refund_runs_with_no_extra_call() -> None:
    REFUNDS.clear()
    weak = ScriptedChatModel(script=[_refund(25.0), "Refunded 25.00."], model_name="weak-model")
    strong = ScriptedChatModel(script=[], model_name="strong-model")

    def within_policy(reply: AIMessage, state: Any) -> bool:
        del state
        return all(call["args"].get("amount", 0) <= 100 for call in reply.tool_calls)

    node = create_escalating_node(
        weak, strong, tools=[issue_refund], policy=ESCALATE,
        confidence=ConfidenceConfig(sources=["verify"], verify=within_policy),
        review_tools=["issue_refund"],
    )  # fmt: skip
    result = _graph(node).invoke(_ask())

    assert REFUNDS == [{"order_id": "A-17", "amount": 25.0}]
    assert len(weak.calls) == 2
    assert strong.calls == []
    assert result["escalations"] == []


def test_a_raising_verifier_is_a_failed_check_never_a_crash() -> None:
    REFUNDS.clear()

    def broken(reply: AIMessage, state: Any) -> bool:
        del state
        if reply.tool_calls:
            raise ValueError("rules service down")
        return True

    weak = ScriptedChatModel(
        script=[_refund(25.0), "I will wait for the rules service."], model_name="weak-model"
    )
    strong = ScriptedChatModel(script=["Refund 25.00 is right."], model_name="strong-model")
    node = create_escalating_node(
        weak, strong, tools=[issue_refund], policy=ESCALATE, prices=PRICES,
        confidence=ConfidenceConfig(sources=["verify"], verify=broken),
        review_tools=["issue_refund"],
    )  # fmt: skip
    result = _graph(node).invoke(_ask())
    assert REFUNDS == []
    assert result["escalations"][0]["rule"] == "low_confidence"
    assert "verify" in result["escalations"][0]["reason"]


def test_verbalized_confidence_is_asked_for_read_and_stripped() -> None:
    weak = ScriptedChatModel(
        script=["It is 42.\nConfidence: 0.2", "It is 41.\nConfidence: 0.9"], model_name="weak-model"
    )
    strong = ScriptedChatModel(script=["Recount: it is 41."], model_name="strong-model")
    node = create_escalating_node(
        weak, strong, policy=ESCALATE, prices=PRICES,
        confidence=ConfidenceConfig(sources=["verbalized"]),
    )  # fmt: skip
    graph = StateGraph(EscalationState).add_node("agent", node).add_edge(START, "agent").compile()
    result = graph.invoke({"messages": [SystemMessage("You count."), HumanMessage("How many?")]})

    first_input = weak.calls[0]
    assert VERBALIZED_INSTRUCTION in str(first_input[0].content)
    assert result["messages"][-1].content == "It is 41."
    assert result["escalations"][0]["rule"] == "low_confidence"
    assert "verbalized" in result["escalations"][0]["reason"]


def test_the_samples_consistency_drew_are_counted_in_the_run_summary() -> None:
    weak = ScriptedChatModel(
        script=["Paris.", "Paris.", "Paris."],
        model_name="weak-model",
        input_tokens_per_call=100,
        output_tokens_per_call=10,
    )
    node = create_escalating_node(
        weak, ScriptedChatModel(script=[], model_name="strong-model"),
        confidence=ConfidenceConfig(sources=["consistency"], samples=2),
    )  # fmt: skip
    graph = StateGraph(EscalationState).add_node("agent", node).add_edge(START, "agent").compile()
    result = graph.invoke({"messages": [HumanMessage("Capital of France?")]})

    # The reply and one agreeing sample: the majority of three is settled, no third call.
    assert len(weak.calls) == 2
    assert not any(isinstance(m, ToolMessage) for m in result["messages"])
    summary = summarize_run(
        result["messages"], weak_model="weak-model", strong_model="strong-model",
        prices=PriceBook(PRICES),
    )  # fmt: skip
    assert summary.weak_tokens_in == 200
