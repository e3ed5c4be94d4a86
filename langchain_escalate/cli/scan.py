"""``langchain-escalate scan``: replay recorded conversations through the stuck detector.

Each file is read whole (a JSON list of messages, or JSONL with one message a
line; LangChain message dicts or OpenAI chat format), then fed to a fresh
detector one message at a time. A bad file gets one line on stderr naming the
file and the message, and the other files are still scanned; the exit code is
2 when any file could not be read, else 0. Being stuck is a finding, not an
error: it does not change the exit code.

Only the detector is imported here: ``scan`` starts fast and never loads
litellm or LangGraph. The YAML config loader is imported only for ``--config``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage

from langchain_escalate.detector import DetectorConfig, StuckDetector, Verdict, messages_from_dicts
from langchain_escalate.detector.formats import MessageFormatError, check_tool_answers
from langchain_escalate.detector.steps import content_text, shorten

if TYPE_CHECKING:
    import argparse

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EVIDENCE_SHOWN = 12
"""Evidence messages the text output prints per verdict (the latest ones)."""


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
            "messages or JSONL (one message a line), as LangChain message dicts "
            "(messages_to_dict) or OpenAI chat format. Exit code 0 when every file was read, "
            "2 when one could not be (the others are still scanned)."
        ),
    )
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="conversation files (.json or .jsonl)"
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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Scan every file named on the command line and print the findings.

    Args:
        args: Parsed arguments: ``files``, ``config``, ``node``, ``format``.

    Returns:
        The exit code: 0 when every file was read, 2 otherwise.
    """
    try:
        config = detector_config(args.config, args.node)
    except ScanInputError as error:
        _report_error(error)
        return EXIT_BAD_INPUT
    code = EXIT_OK
    for file in args.files:
        try:
            result = scan_file(file, config)
        except ScanInputError as error:
            _report_error(error)
            code = EXIT_BAD_INPUT
            continue
        output = (
            json.dumps(result.to_dict(), ensure_ascii=False)
            if args.format == "json"
            else render_text(result)
        )
        sys.stdout.write(output + "\n")
        sys.stdout.flush()  # keep stdout and stderr lines in file order
    return code


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


def scan_file(file: str, config: DetectorConfig) -> ScanResult:
    """Read one conversation file and replay it through a fresh detector.

    Args:
        file: Path of a JSON or JSONL conversation.
        config: The detector's thresholds.

    Returns:
        The verdicts at the messages where a rule fired.

    Raises:
        ScanInputError: When the file cannot be read or holds a bad message.
    """
    messages = read_conversation(file)
    detector = StuckDetector(config)
    verdicts = [
        (index, verdict)
        for index, verdict in enumerate(map(detector.observe, messages))
        if verdict.stuck
    ]
    return ScanResult(file=file, messages=messages, verdicts=verdicts)


def read_conversation(file: str) -> list[BaseMessage]:
    """Read a conversation file into messages, checking that every tool message answers a call.

    Args:
        file: Path of a JSON list of messages, or of JSONL with one message a line.

    Returns:
        The messages.

    Raises:
        ScanInputError: One line naming the file (and the message index) and what is wrong.
    """
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        msg = f"{file}: cannot read: {_reason(error)}"
        raise ScanInputError(msg) from None
    items = _parse_items(file, text)
    try:
        messages = messages_from_dicts(items)
        check_tool_answers(messages)
    except MessageFormatError as error:
        msg = f"{file}: {error}"
        raise ScanInputError(msg) from None
    return messages


def render_text(result: ScanResult) -> str:
    """Return the findings for one file, for people: rule, message, why, evidence.

    Args:
        result: The scan of one file.

    Returns:
        Lines of text, without a trailing newline.
    """
    count = len(result.messages)
    if not result.verdicts:
        return f"{result.file}: not stuck ({count} messages)"
    first = result.verdicts[0][0]
    plural = "s" if len(result.verdicts) > 1 else ""
    verdicts = f"{len(result.verdicts)} verdict{plural}"
    lines = [f"{result.file}: STUCK at message {first} of {count} ({verdicts})"]
    for index, verdict in result.verdicts:
        lines.append(f"  message {index}: {verdict.rule}")
        lines.append(f"    why: {verdict.reason}")
        shown = verdict.evidence[-EVIDENCE_SHOWN:]
        hidden = len(verdict.evidence) - len(shown)
        lines.append(
            "    evidence:" + (f" ({hidden} earlier messages not shown)" if hidden else "")
        )
        lines.extend(f"      {at:>4}  {_describe(result.messages[at])}" for at in shown)
    return "\n".join(lines)


def _parse_items(file: str, text: str) -> list[Any]:
    """Return the message dicts of a JSON list or a JSONL file."""
    if not text.strip():
        msg = f"{file}: empty file: expected a JSON list of messages, or JSONL (one message a line)"
        raise ScanInputError(msg)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg != "Extra data":
            msg = f"{file}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
            raise ScanInputError(msg) from None
        return _parse_jsonl(file, text)
    except RecursionError:
        msg = f"{file}: the JSON is nested too deeply to be a conversation"
        raise ScanInputError(msg) from None
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and len(text.strip().splitlines()) == 1:
        return [value]  # JSONL with a single message
    kind = "an object" if isinstance(value, dict) else f"a {type(value).__name__}"
    msg = (
        f"{file}: the top-level value is {kind}, expected a list of messages "
        "(a JSON list, or JSONL with one message a line)"
    )
    raise ScanInputError(msg)


def _parse_jsonl(file: str, text: str) -> list[Any]:
    items: list[Any] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as error:
            msg = (
                f"{file}: message {len(items)} (line {line_number}): invalid JSON at column "
                f"{error.colno}: {error.msg}"
            )
            raise ScanInputError(msg) from None
    return items


def _report_error(error: ScanInputError) -> None:
    sys.stdout.flush()
    sys.stderr.write(f"langchain-escalate scan: {error}\n")
    sys.stderr.flush()


def _describe(message: BaseMessage) -> str:
    """Return ``type  excerpt`` for one evidence message."""
    if isinstance(message, AIMessage) and message.tool_calls:
        calls = ", ".join(
            f"{call['name']}({json.dumps(call['args'], ensure_ascii=False)})"
            for call in message.tool_calls
        )
        return f"ai    {shorten(calls, 100)}"
    return f"{message.type:<5} {shorten(content_text(message.content), 100) or '(empty)'}"


def _reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return " ".join(str(error).split())
