"""Secrets in text and data are replaced by a marker naming their kind, in linear time."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from langchain_escalate import redact as redact_module
from langchain_escalate.redact import DEFAULT_PATTERNS, add_pattern, redact, redact_data

# Fakes with the real shapes (never real keys): prefix, alphabet and length.
SECRETS = {
    "openai-key": [
        "sk-" + "A1b2C3d4" * 6,
        "sk-proj-" + "Zx9_Yw8-" * 8,
        "sk-svcacct-" + "q" * 40,
    ],
    "anthropic-key": ["sk-ant-api03-" + "Ab3-" * 22 + "AA"],
    "aws-access-key": ["AKIAIOSFODNN7EXAMPLE", "ASIA2EXAMPLE7EXAMPL"[:4] + "Z" * 16],
    "google-api-key": ["AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"[:35]],
    "github-token": ["ghp_" + "a1B2" * 9, "github_pat_11ABCDEFG0" + "x" * 60],
    "slack-token": ["xoxb-123456789012-1234567890123-" + "A" * 24, "xoxp-1-2-3-abcdef"],
    "huggingface-token": ["hf_" + "AbCdEfGhIj" * 3 + "kl"],
}

CONTEXTS = [
    "{}",
    "key: {}",
    "export OPENAI_KEY_X={} && run",
    '{{"value": "{}"}}',
    "Error 401: invalid credentials '{}' for this project",
]


@pytest.mark.parametrize(
    ("kind", "secret"),
    [(kind, secret) for kind, secrets in SECRETS.items() for secret in secrets],
)
@pytest.mark.parametrize("context", CONTEXTS)
def test_provider_key_shapes_are_redacted_with_their_kind(
    kind: str, secret: str, context: str
) -> None:
    text = context.format(secret)
    redacted = redact(text)
    assert secret not in redacted
    assert f"[REDACTED:{kind}]" in redacted
    assert redacted == context.format(f"[REDACTED:{kind}]")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dozjgNryP4J3jVmNHl0w5N",
            "Authorization: Bearer [REDACTED:bearer-token]",
        ),
        (
            "Authorization: Basic dXNlcjpodW50ZXIy",
            "Authorization: Basic [REDACTED:basic-auth]",
        ),
        (
            "postgresql://app:hunter2@db.internal:5432/ledger",
            "postgresql://app:[REDACTED:url-password]@db.internal:5432/ledger",
        ),
        (
            "see https://bob:p%40ss:w0rd@example.com/x and ftp://:anon@host",
            (
                "see https://bob:[REDACTED:url-password]@example.com/x "
                "and ftp://:[REDACTED:url-password]@host"
            ),
        ),
        (
            "GET /v1/items?limit=5&password=hunter2&token=abc123#top",
            (
                "GET /v1/items?limit=5&password=[REDACTED:query-secret]"
                "&token=[REDACTED:query-secret]#top"
            ),
        ),
        (
            "https://maps.example.com/api?key=AIzaNotLongEnough&secret=s3&api_key=k&sig=zz",
            (
                "https://maps.example.com/api?key=[REDACTED:query-secret]"
                "&secret=[REDACTED:query-secret]&api_key=[REDACTED:query-secret]"
                "&sig=[REDACTED:query-secret]"
            ),
        ),
        ("api_key=abc123 next", "api_key=[REDACTED:secret] next"),
        (
            '{"password": "hunter2", "user": "bob"}',
            '{"password": "[REDACTED:secret]", "user": "bob"}',
        ),
        ("export ANTHROPIC_API_KEY='xyz789'", "export ANTHROPIC_API_KEY='[REDACTED:secret]'"),
        ("client_secret: Zm9vYmFy", "client_secret: [REDACTED:secret]"),
    ],
)
def test_tokens_passwords_and_assignments_keep_their_context(text: str, expected: str) -> None:
    assert redact(text) == expected


PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n" * 5


@pytest.mark.parametrize("label", ["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED "])
def test_pem_private_keys_are_redacted_whole(label: str) -> None:
    pem = f"-----BEGIN {label}PRIVATE KEY-----\n{PEM_BODY}-----END {label}PRIVATE KEY-----"
    assert redact(f"key:\n{pem}\ndone") == "key:\n[REDACTED:private-key]\ndone"


def test_a_truncated_private_key_is_still_redacted() -> None:
    text = "log: -----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n" + PEM_BODY
    assert redact(text) == "log: [REDACTED:private-key]"


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens=2048, total_tokens: 30, token count: 12",
        "task-abcdefghijklmnopqrstuvwxyz0123 and risk-0123456789abcdefghijk",
        "the bearer of bad news; Bearer short",
        "postgresql://user:${LEDGER_PASSWORD}@host/db?password=${PW}",
        "https://user@example.com/path?limit=10&page=2",
        "sk-short",
        "the password is required; set PGPASSWORD",
        "AKIA is a prefix; AKIAIOSFODNN7EXAMPLEX is too long",
        "[REDACTED:openai-key] stays as it is",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_redaction_is_idempotent() -> None:
    text = " ".join(secret for secrets in SECRETS.values() for secret in secrets)
    once = redact(text + " api_key=abc https://u:p@h/?token=t")
    assert redact(once) == once


def test_redact_data_walks_mappings_lists_tuples_and_returns_copies() -> None:
    key = SECRETS["openai-key"][1]
    data: dict[str, Any] = {
        "model_kwargs": {"stop": ["END", key], "extra": ({"note": f"Bearer {'t' * 20}"},)},
        "api_base": "https://u:hunter2@gpu:8080/v1",
        "X-Api-Key": "plainvalue",
        "Authorization": "anything at all",
        "password": 1234,
        "count": 3,
        "flag": True,
        "nothing": None,
    }
    redacted = redact_data(data)
    assert redacted == {
        "model_kwargs": {
            "stop": ["END", "[REDACTED:openai-key]"],
            "extra": ({"note": "Bearer [REDACTED:bearer-token]"},),
        },
        "api_base": "https://u:[REDACTED:url-password]@gpu:8080/v1",
        "X-Api-Key": "[REDACTED:secret]",
        "Authorization": "[REDACTED:secret]",
        "password": "[REDACTED:secret]",
        "count": 3,
        "flag": True,
        "nothing": None,
    }
    assert data["model_kwargs"]["stop"][1] == key  # the original is untouched
    assert isinstance(redacted["model_kwargs"]["extra"], tuple)


def test_redact_data_survives_a_container_that_holds_itself() -> None:
    loop: list[object] = ["sk-" + "a" * 30]
    loop.append(loop)
    assert redact_data(loop) == ["[REDACTED:openai-key]", "[REDACTED:cycle]"]


def test_add_pattern_reaches_every_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redact_module, "_patterns", DEFAULT_PATTERNS)
    secret = "acme_" + "0f" * 16
    assert redact(f"id {secret}") == f"id {secret}"
    add_pattern("acme-key", r"acme_[0-9a-f]{32}")
    assert redact(f"id {secret}") == "id [REDACTED:acme-key]"
    assert redact_data({"ids": [secret]}) == {"ids": ["[REDACTED:acme-key]"]}
    add_pattern("acme-user", re.compile(r"user=(?P<secret>\w+)"))
    assert redact("user=alice ok") == "user=[REDACTED:acme-user] ok"
    with pytest.raises(ValueError, match="lower-case letters"):
        add_pattern("Acme Key", "x")


# --- linear time ----------------------------------------------------------------------------

# Near misses for each pattern: a prefix that starts a match attempt and a
# tail that makes it fail late, plus runs that every pattern must cross.
ADVERSARIAL = {
    "private-key": [
        "-----BEGIN PRIVATE KEY-----",
        "-----BEGIN ",
        "- ",
        "-----BEGIN A PRIVATE KEY-----a",
    ],
    "anthropic-key": ["sk-ant-" + "a" * 19 + " ", "sk-ant-"],
    "openai-key": ["sk-" + "a" * 19 + " ", "sk-proj-", "sk-"],
    "aws-access-key": ["AKIA" + "A" * 15 + " ", "AKIA"],
    "google-api-key": ["AIza" + "a" * 34 + "!", "AIza"],
    "github-token": ["ghp_" + "a" * 35 + "!", "github_pat_" + "a" * 21 + "!"],
    "slack-token": ["xoxb-" + "a" * 9 + "!", "xoxb-"],
    "huggingface-token": ["hf_" + "a" * 29 + "!", "hf_"],
    "bearer-token": ["Bearer " + "a" * 15 + "!", "Bearer     "],
    "basic-auth": ["authorization: Basic !", "authorization"],
    "url-password": ["a://b:", "a://", "ab+.-://" + "u" * 20 + ":", "a:"],
    "query-secret": ["?password=", "&key", "&sig=&"],
    "secret": ["api_key     ", "token ", "password:", "secret=[REDACTED"],
}
EVERYONE = ["a", " ", "a:", "=/@"]


def _best_time(pattern: re.Pattern[str], text: str) -> float:
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        pattern.sub("", text)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("secret_pattern", DEFAULT_PATTERNS, ids=lambda p: p.kind)
def test_every_pattern_is_linear_on_1mb_adversarial_input(secret_pattern: object) -> None:
    # Generous on purpose (a shared machine is noisy): linear work grows 10x
    # from 100 KB to 1 MB; quadratic work grows 100x and takes minutes at 1 MB.
    assert isinstance(secret_pattern, redact_module.SecretPattern)
    units = ADVERSARIAL[secret_pattern.kind] + EVERYONE
    for unit in units:
        small = unit * (100_000 // len(unit))
        large = unit * (1_000_000 // len(unit))
        small_time = _best_time(secret_pattern.regex, small)
        large_time = _best_time(secret_pattern.regex, large)
        assert large_time <= 30 * small_time + 0.2, (
            secret_pattern.kind,
            unit,
            small_time,
            large_time,
        )


def test_every_default_kind_has_adversarial_input() -> None:
    assert {pattern.kind for pattern in DEFAULT_PATTERNS} == set(ADVERSARIAL)
