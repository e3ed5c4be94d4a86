"""What an adapter remembers between steps: the detector, the ladder position, a deferred rung.

The node and the middleware keep a ``Progress`` per name in
``escalation_progress[name]`` when the state has that key. In a plain
``MessagesState`` graph the node has no key of its own, and a healthy step
must add nothing to the conversation, so the progress is derived from the
messages each step (``rebuild_progress``): the ladder position from the marks
the help messages carry, the detector by replaying the conversation. There is
no copy in process memory that could disagree with a checkpoint. Each step they
``load_progress`` (restore it, or rebuild it from the messages), ``feed`` the
messages that arrived since, and save ``Progress.to_dict()``. Help messages an
escalation added, and the tool results of the strong model's takeover steps,
are not fed: they are not the weak model's attempts, and a help
``HumanMessage`` must not look like a person's new turn.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from langchain_escalate.detector import DetectorConfig, StuckDetector, Verdict
from langchain_escalate.expert.briefing import is_help_message, turn_start
from langchain_escalate.merge import LADDER_KEY, TAKEOVER_KEY, trailing_span
from langchain_escalate.records import RECORD_KEY

logger = logging.getLogger("langchain_escalate")


@dataclass
class Progress:
    """An adapter's memory between steps.

    Attributes:
        detector: The stuck detector, up to the last message fed.
        last_id: Id of the last message of the conversation when the step
            ended; the next step feeds what came after it.
        fired: Firings answered in this turn (the ladder position).
        pending: A ``human`` rung deferred to the next step:
            ``{"verdict": Verdict.to_dict(), "rung": ladder_index}``.
    """

    detector: StuckDetector
    last_id: str | None = None
    fired: int = 0
    pending: dict[str, Any] | None = None

    def answered(self) -> None:
        """A firing was answered: the ladder moves up; the detector's windows start afresh."""
        self.fired += 1
        self.detector.clear()

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready dict saved in ``escalation_progress[name]``."""
        return {
            "detector": self.detector.to_state(),
            "last_id": self.last_id,
            "fired": self.fired,
            "pending": self.pending,
        }


@dataclass(frozen=True)
class Takeover:
    """A takeover in progress, read from the messages.

    Attributes:
        briefing: The briefing the takeover started with.
        steps_so_far: The messages from its first step on.
        step: The number of the step to take next (1 = the first after the opening one).
        verdict: The verdict that started it (rule and reason).
    """

    briefing: str
    steps_so_far: list[BaseMessage]
    step: int
    verdict: Verdict


def load_progress(
    saved: Mapping[str, Any] | None,
    messages: Sequence[BaseMessage],
    config: DetectorConfig | None = None,
) -> tuple[Progress, int]:
    """Restore ``saved`` progress, or rebuild it from ``messages``.

    A detector state that cannot be restored (another release's version) is
    logged and rebuilt from the messages, never an error.

    Args:
        saved: A dict made by ``Progress.to_dict`` (``None`` when there is none).
        messages: The conversation.
        config: The detector's thresholds.

    Returns:
        The progress and the position of the first message it has not seen.
        When ``saved`` is missing or its last message is gone from the
        conversation, the detector is rebuilt from the messages up to the
        weak model's last reply, and the ladder position is read from the
        help messages of the turn.
    """
    if saved:
        try:
            detector = StuckDetector.from_state(saved["detector"], config)
        except (KeyError, ValueError) as error:
            # Saved by another release (or edited by hand): the messages are the truth.
            logger.warning(
                "escalation progress not restored (%s); rebuilt from the messages", error
            )
            return rebuild_progress(messages, config)
        progress = Progress(
            detector=detector,
            last_id=saved.get("last_id"),
            fired=int(saved.get("fired", 0)),
            pending=saved.get("pending"),
        )
        start = position_after(messages, progress.last_id)
        if start is not None:
            return progress, start
    return rebuild_progress(messages, config)


def rebuild_progress(
    messages: Sequence[BaseMessage], config: DetectorConfig | None = None
) -> tuple[Progress, int]:
    """Replay the conversation up to the weak model's last reply; what follows is unseen.

    Args:
        messages: The conversation.
        config: The detector's thresholds.

    Returns:
        The progress and the position of the first unseen message.
    """
    detector = StuckDetector(config)
    last_ai = next(
        (p for p in range(len(messages) - 1, -1, -1) if isinstance(messages[p], AIMessage)), -1
    )
    for position in range(last_ai + 1):
        if is_fed(messages, position):
            detector.observe(messages[position])
    progress = Progress(detector=detector, fired=fired_in_turn(messages))
    if last_ai >= 0:
        progress.last_id = messages[last_ai].id
    return progress, last_ai + 1


def feed(progress: Progress, messages: Sequence[BaseMessage], start: int) -> tuple[Verdict, int]:
    """Feed the messages from ``start`` to the detector.

    A person's new message restarts the ladder (``fired`` and ``pending`` reset).

    Args:
        progress: The progress to advance (``last_id`` is set to the last message).
        messages: The conversation.
        start: Position of the first unseen message.

    Returns:
        The last stuck verdict among them (or a not-stuck one) and its loop
        span in ``messages`` (for ``Situation.loop_messages``).
    """
    verdict = Verdict()
    loop = 0
    for position in range(start, len(messages)):
        message = messages[position]
        if not is_fed(messages, position):
            continue
        if isinstance(message, HumanMessage):
            progress.fired = 0
            progress.pending = None
            verdict = Verdict()
        observed = progress.detector.observe(message)
        if observed.stuck:
            verdict = observed
            loop = loop_span(progress, observed, messages[: position + 1])
    if start < len(messages):
        progress.last_id = messages[-1].id
    return verdict, loop


def loop_span(
    progress: Progress, verdict: Verdict, messages: Sequence[BaseMessage], *, dropped: int = 0
) -> int:
    """How many trailing messages of ``messages`` the verdict's loop covers.

    Args:
        progress: The progress whose detector gave the verdict (just now).
        verdict: The verdict.
        messages: The conversation up to the message the verdict is about.
        dropped: Messages the detector saw after these that are not in
            ``messages`` (a stuck reply that was not kept).

    Returns:
        The span (0 when the verdict names no loop).
    """
    if verdict.loop_start is None:
        return 0
    observed = progress.detector.count - verdict.loop_start - dropped
    return trailing_span(messages, observed, seen=lambda p: is_fed(messages, p))


def is_fed(messages: Sequence[BaseMessage], position: int) -> bool:
    """Whether the detector reads the message at ``position``.

    Not fed: messages carrying an escalation record (help, takeover steps,
    stop messages), and the tool results answering a takeover step.

    Args:
        messages: The conversation.
        position: The message's position.

    Returns:
        ``True`` when the message is one of the weak model's steps or a person's.
    """
    message = messages[position]
    if is_help_message(message):
        return False
    if isinstance(message, ToolMessage):
        for earlier in range(position - 1, -1, -1):
            caller = messages[earlier]
            if not isinstance(caller, ToolMessage):
                return not is_help_message(caller)
    return True


def position_after(messages: Sequence[BaseMessage], message_id: str | None) -> int | None:
    """The position after the message with ``message_id`` (searched from the end), or ``None``."""
    if message_id is None:
        return None
    for position in range(len(messages) - 1, -1, -1):
        if messages[position].id == message_id:
            return position + 1
    return None


def fired_in_turn(messages: Sequence[BaseMessage]) -> int:
    """Firings answered in the current turn, read from the help messages' ladder marks."""
    start = turn_start(messages)
    for position in range(len(messages) - 1, start - 1, -1):
        ladder = messages[position].additional_kwargs.get(LADDER_KEY)
        if isinstance(ladder, Mapping):
            return int(ladder.get("fired", 0))
    return 0


def takeover_in_progress(messages: Sequence[BaseMessage]) -> Takeover | None:
    """The takeover to continue, when the strong model's last step has tool results and steps left.

    Args:
        messages: The conversation.

    Returns:
        The takeover, or ``None`` when the weak model has the turn.
    """
    position = len(messages) - 1
    while position >= 0 and isinstance(messages[position], ToolMessage):
        position -= 1
    if position < 0 or position == len(messages) - 1:
        return None  # no tool results since the last step: nothing to continue
    last = messages[position]
    marker = last.additional_kwargs.get(TAKEOVER_KEY)
    if not isinstance(last, AIMessage) or not isinstance(marker, Mapping):
        return None
    step = int(marker.get("step", 0)) + 1
    if step >= int(marker.get("steps", 1)):
        return None
    first = position
    while first >= 0:
        first_marker = messages[first].additional_kwargs.get(TAKEOVER_KEY)
        if isinstance(first_marker, Mapping) and first_marker.get("step") == 0:
            break
        first -= 1
    if first < 0:
        return None
    opening = messages[first]
    record = opening.additional_kwargs.get(RECORD_KEY) or {}
    verdict = Verdict(stuck=True, rule=record.get("rule"), reason=str(record.get("reason", "")))
    briefing = str(opening.additional_kwargs[TAKEOVER_KEY].get("briefing", ""))
    return Takeover(briefing, list(messages[first:]), step, verdict)
