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
from json.encoder import c_make_encoder  # type: ignore[attr-defined]
from json.encoder import encode_basestring as _encode_string
from typing import TYPE_CHECKING, Any, NamedTuple, TypeGuard

from langchain_escalate.detector.normalize import (  # normalize_text: re-exported, it lived here
    WINDOW,
    fingerprint,
    normalize_text,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from langchain_core.messages import AIMessage, ToolMessage

HASH_BYTES = 8
"""Digest size of step hashes: 16 hex characters, plenty to tell a conversation's steps apart."""

_EMPTY_HASH = hashlib.blake2b(digest_size=HASH_BYTES)

LABEL_LIMIT = 80
"""Longest excerpt of an action or an observation kept for a verdict's reason."""

MAX_DEPTH = 32
"""Nesting depth of tool-call arguments and content blocks compared; deeper parts are one token."""

TOO_DEEP = "<nested too deep>"
"""What stands for the parts of a value nested deeper than ``MAX_DEPTH``."""

_INT_BITS = 1000
"""Integers longer than this many bits are compared in hex (no 4300-digit limit, no overflow)."""


ERROR_HEAD = 512
"""Characters at the start of a tool output that decide whether it *starts* as an error."""

JSON_ERROR_LIMIT = 65_536
"""Largest JSON tool output parsed for a top-level ``"error"`` key (bigger ones are content)."""

_STARTS_AS_ERROR = re.compile(
    # "Error: ...", "ERROR:\n...", "Exception: ...", "fatal: ...", "ERROR - ...", and LangGraph
    # ToolNode's "Error: ... Please fix your mistakes." / "Error executing tool ..." templates.
    r"\s*(?:(?:error|exception|fatal)\s{0,3}:|(?:error|exception|fatal)\s{1,3}-\s"
    r"|error (?:executing|invoking|calling|running)\b"
    # A Python exception rendered by str() or repr(): "ValueError: ...", "KeyError('x')".
    r"|[A-Za-z_][\w.]{0,120}(?:Error|Exception)\s{0,3}[:(]"
    # File editors (SWE-agent, OpenHands) that report a refused edit without an "ERROR:" line.
    r"|no replacement was performed|invalid `\w{1,40}` parameter|parameter `\w{1,40}` is required)",
    re.IGNORECASE,
)
_SH_NOT_FOUND = re.compile(r"sh: \d+: \S{1,200}: not found\s*\Z")
"""dash's form of "command not found": ``sh: 1: foo: not found``."""

CONFIDENCE_LINE_LIMIT = 200
"""Longest final line read as a ``Confidence: x`` line."""

_CONFIDENCE_LINE = re.compile(
    r"^[\s*_>#-]*confidence[\s*_]*[:=][\s*_]*(?P<value>\d+(?:\.\d+)?|\.\d+)\s*(?P<percent>%)?[\s*_.]*$",
    re.IGNORECASE,
)


class Call(NamedTuple):
    """One tool call, reduced to what identifies it.

    Attributes:
        id: The tool-call id the answer will carry (``None`` when the call has none).
        key: Hash of the tool name and canonical arguments.
        name: The tool's name.
        args: The call's arguments, as the model gave them.
    """

    id: str | None
    key: str
    name: str
    args: Any

    @property
    def label(self) -> str:
        """``name(arg=value, ...)``, shortened, for reasons (written when asked for)."""
        return _call_label(self.name, self.args)


def short_hash(text: str) -> str:
    """Return a short stable hash of ``text`` (hex, 16 characters).

    Example:
        >>> short_hash("a") == short_hash("a") != short_hash("b")
        True
    """
    try:
        data = text.encode()
    except UnicodeEncodeError:  # a lone surrogate (from a JSON "\\ud800" escape) is kept
        data = text.encode("utf-8", "surrogatepass")
    hasher = _EMPTY_HASH.copy()  # cheaper than building a hasher with its parameters
    hasher.update(data)
    return hasher.hexdigest()


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
    calls = []
    for call in message.tool_calls:
        name, args = call["name"], call.get("args", {})
        key = short_hash(name + "\x00" + _canonical_args(args))
        calls.append(Call(call.get("id"), key, name, args))
    if len(calls) > 1:
        calls.sort(key=_call_key)
    return calls


def _call_key(call: Call) -> str:
    return call.key


def action_key(calls: list[Call]) -> str:
    """Return the hash identifying an action (a set of canonical tool calls)."""
    return short_hash("\x00".join(call.key for call in calls))


def action_label(calls: list[Call]) -> str:
    """Return a short human-readable rendering of an action."""
    if len(calls) == 1:
        return calls[0].label  # already shortened, and shortening is idempotent
    return shorten(" + ".join(call.label for call in calls))


def is_error(message: ToolMessage) -> bool:
    r"""Tell whether a tool message reports a *tool failure*: the call did not do its job.

    A tool failure is a ``status`` of ``"error"``, or an output that *starts*
    as an error: ``Error:`` / ``ERROR:`` / ``Exception:`` / ``fatal:`` (any
    case; LangGraph ToolNode's ``"Error: ... Please fix your mistakes."`` and
    ``"Error executing tool ..."``), a Python exception (``ValueError: ...``),
    a file editor's refusal (``No replacement was performed``, ``Invalid `path`
    parameter``), a shell's ``command not found``, or a JSON object with a
    non-empty top-level ``"error"`` (or ``"errors"``) key.

    Content that merely *mentions* an error is not a failure: a traceback or a
    failing test printed by a program the agent ran, a non-zero exit code, an
    error word mid-text. That is the tool doing its job and reporting the
    program's result.

    Args:
        message: The tool message.

    Returns:
        ``True`` when the tool call failed.

    Example:
        >>> from langchain_core.messages import ToolMessage
        >>> is_error(ToolMessage("Error: user not found", tool_call_id="1"))
        True
        >>> crash = "Traceback (most recent call last):\n  File \"repro.py\"\nValueError: boom"
        >>> is_error(ToolMessage(crash, tool_call_id="1"))
        False
    """
    if message.status == "error":
        return True
    return text_is_error(content_text(message.content))


def text_is_error(text: str) -> bool:
    """Tell whether a tool output's text starts as an error (see ``is_error``).

    Reads at most the first ``ERROR_HEAD`` characters, and parses a JSON
    object only up to ``JSON_ERROR_LIMIT`` characters: bounded work per output.
    """
    head = text[:ERROR_HEAD]
    if _STARTS_AS_ERROR.match(head) or _command_not_found(head):
        return True
    return _is_json_error(text)


def _command_not_found(head: str) -> bool:
    # The shell could not run the command at all: "bash: foo: command not found",
    # "zsh: command not found: foo", "sh: 1: foo: not found". Only the first line:
    # a script that prints the phrase later is content.
    first_line = head.lstrip().partition("\n")[0]
    return "command not found" in first_line or _SH_NOT_FOUND.match(first_line) is not None


def _is_json_error(text: str) -> bool:
    if len(text) > JSON_ERROR_LIMIT or '"error' not in text:
        return False
    stripped = text.strip()
    if not stripped.startswith("{"):
        return False
    try:
        payload = json.loads(stripped)
    except (ValueError, RecursionError):
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
    """Collapse white space and cut ``text`` to ``limit`` characters (with an ellipsis).

    Reads only the start of ``text``: bounded work whatever its length.
    """
    start = 0 if text[:1].strip() else len(text) - len(text.lstrip())
    # Collapsing a prefix gives a prefix of the collapsed text: when a short head
    # already fills the limit, the longer one would be cut at the same place.
    quick = " ".join(text[start : start + limit + limit // 4].split())
    if len(quick) > limit:
        return quick[: limit - 1] + "…"
    head = text[start : start + limit * 4]
    cut = " ".join(head.split())
    if len(cut) <= limit and start + len(head) >= len(text.rstrip()):
        return cut
    return cut[: limit - 1] + "…"


def _confidence_line(text: str) -> tuple[float, int] | None:
    """Return the value of a final ``Confidence:`` line and where the line starts."""
    body = text.rstrip()
    start = body.rfind("\n") + 1
    if len(body) - start > CONFIDENCE_LINE_LIMIT:
        return None  # a long last line is prose, and the pattern need not scan it
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
    mean = sum(numbers) / len(numbers)
    # A log-probability is at most 0; anything else is not one (and exp() of it may overflow).
    return _in_unit_range(math.exp(mean)) if mean <= 0 else None


def _in_unit_range(value: float) -> float | None:
    return value if 0.0 <= value <= 1.0 else None


def _is_number(value: Any) -> TypeGuard[float]:
    # bool is an int subclass, and True is not a confidence; an int too large for a
    # float is not one either (math.isfinite would raise on it).
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return value.bit_length() <= _INT_BITS
    return math.isfinite(value)


def _canonical_args(args: Any) -> str:
    if type(args) is not dict:
        return _dumps(_plain(args, 0, _normalize_string))
    # The usual flat dict of strings, without a call per value (same result as _plain).
    plain = {}
    for key, value in args.items():
        plain[key if type(key) is str else _key(key)] = (
            _normalize_string(value) if type(value) is str else _plain(value, 1, _normalize_string)
        )
    return _dumps(plain)


def _canonical_json(value: Any) -> str:
    return _dumps(_plain(value))


def _normalize_string(text: str) -> str:
    if len(text) <= 2 * WINDOW:
        return normalize_text(text)  # what fingerprint does with it, one call less
    return fingerprint(text, exact_middle=True)


def _plain(value: Any, depth: int = 0, strings: Callable[[str], str] | None = None) -> Any:
    # String keys (json cannot sort mixed key types), sorted sets (a set's order
    # changes between processes, and hashes must not), bounded depth (no
    # RecursionError), and huge integers in hex (Python refuses to print more
    # than 4300 decimal digits). ``strings``, when given, rewrites every string
    # value outside sets (tool-call arguments are compared normalized).
    if strings is not None and isinstance(value, str):
        return strings(value)
    if depth > MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, dict):
        return {
            key if type(key) is str else _key(key): _plain(item, depth + 1, strings)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_plain(item, depth + 1, strings) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(item, depth + 1) for item in value), key=_canonical_json)
    huge = isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _INT_BITS
    return hex(value) if huge else value


def _key(key: Any) -> str:
    plain = _plain(key, MAX_DEPTH)
    return plain if isinstance(plain, str) else str(plain)


def _unknown(value: Any) -> str:
    # An object json cannot write: its str() when it has a useful one (a datetime),
    # its type's name when str() itself fails.
    try:
        return str(value)
    except Exception:  # noqa: BLE001 (any user __str__ may raise; the name still identifies it)
        return f"<{type(value).__name__}>"


_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_unknown
)
"""``json.dumps`` with these options, without building an encoder on every call."""

# The C encoder json.dumps builds on every call, built once. Without the circular-
# reference check: ``_plain`` hands it fresh containers of bounded depth, never a cycle.
_C_ENCODE = (
    None
    if c_make_encoder is None
    else c_make_encoder(
        None,
        _unknown,
        _encode_string,
        None,
        _ENCODER.key_separator,
        _ENCODER.item_separator,
        _ENCODER.sort_keys,
        _ENCODER.skipkeys,
        _ENCODER.allow_nan,
    )
)


def _dumps(value: Any) -> str:
    if _C_ENCODE is None:
        return _ENCODER.encode(value)
    return "".join(_C_ENCODE(value, 0))


def _call_label(name: str, args: Any) -> str:
    if not isinstance(args, dict):
        return shorten(f"{name}({_label_json(args)})")
    rendered: list[str] = []
    length = len(name)
    for key, value in args.items():
        if length > LABEL_LIMIT:
            rendered.append("…")  # the label is cut at LABEL_LIMIT anyway
            break
        part = f"{key}={_label_json(value)}"
        rendered.append(part)
        length += len(part) + 2
    return shorten(f"{name}({', '.join(rendered)})")


def _label_json(value: Any) -> str:
    # A label shows LABEL_LIMIT characters: no need to serialize a 1 MB argument for it.
    if isinstance(value, str):
        return _encode_string(value[: LABEL_LIMIT * 2])  # what _ENCODER does with a string
    return _canonical_json(value)
