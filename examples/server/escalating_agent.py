"""A ReAct-style agent whose model node escalates, served by LangGraph Server.

``langgraph dev`` (or a LangGraph Platform deployment) loads ``graph`` from
here, as ``langgraph.json`` says. The graph is compiled without a
checkpointer: the server gives every thread its own, so the ``human`` rung's
interrupt can be resumed over HTTP with ``Command(resume=...)``.

Offline by default: the weak and strong models are scripted stand-ins, so the
server runs with no key and no network. The weak model keeps calling
``fetch_report``, which fails, until someone's guidance names
``fetch_archive``; the strong model's advice does not, so a thread climbs the
whole default ladder: nudge, escalate (advise), then ``human``.

Real models: set ``ESCALATE_WEAK_MODEL`` and ``ESCALATE_STRONG_MODEL`` to model
ids (for example ``deepseek/deepseek-chat`` and
``anthropic/claude-sonnet-4-6``) in the environment or in ``langgraph.json``'s
``env``, with the providers' API keys.
"""

from __future__ import annotations

import os
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langchain_escalate import EscalationPolicy, EscalationState, create_escalating_node
from langchain_escalate.testing import ScriptedChatModel, tool_call

ADVICE = "Check the error message and try again."
PRICES = {  # USD per 1M tokens, for the stand-ins' model names
    "scripted-weak": {"input": 0.27, "output": 1.10},
    "scripted-strong": {"input": 3.0, "output": 15.0},
}


@tool
def fetch_report(year: int) -> str:
    """Fetch the sales report of a year."""
    return f"Error: report {year} not found (HTTP 404)"


@tool
def fetch_archive(year: int) -> str:
    """Fetch an archived sales report."""
    return f"Sales {year}: total 42 MEUR"


TOOLS = [fetch_report, fetch_archive]


def scripted_weak_step(messages: list[BaseMessage]) -> AIMessage:
    """The weak stand-in: retries the failing tool until guidance names the archive."""
    last = messages[-1]
    if isinstance(last, ToolMessage) and last.name == "fetch_archive":
        return AIMessage(f"The 2023 total is 42 MEUR ({last.content}).")
    guided = any(
        isinstance(message, HumanMessage) and "fetch_archive" in str(message.content)
        for message in messages[1:]
    )
    name = "fetch_archive" if guided else "fetch_report"
    return AIMessage("", tool_calls=[tool_call(name, {"year": 2023})])


def models() -> tuple[Any, Any]:
    """Real model ids from the environment, else the offline stand-ins."""
    weak_id = os.environ.get("ESCALATE_WEAK_MODEL")
    strong_id = os.environ.get("ESCALATE_STRONG_MODEL")
    weak = weak_id or ScriptedChatModel(
        script=[scripted_weak_step], repeat_last=True, model_name="scripted-weak"
    )
    strong = strong_id or ScriptedChatModel(
        script=[ADVICE], repeat_last=True, model_name="scripted-strong"
    )
    return weak, strong


def build_graph() -> Any:
    """The agent loop: the escalating node, a ToolNode, and ``tools_condition``."""
    weak, strong = models()
    builder = StateGraph(EscalationState)
    builder.add_node(
        "agent",
        create_escalating_node(
            weak,
            strong,
            tools=TOOLS,
            policy=EscalationPolicy(ladder=["nudge", "escalate", "human"], mode="advise"),
            prices=PRICES,
        ),
    )
    builder.add_node("tools", ToolNode(TOOLS, handle_tool_errors=True))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(name="escalating_agent")


graph = build_graph()
