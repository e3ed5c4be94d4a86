"""The bounded briefing a strong model reads when the weak model is stuck.

The briefing is plain text in four parts: the task (the first human message of
the current turn), a compact account of what was tried and what came back, why
help is needed (the detector's rule and reason), and the question. Whatever the
length of the history, it stays under ``max_tokens``: long observations are cut
in the middle first, then the oldest steps are dropped (and counted), then the
task itself is cut in the middle.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_escalate.records import RECORD_KEY

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_escalate.detector.verdict import Verdict

CHARS_PER_TOKEN = 4
"""Cheap token estimate: about four characters per token for English and code."""

DEFAULT_QUESTION = (
    "The assistant is stuck. What should it do differently to finish the task? "
    "Answer with short, concrete guidance it can act on."
)

_ELLIPSIS = " [...] "
_MIN_OBSERVATION_CHARS = 120


def estimate_tokens(text: str) -> int:
    """Estimate the tokens of ``text`` without a tokenizer (about 4 characters a token).

    Args:
        text: Any text.

    Returns:
        The estimated token count, at least 1 for non-empty text.
    """
    return -(-len(text) // CHARS_PER_TOKEN)


def truncate_middle(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` characters, keeping its start and end.

    The start of an error usually names it and the end usually says where it
    happened, so the middle is what goes.

    Args:
        text: The text to shorten.
        max_chars: Upper bound on the result's length.

    Returns:
        ``text`` itself when short enough, else its head and tail joined by ``[...]``.
    """
    if len(text) <= max_chars:
        return text
    if max_chars <= len(_ELLIPSIS):
        return text[:max_chars]
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

    Args:
        messages: The conversation as the weak model saw it. The task is the
            first human message of the current turn; every later message is
            summarized as a step (a tool call and its result, a reply, help
            already received).
        verdict: The detector's verdict, when a rule fired; its rule and reason
            say why help is needed.
        question: What to ask the strong model; a default asks for guidance.
        context: Extra context from the caller (the ask-expert tool's
            ``context`` argument), shown after the task.
        max_tokens: Upper bound on the briefing, estimated at 4 characters a
            token.

    Returns:
        The briefing text, at most ``max_tokens * 4`` characters.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> text = build_briefing([HumanMessage("Find the bug")], question="Where is it?")
        >>> "Find the bug" in text and "Where is it?" in text
        True
    """
    budget = max_tokens * CHARS_PER_TOKEN
    start = turn_start(messages)
    task = _task_text(messages, start)
    ask = truncate_middle(question or DEFAULT_QUESTION, budget // 6)
    why = _why_text(verdict)
    extra = truncate_middle(context, budget // 6) if context else ""
    # The task may be long (a pasted file); it gets at most a third of the room.
    task = truncate_middle(task, max(budget // 3, _MIN_OBSERVATION_CHARS))
    sections = [("## Task", task)]
    if extra:
        sections.append(("## Context", extra))
    fixed = _render(sections) + _render([("## Why help is needed", why), ("## Question", ask)])
    room = budget - len(fixed) - len("## What was tried\n\n")
    steps = _steps_text(messages[start + 1 :], room)
    if steps:
        sections.append(("## What was tried", steps))
    if why:
        sections.append(("## Why help is needed", why))
    sections.append(("## Question", ask))
    return _render(sections)[:budget].rstrip()


def _render(sections: Sequence[tuple[str, str]]) -> str:
    return "".join(f"{title}\n{body}\n\n" for title, body in sections if body)


def _task_text(messages: Sequence[BaseMessage], start: int) -> str:
    if not messages:
        return "(no task given)"
    first = messages[start]
    if isinstance(first, HumanMessage) and not is_help_message(first):
        return _text_of(first) or "(empty request)"
    system = next((m for m in messages if isinstance(m, SystemMessage)), None)
    return _text_of(system) if system is not None else "(no task given)"


def _why_text(verdict: Verdict | None) -> str:
    if verdict is None or not verdict.stuck:
        return ""
    return f"Stuck detector rule `{verdict.rule}`: {verdict.reason}"


def _steps_text(steps: Sequence[BaseMessage], room: int) -> str:
    """Render the most recent steps that fit in ``room`` characters, oldest first."""
    if room <= 0 or not steps:
        return ""
    # An observation may take an eighth of the room: enough to read an error,
    # too little for one huge tool result to push every other step out.
    per_line = max(room // 8, _MIN_OBSERVATION_CHARS)
    lines: list[str] = []
    used = 0
    omitted = 0
    for index in range(len(steps) - 1, -1, -1):
        line = _step_line(steps[index], per_line)
        if not line:
            continue
        if used + len(line) + 1 > room - 40:  # keep room for the "omitted" line
            omitted = sum(1 for m in steps[: index + 1] if not isinstance(m, SystemMessage))
            break
        lines.append(line)
        used += len(line) + 1
    lines.reverse()
    if omitted:
        lines.insert(0, f"- ({omitted} earlier steps omitted)")
    return "\n".join(lines)


def _step_line(message: BaseMessage, max_chars: int) -> str:
    if isinstance(message, AIMessage):
        if message.tool_calls:
            return "- called " + truncate_middle(describe_call(message), max_chars)
        text = _text_of(message)
        return "- replied: " + truncate_middle(text, max_chars) if text else ""
    if isinstance(message, ToolMessage):
        label = "error" if message.status == "error" else "result"
        return f"  -> {label}: " + truncate_middle(_text_of(message) or "(empty)", max_chars)
    if isinstance(message, HumanMessage):
        prefix = "- received help: " if is_help_message(message) else "- user said: "
        return prefix + truncate_middle(_text_of(message), max_chars)
    return ""


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


def _compact_json(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)


def _text_of(message: BaseMessage) -> str:
    return " ".join(str(message.text).split())
