"""check-config checks model ids offline: both spellings, did-you-mean, new models only warned."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from langchain.chat_models import base as chat_models_base

from langchain_escalate.cli import main
from langchain_escalate.config import load_config
from langchain_escalate.config.model_ids import LANGCHAIN_PROVIDERS, check_model_id

ROOT = Path(__file__).resolve().parent.parent


def check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, *extra: str
) -> tuple[int, str, str, Path]:
    file = tmp_path / "escalate.yaml"
    file.write_text(text)
    code = main(["check-config", str(file), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err, file


def test_langchain_providers_match_the_installed_langchain() -> None:
    # Kept as a constant so naming a model imports nothing; this catches drift.
    assert set(chat_models_base._BUILTIN_PROVIDERS) == LANGCHAIN_PROVIDERS


def test_a_typo_in_the_provider_is_an_error_with_the_nearest_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err, file = check(
        tmp_path,
        capsys,
        "models:\n  weak: deepsek/deepseek-chatt\n  strong: antropic:claude-sonnet-4-6\n",
    )
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        (
            f"{file}:2: models.weak.model: unknown provider 'deepsek' "
            "(did you mean 'deepseek/deepseek-chat'?)"
        ),
        (
            f"{file}:3: models.strong.model: unknown provider 'antropic' "
            "(did you mean 'anthropic:claude-sonnet-4-6'?)"
        ),
    ]


def test_an_unknown_model_of_a_known_provider_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        "models:\n  weak: deepseek/deepseek-chatt\n  strong: anthropic/claude-sonnet-4-6\n"
        "nodes:\n  a:\n    models:\n      strong: {model: 'anthropic:zeta-experimental-9'}\n"
    )
    code, out, err, file = check(tmp_path, capsys, text)
    assert code == 0
    assert out.startswith(f"{file}: valid, 1 node\n")
    assert err.splitlines() == [
        (
            f"{file}:2: models.weak.model: warning: model 'deepseek-chatt' is not in litellm's "
            "price map for 'deepseek' (did you mean 'deepseek/deepseek-chat'?); "
            "fine if it is new: give its price under prices:"
        ),
        (
            f"{file}:7: nodes.a.models.strong.model: warning: model 'zeta-experimental-9' "
            "is not in litellm's price map for 'anthropic'; "
            "fine if it is new: give its price under prices:"
        ),
    ]
    code, out, _, _ = check(tmp_path, capsys, text, "--format", "json")
    assert code == 0
    warnings = json.loads(out)["warnings"]
    assert [(warning["line"], warning["path"]) for warning in warnings] == [
        (2, "models.weak.model"),
        (7, "nodes.a.models.strong.model"),
    ]


@pytest.mark.parametrize(
    "model",
    [
        "deepseek/deepseek-chat",
        "anthropic/claude-sonnet-4-6",
        "anthropic:claude-sonnet-4-6",
        "openai:gpt-4.1-mini",
        "google_genai:gemini-2.5-flash",
        "litellm:deepseek/deepseek-chat",
        "gpt-4o",
        "ollama/llama3:8b",
        "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
    ],
)
def test_known_ids_of_both_spellings_pass_silently(model: str) -> None:
    assert check_model_id(model) is None


def test_self_hosted_and_priced_models_may_have_any_name() -> None:
    cfg = load_config(
        "models:\n"
        "  weak: {model: openai/qwen2.5-coder-32b, api_base: 'http://localhost:8080/v1'}\n"
        "  strong: openrouter/acme/brand-new-model\n"
        "prices:\n  groq/llama-99-preview: {input: 0.1, output: 0.2}\n"
        "nodes:\n  a:\n    models: {strong: {model: groq/llama-99-preview}}\n"
    )
    assert cfg.check_model_ids() == []


def test_an_id_without_a_provider_is_an_error() -> None:
    assert check_model_id("gpt-4oo") == (
        "error",
        (
            "'gpt-4oo' names no provider: write provider/model (litellm) or provider:model "
            "(LangChain) (did you mean 'gpt-4o'?)"
        ),
    )


def test_checking_model_ids_never_imports_litellm(tmp_path: Path) -> None:
    file = tmp_path / "escalate.yaml"
    file.write_text("models:\n  weak: deepseek/deepseek-chatt\n  strong: anthropic:claude-x\n")
    code = (
        "import sys, contextlib, io\n"
        "from langchain_escalate.cli import main\n"
        "with contextlib.redirect_stderr(io.StringIO()) as err, "
        "contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['check-config', {str(file)!r}]) == 0\n"
        "assert 'warning: model' in err.getvalue()\n"
        "assert 'litellm' not in sys.modules, 'litellm imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)  # noqa: S603 - our own code
