"""Configuration errors that say where (file, line, YAML path) and how to fix."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from langchain_escalate.redact import redact

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "Origin",
    "YamlPath",
    "did_you_mean",
    "escape_control",
    "format_path",
    "quote",
]

YamlPath = tuple[str | int, ...]
"""Keys and list indices from the document root to a value."""

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+")
# C0/C1 controls, line and paragraph separators, and bidirectional overrides:
# printed raw they move the cursor, recolour the terminal or reorder the text.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def escape_control(text: str) -> str:
    r"""Return ``text`` with control characters written as escapes, safe for a terminal.

    Example:
        >>> escape_control("tool\x1b[2J\nname")
        'tool\\x1b[2J\\nname'
    """
    return _CONTROL.sub(lambda found: repr(found[0])[1:-1], text)


def quote(value: object, limit: int = 120) -> str:
    """Return ``repr(value)``, shortened to ``limit`` characters: enough to recognise a value.

    Example:
        >>> quote("9" * 500, limit=12)
        "'99999...9'"
    """
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 6]}...{text[-2:]}"


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a configuration file.

    Attributes:
        source: The file as the user named it, or ``<string>`` for YAML text.
        line: 1-based line of the offending key or value, when known.
        path: Dotted YAML path (``nodes.planner.detector.monologue``); empty
            for the document itself.
        message: What was wrong and what was expected.
        column: 1-based column, given for YAML syntax errors only.
        severity: ``"error"``, or ``"warning"`` for what may be right but
            looks wrong (a model id no price map knows).
    """

    source: str
    line: int | None
    path: str
    message: str
    column: int | None = None
    severity: Literal["error", "warning"] = field(default="error")

    def __str__(self) -> str:
        """Return ``file:line: path: message``, on one line, control characters escaped."""
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        message = f"warning: {self.message}" if self.severity == "warning" else self.message
        text = f"{where}: {self.path}: {message}" if self.path else f"{where}: {message}"
        return escape_control(text)


class ConfigError(ValueError):
    """An invalid configuration: every problem found, one line each.

    Each line reads ``escalate.yaml:12: nodes.planner.detector.monologue: ...``
    (file, line, YAML path, what was expected), so an editor or CI log can jump
    to it. Secrets in a message (a key in a URL, say) are redacted.

    Attributes:
        issues: The problems, in file order.
    """

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        """Sort ``issues`` by line and redact secrets; the message is one issue per line."""
        self.issues: tuple[ConfigIssue, ...] = tuple(
            replace(issue, path=redact(issue.path), message=redact(issue.message))
            for issue in sorted(issues, key=lambda issue: (issue.line is None, issue.line or 0))
        )
        super().__init__("\n".join(str(issue) for issue in self.issues))


def format_path(path: Iterable[str | int | float | bool | None]) -> str:
    """Return a YAML path as people write it: ``nodes.planner.policy.ladder[1]``.

    Keys that are not plain words (model ids with dots, say) are quoted:
    ``prices["gpt-4.1"].input``.

    Example:
        >>> format_path(("nodes", "planner", "policy", "ladder", 1))
        'nodes.planner.policy.ladder[1]'
        >>> format_path(("prices", "openai/gpt-4.1", "input"))
        'prices["openai/gpt-4.1"].input'
    """
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f'["{part}"]'
    return text


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the option nearest ``word``, or ``""``.

    Example:
        >>> did_you_mean("monolog", ["monologue", "max_steps"])
        " (did you mean 'monologue'?)"
    """
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


@dataclass(frozen=True)
class Origin:
    """Where a configuration came from, to point errors at lines.

    Attributes:
        source: The file as the user named it, or ``<string>``.
        lines: 1-based line of each key and list item, by YAML path.
    """

    source: str = "<config>"
    lines: dict[YamlPath, int] | None = None

    def line_of(self, path: YamlPath) -> int | None:
        """Return the line of ``path``, or of its nearest ancestor written in the file."""
        if not self.lines:
            return None
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def issue(
        self, path: YamlPath, message: str, severity: Literal["error", "warning"] = "error"
    ) -> ConfigIssue:
        """Return a ``ConfigIssue`` at ``path``, with its line when known."""
        return ConfigIssue(
            self.source, self.line_of(path), format_path(path), message, severity=severity
        )
