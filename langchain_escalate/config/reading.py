"""From a file or YAML text to plain data, with the line of every key, safely.

PyYAML's safe loader does the parsing; this module adds what a configuration
reader needs on top: the line of each key and list item (errors point at
them), duplicate keys as problems (PyYAML keeps the last one silently), and
bounds that make a hostile file fail fast: size, nesting depth, and the
number of values after aliases are expanded (a "billion laughs" file is a
few hundred bytes that expand to 10⁹ values).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, NoReturn

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from langchain_escalate.config.errors import (
    ConfigError,
    ConfigIssue,
    YamlPath,
    format_path,
    quote,
)

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_VALUES", "TEXT_SOURCE", "parse_yaml", "read_source"]

TEXT_SOURCE = "<string>"
"""How errors name a configuration given as YAML text."""

MAX_BYTES = 1_000_000
"""Largest file read; a configuration is a few kilobytes."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists, aliases expanded."""
MAX_VALUES = 10_000
"""Most keys and list items, aliases expanded."""

_YAML_SUFFIXES = (".yaml", ".yml", ".json")
_MERGE_TAG = "tag:yaml.org,2002:merge"


def read_source(path_or_text: str | os.PathLike[str]) -> tuple[str, str]:
    """Return ``(source name, text)``: a file's content, or the text itself.

    Raises:
        ConfigError: The file is missing, not a regular file, too large, or not UTF-8.
    """
    if isinstance(path_or_text, str) and not _names_a_file(path_or_text):
        return TEXT_SOURCE, path_or_text
    source = os.fspath(path_or_text)
    try:
        mode = Path(source).stat().st_mode
        # A FIFO would block, /dev/zero never end: regular files only.
        data = _read_regular_file(source) if stat.S_ISREG(mode) else None
    except FileNotFoundError:
        _fail(source, "no such file; give the path of an escalate.yaml, or YAML text")
    except (OSError, ValueError) as error:  # ValueError: a NUL in the path
        _fail(source, f"cannot be read: {getattr(error, 'strerror', None) or error}")
    if data is None:
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        _fail(source, f"is {kind}; give the path of an escalate.yaml")
    if len(data) > MAX_BYTES:
        _fail(source, f"is larger than {MAX_BYTES:,} bytes; a configuration is a few kilobytes")
    try:
        return source, data.decode("utf-8")
    except UnicodeDecodeError as error:
        _fail(source, f"not UTF-8 text ({error.reason} at byte {error.start})")


def _read_regular_file(path: str) -> bytes:
    # One byte more than allowed tells a file that is too large, without reading it all.
    with Path(path).open("rb") as file:
        return file.read(MAX_BYTES + 1)


def parse_yaml(source: str, text: str) -> tuple[Any, dict[YamlPath, int], list[ConfigIssue]]:
    """Parse YAML text with PyYAML's safe loader, within bounds.

    Returns:
        The data (``None`` for an empty document), the line of each key and
        list item by YAML path, and the duplicate keys found.

    Raises:
        ConfigError: The text is not YAML, or exceeds a bound; one line, with
            the position.
    """
    if len(text) > MAX_BYTES:
        _fail(
            source, f"is larger than {MAX_BYTES:,} characters; a configuration is a few kilobytes"
        )
    try:
        loader = _BoundedLoader(text)
    except yaml.reader.ReaderError as error:  # NUL and other unprintable characters
        line = text.count("\n", 0, error.position) + 1
        character = chr(error.character) if isinstance(error.character, int) else error.character
        _fail(source, f"invalid YAML: {error.reason} {character!r}", line)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {(): 1}, []
        lines, duplicates = _line_marks(loader, root, source)
        return loader.construct_document(root), lines, duplicates
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = " ".join(str(error.problem or error.context or "malformed YAML").split())
        issue = ConfigIssue(source, None, "", f"invalid YAML: {problem}")
        if mark:
            issue = ConfigIssue(source, mark.line + 1, "", issue.message, column=mark.column + 1)
        raise ConfigError([issue]) from None
    except yaml.YAMLError as error:
        _fail(source, f"invalid YAML: {' '.join(str(error).split())}")
    finally:
        loader.dispose()


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with nesting and merges bounded, and bad scalars located."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        # The composer recurses once per level: bound it before Python's stack does.
        if self.depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise ConstructorError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def flatten_mapping(self, node: MappingNode) -> None:
        # `<<: [*a, *a, ...]` copies keys: nested merges grow exponentially.
        super().flatten_mapping(node)
        if len(node.value) > MAX_VALUES:
            msg = f"merge keys (<<) expand to more than {MAX_VALUES:,} keys"
            raise ConstructorError(None, None, msg, node.start_mark)

    def construct_object(self, node: Node, deep: bool = False) -> Any:  # noqa: FBT001, FBT002 - PyYAML's signature
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, AttributeError, OverflowError) as error:
            # `!!int abc`, `!!float x`, `!!timestamp y`: PyYAML raises without a position.
            tag = str(node.tag).rsplit(":", 1)[-1]
            msg = f"{quote(node.value)} is not a valid {tag} ({quote(str(error))[1:-1]})"
            raise ConstructorError(None, None, msg, node.start_mark) from None


def _line_marks(
    loader: _BoundedLoader, root: Node, source: str
) -> tuple[dict[YamlPath, int], list[ConfigIssue]]:
    """Return the line of each key and list item by path, and duplicate-key problems.

    The walk expands aliases as the data will, so it is where their expansion
    is bounded: it stops at ``MAX_VALUES`` values or ``MAX_DEPTH`` levels.
    """
    lines: dict[YamlPath, int] = {(): root.start_mark.line + 1}
    duplicates: list[ConfigIssue] = []
    stack: list[tuple[YamlPath, Node]] = [((), root)]
    visited = 0
    while stack:
        path, node = stack.pop()
        visited += 1
        if visited > MAX_VALUES or len(path) > MAX_DEPTH:
            msg = (
                f"the document expands to more than {MAX_VALUES:,} values once aliases (*name) "
                "are resolved; a configuration needs a few hundred"
                if visited > MAX_VALUES
                else f"nested deeper than {MAX_DEPTH} levels once aliases (*name) are resolved "
                "(does an alias sit inside what it names?)"
            )
            raise ConstructorError(None, None, msg, node.start_mark)
        if isinstance(node, SequenceNode):
            children = [((*path, index), item, item) for index, item in enumerate(node.value)]
        elif isinstance(node, MappingNode):
            duplicates += _duplicate_keys(loader, node, path, source)
            loader.flatten_mapping(node)
            children = [
                ((*path, loader.construct_object(key)), key, value)
                for key, value in node.value
                if isinstance(key, ScalarNode)
            ]
        else:
            continue
        for child_path, key_node, value in children:
            # Merged keys come first and a mapping's own keys after: the own key's line wins.
            lines[child_path] = key_node.start_mark.line + 1
            stack.append((child_path, value))
    return lines, duplicates


def _duplicate_keys(
    loader: _BoundedLoader, node: MappingNode, path: YamlPath, source: str
) -> list[ConfigIssue]:
    first_line: dict[Any, int] = {}
    issues = []
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
            continue
        key, line = loader.construct_object(key_node), key_node.start_mark.line + 1
        if key in first_line:  # `1` and `1.0` too: YAML reads both as the same number
            first = first_line[key]
            message = (
                f"duplicate key {key_node.value!r} (first on line {first}); write each key once"
            )
            issues.append(ConfigIssue(source, line, format_path((*path, key)), message))
        else:
            first_line[key] = line
    return issues


def _names_a_file(text: str) -> bool:
    if "\n" in text or "\x00" in text:
        return False
    candidate = text.strip()
    return bool(candidate) and (
        Path(candidate).is_file() or candidate.lower().endswith(_YAML_SUFFIXES)
    )


def _fail(source: str, message: str, line: int | None = None) -> NoReturn:
    raise ConfigError([ConfigIssue(source, line, "", message)])
