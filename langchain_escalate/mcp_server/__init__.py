"""The MCP server: the expert, the stuck detector and the budget for any MCP client.

``langchain-escalate mcp --config escalate.yaml`` runs it; from Python::

    from langchain_escalate.mcp_server import create_mcp_server, serve

    serve(create_mcp_server("anthropic/claude-sonnet-4-6", records="records.jsonl"))

``ExpertService`` (the tools as plain async Python) needs nothing more than
the package; ``create_mcp_server``, ``serve`` and ``service_from_config``
need the official MCP SDK 1.x (``pip install 'langchain-escalate[mcp]'``)
and import it on first use. See ``docs/mcp.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_escalate.mcp_server.inputs import InputLimits, ToolInputError
from langchain_escalate.mcp_server.service import AskResult, ExpertService, ExpertUnavailableError

if TYPE_CHECKING:
    from langchain_escalate.mcp_server.server import (
        create_mcp_server,
        serve,
        service_from_config,
    )

__all__ = [
    "AskResult",
    "ExpertService",
    "ExpertUnavailableError",
    "InputLimits",
    "ToolInputError",
    "create_mcp_server",
    "serve",
    "service_from_config",
]

_NEEDS_SDK = frozenset({"create_mcp_server", "serve", "service_from_config"})


def __getattr__(name: str) -> Any:
    # The SDK is an optional extra: import it only when the server is asked for.
    if name in _NEEDS_SDK:
        from langchain_escalate.mcp_server import server  # noqa: PLC0415

        return getattr(server, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
