"""The escalating node on LangGraph Server: ``examples/server`` under the real local runtime.

A fixture starts ``langgraph dev`` (langgraph-cli's in-memory runtime from
``langgraph-api``) on a free loopback port, as a subprocess in its own process
group, on a copy of ``examples/server`` (the runtime writes its state next to
``langgraph.json``). No browser, no reload, no LangSmith, no analytics. The test
drives it with ``langgraph-sdk`` as a client application would: a thread
escalates, the custom events arrive in the stream, the ``human`` rung's
interrupt is resumed with ``Command(resume=...)``, and the records are in the
thread's state.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="langgraph-api (the local LangGraph Server) needs 3.11"
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "server"
GRAPH_ID = "escalating_agent"
TASK = "What was the total of our 2023 sales?"
GUIDANCE = "The report moved: call fetch_archive with year=2023."
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
# Variables that would make the server or the example reach the network.
_NETWORK_VARIABLES = (
    "LANGSMITH_API_KEY",
    "LANGCHAIN_API_KEY",
    "LANGGRAPH_CLOUD_LICENSE_KEY",
    "LANGSMITH_CONTROL_PLANE_API_KEY",
    "ESCALATE_WEAK_MODEL",
    "ESCALATE_STRONG_MODEL",
)

# A proxy configured on the machine must not see requests to the local server.
_LOOPBACK_UNPROXIED = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _NETWORK_VARIABLES}
    env.update(
        {
            # This checkout's package, whatever is installed.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",
            "LANGSMITH_TRACING": "false",
            "LANGCHAIN_TRACING_V2": "false",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            **_LOOPBACK_UNPROXIED,
        }
    )
    return env


def _wait_until_up(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"langgraph dev exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.25)
    pytest.fail(f"langgraph dev not up after {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # The whole group: the CLI and whatever workers the runtime started.
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running local LangGraph Server serving ``examples/server``; stopped at the end."""
    workdir = tmp_path_factory.mktemp("server") / "app"
    shutil.copytree(
        EXAMPLE, workdir, ignore=shutil.ignore_patterns(".langgraph_api", "__pycache__")
    )
    port = _free_port()
    log = workdir.parent / "server.log"
    command = [
        sys.executable,
        "-m",
        "langgraph_cli",
        "dev",
        "--config",
        "langgraph.json",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-browser",
        "--no-reload",
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
            command,
            cwd=workdir,
            env=_server_env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one
        )
    url = f"http://127.0.0.1:{port}"
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in _LOOPBACK_UNPROXIED.items():
                patch.setenv(name, value)  # for urllib and langgraph-sdk's httpx client
            _wait_until_up(process, url, log)
            yield url
    finally:
        _stop(process)


def _stream(client: Any, thread_id: str, **kwargs: Any) -> list[tuple[str, Any]]:
    parts = client.runs.stream(thread_id, GRAPH_ID, stream_mode=["custom", "updates"], **kwargs)
    return [(part.event, part.data) for part in parts]


def _custom_records(parts: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [data["escalation"] for event, data in parts if event == "custom"]


def test_a_thread_escalates_is_interrupted_and_resumed_over_the_sdk(server_url: str) -> None:
    from langgraph_sdk import get_sync_client  # noqa: PLC0415 - the server extra

    client = get_sync_client(url=server_url)
    thread_id = client.threads.create()["thread_id"]

    first = _stream(client, thread_id, input={"messages": [{"role": "user", "content": TASK}]})

    streamed = _custom_records(first)
    assert [(r["action"], r["outcome"]) for r in streamed] == [
        ("nudge", "nudged"),
        ("escalate", "advised"),
    ]
    assert streamed[1]["model"] == "scripted-strong"
    assert streamed[1]["cost_usd"] == pytest.approx((100 * 3.0 + 20 * 15.0) / 1e6)
    interrupts = [data["__interrupt__"] for event, data in first if "__interrupt__" in data]
    assert len(interrupts) == 1
    asked = interrupts[0][0]["value"]
    assert asked["node"] == "agent"
    assert asked["rule"] == "repeated_action_error"
    assert asked["briefing"].startswith(f"## Task\n{TASK}")

    paused = client.threads.get_state(thread_id)
    assert paused["next"] == ["agent"]
    assert [r["outcome"] for r in paused["values"]["escalations"]] == ["nudged", "advised"]

    resumed = _stream(client, thread_id, command={"resume": GUIDANCE})

    assert [r["outcome"] for r in _custom_records(resumed)] == ["human"]
    final = client.threads.get_state(thread_id)
    assert final["next"] == []
    assert final["values"]["messages"][-1]["content"].startswith("The 2023 total is 42 MEUR")
    records = final["values"]["escalations"]
    assert [r["outcome"] for r in records] == ["nudged", "advised", "human"]
    assert {r["thread_id"] for r in records} == {thread_id}
    assert [r["id"] for r in records[:2]] == [r["id"] for r in streamed]
    # The person's guidance reached the weak model as a message of the thread.
    assert any(GUIDANCE in str(m["content"]) for m in final["values"]["messages"])


def test_threads_escalate_independently(server_url: str) -> None:
    from langgraph_sdk import get_sync_client  # noqa: PLC0415 - the server extra

    client = get_sync_client(url=server_url)
    threads = [client.threads.create()["thread_id"] for _ in range(2)]
    for thread_id in threads:
        _stream(client, thread_id, input={"messages": [{"role": "user", "content": TASK}]})

    for thread_id in threads:
        state = client.threads.get_state(thread_id)
        records = state["values"]["escalations"]
        assert [r["outcome"] for r in records] == ["nudged", "advised"]
        assert {r["thread_id"] for r in records} == {thread_id}
        assert state["next"] == ["agent"]  # each waits for its own person
