"""The ``langchain-escalate`` command.

Each subcommand lives in its own module with ``add_parser(subparsers)`` that
registers it and sets ``handler``. Nothing here imports litellm: ``scan`` must
start fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from langchain_escalate.cli import calibrate, config_commands, demo, mcp, report, scan

if TYPE_CHECKING:
    from collections.abc import Sequence

SUBCOMMANDS = (demo, scan, report, calibrate, config_commands, mcp)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="langchain-escalate",
        description="Stuck detection and escalation for LangGraph agents.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`scan ... | head`): not an error worth a traceback.
        # Point stdout at devnull so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
