"""The ask-expert tool: the weak model asks, the strong model answers with the conversation briefed.

Each test runs the tool where users put it: a classic agent loop
(``StateGraph`` + ``ToolNode`` + ``tools_condition``), ``create_agent``, or a
direct call. Models are scripted; the assertions are on what each model
*received* and on the state the graph ends with.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Annotated, Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition

from langchain_escalate import Budget, EscalationState, create_ask_expert_tool
from langchain_escalate.records import RECORD_KEY
from langchain_escalate.testing import ScriptedChatModel, tool_call

TASK = "Refund order A-17 for customer 4411."
NOT_FOUND = "Error: order 'A17' not found. Please fix your mistakes."
QUESTION = "Why can't I find order A17?"
ANSWER = "Order ids keep their dash: call lookup_order with 'A-17'."


@tool
def lookup_order(order_id: str) -> str:
    """Look an order up by its id."""
    if order_id == "A-17":
        return "order A-17: 2 items, paid, refundable"
    return NOT_FOUND.replace("A17", order_id)


def _lookup(order_id: str) -> AIMessage:
    return AIMessage("", tool_calls=[tool_call("lookup_order", {"order_id": order_id})])


def _ask(question: str = QUESTION, context: str | None = None) -> AIMessage:
    args: dict[str, Any] = {"question": question}
    if context is not None:
        args["context"] = context
    return AIMessage("", tool_calls=[tool_call("ask_expert", args)])


def _agent_loop(
    weak: ScriptedChatModel,
    tools: list[BaseTool],
    *,
    state_schema: type[Any] = MessagesState,
    checkpointer: InMemorySaver | None = None,
) -> Any:
    """The classic LangGraph agent: model node, ToolNode, tools_condition."""
    bound = weak.bind_tools(tools)

    def agent(state: dict[str, Any]) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    async def aagent(state: dict[str, Any]) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    builder = StateGraph(state_schema)
    builder.add_node("agent", RunnableLambda(agent, afunc=aagent))
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


async def _run(app: Any, payload: Any, *, use_async: bool, thread: str = "t1") -> dict[str, Any]:
    config = {"configurable": {"thread_id": thread}}
    if use_async:
        return await app.ainvoke(payload, config)  # type: ignore[no-any-return]
    return app.invoke(payload, config)  # type: ignore[no-any-return]


def _text(messages: list[BaseMessage]) -> str:
    return "\n".join(str(message.content) for message in messages)


def _call_ids(messages: list[BaseMessage], name: str) -> list[str]:
    return [
        str(call["id"])
        for message in messages
        if isinstance(message, AIMessage)
        for call in message.tool_calls
        if call["name"] == name
    ]


def _answers(messages: list[BaseMessage], name: str = "ask_expert") -> list[ToolMessage]:
    return [m for m in messages if isinstance(m, ToolMessage) and m.name == name]


# --- the tool's face to the weak model ---------------------------------------------------


def test_the_model_sees_only_question_and_context() -> None:
    ask = create_ask_expert_tool(ScriptedChatModel(script=[]))
    schema = ask.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
    assert ask.name == "ask_expert"
    assert set(schema["properties"]) == {"question", "context"}
    assert schema["required"] == ["question"]
    assert ask.description  # a default description the model can act on


def test_name_and_description_are_configurable() -> None:
    ask = create_ask_expert_tool(
        ScriptedChatModel(script=[]), name="ask_senior", description="Ask the senior engineer."
    )
    assert (ask.name, ask.description) == ("ask_senior", "Ask the senior engineer.")


def test_building_with_a_model_id_imports_no_litellm() -> None:
    # The id resolves at the first call: building the tool (or the middleware) stays cheap.
    code = (
        "import sys\n"
        "from langchain_escalate import EscalationMiddleware, create_ask_expert_tool\n"
        "create_ask_expert_tool('anthropic/claude-sonnet-4-6')\n"
        "EscalationMiddleware('anthropic/claude-sonnet-4-6')\n"
        "assert 'litellm' not in sys.modules, 'litellm imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603 - our own code


def test_rejects_a_strong_model_of_the_wrong_kind() -> None:
    with pytest.raises(TypeError, match="strong must be"):
        create_ask_expert_tool(42)  # type: ignore[arg-type]


def test_rejects_limits_out_of_range() -> None:
    with pytest.raises(ValueError, match="max_uses must be at least 1"):
        create_ask_expert_tool(ScriptedChatModel(script=[]), max_uses=0)
    with pytest.raises(ValueError, match="briefing_max_tokens must be at least 200"):
        create_ask_expert_tool(ScriptedChatModel(script=[]), briefing_max_tokens=50)


# --- inside a ToolNode agent loop -------------------------------------------------------


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_answer_reaches_the_weak_model_with_the_conversation_briefed(
    use_async: bool,
) -> None:
    strong = ScriptedChatModel(script=[AIMessage(ANSWER)], model_name="gpt-4o")
    ask = create_ask_expert_tool(strong)
    weak = ScriptedChatModel(
        script=[_lookup("A17"), _lookup("A17"), _ask(), _lookup("A-17"), AIMessage("Refunded.")]
    )
    app = _agent_loop(weak, [lookup_order, ask])

    result = await _run(app, {"messages": [HumanMessage(TASK)]}, use_async=use_async)

    # The answer reached the weak model as the ToolMessage answering its call.
    ask_call_id = _call_ids(result["messages"], "ask_expert")[0]
    after_help = weak.calls[3]
    answer = after_help[-1]
    assert isinstance(answer, ToolMessage)
    assert answer.tool_call_id == ask_call_id
    assert ANSWER in str(answer.content)
    # The strong model was briefed: the task, the failed attempts, the question.
    assert len(strong.calls) == 1
    briefing = _text(strong.calls[0])
    assert TASK in briefing
    assert "not found" in briefing
    assert QUESTION in briefing
    # The record rides on the message, so it survives plain MessagesState.
    record = answer.additional_kwargs[RECORD_KEY]
    assert record["action"] == "escalate"
    assert record["outcome"] == "answered"
    assert record["model"] == "gpt-4o"
    assert record["tokens_in"] > 0
    assert record["tokens_out"] > 0
    assert result["messages"][-1].content == "Refunded."


async def test_context_from_the_weak_model_is_in_the_briefing() -> None:
    strong = ScriptedChatModel(script=[AIMessage(ANSWER)])
    weak = ScriptedChatModel(script=[_ask(context="I tried A17 and a17."), AIMessage("Done.")])
    app = _agent_loop(weak, [lookup_order, create_ask_expert_tool(strong)])

    await _run(app, {"messages": [HumanMessage(TASK)]}, use_async=False)

    briefing = _text(strong.calls[0])
    assert "I tried A17 and a17." in briefing
    assert TASK in briefing


async def test_record_is_appended_to_escalations_when_the_state_has_them() -> None:
    class State(EscalationState):
        pass

    strong = ScriptedChatModel(script=[AIMessage(ANSWER)], model_name="gpt-4o")
    weak = ScriptedChatModel(script=[_ask(), AIMessage("Done.")])
    app = _agent_loop(weak, [lookup_order, create_ask_expert_tool(strong)], state_schema=State)

    result = await _run(app, {"messages": [HumanMessage(TASK)]}, use_async=False)

    [record] = result["escalations"]
    [answer] = _answers(result["messages"])
    assert record == answer.additional_kwargs[RECORD_KEY]
    assert record["thread_id"] == "t1"


async def test_briefing_stays_bounded_however_long_the_conversation() -> None:
    strong = ScriptedChatModel(script=[AIMessage(ANSWER)])
    ask = create_ask_expert_tool(strong, briefing_max_tokens=400)
    weak = ScriptedChatModel(script=[_ask(), AIMessage("Done.")])
    app = _agent_loop(weak, [lookup_order, ask])
    history: list[BaseMessage] = [HumanMessage(TASK)]
    history.extend(
        AIMessage(f"Thinking about step {turn}: " + "details " * 30) for turn in range(150)
    )

    await _run(app, {"messages": history}, use_async=False)

    briefing = _text(strong.calls[0])
    # ~4 characters a token: 400 tokens is well under 4,000 characters, the history ~40,000.
    assert len(briefing) < 4_000
    assert TASK in briefing
    assert QUESTION in briefing


# --- max_uses and budget ---------------------------------------------------------------


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_max_uses_stops_the_next_call_with_a_readable_result(use_async: bool) -> None:
    strong = ScriptedChatModel(script=[AIMessage(ANSWER), AIMessage("second answer")])
    ask = create_ask_expert_tool(strong, max_uses=1)
    weak = ScriptedChatModel(script=[_ask(), _ask("And now?"), AIMessage("Done.")])
    app = _agent_loop(weak, [lookup_order, ask])

    result = await _run(app, {"messages": [HumanMessage(TASK)]}, use_async=use_async)

    assert len(strong.calls) == 1
    first, second = _answers(result["messages"])
    assert ANSWER in str(first.content)
    refusal = str(second.content)
    assert "used 1 of 1" in refusal
    assert "continue on your own" in refusal
    assert RECORD_KEY not in second.additional_kwargs
    # The weak model read the refusal and carried on.
    assert weak.calls[2][-1] == second
    assert result["messages"][-1].content == "Done."


async def test_max_uses_counts_the_thread_across_runs_and_graph_objects() -> None:
    checkpointer = InMemorySaver()
    strong = ScriptedChatModel(script=[AIMessage(ANSWER)])
    first_weak = ScriptedChatModel(script=[_ask(), AIMessage("Done.")])
    first_app = _agent_loop(
        first_weak,
        [lookup_order, create_ask_expert_tool(strong, max_uses=1)],
        checkpointer=checkpointer,
    )
    await _run(first_app, {"messages": [HumanMessage(TASK)]}, use_async=False)

    # A new process-level graph and tool on the same thread: the earlier use still counts.
    second_weak = ScriptedChatModel(script=[_ask("One more?"), AIMessage("Done again.")])
    second_app = _agent_loop(
        second_weak,
        [lookup_order, create_ask_expert_tool(strong, max_uses=1)],
        checkpointer=checkpointer,
    )
    result = await _run(
        second_app, {"messages": [HumanMessage("And order A-18?")]}, use_async=False
    )

    assert len(strong.calls) == 1
    assert "used 1 of 1" in str(_answers(result["messages"])[-1].content)
    # Another thread has its own allowance.
    other_weak = ScriptedChatModel(script=[_ask(), AIMessage("Done.")])
    other_strong = ScriptedChatModel(script=[AIMessage(ANSWER)])
    other_app = _agent_loop(
        other_weak,
        [lookup_order, create_ask_expert_tool(other_strong, max_uses=1)],
        checkpointer=checkpointer,
    )
    await _run(other_app, {"messages": [HumanMessage(TASK)]}, use_async=False, thread="t2")
    assert len(other_strong.calls) == 1


async def test_an_expert_that_raises_becomes_a_readable_error_result() -> None:
    strong = ScriptedChatModel(script=[RuntimeError("upstream 503")])
    weak = ScriptedChatModel(script=[_ask(), AIMessage("Done.")])
    app = _agent_loop(weak, [lookup_order, create_ask_expert_tool(strong)])

    result = await _run(app, {"messages": [HumanMessage(TASK)]}, use_async=False)

    [failure] = _answers(result["messages"])
    assert failure.status == "error"
    assert "continue on your own" in str(failure.content)
    assert failure.additional_kwargs[RECORD_KEY]["outcome"] == "expert_failed"
    assert result["messages"][-1].content == "Done."


# --- create_agent -----------------------------------------------------------------------


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_works_as_a_create_agent_tool(use_async: bool) -> None:
    strong = ScriptedChatModel(script=[AIMessage(ANSWER)], model_name="gpt-4o")
    weak = ScriptedChatModel(
        script=[_lookup("A17"), _ask(), _lookup("A-17"), AIMessage("Refunded.")]
    )
    agent = create_agent(
        weak, tools=[lookup_order, create_ask_expert_tool(strong)], checkpointer=InMemorySaver()
    )

    result = await _run(agent, {"messages": [HumanMessage(TASK)]}, use_async=use_async)

    answer = weak.calls[2][-1]
    assert isinstance(answer, ToolMessage)
    assert ANSWER in str(answer.content)
    assert answer.additional_kwargs[RECORD_KEY]["outcome"] == "answered"
    briefing = _text(strong.calls[0])
    assert TASK in briefing
    assert "not found" in briefing
    assert result["messages"][-1].content == "Refunded."


# --- a compiled graph as the expert -----------------------------------------------------


async def test_a_compiled_graph_can_be_the_expert() -> None:
    received: list[list[BaseMessage]] = []

    def expert_node(state: MessagesState) -> dict[str, Any]:
        received.append(list(state["messages"]))
        return {"messages": [AIMessage(ANSWER)]}

    expert = StateGraph(MessagesState)
    expert.add_node("expert", expert_node)
    expert.add_edge(START, "expert")
    expert.add_edge("expert", END)
    weak = ScriptedChatModel(script=[_ask(), AIMessage("Done.")])
    app = _agent_loop(weak, [lookup_order, create_ask_expert_tool(expert.compile())])

    result = await _run(app, {"messages": [HumanMessage(TASK)]}, use_async=False)

    [answer] = _answers(result["messages"])
    assert ANSWER in str(answer.content)
    assert TASK in _text(received[0])
    assert QUESTION in _text(received[0])


# --- called directly, outside any graph -------------------------------------------------


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_direct_call_sends_only_question_and_context(use_async: bool) -> None:
    strong = ScriptedChatModel(script=[AIMessage(ANSWER)])
    ask = create_ask_expert_tool(strong)
    payload = {"question": QUESTION, "context": "We use dashed ids."}

    answer = await ask.ainvoke(payload) if use_async else ask.invoke(payload)

    assert answer == ANSWER
    briefing = _text(strong.calls[0])
    assert QUESTION in briefing
    assert "We use dashed ids." in briefing


def test_direct_calls_count_max_uses_per_tool_instance() -> None:
    strong = ScriptedChatModel(script=[AIMessage(ANSWER), AIMessage("unused")])
    ask = create_ask_expert_tool(strong, max_uses=1)

    assert ask.invoke({"question": QUESTION}) == ANSWER
    refusal = ask.invoke({"question": "again?"})

    assert "used 1 of 1" in refusal
    assert len(strong.calls) == 1


async def test_a_refused_budget_is_a_readable_result_and_no_use() -> None:
    strong = ScriptedChatModel(script=[AIMessage(ANSWER), AIMessage("never paid")])
    ask = create_ask_expert_tool(strong, max_uses=5, budget=Budget(max_escalations_per_thread=1))
    weak = ScriptedChatModel(script=[_ask(), _ask("And now?"), AIMessage("Done.")])
    app = _agent_loop(weak, [lookup_order, ask])

    result = await _run(app, {"messages": [HumanMessage(TASK)]}, use_async=False)

    assert len(strong.calls) == 1
    first, refused = _answers(result["messages"])
    assert ANSWER in str(first.content)
    assert refused.status == "error"
    assert "could not answer" in str(refused.content)
    assert "continue on your own" in str(refused.content)
    assert refused.additional_kwargs[RECORD_KEY]["outcome"] == "over_budget"
    assert result["messages"][-1].content == "Done."


async def test_parallel_calls_in_one_message_share_max_uses() -> None:
    strong = ScriptedChatModel(script=[AIMessage(ANSWER), AIMessage("second answer")])
    ask = create_ask_expert_tool(strong, max_uses=1)
    both = AIMessage(
        "",
        tool_calls=[
            tool_call("ask_expert", {"question": QUESTION}),
            tool_call("ask_expert", {"question": "And the customer?"}),
        ],
    )
    weak = ScriptedChatModel(script=[both, AIMessage("Done.")])
    app = _agent_loop(weak, [lookup_order, ask])

    result = await _run(app, {"messages": [HumanMessage(TASK)]}, use_async=False)

    assert len(strong.calls) == 1
    first, second = _answers(result["messages"])
    assert ANSWER in str(first.content)
    assert "used 1 of 1" in str(second.content)


async def test_works_in_a_graph_whose_state_is_the_message_list() -> None:
    strong = ScriptedChatModel(script=[AIMessage(ANSWER)])
    ask = create_ask_expert_tool(strong)
    weak = ScriptedChatModel(script=[_lookup("A17"), _ask(), AIMessage("Done.")])
    bound = weak.bind_tools([lookup_order, ask])

    def agent(messages: list[AnyMessage]) -> list[AnyMessage]:
        return [bound.invoke(messages)]

    builder = StateGraph(Annotated[list[AnyMessage], add_messages])
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([lookup_order, ask]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")

    messages = builder.compile().invoke([HumanMessage(TASK)])

    [answer] = _answers(messages)
    assert ANSWER in str(answer.content)
    assert answer.additional_kwargs[RECORD_KEY]["outcome"] == "answered"
    assert TASK in _text(strong.calls[0])
    assert "not found" in _text(strong.calls[0])
