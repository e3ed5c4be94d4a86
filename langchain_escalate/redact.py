"""Redaction of secrets in text and data, before they reach a model, a log or a terminal.

``redact(text)`` replaces every secret a pattern recognises with a marker
naming its kind (``[REDACTED:openai-key]``); ``redact_data(value)`` does the
same through mappings, lists and tuples, and also hides the value of any key
named like a credential (``{"api_key": "abc"}``). The defaults know provider
key shapes, bearer tokens, PEM private keys, and passwords in URLs and query
strings; ``add_pattern`` teaches them yours, for every caller at once.

Every pattern runs in linear time: no nested quantifiers, and every
unbounded run is of a character class that the next token cannot match, so
a match attempt never backtracks over what it consumed.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_PATTERNS", "SecretPattern", "add_pattern", "redact", "redact_data"]

_KIND = re.compile(r"[a-z0-9][a-z0-9-]*")
_NOT_AFTER_WORD = r"(?<![A-Za-z0-9_-])"
# Names of settings that hold a credential. In text they are found inside
# longer names (`OPENAI_API_KEY=`), so no prefix is needed, and none is
# matched: a prefix run before a keyword is the classic quadratic pattern.
_CREDENTIAL_WORDS = (
    r"(?:api[_-]?key|apikey|(?:secret|private|access|client)[_-]?(?:key|secret)|secret"
    r"|passw(?:or)?d|pwd|(?:access|auth|refresh|bearer|session|id)[_-]?token|token)"
)
# Keys of a mapping, matched whole (and only when short): `X-Api-Key`, `Authorization`.
_CREDENTIAL_KEY = re.compile(
    rf"(?i)(?:[a-z0-9]+[_-])*(?:{_CREDENTIAL_WORDS}|authorization|cookie|credentials?)"
)
_CREDENTIAL_KEY_MAX = 100
_ASSIGNED_VALUE = (
    r"""["']?[ \t]{0,5}[:=][ \t]{0,5}["']?(?!\[REDACTED|\$\{)(?P<secret>[^\s"',;&<>\[\]]+)"""
)


@dataclass(frozen=True)
class SecretPattern:
    """A kind of secret and the regular expression that finds it.

    Attributes:
        kind: Names the secret in the marker: ``[REDACTED:<kind>]``.
        regex: Finds it. When it has a group named ``secret``, only that group
            is replaced (``https://user:[REDACTED:url-password]@host``);
            otherwise the whole match is.
        hints: Lower-case substrings one of which every match contains; text
            without any is skipped (most text, for most patterns). Empty:
            always run the regex.
    """

    kind: str
    regex: re.Pattern[str]
    hints: tuple[str, ...] = ()

    def applies_to(self, lowered: str) -> bool:
        """Whether the lower-cased text holds a hint, so the regex is worth running."""
        return not self.hints or any(hint in lowered for hint in self.hints)

    def sub(self, text: str) -> str:
        """Return ``text`` with every match replaced by this kind's marker."""
        marker = f"[REDACTED:{self.kind}]"
        if "secret" not in self.regex.groupindex:
            return self.regex.sub(marker, text)

        def replace(match: re.Match[str]) -> str:
            start, end = match.span("secret")
            whole = match[0]
            offset = match.start()
            return whole[: start - offset] + marker + whole[end - offset :]

        return self.regex.sub(replace, text)


def _pattern(kind: str, regex: str, *hints: str) -> SecretPattern:
    return SecretPattern(kind, re.compile(regex), hints)


DEFAULT_PATTERNS: tuple[SecretPattern, ...] = (
    # PEM bodies: base64, whitespace and header lines; a dash only where no
    # `-----` follows, so a body stops at the next marker. A key cut off
    # before its END line is redacted too.
    _pattern(
        "private-key",
        r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----(?:[A-Za-z0-9+/=\s:,.]|-(?!----))*"
        r"(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----)?",
        "private key-----",
    ),
    # Before OpenAI's: `sk-ant-...` also has OpenAI's shape.
    _pattern("anthropic-key", _NOT_AFTER_WORD + r"sk-ant-[A-Za-z0-9_-]{20,}", "sk-ant-"),
    _pattern(
        "openai-key", _NOT_AFTER_WORD + r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}", "sk-"
    ),
    _pattern(
        "aws-access-key",
        r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])",
        "akia",
        "asia",
        "abia",
        "acca",
    ),
    _pattern("google-api-key", r"(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{35}", "aiza"),
    _pattern(
        "github-token",
        _NOT_AFTER_WORD + r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        *("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    _pattern("slack-token", _NOT_AFTER_WORD + r"xox[abposr]-[A-Za-z0-9-]{10,}", "xox"),
    _pattern("huggingface-token", _NOT_AFTER_WORD + r"hf_[A-Za-z0-9]{30,}", "hf_"),
    _pattern("bearer-token", r"\bBearer[ \t]{1,5}(?P<secret>[A-Za-z0-9._~+/-]{16,}=*)", "bearer"),
    _pattern(
        "basic-auth",
        r"(?i)authorization[\"']?[ \t]{0,5}[:=][ \t]{0,5}[\"']?Basic[ \t]{1,5}"
        r"(?P<secret>[A-Za-z0-9+/]{4,}=*)",
        "authorization",
    ),
    # scheme://user:password@host; a `${VAR}` reference is not a secret.
    _pattern(
        "url-password",
        r"\b[A-Za-z][A-Za-z0-9+.-]{0,30}://[^\s:/@]*:(?!\$\{)(?P<secret>[^\s/@]+)@",
        "://",
    ),
    _pattern(
        "query-secret",
        r"(?i)[?&;](?:password|passwd|pwd|token|access_token|api[_-]?key|apikey|key|secret"
        r"|client_secret|sig|signature)=(?!\$\{)(?P<secret>[^&#\s]+)",
        "=",
    ),
    # `api_key=...`, `"password": "..."`, `export OPENAI_API_KEY=...`.
    # The lookahead lets the regex engine skip positions that cannot start a name.
    _pattern(
        "secret",
        rf"(?i)(?=[apsticrb]){_CREDENTIAL_WORDS}(?![A-Za-z0-9]){_ASSIGNED_VALUE}",
        "key",
        "secret",
        "passw",
        "pwd",
        "token",
    ),
)
"""The patterns every ``redact`` applies, in order, before any added with ``add_pattern``."""

_patterns: tuple[SecretPattern, ...] = DEFAULT_PATTERNS
_lock = threading.Lock()


def add_pattern(kind: str, regex: str | re.Pattern[str]) -> Callable[[], None]:
    """Teach ``redact`` and ``redact_data`` a kind of secret, everywhere in this process.

    Briefings, records, logs, stream events, stop messages and CLI output all
    redact through this module, so one call covers them all. Keep the
    pattern linear-time: no nested quantifiers (``(a+)+``) and no unbounded
    run followed by something that run can also match.

    Args:
        kind: A short lower-case name for the marker, e.g. ``"acme-key"``.
        regex: The pattern; a group named ``secret`` limits the replacement to it.

    Returns:
        A function that removes the pattern again (for tests, mostly).

    Raises:
        ValueError: ``kind`` is not lower-case letters, digits and dashes.

    Example:
        >>> remove = add_pattern("acme-key", r"acme_[0-9a-f]{32}")
        >>> redact("key acme_" + "0" * 32)
        'key [REDACTED:acme-key]'
        >>> remove()
    """
    global _patterns  # noqa: PLW0603 - one registry for the process, by design
    if not _KIND.fullmatch(kind):
        msg = f"kind {kind!r} must be lower-case letters, digits and dashes, e.g. 'acme-key'"
        raise ValueError(msg)
    added = SecretPattern(kind, regex if isinstance(regex, re.Pattern) else re.compile(regex))
    with _lock:
        _patterns = (*_patterns, added)

    def remove() -> None:
        global _patterns  # noqa: PLW0603
        with _lock:
            _patterns = tuple(pattern for pattern in _patterns if pattern is not added)

    return remove


def redact(text: str) -> str:
    """Return ``text`` with every recognised secret replaced by ``[REDACTED:<kind>]``.

    Args:
        text: Any text: a tool result, a log line, an error message.

    Returns:
        The text, secrets replaced; the same text when there are none.

    Example:
        >>> redact("curl -H 'Authorization: Bearer abcdefghijklmnopqrstuvwxyz' "
        ...        "https://bob:hunter2@api.example.com/v1?api_key=123456")
        "curl -H 'Authorization: Bearer [REDACTED:bearer-token]' https://bob:[REDACTED:url-password]@api.example.com/v1?api_key=[REDACTED:query-secret]"
    """
    lowered = text.lower()
    for pattern in _patterns:
        if pattern.applies_to(lowered):
            text = pattern.sub(text)
    return text


def redact_data(value: Any) -> Any:
    """Return a copy of ``value`` with secrets redacted in every string inside it.

    Mappings become ``dict``, lists ``list``, tuples ``tuple``; other values
    are returned as they are. A string or number under a key named like a
    credential (``api_key``, ``password``, ``Authorization``...) is replaced
    whole by ``[REDACTED:secret]``, whatever its shape.

    Args:
        value: Data: mappings, lists, tuples, strings, numbers.

    Returns:
        The redacted copy.

    Example:
        >>> redact_data({"api_key": "abc", "stop": ["sk-proj-" + "x" * 24], "n": 1})
        {'api_key': '[REDACTED:secret]', 'stop': ['[REDACTED:openai-key]'], 'n': 1}
    """
    return _redact_value(value, set())


def _redact_value(value: Any, active: set[int]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if not isinstance(value, (Mapping, list, tuple)):
        return value
    if id(value) in active:  # a container that holds itself
        return "[REDACTED:cycle]"
    active.add(id(value))
    try:
        if isinstance(value, Mapping):
            return {
                key: "[REDACTED:secret]"
                if _is_credential_name(key) and isinstance(value[key], (str, int, float))
                else _redact_value(value[key], active)
                for key in value
            }
        items = [_redact_value(item, active) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    finally:
        active.discard(id(value))


def _is_credential_name(key: object) -> bool:
    return (
        isinstance(key, str)
        and len(key) <= _CREDENTIAL_KEY_MAX
        and _CREDENTIAL_KEY.fullmatch(key) is not None
    )
