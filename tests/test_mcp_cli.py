"""``langchain-escalate mcp``: the command a client configures, started as a real subprocess.

Its refusals to start (exit code 2, nothing on stdout) are checked in process:
they happen before any server runs.

The strong model named in the config is never called here (no network): the
tests use what needs no model (the detector with the node's thresholds, the
budget from the file, refusals made before any call) and the command's errors.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from langchain_escalate.cli import main
from tests.test_mcp_server import LOOPING, is_error, server_env, structured, text_of

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.timeout(120)

CONFIG = """\
models:
  strong: openai/never-called-in-tests
nodes:
  helper:
    detector: {{repeated_action_error: 2}}
    budget: {{max_usd_total: 1.5, ledger: "sqlite:///{ledger}"}}
"""


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "langchain_escalate.cli", "mcp", *args]


async def test_serves_the_node_from_the_config_and_records_next_to_it(tmp_path: Path) -> None:
    config = tmp_path / "escalate.yaml"
    config.write_text(CONFIG.format(ledger=tmp_path / "ledger.db"))
    project = tmp_path / "project"
    project.mkdir()
    executable, *args = command("--config", str(config), "--node", "helper")
    params = StdioServerParameters(command=executable, args=args, env=server_env(), cwd=project)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        stuck = structured(await session.call_tool("check_stuck", {"transcript": LOOPING}))
        # The node's threshold (2 failing repeats), not the default (3).
        assert stuck["first_stuck_index"] == 4
        status = structured(await session.call_tool("budget_status", {}))
        assert status["usd_total"]["limit"] == 1.5
        assert status["usd_total"]["spent"] == 0
        escaped = await session.call_tool(
            "ask_expert", {"question": "What is in it?", "files": ["../escalate.yaml"]}
        )
        assert is_error(escaped)
        assert "outside the working directory" in text_of(escaped)
    # The thread store is created next to the config by default.
    assert (tmp_path / "escalate-threads.db").exists()


def test_a_bad_config_is_one_line_on_stderr_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In process: the command fails before serving, so no server process is needed.
    config = tmp_path / "escalate.yaml"
    config.write_text("nodes:\n  helper: {detector: {monologue: 2}}\n")
    assert main(["mcp", "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # stdout belongs to the protocol
    assert "models.strong" in err
    assert "needs a strong model" in err


def test_without_a_config_it_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["mcp"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"no --config given and no escalate.yaml in {tmp_path}" in err
