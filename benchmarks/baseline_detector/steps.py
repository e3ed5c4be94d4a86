"""From messages to comparable steps: actions, observations, errors, confidence.

Two attempts at the same thing rarely produce byte-identical messages: tool-call
ids change, argument keys come back in another order, and tool outputs carry
timestamps, request ids and timings. The functions here reduce a message to the
part that stays put between identical attempts, and to a short stable hash of
that part, so the detector can compare steps without keeping them.

Plain numbers and status words are deliberately left alone: a poll whose status
changes, or a counter that moves, is progress and must not look repeated.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    from langchain_core.messages import AIMessage, ToolMessage

HASH_BYTES = 8
"""Digest size of step hashes: 16 hex characters, plenty to tell a conversation's steps apart."""

LABEL_LIMIT = 80
"""Longest excerpt of an action or an observation kept for a verdict's reason."""

_VOLATILE: tuple[tuple[re.Pattern[str], str], ...] = (
    # A date with a time of day (ISO 8601 and the common "2024-05-20 10:00:01" form).
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
            r"(?:\s?(?:Z|UTC|GMT|[+-]\d{2}:?\d{2}))?(?![\d:])"
        ),
        "<time>",
    ),
    # HTTP dates: "Sat, 28 Nov 2026 17:50:31 GMT".
    (
        re.compile(
            r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} [A-Z][a-z]{2} \d{4} "
            r"\d{2}:\d{2}:\d{2}(?: GMT)?\b"
        ),
        "<time>",
    ),
    # A time of day with fractional seconds is a clock reading, not data.
    (re.compile(r"(?<![\d:])\d{1,2}:\d{2}:\d{2}[.,]\d+\b"), "<time>"),
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        "<uuid>",
    ),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    # Long hex ids (request ids, hashes, trace ids) need a letter and a digit,
    # so long plain numbers (amounts, card numbers) stay as they are.
    (
        re.compile(r"(?<![0-9A-Za-z])(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{16,}\b"),
        "<hex>",
    ),
    # Timings: "12ms", "1.5s", "0.3 s", "took 3 seconds", "elapsed: 2 minutes".
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|µs|us|ns|s)\b"), "<duration>"),
    (
        re.compile(
            r"\b(took|elapsed|latency|duration|in|after)(\s*:?\s*)\d+(?:\.\d+)?\s*"
            r"(?:milliseconds?|seconds?|secs?|minutes?|mins?)\b",
            re.IGNORECASE,
        ),
        r"\1\2<duration>",
    ),
)
_WHITE_SPACE = re.compile(r"\s+")

_ERROR_PREFIX = re.compile(
    # "Error: ...", "error: ...", "ERROR - ...", "Exception: ...", and LangGraph
    # ToolNode's "Error executing tool ..." / "Error invoking tool ..." templates.
    r"\A\s*(?:(?:error|exception|fatal)\s*:|(?:error|exception|fatal)\s+-\s"
    r"|error (?:executing|invoking|calling|running)\b)"
    # A Python exception rendered by str() or repr(): "ValueError: ...", "KeyError('x')".
    r"|\A\s*[A-Za-z_][\w.]*(?:Error|Exception)\s*[:(]",
    re.IGNORECASE,
)
_TRACEBACK = "Traceback (most recent call last):"

_CONFIDENCE_LINE = re.compile(
    r"^[\s*_>#-]*confidence[\s*_]*[:=][\s*_]*(?P<value>\d+(?:\.\d+)?|\.\d+)\s*(?P<percent>%)?[\s*_.]*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Call:
    """One tool call, reduced to what identifies it.

    Attributes:
        id: The tool-call id the answer will carry (``None`` when the call has none).
        key: Hash of the tool name and canonical arguments.
        label: ``name(arg=value, ...)``, shortened, for reasons.
    """

    id: str | None
    key: str
    label: str


def short_hash(text: str) -> str:
    """Return a short stable hash of ``text`` (hex, 16 characters).

    Example:
        >>> short_hash("a") == short_hash("a") != short_hash("b")
        True
    """
    return hashlib.blake2b(
        text.encode("utf-8", "surrogatepass"), digest_size=HASH_BYTES
    ).hexdigest()


def normalize_text(text: str) -> str:
    """Remove what changes between identical attempts: volatile tokens and white-space runs.

    Args:
        text: A tool output or a reply.

    Returns:
        The text with timestamps, UUIDs, hex addresses and ids, and durations
        replaced by placeholders, and white-space runs collapsed.

    Example:
        >>> normalize_text("ok  at 2026-11-28T17:50:31Z in 12ms")
        'ok at <time> in <duration>'
        >>> normalize_text("job 3f2a9c0e-1b2d-4c5e-8f90-a1b2c3d4e5f6 at 0x7f3a2c")
        'job <uuid> at <hex>'
        >>> normalize_text("status: running, 3 of 10 done")
        'status: running, 3 of 10 done'
    """
    for pattern, placeholder in _VOLATILE:
        text = pattern.sub(placeholder, text)
    return _WHITE_SPACE.sub(" ", text).strip()


def content_text(content: str | list[Any]) -> str:
    """Flatten message content to text; non-text blocks become canonical JSON.

    Args:
        content: A message's ``content``: a string or a list of content blocks.

    Returns:
        The text, with each non-text block rendered so that equal blocks give equal text.
    """
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif (
            isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        ):
            parts.append(block["text"])
        else:
            parts.append(_canonical_json(block))
    return "\n".join(parts)


def calls_of(message: AIMessage) -> list[Call]:
    """Return the tool calls of an AI message in canonical form, sorted by key.

    The order of parallel calls, their ids, and the text beside them are not
    part of the action: two messages asking for the same calls are the same action.

    Args:
        message: The AI message.

    Returns:
        One ``Call`` per tool call; empty for a reply.
    """
    calls = [
        Call(
            id=call.get("id"),
            key=short_hash(call["name"] + "\x00" + _canonical_args(call.get("args", {}))),
            label=_call_label(call["name"], call.get("args", {})),
        )
        for call in message.tool_calls
    ]
    return sorted(calls, key=lambda call: call.key)


def action_key(calls: list[Call]) -> str:
    """Return the hash identifying an action (a set of canonical tool calls)."""
    return short_hash("\x00".join(call.key for call in calls))


def action_label(calls: list[Call]) -> str:
    """Return a short human-readable rendering of an action."""
    return shorten(" + ".join(call.label for call in calls))


def is_error(message: ToolMessage) -> bool:
    """Tell whether a tool message reports a failure.

    A tool message is an error when its ``status`` is ``"error"``, or its text
    has a known error shape: a leading ``Error:`` (any case; LangGraph
    ToolNode's ``"Error: ... Please fix your mistakes."`` and ``"Error
    executing tool ..."``), a leading Python exception (``ValueError: ...``),
    a Python traceback, or a JSON object with a non-empty top-level ``"error"``
    (or ``"errors"``) key.

    Args:
        message: The tool message.

    Returns:
        ``True`` when the tool call failed.

    Example:
        >>> from langchain_core.messages import ToolMessage
        >>> is_error(ToolMessage("Error: user not found", tool_call_id="1"))
        True
        >>> is_error(ToolMessage('{"status": "failed", "retries": 2}', tool_call_id="1"))
        False
    """
    if message.status == "error":
        return True
    return text_is_error(content_text(message.content))


def text_is_error(text: str) -> bool:
    """Tell whether a tool output's text has a known error shape (see ``is_error``)."""
    if _ERROR_PREFIX.match(text) or _TRACEBACK in text:
        return True
    stripped = text.strip()
    if not stripped.startswith("{"):
        return False
    try:
        payload = json.loads(stripped)
    except ValueError:
        return False
    return isinstance(payload, dict) and bool(payload.get("error") or payload.get("errors"))


def read_confidence(message: AIMessage) -> float | None:
    r"""Return a reply's self-rated confidence in 0..1, or ``None`` when it has none.

    Sources, first found wins: ``response_metadata["confidence"]`` (a number in
    0..1); a final line ``Confidence: 0.35`` or ``Confidence: 35%`` (any case,
    Markdown emphasis allowed); and, as a second source, the provider's
    token logprobs (``response_metadata["logprobs"]["content"]``, OpenAI
    shape) as ``exp(mean logprob)``. Values outside 0..1 are ignored.

    Args:
        message: The AI message.

    Returns:
        The confidence, or ``None``.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> read_confidence(AIMessage("Paris.\nConfidence: 0.35"))
        0.35
        >>> read_confidence(AIMessage("Paris.", response_metadata={"confidence": 0.9}))
        0.9
        >>> read_confidence(AIMessage("Paris.")) is None
        True
    """
    metadata = message.response_metadata or {}
    stated = metadata.get("confidence")
    if _is_number(stated):
        return _in_unit_range(float(stated))
    from_text = _confidence_line(content_text(message.content))
    if from_text is not None:
        return _in_unit_range(from_text[0])
    return _logprob_confidence(metadata.get("logprobs"))


def strip_confidence(text: str) -> str:
    r"""Return the reply without its final ``Confidence: x`` line.

    Args:
        text: The reply's text.

    Returns:
        The text without that line (and the white space before it); the text
        unchanged when it has no such line.

    Example:
        >>> strip_confidence("The answer is 42.\n\nConfidence: 0.8")
        'The answer is 42.'
    """
    found = _confidence_line(text)
    if found is None:
        return text
    return text[: found[1]].rstrip()


def shorten(text: str, limit: int = LABEL_LIMIT) -> str:
    """Collapse white space and cut ``text`` to ``limit`` characters (with an ellipsis)."""
    text = _WHITE_SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _confidence_line(text: str) -> tuple[float, int] | None:
    """Return the value of a final ``Confidence:`` line and where the line starts."""
    body = text.rstrip()
    start = body.rfind("\n") + 1
    match = _CONFIDENCE_LINE.match(body[start:])
    if match is None:
        return None
    value = float(match["value"])
    if match["percent"]:
        value /= 100
    return value, start


def _logprob_confidence(logprobs: Any) -> float | None:
    tokens = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(tokens, list):
        return None
    values = [token.get("logprob") for token in tokens if isinstance(token, dict)]
    numbers = [
        float(value) for value in values if isinstance(value, (int, float)) and _is_number(value)
    ]
    if not numbers:
        return None
    return _in_unit_range(math.exp(sum(numbers) / len(numbers)))


def _in_unit_range(value: float) -> float | None:
    return value if 0.0 <= value <= 1.0 else None


def _is_number(value: Any) -> TypeGuard[float]:
    # bool is an int subclass, and True is not a confidence.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _canonical_args(args: Any) -> str:
    return _canonical_json(_normalize_values(args))


def _normalize_values(value: Any) -> Any:
    if isinstance(value, str):
        return normalize_text(value)
    if isinstance(value, dict):
        return {str(key): _normalize_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalize_values(item) for item in value]
    return value


def _canonical_json(value: Any) -> str:
    return json.dumps(
        _plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def _plain(value: Any) -> Any:
    # String keys (json cannot sort mixed key types) and sorted sets (a set's
    # order changes between processes, and hashes must not).
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(item) for item in value), key=_canonical_json)
    return value


def _call_label(name: str, args: Any) -> str:
    if isinstance(args, dict):
        rendered = ", ".join(f"{key}={_canonical_json(value)}" for key, value in args.items())
    else:
        rendered = _canonical_json(args)
    return shorten(f"{name}({rendered})")
