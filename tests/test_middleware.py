"""EscalationMiddleware in real ``create_agent`` graphs.

A weak model repeats a failing tool call; the middleware sees it before the
next model call and climbs the same ladder as the escalating node. Models are
scripted; the assertions are on what each model *received* and on the state
the agent ends with.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import ModelCallLimitMiddleware, ModelFallbackMiddleware
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command, interrupt

from langchain_escalate import Budget, DetectorConfig, EscalationMiddleware, EscalationPolicy
from langchain_escalate.escalation import EscalationStopped
from langchain_escalate.records import RECORD_KEY
from langchain_escalate.testing import ScriptedChatModel, tool_call

TASK = "Refund order A-17 for customer 4411."
ANSWER = "Order ids keep their dash: call lookup_order with 'A-17'."


@tool
def lookup_order(order_id: str) -> str:
    """Look an order up by its id."""
    if order_id == "A-17":
        return "order A-17: 2 items, paid, refundable"
    return f"Error: order {order_id!r} not found. Please fix your mistakes."


@tool
def refund_order(order_id: str) -> str:
    """Refund an order."""
    return f"refund of {order_id} queued"


TOOLS = [lookup_order, refund_order]


def _lookup(order_id: str) -> AIMessage:
    return AIMessage("", tool_calls=[tool_call("lookup_order", {"order_id": order_id})])


def _refund(order_id: str) -> AIMessage:
    return AIMessage("", tool_calls=[tool_call("refund_order", {"order_id": order_id})])


def _failing(times: int) -> list[AIMessage]:
    return [_lookup("A17") for _ in range(times)]


def _agent(weak: Any, middleware: list[Any], *, checkpointer: Any = None) -> Any:
    return create_agent(
        weak,
        tools=TOOLS,
        system_prompt="You handle refunds.",
        middleware=middleware,
        checkpointer=checkpointer if checkpointer is not None else InMemorySaver(),
    )


async def _run(agent: Any, payload: Any, *, use_async: bool, thread: str = "t1") -> dict[str, Any]:
    config = {"configurable": {"thread_id": thread}}
    if use_async:
        return await agent.ainvoke(payload, config)  # type: ignore[no-any-return]
    return agent.invoke(payload, config)  # type: ignore[no-any-return]


def _text(messages: list[BaseMessage]) -> str:
    return "\n".join(str(message.content) for message in messages)


def _records(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    return [m.additional_kwargs[RECORD_KEY] for m in messages if RECORD_KEY in m.additional_kwargs]


def _failures_seen(messages: list[BaseMessage]) -> int:
    return sum(1 for m in messages if isinstance(m, ToolMessage) and "not found" in str(m.content))


def _assert_every_tool_call_answered(messages: list[BaseMessage]) -> None:
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                assert call["id"] in answered, f"tool call {call['id']} left unanswered"


# --- the ladder in a create_agent loop ---------------------------------------------------


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_repeated_failing_call_is_nudged_then_the_strong_models_help_ends_the_loop(
    use_async: bool,
) -> None:
    weak = ScriptedChatModel(
        script=[
            *_failing(3),
            *_failing(3),
            _lookup("A-17"),
            _refund("A-17"),
            AIMessage("Refunded."),
        ]
    )
    strong = ScriptedChatModel(script=[AIMessage(ANSWER)], model_name="gpt-4o")
    agent = _agent(weak, [EscalationMiddleware(strong)])

    result = await _run(agent, {"messages": [HumanMessage(TASK)]}, use_async=use_async)

    # First firing: a free nudge, read by the weak model before its 4th call.
    nudge = weak.calls[3][-1]
    assert nudge.additional_kwargs[RECORD_KEY]["action"] == "nudge"
    assert "lookup_order" in str(nudge.content)
    assert nudge.additional_kwargs[RECORD_KEY]["cost_usd"] == 0  # a nudge is free
    # Second firing: the strong model, briefed with the task and the failures.
    assert len(strong.calls) == 1
    briefing = _text(strong.calls[0])
    assert TASK in briefing
    assert "not found" in briefing
    # The weak model's next call holds the guidance; the loop is pruned from it.
    after_help = weak.calls[6]
    assert ANSWER in _text(after_help)
    assert _failures_seen(after_help) < 6
    _assert_every_tool_call_answered(after_help)
    # The help ended the loop: the weak model finished the task on its own.
    assert len(weak.calls) == 9
    assert result["messages"][-1].content == "Refunded."
    records = result["escalations"]
    assert [r["action"] for r in records] == ["nudge", "escalate"]
    assert records[1]["outcome"] == "advised"
    assert records[1]["model"] == "gpt-4o"
    assert records[1]["tokens_in"] > 0
    # The same records ride on the messages they added.
    assert [r["id"] for r in _records(result["messages"])] == [r["id"] for r in records]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_takeover_uses_the_strong_model_for_this_and_the_next_steps(use_async: bool) -> None:
    weak = ScriptedChatModel(script=[*_failing(3), AIMessage("Refunded.")])
    strong = ScriptedChatModel(script=[_lookup("A-17"), _refund("A-17")], model_name="gpt-4o")
    policy = EscalationPolicy(ladder=["escalate"], mode="takeover", takeover_steps=1)
    agent = _agent(weak, [EscalationMiddleware(strong, policy=policy)])

    result = await _run(agent, {"messages": [HumanMessage(TASK)]}, use_async=use_async)

    # The strong model took two steps, bound to the agent's own tools ...
    assert len(strong.calls) == 2
    assert strong.bound_tools == ["lookup_order", "refund_order"]
    assert TASK in _text(strong.calls[0])
    # ... then handed back: the weak model read the strong model's results.
    assert len(weak.calls) == 4
    assert "refund of A-17 queued" in _text(weak.calls[3])
    assert result["messages"][-1].content == "Refunded."
    took_over = [r for r in result["escalations"] if r["outcome"] == "took_over"]
    assert took_over
    assert {r["model"] for r in took_over} == {"gpt-4o"}


async def test_a_takeover_the_budget_refuses_moves_down_the_ladder() -> None:
    weak = ScriptedChatModel(script=_failing(3))
    strong = ScriptedChatModel(script=[])
    policy = EscalationPolicy(ladder=["escalate", "stop"], mode="takeover")
    middleware = EscalationMiddleware(
        strong, policy=policy, budget=Budget(max_escalations_per_thread=0)
    )

    result = await _run(
        _agent(weak, [middleware]), {"messages": [HumanMessage(TASK)]}, use_async=False
    )

    assert strong.calls == []
    assert len(weak.calls) == 3
    assert [r["outcome"] for r in result["escalations"]] == ["over_budget", "stopped"]
    assert result["messages"][-1].additional_kwargs[RECORD_KEY]["outcome"] == "stopped"


async def test_stop_ends_the_turn_with_a_message_and_no_further_calls() -> None:
    weak = ScriptedChatModel(script=_failing(3))
    strong = ScriptedChatModel(script=[])
    agent = _agent(weak, [EscalationMiddleware(strong, policy=EscalationPolicy(ladder=["stop"]))])

    result = await _run(agent, {"messages": [HumanMessage(TASK)]}, use_async=False)

    last = result["messages"][-1]
    assert isinstance(last, AIMessage)
    assert not last.tool_calls
    assert last.additional_kwargs[RECORD_KEY]["outcome"] == "stopped"
    assert len(weak.calls) == 3
    assert strong.calls == []


@pytest.mark.parametrize(
    "use_async",
    [
        False,
        pytest.param(
            True,
            marks=pytest.mark.skipif(
                sys.version_info < (3, 11),
                reason="LangGraph's interrupt() reads the run config from context, "
                "which async code cannot reach before Python 3.11",
            ),
        ),
    ],
    ids=["sync", "async"],
)
async def test_human_rung_interrupts_and_the_answer_reaches_the_weak_model(use_async: bool) -> None:
    weak = ScriptedChatModel(script=[*_failing(3), _lookup("A-17"), AIMessage("Refunded.")])
    strong = ScriptedChatModel(script=[])
    agent = _agent(weak, [EscalationMiddleware(strong, policy=EscalationPolicy(ladder=["human"]))])

    paused = await _run(agent, {"messages": [HumanMessage(TASK)]}, use_async=use_async)

    assert "__interrupt__" in paused
    assert len(weak.calls) == 3
    result = await _run(
        agent, Command(resume="Use the id with its dash: A-17."), use_async=use_async
    )
    assert "Use the id with its dash: A-17." in _text(weak.calls[3])
    assert result["messages"][-1].content == "Refunded."
    assert [r["outcome"] for r in result["escalations"]] == ["human"]


def test_stop_can_raise_instead() -> None:
    weak = ScriptedChatModel(script=_failing(3))
    policy = EscalationPolicy(ladder=["stop"], stop_behavior="raise")
    agent = _agent(weak, [EscalationMiddleware(ScriptedChatModel(script=[]), policy=policy)])

    with pytest.raises(EscalationStopped, match="stopped the turn"):
        agent.invoke({"messages": [HumanMessage(TASK)]}, {"configurable": {"thread_id": "r"}})

    assert len(weak.calls) == 3


async def test_human_rung_without_a_checkpointer_stops_with_a_warning() -> None:
    weak = ScriptedChatModel(script=_failing(3))
    middleware = EscalationMiddleware(
        ScriptedChatModel(script=[]), policy=EscalationPolicy(ladder=["human"])
    )
    agent = create_agent(weak, tools=TOOLS, middleware=[middleware])  # no checkpointer

    with pytest.warns(RuntimeWarning, match="checkpointer"):
        result = agent.invoke({"messages": [HumanMessage(TASK)]})

    assert [r["outcome"] for r in result["escalations"]] == ["skipped", "stopped"]
    assert len(weak.calls) == 3


async def test_low_confidence_final_answer_is_escalated_before_the_run_ends() -> None:
    weak = ScriptedChatModel(
        script=[
            AIMessage("Probably order A17?\nConfidence: 0.2"),
            AIMessage("Order A-17 is refundable."),
        ]
    )
    strong = ScriptedChatModel(script=[AIMessage(ANSWER)])
    agent = _agent(
        weak, [EscalationMiddleware(strong, policy=EscalationPolicy(ladder=["escalate"]))]
    )

    result = await _run(agent, {"messages": [HumanMessage(TASK)]}, use_async=False)

    assert len(strong.calls) == 1
    assert ANSWER in _text(weak.calls[1])
    assert result["messages"][-1].content == "Order A-17 is refundable."


def test_a_confident_final_answer_is_shown_without_its_confidence_line() -> None:
    weak = ScriptedChatModel(script=[AIMessage("Order A-17 is refundable.\nConfidence: 0.9")])
    strong = ScriptedChatModel(script=[])
    agent = _agent(weak, [EscalationMiddleware(strong)])

    result = agent.invoke({"messages": [HumanMessage(TASK)]}, {"configurable": {"thread_id": "c"}})

    assert result["messages"][-1].content == "Order A-17 is refundable."
    assert len(result["messages"]) == 2
    assert strong.calls == []


# --- doing nothing when nothing is wrong ------------------------------------------------


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_healthy_run_is_left_alone(use_async: bool) -> None:
    def script() -> list[AIMessage]:
        return [_lookup("A-17"), _refund("A-17"), AIMessage("Refunded.")]

    plain_weak = ScriptedChatModel(script=script())
    plain = await _run(
        _agent(plain_weak, []), {"messages": [HumanMessage(TASK)]}, use_async=use_async
    )
    weak = ScriptedChatModel(script=script())
    strong = ScriptedChatModel(script=[])

    result = await _run(
        _agent(weak, [EscalationMiddleware(strong)]),
        {"messages": [HumanMessage(TASK)]},
        use_async=use_async,
    )

    assert strong.calls == []
    assert len(weak.calls) == len(plain_weak.calls)
    for seen, baseline in zip(weak.calls, plain_weak.calls, strict=True):
        assert [(type(m), m.content) for m in seen] == [(type(m), m.content) for m in baseline]
    assert [(type(m), m.content) for m in result["messages"]] == [
        (type(m), m.content) for m in plain["messages"]
    ]
    assert not result.get("escalations")
    assert _records(result["messages"]) == []


# --- composing with the built-in middleware ---------------------------------------------


async def test_composes_with_model_fallback_and_model_call_limit() -> None:
    weak = ScriptedChatModel(
        script=[RuntimeError("rate limited"), *_failing(2), _lookup("A-17"), AIMessage("Refunded.")]
    )
    backup = ScriptedChatModel(script=[_lookup("A17")], model_name="backup")
    strong = ScriptedChatModel(script=[AIMessage(ANSWER)], model_name="gpt-4o")
    limit = ModelCallLimitMiddleware(run_limit=10)
    agent = _agent(
        weak,
        [
            ModelFallbackMiddleware(backup),
            limit,
            EscalationMiddleware(strong, policy=EscalationPolicy(ladder=["escalate"])),
        ],
    )

    result = await _run(agent, {"messages": [HumanMessage(TASK)]}, use_async=False)

    # The fallback answered the failed call; the escalation saw the loop across both models.
    assert len(backup.calls) == 1
    assert len(strong.calls) == 1
    assert ANSWER in _text(weak.calls[3])
    assert result["messages"][-1].content == "Refunded."
    assert [r["outcome"] for r in result["escalations"]] == ["advised"]


async def test_model_call_limit_still_ends_a_run_the_ladder_has_not_stopped() -> None:
    weak = ScriptedChatModel(script=_failing(10))
    strong = ScriptedChatModel(script=[AIMessage(ANSWER)] * 3)
    agent = _agent(
        weak,
        [ModelCallLimitMiddleware(run_limit=4), EscalationMiddleware(strong)],
    )

    result = await _run(agent, {"messages": [HumanMessage(TASK)]}, use_async=False)

    assert len(weak.calls) == 4
    assert "limit" in str(result["messages"][-1].content)


# --- interrupts always propagate --------------------------------------------------------


async def test_an_interrupt_inside_an_expert_graph_propagates() -> None:
    def ask_a_person(state: MessagesState) -> dict[str, Any]:
        answer = interrupt("expert graph needs a person")
        return {"messages": [AIMessage(str(answer))]}

    expert = StateGraph(MessagesState)
    expert.add_node("ask", ask_a_person)
    expert.add_edge(START, "ask")
    expert.add_edge("ask", END)
    weak = ScriptedChatModel(script=[*_failing(3), _lookup("A-17"), AIMessage("Refunded.")])
    agent = _agent(
        weak,
        [EscalationMiddleware(expert.compile(), policy=EscalationPolicy(ladder=["escalate"]))],
    )

    paused = await _run(agent, {"messages": [HumanMessage(TASK)]}, use_async=False)

    assert paused["__interrupt__"][0].value == "expert graph needs a person"
    result = await _run(agent, Command(resume=ANSWER), use_async=False)
    assert ANSWER in _text(weak.calls[3])
    assert result["messages"][-1].content == "Refunded."


async def test_a_resumed_expert_graph_is_not_refused_by_its_own_reservation() -> None:
    def ask_a_person(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(str(interrupt("expert graph needs a person")))]}

    expert = StateGraph(MessagesState)
    expert.add_node("ask", ask_a_person)
    expert.add_edge(START, "ask")
    expert.add_edge("ask", END)
    budget = Budget(max_escalations_per_thread=1)
    weak = ScriptedChatModel(script=[*_failing(3), _lookup("A-17"), AIMessage("Refunded.")])
    middleware = EscalationMiddleware(
        expert.compile(), policy=EscalationPolicy(ladder=["escalate"]), budget=budget
    )
    agent = _agent(weak, [middleware])

    await _run(agent, {"messages": [HumanMessage(TASK)]}, use_async=False)
    result = await _run(agent, Command(resume=ANSWER), use_async=False)

    assert [r["outcome"] for r in result["escalations"]] == ["advised"]
    assert budget.escalations("t1") == 1


# --- configuration ------------------------------------------------------------------------


def test_detector_thresholds_are_the_users() -> None:
    weak = ScriptedChatModel(script=[*_failing(2), _lookup("A-17"), AIMessage("Refunded.")])
    strong = ScriptedChatModel(script=[AIMessage(ANSWER)])
    middleware = EscalationMiddleware(
        strong,
        detector=DetectorConfig(repeated_action_error=2),
        policy=EscalationPolicy(ladder=["escalate"]),
    )

    agent = _agent(weak, [middleware])
    agent.invoke({"messages": [HumanMessage(TASK)]}, {"configurable": {"thread_id": "t"}})

    assert len(strong.calls) == 1
    assert ANSWER in _text(weak.calls[2])


def test_the_name_names_its_graph_nodes_and_its_records() -> None:
    weak = ScriptedChatModel(script=[*_failing(3), AIMessage("Gave up.")])
    middleware = EscalationMiddleware(ScriptedChatModel(script=[]), name="refund-guard")
    agent = _agent(weak, [middleware])

    result = agent.invoke({"messages": [HumanMessage(TASK)]}, {"configurable": {"thread_id": "n"}})

    assert "refund-guard.before_model" in agent.get_graph().nodes
    assert {r["node"] for r in result["escalations"]} == {"refund-guard"}
