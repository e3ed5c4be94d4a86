"""Secrets in tool output stay put: briefing, records, stream events, logs, stop messages (#11)."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from node_scenarios import PRICES, agent_graph, strong_model

from langchain_escalate.cli import main
from langchain_escalate.node import create_escalating_node
from langchain_escalate.policy import EscalationPolicy
from langchain_escalate.testing import ScriptedChatModel, tool_call

if TYPE_CHECKING:
    import pytest

KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0"


@tool
def read_env(name: str) -> str:
    """Read a configuration value (and leak a key in its error)."""
    return f"Error: OPENAI_API_KEY={KEY} rejected by the billing service for {name}"


def test_a_key_in_a_tool_result_reaches_no_briefing_record_event_log_or_stop_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = [AIMessage("", tool_calls=[tool_call("read_env", {"name": "billing"})])]
    strong = strong_model(["Ask the operator for a new key."])
    node = create_escalating_node(
        ScriptedChatModel(script=calls[:1], repeat_last=True, model_name="weak-model"),
        strong,
        tools=[read_env],
        policy=EscalationPolicy(ladder=["escalate", "stop"]), prices=PRICES,
    )  # fmt: skip
    graph = agent_graph(node, tools=[read_env]).compile()
    events: list[Any] = []
    with caplog.at_level(logging.DEBUG, logger="langchain_escalate"):
        for _mode, chunk in graph.stream(
            {"messages": [HumanMessage("Check billing.")]}, stream_mode=["custom", "values"]
        ):
            events.append(chunk)
    final = events[-1]

    briefing = str(strong.calls[0][-1].content)
    assert "OPENAI_API_KEY" in briefing  # the context is there ...
    assert KEY not in briefing  # ... the key is not
    assert "[REDACTED:" in briefing
    assert KEY not in json.dumps(final["escalations"])
    assert KEY not in json.dumps([e for e in events if "escalation" in e and isinstance(e, dict)])
    assert KEY not in caplog.text
    help_and_stop = [m for m in final["messages"] if not isinstance(m, ToolMessage)]
    assert all(KEY not in str(m.content) for m in help_and_stop)
    assert "stopped working" in str(final["messages"][-1].content)


def test_scan_prints_no_key(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "read_env", "arguments": "{}"}}
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Check billing."}]
    for index in range(3):
        call = {**call, "id": f"c{index}"}
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"c{index}", "content": f"Error: bad key {KEY}"},
        ]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(messages))
    for output in ("text", "json"):
        assert main(["scan", str(path), "--briefing", "--format", output]) == 0
        printed = capsys.readouterr().out
        assert "repeated_action_error" in printed
        assert KEY not in printed
