"""``langchain-escalate mcp``: serve the expert, the detector and the budget over MCP.

stdio by default (what Claude Code, Cline and Cursor start), streamable HTTP
on loopback with ``--http PORT``. On stdio, stdout belongs to the protocol:
everything this command says goes to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

EXIT_BAD_INPUT = 2
DEFAULT_CONFIG = "escalate.yaml"
MISSING_SDK = (
    "langchain-escalate mcp: the MCP server needs the official MCP SDK; "
    "install it with: pip install 'langchain-escalate[mcp]'"
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``mcp`` on the ``langchain-escalate`` command line.

    Args:
        subparsers: The command's subparsers.
    """
    parser = subparsers.add_parser(
        "mcp",
        help="run the MCP server: ask_expert, check_stuck, budget_status",
        description=(
            "Run a Model Context Protocol server with three tools: ask_expert (the strong model, "
            "briefed, under the budget, with multi-turn threads), check_stuck (the stuck "
            "detector over a transcript) and budget_status. stdio by default; streamable HTTP "
            "on 127.0.0.1 with --http PORT. Needs the mcp extra."
        ),
    )
    parser.add_argument(
        "--config",
        metavar="escalate.yaml",
        help=(
            "the config file: strong model, budget, prices, detector thresholds "
            f"(default: {DEFAULT_CONFIG} in the current directory)"
        ),
    )
    parser.add_argument(
        "--node",
        metavar="NAME",
        help="use this node's settings (and name in records); default: the file's defaults",
    )
    parser.add_argument(
        "--http",
        metavar="PORT",
        type=int,
        help="serve streamable HTTP on http://127.0.0.1:PORT/mcp instead of stdio",
    )
    parser.add_argument(
        "--records",
        metavar="FILE",
        help="records JSONL for `langchain-escalate report` (default: next to the config)",
    )
    parser.add_argument(
        "--threads",
        metavar="FILE",
        help="SQLite file of consultation threads (default: next to the config)",
    )
    parser.add_argument(
        "--workdir",
        metavar="DIR",
        help="ask_expert reads files inside this directory only (default: the current one)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Build the server from the config and serve until the client goes away.

    Args:
        args: Parsed arguments: ``config``, ``node``, ``http``, ``records``,
            ``threads``, ``workdir``.

    Returns:
        0 after a clean shutdown; 2 when the SDK is missing or the config is invalid.
    """
    try:
        from langchain_escalate.mcp_server import server  # noqa: PLC0415 - the optional extra
    except ImportError:
        sys.stderr.write(MISSING_SDK + "\n")
        return EXIT_BAD_INPUT
    config = args.config
    if config is None:
        if not Path(DEFAULT_CONFIG).is_file():
            sys.stderr.write(
                f"langchain-escalate mcp: no --config given and no {DEFAULT_CONFIG} in "
                f"{Path.cwd()}; the strong model and the budget come from it\n"
            )
            return EXIT_BAD_INPUT
        config = DEFAULT_CONFIG
    try:
        service = server.service_from_config(
            config,
            args.node,
            records=args.records,
            threads=args.threads,
            workdir=args.workdir,
        )
    except (ValueError, OSError) as error:  # ConfigError is a ValueError
        sys.stderr.write(f"langchain-escalate mcp: {error}\n")
        return EXIT_BAD_INPUT
    where = f"http://{server.LOOPBACK}:{args.http}/mcp" if args.http is not None else "stdio"
    sys.stderr.write(
        f"langchain-escalate mcp: serving on {where}; records: {service.records}, "
        f"threads: {service.threads.path}, files from: {service.workdir}\n"
    )
    try:
        server.serve(server.create_mcp_server(service), http_port=args.http)
    except KeyboardInterrupt:
        return 0
    return 0
