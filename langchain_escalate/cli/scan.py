"""``langchain-escalate scan``: replay recorded conversations through the stuck detector.

Each file is read whole (a JSON list of messages, JSONL with one message a
line, a ``{"messages": [...]}`` state dump or a LangSmith run export;
LangChain message dicts or OpenAI chat format; ``-`` is stdin), then fed to a
fresh detector one message at a time. A bad file gets one line on stderr naming the
file and the message, and the other files are still scanned; the exit code is
2 when any file could not be read, else 0. Being stuck is a finding, not an
error: it does not change the exit code.

Only the detector is imported here: ``scan`` starts fast and never loads
litellm or LangGraph. The YAML config loader is imported only for ``--config``,
the briefing builder only for ``--briefing``.

Hostile files get one error line each, never a hang or a traceback: only
regular files (and stdin) are read, at most ``MAX_BYTES``; nesting, huge
integers and lone surrogates are refused or escaped; control characters in
text output are escaped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage

from langchain_escalate.detector import DetectorConfig, StuckDetector, Verdict, messages_from_dicts
from langchain_escalate.detector.formats import MessageFormatError, check_tool_answers
from langchain_escalate.detector.steps import content_text, shorten
from langchain_escalate.redact import redact, redact_data

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EVIDENCE_SHOWN = 12
"""Evidence messages the text output prints per verdict (the latest ones)."""
MAX_BYTES = 64 * 1024 * 1024
"""Largest conversation file ``scan`` reads (64 MiB); bigger files are refused, not truncated."""
PROGRESS_MIN_FILES = 20
"""Files from which a progress bar is drawn on stderr (only when stderr is a terminal)."""
BRIEFING_TOKENS = 1500
"""Default bound of ``--briefing`` (the briefing builder's own default)."""
_JSON_KINDS = {str: "a string", bool: "a boolean", type(None): "null"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class ScanInputError(Exception):
    """A file ``scan`` cannot read; the message is one line for stderr."""


@dataclass(frozen=True)
class ScanResult:
    """What the detector said about one conversation.

    Attributes:
        file: The file as the user named it.
        messages: The conversation.
        verdicts: ``(index, verdict)`` for every message at which a rule fired.
    """

    file: str
    messages: list[BaseMessage]
    verdicts: list[tuple[int, Verdict]]
    briefings: dict[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON output for this file (the shape ``docs/scan.md`` documents)."""
        return {
            "file": self.file,
            "stuck": bool(self.verdicts),
            "first_stuck_index": self.verdicts[0][0] if self.verdicts else None,
            "verdicts": [
                {
                    "index": index,
                    "rule": verdict.rule,
                    "reason": verdict.reason,
                    "evidence": verdict.evidence,
                    **({"briefing": self.briefings[index]} if index in self.briefings else {}),
                }
                for index, verdict in self.verdicts
            ],
            "messages": len(self.messages),
        }


# argparse exposes the type of ``add_subparsers()`` only under this private name.
def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``scan`` on the ``langchain-escalate`` command line.

    Args:
        subparsers: The command's subparsers.
    """
    parser = subparsers.add_parser(
        "scan",
        help="replay recorded conversations through the stuck detector",
        description=(
            "Replay recorded conversations through the stuck detector, one message at a time, "
            "and report where each got stuck, by which rule, and why. Input: a JSON list of "
            'messages, JSONL (one message a line), a {"messages": [...]} state dump or a '
            "LangSmith run export, as LangChain message dicts or OpenAI chat format; - reads "
            "stdin. Exit code 0 when every file was read, 2 when one could not be (the others "
            "are still scanned)."
        ),
    )
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="conversation files (.json or .jsonl), or -"
    )
    parser.add_argument(
        "--config",
        metavar="escalate.yaml",
        help="read the detector thresholds from this config file",
    )
    parser.add_argument(
        "--node",
        metavar="NAME",
        help="use this node's thresholds from --config (default: its defaults)",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text for people (default), or json: one object per file, one per line",
    )
    parser.add_argument(
        "--briefing",
        action="store_true",
        help="at each verdict, add the briefing the strong model would receive there",
    )
    parser.add_argument(
        "--briefing-tokens",
        type=int,
        default=BRIEFING_TOKENS,
        metavar="N",
        help=f"bound of each --briefing, in tokens (default {BRIEFING_TOKENS})",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Scan every file named on the command line and print the findings.

    Args:
        args: Parsed arguments: ``files``, ``config``, ``node``, ``format``,
            ``briefing``, ``briefing_tokens``.

    Returns:
        The exit code: 0 when every file was read, 2 otherwise.
    """
    try:
        config = detector_config(args.config, args.node)
    except ScanInputError as error:
        _report_error(error)
        return EXIT_BAD_INPUT
    briefing_tokens = args.briefing_tokens if args.briefing else None
    code = EXIT_OK
    with _progress(len(args.files)) as advance:
        for file in args.files:
            try:
                result = scan_file(file, config, briefing_tokens=briefing_tokens)
            except ScanInputError as error:
                _report_error(error)
                code = EXIT_BAD_INPUT
            else:
                _write_result(result, args.format)
            advance()
    return code


def _write_result(result: ScanResult, output_format: str) -> None:
    if output_format == "json":
        data = redact_data(result.to_dict())  # reasons and briefings quote tool output
        output = json.dumps(data, ensure_ascii=False)
        if not _encodable(output):  # lone surrogates: JSON's \u escapes keep it valid
            output = json.dumps(data, ensure_ascii=True)
    else:
        output = redact(render_text(result))
        if not _encodable(output):
            output = output.encode("utf-8", "backslashreplace").decode("utf-8")
    sys.stdout.write(output + "\n")
    sys.stdout.flush()  # keep stdout and stderr lines in file order


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[], None]]:
    """Yield a function that advances a progress bar on stderr, or does nothing.

    The bar is drawn only for many files and only when stderr is a terminal, so
    pipes, logs and tests see no escape sequences.
    """
    if total < PROGRESS_MIN_FILES or not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.console import Console  # noqa: PLC0415 (only for a terminal)
    from rich.progress import Progress  # noqa: PLC0415

    # Live displays capture stdout by default; the results must stay on stdout.
    console = Console(stderr=True)
    with Progress(
        transient=True, console=console, redirect_stdout=False, redirect_stderr=False
    ) as progress:
        task = progress.add_task("scanning", total=total)
        yield lambda: progress.advance(task)


def detector_config(config_path: str | None, node: str | None) -> DetectorConfig:
    """Return the thresholds to scan with: the defaults, or those of a config file.

    Args:
        config_path: ``--config``: an ``escalate.yaml`` file, or ``None``.
        node: ``--node``: whose thresholds to use; the file's ``defaults`` when ``None``.

    Returns:
        The detector's configuration.

    Raises:
        ScanInputError: When ``--node`` comes without ``--config``, or the file is invalid.
    """
    if config_path is None:
        if node is not None:
            msg = f"--node {node} needs --config FILE: a node's thresholds come from a config file"
            raise ScanInputError(msg)
        return DetectorConfig()
    # Imported here: only --config needs YAML and the config models.
    from langchain_escalate.config import load_config  # noqa: PLC0415

    try:
        config = load_config(Path(config_path))
        return config.defaults.detector if node is None else config.for_node(node).detector
    except (ValueError, LookupError) as error:  # ConfigError is a ValueError
        msg = "; ".join(str(error).splitlines()) or type(error).__name__
        raise ScanInputError(msg) from None


def scan_file(
    file: str, config: DetectorConfig, *, briefing_tokens: int | None = None
) -> ScanResult:
    """Read one conversation file and replay it through a fresh detector.

    Args:
        file: Path of a conversation file, or ``-`` for stdin.
        config: The detector's thresholds.
        briefing_tokens: When given, build at each verdict the briefing the
            strong model would receive there, bounded by this many tokens.

    Returns:
        The verdicts at the messages where a rule fired (and their briefings).

    Raises:
        ScanInputError: When the file cannot be read or holds a bad message.
    """
    messages = read_conversation(file)
    detector = StuckDetector(config)
    try:
        verdicts = [
            (index, verdict)
            for index, verdict in enumerate(map(detector.observe, messages))
            if verdict.stuck
        ]
    except RecursionError:
        msg = f"{_shown(file)}: a message is nested too deeply to be read"
        raise ScanInputError(msg) from None
    briefings = (
        _briefings(messages, verdicts, briefing_tokens) if briefing_tokens is not None else {}
    )
    return ScanResult(file=file, messages=messages, verdicts=verdicts, briefings=briefings)


def _briefings(
    messages: list[BaseMessage], verdicts: list[tuple[int, Verdict]], max_tokens: int
) -> dict[int, str]:
    # Imported here: only --briefing needs the expert layer.
    from langchain_escalate.expert.briefing import build_briefing  # noqa: PLC0415

    return {
        index: build_briefing(messages[: index + 1], verdict=verdict, max_tokens=max_tokens)
        for index, verdict in verdicts
    }


def read_conversation(file: str) -> list[BaseMessage]:
    """Read a conversation file into messages, checking that every tool message answers a call.

    Args:
        file: Path of a JSON list of messages, JSONL with one message a line, a
            ``{"messages": [...]}`` state dump or a LangSmith run export; ``-`` for stdin.

    Returns:
        The messages.

    Raises:
        ScanInputError: One line naming the file (and the message index) and what is wrong.
    """
    text = _read_text(file)
    items = conversation_items(_shown(file), _parse_json(file, text))
    try:
        messages = messages_from_dicts(items)
        check_tool_answers(messages)
    except MessageFormatError as error:
        msg = f"{_shown(file)}: {_one_line(str(error))}"
        raise ScanInputError(msg) from None
    except RecursionError:
        msg = f"{_shown(file)}: a message is nested too deeply to be read"
        raise ScanInputError(msg) from None
    return messages


def _read_text(file: str) -> str:
    """Return the file's text: stdin for ``-``; only regular files, at most ``MAX_BYTES``."""
    data = sys.stdin.buffer.read(MAX_BYTES + 1) if file == "-" else _read_regular_file(file)
    if len(data) > MAX_BYTES:
        msg = f"{_shown(file)}: larger than {MAX_BYTES // (1024 * 1024)} MiB, the most scan reads"
        raise ScanInputError(msg)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        msg = f"{_shown(file)}: not UTF-8 text (byte {error.start})"
        raise ScanInputError(msg) from None


def _read_regular_file(file: str) -> bytes:
    # A FIFO would block, /dev/zero never ends: look before opening (stat follows
    # symlinks, so a link to a device is refused too), and read at most one byte
    # past the limit in case the size changed.
    try:
        info = os.stat(file)  # noqa: PTH116 (the mode bits are what matter here)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            msg = f"{_shown(file)}: cannot read: {kind}"
            raise ScanInputError(msg)
        if info.st_size > MAX_BYTES:
            msg = (
                f"{_shown(file)}: {info.st_size:,} bytes, larger than "
                f"{MAX_BYTES // (1024 * 1024)} MiB, the most scan reads"
            )
            raise ScanInputError(msg)
        with Path(file).open("rb") as handle:
            return handle.read(MAX_BYTES + 1)
    except OSError as error:
        msg = f"{_shown(file)}: cannot read: {_reason(error)}"
        raise ScanInputError(msg) from None


def conversation_items(file: str, value: Any) -> list[Any]:
    """Return the message dicts of a parsed file, whatever its wrapping.

    Accepted: a list of messages; ``{"messages": [...]}`` (a LangGraph state
    dump) or ``{"values": {"messages": [...]}}`` (a ``StateSnapshot``); a
    LangSmith run export: ``outputs.messages`` when present (a graph's final
    state), else ``inputs.messages`` (a chat model run's batch: its first
    conversation) followed by the reply in ``outputs.generations``.

    Args:
        file: The file's name, for errors.
        value: The parsed JSON (a list of items for JSONL).

    Returns:
        The message dicts, in order.

    Raises:
        ScanInputError: When the value holds no list of messages.
    """
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        found = _messages_in(value)
        if found is not None:
            return found
        if "role" in value or "type" in value:
            return [value]  # JSONL with a single message
    kind = (
        "an object without a 'messages' list"
        if isinstance(value, dict)
        else _JSON_KINDS.get(type(value), "a number")
    )
    msg = (
        f"{file}: the top-level value is {kind}: expected a list of messages (a JSON list, "
        'JSONL with one message a line, {"messages": [...]}, or a LangSmith run export)'
    )
    raise ScanInputError(msg)


def _messages_in(value: dict[str, Any]) -> list[Any] | None:
    for holder in (value, value.get("values"), value.get("outputs")):
        if isinstance(holder, dict) and isinstance(holder.get("messages"), list):
            return list(holder["messages"])
    inputs = value.get("inputs")
    if not isinstance(inputs, dict) or not isinstance(inputs.get("messages"), list):
        return None
    messages = inputs["messages"]
    if messages and all(isinstance(batch, list) for batch in messages):
        messages = messages[0]  # a chat model run: a batch of conversations
    return list(messages) + _generated_reply(value.get("outputs"))


def _generated_reply(outputs: Any) -> list[Any]:
    try:
        reply = outputs["generations"][0][0]["message"]
    except (KeyError, IndexError, TypeError):
        return []
    return [reply] if isinstance(reply, dict) else []


def render_text(result: ScanResult) -> str:
    """Return the findings for one file, for people: rule, message, why, evidence.

    Messages are counted from 1 here (the JSON output's indices are 0-based), and
    control characters from the file are escaped, so a recorded terminal escape
    sequence cannot reach the terminal.

    Args:
        result: The scan of one file.

    Returns:
        Lines of text, without a trailing newline.
    """
    count = len(result.messages)
    name = _shown(result.file)
    if not result.verdicts:
        return f"{name}: not stuck ({count} messages)"
    first = result.verdicts[0][0] + 1
    plural = "s" if len(result.verdicts) > 1 else ""
    verdicts = f"{len(result.verdicts)} verdict{plural}"
    lines = [f"{name}: STUCK at message {first} of {count} ({verdicts})"]
    for index, verdict in result.verdicts:
        lines.append(f"  message {index + 1}: {verdict.rule}")
        lines.append(f"    why: {escape_controls(verdict.reason)}")
        shown = verdict.evidence[-EVIDENCE_SHOWN:]
        hidden = len(verdict.evidence) - len(shown)
        lines.append(
            "    evidence:" + (f" ({hidden} earlier messages not shown)" if hidden else "")
        )
        lines.extend(f"      {at + 1:>4}  {_describe(result.messages[at])}" for at in shown)
        if index in result.briefings:
            lines.append("    briefing:")
            lines.extend(
                f"      | {escape_controls(line)}" for line in result.briefings[index].splitlines()
            )
    return "\n".join(lines)


def escape_controls(text: str) -> str:
    r"""Return ``text`` with control characters written as escapes (``\x1b``), tabs kept.

    Example:
        >>> escape_controls("red \x1b[31malert")
        'red \\x1b[31malert'
    """
    return _CONTROL.sub(lambda match: f"\\x{ord(match[0]):02x}", text)


def _parse_json(file: str, text: str) -> Any:
    """Return the parsed JSON of a file: one value, or the list of a JSONL file's lines."""
    name = _shown(file)
    if not text.strip():
        msg = f"{name}: empty file: expected a JSON list of messages, or JSONL (one message a line)"
        raise ScanInputError(msg)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg != "Extra data":
            msg = f"{name}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
            raise ScanInputError(msg) from None
        return _parse_jsonl(name, text)
    except RecursionError:
        msg = f"{name}: the JSON is nested too deeply to be a conversation"
        raise ScanInputError(msg) from None
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        msg = f"{name}: unreadable JSON value: {_one_line(str(error))}"
        raise ScanInputError(msg) from None


def _parse_jsonl(file: str, text: str) -> list[Any]:
    items: list[Any] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{file}: message {len(items)} (line {line_number})"
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as error:
            msg = f"{where}: invalid JSON at column {error.colno}: {error.msg}"
            raise ScanInputError(msg) from None
        except RecursionError:
            msg = f"{where}: nested too deeply to be a message"
            raise ScanInputError(msg) from None
        except ValueError as error:
            msg = f"{where}: unreadable JSON value: {_one_line(str(error))}"
            raise ScanInputError(msg) from None
    return items


def _report_error(error: ScanInputError) -> None:
    sys.stdout.flush()
    line = escape_controls(_one_line(str(error)))
    sys.stderr.write(
        f"langchain-escalate scan: {line}\n".encode("utf-8", "backslashreplace").decode()
    )
    sys.stderr.flush()


def _describe(message: BaseMessage) -> str:
    """Return ``type  excerpt`` for one evidence message."""
    if isinstance(message, AIMessage) and message.tool_calls:
        calls = ", ".join(
            f"{call['name']}({_arguments(call['args'])})" for call in message.tool_calls
        )
        return escape_controls(f"ai    {shorten(calls, 100)}")
    excerpt = shorten(content_text(message.content), 100) or "(empty)"
    return escape_controls(f"{message.type:<5} {excerpt}")


def _arguments(args: Any) -> str:
    try:
        return json.dumps(args, ensure_ascii=False, default=str)[:400]
    except (ValueError, RecursionError):  # a 5000-digit integer, deep nesting
        return "…"


def _shown(file: str) -> str:
    return "<stdin>" if file == "-" else escape_controls(file)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return " ".join(str(error).split())
