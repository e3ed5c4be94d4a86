"""What an escalation writes back: help messages with their records, pruning, the nudge.

The messages an escalation adds carry their ``EscalationRecord`` (and the
adapter's bookkeeping) in ``additional_kwargs`` under the keys below, so they
survive in plain ``MessagesState`` and in any checkpointer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, RemoveMessage, ToolMessage

from langchain_escalate.cost import PRUNED_USAGE_KEY, pruned_usage
from langchain_escalate.expert.briefing import (
    describe_call,
    is_help_message,
    truncate_middle,
    turn_start,
)
from langchain_escalate.records import ATTEMPTS_KEY, RECORD_KEY
from langchain_escalate.redact import redact

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from langchain_escalate.detector.verdict import Verdict
    from langchain_escalate.records import EscalationRecord

LADDER_KEY = "escalation_ladder"
"""``additional_kwargs`` key: ``{"fired": n, "node": name}``: firings answered in the turn."""

TAKEOVER_KEY = "escalation_takeover"
"""``additional_kwargs`` key on a takeover step: ``{"step": k, "steps": n}``.

The opening step (``step`` 0) also carries the ``"briefing"`` the later steps re-read.
"""

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
            parts.append(f"The last result was: {truncate_middle(result, 300)}")
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

    A person's messages and help messages stay, no ``AIMessage`` is parted
    from its ``ToolMessage``s, and if a message has no id nothing is pruned.
    """
    end = len(messages)
    start = max(end - loop_messages, turn_start(messages) + 1)
    while start < end and isinstance(messages[start], ToolMessage):
        start += 1  # a tool result whose call would stay behind
    last = messages[end - 1] if end > start else None
    if isinstance(last, AIMessage) and last.tool_calls:
        end -= 1  # an unanswered call stays, with nothing of it removed
    doomed = [
        m for m in messages[start:end] if not is_help_message(m) and not isinstance(m, HumanMessage)
    ]
    if not doomed or any(m.id is None for m in doomed):
        return [], ""
    call, times, result = _last_action(messages[start:end])
    summary = f"(Removed {len(doomed)} earlier messages of a loop"
    if call is not None:
        summary += f": {call} was called {times} time{'s' if times != 1 else ''}"
        if result:
            summary += f"; the last result was: {truncate_middle(result, 200)}"
    return [RemoveMessage(id=str(m.id)) for m in doomed], redact(summary + ".)")


def prune_with_usage(
    messages: Sequence[BaseMessage],
    loop_messages: int,
    dropped_usage: Sequence[Mapping[str, Any]] = (),
    *,
    prune: bool,
) -> tuple[list[RemoveMessage], str, dict[str, Any]]:
    """The removals, the summary, and the ``additional_kwargs`` carrying what they cost.

    Without ``prune`` nothing is removed, but the usage of replies the host
    dropped is carried all the same, so a run's summary still counts them.
    """
    removals, summary = (
        prune_loop(messages, loop_messages) if prune and loop_messages > 0 else ([], "")
    )
    removed = {removal.id for removal in removals}
    usage = {
        str(entry["id"]): dict(entry)
        for entry in [*pruned_usage(m for m in messages if m.id in removed), *dropped_usage]
    }
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

    ``fired`` is the firings answered in the turn after this one (``None``: not a
    firing, e.g. a later takeover step); the mark names ``record.node``.
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
    result = ""
    times = 0
    for message in reversed(messages[-_NUDGE_LOOKBACK:]):
        if isinstance(message, ToolMessage) and last is None and not result:
            result = " ".join(str(message.text).split())
        elif isinstance(message, AIMessage) and message.tool_calls:
            rendered = describe_call(message)
            if last is None:
                last = rendered
            times += rendered == last
    return last, times, result
