"""Start the MCP server with a scripted strong model: what the MCP tests run as a subprocess.

The strong model answers with the briefing it read (so a test sees what the
server sent it) and fails when the briefing holds ``FAIL_MARK`` (so a test
can make the strong model fail on demand). Everything else is the public API
a Python user calls: ``create_mcp_server`` and ``serve``.
"""

import argparse
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from langchain_escalate.budget import Budget
from langchain_escalate.mcp_server import InputLimits, create_mcp_server, serve
from langchain_escalate.testing import ScriptedChatModel

ANSWER_HEADER = "EXPERT READ:"
FAIL_MARK = "MAKE-THE-EXPERT-FAIL"
PRICES = {"scripted-model": {"input": 3.0, "output": 15.0}}
"""USD per 1M tokens: the scripted model reports 100 tokens in, 20 out per call."""
COST_PER_CALL = (100 * 3.0 + 20 * 15.0) / 1_000_000


def answer(messages: list[BaseMessage]) -> AIMessage:
    briefing = str(messages[-1].content)
    if FAIL_MARK in briefing:
        msg = "the strong model is down"
        raise RuntimeError(msg)
    return AIMessage(f"{ANSWER_HEADER}\n{briefing}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", required=True)
    parser.add_argument("--threads", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--max-escalations", type=int, default=3)
    parser.add_argument("--max-transcript-messages", type=int, default=50)
    parser.add_argument("--http", type=int)
    args = parser.parse_args()
    options: dict[str, Any] = {
        "budget": Budget(max_escalations_per_thread=args.max_escalations, ledger=args.ledger),
        "prices": PRICES,
        "records": args.records,
        "threads": args.threads,
        "workdir": args.workdir,
        "limits": InputLimits(
            max_file_bytes=2_000, max_transcript_messages=args.max_transcript_messages
        ),
    }
    strong = ScriptedChatModel(script=[answer], repeat_last=True)
    serve(create_mcp_server(strong, **options), http_port=args.http)


if __name__ == "__main__":
    main()
