"""The MCP server: ``ExpertService`` behind the protocol, on the official ``mcp`` SDK (1.x).

Three tools (``ask_expert``, ``check_stuck``, ``budget_status``) on the
SDK's ``FastMCP``, over stdio or streamable HTTP on loopback. The SDK is
pinned below 2 because ``langchain-mcp-adapters``, the client LangGraph
agents use, is (see ``docs/mcp.md``). A refused argument, a refused budget or a
failed strong model comes back as a tool result with ``isError`` set and a
message the calling model can act on; the server keeps serving.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from langchain_escalate.mcp_server.inputs import ToolInputError
from langchain_escalate.mcp_server.service import (
    DEFAULT_NODE,
    ExpertService,
    ExpertUnavailableError,
)

try:
    from mcp.server.fastmcp import FastMCP
    from mcp.types import CallToolResult, TextContent
except ImportError as error:  # pragma: no cover - exercised only without the extra
    msg = (
        "the MCP server needs the official MCP SDK 1.x: pip install 'langchain-escalate[mcp]' "
        f"({error})"
    )
    raise ImportError(msg) from error

if TYPE_CHECKING:
    import os
    from collections.abc import Awaitable

    from langchain_escalate.expert.expert import ExpertSpec

__all__ = ["SERVER_NAME", "create_mcp_server", "serve", "service_from_config"]

SERVER_NAME = "langchain-escalate"
LOOPBACK = "127.0.0.1"
RECORDS_FILE = "escalate-records.jsonl"
"""Default records log, next to the config file."""
THREADS_FILE = "escalate-threads.db"
"""Default thread store, next to the config file."""

logger = logging.getLogger("langchain_escalate")

ASK_DESCRIPTION = (
    "Consult a stronger expert model when you are stuck, keep getting the same error, or are "
    "unsure how to go on. The expert sees only what you send: one specific question, `context` "
    "(what you tried and what happened), `files` (paths in the working directory, read for it) "
    "and the earlier turns of `thread_id`. Every answer returns a thread_id: pass it back to "
    "follow up without repeating yourself. The answer ends with what it cost. Refused when the "
    "budget is spent: then continue on your own."
)
CHECK_DESCRIPTION = (
    "Ask whether a conversation is stuck in a loop (the same failing call, repeated errors, the "
    "same reply again...). Send the transcript as a list of messages (OpenAI chat format or "
    "LangChain message dicts); returns the detector's verdicts as JSON and one line of advice. "
    "Free: no model is called."
)
BUDGET_DESCRIPTION = (
    "How much of the expert budget is spent, reserved and remaining, per limit. Give thread_id "
    "for the per-thread limits. Free."
)


def create_mcp_server(
    strong: ExpertSpec | ExpertService, *, name: str = SERVER_NAME, **service_options: Any
) -> FastMCP[Any]:
    """Create the MCP server with the tools ``ask_expert``, ``check_stuck`` and ``budget_status``.

    Args:
        strong: The expert (a litellm id, a ``BaseChatModel``, a ``ModelRef``,
            a compiled graph), or a ready ``ExpertService``.
        name: The server's name, as clients list it.
        **service_options: ``ExpertService`` arguments (``budget``, ``records``,
            ``threads``, ``workdir``, ``limits``...), when ``strong`` is a model.

    Returns:
        An ``mcp.server.fastmcp.FastMCP``; run it with ``serve``.

    Raises:
        TypeError: ``service_options`` given with a ready ``ExpertService``.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> from langchain_escalate.testing import ScriptedChatModel
        >>> server = create_mcp_server(ScriptedChatModel(script=[AIMessage("Use v2.")]))
        >>> server.name
        'langchain-escalate'
    """
    if isinstance(strong, ExpertService):
        if service_options:
            msg = (
                f"create_mcp_server: options {sorted(service_options)} need a model, not a service"
            )
            raise TypeError(msg)
        service = strong
    else:
        service = ExpertService(strong, **service_options)
    server: FastMCP[Any] = FastMCP(
        name,
        instructions=(
            "Escalation for agents: ask_expert consults a stronger model under a budget; "
            "check_stuck says whether a transcript is looping; budget_status says what is left."
        ),
        # Not a line per request on the client's log (stderr): warnings and errors only.
        log_level="WARNING",
    )
    _add_tools(server, service)
    return server


def _add_tools(server: FastMCP[Any], service: ExpertService) -> None:
    async def ask_expert(
        question: Annotated[str, Field(description="One specific question for the expert.")],
        context: Annotated[
            str | None, Field(description="What you tried and what happened; what it must know.")
        ] = None,
        files: Annotated[
            list[str] | None,
            Field(description="Paths of files in the working directory the expert should read."),
        ] = None,
        thread_id: Annotated[
            str | None, Field(description="A thread_id from an earlier answer, to follow up.")
        ] = None,
    ) -> CallToolResult:
        result = await _guarded(service.ask_expert(question, context, files, thread_id))
        if isinstance(result, CallToolResult):
            return result
        return CallToolResult(
            content=[TextContent(type="text", text=result.to_text())],
            structuredContent=result.to_dict(),
        )

    async def check_stuck(
        transcript: Annotated[
            list[dict[str, Any]] | str,
            Field(description="The conversation: a list of messages (or it as JSON/JSONL text)."),
        ],
    ) -> CallToolResult:
        try:
            return _json_result(service.check_stuck(transcript))
        except ToolInputError as error:
            return _error(str(error))

    async def budget_status(
        thread_id: Annotated[
            str | None, Field(description="A thread, for the per-thread limits.")
        ] = None,
    ) -> CallToolResult:
        return _json_result(await _guarded(service.budget_status(thread_id)))

    server.add_tool(ask_expert, description=ASK_DESCRIPTION, structured_output=False)
    server.add_tool(check_stuck, description=CHECK_DESCRIPTION, structured_output=False)
    server.add_tool(budget_status, description=BUDGET_DESCRIPTION, structured_output=False)


async def _guarded(call: Awaitable[Any]) -> Any:
    """The call's result, or the error result for what a caller (or the budget) refused."""
    try:
        return await call
    except ToolInputError as error:
        return _error(str(error))
    except ExpertUnavailableError as error:
        # The reservation was released: a refused or failed call leaves the budget as it was.
        return _error(f"{error}; nothing was charged to the budget. Continue on your own.")


def _json_result(value: Any) -> CallToolResult:
    if isinstance(value, CallToolResult):
        return value
    text = value.get("advice", "") if isinstance(value, dict) else ""
    body = json.dumps(value, ensure_ascii=False)
    return CallToolResult(
        content=[TextContent(type="text", text=f"{text}\n{body}" if text else body)],
        structuredContent=value,
    )


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], isError=True)


def serve(server: FastMCP[Any], *, http_port: int | None = None) -> None:
    """Run the server until the client disconnects (stdio) or the process is stopped (HTTP).

    Args:
        server: From ``create_mcp_server``.
        http_port: Serve streamable HTTP on ``127.0.0.1`` at this port (path
            ``/mcp``); stdio when ``None``. Loopback only: the server has no
            authentication. To serve elsewhere, mount
            ``server.streamable_http_app()`` behind your own authenticating proxy.
    """
    if http_port is None:
        server.run("stdio")
        return
    # FastMCP reads the address from its settings; its DNS-rebinding protection
    # (set up for loopback when it was built) stays on.
    server.settings.host, server.settings.port = LOOPBACK, http_port
    server.run("streamable-http")


def service_from_config(
    config: str | os.PathLike[str],
    node: str | None = None,
    *,
    records: str | os.PathLike[str] | None = None,
    threads: str | os.PathLike[str] | None = None,
    workdir: str | os.PathLike[str] | None = None,
) -> ExpertService:
    """Build the service from an ``escalate.yaml``: strong model, budget, prices, thresholds.

    Args:
        config: The config file.
        node: The node whose settings to use (also the name in records);
            the file's defaults, under the name ``mcp``, when ``None``.
        records: The records JSONL; ``escalate-records.jsonl`` next to the config by default.
        threads: The thread store; ``escalate-threads.db`` next to the config by default.
        workdir: Files are read inside it only; the current directory by default.

    Returns:
        The service, for ``create_mcp_server``.

    Raises:
        ConfigError: The file is invalid, ``node`` is not configured, or no
            strong model is named.
    """
    from langchain_escalate.budget import Budget  # noqa: PLC0415 - config and models load on use
    from langchain_escalate.config import ConfigError, ConfigIssue, load_config  # noqa: PLC0415
    from langchain_escalate.config.schema import NodeSection  # noqa: PLC0415
    from langchain_escalate.config.settings import merge_node  # noqa: PLC0415
    from langchain_escalate.models import ModelRef  # noqa: PLC0415

    path = Path(config)
    cfg = load_config(path)
    settings = (
        cfg.for_node(node)
        if node is not None
        else merge_node(
            DEFAULT_NODE,
            models=cfg.models,
            defaults=cfg.defaults,
            node=NodeSection(),
            prices=cfg.prices,
        )
    )
    if settings.strong is None:
        why = "the MCP server needs a strong model: set models.strong (a litellm id)"
        raise ConfigError([ConfigIssue(str(path), None, "models.strong", why)])
    here = path.resolve().parent
    return ExpertService(
        ModelRef(settings.strong.model, **settings.strong.litellm_kwargs()),
        node=settings.name,
        budget=Budget(**settings.budget.model_dump()) if settings.budget.limited else None,
        prices=dict(cfg.prices),
        briefing_max_tokens=settings.policy.briefing_max_tokens,
        detector=settings.detector,
        records=records if records is not None else here / RECORDS_FILE,
        threads=threads if threads is not None else here / THREADS_FILE,
        workdir=workdir,
    )
