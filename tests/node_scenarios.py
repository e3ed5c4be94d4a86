"""A realistic stuck agent for the escalating-node tests (imported by tests/test_node_*.py).

The weak model keeps calling ``fetch_report(year=2023)``, which fails with
"Error: ..."; the data is in the archive (``fetch_archive``). The classic agent
loop: ``agent`` (the escalating node) -> ``tools`` (a real ToolNode) -> ``agent``.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langchain_escalate.records import RECORD_KEY, EscalationState
from langchain_escalate.testing import ScriptedChatModel, tool_call

TASK = "What was the total of our 2023 sales?"
ADVICE = "The 2023 report was archived: call fetch_archive with year=2023."
PRICES = {
    "strong-model": {"input": 3.0, "output": 15.0},
    "weak-model": {"input": 0.1, "output": 0.4},
}
STRONG_COST = (100 * 3.0 + 20 * 15.0) / 1_000_000  # one call at the scripted usage


@tool
def fetch_report(year: int) -> str:
    """Fetch the sales report of a year."""
    return f"Error: report {year} not found (HTTP 404) at 2026-01-01T10:00:00Z"


@tool
def fetch_archive(year: int) -> str:
    """Fetch an archived sales report."""
    return f"Sales {year}: total 42 MEUR"


@tool
def broken_report(year: int) -> str:
    """Fetch the sales report of a year (raises)."""
    msg = f"connection reset while fetching {year}"
    raise ConnectionError(msg)


TOOLS = [fetch_report, fetch_archive]


def failing_call() -> AIMessage:
    return AIMessage("", tool_calls=[tool_call("fetch_report", {"year": 2023})])


def archive_call() -> AIMessage:
    return AIMessage("", tool_calls=[tool_call("fetch_archive", {"year": 2023})])


def weak_script(failures: int = 6) -> list[Any]:
    """``failures`` failing calls, then the archive call and the answer."""
    return [
        *(failing_call() for _ in range(failures)),
        archive_call(),
        "The 2023 total is 42 MEUR.",
    ]


def weak_model(script: list[Any] | None = None) -> ScriptedChatModel:
    return ScriptedChatModel(script=script or weak_script(), model_name="weak-model")


def strong_model(script: list[Any] | None = None) -> ScriptedChatModel:
    return ScriptedChatModel(script=script or [ADVICE], model_name="strong-model")


def agent_graph(
    node: Any, *, state: type = EscalationState, tools: list[Any] | None = None
) -> StateGraph:
    """The classic agent loop around ``node``."""
    builder = StateGraph(state)
    builder.add_node("agent", node)
    builder.add_node("tools", ToolNode(tools or TOOLS, handle_tool_errors=True))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder


def user_input(text: str = TASK) -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}


def help_messages(messages: list[BaseMessage]) -> list[BaseMessage]:
    return [m for m in messages if RECORD_KEY in m.additional_kwargs]


def records_in_messages(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    return [m.additional_kwargs[RECORD_KEY] for m in messages if RECORD_KEY in m.additional_kwargs]


def assert_tool_calls_answered(messages: list[BaseMessage]) -> None:
    """Every AIMessage's tool calls have ToolMessages, and every ToolMessage has its call."""
    called: set[str] = set()
    answered: set[str] = set()
    for message in messages:
        if isinstance(message, AIMessage):
            called.update(str(call["id"]) for call in message.tool_calls)
        if isinstance(message, ToolMessage):
            assert message.tool_call_id in called, f"orphan tool result {message.tool_call_id}"
            answered.add(message.tool_call_id)
    assert called == answered, f"unanswered tool calls: {called - answered}"


def failing_calls_seen(messages: list[BaseMessage]) -> int:
    return sum(
        1
        for m in messages
        if isinstance(m, AIMessage) and any(c["name"] == "fetch_report" for c in m.tool_calls)
    )


__all__ = [
    "ADVICE",
    "PRICES",
    "STRONG_COST",
    "TASK",
    "TOOLS",
    "MessagesState",
    "agent_graph",
    "archive_call",
    "assert_tool_calls_answered",
    "broken_report",
    "failing_call",
    "failing_calls_seen",
    "help_messages",
    "records_in_messages",
    "strong_model",
    "user_input",
    "weak_model",
    "weak_script",
]
