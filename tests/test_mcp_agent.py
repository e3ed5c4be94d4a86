"""A LangGraph agent uses the MCP server through ``langchain-mcp-adapters``, as any agent would.

The agent is LangChain's ``create_agent`` graph with a scripted weak model;
its tools come from the server subprocess over stdio, loaded by the
ecosystem's own client (``MultiServerMCPClient`` and ``load_mcp_tools``).
The weak model first sends a path outside the working directory (refused:
the agent must get a readable error, not a crash), then asks, follows up in
the thread the answer names, and replies with what the expert said.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.tools import load_mcp_tools

from langchain_escalate.testing import ScriptedChatModel
from tests.mcp_launcher import ANSWER_HEADER
from tests.test_mcp_server import Paths, server_env

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.timeout(120)

THREAD = re.compile(r"thread_id: (\w+)")
FIRST = {"question": "Which endpoint lists invoices?", "context": "GET /v1/invoices is 404"}


def call(name: str, call_id: str, **args: object) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id}])


def weak_model() -> ScriptedChatModel:
    """Try a file outside the project, ask, follow up in the answer's thread, then reply."""

    def follow_up(messages: list[BaseMessage]) -> AIMessage:
        found = THREAD.search(str(messages[-1].content))
        thread = found[1] if found else "no-thread-named"
        return call("ask_expert", "ask-3", question="And which one refunds them?", thread_id=thread)

    def reply(messages: list[BaseMessage]) -> AIMessage:
        return AIMessage(f"Following the expert:\n{messages[-1].content}")

    return ScriptedChatModel(
        script=[
            call("ask_expert", "ask-1", question="What is in it?", files=["../secrets.txt"]),
            call("ask_expert", "ask-2", **FIRST),
            follow_up,
            reply,
        ]
    )


async def test_an_agent_gets_the_experts_answer_through_langchain_mcp_adapters(
    tmp_path: Path,
) -> None:
    paths = Paths(tmp_path)
    (tmp_path / "secrets.txt").write_text("password=hunter2")
    client = MultiServerMCPClient(
        {
            "escalate": {
                "transport": "stdio",
                "command": sys.executable,
                "args": paths.args(),
                "env": server_env(),
                "cwd": str(paths.workdir),
            }
        }
    )
    async with client.session("escalate") as session:  # one server for the whole run
        tools = await load_mcp_tools(session)
        assert {tool.name for tool in tools} == {"ask_expert", "check_stuck", "budget_status"}
        agent = create_agent(weak_model(), tools)
        state = await agent.ainvoke({"messages": [HumanMessage("List my invoices")]})

    messages: list[BaseMessage] = state["messages"]
    results = [m for m in messages if isinstance(m, ToolMessage)]
    assert [m.status for m in results] == ["error", "success", "success"]
    # The refusal reached the agent as a readable tool error, and the run went on.
    assert "outside the working directory" in str(results[0].content)
    # The agent's reply is the expert's second answer, briefed on the first exchange.
    final = str(messages[-1].content)
    assert ANSWER_HEADER in final
    assert "Which endpoint lists invoices?" in final
    assert "GET /v1/invoices is 404" in final
    assert "And which one refunds them?" in final
    # Both answers are in the records log, in one thread; the refusal cost nothing.
    records = paths.records_written()
    assert [r.outcome for r in records] == ["answered", "answered"]
    assert records[0].thread_id == records[1].thread_id
    assert f"thread_id: {records[0].thread_id}" in str(results[1].content)
    assert "hunter2" not in paths.records.read_text()
