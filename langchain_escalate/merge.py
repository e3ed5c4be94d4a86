"""What an escalation writes back: help messages with their records, pruning, the nudge.

Records and bookkeeping ride in ``additional_kwargs``, so they survive any state and checkpointer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, RemoveMessage, ToolMessage

from langchain_escalate.cost import PRUNED_USAGE_KEY, pruned_usage
from langchain_escalate.expert import briefing
from langchain_escalate.records import ATTEMPTS_KEY, RECORD_KEY
from langchain_escalate.redact import redact

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from langchain_escalate.detector.verdict import Verdict
    from langchain_escalate.records import EscalationRecord

LADDER_KEY = "escalation_ladder"
"""``additional_kwargs`` key: ``{"fired": n, "node": name}``: firings answered in the turn."""

TAKEOVER_KEY = "escalation_takeover"
"""Key of a takeover step's mark, ``{"step": k, "steps": n}``; step 0 has the ``"briefing"``."""

_NUDGE_LOOKBACK = 60  # messages read to name a loop in a nudge


def nudge_text(verdict: Verdict, messages: Sequence[BaseMessage]) -> str:
    """The free hint: the repeated call and its last result, when there is a loop, and a plea.

    Example:
        >>> from langchain_escalate.detector.verdict import Verdict
        >>> nudge_text(Verdict(stuck=True, rule="monologue", reason="Same reply 3 times."), [])
        'You seem to be stuck: Same reply 3 times. Try something different ...'
    """
    parts = [f"You seem to be stuck: {verdict.reason}"]
    call, times, result = _last_action(messages)
    if call is not None:
        parts.append(f"You called {call} {times} time{'s' if times != 1 else ''}.")
        if result:
            parts.append(f"The last result was: {briefing.truncate_middle(result, 300)}")
        parts.append("Repeating it will not work.")
    parts.append(
        "Try something different (other arguments, another tool, or a different plan), "
        "or answer with what you know."
    )
    return redact(" ".join(parts))


def prune_loop(
    messages: Sequence[BaseMessage], loop_messages: int
) -> tuple[list[RemoveMessage], str]:
    """``RemoveMessage``s for the last ``loop_messages`` messages of a loop, and a summary line.

    A person's and help messages stay, no call loses its results, and an id-less message stops it.
    """
    end = len(messages)
    start = max(end - loop_messages, briefing.turn_start(messages) + 1)
    while start < end and isinstance(messages[start], ToolMessage):
        start += 1  # a tool result whose call would stay behind
    last = messages[end - 1] if end > start else None
    if isinstance(last, AIMessage) and last.tool_calls:
        end -= 1  # an unanswered call stays, with nothing of it removed
    span = messages[start:end]
    doomed = [m for m in span if not (briefing.is_help_message(m) or isinstance(m, HumanMessage))]
    if not doomed or any(m.id is None for m in doomed):
        return [], ""
    call, times, result = _last_action(span)
    summary = f"(Removed {len(doomed)} earlier messages of a loop"
    if call is not None:
        summary += f": {call} was called {times} time{'s' if times != 1 else ''}"
        if result:
            summary += f"; the last result was: {briefing.truncate_middle(result, 200)}"
    return [RemoveMessage(id=str(m.id)) for m in doomed], redact(summary + ".)")


def prune_with_usage(
    messages: Sequence[BaseMessage],
    loop_messages: int,
    dropped_usage: Sequence[Mapping[str, Any]] = (),
    *,
    prune: bool,
) -> tuple[list[RemoveMessage], str, dict[str, Any]]:
    """The removals, the summary, and the ``additional_kwargs`` carrying what they cost.

    Without ``prune`` nothing is removed, but the usage of replies the host dropped is carried.
    """
    pruning = prune and loop_messages > 0
    removals, summary = prune_loop(messages, loop_messages) if pruning else ([], "")
    removed = {removal.id for removal in removals}
    entries = [*pruned_usage(m for m in messages if m.id in removed), *dropped_usage]
    usage = {str(entry["id"]): dict(entry) for entry in entries}
    return removals, summary, {PRUNED_USAGE_KEY: list(usage.values())} if usage else {}


def trailing_span(
    messages: Sequence[BaseMessage], observed: int, *, seen: Callable[[int], bool]
) -> int:
    """How many trailing messages hold the last ``observed`` ones that ``seen`` accepts."""
    if observed <= 0:
        return 0
    count = 0
    for position in range(len(messages) - 1, -1, -1):
        count += seen(position)
        if count >= observed:
            return len(messages) - position
    return len(messages)


def stamp(
    message: BaseMessage,
    record: EscalationRecord,
    attempts: Sequence[EscalationRecord],
    *,
    fired: int | None,
) -> Any:
    """A copy of ``message`` carrying its record, the rungs that could not run, and the ladder mark.

    The mark is ``fired`` (answered in the turn after this one) for ``record.node``; ``None``: none.
    """
    extra: dict[str, Any] = {RECORD_KEY: record.to_dict()}
    if attempts:
        extra[ATTEMPTS_KEY] = [r.to_dict() for r in attempts]
    if fired is not None:
        extra[LADDER_KEY] = {"fired": fired, "node": record.node}
    return message.model_copy(update={"additional_kwargs": {**message.additional_kwargs, **extra}})


def _last_action(messages: Sequence[BaseMessage]) -> tuple[str | None, int, str]:
    """The last tool call, how often it was made lately, and its last result."""
    last: str | None = None
    result, times = "", 0
    for message in reversed(messages[-_NUDGE_LOOKBACK:]):
        if isinstance(message, ToolMessage) and last is None and not result:
            result = " ".join(str(message.text).split())
        elif isinstance(message, AIMessage) and message.tool_calls:
            rendered = briefing.describe_call(message)
            last = rendered if last is None else last
            times += rendered == last
    return last, times, result
