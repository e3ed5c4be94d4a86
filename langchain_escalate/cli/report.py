"""``langchain-escalate report``: what escalation cost, where, and why.

Reads the escalation records a run left behind - in a LangGraph checkpointer
database (SQLite or PostgreSQL) or a records JSONL - and prints, per node,
rule, rung and model, how often each happened, the strong model's tokens and
what it cost, then the run summary: the weak model's cost, the all-strong
counterfactual and what was saved. ``docs/report.md`` says how each figure is
computed.

Registering the command imports nothing heavy (``scan`` must start fast):
the readers, LangGraph and rich are imported when ``report`` runs. litellm is
not imported at all when prices come from the records or ``--config``'s
``prices``; its price map is loaded (lazily, by ``cost.PriceBook``) only for a
model priced in neither.
"""

from __future__ import annotations

import io
import json
import sys
import warnings
from contextlib import redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from langchain_escalate.cli.report_summary import Group, Report
    from langchain_escalate.cost import PriceBook, RunSummary

EXIT_OK = 0
EXIT_BAD_INPUT = 2
PIPED_WIDTH = 120
"""Columns of the text output when stdout is not a terminal (rich assumes 80)."""
THREADS_SHOWN = 20
"""Threads the text output lists (the most expensive); JSON lists them all."""

_TABLE_TITLES = {
    "node": "By node",
    "rule": "By rule",
    "rung": "By rung (ladder action)",
    "model": "By model",
}


# argparse exposes the type of ``add_subparsers()`` only under this private name.
def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``report`` on the ``langchain-escalate`` command line.

    Args:
        subparsers: The command's subparsers.
    """
    parser = subparsers.add_parser(
        "report",
        help="what escalation cost, by node, rule, rung and model",
        description=(
            "Read escalation records from a LangGraph checkpointer database (a SQLite file or "
            "sqlite:///path.db, or postgresql://...) or a records JSONL, and print per node, "
            "rule, rung and model how often each happened, the strong model's tokens and cost, "
            "and the all-strong counterfactual with what was saved. Exit code 2 when SOURCE "
            "cannot be read or holds nothing."
        ),
    )
    parser.add_argument(
        "source", metavar="SOURCE", help="records .jsonl, SQLite file or URL, postgresql:// URL"
    )
    parser.add_argument("--thread", metavar="ID", help="only this thread")
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text tables for people (default), or one JSON object",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        type=Path,
        help="also draw cost over time and records by rule (needs the plot extra)",
    )
    parser.add_argument(
        "--config",
        metavar="escalate.yaml",
        help="take model prices from this config's `prices` (for models litellm does not know)",
    )
    parser.add_argument(
        "--strong-model",
        metavar="ID",
        help="price the all-strong counterfactual at this model "
        "(default: the model most escalations used)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Read SOURCE, print the report, and draw the plot when asked.

    Args:
        args: Parsed arguments: ``source``, ``thread``, ``format``, ``plot``,
            ``config``, ``strong_model``.

    Returns:
        ``EXIT_OK``, or ``EXIT_BAD_INPUT`` after a one-line error on stderr.
    """
    # Imported here, not at the top: see the module docstring.
    from langchain_escalate.cli.report_sources import (  # noqa: PLC0415
        ReportSourceError,
        load_threads,
        shown_source,
    )
    from langchain_escalate.cli.report_summary import build_report  # noqa: PLC0415
    from langchain_escalate.cost import UnknownPriceWarning  # noqa: PLC0415

    try:
        prices = _prices(args.config)
        runs = load_threads(args.source, thread=args.thread)
        # litellm prints to stdout when asked about a provider it does not
        # know; stdout is the report (JSON included), so that goes nowhere.
        with warnings.catch_warnings(record=True) as caught, redirect_stdout(io.StringIO()):
            warnings.simplefilter("always", UnknownPriceWarning)
            report = build_report(
                shown_source(args.source), runs, prices=prices, strong_model=args.strong_model
            )
        _note_unpriced(report, [w for w in caught if w.category is UnknownPriceWarning])
        if args.plot is not None:
            _plot(report, args.plot)
    except ReportSourceError as error:
        print(f"report: {error}", file=sys.stderr)  # noqa: T201 - the CLI's error line
        return EXIT_BAD_INPUT
    if args.format == "json":
        print(json.dumps(report.to_dict()))  # noqa: T201 - the CLI's output
    else:
        _print_text(report, plot=args.plot)
    return EXIT_OK


def _prices(config: str | None) -> PriceBook:
    from langchain_escalate.cli.report_sources import ReportSourceError  # noqa: PLC0415
    from langchain_escalate.cost import PriceBook  # noqa: PLC0415

    if config is None:
        return PriceBook()
    from langchain_escalate.config import ConfigError, load_config  # noqa: PLC0415 - only for --config

    try:
        return PriceBook(load_config(Path(config)).prices)
    except ConfigError as error:
        first = str(error).splitlines()[0]
        msg = f"--config {config}: {first}"
        raise ReportSourceError(msg) from error


def _note_unpriced(report: Report, caught: list[warnings.WarningMessage]) -> None:
    # UnknownPriceWarning names the model as its first quoted word.
    models = sorted({str(w.message).split("'")[1] for w in caught if "'" in str(w.message)})
    if not models:
        return
    report.notes = [note for note in report.notes if not note.startswith("some prices")]
    report.notes.append(
        f"no price for {', '.join(models)}: shown as ?; give it under `prices` in "
        "escalate.yaml and pass --config, or price the all-strong counterfactual at a "
        "known model with --strong-model"
    )


def _plot(report: Report, path: Path) -> None:
    from langchain_escalate.cli.report_plot import (  # noqa: PLC0415 - matplotlib only for --plot
        PlotUnavailableError,
        write_plot,
    )
    from langchain_escalate.cli.report_sources import ReportSourceError  # noqa: PLC0415

    try:
        write_plot(report, path)
    except (PlotUnavailableError, OSError) as error:
        msg = f"--plot {path}: {error}" if isinstance(error, OSError) else str(error)
        raise ReportSourceError(msg) from error


def _print_text(report: Report, *, plot: Path | None) -> None:
    from rich.console import Console  # noqa: PLC0415 - rich only for the text output

    console = Console(highlight=False)
    if not console.is_terminal:
        # Piped or captured: wide enough that rule and model names are never cut.
        console.width = max(console.width, PIPED_WIDTH)
    console.print(
        f"[bold]{report.source}[/bold]: {_counted(report.total.records, 'record')} in "
        f"{_counted(len(report.threads), 'thread')}, "
        f"{_counted(report.total.paid, 'escalation')} to a strong model, "
        f"costing {_usd(report.total.cost_usd)}",
        soft_wrap=True,  # one line, however long the path: easy to grep
    )
    for name, groups in report.tables.items():
        console.print(_group_table(_TABLE_TITLES[name], groups, report.total))
    if report.summary is not None:
        console.print(_summary_table(report.summary))
        console.print(_threads_table(report))
    for note in report.notes:
        console.print(f"note: {note}", soft_wrap=True)
    if plot is not None:
        console.print(f"plot written to {plot}", soft_wrap=True)


def _group_table(title: str, groups: list[Group], total: Group) -> object:
    from rich.table import Table  # noqa: PLC0415 - rich only for the text output

    table = Table(title=title, title_justify="left", show_footer=True)
    table.add_column(title.split()[1], footer="total")
    for column, value in (
        ("records", total.records),
        ("escalations", total.paid),
        ("tokens in", total.tokens_in),
        ("tokens out", total.tokens_out),
    ):
        table.add_column(column, justify="right", footer=f"{value:,}")
    table.add_column("cost", justify="right", footer=_usd(total.cost_usd))
    for group in groups:
        table.add_row(
            group.name,
            f"{group.records:,}",
            f"{group.paid:,}",
            f"{group.tokens_in:,}",
            f"{group.tokens_out:,}",
            _usd(group.cost_usd),
        )
    return table


def _summary_table(summary: RunSummary) -> object:
    from rich.table import Table  # noqa: PLC0415 - rich only for the text output

    table = Table(title="Run summary (from the threads' messages)", title_justify="left")
    for column in ("", "model", "tokens in", "tokens out", "cost"):
        table.add_column(column, justify="left" if column in {"", "model"} else "right")
    weak_tokens = (f"{summary.weak_tokens_in:,}", f"{summary.weak_tokens_out:,}")
    strong_tokens = (f"{summary.strong_tokens_in:,}", f"{summary.strong_tokens_out:,}")
    table.add_row("weak", summary.weak_model, *weak_tokens, _usd(summary.weak_usd))
    table.add_row("strong", summary.strong_model, *strong_tokens, _usd(summary.strong_usd))
    table.add_row("total", "", "", "", _usd(summary.total_usd), style="bold")
    table.add_row("all on strong", summary.strong_model, "", "", _usd(summary.all_strong_usd))
    table.add_row("saved", "", "", "", _usd(summary.saved_usd), style="bold")
    return table


def _threads_table(report: Report) -> object:
    from rich.table import Table  # noqa: PLC0415 - rich only for the text output

    rows = sorted(
        ((thread, summary, records) for thread, summary, records in report.threads if summary),
        key=lambda row: -(row[1].total_usd or 0.0) if row[1] else 0.0,
    )
    title = "Threads, most expensive first"
    if len(rows) > THREADS_SHOWN:
        title += f" ({THREADS_SHOWN} of {len(rows)}; --format json lists all)"
    table = Table(title=title, title_justify="left")
    for column in ("thread", "records", "escalations", "total", "all on strong", "saved"):
        table.add_column(column, justify="left" if column == "thread" else "right")
    for thread, summary, records in rows[:THREADS_SHOWN]:
        if summary is None:
            continue
        table.add_row(
            thread or "-",
            f"{records:,}",
            f"{summary.escalations:,}",
            _usd(summary.total_usd),
            _usd(summary.all_strong_usd),
            _usd(summary.saved_usd),
        )
    return table


def _counted(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'s' * (count != 1)}"


def _usd(value: float | None) -> str:
    return "?" if value is None else f"${value:,.6f}"
