"""``demo --local``'s weak model over HTTP: what it asks llama.cpp for, what it makes of it.

A small HTTP server on loopback stands in for llama.cpp's OpenAI-compatible
endpoint: it records each request and replies with the JSON the grammar would
allow. The live run against the real model is tests/integration/test_demo_local.py.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage

from langchain_escalate.cli.demo_agent import SYSTEM_PROMPT, TASK, TOOLS
from langchain_escalate.cli.demo_models import LOCAL_MODEL_ID, local_weak_model

if TYPE_CHECKING:
    from collections.abc import Iterator


class FakeLlamaServer:
    """Records request bodies; answers each with the next content of ``replies``."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                server.requests.append(json.loads(self.rfile.read(length)))
                content = server.replies[len(server.requests) - 1]
                body = json.dumps(
                    {
                        "choices": [{"message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": 300, "completion_tokens": 20},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                del args

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.api_base = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


@pytest.fixture
def fake_llama() -> Iterator[FakeLlamaServer]:
    server = FakeLlamaServer(
        [
            'find_booking("220-4471938265")',
            'answer("Your refund is on its way.")',
        ]
    )
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def test_the_reply_becomes_a_tool_call_with_the_servers_usage(fake_llama):
    model = local_weak_model(fake_llama.api_base).bind_tools(TOOLS)

    reply = model.invoke([SystemMessage(SYSTEM_PROMPT), HumanMessage(TASK)])

    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("find_booking", {"reference": "220-4471938265"})
    ]
    assert reply.usage_metadata["input_tokens"] == 300
    assert reply.usage_metadata["output_tokens"] == 20
    assert reply.response_metadata["model_name"] == LOCAL_MODEL_ID
    [request] = fake_llama.requests
    assert request["temperature"] == 0
    assert request["cache_prompt"] is True
    [prompt] = request["messages"]
    assert prompt["role"] == "user"  # Gemma's template knows no system or tool roles
    assert TASK in prompt["content"]
    assert "search_bookings(last_name, flight_date)" in prompt["content"]
    # Until a tool has found something, the grammar offers tool calls only.
    assert "answer" not in request["grammar"].split("\n")[0]
    assert 'call0 ::= "find_booking(" string ")"' in request["grammar"]


def test_after_a_successful_lookup_the_model_may_answer(fake_llama):
    model = local_weak_model(fake_llama.api_base).bind_tools(TOOLS)
    first = model.invoke([SystemMessage(SYSTEM_PROMPT), HumanMessage(TASK)])
    failed = ToolMessage("Error: no booking with reference 'x'.", tool_call_id="1", name="x")
    found = ToolMessage('{"reference": "QX7K2M"}', tool_call_id="2", name="find_booking")

    reply = model.invoke([SystemMessage(SYSTEM_PROMPT), HumanMessage(TASK), first, failed, found])

    assert reply.content == "Your refund is on its way."
    assert not reply.tool_calls
    root = fake_llama.requests[1]["grammar"].split("\n")[0]
    assert "answer" in root
    transcript = fake_llama.requests[1]["messages"][0]["content"]
    assert 'Call: find_booking("220-4471938265")' in transcript
    assert "Result: Error: no booking with reference 'x'." in transcript
