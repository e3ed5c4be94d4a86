"""What an adapter remembers between steps: the detector, the ladder position, a deferred rung.

It lives in ``escalation_progress[name]`` (``load_progress``), or, in a plain
``MessagesState``, is read from the messages each step (``rebuild_progress``);
never in process memory, which could disagree with a checkpoint. Help
messages and takeover steps' tool results are not fed to the detector.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from langchain_escalate.detector import DetectorConfig, StuckDetector, Verdict
from langchain_escalate.expert.briefing import is_help_message
from langchain_escalate.merge import LADDER_KEY, TAKEOVER_KEY, trailing_span
from langchain_escalate.records import RECORD_KEY

logger = logging.getLogger("langchain_escalate")


class Progress:
    """An adapter's memory between steps.

    Attributes:
        detector: The stuck detector, up to the last message fed.
        last_id: Id of the last message when the step ended.
        fired: Firings answered in this turn (the ladder position).
        pending: A deferred ``human`` rung: ``{"verdict": ..., "rung": index}``.
    """

    def __init__(
        self,
        detector: StuckDetector,
        last_id: str | None = None,
        fired: int | Callable[[], int] = 0,
        pending: dict[str, Any] | None = None,
        *,
        offset: int | Callable[[], int] = 0,
    ) -> None:
        """Create the progress; ``fired`` and ``offset`` may be callables, read when needed.

        ``offset`` is what ``exact`` adds to a verdict's indices (see ``rebuild_progress``).
        """
        self.detector, self.last_id, self.pending = detector, last_id, pending
        self._fired = fired
        self._offset = offset

    @property
    def fired(self) -> int:  # noqa: D102 - documented with the class
        if callable(self._fired):
            self._fired = self._fired()
        return self._fired

    @fired.setter
    def fired(self, value: int) -> None:
        self._fired = value

    def answered(self) -> None:
        """A firing was answered: the ladder moves up; the detector's windows start afresh."""
        self.fired += 1
        self.detector.clear()

    def exact(self, verdict: Verdict) -> Verdict:
        """``verdict`` with indices from the conversation's start (see ``rebuild_progress``)."""
        if not verdict.stuck:
            return verdict
        if callable(self._offset):
            self._offset = self._offset()
        if not self._offset:
            return verdict
        start = None if verdict.loop_start is None else verdict.loop_start + self._offset
        return replace(
            verdict, evidence=[i + self._offset for i in verdict.evidence], loop_start=start
        )

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
    """A takeover in progress, read from the messages: its briefing, steps so far, next step."""

    briefing: str
    steps_so_far: list[BaseMessage]
    step: int
    verdict: Verdict


def load_progress(
    saved: Mapping[str, Any] | None,
    messages: Sequence[BaseMessage],
    config: DetectorConfig | None = None,
    *,
    name: str | None = None,
) -> tuple[Progress, int]:
    """Restore ``saved`` progress, or rebuild it from ``messages`` (``rebuild_progress``).

    A state another release saved, or one whose last message is gone, is
    rebuilt; ``name`` is the adapter's, whose ladder marks count. Returns the
    progress and the position of the first message it has not seen.
    """
    if saved:
        try:
            detector = StuckDetector.from_state(saved["detector"], config)
        except (KeyError, ValueError) as error:
            logger.warning(
                "escalation progress not restored (%s); rebuilt from the messages", error
            )
            return rebuild_progress(messages, config, name=name)
        progress = Progress(
            detector, saved.get("last_id"), int(saved.get("fired", 0)), saved.get("pending")
        )
        start = position_after(messages, progress.last_id)
        if start is not None:
            return progress, start
    return rebuild_progress(messages, config, name=name)


def rebuild_progress(
    messages: Sequence[BaseMessage],
    config: DetectorConfig | None = None,
    *,
    name: str | None = None,
    exact_indices: bool = True,
) -> tuple[Progress, int]:
    """Rebuild the progress up to the weak model's last reply; return it and what follows.

    The detector replays only the tail that settles it (``StuckDetector.resumed``),
    so a step costs the same at any length. The ladder position (the marks of
    ``name``) is read when a firing needs it; so are the messages before the
    tail with ``exact_indices=False`` (``Progress.exact`` then adds them to a
    verdict's indices, and the detector's own state is not for saving).
    """
    config = config or DetectorConfig()
    end = next(
        (p + 1 for p in range(len(messages) - 1, -1, -1) if isinstance(messages[p], AIMessage)), 0
    )
    base = _fed_count(messages, end) if exact_indices else end
    detector, whole = _replayed(messages, end, base, config)
    progress = Progress(
        detector,
        messages[end - 1].id if end else None,
        fired=lambda: fired_in_turn(messages, name=name),
        offset=0 if exact_indices or whole else lambda: _fed_count(messages, end) - end,
    )
    return progress, end


def feed(progress: Progress, messages: Sequence[BaseMessage], start: int) -> tuple[Verdict, int]:
    """Feed the messages from ``start``; return the last stuck verdict and its loop span.

    A person's new message restarts the ladder (``fired`` and ``pending`` reset).
    """
    verdict, loop = Verdict(), 0
    for position in range(start, len(messages)):
        message = messages[position]
        if not is_fed(messages, position):
            continue
        if isinstance(message, HumanMessage):
            progress.fired, progress.pending, verdict = 0, None, Verdict()
        observed = progress.detector.observe(message)
        if observed.stuck:
            verdict = observed
            loop = loop_span(progress, observed, messages[: position + 1])
    if start < len(messages):
        progress.last_id = messages[-1].id
    return progress.exact(verdict), loop


def loop_span(
    progress: Progress, verdict: Verdict, messages: Sequence[BaseMessage], *, dropped: int = 0
) -> int:
    """How many trailing ``messages`` the verdict's loop covers (``dropped``: seen, not kept)."""
    if verdict.loop_start is None:
        return 0
    observed = progress.detector.count - verdict.loop_start - dropped
    return trailing_span(messages, observed, seen=lambda p: is_fed(messages, p))


def is_fed(messages: Sequence[BaseMessage], position: int) -> bool:
    """Whether the detector reads a message: not help, nor a takeover step's tool results."""
    if is_help_message(messages[position]):
        return False
    while position > 0 and isinstance(messages[position], ToolMessage):
        position -= 1
        if not isinstance(messages[position], ToolMessage):
            return not is_help_message(messages[position])
    return True


def position_after(messages: Sequence[BaseMessage], message_id: str | None) -> int | None:
    """The position after the message with ``message_id`` (searched from the end), or ``None``."""
    if message_id is not None:
        for position in range(len(messages) - 1, -1, -1):
            if messages[position].id == message_id:
                return position + 1
    return None


def fired_in_turn(messages: Sequence[BaseMessage], *, name: str | None = None) -> int:
    """Firings answered in the turn: the latest mark of ``name`` (unnamed marks count)."""
    for message in reversed(messages):
        mark = message.additional_kwargs.get(LADDER_KEY)
        if isinstance(mark, Mapping) and (name is None or mark.get("node", name) == name):
            return int(mark.get("fired", 0))
        if isinstance(message, HumanMessage) and not is_help_message(message):
            return 0
    return 0


def takeover_in_progress(messages: Sequence[BaseMessage]) -> Takeover | None:
    """The takeover to continue: its last step got tool results and has steps left."""
    position = len(messages) - 1
    while position >= 0 and isinstance(messages[position], ToolMessage):
        position -= 1
    if position < 0 or position == len(messages) - 1:
        return None  # no tool results since the last step: nothing to continue
    marker = messages[position].additional_kwargs.get(TAKEOVER_KEY)
    if not isinstance(messages[position], AIMessage) or not isinstance(marker, Mapping):
        return None
    step = int(marker.get("step", 0)) + 1
    if step >= int(marker.get("steps", 1)):
        return None
    first = position
    while first >= 0 and _takeover_step(messages[first]) != 0:
        first -= 1
    if first < 0:
        return None
    opening = messages[first].additional_kwargs
    record = opening.get(RECORD_KEY) or {}
    verdict = Verdict(stuck=True, rule=record.get("rule"), reason=str(record.get("reason", "")))
    briefing = str(opening[TAKEOVER_KEY].get("briefing", ""))
    return Takeover(briefing, list(messages[first:]), step, verdict)


def _takeover_step(message: BaseMessage) -> Any:
    marker = message.additional_kwargs.get(TAKEOVER_KEY)
    return marker.get("step") if isinstance(marker, Mapping) else None


def _fed_back(messages: Sequence[BaseMessage], end: int) -> Iterator[int]:
    return (p for p in range(end - 1, -1, -1) if is_fed(messages, p))


def _fed_count(messages: Sequence[BaseMessage], end: int) -> int:
    return sum(1 for position in range(end) if is_fed(messages, position))


def _replayed(
    messages: Sequence[BaseMessage], end: int, count: int, config: DetectorConfig
) -> tuple[StuckDetector, bool]:
    """The detector after ``messages[:end]``, replayed from the latest cut that settles it.

    A cut is an ``AIMessage`` or a person's message; the tail doubles until it
    settles, else the whole conversation is replayed (then ``True``: exact
    indices). ``count``: messages fed before ``end``, or the stand-in counted from.
    """
    want, ais = StuckDetector.SETTLING_OBSERVATIONS + 1, 0
    for position in _fed_back(messages, end):
        count -= 1
        message = messages[position]
        ais += isinstance(message, AIMessage)
        human = isinstance(message, HumanMessage) and config.reset_on_human
        if human or (ais >= want and isinstance(message, AIMessage)):
            steps = [] if human else _steps_before(messages, position, count, config)
            detector = StuckDetector.resumed(config, count=count, steps=steps)
            for fed in range(position, end):
                if is_fed(messages, fed):
                    detector.replay(messages[fed])
            if detector.settled:
                return detector, False
            want *= 2
    detector = StuckDetector(config)
    for position in range(end):
        if is_fed(messages, position):
            detector.observe(messages[position])
    return detector, True


def _steps_before(
    messages: Sequence[BaseMessage], cut: int, count: int, config: DetectorConfig
) -> list[int]:
    """Stream indices of the ``max_steps`` window when the detector reaches ``cut``."""
    if config.max_steps is None or count == 0:
        return []
    probe, steps = StuckDetector(config), []
    for index, position in enumerate(_fed_back(messages, cut), start=1):
        step = probe.turn_step(messages[position])
        if step is False:
            break
        if step:
            steps.append(count - index)
    return sorted(steps[: len(steps) % (config.max_steps + 1)])
