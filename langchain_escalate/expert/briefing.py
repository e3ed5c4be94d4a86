"""The bounded briefing a strong model reads when the weak model is stuck.

The briefing is plain text in four parts: the task, what was tried and what
came back, why help is needed (the detector's rule and reason), and the
question. It never exceeds ``max_tokens`` as langchain-core's
``count_tokens_approximately`` counts the briefing sent as one message. The
room goes, in order of what the expert needs most:

1. the question, the reason and the caller's context (each capped);
2. the task, whole when it fits in half the bound (else its statement when
   that fits, else at least a third);
3. the latest failure with its call, and what the person said after the task,
   up to a quarter of the bound, verbatim when they fit;
4. the detector's evidence, newest first, each its least room;
5. the task's statement, up to three quarters of the bound;
6. the rest of the room shared among the evidence (cut in the middle, head
   and tail kept, when longer than its share);
7. the most recent other steps, newest first, each cut in the middle;
8. whatever is left, to the task.

A task that must be cut keeps its head (issue texts put the symptom first)
and its last line when that is short (a question after pasted material). When
it wraps its material in a tagged block (``<issue_description>...``), that
block is the statement and the instructions after it are boilerplate, cut first.
docs/briefing.md explains each choice.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately

from langchain_escalate.detector.steps import content_text, is_error
from langchain_escalate.records import RECORD_KEY
from langchain_escalate.redact import redact

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_escalate.detector.verdict import Verdict

CHARS_PER_TOKEN = 4
"""Characters a token, as ``count_tokens_approximately`` counts them."""

MIN_MAX_TOKENS = 50
"""Smallest bound a briefing can be built for: the task, the question, a step."""

FOLLOW_UP_MAX_CHARS = 400
"""Longest human message that can be a follow-up (see ``build_briefing``) rather than a task."""

DEFAULT_QUESTION = (
    "The assistant is stuck. What should it do differently to finish the task? "
    "Answer with short, concrete guidance it can act on."
)

_ELLIPSIS = " [...] "
_TASK_CUT = "\n[... the rest of the task is cut here ...]\n"
_MIN_STEP_CHARS = 80
"""Least room a kept step gets: enough to read the head and tail of an error."""
_MARKER_CHARS = 32
"""Room kept for each ``(N steps omitted)`` line."""
_OPENING_TAG = re.compile(r"^<(?P<name>[A-Za-z][\w.-]*)(?:\s[^>\n]*)?>", re.MULTILINE)
_MAX_TAGS = 16
_MIN_STATEMENT_CHARS = 200
_MAX_TAIL_CHARS = 200
_ASK_WINDOW = 300
"""How much of a reply's end is read for a question or a request to the person."""
_REQUEST = re.compile(
    r"\b(?:please\s+(?:provide|confirm|share|specify|send|tell|let\s+me\s+know)"
    r"|let\s+me\s+know|i(?:'ll|\s+will)?\s+need|could\s+you|can\s+you|would\s+you)\b",
    re.IGNORECASE,
)
_STEP_TYPES = (AIMessage, ToolMessage, HumanMessage)
_CONTINUATION = re.compile(
    r"\W*(?:please\s+|pls\s+|ok(?:ay)?[,.!]?\s+|now\s+)?"
    r"(?:continue|go\s+on|go\s+ahead|keep\s+going|keep\s+working|carry\s+on|proceed|resume"
    r"|try\s+again|retry|next|yes|yeah|yep|ok|okay|sure|do\s+it|done|and\?)\b",
    re.IGNORECASE,
)


def estimate_tokens(text: str) -> int:
    """Count the tokens of ``text`` sent as one message, with ``count_tokens_approximately``.

    Args:
        text: Any text.

    Returns:
        The tokens of a ``HumanMessage`` holding ``text``: its characters at
        four a token plus the message's own overhead (role, separators).

    Example:
        >>> estimate_tokens("x" * 400) > 100
        True
    """
    return count_tokens_approximately([HumanMessage(text)])


def truncate_middle(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` characters, keeping its start and end.

    The start of an error usually names it and the end usually says where it
    happened, so the middle is what goes.

    Args:
        text: The text to shorten.
        max_chars: Upper bound on the result's length.

    Returns:
        ``text`` itself when short enough, else its head and tail joined by ``[...]``.

    Example:
        >>> truncate_middle("a" * 50 + "b" * 50, 20)
        'aaaaaaa [...] bbbbbb'
    """
    if len(text) <= max_chars:
        return text
    if max_chars <= len(_ELLIPSIS):
        return text[: max(max_chars, 0)]
    keep = max_chars - len(_ELLIPSIS)
    head = keep - keep // 2
    return text[:head] + _ELLIPSIS + text[len(text) - keep // 2 :]


def is_help_message(message: BaseMessage) -> bool:
    """Whether ``message`` was added by an escalation (it carries an ``EscalationRecord``).

    Such messages are help for the weak model, not a person's new turn: the
    detector must not see them as a new human turn, and the briefing shows them
    as help received.

    Args:
        message: Any message.

    Returns:
        ``True`` when ``additional_kwargs`` holds a record under ``RECORD_KEY``.
    """
    return RECORD_KEY in message.additional_kwargs


def turn_start(messages: Sequence[BaseMessage]) -> int:
    """Return the position of the first human message of the current turn.

    The current turn starts at the last ``HumanMessage`` that a person wrote
    (help messages added by an escalation do not start a turn).

    Args:
        messages: The conversation.

    Returns:
        The position of that message, or 0 when there is none.
    """
    for position in range(len(messages) - 1, -1, -1):
        message = messages[position]
        if isinstance(message, HumanMessage) and not is_help_message(message):
            return position
    return 0


def build_briefing(
    messages: Sequence[BaseMessage],
    *,
    verdict: Verdict | None = None,
    question: str | None = None,
    context: str | None = None,
    max_tokens: int = 1500,
) -> str:
    """Write the briefing the strong model reads, bounded by ``max_tokens``.

    The task is the last human message that is not a follow-up. A follow-up is
    a short human message (at most ``FOLLOW_UP_MAX_CHARS``) that continues the
    work ("please continue", "yes, go ahead") or answers a question the
    assistant just asked; it is shown among the steps as ``user said``.

    Args:
        messages: The conversation as the weak model saw it. Every message
            after the task is a step: a tool call and its result (labelled
            ``error`` when the detector's ``is_error`` says the call failed), a
            reply, a follow-up, help already received.
        verdict: The detector's verdict, when a rule fired: its rule and reason
            say why help is needed, and the messages at its ``evidence``
            indices (read as positions in ``messages``) are kept before others.
        question: What to ask the strong model; a default asks for guidance.
        context: Extra context from the caller (the ask-expert tool's
            ``context`` argument), shown after the task.
        max_tokens: Upper bound on the briefing, in ``count_tokens_approximately``
            tokens of the briefing sent as one message.

    Returns:
        The briefing text; ``estimate_tokens(text) <= max_tokens``.

    Raises:
        ValueError: When ``max_tokens`` is below ``MIN_MAX_TOKENS``.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> text = build_briefing([HumanMessage("Find the bug")], question="Where is it?")
        >>> "Find the bug" in text and "Where is it?" in text
        True
    """
    if max_tokens < MIN_MAX_TOKENS:
        msg = f"build_briefing: max_tokens must be at least {MIN_MAX_TOKENS}, got {max_tokens}"
        raise ValueError(msg)
    first = task_position(messages)
    parts = _Parts(
        task=_task_text(messages, first),
        question=redact(question or DEFAULT_QUESTION),
        why=_why_text(verdict),
        context=redact((context or "").strip()),
        steps=_StepSource(messages, first, verdict),
    )
    budget = CHARS_PER_TOKEN * (max_tokens - estimate_tokens(""))
    text = parts.render(budget)
    # The character budget matches count_tokens_approximately's arithmetic; if
    # a future langchain-core counts differently, shrink until it fits.
    for _ in range(4):
        excess = estimate_tokens(text) - max_tokens
        if excess <= 0:
            return text
        budget -= excess * CHARS_PER_TOKEN
        text = parts.render(budget)
    while text and estimate_tokens(text) > max_tokens:
        text = text[: len(text) - CHARS_PER_TOKEN]
    return text


def task_position(messages: Sequence[BaseMessage]) -> int:
    """Return the position of the task: the last human message that is not a follow-up.

    Help added by an escalation is never the task. A follow-up (see
    ``build_briefing``) does not replace the task before it; the first human
    message is the task even when it looks like a follow-up.

    Args:
        messages: The conversation.

    Returns:
        The task's position, or ``-1`` when no person wrote a message.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> task_position([HumanMessage("Fix the build."), HumanMessage("Please continue.")])
        0
    """
    found = -1
    for position in range(len(messages) - 1, -1, -1):
        message = messages[position]
        if not isinstance(message, HumanMessage) or is_help_message(message):
            continue
        found = position
        if not _is_follow_up(messages, position):
            break
    return found


def describe_call(message: AIMessage) -> str:
    """Render an AI message's tool calls as ``name({"arg":1}); other(...)`` (sorted keys).

    Args:
        message: An AI message with tool calls.

    Returns:
        The calls, or ``""`` when it has none.
    """
    return "; ".join(
        f"{call['name']}({_compact_json(call['args'])})" for call in message.tool_calls
    )


@dataclass(frozen=True)
class _Parts:
    """What a briefing is made of, before it is fitted to a budget."""

    task: str
    question: str
    why: str
    context: str
    steps: _StepSource

    @cached_property
    def statement_end(self) -> int:
        """Where the task's statement ends: boilerplate after it is cut first."""
        return _statement_end(self.task)

    @cached_property
    def tail(self) -> str:
        """The task's last line, kept when the task is cut (when short)."""
        return _last_line(self.task)

    def render(self, budget: int) -> str:
        ask = truncate_middle(self.question, budget // 6)
        why = truncate_middle(self.why, budget // 8)
        extra = truncate_middle(self.context, budget // 8)
        fixed = _render([("## Task", "-"), ("## Context", extra), ("## What was tried", "-")])
        fixed += _render([("## Why help is needed", why), ("## Question", ask)])
        room = budget - len(fixed)
        whole = len(self.task)
        statement = min(whole, self.statement_end + len(_TASK_CUT) + len(self.tail))
        # A task that fits in half the bound is never cut, nor is a statement
        # that does; else the task keeps at least a third.
        task_room = next((n for n in (whole, statement) if n <= budget // 2), budget // 3)
        steps, selection = self.steps, _Selection(caps={}, used=_MARKER_CHARS)
        failing = min(room - task_room, budget // 4) - selection.used
        steps.keep(selection, steps.failure_positions + steps.follow_ups, failing)
        evidence = steps.keep(
            selection, steps.evidence_positions, room - task_room - selection.used, spread=False
        )
        # The statement comes before the evidence's room beyond its least.
        task_room = max(task_room, min(statement, budget * 3 // 4, room - selection.used))
        spare = room - task_room - selection.used
        steps.share(selection, evidence, steps.taken(selection, evidence) + spare)
        steps.select_recent(selection, room - task_room - selection.used)
        task_room = max(room - selection.used, task_room)
        task = _cut_task(self.task, task_room, self.statement_end, self.tail)
        sections = [("## Task", task), ("## Context", extra)]
        sections += [("## What was tried", selection.render(self.steps))]
        sections += [("## Why help is needed", why), ("## Question", ask)]
        return _render(sections).rstrip()


@dataclass
class _Selection:
    """The steps kept, with the room each may take."""

    caps: dict[int, int]
    used: int = 0

    def render(self, source: _StepSource) -> str:
        lines: list[str] = []
        previous = source.first
        for position in sorted(self.caps):
            skipped = source.count_steps(previous + 1, position)
            if skipped:
                word = "earlier steps" if previous == source.first else "steps"
                lines.append(f"- ({skipped} {word} omitted)")
            lines.append(source.step(position).render(self.caps[position]))
            previous = position
        if not lines and source.count_steps(source.first + 1, len(source.messages)):
            lines.append("- (every step omitted: no room left)")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Step:
    """One message as a line of the briefing: a prefix and its verbatim body."""

    prefix: str
    body: str

    def render(self, cap: int) -> str:
        body = truncate_middle(self.body, cap)
        if "\n" not in body:
            return self.prefix + body
        fence = _fence_for(body)
        return f"{self.prefix.rstrip()}\n{fence}\n{body}\n{fence}"

    @cached_property
    def overhead(self) -> int:
        """Characters the line adds to its body, at most (a fenced block when multi-line)."""
        if "\n" not in self.body:
            return len(self.prefix)
        return len(self.prefix.rstrip()) + 3 + 2 * len(_fence_for(self.body))

    def size(self, cap: int) -> int:
        """Upper bound on the rendered line's length with the body cut to ``cap``."""
        return self.overhead + min(cap, len(self.body))


def _fence_for(body: str) -> str:
    fence = "```"
    while fence in body:
        fence += "`"
    return fence


class _StepSource:
    """The steps after the task: which to keep, and how each reads."""

    def __init__(
        self, messages: Sequence[BaseMessage], first: int, verdict: Verdict | None
    ) -> None:
        self.messages = messages
        self.first = first if first >= 0 else _first_step(messages)
        self.verdict = verdict
        self._steps: dict[int, _Step | None] = {}

    def step(self, position: int) -> _Step:
        step = self._step_or_none(position)
        if step is None:  # only positions with a step are ever selected
            msg = f"message {position} is not a step"
            raise LookupError(msg)
        return step

    def count_steps(self, start: int, stop: int) -> int:
        return sum(1 for m in self.messages[start:stop] if isinstance(m, _STEP_TYPES))

    def keep(
        self, selection: _Selection, positions: Sequence[int], room: int, *, spread: bool = True
    ) -> list[int]:
        """Keep ``positions``, newest first, while their least room fits in ``room``.

        With ``spread``, the kept steps share all of ``room``; else each keeps
        its least room (``share`` may give them more later).
        """
        kept: list[int] = []
        floor = 0
        for position in positions:
            step = self._step_or_none(position)
            if step is None or position in selection.caps:
                continue
            need = step.size(_MIN_STEP_CHARS) + 1 + _MARKER_CHARS
            if floor + need > room:
                break
            kept.append(position)
            floor += need
        self.share(selection, kept, room if spread else floor)
        return kept

    def share(self, selection: _Selection, kept: Sequence[int], room: int) -> None:
        """Give the ``kept`` steps ``room`` characters in all (their lines and gap markers)."""
        for position in kept:
            if position in selection.caps:
                selection.used -= self._line_room(position, selection.caps.pop(position))
        steps = {position: self.step(position) for position in kept}
        for position, cap in _water_fill(steps, room - _MARKER_CHARS * len(kept)).items():
            selection.caps[position] = cap
            selection.used += self._line_room(position, cap)

    def taken(self, selection: _Selection, kept: Sequence[int]) -> int:
        """The room the ``kept`` steps take now."""
        return sum(self._line_room(position, selection.caps[position]) for position in kept)

    def _line_room(self, position: int, cap: int) -> int:
        return self.step(position).size(cap) + 1 + _MARKER_CHARS

    def select_recent(self, selection: _Selection, room: int) -> None:
        """Add the most recent other steps, newest first, while they fit."""
        per_step = max(room // 6, _MIN_STEP_CHARS * 2)
        oldest: int | None = None
        for position in range(len(self.messages) - 1, self.first, -1):
            step = None if position in selection.caps else self._step_or_none(position)
            if step is None:
                continue
            cap = min(per_step, len(step.body), room - step.overhead - 1)
            if cap < min(_MIN_STEP_CHARS, len(step.body)):
                break
            selection.caps[position] = cap
            selection.used += step.size(cap) + 1
            room -= step.size(cap) + 1
            oldest = position
        else:
            return
        # A result whose call did not fit reads as an orphan: drop it too.
        if oldest is not None and self._caller(oldest) not in selection.caps:
            selection.used -= self.step(oldest).size(selection.caps.pop(oldest)) + 1

    @cached_property
    def failure_positions(self) -> list[int]:
        """The latest failure and the call it answers."""
        failure = self._latest_failure()
        return [] if failure is None else list(dict.fromkeys([failure, self._caller(failure)]))

    @cached_property
    def follow_ups(self) -> list[int]:
        """What the person said after the task, newest first."""
        return [
            position
            for position in range(len(self.messages) - 1, self.first, -1)
            if isinstance(self.messages[position], HumanMessage)
            and not is_help_message(self.messages[position])
        ]

    @cached_property
    def evidence_positions(self) -> list[int]:
        """The verdict's evidence after the task, newest first, each result with its call."""
        evidence = self.verdict.evidence if self.verdict is not None else []
        positions: list[int] = []
        for index in sorted(evidence, reverse=True):
            if self.first < index < len(self.messages):
                positions += [index, self._caller(index)]
        return list(dict.fromkeys(positions))

    def _latest_failure(self) -> int | None:
        for position in range(len(self.messages) - 1, self.first, -1):
            message = self.messages[position]
            if isinstance(message, ToolMessage) and is_error(message):
                return position
            if isinstance(message, AIMessage) and message.invalid_tool_calls:
                return position
        return None

    def _caller(self, position: int) -> int:
        """The AI message whose call a tool result answers (the position itself otherwise)."""
        if not isinstance(self.messages[position], ToolMessage):
            return position
        for earlier in range(position - 1, self.first, -1):
            if not isinstance(self.messages[earlier], ToolMessage):
                return earlier if isinstance(self.messages[earlier], AIMessage) else position
        return position

    def _step_or_none(self, position: int) -> _Step | None:
        if position not in self._steps:
            self._steps[position] = _step_of(self.messages[position])
        return self._steps[position]


def _water_fill(steps: dict[int, _Step], room: int) -> dict[int, int]:
    """Share ``room`` among ``steps``: short ones whole, long ones an equal rest each."""
    caps: dict[int, int] = {}
    order = sorted(steps, key=lambda p: len(steps[p].body))
    left = room
    for done, position in enumerate(order):
        step = steps[position]
        share = left // (len(order) - done) - step.overhead - 1
        caps[position] = max(min(len(step.body), share), _MIN_STEP_CHARS)
        left -= step.size(caps[position]) + 1
    return caps


def _step_of(message: BaseMessage) -> _Step | None:
    if isinstance(message, AIMessage):
        calls = describe_call(message)
        invalid = "; ".join(
            f"{call.get('name')}({call.get('args')}) [invalid: {call.get('error')}]"
            for call in message.invalid_tool_calls
        )
        if calls or invalid:
            return _Step("- called ", redact("; ".join(part for part in (calls, invalid) if part)))
        text = redact(str(message.text).strip())
        return _Step("- replied: ", text) if text else None
    if isinstance(message, ToolMessage):
        label = "error" if is_error(message) else "result"
        body = redact(content_text(message.content).strip())
        return _Step(f"  -> {label}: ", body or "(empty)")
    if isinstance(message, HumanMessage):
        prefix = "- received help: " if is_help_message(message) else "- user said: "
        return _Step(prefix, redact(str(message.text).strip()))
    return None


def _is_follow_up(messages: Sequence[BaseMessage], position: int) -> bool:
    text = str(messages[position].text).strip()
    if len(text) > FOLLOW_UP_MAX_CHARS:
        return False
    if _CONTINUATION.match(text):
        return True
    # An answer to the assistant's question continues the same task.
    for earlier in range(position - 1, -1, -1):
        message = messages[earlier]
        if is_help_message(message) or isinstance(message, SystemMessage):
            continue
        if isinstance(message, AIMessage) and not message.tool_calls:
            return _asks(str(message.text))
        if isinstance(message, _STEP_TYPES):
            return False
    return False


def _asks(reply: str) -> bool:
    """Whether the assistant's reply ends by asking the person something."""
    ending = reply[-_ASK_WINDOW:]
    return "?" in ending or _REQUEST.search(ending) is not None


def _first_step(messages: Sequence[BaseMessage]) -> int:
    """Without a human task, steps start after the leading system messages."""
    position = 0
    while position < len(messages) and isinstance(messages[position], SystemMessage):
        position += 1
    return position - 1


def _cut_task(text: str, room: int, statement_end: int, tail: str) -> str:
    """Keep the task's head (and its short last line) within ``room`` characters."""
    if len(text) <= room:
        return text
    if len(tail) > (room - len(_TASK_CUT)) // 4:
        tail = ""
    head_room = room - len(_TASK_CUT) - len(tail)
    if head_room < _MIN_STEP_CHARS:
        return text[: max(room, 0)]
    head = text[:head_room]
    # End at a line break when one is near (but not before the statement's
    # end when it fits), so the last kept line is whole.
    floor = statement_end if statement_end <= head_room else len(head) * 4 // 5
    line_end = head.rfind("\n", floor)
    if line_end >= 0:
        head = head[:line_end]
    return head.rstrip() + _TASK_CUT + tail


def _last_line(text: str) -> str:
    """The task's last line when short: a question after pasted material often comes last."""
    last = text[text.rfind("\n") + 1 :].strip()
    return last if len(last) <= _MAX_TAIL_CHARS else ""


def _statement_end(text: str) -> int:
    """The end of the task's longest tagged block (``<issue>...</issue>``), else of the text.

    Harnesses wrap the material (an issue, a PR description) in tags and put
    generic instructions after it; those instructions are the boilerplate.
    Only tags opening a line count, the first ``_MAX_TAGS`` of them, and only a
    block of at least ``_MIN_STATEMENT_CHARS`` (a wrapped path is not a statement).
    """
    best_length, end = _MIN_STATEMENT_CHARS - 1, len(text)
    for number, opening in enumerate(_OPENING_TAG.finditer(text)):
        if number == _MAX_TAGS:
            break
        closing = text.find(f"</{opening['name']}>", opening.end())
        if closing - opening.end() > best_length:
            best_length = closing - opening.end()
            end = closing + len(opening["name"]) + 3
    return end


def _render(sections: Sequence[tuple[str, str]]) -> str:
    return "".join(f"{title}\n{body}\n\n" for title, body in sections if body)


def _task_text(messages: Sequence[BaseMessage], position: int) -> str:
    if position >= 0:
        return redact(str(messages[position].text).strip()) or "(empty request)"
    system = next((m for m in messages if isinstance(m, SystemMessage)), None)
    text = str(system.text).strip() if system is not None else ""
    return redact(text) or "(no task given)"


def _why_text(verdict: Verdict | None) -> str:
    if verdict is None or not verdict.stuck:
        return ""
    return f"Stuck detector rule `{verdict.rule}`: {redact(verdict.reason)}"


def _compact_json(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)
