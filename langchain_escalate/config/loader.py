"""Read ``escalate.yaml`` into an ``EscalateConfig``, or say exactly what is wrong.

Reading goes in stages, and the problems of every stage are collected into
one ``ConfigError`` so a user fixes a file in one round:

1. YAML is parsed into plain data while recording each key's line; a key
   written twice in one mapping is a problem (PyYAML would keep the last one
   silently). Malformed YAML stops here, with the parser's line and column.
2. Credentials in model options are refused: API keys live in the
   provider's environment variable.
3. ``${VAR}`` and ``${VAR:-default}`` in string values are replaced from
   the environment.
4. pydantic validates the data against the strict schema; its errors are
   reworded with the YAML path, the line and the nearest valid key.
5. Checks that span sections (a node that adjusts a model nobody named).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from langchain_escalate.config.errors import (
    ConfigError,
    ConfigIssue,
    Origin,
    YamlPath,
    did_you_mean,
    format_path,
)
from langchain_escalate.config.escalate_config import ORIGIN_CONTEXT_KEY, EscalateConfig
from langchain_escalate.config.schema import ConfigFile

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from pydantic_core import ErrorDetails

__all__ = ["load_config"]

TEXT_SOURCE = "<string>"
"""How errors name a configuration given as YAML text."""

_YAML_SUFFIXES = (".yaml", ".yml", ".json")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_REFERENCE = re.compile(r"\$(?P<escape>\$)?\{(?P<body>[^}]*)(?P<end>\}?)")
_REFERENCE_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)
_CREDENTIAL_KEY = re.compile(
    r"api[_-]?key|secret|passw(or)?d|credential|(^|[_-])token$|^authorization$|^cookie$",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/@]*:(?P<password>[^@/]+)@", re.IGNORECASE)
_BARE_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


def load_config(
    path_or_text: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> EscalateConfig:
    """Read and validate an ``escalate.yaml`` file or YAML text.

    ``path_or_text`` is a file when it is a path object, or a string of one
    line that names an existing file or ends in ``.yaml``/``.yml``/``.json``
    (a missing file is then an error, not YAML text). Any other string is the
    YAML text itself.

    Args:
        path_or_text: A file path, or YAML text.
        environ: Where ``${VAR}`` references are looked up; ``os.environ``
            by default.

    Returns:
        The validated configuration. Nothing is built yet: the ``build_*``
        methods create the models (built at their first call), budgets and
        ledgers.

    Raises:
        ConfigError: The file is unreadable, not valid YAML, or not a valid
            configuration. It lists every problem found, one per line, as
            ``escalate.yaml:12: nodes.planner.detector.monologue: ...``.

    Example:
        >>> cfg = load_config('''
        ... models: {weak: openai/gpt-4.1-mini, strong: anthropic/claude-sonnet-4-6}
        ... nodes:
        ...   planner: {detector: {monologue: 2}}
        ... ''')
        >>> cfg.for_node("planner").detector.monologue
        2
    """
    source, text = _read_source(path_or_text)
    reader = _YamlReader(source)
    data = reader.read(text)
    origin = Origin(source, reader.lines)
    issues = list(reader.issues)
    if data is None:
        data = {}
    issues += _refuse_credentials(data, origin)
    data = _interpolate(data, (), environ if environ is not None else os.environ, origin, issues)
    try:
        config = EscalateConfig.model_validate(data, context={ORIGIN_CONTEXT_KEY: origin})
    except ValidationError as error:
        reported = {issue.path for issue in issues}
        issues += [
            issue
            for issue in (_explain(details, origin) for details in _most_specific(error.errors()))
            if issue.path not in reported
        ]
        raise ConfigError(issues) from None
    issues += _cross_section_issues(config, origin)
    if issues:
        raise ConfigError(issues)
    return config


def _read_source(path_or_text: str | os.PathLike[str]) -> tuple[str, str]:
    if isinstance(path_or_text, str) and not _names_a_file(path_or_text):
        return TEXT_SOURCE, path_or_text
    path = Path(path_or_text)
    source = os.fspath(path_or_text)
    try:
        return source, path.read_text(encoding="utf-8")
    except FileNotFoundError:
        message = "no such file; give the path of an escalate.yaml, or YAML text"
    except IsADirectoryError:
        message = "is a directory; give the path of an escalate.yaml"
    except UnicodeDecodeError as error:
        message = f"not UTF-8 text ({error.reason} at byte {error.start})"
    except OSError as error:
        message = f"cannot be read: {error.strerror or error}"
    raise ConfigError([ConfigIssue(source, None, "", message)])


def _names_a_file(text: str) -> bool:
    if "\n" in text:
        return False
    candidate = text.strip()
    return bool(candidate) and (
        Path(candidate).is_file() or candidate.lower().endswith(_YAML_SUFFIXES)
    )


class _YamlReader:
    """Turns YAML into plain data, recording lines and duplicate keys."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[YamlPath, int] = {(): 1}
        self.issues: list[ConfigIssue] = []
        self._loader: yaml.SafeLoader | None = None

    def read(self, text: str) -> Any:
        loader = yaml.SafeLoader(text)
        self._loader = loader
        try:
            root = loader.get_single_node()
            return None if root is None else self._convert(root, (), set())
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            problem = error.problem or error.context or "malformed YAML"
            raise ConfigError(
                [
                    ConfigIssue(
                        self.source,
                        mark.line + 1 if mark else None,
                        "",
                        f"invalid YAML: {problem}",
                        column=mark.column + 1 if mark else None,
                    )
                ]
            ) from None
        except yaml.YAMLError as error:
            raise ConfigError(
                [ConfigIssue(self.source, None, "", f"invalid YAML: {error}")]
            ) from None
        finally:
            loader.dispose()

    def _convert(self, node: yaml.Node, path: YamlPath, active: set[int]) -> Any:
        if id(node) in active:
            self._report(path, node, "an alias refers to a mapping or list that contains it")
            return None
        if isinstance(node, yaml.MappingNode):
            active.add(id(node))
            result = self._mapping(node, path, active)
            active.discard(id(node))
            return result
        if isinstance(node, yaml.SequenceNode):
            active.add(id(node))
            items = []
            for index, item in enumerate(node.value):
                item_path = (*path, index)
                self.lines[item_path] = item.start_mark.line + 1
                items.append(self._convert(item, item_path, active))
            active.discard(id(node))
            return items
        return self._construct(node)

    def _mapping(self, node: yaml.MappingNode, path: YamlPath, active: set[int]) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(key_node)
            line = key_node.start_mark.line + 1
            if key is _UNHASHABLE:
                self._report(path, key_node, "a key must be a plain value, not a mapping or a list")
            elif key in first_line:
                self._report(
                    (*path, key),
                    key_node,
                    f"duplicate key {key!r} (first on line {first_line[key]}); write each key once",
                )
            else:
                first_line[key] = line
        # `<<: *defaults` merge keys: the mapping's own keys win, as in PyYAML.
        self._loader_or_fail().flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node)
            if key is _UNHASHABLE:
                continue
            key_path = (*path, key)
            self.lines[key_path] = key_node.start_mark.line + 1
            result[key] = self._convert(value_node, key_path, active)
        return result

    def _key(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return _UNHASHABLE
        key = self._construct(node)
        return key if isinstance(key, (str, int, float, bool)) or key is None else str(key)

    def _construct(self, node: yaml.Node) -> Any:
        return self._loader_or_fail().construct_object(node, deep=True)

    def _loader_or_fail(self) -> yaml.SafeLoader:
        if self._loader is None:  # pragma: no cover - read() sets it first
            msg = "read() must be called first"
            raise RuntimeError(msg)
        return self._loader

    def _report(self, path: YamlPath, node: yaml.Node, message: str) -> None:
        self.issues.append(
            ConfigIssue(self.source, node.start_mark.line + 1, format_path(path), message)
        )


_UNHASHABLE = object()


def _refuse_credentials(data: Any, origin: Origin) -> list[ConfigIssue]:
    """Report (and drop) API keys in model options and passwords in ledger URLs."""
    if not isinstance(data, dict):
        return []
    issues: list[ConfigIssue] = []
    sections: list[tuple[YamlPath, Any]] = [(("models",), data.get("models"))]
    nodes = data.get("nodes")
    if isinstance(nodes, dict):
        sections += [
            (("nodes", name, "models"), section.get("models"))
            for name, section in nodes.items()
            if isinstance(section, dict)
        ]
    for path, models in sections:
        if isinstance(models, dict):
            for role, spec in models.items():
                issues += _credentials_in(
                    spec, (*path, role), _provider_env_var(spec, data, role), origin
                )
    issues += _passwords_in_ledgers(data, origin)
    return issues


def _credentials_in(value: Any, path: YamlPath, env_var: str, origin: Origin) -> list[ConfigIssue]:
    if not isinstance(value, dict):
        return []
    issues: list[ConfigIssue] = []
    for key in list(value):
        if isinstance(key, str) and _CREDENTIAL_KEY.search(key):
            del value[key]
            issues.append(
                origin.issue(
                    (*path, key),
                    f"credentials do not belong in the config file; remove {key!r} and set the "
                    f"provider's environment variable ({env_var}), which litellm reads",
                )
            )
        else:
            issues += _credentials_in(value[key], (*path, key), env_var, origin)
    return issues


def _provider_env_var(spec: Any, data: dict[str, Any], role: str) -> str:
    model = spec.get("model") if isinstance(spec, dict) else spec
    if not isinstance(model, str):
        inherited = (
            data.get("models", {}).get(role) if isinstance(data.get("models"), dict) else None
        )
        model = inherited.get("model") if isinstance(inherited, dict) else inherited
    if isinstance(model, str) and "/" in model:
        provider = model.split("/", 1)[0]
        return f"{re.sub(r'[^A-Za-z0-9]', '_', provider).upper()}_API_KEY"
    return "e.g. OPENAI_API_KEY, ANTHROPIC_API_KEY"


def _passwords_in_ledgers(data: dict[str, Any], origin: Origin) -> list[ConfigIssue]:
    budgets: list[tuple[YamlPath, Any]] = []
    if isinstance(data.get("defaults"), dict):
        budgets.append((("defaults", "budget"), data["defaults"].get("budget")))
    if isinstance(data.get("nodes"), dict):
        budgets += [
            (("nodes", name, "budget"), section.get("budget"))
            for name, section in data["nodes"].items()
            if isinstance(section, dict)
        ]
    return [
        origin.issue(
            (*path, "ledger"),
            "the ledger URL holds a password; keep it out of the file: write "
            "postgresql://user:${LEDGER_PASSWORD}@host/db, use ledger: ${ESCALATE_LEDGER_URL}, "
            "or set PGPASSWORD",
        )
        for path, budget in budgets
        if isinstance(budget, dict) and _holds_password(budget.get("ledger"))
    ]


def _holds_password(url: object) -> bool:
    # `postgresql://app:${LEDGER_PASSWORD}@db/ledger` keeps the password out of the file;
    # a literal, or a `${VAR:-default}` whose default is one, does not.
    found = _URL_PASSWORD.match(url) if isinstance(url, str) else None
    return found is not None and not _BARE_REFERENCE.fullmatch(found["password"])


def _interpolate(
    value: Any,
    path: YamlPath,
    environ: Mapping[str, str],
    origin: Origin,
    issues: list[ConfigIssue],
) -> Any:
    """Return ``value`` with ``${VAR}`` references in its strings replaced."""
    if isinstance(value, dict):
        return {
            key: _interpolate(item, (*path, key), environ, origin, issues)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            _interpolate(item, (*path, index), environ, origin, issues)
            for index, item in enumerate(value)
        ]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        if match["escape"]:  # `$${X}` is the literal text `${X}`
            return "${" + match["body"] + match["end"]
        reference = _REFERENCE_BODY.fullmatch(match["body"])
        if not match["end"] or reference is None:
            issues.append(
                origin.issue(
                    path, f"malformed reference {match[0]!r}; write ${{NAME}} or ${{NAME:-default}}"
                )
            )
            return match[0]
        name, default = reference["name"], reference["default"]
        found = environ.get(name)
        if found is not None and (found or default is None):
            return found
        if default is not None:
            return default
        issues.append(
            origin.issue(
                path,
                f"environment variable {name} is not set; "
                f"set it, or give a default: ${{{name}:-value}}",
            )
        )
        return match[0]

    return _REFERENCE.sub(replace, value)


def _cross_section_issues(config: EscalateConfig, origin: Origin) -> list[ConfigIssue]:
    """Problems no single section shows: a node adjusting a model that nobody named."""
    issues = []
    for name, section in config.nodes.items():
        for role in ("weak", "strong"):
            override = getattr(section.models, role)
            if (
                override is not None
                and override.model is None
                and getattr(config.models, role) is None
            ):
                issues.append(
                    origin.issue(
                        ("nodes", name, "models", role),
                        f"sets options of the {role} model but names no model, "
                        f"and models.{role} is not set; add model: <litellm id>",
                    )
                )
    return issues


def _most_specific(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Drop an error when another one points inside the same value.

    pydantic reports a bad list item, then again that the list is too short
    once the bad item is dropped; only the first helps.
    """
    locations = [tuple(details["loc"]) for details in errors]
    return [
        details
        for details, loc in zip(errors, locations, strict=True)
        if not any(len(other) > len(loc) and other[: len(loc)] == loc for other in locations)
    ]


def _explain(details: ErrorDetails, origin: Origin) -> ConfigIssue:
    """Reword one pydantic error for a person editing YAML."""
    loc: YamlPath = tuple(part for part in details["loc"] if part != "[key]")
    reword = _REWORDINGS.get(details["type"], _generic_message)
    return origin.issue(loc, reword(details, loc))


def _generic_message(details: ErrorDetails, loc: YamlPath) -> str:  # noqa: ARG001 - shared signature
    message = re.sub(r"^Input should be", "should be", details["msg"])
    if "[key]" in details["loc"]:
        message = f"key {message}"
    return f"{message}, got {details.get('input')!r}"


def _literal_message(details: ErrorDetails, loc: YamlPath) -> str:  # noqa: ARG001 - shared signature
    value = details.get("input")
    expected = str(details.get("ctx", {}).get("expected", ""))
    options = re.findall(r"'([^']*)'", expected)
    return f"{value!r} is not one of {expected}{did_you_mean(str(value), options)}"


def _pattern_message(details: ErrorDetails, loc: YamlPath) -> str:
    return f"{details.get('input')!r} has the wrong form; expected {_field_description(loc)}"


def _unknown_key_message(details: ErrorDetails, loc: YamlPath) -> str:  # noqa: ARG001 - shared signature
    key = str(loc[-1])
    section = _model_at(loc[:-1])
    if section is None:
        return f"unknown key {key!r}"
    # `model` first: it is the key people look for in a model's options.
    allowed = sorted(section.model_fields, key=lambda name: name != "model")
    owners = [
        name
        for name in allowed
        if (sub := _model_at((*loc[:-1], name))) and key in sub.model_fields
    ]
    hint = f" (it belongs under {owners[0]}:)" if owners else did_you_mean(key, allowed)
    return f"unknown key {key!r}{hint}; expected one of: {', '.join(allowed)}"


def _wrong_shape_message(details: ErrorDetails, loc: YamlPath) -> str:
    value = details.get("input")
    if not loc:
        sections = "models, prices, defaults and nodes"
        return f"the top level must be a mapping with {sections}, got {value!r}"
    section = _model_at(loc)
    if section is not None and "model" in section.model_fields:
        return f"expected a litellm model id or a mapping with model: and options, got {value!r}"
    return f"expected a mapping (key: value lines), got {value!r}"


def _model_at(loc: YamlPath) -> type[BaseModel] | None:
    annotation: Any = ConfigFile
    for part in loc:
        annotation = _strip_optional(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return None
            annotation = field.annotation
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    annotation = _strip_optional(annotation)
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def _field_description(loc: YamlPath) -> str:
    section = _model_at(loc[:-1])
    field = section.model_fields.get(str(loc[-1])) if section else None
    return field.description if field and field.description else "a different value"


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in {Union, UnionType}:
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


_REWORDINGS: dict[str, Callable[[ErrorDetails, YamlPath], str]] = {
    "extra_forbidden": _unknown_key_message,
    "missing": lambda details, loc: f"missing required key {loc[-1]!r}",  # noqa: ARG005
    "literal_error": _literal_message,
    "model_type": _wrong_shape_message,
    "dict_type": _wrong_shape_message,
    "model_attributes_type": _wrong_shape_message,
    "string_pattern_mismatch": _pattern_message,
    "tuple_type": lambda details, loc: f"expected a list ([a, b]), got {details.get('input')!r}",  # noqa: ARG005
    "list_type": lambda details, loc: f"expected a list ([a, b]), got {details.get('input')!r}",  # noqa: ARG005
    "too_short": lambda details, loc: (  # noqa: ARG005
        f"expected at least {details.get('ctx', {}).get('min_length')} item(s), got none"
    ),
    # Our own validators' messages already name the value.
    "value_error": lambda details, loc: details["msg"].removeprefix("Value error, "),  # noqa: ARG005
}
"""pydantic error types whose stock wording misleads a YAML author."""
