"""A LangGraph agent uses the MCP server as a tool server, as any MCP host would.

The agent is a real graph (model node, ``ToolNode``, ``tools_condition``)
with a scripted weak model that asks the expert, follows up in the same
thread with the ``thread_id`` the answer gave, then replies. The tools come
from the server subprocess: through ``langchain-mcp-adapters`` (the
ecosystem's client), and through the official SDK's ``ClientSession``.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import TextContent

from langchain_escalate.testing import ScriptedChatModel
from tests.mcp_launcher import ANSWER_HEADER
from tests.test_mcp_server import Paths, is_error, server_env

if TYPE_CHECKING:
    from pathlib import Path

try:
    from langchain_mcp_adapters.client import MultiServerMCPClient
except ImportError as error:  # adapters 0.3.x import MCP SDK 1.x names
    MultiServerMCPClient = None
    ADAPTERS_MISSING = (
        f"langchain-mcp-adapters {importlib.metadata.version('langchain-mcp-adapters')} cannot be "
        f"imported with mcp {importlib.metadata.version('mcp')}: {error} "
        "(langchain-mcp-adapters#589: 0.3.x is written for MCP SDK 1.x)"
    )
else:
    ADAPTERS_MISSING = ""

pytestmark = pytest.mark.timeout(120)

THREAD = re.compile(r"thread_id: (\w+)")


def weak_model() -> ScriptedChatModel:
    """Ask, follow up in the thread the answer names, then reply with what the expert said."""

    def follow_up(messages: list[BaseMessage]) -> AIMessage:
        answer = str(messages[-1].content)
        found = THREAD.search(answer)
        assert found, f"the answer names no thread: {answer[-300:]}"
        call = {"question": "And which one refunds them?", "thread_id": found[1]}
        return AIMessage("", tool_calls=[{"name": "ask_expert", "args": call, "id": "ask-2"}])

    def reply(messages: list[BaseMessage]) -> AIMessage:
        answer = next(m for m in reversed(messages) if isinstance(m, ToolMessage))
        return AIMessage(f"Following the expert:\n{answer.content}")

    first = {"question": "Which endpoint lists invoices?", "context": "GET /v1/invoices is 404"}
    return ScriptedChatModel(
        script=[
            AIMessage("", tool_calls=[{"name": "ask_expert", "args": first, "id": "ask-1"}]),
            follow_up,
            reply,
        ]
    )


async def run_agent(tools: list[BaseTool]) -> list[BaseMessage]:
    model = weak_model().bind_tools(tools)

    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    graph = builder.compile()
    state = await graph.ainvoke({"messages": [HumanMessage("List my invoices")]})
    return list(state["messages"])


def check_run(messages: list[BaseMessage], paths: Paths) -> None:
    answers = [m for m in messages if isinstance(m, ToolMessage)]
    assert [m.status for m in answers] == ["success", "success"]
    final = str(messages[-1].content)
    # The second answer was briefed on the first exchange of the thread.
    assert ANSWER_HEADER in final
    assert "Which endpoint lists invoices?" in final
    assert "GET /v1/invoices is 404" in final
    assert "And which one refunds them?" in final
    records = paths.records_written()
    assert [r.outcome for r in records] == ["answered", "answered"]
    assert records[0].thread_id == records[1].thread_id


def launcher(paths: Paths) -> tuple[str, list[str]]:
    return sys.executable, paths.args()


@pytest.mark.skipif(MultiServerMCPClient is None, reason=ADAPTERS_MISSING or "n/a")
async def test_agent_uses_the_server_through_langchain_mcp_adapters(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    command, args = launcher(paths)
    assert MultiServerMCPClient is not None
    client = MultiServerMCPClient(
        {
            "escalate": {
                "transport": "stdio",
                "command": command,
                "args": args,
                "env": server_env(),
                "cwd": str(paths.workdir),
            }
        }
    )
    tools = await client.get_tools()
    assert {tool.name for tool in tools} == {"ask_expert", "check_stuck", "budget_status"}
    check_run(await run_agent(tools), paths)


async def test_agent_uses_the_server_through_the_sdk_client(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    command, args = launcher(paths)
    params = StdioServerParameters(command=command, args=args, env=server_env(), cwd=paths.workdir)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        check_run(await run_agent(await session_tools(session)), paths)


async def session_tools(session: ClientSession) -> list[BaseTool]:
    """The server's tools as LangChain tools, over one open session."""
    listed = await session.list_tools()

    def tool(name: str, description: str, schema: dict[str, Any]) -> BaseTool:
        async def call(**arguments: Any) -> str:
            result = await session.call_tool(name, arguments)
            text = "\n".join(b.text for b in result.content if isinstance(b, TextContent))
            if is_error(result):
                raise ToolException(text)
            return text

        return StructuredTool.from_function(
            coroutine=call, name=name, description=description, args_schema=schema
        )

    return [
        tool(t.name, t.description or "", getattr(t, "input_schema", None) or t.inputSchema)
        for t in listed.tools
    ]
