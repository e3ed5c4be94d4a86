"""Read ``escalate.yaml`` into an ``EscalateConfig``, or say exactly what is wrong.

Every stage's problems go into one ``ConfigError``, so a file is fixed in one
round: YAML with line marks (``reading``), credentials refused, ``${VAR}``
interpolated, pydantic validation told by YAML path and line (``explain``),
then checks across values (finite numbers, models that nobody named).
"""

from __future__ import annotations

import math
import os
import re
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from langchain_escalate.config.errors import ConfigError, ConfigIssue, Origin, YamlPath
from langchain_escalate.config.escalate_config import EscalateConfig
from langchain_escalate.config.explain import explain
from langchain_escalate.config.reading import parse_yaml, read_source

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = ["load_config"]

_REFERENCE = re.compile(r"\$(?P<escape>\$)?\{(?P<body>[^}]*)(?P<end>\}?)")
_REFERENCE_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)
_CREDENTIAL_KEY = re.compile(
    r"api[_-]?key|secret|passw(or)?d|credential|(^|[_-])token$|^authorization$|^cookie$",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/@]*:(?P<password>[^@/]+)@", re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_QUERY_SECRET = re.compile(
    r"(?i)[?&](?:password|passwd|pwd|token|access_token|api[_-]?key|apikey|secret|key)=([^&#]*)"
)
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
    source, text = read_source(path_or_text)
    data, lines, issues = parse_yaml(source, text)
    origin = Origin(source, lines)
    data = {} if data is None else data
    issues += _refuse_credentials(data, origin)
    written: dict[YamlPath, str] = {}
    environ = os.environ if environ is None else environ
    data = _interpolate(data, (), environ, origin, issues, written)
    issues += _non_finite(data, origin, written)
    try:
        config = EscalateConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_new(issues, explain(error, origin, written))) from None
    # Strings become numbers in validation: `max_usd_total: ${LIMIT}` with LIMIT=1e309.
    issues = _new(issues, _non_finite(config.model_dump(), origin, written))
    issues += _unnamed_models(config, origin)
    if issues:
        raise ConfigError(issues)
    config._origin = origin  # noqa: SLF001 - the loader is the config's one maker
    return config


def _new(issues: list[ConfigIssue], more: list[ConfigIssue]) -> list[ConfigIssue]:
    """``issues`` and those of ``more`` at paths not reported yet: the first word wins."""
    reported = {issue.path for issue in issues}
    return issues + [issue for issue in more if issue.path not in reported]


def _refuse_credentials(data: Any, origin: Origin) -> list[ConfigIssue]:
    """Report API keys in model options and passwords in ledger URLs.

    pydantic would also reject most of these keys as unknown; this names the
    fix instead, and its report wins (one issue per path).
    """
    issues: dict[YamlPath, ConfigIssue] = {}
    for path, value in _leaves(data, ()):
        if path[-2:] == ("budget", "ledger") and _holds_password(value):
            issues[path] = origin.issue(path, _LEDGER_URL_ADVICE)
        if path[-1:] == ("api_base",) and _holds_password(value):
            issues[path] = origin.issue(path, _API_BASE_ADVICE)
        role_end = 2 if path[:1] == ("models",) else 4 if path[2:3] == ("models",) else 0
        if not role_end or path[:1] not in {("models",), ("nodes",)}:
            continue
        found = next(
            (end for end in range(role_end, len(path) + 1) if _is_credential(path[end - 1])), None
        )
        if found is not None and path[:found] not in issues:
            key = path[found - 1]
            issues[path[:found]] = origin.issue(
                path[:found],
                f"credentials do not belong in the config file; remove {key!r} and set the "
                f"provider's environment variable ({_provider_env_var(data, path[:role_end])}), "
                "which litellm reads",
            )
    return list(issues.values())


_LEDGER_URL_ADVICE = (
    "the ledger URL holds a password; keep it out of the file: write "
    "postgresql://user:${LEDGER_PASSWORD}@host/db, use ledger: ${ESCALATE_LEDGER_URL}, "
    "or set PGPASSWORD"
)


_API_BASE_ADVICE = (
    "the URL holds a password or key; keep it out of the file: write "
    "https://user:${MY_PASSWORD}@host/v1 or ?key=${MY_KEY}, or api_base: ${MY_API_BASE}"
)


def _is_credential(key: object) -> bool:
    return isinstance(key, str) and _CREDENTIAL_KEY.search(key) is not None


def _provider_env_var(data: dict[str, Any], role_path: YamlPath) -> str:
    # The model named at this role, or the one it inherits from `models`.
    model = None
    for path in (role_path, ("models", role_path[-1])):
        spec: Any = data
        for part in path:
            spec = _mapping(spec).get(part)
        model = spec.get("model") if isinstance(spec, dict) else spec
        if isinstance(model, str):
            break
    provider = re.split(r"[/:]", model, maxsplit=1)[0] if isinstance(model, str) else ""
    if provider and provider != model:
        return f"{re.sub(r'[^A-Za-z0-9]', '_', provider).upper()}_API_KEY"
    return "e.g. OPENAI_API_KEY, ANTHROPIC_API_KEY"


def _holds_password(url: object) -> bool:
    # `postgresql://app:${LEDGER_PASSWORD}@db/ledger` keeps the password out of the file;
    # a literal, or a `${VAR:-default}` whose default is one, does not. So for `?password=`.
    if not isinstance(url, str):
        return False
    found = _URL_PASSWORD.match(url)
    values = [found["password"]] if found else []
    values += _QUERY_SECRET.findall(url)
    return any(not _BARE_REFERENCE.fullmatch(value) for value in values)


def _interpolate(  # noqa: PLR0917 - one recursive walk; its state travels along
    value: Any,
    path: YamlPath,
    environ: Mapping[str, str],
    origin: Origin,
    issues: list[ConfigIssue],
    written: dict[YamlPath, str],
) -> Any:
    """Return ``value`` with ``${VAR}`` references in its strings replaced.

    ``written`` receives the original text of each value that changed, so
    errors show ``${VAR}`` rather than what the environment holds.
    """
    if isinstance(value, dict):
        return {
            key: _interpolate(item, (*path, key), environ, origin, issues, written)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            _interpolate(item, (*path, index), environ, origin, issues, written)
            for index, item in enumerate(value)
        ]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        if match["escape"]:  # `$${X}` is the literal text `${X}`
            return "${" + match["body"] + match["end"]
        reference = _REFERENCE_BODY.fullmatch(match["body"])
        if not match["end"] or reference is None:
            message = f"malformed reference {match[0]!r}; write ${{NAME}} or ${{NAME:-default}}"
            issues.append(origin.issue(path, message))
            return match[0]
        name, default = reference["name"], reference["default"]
        found = environ.get(name)
        if found is not None and (found or default is None):
            return found
        if default is not None:
            return default
        message = (
            f"environment variable {name} is not set; set it, or give a default: ${{{name}:-value}}"
        )
        issues.append(origin.issue(path, message))
        return match[0]

    result = _REFERENCE.sub(replace, value)
    if result != value:
        written[path] = value
    return result


def _non_finite(data: Any, origin: Origin, written: Mapping[YamlPath, str]) -> list[ConfigIssue]:
    """Report ``.inf``, ``nan`` and numbers too large for a float (``1e309``), anywhere."""
    return [
        origin.issue(
            path,
            f"{written.get(path, value)!r} is not a finite number; "
            "write a number such as 25.0, or null for no limit",
        )
        for path, value in _leaves(data, ())
        if _infinite_or_nan(value)
    ]


def _infinite_or_nan(value: object) -> bool:
    # YAML reads `1e309` (no dot) as a string, which pydantic turns into inf.
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        value = float(value)
    return isinstance(value, float) and not math.isfinite(value)


def _leaves(value: Any, path: YamlPath) -> Iterator[tuple[YamlPath, Any]]:
    if not value and isinstance(value, (dict, list, tuple)):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path, value


def _unnamed_models(config: EscalateConfig, origin: Origin) -> list[ConfigIssue]:
    """A node adjusting a model's options when no model is named there or in ``models``."""
    return [
        origin.issue(
            ("nodes", name, "models", role),
            f"sets options of the {role} model but names no model, "
            f"and models.{role} is not set; add model: <model id>",
        )
        for name, section in config.nodes.items()
        for role in ("weak", "strong")
        if (override := getattr(section.models, role)) is not None
        and override.model is None
        and getattr(config.models, role) is None
    ]


def _mapping(value: object) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}
