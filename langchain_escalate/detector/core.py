"""The stuck detector: reads a conversation one message at a time.

Each rule keeps a window of the steps it needs (a run of like steps, a
counter), never the history itself, so ``observe`` costs the same at message
10,000 as at message 10 and the whole state fits in a checkpoint. Steps are
compared by short hashes of their normalized form (see ``steps.py``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from pydantic import ConfigDict, TypeAdapter, ValidationError

from langchain_escalate.detector.config import RULES, DetectorConfig
from langchain_escalate.detector.normalize import fingerprint
from langchain_escalate.detector.steps import (
    action_key,
    action_label,
    calls_of,
    content_text,
    read_confidence,
    short_hash,
    shorten,
    strip_confidence,
    text_is_error,
)
from langchain_escalate.detector.verdict import NOT_STUCK, Verdict

if TYPE_CHECKING:
    from collections.abc import Callable

EVIDENCE_LIMIT = 64
"""Most message indices a window keeps as evidence (the latest ones)."""

STATE_VERSION = 1
"""Version of the ``to_state`` format; ``from_state`` refuses others."""

_ALTERNATION_START = 2
"""Pairs in an alternation run when it (re)starts: the last two, A and B."""

_LOOP_RULES = frozenset(RULES) - {"low_confidence", "max_steps"}
"""Rules whose evidence is a loop, so ``Verdict.loop_start`` is set."""


class StuckDetector:
    """Tells, message by message, whether an agent's conversation is stuck.

    Feed every message of the conversation, in order, to ``observe``; each call
    returns a ``Verdict`` for that message. The rules, their thresholds and
    their firing points are in ``docs/detector.md``. When a rule fires, every
    window starts afresh (as ``clear`` does), so a loop that goes on fires
    again after another full threshold.

    Args:
        config: Thresholds of the rules; the defaults when omitted.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
        >>> detector = StuckDetector()
        >>> _ = detector.observe(HumanMessage("Book me a flight to Paris."))
        >>> for attempt in range(3):
        ...     call = {"name": "search", "args": {"to": "CDG"}, "id": f"call_{attempt}"}
        ...     _ = detector.observe(AIMessage("", tool_calls=[call]))
        ...     result = ToolMessage("Error: service down", tool_call_id=f"call_{attempt}")
        ...     verdict = detector.observe(result)
        >>> verdict.rule, verdict.evidence
        ('repeated_action_error', [1, 2, 3, 4, 5, 6])
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        """Create a detector that has seen no message yet."""
        self.config = config or DetectorConfig()
        self._state = _State()
        # The pending action's call ids stay raw until ``to_state`` hashes them (the state
        # keeps only hashes, whatever ids a provider invents); a restored state has hashes.
        self._raw_ids = False

    @property
    def count(self) -> int:
        """Messages observed so far: the stream index the next message will get."""
        return self._state.count

    def observe(self, message: BaseMessage) -> Verdict:
        """Read the next message of the conversation.

        Args:
            message: The message; its index is ``count`` before the call.

        Returns:
            The verdict at this message: stuck when a rule fires here.

        Raises:
            TypeError: When ``message`` is not a LangChain message.
        """
        state = self._state
        index = state.count
        if isinstance(message, AIMessage):
            held = self._on_ai(message, index)
        elif isinstance(message, ToolMessage):
            held = self._on_tool(message, index)
        elif isinstance(message, HumanMessage):
            held = []
            if self.config.reset_on_human:
                self.clear()
                state.steps.reset()
                state.pending = None
        elif isinstance(message, BaseMessage):
            held = []  # system messages and others: counted, otherwise ignored
        else:
            msg = (
                f"StuckDetector.observe expects a LangChain message, got {type(message).__name__}; "
                "convert dicts with langchain_escalate.detector.messages_from_dicts"
            )
            raise TypeError(msg)
        state.count = index + 1
        return self._settle(held) if held else NOT_STUCK

    def record_failure(self, reason: str) -> Verdict:
        """Count a failure the caller saw that left no message in the conversation.

        For example the model call raised, or its output could not be parsed.
        The failure counts for ``consecutive_failures``; it takes no message index.

        Args:
            reason: What failed, for the verdict's reason (e.g. ``"the model call timed out"``).

        Returns:
            The verdict after this failure.
        """
        return self._settle(self._fail([], shorten(reason)))

    def clear(self) -> None:
        """Forget every rule's window (for example after help arrived).

        The stream index and the turn's step count (``max_steps``) are kept, and
        so is an action still waiting for its tool results.
        """
        state = self._state
        state.same_pair.reset()
        state.failing_action.reset()
        state.failures.reset()
        state.same_reply.reset()
        state.alternation.reset()
        state.older_pair = state.newer_pair = None

    def to_state(self) -> dict[str, Any]:
        """Return the detector's state as a JSON-ready dict of bounded size.

        Returns:
            A dict that ``StuckDetector.from_state`` turns back into an equal detector.
        """
        # The pydantic adapter dumps the same dict as dataclasses.asdict, ~20x faster;
        # the node saves this on every step.
        state = _written(self._state, hash_ids=self._raw_ids)
        self._raw_ids = False
        return {"version": STATE_VERSION, **_state_adapter().dump_python(state)}

    @classmethod
    def from_state(
        cls, state: dict[str, Any], config: DetectorConfig | None = None
    ) -> StuckDetector:
        """Rebuild a detector from ``to_state``'s output; it continues exactly as the original.

        Args:
            state: A dict made by ``to_state`` (possibly through JSON).
            config: Thresholds; the defaults when omitted. The state does not
                store them, so pass the ones the original used.

        Returns:
            The detector.

        Raises:
            ValueError: When ``state`` was not made by ``to_state`` of this version.
        """
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            found = state.get("version") if isinstance(state, dict) else type(state).__name__
            msg = (
                f"detector state has version {found!r}, expected {STATE_VERSION}: pass a dict "
                "made by StuckDetector.to_state() of this release, or start a new detector"
            )
            raise ValueError(msg)
        fields = {key: value for key, value in state.items() if key != "version"}
        try:
            restored = _state_adapter().validate_python(fields)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            msg = (
                f"detector state is malformed at {where!r}: {first['msg']}; "
                "pass a dict made by StuckDetector.to_state()"
            )
            raise ValueError(msg) from None
        detector = cls(config)
        detector._state = restored
        return detector

    # Message handlers: each returns the rules that hold at this message.

    def _on_ai(self, message: AIMessage, index: int) -> list[_Held]:
        state = self._state
        state.pending = None  # an action still waiting for results is abandoned
        calls = calls_of(message) if message.tool_calls else []
        if calls:
            self._raw_ids = True
            state.pending = _Pending(
                index,
                action_key(calls),
                _Text(partial(action_label, calls)),
                [_PendingCall(call.id, call.key) for call in calls],
            )
            state.same_reply.reset()
            return self._count_step(index)
        if message.invalid_tool_calls:
            names = ", ".join(str(call.get("name")) for call in message.invalid_tool_calls)
            note = f"the model's tool call could not be parsed ({shorten(names)})"
            return self._fail([index], note) + self._count_step(index)
        text = strip_confidence(content_text(message.content)).strip()
        if not text:
            return self._fail([index], "the model's reply was empty") + self._count_step(index)
        state.failures.reset()  # a reply is a success
        state.steps.reset()  # and the turn's final answer
        return self._repeat_reply(text, index) + self._low_confidence(message, index)

    def _on_tool(self, message: ToolMessage, index: int) -> list[_Held]:
        pending = self._state.pending
        if pending is None:
            return []  # answers no pending call: nothing to compare it with
        call_id = message.tool_call_id
        call = pending.answerable(call_id if self._raw_ids else _id_key(call_id))
        if call is None:
            return []
        text = content_text(message.content)
        error = self._is_failure(message, text)
        if error and not pending.error:
            pending.error, pending.excerpt = True, _Text(partial(shorten, text))
        elif pending.excerpt is None:
            pending.excerpt = _Text(partial(shorten, text))
        call.answer = _Answer(text, message.tool_call_id, error=error)
        pending.tool_indices.append(index)
        if len(pending.calls) > 1 and any(call.answer is None for call in pending.calls):
            return []
        self._state.pending = None
        return self._on_observation(pending)

    def _on_observation(self, pending: _Pending) -> list[_Held]:
        state, config = self._state, self.config
        indices = [pending.index, *pending.tool_indices]
        pair = _PairKey(pending.action, pending.calls)
        note = _Text(partial('{} returned "{}"'.format, pending.label, pending.excerpt))
        held: list[_Held] = []
        state.same_reply.reset()  # an observation breaks a monologue

        same = state.same_pair
        same.extend(pair, indices, note)
        if _reached(same.length, config.repeated_action_observation):
            reason = f"The same call got the same result {same.length} times in a row: {note}."
            held.append(_Held("repeated_action_observation", same, reason))

        failing = state.failing_action
        if pending.error:
            failing.extend(pending.action, indices, note)
            if _reached(failing.length, config.repeated_action_error):
                reason = f"The same call failed {failing.length} times in a row: {note}."
                held.append(_Held("repeated_action_error", failing, reason))
            held += self._fail(indices, note)
        else:
            failing.reset()
            state.failures.reset()

        return held + self._alternate(pair, indices, pending.label)

    def _is_failure(self, message: ToolMessage, text: str) -> bool:
        """Ask the user's classifier first; ``None`` from it means the default decides."""
        classify = self.config.is_failure
        if classify is not None:
            decided = classify(message)
            if decided is not None:
                return bool(decided)
        return message.status == "error" or text_is_error(text)

    # Rules.

    def _fail(self, indices: list[int], note: str | _Text) -> list[_Held]:
        failures = self._state.failures
        failures.extend("", indices, note)
        if _reached(failures.length, self.config.consecutive_failures):
            reason = f"{failures.length} failures in a row; the last: {note}."
            return [_Held("consecutive_failures", failures, reason)]
        return []

    def _repeat_reply(self, text: str, index: int) -> list[_Held]:
        replies = self._state.same_reply
        replies.extend(short_hash(fingerprint(text)), [index], f'"{shorten(text)}"')
        if _reached(replies.length, self.config.monologue):
            reason = (
                f"The model gave the same reply {replies.length} times in a row: {replies.note}."
            )
            return [_Held("monologue", replies, reason)]
        return []

    def _low_confidence(self, message: AIMessage, index: int) -> list[_Held]:
        threshold = self.config.low_confidence
        confidence = read_confidence(message) if threshold is not None else None
        if threshold is None or confidence is None or confidence >= threshold:
            return []
        window = _Run(length=1, start=index, indices=[index])
        reason = (
            f"The model rated its own reply's confidence {confidence:.2f}, "
            f"below the threshold {threshold:.2f}."
        )
        return [_Held("low_confidence", window, reason)]

    def _alternate(
        self, pair: str | _PairKey, indices: list[int], label: str | _Text
    ) -> list[_Held]:
        state = self._state
        run, older, newer = state.alternation, state.older_pair, state.newer_pair
        if (
            run.length >= _ALTERNATION_START
            and older is not None
            and newer is not None
            and _same(pair, older.key)
            and not _same(older.key, newer.key)
        ):
            run.extend(run.key, indices, run.note)
        elif newer is not None and not _same(pair, newer.key):
            run.reset()
            run.extend(newer.key, newer.indices, newer.label)
            run.extend(newer.key, indices, _Text(partial("{} and {}".format, newer.label, label)))
        else:
            run.reset()
            run.extend(pair, indices, label)
        state.older_pair, state.newer_pair = (
            newer,
            _Pair(key=pair, indices=indices[-EVIDENCE_LIMIT:], label=label),
        )
        if _reached(run.length, self.config.alternating):
            reason = (
                f"The model alternated between {run.note} for {run.length} steps, "
                "with the same results each time."
            )
            return [_Held("alternating", run, reason)]
        return []

    def _count_step(self, index: int) -> list[_Held]:
        steps, limit = self._state.steps, self.config.max_steps
        steps.extend("", [index], "")
        if limit is not None and steps.length > limit:
            reason = (
                f"The model made {steps.length} calls in this turn "
                f"without a final reply (limit {limit})."
            )
            return [_Held("max_steps", steps, reason)]
        return []

    def _settle(self, held: list[_Held]) -> Verdict:
        """Report the first rule that holds, in ``RULES`` order, and start every window afresh."""
        if not held:
            return NOT_STUCK
        first = min(held, key=lambda item: RULES.index(item.rule))
        verdict = Verdict(
            stuck=True,
            rule=first.rule,
            reason=first.reason,
            evidence=sorted(set(first.window.indices)),
            loop_start=first.window.start if first.rule in _LOOP_RULES else None,
        )
        self.clear()
        if any(item.rule == "max_steps" for item in held):
            self._state.steps.reset()
        return verdict

    # -- Bounded replay ------------------------------------------------------------------
    # An adapter that keeps no detector state (plain MessagesState) rebuilds the detector
    # from the conversation each step. A replay of a tail is exact once the tail has
    # *settled* the detector. Two detectors with the same ``count`` and ``max_steps``
    # window that read SETTLING_OBSERVATIONS clean observations (every call of an action
    # answered by a result that is not an error, each action-and-result pair unlike the
    # previous two) end in the same state, whatever they read before: at each clean
    # observation after the first, ``same_pair`` restarts (the pair differs from the
    # last), ``failing_action``, ``failures`` and ``same_reply`` are empty and no rule
    # but ``max_steps`` can fire (a one-step run, an alternation of two steps); so from
    # the third on ``alternation`` and the last two pairs agree, and after the fourth
    # everything does. ``max_steps`` depends on no other rule: its window is seeded.
    # No fixed number of trailing messages would do: in a loop longer than a threshold a
    # rule fires every threshold steps, and where it last fired depends on where the loop
    # began. A person's message (with ``reset_on_human``) settles the detector at once.

    SETTLING_OBSERVATIONS = 4
    """Clean observations after which a resumed detector agrees with a full replay."""

    _settling: list[str] | None = None  # pairs of the clean run so far; None once settled

    @classmethod
    def resumed(
        cls, config: DetectorConfig | None = None, *, count: int = 0, steps: list[int] | None = None
    ) -> StuckDetector:
        """Start a detector mid-conversation, to replay a tail of it exactly.

        Feed the tail to ``replay``, starting at an ``AIMessage`` (so no tool
        result is parted from its call); once ``settled``, the detector is in
        the state of one that read the whole conversation.

        Args:
            config: Thresholds; the defaults when omitted.
            count: Messages the detector would have read before the tail.
            steps: Stream indices of the ``max_steps`` window before the tail
                (see ``turn_step``); needed only when ``max_steps`` is on.

        Returns:
            The detector; settled already when ``count`` is 0.
        """
        detector = cls(config)
        detector._state.count = count
        for index in steps or []:
            detector._state.steps.extend("", [index], "")
        detector._settling = [] if count else None
        return detector

    @property
    def settled(self) -> bool:
        """Whether the state no longer depends on the messages before the replayed tail."""
        return self._settling is None

    def replay(self, message: BaseMessage) -> Verdict:
        """``observe`` the next message of a replayed tail, noting when the detector settles.

        Args:
            message: The message.

        Returns:
            The verdict ``observe`` gives.
        """
        run, state = self._settling, self._state
        before = state.pending
        verdict = self.observe(message)
        if run is None:
            return verdict
        if isinstance(message, HumanMessage) and self.config.reset_on_human:
            self._settling = None
        elif isinstance(message, AIMessage) and (before is not None or state.pending is None):
            run.clear()  # an abandoned call, or a step that is not a call
        elif isinstance(message, ToolMessage) and before is not None and state.pending is None:
            pair = _value(state.newer_pair.key) if state.newer_pair and not verdict.stuck else None
            if pair is None or before.error:
                run.clear()
            elif run and pair == run[-1]:
                run[:] = [pair]
            elif len(run) > 1 and pair == run[-2]:
                run[:] = [run[-1], pair]
            else:
                run.append(pair)
            if len(run) >= self.SETTLING_OBSERVATIONS:
                self._settling = None
        return verdict

    def turn_step(self, message: BaseMessage) -> bool | None:
        """Whether ``message`` counts for ``max_steps`` (``False``: it starts the count afresh).

        Args:
            message: A message the detector reads.

        Returns:
            ``True`` for a step (an AI message that is not a final reply),
            ``False`` for a final reply or a new turn, ``None`` otherwise.
        """
        if isinstance(message, HumanMessage):
            return False if self.config.reset_on_human else None
        if not isinstance(message, AIMessage):
            return None
        if message.tool_calls or message.invalid_tool_calls:
            return True
        return not strip_confidence(content_text(message.content)).strip()


def _reached(length: int, threshold: int | None) -> bool:
    return threshold is not None and length >= threshold


def _id_key(call_id: str | None) -> str | None:
    # Hashed so that state stays small whatever ids a provider invents.
    return None if call_id is None else short_hash(call_id)


class _Answer:
    """A tool result, hashed only when a comparison needs it (most never are)."""

    __slots__ = ("call_id", "error", "hashed", "text")

    def __init__(self, text: str, call_id: str | None, *, error: bool) -> None:
        self.error, self.text, self.call_id = error, text, call_id
        self.hashed: str | None = None

    def hash(self) -> str:
        if self.hashed is None:
            # The call's own id may be echoed in its output; it differs on every attempt.
            seen = fingerprint(self.text)
            if self.call_id:
                seen = seen.replace(self.call_id, "<id>")
            self.hashed = short_hash(("error\x00" if self.error else "\x00") + seen)
            self.text = ""  # no longer needed: do not keep a large output alive
        return self.hashed


class _PairKey:
    """An action-and-result key, computed at its first comparison with a key of the same action.

    Normalizing a tool output is most of what a message costs, and the result only
    matters when the same action came before (keys of different actions never match:
    the action hash is a fixed-length prefix of what the key hashes). A healthy run
    rarely repeats an action, so most outputs are never normalized.
    """

    __slots__ = ("action", "calls", "hashed")

    def __init__(self, action: str, calls: list[_PendingCall]) -> None:
        self.action, self.calls = action, calls
        self.hashed: str | None = None

    def hash(self) -> str:
        if self.hashed is None:
            answers = [f"{call.key}:{_answer_hash(call.answer)}" for call in self.calls]
            if len(answers) > 1:
                answers.sort()
            self.hashed = short_hash(self.action + short_hash("\x00".join(answers)))
            self.calls = []
        return self.hashed


def _answer_hash(answer: str | _Answer | None) -> str | None:
    return answer.hash() if isinstance(answer, _Answer) else answer


def _value(key: str | _PairKey) -> str:
    return key.hash() if isinstance(key, _PairKey) else key


def _same(first: str | _PairKey, second: str | _PairKey) -> bool:
    """Whether two window keys are equal, hashing outputs only when the actions match."""
    if first is second:
        return True
    if isinstance(first, _PairKey) and isinstance(second, _PairKey):
        if first.action != second.action:
            return False
    elif not isinstance(first, _PairKey) and not isinstance(second, _PairKey):
        return first == second
    return _value(first) == _value(second)


def _written(state: _State, *, hash_ids: bool) -> _State:
    """Hash the keys (and ``hash_ids``: the call ids) and write the texts left for later.

    In place, for ``to_state``: what a saved state holds is plain strings.
    """
    for run in (
        state.steps,
        state.same_pair,
        state.failing_action,
        state.failures,
        state.same_reply,
        state.alternation,
    ):
        run.key, run.note = _value(run.key), str(run.note)
    for pair in (state.older_pair, state.newer_pair):
        if pair is not None:
            pair.key, pair.label = _value(pair.key), str(pair.label)
    pending = state.pending
    if pending is not None:
        pending.label = str(pending.label)
        pending.excerpt = None if pending.excerpt is None else str(pending.excerpt)
        for call in pending.calls:
            call.id = _id_key(call.id) if hash_ids else call.id
            call.answer = _answer_hash(call.answer)
    return state


class _Text:
    """A reason's text, written only when a verdict or ``to_state`` reads it (most never are).

    Labels and excerpts of actions and outputs cost more than comparing them; a
    healthy run never shows them.
    """

    __slots__ = ("make", "text")

    def __init__(self, make: Callable[[], str]) -> None:
        self.make: Callable[[], str] | None = make
        self.text = ""

    def __str__(self) -> str:
        if self.make is not None:
            self.text, self.make = self.make(), None  # the parts it was made of can go
        return self.text


_LAZY = ConfigDict(arbitrary_types_allowed=True)
"""Keys, answers and texts may be objects not yet hashed or written; ``to_state`` settles them."""


@dataclass(slots=True)
class _Run:
    """A rule's window: consecutive like steps (or a plain count, with an empty key)."""

    __pydantic_config__ = _LAZY

    length: int = 0
    key: str | _PairKey = ""
    start: int | None = None
    indices: list[int] = field(default_factory=list)
    note: str | _Text = ""

    def extend(self, key: str | _PairKey, indices: list[int], note: str | _Text) -> None:
        """Add a step with this key; a different key starts the run again."""
        if self.length and not _same(key, self.key):
            self.reset()
        self.length += 1
        self.key, self.note = key, note
        if self.start is None and indices:
            self.start = indices[0]
        self.indices.extend(indices)
        if len(self.indices) > EVIDENCE_LIMIT:
            del self.indices[:-EVIDENCE_LIMIT]

    def reset(self) -> None:
        """Empty the window."""
        if self.length or self.indices or self.start is not None or self.key or self.note:
            self.length, self.key, self.start, self.note = 0, "", None, ""
            self.indices.clear()


@dataclass(slots=True)
class _PendingCall:
    __pydantic_config__ = _LAZY

    id: str | None
    key: str
    answer: str | _Answer | None = None


@dataclass(slots=True)
class _Pending:
    """An action whose tool results are still coming in."""

    __pydantic_config__ = _LAZY

    index: int
    action: str
    label: str | _Text
    calls: list[_PendingCall]
    tool_indices: list[int] = field(default_factory=list)
    error: bool = False
    excerpt: str | _Text | None = None

    def answerable(self, call_id: str | None) -> _PendingCall | None:
        """Return the unanswered call a tool message with this (hashed) id answers."""
        without_id = None
        for call in self.calls:
            if call.answer is None:
                if call.id == call_id:
                    return call
                if without_id is None and call.id is None:
                    without_id = call
        return without_id


@dataclass(slots=True)
class _Pair:
    __pydantic_config__ = _LAZY

    key: str | _PairKey
    indices: list[int]
    label: str | _Text


@dataclass(slots=True)
class _State:
    count: int = 0
    steps: _Run = field(default_factory=_Run)
    pending: _Pending | None = None
    same_pair: _Run = field(default_factory=_Run)
    failing_action: _Run = field(default_factory=_Run)
    failures: _Run = field(default_factory=_Run)
    same_reply: _Run = field(default_factory=_Run)
    alternation: _Run = field(default_factory=_Run)
    older_pair: _Pair | None = None
    newer_pair: _Pair | None = None


@dataclass(frozen=True, slots=True)
class _Held:
    """A rule that holds at this message, with its window and the sentence that says why."""

    rule: str
    window: _Run
    reason: str


@functools.cache
def _state_adapter() -> TypeAdapter[_State]:
    return TypeAdapter(_State)
