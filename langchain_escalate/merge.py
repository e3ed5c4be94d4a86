"""What an escalation writes back: help messages with their records, pruning, events.

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
"""``additional_kwargs`` key: ``{"fired": n, "node": name}``, firings the node answered in the turn."""

TAKEOVER_KEY = "escalation_takeover"
"""``additional_kwargs`` key on a takeover step: ``{"step": k, "steps": n}``.

The opening step (``step`` 0) also carries the ``"briefing"`` the later steps re-read.
"""

_NUDGE_LOOKBACK = 60  # messages read to name a loop in a nudge


def nudge_text(verdict: Verdict, messages: Sequence[BaseMessage]) -> str:
    """Write the free hint for a stuck weak model.

    Names the repeated call and the last error when the conversation ends in a
    tool loop ("you called X 3 times; the last result was Y"), and asks for a
    different approach.

    Args:
        verdict: The detector's verdict.
        messages: The conversation.

    Returns:
        The hint.

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
    """Remove the last ``loop_messages`` messages of the loop, keeping a one-line summary.

    Never removes a person's message or a message carrying an escalation
    record, and never splits an ``AIMessage`` with tool calls from its
    ``ToolMessage`` answers. Messages without ids cannot be removed; then
    nothing is pruned.

    Args:
        messages: The conversation in graph state.
        loop_messages: How many trailing messages form the loop.

    Returns:
        The ``RemoveMessage`` list and the summary line (both empty when
        nothing was pruned).
    """
    end = len(messages)
    start = max(end - loop_messages, turn_start(messages) + 1)
    # Start at an action, never at a tool result whose call would stay behind.
    while start < end and isinstance(messages[start], ToolMessage):
        start += 1
    # An unanswered call at the end stays, with nothing of it removed.
    last = messages[end - 1] if end > start else None
    if isinstance(last, AIMessage) and last.tool_calls:
        end -= 1
    doomed = [
        m
        for m in messages[start:end]
        if not is_help_message(m) and not (isinstance(m, HumanMessage))
    ]
    if not doomed or any(m.id is None for m in doomed):
        return [], ""
    call, times, result = _last_action(messages[start:end])
    summary = f"(Removed {len(doomed)} earlier messages of a loop"
    if call is not None:
        summary += f": {call} was called {times} time{'s' if times != 1 else ''}"
        if result:
            summary += f"; the last result was: {truncate_middle(result, 200)}"
    summary += ".)"
    return [RemoveMessage(id=str(m.id)) for m in doomed], redact(summary)


def prune_with_usage(
    messages: Sequence[BaseMessage],
    loop_messages: int,
    dropped_usage: Sequence[Mapping[str, Any]] = (),
    *,
    prune: bool,
) -> tuple[list[RemoveMessage], str, dict[str, Any]]:
    """The removals, the summary line, and the ``additional_kwargs`` of the first message added.

    With ``prune`` false nothing is removed (a nudge, a stop), but the usage
    of the replies the host dropped is carried all the same: what removed and
    dropped replies cost stays in state, so a run summary of it counts them.

    Args:
        messages: The conversation.
        loop_messages: Trailing messages of the loop.
        dropped_usage: ``pruned_usage`` entries of replies the host dropped.
        prune: Whether to remove the loop.

    Returns:
        ``(removals, summary, additional_kwargs)``.
    """
    removals: list[RemoveMessage] = []
    summary = ""
    if prune and loop_messages > 0:
        removals, summary = prune_loop(messages, loop_messages)
    removed = {removal.id for removal in removals}
    usage = {
        str(entry["id"]): dict(entry)
        for entry in [*pruned_usage(m for m in messages if m.id in removed), *dropped_usage]
    }
    return removals, summary, {PRUNED_USAGE_KEY: list(usage.values())} if usage else {}


def trailing_span(
    messages: Sequence[BaseMessage], observed: int, *, seen: Callable[[int], bool]
) -> int:
    """How many trailing messages hold the last ``observed`` messages the detector saw.

    Adapters feed the detector only some messages (not the help an escalation
    added), so a loop of ``observed`` detector messages may span more messages
    in state.

    Args:
        messages: The conversation in graph state.
        observed: Messages of the loop in the detector's stream.
        seen: Whether the message at a position was fed to the detector.

    Returns:
        The number of trailing messages to count back (0 when ``observed`` is 0).
    """
    if observed <= 0:
        return 0
    count = 0
    for position in range(len(messages) - 1, -1, -1):
        if seen(position):
            count += 1
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
    """Return a copy of ``message`` carrying ``record`` (and the rungs that could not run).

    Args:
        message: A help message, a takeover step or a stop message.
        record: Its record, under ``additional_kwargs[RECORD_KEY]``.
        attempts: Records of rungs that could not run first, under ``ATTEMPTS_KEY``.
        fired: Firings answered in the turn after this one, under ``LADDER_KEY``
            (``None``: not a firing, e.g. a later takeover step).

    Returns:
        The stamped copy (same type, same id).
    """
    extra: dict[str, Any] = {RECORD_KEY: record.to_dict()}
    if attempts:
        extra[ATTEMPTS_KEY] = [r.to_dict() for r in attempts]
    if fired is not None:
        extra[LADDER_KEY] = {"fired": fired, "node": record.node}
    return message.model_copy(update={"additional_kwargs": {**message.additional_kwargs, **extra}})


def _last_action(messages: Sequence[BaseMessage]) -> tuple[str | None, int, str]:
    """The last tool call (rendered), how often it was made in ``messages``, its last result."""
    last: str | None = None
    result = ""
    times = 0
    # The recent past is enough to name a loop; older history is not read.
    for message in reversed(messages[-_NUDGE_LOOKBACK:]):
        if isinstance(message, ToolMessage) and last is None and not result:
            result = " ".join(str(message.text).split())
        elif isinstance(message, AIMessage) and message.tool_calls:
            rendered = describe_call(message)
            if last is None:
                last = rendered
            if rendered == last:
                times += 1
    return last, times, result
