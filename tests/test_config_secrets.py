"""check-config never prints a secret, valid file or not, text or JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from langchain_escalate.cli import main

if TYPE_CHECKING:
    from pathlib import Path

OPENAI_KEY = "sk-proj-" + "Q7r2Vx9_" * 6
ANTHROPIC_KEY = "sk-ant-api03-" + "h4Rd-" * 18
AWS_KEY = "AKIAZXCVBNMQWERTYUIO"
SHAPELESS = "plain-shapeless-value-42"  # no known shape: only its variable's name gives it away
PASSWORD = "hunter2-Correct-Horse"  # noqa: S105 - a fake, to be hidden

MODELS = "models:\n  weak: openai/gpt-4.1-mini\n  strong: anthropic/claude-sonnet-4-6\n"


def run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, *, as_json: bool
) -> tuple[int, str]:
    file = tmp_path / "escalate.yaml"
    file.write_text(text)
    code = main(["check-config", str(file), *(["--format", "json"] if as_json else [])])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    if as_json:
        json.loads(captured.out)  # redaction keeps the document valid JSON
    return code, output


def assert_no_secret(output: str) -> None:
    for secret in (OPENAI_KEY, ANTHROPIC_KEY, AWS_KEY, SHAPELESS, PASSWORD):
        assert secret not in output
        assert secret[8:20] not in output  # not even a part


CASES = {
    # name: (YAML after MODELS, environment, exit code, a marker the output must show)
    "api_base userinfo from the environment": (
        "nodes:\n  a:\n    models: {weak: {api_base: '${LOCAL_URL}'}}\n",
        {"LOCAL_URL": f"https://bob:{OPENAI_KEY}@gpu.internal:8080/v1"},
        0,
        "https://bob:[REDACTED:",
    ),
    "api_base userinfo written in the file": (
        f"nodes:\n  a:\n    models: {{weak: {{api_base: 'https://bob:{PASSWORD}@gpu/v1'}}}}\n",
        {},
        2,
        "the URL holds a password or key",
    ),
    "keys in lists inside model_kwargs": (
        (
            "models:\n  weak:\n    model: openai/gpt-4.1-mini\n"
            f"    model_kwargs: {{stop: [END, {ANTHROPIC_KEY}], tags: [{{ids: [{AWS_KEY}]}}]}}\n"
            "  strong: anthropic/claude-sonnet-4-6\nnodes: {a: }\n"
        ),
        {},
        0,
        "[REDACTED:anthropic-key]",
    ),
    "keys in model_kwargs of an invalid file": (
        "nodes:\n  a:\n    models: {weak: {model_kwargs: " + f"[{OPENAI_KEY}]" + "}}\n",
        {},
        2,
        "[REDACTED:openai-key]",
    ),
    "?password= from the environment": (
        "nodes:\n  a:\n    models: {strong: {api_base: 'https://gw/v1?password=${GW_PASS}&x=1'}}\n",
        {"GW_PASS": PASSWORD},
        0,
        "?password=[REDACTED:",
    ),
    "?password= written in the file": (
        f"nodes:\n  a:\n    models: {{strong: {{api_base: 'https://gw/v1?password={PASSWORD}'}}}}\n",
        {},
        2,
        "the URL holds a password or key",
    ),
    "an interpolated environment value without a shape": (
        "nodes:\n  a:\n    models: {strong: {extra_headers: {X-Trace: '${TRACE_TOKEN}'}}}\n",
        {"TRACE_TOKEN": SHAPELESS},
        0,
        "[REDACTED:${TRACE_TOKEN}]",
    ),
    "an interpolated key in a field that rejects it": (
        "defaults:\n  budget: {max_usd_total: '${OPENAI_API_KEY}'}\n",
        {"OPENAI_API_KEY": OPENAI_KEY},
        2,
        "'${OPENAI_API_KEY}' (from the environment)",
    ),
    "an interpolated key in a variable with an ordinary name": (
        "nodes:\n  a:\n    models: {strong: {organization: '${ORG}'}}\n",
        {"ORG": OPENAI_KEY},
        0,
        "[REDACTED:openai-key]",
    ),
    "a ledger password in an invalid URL": (
        "defaults:\n  budget: {max_usd_total: 1, ledger: 'mysql://app:${DB_PASSWORD}@db/x'}\n",
        {"DB_PASSWORD": PASSWORD},
        2,
        "is not a ledger URL",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_check_config_never_prints_a_secret(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    as_json: bool,
) -> None:
    body, environment, expected_code, marker = CASES[case]
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    text = body if body.startswith("models:") else MODELS + body
    code, output = run(tmp_path, capsys, text, as_json=as_json)
    assert code == expected_code, output
    assert_no_secret(output)
    assert marker in output, output
