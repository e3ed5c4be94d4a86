"""The bounded briefing a strong model reads when the weak model is stuck (docs/briefing.md)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from typing import TYPE_CHECKING

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately

from langchain_escalate.detector.steps import content_text, is_error
from langchain_escalate.records import RECORD_KEY
from langchain_escalate.redact import redact

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_escalate.detector.verdict import Verdict

CHARS_PER_TOKEN = 4  # characters a token, as count_tokens_approximately counts them
MIN_MAX_TOKENS = 50  # the smallest bound a briefing can be built for
FOLLOW_UP_MAX_CHARS = 400  # the longest human message that can be a follow-up, not a task
DEFAULT_QUESTION = (
    "The assistant is stuck. What should it do differently to finish the task? "
    "Answer with short, concrete guidance it can act on."
)

_ELLIPSIS = " [...] "
_TASK_CUT = "\n[... the rest of the task is cut here ...]\n"
_MIN_STEP_CHARS = 80  # enough to read the head and tail of an error
_MARKER_CHARS = 32  # room kept for each "(N steps omitted)" line
_OPENING_TAG = re.compile(r"^<(?P<name>[A-Za-z][\w.-]*)(?:\s[^>\n]*)?>", re.MULTILINE)
_MAX_TAGS, _MIN_STATEMENT_CHARS, _MAX_TAIL_CHARS = 16, 200, 200
_ASK_WINDOW = 300  # how much of a reply's end is read for a question to the person
_REQUEST = re.compile(
    r"\b(?:please\s+(?:provide|confirm|share|specify|send|tell|let\s+me\s+know)"
    r"|let\s+me\s+know|i(?:'ll|\s+will)?\s+need|could\s+you|can\s+you|would\s+you)\b",
    re.IGNORECASE,
)
_CONTINUATION = re.compile(
    r"\W*(?:please\s+|pls\s+|ok(?:ay)?[,.!]?\s+|now\s+)?"
    r"(?:continue|go\s+on|go\s+ahead|keep\s+going|keep\s+working|carry\s+on|proceed|resume"
    r"|try\s+again|retry|next|yes|yeah|yep|ok|okay|sure|do\s+it|done|and\?)\b",
    re.IGNORECASE,
)
_STEP_TYPES = (AIMessage, ToolMessage, HumanMessage)


def estimate_tokens(text: str) -> int:
    """The ``count_tokens_approximately`` tokens of ``text`` sent as one message.

    Example:
        >>> estimate_tokens("x" * 400) > 100
        True
    """
    return count_tokens_approximately([HumanMessage(text)])


def truncate_middle(text: str, max_chars: int) -> str:
    """Cut ``text`` to ``max_chars``, keeping its head (what failed) and tail (where).

    Example:
        >>> truncate_middle("a" * 50 + "b" * 50, 20)
        'aaaaaaa [...] bbbbbb'
    """
    if len(text) <= max_chars:
        return text
    if max_chars <= len(_ELLIPSIS):
        return text[: max(max_chars, 0)]
    keep = max_chars - len(_ELLIPSIS)
    return text[: keep - keep // 2] + _ELLIPSIS + text[len(text) - keep // 2 :]


def is_help_message(message: BaseMessage) -> bool:
    """Whether an escalation added ``message`` (it carries an ``EscalationRecord``)."""
    return RECORD_KEY in message.additional_kwargs


def turn_start(messages: Sequence[BaseMessage]) -> int:
    """The position of the last human message a person wrote (0 when none)."""
    return next((p for p in range(len(messages) - 1, -1, -1) if _is_human(messages[p])), 0)


def task_position(messages: Sequence[BaseMessage]) -> int:
    """The position of the task: the last human message not a follow-up (-1 when none).

    Example:
        >>> task_position([HumanMessage("Fix the build."), HumanMessage("Please continue.")])
        0
    """
    humans = [p for p in range(len(messages) - 1, -1, -1) if _is_human(messages[p])]
    last = humans[-1] if humans else -1  # when every one is a follow-up, the first
    return next((p for p in humans if not _is_follow_up(messages, p)), last)


def describe_call(message: AIMessage) -> str:
    """An AI message's tool calls as ``name({"arg":1}); other(...)`` (sorted keys)."""
    return "; ".join(f"{c['name']}({_compact_json(c['args'])})" for c in message.tool_calls)


def build_briefing(
    messages: Sequence[BaseMessage],
    *,
    verdict: Verdict | None = None,
    question: str | None = None,
    context: str | None = None,
    max_tokens: int = 1500,
) -> str:
    """Write the briefing the strong model reads; ``estimate_tokens(text) <= max_tokens``.

    Args:
        messages: The conversation as the weak model saw it: the task is the last human
            message that is not a follow-up, and every message after it is a step.
        verdict: Its rule and reason say why help is needed; its ``evidence`` is kept first.
        question: What to ask; by default, for guidance.
        context: Extra context from the caller, shown after the task.
        max_tokens: Upper bound on the briefing sent as one message.

    Raises:
        ValueError: ``max_tokens`` is below ``MIN_MAX_TOKENS``.

    Example:
        >>> text = build_briefing([HumanMessage("Find the bug")], question="Where is it?")
        >>> "Find the bug" in text and "Where is it?" in text
        True
    """
    if max_tokens < MIN_MAX_TOKENS:
        msg = f"build_briefing: max_tokens must be at least {MIN_MAX_TOKENS}, got {max_tokens}"
        raise ValueError(msg)
    why = ""
    if verdict is not None and verdict.stuck:
        why = f"Stuck detector rule `{verdict.rule}`: {redact(verdict.reason)}"
    evidence = verdict.evidence if verdict is not None else []
    ask, extra = redact(question or DEFAULT_QUESTION), redact((context or "").strip())
    briefing = _Briefing(messages, evidence, ask, why, extra)
    budget = CHARS_PER_TOKEN * (max_tokens - estimate_tokens(""))
    # Should count_tokens_approximately count otherwise one day, shrink until the briefing fits.
    for _ in range(5):
        text = briefing.render(budget)
        excess = estimate_tokens(text) - max_tokens
        if excess <= 0:
            return text
        budget -= excess * CHARS_PER_TOKEN
    while text and estimate_tokens(text) > max_tokens:
        text = text[: len(text) - CHARS_PER_TOKEN]
    return text


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
        return self.overhead + min(cap, len(self.body))


class _Briefing:
    """The parts of a briefing; ``render`` keeps steps in ``caps`` (with their room) to fit."""

    def __init__(
        self, messages: Sequence[BaseMessage], evidence: list[int], ask: str, why: str, extra: str
    ) -> None:
        self.messages, self.ask, self.why, self.extra = messages, ask, why, extra
        self._steps: dict[int, _Step] = {}
        first = task_position(messages)
        if first >= 0:
            self.task = redact(str(messages[first].text).strip()) or "(empty request)"
        else:  # the first system message stands for the task; steps start after the leading ones
            system = (m.text for m in messages if isinstance(m, SystemMessage))
            self.task = redact(str(next(system, "")).strip()) or "(no task given)"
            while first + 1 < len(messages) and isinstance(messages[first + 1], SystemMessage):
                first += 1
        self.first, self.statement_end = first, _statement_end(self.task)
        last = self.task[self.task.rfind("\n") + 1 :].strip()
        # A short last line is kept when the task is cut: a question after pasted material.
        self.tail = last if len(last) <= _MAX_TAIL_CHARS else ""
        self.statement = min(len(self.task), self.statement_end + len(_TASK_CUT) + len(self.tail))
        after = range(len(messages) - 1, first, -1)
        failed = next((p for p in after if _failed(messages[p])), None)
        failing = [] if failed is None else [failed, self._caller(failed)]
        # First the latest failure with its call, and what the person said after the task;
        self.urgent = list(dict.fromkeys(failing + [p for p in after if _is_human(messages[p])]))
        # then the evidence after the task, newest first, each result with its call.
        evidence = [i for i in sorted(evidence, reverse=True) if first < i < len(messages)]
        self.evidence = list(dict.fromkeys(p for i in evidence for p in (i, self._caller(i))))

    def render(self, budget: int) -> str:
        self.caps: dict[int, int] = {}
        self.used = _MARKER_CHARS
        ask = truncate_middle(self.ask, budget // 6)
        why = truncate_middle(self.why, budget // 8)
        extra = truncate_middle(self.extra, budget // 8)
        end = [("## Why help is needed", why), ("## Question", ask)]
        fixed = [("## Task", "-"), ("## Context", extra), ("## What was tried", "-"), *end]
        room = budget - len(_render(fixed))
        # A task (or its statement) that fits in half the bound is kept whole; else a third.
        whole = (len(self.task), self.statement)
        task_room = next((n for n in whole if n <= budget // 2), budget // 3)
        self.keep(self.urgent, min(room - task_room, budget // 4) - self.used)
        evidence = self.keep(self.evidence, room - task_room - self.used, spread=False)
        # The statement comes before the evidence's room beyond its least.
        task_room = max(task_room, min(self.statement, budget * 3 // 4, room - self.used))
        spare = room - task_room - self.used
        self.share(evidence, sum(self.line_room(p, self.caps[p]) for p in evidence) + spare)
        self.recent(room - task_room - self.used)
        task = _cut_task(self.task, max(room - self.used, task_room), self.statement_end, self.tail)
        tried = ("## What was tried", self.render_steps())
        return _render([("## Task", task), ("## Context", extra), tried, *end]).rstrip()

    def step(self, position: int) -> _Step | None:
        """The message at ``position`` as a step (None when it is none), made once."""
        if position not in self._steps and (step := _step_of(self.messages[position])):
            self._steps[position] = step
        return self._steps.get(position)

    def line_room(self, position: int, cap: int) -> int:
        return self._steps[position].size(cap) + 1 + _MARKER_CHARS

    def keep(self, positions: Sequence[int], room: int, *, spread: bool = True) -> list[int]:
        """Keep ``positions`` while their least fits in ``room``; all of it when ``spread``."""
        chosen: list[int] = []
        floor = 0
        for position in (p for p in positions if p not in self.caps and self.step(p)):
            need = self.line_room(position, _MIN_STEP_CHARS)
            if floor + need > room:
                break
            chosen.append(position)
            floor += need
        self.share(chosen, room if spread else floor)
        return chosen

    def share(self, chosen: Sequence[int], room: int) -> None:
        """Give the ``chosen`` steps ``room`` in all: short ones whole, long ones an equal rest."""
        for position in chosen:
            if position in self.caps:
                self.used -= self.line_room(position, self.caps.pop(position))
        left = room - _MARKER_CHARS * len(chosen)
        order = sorted(chosen, key=lambda p: len(self._steps[p].body))
        for done, position in enumerate(order):
            step = self._steps[position]
            share = left // (len(order) - done) - step.overhead - 1
            self.caps[position] = max(min(len(step.body), share), _MIN_STEP_CHARS)
            left -= step.size(self.caps[position]) + 1
            self.used += self.line_room(position, self.caps[position])

    def recent(self, room: int) -> None:
        """Add the most recent other steps, newest first, while they fit."""
        per_step = max(room // 6, _MIN_STEP_CHARS * 2)
        oldest: int | None = None
        for position in range(len(self.messages) - 1, self.first, -1):
            step = None if position in self.caps else self.step(position)
            if step is None:
                continue
            cap = min(per_step, len(step.body), room - step.overhead - 1)
            if cap < min(_MIN_STEP_CHARS, len(step.body)):
                # A result whose call did not fit reads as an orphan: drop it too.
                if oldest is not None and self._caller(oldest) not in self.caps:
                    self.used -= self._steps[oldest].size(self.caps.pop(oldest)) + 1
                return
            self.caps[position] = cap
            self.used += step.size(cap) + 1
            room -= step.size(cap) + 1
            oldest = position

    def render_steps(self) -> str:
        lines: list[str] = []
        previous = self.first
        for position in sorted(self.caps):
            if skipped := self._count(previous + 1, position):
                word = "earlier steps" if previous == self.first else "steps"
                lines.append(f"- ({skipped} {word} omitted)")
            lines.append(self._steps[position].render(self.caps[position]))
            previous = position
        if not lines and self._count(self.first + 1, len(self.messages)):
            lines.append("- (every step omitted: no room left)")
        return "\n".join(lines)

    def _count(self, start: int, stop: int) -> int:
        return sum(isinstance(m, _STEP_TYPES) for m in self.messages[start:stop])

    def _caller(self, position: int) -> int:
        """The AI message whose call a tool result answers (the position itself otherwise)."""
        back = range(position, self.first, -1)
        caller = next((p for p in back if not isinstance(self.messages[p], ToolMessage)), position)
        return caller if isinstance(self.messages[caller], AIMessage) else position


def _step_of(message: BaseMessage) -> _Step | None:
    if isinstance(message, AIMessage):
        invalid = [
            f"{call.get('name')}({call.get('args')}) [invalid: {call.get('error')}]"
            for call in message.invalid_tool_calls
        ]
        if calls := "; ".join(filter(None, [describe_call(message), *invalid])):
            return _Step("- called ", redact(calls))
        text = redact(str(message.text).strip())
        return _Step("- replied: ", text) if text else None
    if isinstance(message, ToolMessage):
        body = redact(content_text(message.content).strip())
        return _Step(f"  -> {'error' if is_error(message) else 'result'}: ", body or "(empty)")
    if isinstance(message, HumanMessage):
        prefix = "- received help: " if is_help_message(message) else "- user said: "
        return _Step(prefix, redact(str(message.text).strip()))
    return None


def _failed(message: BaseMessage) -> bool:
    """A failing tool result, or a reply with an invalid tool call."""
    if isinstance(message, ToolMessage):
        return is_error(message)
    return isinstance(message, AIMessage) and bool(message.invalid_tool_calls)


def _is_human(message: BaseMessage) -> bool:
    """A human message a person wrote (not help added by an escalation)."""
    return isinstance(message, HumanMessage) and not is_help_message(message)


def _is_follow_up(messages: Sequence[BaseMessage], position: int) -> bool:
    text = str(messages[position].text).strip()
    if len(text) > FOLLOW_UP_MAX_CHARS:
        return False
    if _CONTINUATION.match(text):
        return True
    # An answer to the assistant's question continues the same task.
    before = reversed(messages[:position])
    reply = next((m for m in before if isinstance(m, _STEP_TYPES) and not is_help_message(m)), None)
    if not isinstance(reply, AIMessage) or reply.tool_calls:
        return False
    ending = str(reply.text)[-_ASK_WINDOW:]
    return "?" in ending or _REQUEST.search(ending) is not None


def _statement_end(task: str) -> int:
    """The end of the longest of the first tagged blocks (``<issue>...</issue>``), or len(task)."""
    best, end = _MIN_STATEMENT_CHARS - 1, len(task)
    for tag in islice(_OPENING_TAG.finditer(task), _MAX_TAGS):
        closing = task.find(f"</{tag['name']}>", tag.end())
        if closing - tag.end() > best:
            best, end = closing - tag.end(), closing + len(tag["name"]) + 3
    return end


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
    # End at a line break when one is near (not before the statement's end when it fits).
    floor = statement_end if statement_end <= head_room else len(head) * 4 // 5
    line_end = head.rfind("\n", floor)
    return (head[:line_end] if line_end >= 0 else head).rstrip() + _TASK_CUT + tail


def _fence_for(body: str) -> str:
    fence = "```"
    while fence in body:
        fence += "`"
    return fence


def _render(sections: Sequence[tuple[str, str]]) -> str:
    return "".join(f"{title}\n{body}\n\n" for title, body in sections if body)


def _compact_json(value: object) -> str:
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)
