"""``langchain-escalate demo``: the story, the records and the bill a user reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from langchain_escalate.cli import main
from langchain_escalate.cost import PriceBook

ROOT = Path(__file__).resolve().parent.parent
WEAK = "deepseek/deepseek-chat"
STRONG = "anthropic/claude-sonnet-4-6"


def run_demo_cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["demo", *args]) == 0
    return capsys.readouterr().out


def run_demo_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    output: dict[str, Any] = json.loads(run_demo_cli(capsys, "--format", "json", *args))
    return output


def test_help_lists_demo(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "demo" in capsys.readouterr().out


def test_text_tells_what_happened_and_says_the_models_are_scripted(capsys):
    out = run_demo_cli(capsys)

    assert "scripted stand-ins" in out
    assert "prices are real" in out
    assert "stuck: repeated_action_error" in out
    assert "stuck: consecutive_failures" in out
    assert "rung 'nudge'" in out
    assert "rung 'escalate'" in out
    assert f"{STRONG} read the briefing and advised" in out
    assert "Refund RF-20561 of EUR 412.50 issued" in out  # the task completed through the tool
    for line in ("weak    " + WEAK, "strong  " + STRONG, "all on " + STRONG, "saved"):
        assert line in out


def test_the_ladder_nudges_first_then_escalates_with_a_priced_record(capsys):
    output = run_demo_json(capsys)

    nudge, escalation = output["records"]
    assert (nudge["action"], nudge["outcome"], nudge["rule"]) == (
        "nudge",
        "nudged",
        "repeated_action_error",
    )
    assert nudge["cost_usd"] == 0.0
    assert (escalation["action"], escalation["outcome"], escalation["rule"]) == (
        "escalate",
        "advised",
        "consecutive_failures",
    )
    assert escalation["model"] == STRONG
    assert escalation["tokens_in"] > 0
    assert escalation["cost_usd"] is not None
    # The record's cost is the strong model's tokens at litellm's price.
    expected = PriceBook().cost_usd(STRONG, escalation["tokens_in"], escalation["tokens_out"])
    assert escalation["cost_usd"] == pytest.approx(expected)
    assert output["models"]["scripted"] is True
    assert "RF-20561" in output["answer"]


def test_summary_numbers_are_consistent(capsys):
    summary = run_demo_json(capsys)["summary"]

    assert summary["weak_model"] == WEAK
    assert summary["strong_model"] == STRONG
    assert summary["escalations"] == 1
    assert summary["weak_usd"] > 0
    assert summary["total_usd"] == pytest.approx(summary["weak_usd"] + summary["strong_usd"])
    assert summary["saved_usd"] == pytest.approx(
        summary["all_strong_usd"] - (summary["weak_usd"] + summary["strong_usd"])
    )
    assert summary["saved_usd"] > 0  # escalating only when stuck is cheaper here
    # The counterfactual prices the weak model's tokens at the strong model's price.
    prices = PriceBook()
    weak_at_strong = prices.cost_usd(STRONG, summary["weak_tokens_in"], summary["weak_tokens_out"])
    assert weak_at_strong is not None
    assert summary["all_strong_usd"] == pytest.approx(weak_at_strong + summary["strong_usd"])
    weak_cost = prices.cost_usd(WEAK, summary["weak_tokens_in"], summary["weak_tokens_out"])
    assert summary["weak_usd"] == pytest.approx(weak_cost)


def test_every_weak_call_is_told_even_those_pruned_from_state(capsys):
    output = run_demo_json(capsys)

    steps = output["steps"]
    weak_calls = [step for step in steps if step["actor"] == "weak"]
    assert len(weak_calls) == 10  # 6 stuck lookups, 3 steps after the advice, the answer
    pruned = next(n for n, step in enumerate(steps) if "pruned the loop" in step["text"])
    advice = next(n for n, step in enumerate(steps) if step["actor"] == "strong")
    assert pruned < advice  # the loop is pruned when the help arrives


def test_takeover_mode_lets_the_strong_model_act_with_the_tools(capsys):
    output = run_demo_json(capsys, "--mode", "takeover")

    escalations = [r for r in output["records"] if r["action"] == "escalate"]
    assert [r["outcome"] for r in escalations] == ["took_over"] * 3  # this step + 2 takeover steps
    strong_steps = [step["text"] for step in output["steps"] if step["actor"] == "strong"]
    assert any("search_bookings" in text for text in strong_steps)
    assert any("issue_refund" in text for text in strong_steps)
    tool_results = [step["text"] for step in output["steps"] if step["actor"] == "tool"]
    assert any("Refund RF-20561" in text for text in tool_results)
    summary = output["summary"]
    assert summary["escalations"] == len(escalations)
    assert summary["strong_usd"] == pytest.approx(sum(r["cost_usd"] for r in escalations))
    assert summary["saved_usd"] == pytest.approx(
        summary["all_strong_usd"] - (summary["weak_usd"] + summary["strong_usd"])
    )


def test_the_command_line_loads_the_demo_agent_only_when_demo_runs():
    # `scan` must start fast: registering `demo` must not import LangGraph or litellm.
    code = (
        "import sys; import langchain_escalate.cli as cli; cli.build_parser(); "
        "print(sorted(m for m in ('langgraph.graph', 'litellm') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.strip() == "[]"


# -- real models: the flags, and what happens without keys or the local model --


def run_demo_failing(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["demo", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.parametrize(
    ("flag", "model", "variable"),
    [
        ("--weak", "deepseek/deepseek-chat", "DEEPSEEK_API_KEY"),
        ("--strong", "anthropic:claude-sonnet-4-6", "ANTHROPIC_API_KEY"),
        ("--strong", "openai/gpt-4o-mini", "OPENAI_API_KEY"),
    ],
)
def test_a_real_model_without_its_key_is_one_line_naming_the_variable(
    capsys, monkeypatch, flag, model, variable
):
    monkeypatch.delenv(variable, raising=False)

    line = run_demo_failing(capsys, flag, model)

    assert (
        line
        == f"langchain-escalate demo: {flag} {model} needs {variable} in the environment (not set)"
    )


def test_local_and_weak_together_is_an_error(capsys):
    line = run_demo_failing(capsys, "--local", "--weak", "deepseek/deepseek-chat")
    assert "--local and --weak" in line


def test_local_without_the_live_extra_says_what_to_install(capsys, monkeypatch):
    from langchain_escalate.cli import local_model  # noqa: PLC0415

    started: list[bool] = []
    monkeypatch.setattr(local_model, "missing_packages", lambda: ["xllamacpp"])
    monkeypatch.setattr(local_model, "ensure_running", lambda: started.append(True))

    line = run_demo_failing(capsys, "--local")

    assert "pip install 'langchain-escalate[live]'" in line
    assert "xllamacpp" in line
    assert started == []  # no server start attempted


def test_a_missing_key_is_reported_before_the_local_model_starts(capsys, monkeypatch):
    from langchain_escalate.cli import local_model  # noqa: PLC0415

    started: list[bool] = []
    monkeypatch.setattr(local_model, "ensure_running", lambda: started.append(True))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)

    line = run_demo_failing(capsys, "--local", "--strong", "anthropic/claude-sonnet-4-6")

    assert "ANTHROPIC_API_KEY" in line
    assert started == []


def test_version_prints_the_installed_version(capsys):
    from importlib.metadata import version  # noqa: PLC0415

    with pytest.raises(SystemExit) as exited:
        main(["--version"])

    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"langchain-escalate {version('langchain-escalate')}"
