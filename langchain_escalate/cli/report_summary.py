"""The figures of ``langchain-escalate report``: counts, tokens and cost per group of records.

The tables count the records themselves: a record's tokens are the strong
model's (zero for a nudge, a person, a stop), its cost is the USD it recorded
(priced from its tokens at its model when it recorded none). The run summary
(weak cost, the all-strong counterfactual, what was saved) is
``cost.summarize_run`` over each thread's messages and records, added up over
threads; a records file keeps no messages, so there it has the strong side only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage

from langchain_escalate.cost import PriceBook, RunSummary, summarize_run
from langchain_escalate.records import RECORD_KEY

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from langchain_escalate.cli.report_sources import ThreadRun
    from langchain_escalate.records import EscalationRecord

__all__ = ["DIMENSIONS", "Group", "Report", "build_report"]

DIMENSIONS: dict[str, Callable[[EscalationRecord], str | None]] = {
    "node": lambda record: record.node,
    "rule": lambda record: record.rule,
    "rung": lambda record: record.action,
    "model": lambda record: record.model,
}
"""The tables of the report, each grouping the records by one field."""

NONE_LABEL = "-"
"""A record without the field (a nudge has no model)."""

_SUMMED_FIELDS = (
    "weak_tokens_in",
    "weak_tokens_out",
    "strong_tokens_in",
    "strong_tokens_out",
    "escalations",
)
_USD_FIELDS = ("weak_usd", "strong_usd", "total_usd", "all_strong_usd", "saved_usd")


@dataclass
class Group:
    """The records that share one value of a dimension.

    Attributes:
        name: The value (``NONE_LABEL`` when the records have none).
        records: How many records.
        paid: How many of them called the strong model.
        tokens_in: The strong model's prompt tokens.
        tokens_out: The strong model's completion tokens.
        cost_usd: What they cost; ``None`` when a price is unknown.
    """

    name: str
    records: int = 0
    paid: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = 0.0

    def add(self, record: EscalationRecord, cost: float | None) -> None:
        """Count one record and its cost."""
        self.records += 1
        self.paid += is_paid(record)
        self.tokens_in += record.tokens_in
        self.tokens_out += record.tokens_out
        self.cost_usd = None if cost is None or self.cost_usd is None else self.cost_usd + cost

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready dict."""
        return {
            "name": self.name,
            "records": self.records,
            "escalations": self.paid,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
        }


@dataclass
class Report:
    """Everything ``report`` prints.

    Attributes:
        source: The SOURCE, as it may be shown.
        tables: Per dimension (``DIMENSIONS``), its groups, largest cost first.
        total: Every record together.
        summary: The run summary over every thread; ``None`` without messages.
        threads: Per thread id, its summary (``None`` without messages) and records.
        timeline: ``(created_at, rule, rung, cost_usd)`` of each record, oldest first.
        notes: What a reader must know to read the figures (unknown prices...).
    """

    source: str
    tables: dict[str, list[Group]]
    total: Group
    summary: RunSummary | None
    threads: list[tuple[str | None, RunSummary | None, int]]
    timeline: list[tuple[str, str, str, float | None]]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the ``--format json`` object (documented in ``docs/report.md``)."""
        return {
            "source": self.source,
            "records": self.total.records,
            "escalations": self.total.paid,
            "cost_usd": self.total.cost_usd,
            **{f"by_{name}": [g.to_dict() for g in groups] for name, groups in self.tables.items()},
            "summary": None if self.summary is None else self.summary.to_dict(),
            "threads": [
                {
                    "thread_id": thread_id,
                    "records": records,
                    "summary": None if summary is None else summary.to_dict(),
                }
                for thread_id, summary, records in self.threads
            ],
            "notes": self.notes,
        }


def build_report(
    source: str,
    runs: list[ThreadRun],
    *,
    prices: PriceBook,
    strong_model: str | None = None,
) -> Report:
    """Count, price and summarize the records of ``runs``.

    Args:
        source: The SOURCE, as it may be shown.
        runs: The threads read from the source.
        prices: Prices for records that recorded no cost and for the summary.
        strong_model: The model the counterfactual prices every token at;
            by default the model most escalations used.

    Returns:
        The report.
    """
    records = [record for run in runs for record in run.records]
    costs = [_record_cost(record, prices) for record in records]
    tables = {name: _grouped(records, costs, key) for name, key in DIMENSIONS.items()}
    total = Group("total")
    for record, cost in zip(records, costs, strict=True):
        total.add(record, cost)
    strong = strong_model or most_common(r.model for r in records if is_paid(r))
    threads = [
        (run.thread_id, _thread_summary(run, prices, strong_model, strong), len(run.records))
        for run in runs
    ]
    summaries = [summary for _, summary, _ in threads if summary is not None]
    timeline = sorted(
        (
            (record.created_at, record.rule or NONE_LABEL, str(record.action), cost)
            for record, cost in zip(records, costs, strict=True)
        ),
        key=lambda entry: entry[0],
    )
    report = Report(
        source=source,
        tables=tables,
        total=total,
        summary=_added(summaries) if summaries else None,
        threads=threads,
        timeline=timeline,
    )
    report.notes = _notes(report, runs, strong)
    return report


def is_paid(record: EscalationRecord) -> bool:
    """Whether the record is a strong-model call (``EscalationRecord.strong_called``)."""
    return record.strong_called


def most_common(names: Iterable[str | None]) -> str | None:
    """Return the most frequent non-empty name (the first seen on a tie), or ``None``.

    Args:
        names: Names, ``None`` for none.

    Returns:
        The name.

    Example:
        >>> most_common(["a", None, "b", "b"])
        'b'
    """
    counts = Counter(name for name in names if name)
    return counts.most_common(1)[0][0] if counts else None


def _record_cost(record: EscalationRecord, prices: PriceBook) -> float | None:
    if record.cost_usd is not None:
        return record.cost_usd
    if record.tokens_in == record.tokens_out == 0:
        return 0.0  # a person's answer, a skipped rung: nothing was priced
    if record.model is None:
        return None
    return prices.cost_usd(record.model, record.tokens_in, record.tokens_out)


def _grouped(
    records: list[EscalationRecord],
    costs: list[float | None],
    key: Callable[[EscalationRecord], str | None],
) -> list[Group]:
    groups: dict[str, Group] = {}
    for record, cost in zip(records, costs, strict=True):
        name = key(record) or NONE_LABEL
        groups.setdefault(name, Group(name)).add(record, cost)
    # Unknown costs first (they need attention), then the most expensive.
    return sorted(
        groups.values(),
        key=lambda g: (g.cost_usd is not None, -(g.cost_usd or 0.0), -g.records, g.name),
    )


def _thread_summary(
    run: ThreadRun, prices: PriceBook, chosen: str | None, fallback: str | None
) -> RunSummary | None:
    """``summarize_run`` of a thread; the counterfactual at ``chosen``, else its strong model."""
    if run.messages is None:
        return None
    thread_strong = chosen or most_common(r.model for r in run.records if is_paid(r)) or fallback
    weak = most_common(
        message.response_metadata.get("model_name")
        for message in run.messages
        if isinstance(message, AIMessage)
        and RECORD_KEY not in message.additional_kwargs
        and message.response_metadata.get("model_name") != thread_strong
    )
    return summarize_run(
        run.messages,
        weak_model=weak or "unknown",
        strong_model=thread_strong or "unknown",
        prices=prices,
        records=run.records,
    )


def _added(summaries: list[RunSummary]) -> RunSummary:
    totals: dict[str, Any] = {
        name: sum(getattr(s, name) for s in summaries) for name in _SUMMED_FIELDS
    }
    for name in _USD_FIELDS:
        values = [getattr(s, name) for s in summaries]
        totals[name] = None if None in values else sum(values)
    return RunSummary(
        weak_model=_names(s.weak_model for s in summaries),
        strong_model=_names(s.strong_model for s in summaries),
        **totals,
    )


def _names(names: Iterable[str]) -> str:
    return ", ".join(dict.fromkeys(names))


def _notes(report: Report, runs: list[ThreadRun], strong: str | None) -> list[str]:
    notes: list[str] = []
    if report.summary is None:
        notes.append(
            "records only: a records file keeps the strong model's side of each escalation, "
            "not the weak model's calls, so the weak cost, the all-strong counterfactual and "
            "the saving are not known"
        )
    elif strong is None and not any(run.records for run in runs):
        notes.append("no escalation records: nothing to report beyond the weak model's usage")
    if report.total.cost_usd is None or (
        report.summary is not None and report.summary.saved_usd is None
    ):
        notes.append(
            "some prices are unknown (shown as ?): give them under `prices` in escalate.yaml "
            "and pass --config, or pick the strong model with --strong-model"
        )
    if report.summary is not None and "unknown" in report.summary.strong_model.split(", "):
        notes.append(
            "no escalation named the strong model: pass --strong-model to price the "
            "all-strong counterfactual"
        )
    return notes
