"""``langchain-escalate demo``: watch a cheap model get stuck, get help, and see what it cost.

The agent and its run live in ``demo_agent``; this module registers the
subcommand and prints the run for people (``--format text``) or as one JSON
object (``--format json``). The agent's modules (LangGraph, and litellm for the
prices) are imported only when ``demo`` runs, so the other subcommands start fast.
"""

from __future__ import annotations

import json
import sys
import textwrap
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from langchain_escalate.cli.demo_agent import DemoRun, Step
    from langchain_escalate.cost import RunSummary

WIDTH = 100
"""Width the text report is wrapped to."""


# argparse exposes the type of ``add_subparsers()`` only under this private name.
def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``demo`` on the ``langchain-escalate`` command line.

    Args:
        subparsers: The command's subparsers.
    """
    parser = subparsers.add_parser(
        "demo",
        help="run an agent that gets stuck and escalates; show what it cost",
        description=(
            "Run a real LangGraph agent (escalating node, ToolNode, checkpointer) on an airline "
            "refund task: the weak model gets stuck, the detector fires, the ladder nudges and "
            "then escalates to the strong model, and the task completes. Prints what happened, "
            "the escalation records and the cost summary. Offline, no API key: the models are "
            "scripted stand-ins named after real models (deepseek/deepseek-chat, "
            "anthropic/claude-sonnet-4-6); the prices are litellm's real price map."
        ),
    )
    parser.add_argument(
        "--mode",
        choices=("advise", "takeover"),
        default="advise",
        help=(
            "advise (default): the strong model advises and the weak model acts; takeover: the "
            "strong model takes the next steps itself, with the same tools"
        ),
    )
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text for people (default), or json: the steps, the records and the cost summary",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print it.

    Args:
        args: Parsed arguments: ``mode``, ``format``.

    Returns:
        The exit code: 0.
    """
    # Imported here: LangGraph and litellm are needed only when the demo runs.
    from langchain_escalate.cli.demo_agent import run_demo  # noqa: PLC0415

    result = run_demo(args.mode)
    if args.format == "json":
        output = json.dumps(result.to_dict(), ensure_ascii=False, indent=2)
    else:
        output = render_text(result)
    sys.stdout.write(output + "\n")
    return 0


def render_text(result: DemoRun) -> str:
    """Return the demo's report for people: the story, the records, the cost.

    Args:
        result: What ``run_demo`` collected.

    Returns:
        Lines of text, without a trailing newline.
    """
    ladder = " -> ".join(
        f"{rung} ({result.mode})" if rung == "escalate" else rung for rung in result.ladder
    )
    lines = [
        "langchain-escalate demo: an airline refund agent, built with LangGraph",
        "  graph: START -> agent (escalating node) <-> tools (ToolNode); InMemorySaver",
        f"  ladder: {ladder}",
        "",
        "The models are scripted stand-ins (offline, no API key), named after real models.",
        "The prices are real: litellm's bundled price map, USD per 1M tokens in / out:",
        f"  weak    {result.weak_model:<28} {_price(result, result.weak_model)}",
        f"  strong  {result.strong_model:<28} {_price(result, result.strong_model)}",
        (
            "Tokens are estimated from the text each model read and wrote "
            f"(~{result.chars_per_token} characters a token)."
        ),
        "",
        "Customer:",
        *textwrap.wrap(result.task, WIDTH, initial_indent="  ", subsequent_indent="  "),
        "",
        "What happened",
    ]
    for number, step in enumerate(result.steps, start=1):
        lines.extend(_wrap_step(number, step))
    lines += [
        "",
        "Escalation records (state['escalations'])",
        f"  {'action':<9} {'outcome':<10} {'rule':<22} {'model':<28} {'tokens':<18} cost",
    ]
    lines.extend(f"  {_record_line(record)}" for record in result.records)
    lines += ["", *_cost_lines(result.summary, result)]
    return "\n".join(lines)


def _wrap_step(number: int, step: Step) -> list[str]:
    first = f"  {number:>2}  {step.actor:<8} "
    indent = " " * len(first)
    lines: list[str] = []
    for position, paragraph in enumerate(step.text.splitlines() or [""]):
        lead = first if position == 0 else indent
        wrapped = textwrap.wrap(
            paragraph,
            WIDTH,
            initial_indent=lead,
            subsequent_indent=indent,
            break_on_hyphens=False,
        )
        lines.extend(wrapped or [lead.rstrip()])
    return lines


def _record_line(record: dict[str, Any]) -> str:
    model = record.get("model") or "-"
    tokens = f"{record['tokens_in']} in / {record['tokens_out']} out"
    return (
        f"{record['action']:<9} {record['outcome']:<10} {record['rule'] or '-':<22} "
        f"{model:<28} {tokens:<18} {_usd(record.get('cost_usd'))}"
    )


def _cost_lines(summary: RunSummary, result: DemoRun) -> list[str]:
    rows = [
        (
            _side(
                "weak",
                summary.weak_model,
                result.weak_calls,
                summary.weak_tokens_in,
                summary.weak_tokens_out,
            ),
            summary.weak_usd,
        ),
        (
            _side(
                "strong",
                summary.strong_model,
                result.strong_calls,
                summary.strong_tokens_in,
                summary.strong_tokens_out,
            ),
            summary.strong_usd,
        ),
        ("total   weak + strong", summary.total_usd),
        (f"all on {summary.strong_model} (the same tokens)", summary.all_strong_usd),
        ("saved   by escalating only when stuck", summary.saved_usd),
    ]
    width = max(len(label) for label, _ in rows)
    lines = ["Cost (summarize_run over every reply of the run; litellm prices)"]
    lines.extend(f"  {label:<{width}}  {_usd(usd):>10}" for label, usd in rows)
    if summary.saved_usd is not None and summary.all_strong_usd:
        lines[-1] += f"  ({summary.saved_usd / summary.all_strong_usd:.0%} less)"
    return lines


def _side(side: str, model: str, calls: int, tokens_in: int, tokens_out: int) -> str:
    plural = "" if calls == 1 else "s"
    tokens = f"{tokens_in:>6,} in / {tokens_out:>5,} out"
    return f"{side:<7} {model:<28} {calls:>2} call{plural:<1}  {tokens}"


def _price(result: DemoRun, model: str) -> str:
    per_input, per_output = result.prices[model]
    return f"{_usd(per_input, digits=2)} / {_usd(per_output, digits=2)}"


def _usd(value: float | None, *, digits: int = 6) -> str:
    return "unknown" if value is None else f"${value:.{digits}f}"
