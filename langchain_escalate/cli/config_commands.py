"""``langchain-escalate schema`` and ``langchain-escalate check-config FILE``.

``schema`` prints the JSON Schema of ``escalate.yaml`` for editor completion.
``check-config`` validates a file, checks its model ids offline, and prints
what each node will run with; exit 0 when valid (a model id the price map
lacks is a warning on stderr), 2 with one line per problem
(``file:line: path: what``) when not. Neither imports litellm: nothing is
built, only validated.
"""

from __future__ import annotations

import importlib
import json
import operator
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import argparse

    from langchain_escalate.config import ConfigError, ConfigIssue, EscalateConfig, NodeSettings

EXIT_OK = 0
EXIT_INVALID = 2

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]{0,100})")
_CREDENTIAL_VARIABLE = re.compile(r"(?i)key|token|secret|pass|pwd|credential|auth")
_MIN_SECRET = 4
"""Shorter values are not hidden: replacing `1` everywhere would garble the report."""
_MAX_SCANNED = 1_000_000


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``schema`` and ``check-config`` on the ``langchain-escalate`` command line.

    Args:
        subparsers: The command's subparsers.
    """
    schema = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of escalate.yaml (for editor completion)",
        description=(
            "Print the JSON Schema of escalate.yaml. Save it and point your editor at it, e.g. "
            "with the first line '# yaml-language-server: $schema=./escalate.schema.json'."
        ),
    )
    schema.set_defaults(handler=run_schema)

    check = subparsers.add_parser(
        "check-config",
        help="validate an escalate.yaml and print each node's effective settings",
        description=(
            "Validate an escalate.yaml and print the settings each node runs with, after merging "
            "its section over the defaults. Exit code 0 when the file is valid, 2 when not, with "
            "one line per problem: file:line: yaml.path: what was expected."
        ),
    )
    check.add_argument("file", metavar="FILE", help="the configuration file")
    check.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text for people (default), or one JSON object",
    )
    check.add_argument(
        "--graph",
        metavar="MODULE:ATTR",
        help=(
            "also check that every configured node exists in this graph "
            "(a StateGraph or compiled graph, imported from your code, e.g. myapp.graph:builder)"
        ),
    )
    check.set_defaults(handler=run_check_config)


def run_schema(args: argparse.Namespace) -> int:  # noqa: ARG001 - handlers share one signature
    """Print the JSON Schema of ``escalate.yaml``.

    Returns:
        0.
    """
    from langchain_escalate.config import config_json_schema  # noqa: PLC0415 - only this command needs it

    sys.stdout.write(json.dumps(config_json_schema(), indent=2) + "\n")
    return EXIT_OK


def run_check_config(args: argparse.Namespace) -> int:
    """Validate a config file (and optionally a graph against it) and print the result.

    Args:
        args: Parsed arguments: ``file``, ``format``, ``graph``.

    Returns:
        0 when valid, 2 when not.
    """
    from langchain_escalate.config import ConfigError, load_config  # noqa: PLC0415 - only this command needs it

    hidden = _environment_secrets(Path(args.file))
    try:
        # A Path: FILE is always read as a file, never taken for YAML text.
        config = load_config(Path(args.file))
        warnings = _model_id_problems(config)
        if args.graph:
            config.check_graph(_import_graph(args.graph))
    except ConfigError as error:
        _report_invalid(args.file, error, as_json=args.format == "json", hidden=hidden)
        return EXIT_INVALID
    except GraphImportError as error:
        _write(sys.stderr, f"{args.file}: --graph {args.graph}: {error}\n", hidden)
        return EXIT_INVALID
    settings = [config.for_node(name) for name in config.node_names]
    if args.format == "json":
        document = {
            "file": args.file,
            "valid": True,
            "nodes": {s.name: s.to_dict() for s in settings},
            "warnings": [_issue_dict(issue) for issue in warnings],
        }
        _write(sys.stdout, json.dumps(document, indent=2) + "\n", hidden)
    else:
        _write(sys.stderr, "".join(f"{issue}\n" for issue in warnings), hidden)
        _write(sys.stdout, render_text(config, settings), hidden)
    return EXIT_OK


def _model_id_problems(config: EscalateConfig) -> list[ConfigIssue]:
    """Return the warnings about model ids; raise ``ConfigError`` for the errors."""
    from langchain_escalate.config import ConfigError  # noqa: PLC0415 - only this command needs it

    issues = config.check_model_ids()
    errors = [issue for issue in issues if issue.severity == "error"]
    if errors:
        raise ConfigError(errors)
    return issues


def _write(stream: TextIO, text: str, hidden: dict[str, str]) -> None:
    """Write ``text`` with no secret and no raw control character in it.

    Secrets: values of credential-named environment variables the file
    refers to (whatever their shape), then every shape ``redact`` knows.
    Control characters are escaped line by line (``splitlines`` would also
    split at U+2028, and the escape would then be lost).
    """
    from langchain_escalate.config.errors import escape_control  # noqa: PLC0415 - only this command needs it
    from langchain_escalate.redact import redact  # noqa: PLC0415

    for value, name in sorted(hidden.items(), key=lambda item: -len(item[0])):
        marker = f"[REDACTED:${{{name}}}]"
        text = text.replace(value, marker).replace(json.dumps(value)[1:-1], marker)
    lines = redact(text).split("\n")
    stream.write("\n".join(escape_control(line) for line in lines))


def _environment_secrets(file: Path) -> dict[str, str]:
    """Return ``{value: variable}`` for credential-named variables the file's ``${...}`` names."""
    try:
        if not file.is_file():  # a FIFO would block: load_config refuses it
            return {}
        with file.open("rb") as stream:
            text = stream.read(_MAX_SCANNED).decode("utf-8", errors="replace")
    except (OSError, ValueError):
        return {}  # load_config reports why the file cannot be read
    names = set(_REFERENCE.findall(text))
    return {
        os.environ[name]: name
        for name in names
        if _CREDENTIAL_VARIABLE.search(name) and len(os.environ.get(name, "")) >= _MIN_SECRET
    }


class GraphImportError(Exception):
    """``--graph MODULE:ATTR`` names nothing importable."""


def render_text(config: EscalateConfig, settings: list[NodeSettings]) -> str:
    """Return the text report of a valid configuration: one block per node.

    Args:
        config: The loaded configuration.
        settings: The effective settings of each node.

    Returns:
        The report, ending with a newline.
    """
    count = f"{len(settings)} node{'s' if len(settings) != 1 else ''}"
    lines = [f"{config.source}: valid, {count}"]
    if not settings:
        lines.append("no nodes configured: add one under nodes: so build_node(name) can find it")
    for node in settings:
        data = node.to_dict()
        lines += ["", node.name]
        lines.append(f"  weak:     {_model_text(data['weak'], 'weak')}")
        lines.append(f"  strong:   {_model_text(data['strong'], 'strong')}")
        lines.append(f"  detector: {_pairs(data['detector'])}")
        lines.append(f"  policy:   {_pairs(data['policy'])}")
        budget = _pairs(data["budget"]) if node.budget.limited else "no limit"
        lines.append(f"  budget:   {budget}")
        lines.append(f"  tool:     {_pairs(data['tool'])}")
    if config.prices:
        lines += ["", "prices (USD per 1M tokens)"]
        lines += [
            f"  {model}: input {price.input:g}, output {price.output:g}"
            for model, price in config.prices.items()
        ]
    return "\n".join(lines) + "\n"


def _report_invalid(
    file: str, error: ConfigError, *, as_json: bool, hidden: dict[str, str]
) -> None:
    issues = error.issues
    if as_json:
        document = {
            "file": file,
            "valid": False,
            "errors": [_issue_dict(issue) for issue in issues],
        }
        _write(sys.stdout, json.dumps(document, indent=2) + "\n", hidden)
    else:
        _write(sys.stderr, f"{error}\n", hidden)


def _issue_dict(issue: ConfigIssue) -> dict[str, Any]:
    return {
        "file": issue.source,
        "line": issue.line,
        "column": issue.column,
        "path": issue.path,
        "message": issue.message,
    }


def _import_graph(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        msg = "expected MODULE:ATTR, e.g. myapp.graph:builder"
        raise GraphImportError(msg)
    # Console scripts do not put the working directory on sys.path; `python -m` does.
    working_directory = str(Path.cwd())
    if working_directory not in sys.path:
        sys.path.insert(0, working_directory)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        msg = f"cannot import {module_name!r}: {error}"
        raise GraphImportError(msg) from None
    try:
        return operator.attrgetter(attribute)(module)  # a dotted path walks attributes
    except AttributeError:
        msg = f"{module_name!r} has no attribute {attribute!r}"
        raise GraphImportError(msg) from None


def _model_text(model: dict[str, Any] | None, role: str) -> str:
    if model is None:
        return f"(not set: pass {role}= to the builder)"
    options = {key: value for key, value in model.items() if key != "model"}
    return f"{model['model']} ({_pairs(options)})" if options else str(model["model"])


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}={_value_text(value)}" for key, value in values.items())


def _value_text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(str(item) for item in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
