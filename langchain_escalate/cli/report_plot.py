"""``report --plot FILE.png``: escalation cost over time and escalations by rule.

matplotlib is the optional ``plot`` extra; it is imported only here, only when
a plot is asked for, and drawn with the non-interactive Agg backend (no display).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from itertools import accumulate
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from matplotlib.axes import Axes

    from langchain_escalate.cli.report_summary import Report

__all__ = ["PlotUnavailableError", "write_plot"]

_FIGURE_SIZE = (11.0, 4.5)
_DPI = 100


class PlotUnavailableError(Exception):
    """matplotlib is not installed; the message says how to install it."""


def write_plot(report: Report, path: Path) -> None:
    """Draw the report's two charts side by side into a PNG file.

    Left: the cumulative cost of the records over time (a record with an
    unknown cost adds nothing and is counted in the title). Right: records by
    rule, stacked by rung.

    Args:
        report: The report.
        path: The PNG to write (overwritten).

    Raises:
        PlotUnavailableError: matplotlib is not installed.
        OSError: The file cannot be written.
    """
    try:
        import matplotlib as mpl  # noqa: PLC0415 - the optional `plot` extra

        mpl.use("Agg")
        from matplotlib import dates as mdates  # noqa: PLC0415 - after choosing the backend
        from matplotlib import pyplot as plt  # noqa: PLC0415 - after choosing the backend
    except ImportError as error:
        msg = "--plot needs matplotlib: pip install 'langchain-escalate[plot]'"
        raise PlotUnavailableError(msg) from error

    figure, (over_time, by_rule) = plt.subplots(1, 2, figsize=_FIGURE_SIZE, dpi=_DPI)
    try:
        _cost_over_time(over_time, report)
        # matplotlib's date helpers are untyped.
        locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
        over_time.xaxis.set_major_locator(locator)
        formatter = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
        over_time.xaxis.set_major_formatter(formatter)
        _records_by_rule(by_rule, report)
        figure.suptitle(f"Escalations in {report.source}", fontsize=10)
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)


def _cost_over_time(axes: Axes, report: Report) -> None:
    # matplotlib converts datetimes itself; its stubs accept only arrays.
    times: Any = [_parse_time(created) for created, _, _, _ in report.timeline]
    costs = [cost or 0.0 for _, _, _, cost in report.timeline]
    unknown = sum(1 for _, _, _, cost in report.timeline if cost is None)
    title = "Cumulative escalation cost (USD)"
    if unknown:
        title += f"\n{unknown} record(s) of unknown cost not included"
    axes.step(times, list(accumulate(costs)), where="post", marker="o", markersize=3)
    axes.set_title(title, fontsize=9)
    axes.set_ylabel("USD")
    axes.tick_params(axis="x", labelsize=7)


def _records_by_rule(axes: Axes, report: Report) -> None:
    counts = Counter((rule, rung) for _, rule, rung, _ in report.timeline)
    rules = sorted({rule for rule, _ in counts})
    bottom = [0] * len(rules)
    for rung in ("nudge", "escalate", "human", "stop"):
        heights = [counts[(rule, rung)] for rule in rules]
        if any(heights):
            axes.bar(rules, heights, bottom=bottom, label=rung)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_title("Records by rule and rung", fontsize=9)
    axes.tick_params(axis="x", labelrotation=20, labelsize=7)
    if rules:
        axes.legend(fontsize=7)


def _parse_time(created_at: str) -> datetime:
    # Python 3.10's fromisoformat does not read a "Z" suffix; records written
    # by other tools may use it.
    parsed = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
