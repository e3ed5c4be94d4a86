"""The MCP server as a client sees it: a real subprocess, the official SDK's client, stdio and HTTP.

The server runs ``tests/mcp_launcher.py`` (the public ``create_mcp_server`` and
``serve`` with a scripted strong model that answers with the briefing it
read). Assertions are about what a client relies on: the tools listed, the
answers and their cost, threads that survive a restart, the records log,
readable errors, and a server that keeps serving after each of them.

Server processes are the slow part: the HTTP tests share one server (each
reads only the records it caused); the stdio tests start their own, as a
restart or a raw stdin is what they test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from langchain_escalate.records_log import read_records
from tests.mcp_launcher import ANSWER_HEADER, COST_PER_CALL, FAIL_MARK

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from mcp.types import CallToolResult

    from langchain_escalate.records import EscalationRecord

REPO = Path(__file__).resolve().parent.parent
LAUNCHER = REPO / "tests" / "mcp_launcher.py"

pytestmark = pytest.mark.timeout(120)

LOOPING = [
    {"role": "user", "content": "Refund order 7"},
    *[
        message
        for attempt in range(3)
        for message in (
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"c{attempt}",
                        "type": "function",
                        "function": {"name": "refund", "arguments": '{"order": 7}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": f"c{attempt}", "content": "Error: gateway timeout"},
        )
    ],
]


class Paths:
    """Where one server keeps its state, and what it may read."""

    def __init__(self, root: Path) -> None:
        self.workdir = root / "project"
        self.workdir.mkdir()
        self.records = root / "state" / "records.jsonl"
        self.threads = root / "state" / "threads.db"
        self.ledger = root / "state" / "ledger.db"
        (root / "state").mkdir()

    def args(self, *extra: str) -> list[str]:
        return [
            str(LAUNCHER),
            "--records", str(self.records),
            "--threads", str(self.threads),
            "--workdir", str(self.workdir),
            "--ledger", f"sqlite:///{self.ledger}",
            *extra,
        ]  # fmt: skip

    def records_written(self, since: int = 0) -> list[EscalationRecord]:
        """The records in the log, from the ``since``-th on, read as ``report`` reads them."""
        return read_records(self.records)[since:] if self.records.exists() else []


def server_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path)


@asynccontextmanager
async def stdio_session(paths: Paths, *extra: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable, args=paths.args(*extra), env=server_env(), cwd=paths.workdir
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def is_error(result: CallToolResult) -> bool:
    return result.isError


def structured(result: CallToolResult) -> dict[str, Any]:
    value = result.structuredContent
    assert isinstance(value, dict), f"no structured content in {result}"
    return value


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def ask(session: ClientSession, **arguments: Any) -> CallToolResult:
    return await session.call_tool("ask_expert", arguments)


async def test_over_stdio_each_tool_answers_and_a_thread_survives_a_restart(paths: Paths) -> None:
    (paths.workdir / "invoices.py").write_text("def list_invoices():\n    return api.get('/v1')\n")
    async with stdio_session(paths) as session:
        listed = await session.list_tools()
        assert {tool.name for tool in listed.tools} == {
            "ask_expert",
            "check_stuck",
            "budget_status",
        }

        answered = await ask(
            session,
            question="Why does list_invoices return 404?",
            context="I called it three times; each time 404.",
            files=["invoices.py"],
        )
        assert not is_error(answered), text_of(answered)
        text = text_of(answered)
        # The expert read the question, the context and the file, whole.
        assert text.startswith(ANSWER_HEADER)
        assert "Why does list_invoices return 404?" in text
        assert "each time 404" in text
        assert "return api.get('/v1')" in text
        # The answer says what it cost and which thread to follow up in.
        data = structured(answered)
        thread = data["thread_id"]
        assert data["cost_usd"] == pytest.approx(COST_PER_CALL)
        assert f"cost: ${COST_PER_CALL:.4f}" in text
        assert f"thread_id: {thread}" in text

        stuck = await session.call_tool("check_stuck", {"transcript": LOOPING})
        assert not is_error(stuck), text_of(stuck)
        verdicts = structured(stuck)
        assert verdicts["stuck"] is True
        assert verdicts["verdicts"][0]["rule"] == "repeated_action_error"
        assert verdicts["first_stuck_index"] == 6
        assert text_of(stuck).startswith("Stuck (repeated_action_error at message 6)")

        status = await session.call_tool("budget_status", {"thread_id": thread})
        assert not is_error(status), text_of(status)
        per_thread = structured(status)["escalations_per_thread"]
        assert (per_thread["spent"], per_thread["reserved"], per_thread["remaining"]) == (1, 0, 2)

    async with stdio_session(paths) as session:  # a new process
        follow_up = await ask(session, question="And which one refunds them?", thread_id=thread)
        assert not is_error(follow_up), text_of(follow_up)
        assert (structured(follow_up)["thread_id"], structured(follow_up)["turn"]) == (thread, 2)
        briefing = text_of(follow_up)
        # The expert was briefed on the first question and its earlier answer.
        assert "Why does list_invoices return 404?" in briefing
        assert "each time 404" in briefing
        assert ANSWER_HEADER in briefing.split("\n", 1)[1]
        assert "And which one refunds them?" in briefing

        fresh = await ask(session, question="Unrelated question")
        assert structured(fresh)["turn"] == 1
        assert "list_invoices" not in text_of(fresh)

    records = paths.records_written()
    assert [(r.outcome, r.thread_id) for r in records] == [
        ("answered", thread),
        ("answered", thread),
        ("answered", structured(fresh)["thread_id"]),
    ]
    assert records[0].cost_usd == pytest.approx(COST_PER_CALL)


class HttpServer:
    """One server for the module, started as ``--http PORT`` runs it."""

    def __init__(self, paths: Paths, port: int) -> None:
        self.paths = paths
        self.port = port
        self.url = f"http://127.0.0.1:{port}/mcp"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[ClientSession]:
        async with (
            streamable_http_client(self.url) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """The server on a free loopback port, two escalations per thread; shared by the module."""
    paths = Paths(tmp_path_factory.mktemp("http"))
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own launcher
        [sys.executable, *paths.args("--http", str(port), "--max-escalations", "2")],
        env={**os.environ, **server_env()},
        cwd=paths.workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_listening(port, process)
        yield HttpServer(paths, port)
    finally:
        process.terminate()
        process.wait(timeout=20)


def wait_until_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"the HTTP server exited with {process.returncode}: {stderr}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
        except httpx.TransportError:
            time.sleep(0.2)
        else:
            return
    pytest.fail("the HTTP server did not start listening within 90 s")


async def test_streamable_http_on_loopback(http_server: HttpServer) -> None:
    before = len(http_server.paths.records_written())
    async with http_server.session() as session:
        answered = await ask(session, question="Over HTTP?")
        assert not is_error(answered), text_of(answered)
        assert "Over HTTP?" in text_of(answered)
        status = await session.call_tool("budget_status", {})
        assert structured(status)["limited"] is True
    written = http_server.paths.records_written(before)
    assert [(r.outcome, r.thread_id) for r in written] == [
        ("answered", structured(answered)["thread_id"])
    ]


def test_http_refuses_a_request_for_another_host(http_server: HttpServer) -> None:
    # DNS rebinding: a web page whose name resolves to 127.0.0.1 must not reach the server.
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x"}}
    request = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
    headers = {"Accept": "application/json, text/event-stream"}
    allowed = httpx.post(http_server.url, json=request, headers=headers, timeout=30)
    assert allowed.status_code == 200
    foreign = {**headers, "Host": "attacker.example", "Origin": "http://attacker.example"}
    refused = httpx.post(http_server.url, json=request, headers=foreign, timeout=30)
    assert refused.status_code in {403, 421}


async def test_bad_calls_get_clear_errors_and_the_server_keeps_serving(
    http_server: HttpServer,
) -> None:
    paths = http_server.paths
    before = len(paths.records_written())
    outside = paths.workdir.parent / "secrets.txt"
    outside.write_text("password=hunter2")
    (paths.workdir / "link.txt").symlink_to(outside)
    (paths.workdir / "big.log").write_text("x" * 5_000)
    async with http_server.session() as session:

        async def refused(tool: str, arguments: dict[str, Any], expected: str) -> None:
            result = await session.call_tool(tool, arguments)
            assert is_error(result), f"{tool}({arguments}) was not refused"
            assert expected in text_of(result)
            # ... and the next call still works.
            working = await session.call_tool("check_stuck", {"transcript": LOOPING[:1]})
            assert not is_error(working), text_of(working)

        # A malformed request: a required argument missing, a wrong type.
        await refused("ask_expert", {"context": "no question"}, "question")
        await refused("check_stuck", {"transcript": 42}, "transcript")
        # A transcript over the cap (the launcher allows 50 messages), or unreadable.
        await refused(
            "check_stuck",
            {"transcript": [{"role": "user", "content": "hi"}] * 51},
            "51 messages, over the cap of 50",
        )
        await refused(
            "check_stuck",
            {"transcript": [{"role": "tool", "tool_call_id": "x", "content": "?"}]},
            "message 0: tool message answers no open tool call",
        )
        # Paths escaping the working directory, by ../, by absolute path, by symlink.
        for escape in ("../secrets.txt", str(outside), "link.txt"):
            await refused(
                "ask_expert",
                {"question": "What is in it?", "files": [escape]},
                "outside the working directory",
            )
        await refused(
            "ask_expert",
            {"question": "Why?", "files": ["big.log"]},
            "over the cap of 2,000 bytes per file",
        )
        # The strong model fails: a readable error, nothing charged.
        await refused("ask_expert", {"question": f"Please {FAIL_MARK}"}, "the strong model is down")
        # The budget is spent: two answers in a thread, then a refusal.
        first = await ask(session, question="One?")
        thread = structured(first)["thread_id"]
        second = await ask(session, question="Two?", thread_id=thread)
        assert not is_error(second), text_of(second)
        await refused(
            "ask_expert", {"question": "Three?", "thread_id": thread}, "ask_expert could not answer"
        )
        # Another thread still gets answers.
        other = await ask(session, question="A new question")
        assert not is_error(other), text_of(other)

    outcomes = [record.outcome for record in paths.records_written(before)]
    assert outcomes == ["expert_failed", "answered", "answered", "over_budget", "answered"]
    assert "hunter2" not in paths.records.read_text()


def test_a_line_that_is_not_json_rpc_does_not_stop_the_server(paths: Paths) -> None:
    # Below the SDK client, which never sends one: raw lines on the server's stdin.
    process = subprocess.Popen(  # noqa: S603 - our own launcher
        [sys.executable, *paths.args()],
        env={**os.environ, **server_env()},
        cwd=paths.workdir,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None

    def send(line: str) -> None:
        assert process.stdin is not None
        process.stdin.write(line + "\n")
        process.stdin.flush()

    def call(number: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        params = {"name": name, "arguments": arguments}
        send(json.dumps({"jsonrpc": "2.0", "id": number, "method": "tools/call", "params": params}))
        assert process.stdout is not None
        # The SDK logs each unreadable line to the client as a notification (no id).
        while "id" not in (reply := json.loads(process.stdout.readline())):
            assert reply["method"] == "notifications/message"
        assert reply["id"] == number
        return dict(reply)

    try:
        client = {"name": "raw", "version": "0"}
        hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": client}
        send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}))
        assert "result" in json.loads(process.stdout.readline())
        send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        send("this line is not JSON")
        send('{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": ')
        unknown = call(3, "no_such_tool", {})
        assert "no_such_tool" in json.dumps(unknown)
        working = call(4, "check_stuck", {"transcript": LOOPING})
        assert working["result"]["isError"] is False
        assert working["result"]["structuredContent"]["stuck"] is True
    finally:
        process.stdin.close()
        process.wait(timeout=20)
