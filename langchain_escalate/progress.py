"""What an adapter remembers between steps: the detector, the ladder position, a deferred rung.

Kept in ``escalation_progress[name]`` or, in a plain ``MessagesState``, rebuilt from the messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property, partial
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from langchain_escalate.detector import DetectorConfig, StuckDetector, Verdict
from langchain_escalate.escalation import TakeoverSituation
from langchain_escalate.expert.briefing import is_help_message
from langchain_escalate.merge import LADDER_KEY, TAKEOVER_KEY, trailing_span
from langchain_escalate.records import RECORD_KEY

logger = logging.getLogger("langchain_escalate")


@dataclass
class Progress:
    """An adapter's memory between steps.

    Attributes:
        detector: The stuck detector, up to the last message fed.
        last_id: Id of the last message when the step ended.
        count_fired: ``fired``, or a function giving it when it is first needed.
        pending: A deferred ``human`` rung: ``{"verdict": ..., "rung": index}``.
        offset: What ``exact`` adds to a verdict's indices, or a function giving it.
    """

    detector: StuckDetector
    last_id: str | None
    count_fired: int | Callable[[], int]
    pending: dict[str, Any] | None = None
    offset: int | Callable[[], int] = 0

    @cached_property
    def fired(self) -> int:
        """Firings answered in this turn (the ladder position)."""
        return self.count_fired() if callable(self.count_fired) else self.count_fired

    @cached_property
    def _shift(self) -> int:
        return self.offset() if callable(self.offset) else self.offset

    def answered(self) -> None:
        """A firing was answered: the ladder moves up; the detector's windows start afresh."""
        self.fired += 1
        self.detector.clear()

    def exact(self, verdict: Verdict) -> Verdict:
        """``verdict`` with indices from the conversation's start (see ``rebuild_progress``)."""
        if not verdict.stuck or not (shift := self._shift):
            return verdict
        start = None if verdict.loop_start is None else verdict.loop_start + shift
        return replace(verdict, evidence=[i + shift for i in verdict.evidence], loop_start=start)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready dict saved in ``escalation_progress[name]``."""
        return {
            "detector": self.detector.to_state(),
            "last_id": self.last_id,
            "fired": self.fired,
            "pending": self.pending,
        }


def load_progress(
    saved: Mapping[str, Any] | None,
    messages: Sequence[BaseMessage],
    config: DetectorConfig | None = None,
    *,
    name: str | None = None,
) -> tuple[Progress, int]:
    """Restore ``saved`` progress and return it with the position of the first message it missed.

    Another release's state, or one whose last message is gone, is rebuilt (``rebuild_progress``).
    """
    if saved:
        try:
            detector = StuckDetector.from_state(saved["detector"], config)
        except (KeyError, ValueError) as error:
            logger.warning(
                "escalation progress not restored (%s); rebuilt from the messages", error
            )
        else:
            last_id = saved.get("last_id")
            for position in range(len(messages) - 1, -1, -1) if last_id is not None else ():
                if messages[position].id == last_id:
                    fired = int(saved.get("fired", 0))
                    return Progress(detector, last_id, fired, saved.get("pending")), position + 1
    return rebuild_progress(messages, config, name=name)


def rebuild_progress(
    messages: Sequence[BaseMessage],
    config: DetectorConfig | None = None,
    *,
    name: str | None = None,
    exact_indices: bool = True,
) -> tuple[Progress, int]:
    """Rebuild the progress up to the weak model's last reply; return it and what follows.

    Only the tail that settles the detector is replayed, so a step costs the same at any length.
    The ladder position (``name``'s marks) is read when needed; with ``exact_indices=False`` so
    is the count before the tail, which ``Progress.exact`` adds (the detector is not for saving).
    """
    config = config or DetectorConfig()
    ais = (p + 1 for p in range(len(messages) - 1, -1, -1) if isinstance(messages[p], AIMessage))
    end = next(ais, 0)
    fed = _fed_count(messages, end) if exact_indices else end
    detector, whole = _replayed(messages, end, fed, config)
    offset = 0 if exact_indices or whole else lambda: _fed_count(messages, end) - end
    fired = partial(fired_in_turn, messages, name=name)
    return Progress(detector, messages[end - 1].id if end else None, fired, offset=offset), end


def feed(progress: Progress, messages: Sequence[BaseMessage], start: int) -> tuple[Verdict, int]:
    """Feed the messages from ``start``; return the last stuck verdict and its loop span."""
    verdict, loop = Verdict(), 0
    for position in range(start, len(messages)):
        if not is_fed(messages, position):
            continue
        if isinstance(messages[position], HumanMessage):
            progress.fired, progress.pending, verdict = 0, None, Verdict()  # the ladder restarts
        observed = progress.detector.observe(messages[position])
        if observed.stuck:
            verdict, loop = observed, loop_span(progress, observed, messages[: position + 1])
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
    caller = position
    while caller > 0 and isinstance(messages[caller], ToolMessage):
        caller -= 1
    return not is_help_message(messages[position]) and not is_help_message(messages[caller])


def fired_in_turn(messages: Sequence[BaseMessage], *, name: str | None = None) -> int:
    """Firings answered in the turn: the latest mark of ``name`` (unnamed marks count)."""
    for message in reversed(messages):
        mark = message.additional_kwargs.get(LADDER_KEY)
        if isinstance(mark, Mapping) and (name is None or mark.get("node", name) == name):
            return int(mark.get("fired", 0))
        if isinstance(message, HumanMessage) and not is_help_message(message):
            return 0
    return 0


def takeover_in_progress(messages: Sequence[BaseMessage]) -> TakeoverSituation | None:
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
    first = next((p for p in range(position, -1, -1) if _takeover_step(messages[p]) == 0), None)
    if step >= int(marker.get("steps", 1)) or first is None:
        return None
    opening = messages[first].additional_kwargs
    record = opening.get(RECORD_KEY) or {}
    verdict = Verdict(stuck=True, rule=record.get("rule"), reason=str(record.get("reason", "")))
    briefing = str(opening[TAKEOVER_KEY].get("briefing", ""))
    return TakeoverSituation(briefing, list(messages[first:]), step, verdict)


def _takeover_step(message: BaseMessage) -> Any:
    marker = message.additional_kwargs.get(TAKEOVER_KEY)
    return marker.get("step") if isinstance(marker, Mapping) else None


def _fed_back(messages: Sequence[BaseMessage], end: int) -> Iterator[int]:
    return (p for p in range(end - 1, -1, -1) if is_fed(messages, p))


def _fed_count(messages: Sequence[BaseMessage], end: int) -> int:
    return sum(is_fed(messages, position) for position in range(end))


def _replayed(
    messages: Sequence[BaseMessage], end: int, count: int, config: DetectorConfig
) -> tuple[StuckDetector, bool]:
    """The detector after ``messages[:end]`` (``count`` fed), replayed from the latest settling cut.

    A cut is an ``AIMessage`` or a person's message; ``True``: all was replayed (exact indices).
    """
    want, ais = StuckDetector.SETTLING_OBSERVATIONS + 1, 0
    for position in _fed_back(messages, end):
        count -= 1
        ais += isinstance(messages[position], AIMessage)
        human = isinstance(messages[position], HumanMessage) and config.reset_on_human
        if human or (ais >= want and isinstance(messages[position], AIMessage)):
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
