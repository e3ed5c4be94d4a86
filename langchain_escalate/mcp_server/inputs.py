"""What MCP clients send, checked before anything is paid: sizes, files, transcripts.

Every limit is a documented cap (``InputLimits``); going over one is a
``ToolInputError`` whose message names the argument, the size and the cap,
so the calling model can fix its call. Files are read only inside the
server's working directory: a path is resolved (symlinks included) before it
is checked, so ``../``, an absolute path elsewhere or a link pointing out
are all refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_escalate.detector.formats import (
    MessageFormatError,
    check_tool_answers,
    messages_from_dicts,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_core.messages import BaseMessage

__all__ = ["InputLimits", "ToolInputError", "check_text", "read_files", "read_transcript"]

KIB = 1024


class ToolInputError(ValueError):
    """An argument the server refuses; the message says which, why, and how to fix it."""


@dataclass(frozen=True)
class InputLimits:
    """Caps on what one tool call may send.

    Attributes:
        max_question_chars: ``ask_expert``'s ``question``.
        max_context_chars: ``ask_expert``'s ``context``.
        max_files: Paths in one ``files`` list.
        max_file_bytes: One file.
        max_total_file_bytes: All the files of one call together.
        max_transcript_messages: Messages in one ``check_stuck`` transcript.
        max_transcript_chars: The transcript as JSON text.
    """

    max_question_chars: int = 4_000
    max_context_chars: int = 20_000
    max_files: int = 10
    max_file_bytes: int = 64 * KIB
    max_total_file_bytes: int = 192 * KIB
    max_transcript_messages: int = 2_000
    max_transcript_chars: int = 2_000_000


def check_text(name: str, value: str | None, cap: int) -> None:
    """Refuse a text argument longer than its cap.

    Args:
        name: The argument, as the client named it.
        value: Its value (``None``: absent).
        cap: The most characters allowed.

    Raises:
        ToolInputError: ``value`` is longer than ``cap``.
    """
    if value is not None and len(value) > cap:
        msg = f"{name} is {len(value):,} characters, over the cap of {cap:,}; send less"
        raise ToolInputError(msg)


def read_files(paths: Sequence[str], root: Path, limits: InputLimits) -> str:
    """Read files inside ``root`` into one text block for the briefing's context.

    Args:
        paths: File paths, relative to ``root`` or absolute (inside ``root``).
        root: The working directory; nothing outside it is read.
        limits: The caps on the number of files and their sizes.

    Returns:
        Each file as ``--- path ---`` followed by its text, in the order given
        (a path named twice is read once).

    Raises:
        ToolInputError: Too many files, a path outside ``root``, a file that
            does not exist, is not a regular file, is not UTF-8 text, or is
            over a size cap.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = (root / "notes.txt").write_text("use v2")
        >>> print(read_files(["notes.txt"], root, InputLimits()))
        --- notes.txt ---
        use v2
    """
    unique = list(dict.fromkeys(paths))
    if len(unique) > limits.max_files:
        msg = f"files names {len(unique)} files, over the cap of {limits.max_files}"
        raise ToolInputError(msg)
    base = root.resolve()
    blocks: list[str] = []
    total = 0
    for name in unique:
        path = _inside(name, base)
        data = _read_capped(name, path, limits.max_file_bytes)
        total += len(data)
        if total > limits.max_total_file_bytes:
            msg = (
                f"files total more than {limits.max_total_file_bytes:,} bytes "
                f"(the cap for one call) by {name!r}; attach fewer or smaller files"
            )
            raise ToolInputError(msg)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            msg = f"file {name!r} is not UTF-8 text; attach source or text files only"
            raise ToolInputError(msg) from None
        blocks.append(f"--- {path.relative_to(base).as_posix()} ---\n{text.rstrip()}")
    return "\n\n".join(blocks)


def read_transcript(transcript: Any, limits: InputLimits) -> list[BaseMessage]:
    """Read a ``check_stuck`` transcript into messages, as ``langchain-escalate scan`` reads files.

    Args:
        transcript: A list of message objects (OpenAI chat format or LangChain
            message dicts), or that list as JSON text, or JSONL text (one
            message a line).
        limits: The caps on the transcript's size.

    Returns:
        The messages, in order.

    Raises:
        ToolInputError: The transcript is over a cap, is not a list of
            messages, or holds a message that cannot be read (named by index).
    """
    if isinstance(transcript, str):
        check_text("transcript", transcript, limits.max_transcript_chars)
        transcript = _parse_text(transcript)
    elif isinstance(transcript, list):
        size = len(json.dumps(transcript, ensure_ascii=False, default=str))
        if size > limits.max_transcript_chars:
            msg = (
                f"transcript is {size:,} characters as JSON, over the cap of "
                f"{limits.max_transcript_chars:,}; send the recent part"
            )
            raise ToolInputError(msg)
    else:
        msg = f"transcript must be a list of messages, got {type(transcript).__name__}"
        raise ToolInputError(msg)
    if len(transcript) > limits.max_transcript_messages:
        msg = (
            f"transcript has {len(transcript):,} messages, over the cap of "
            f"{limits.max_transcript_messages:,}; send the recent part"
        )
        raise ToolInputError(msg)
    try:
        messages = messages_from_dicts(transcript)
        check_tool_answers(messages)
    except MessageFormatError as error:
        msg = f"transcript: {error}"
        raise ToolInputError(msg) from None
    return messages


def _inside(name: str, base: Path) -> Path:
    candidate = Path(name).expanduser()
    try:
        path = (candidate if candidate.is_absolute() else base / candidate).resolve(strict=True)
    except FileNotFoundError:
        msg = f"file {name!r} does not exist (paths are relative to {base})"
        raise ToolInputError(msg) from None
    except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop
        msg = f"file {name!r} cannot be resolved: {error}"
        raise ToolInputError(msg) from None
    if not path.is_relative_to(base):
        msg = (
            f"file {name!r} is outside the working directory {base}; only files inside it are read"
        )
        raise ToolInputError(msg)
    if not path.is_file():
        msg = f"file {name!r} is not a regular file"
        raise ToolInputError(msg)
    return path


def _read_capped(name: str, path: Path, cap: int) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(cap + 1)
    except OSError as error:
        msg = f"file {name!r} cannot be read: {error.strerror or error}"
        raise ToolInputError(msg) from None
    if len(data) > cap:
        msg = (
            f"file {name!r} is over the cap of {cap:,} bytes per file; "
            "put the relevant excerpt in context instead"
        )
        raise ToolInputError(msg)
    return data


def _parse_text(text: str) -> list[Any]:
    """A JSON list of messages, or JSONL with one message a line."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg != "Extra data":
            where = f"line {error.lineno} column {error.colno}"
            msg = f"transcript is not valid JSON ({where}: {error.msg})"
            raise ToolInputError(msg) from None
        return _parse_jsonl(text)
    except RecursionError:
        msg = "transcript: the JSON is nested too deeply to be a conversation"
        raise ToolInputError(msg) from None
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        msg = f"transcript must be a list of messages, got JSON {type(value).__name__}"
        raise ToolInputError(msg)
    return value


def _parse_jsonl(text: str) -> list[Any]:
    items: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as error:
                msg = f"transcript line {number}: invalid JSON at column {error.colno}: {error.msg}"
                raise ToolInputError(msg) from None
    return items
