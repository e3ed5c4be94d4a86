"""What an escalation leaves behind: its record, in graph state, on messages and in the stream."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any, Literal

# LangGraph resolves EscalationState's annotations at run time: AnyMessage must be importable here.
from langchain_core.messages import AnyMessage  # noqa: TC002
from langgraph.config import get_stream_writer
from langgraph.graph.message import add_messages
from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_core.messages import BaseMessage

logger = logging.getLogger("langchain_escalate")

RECORD_KEY = "escalation"  # additional_kwargs key: the message's own record
ATTEMPTS_KEY = "escalation_attempts"  # additional_kwargs key: rungs that could not run before
ESCALATIONS_KEY = "escalations"  # EscalationState key: every record
PROGRESS_KEY = "escalation_progress"  # EscalationState key: per-node detector and ladder state
STREAM_KEY = "escalation"  # custom stream event: {"escalation": record_dict}

Action = Literal["nudge", "escalate", "human", "stop"]
# nudged: a free hint; advised/took_over/answered: the strong model's guidance, step or answer;
# human: a person's guidance; stopped: the turn ended; expert_failed/over_budget: the ladder
# moved down; skipped: the rung could not run here (e.g. no checkpointer).
Outcome = Literal[
    "nudged", "advised", "took_over", "answered", "human", "stopped", "expert_failed",
    "over_budget", "skipped",
]  # fmt: skip
UNPAID_OUTCOMES: frozenset[str] = frozenset({"over_budget", "skipped"})  # strong model not called


class EscalationRecord(BaseModel):
    """One response to a stuck verdict, with what it cost.

    Stored as a JSON dict in a message's ``additional_kwargs[RECORD_KEY]`` and in
    ``EscalationState.escalations``: it survives any checkpointer and plain ``MessagesState``.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    node: str
    action: Action
    rule: str | None
    reason: str
    mode: str | None = None
    model: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None
    latency_s: float = 0.0
    outcome: Outcome
    thread_id: str | None = None
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready dict stored in state and message metadata."""
        return self.model_dump(mode="json")

    @property
    def strong_called(self) -> bool:
        """Whether the strong model was called (and so may have been paid) for this record."""
        return self.action == "escalate" and self.outcome not in UNPAID_OUTCOMES


def record_of(message: BaseMessage) -> EscalationRecord | None:
    """The ``EscalationRecord`` a message carries, if any."""
    raw = message.additional_kwargs.get(RECORD_KEY)
    return None if raw is None else EscalationRecord.model_validate(raw)


def records_of(message: BaseMessage) -> list[dict[str, Any]]:
    """Every record dict a message carries: the rungs that could not run, then its own."""
    kwargs = message.additional_kwargs
    found = [*kwargs.get(ATTEMPTS_KEY, []), kwargs.get(RECORD_KEY)]
    return [dict(record) for record in found if record is not None]


def emit_record(record: EscalationRecord) -> None:
    """Log a record and emit it as a custom stream event (``{"escalation": record_dict}``)."""
    cost = "unknown" if record.cost_usd is None else f"${record.cost_usd:.6f}"
    logger.info(
        "node %r: %s (%s) on %s: %s; cost %s",
        record.node, record.action, record.outcome, record.rule, record.reason, cost,
    )  # fmt: skip
    try:
        writer = get_stream_writer()
    except (RuntimeError, KeyError):  # not inside a graph run: nothing to stream to
        return
    writer({STREAM_KEY: record.to_dict()})


def add_records(
    left: Sequence[dict[str, Any]] | None, right: Sequence[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Reducer for ``escalations``: append, skipping ids already present (a replayed node)."""
    merged = list(left or [])
    seen = {record.get("id") for record in merged}
    for record in right or []:
        if record.get("id") not in seen:
            merged.append(record)
            seen.add(record.get("id"))
    return merged


def merge_progress(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer for ``escalation_progress``: each node replaces its own entry."""
    return {**(left or {}), **(right or {})}


class EscalationState(TypedDict):
    """State mixin: ``messages`` plus what escalation remembers; subclass it or include its keys.

    Without it the node still works on any state with ``messages``: records ride in message
    metadata and the detector is rebuilt from the messages.

    Attributes:
        messages: The conversation (``add_messages`` reducer).
        escalations: Every ``EscalationRecord`` as a dict, in order.
        escalation_progress: Per node, the detector's and the ladder's state (for restarts).
    """

    messages: Annotated[list[AnyMessage], add_messages]
    escalations: Annotated[list[dict[str, Any]], add_records]
    escalation_progress: Annotated[dict[str, Any], merge_progress]
