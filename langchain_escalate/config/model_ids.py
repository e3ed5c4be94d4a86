"""Model ids checked offline: a known provider, and a model its price map knows.

Two spellings are accepted, as by ``langchain_escalate.models``: LangChain's
``provider:model`` (``init_chat_model``) when the text before the first ``:``
is a LangChain provider and holds no ``/``; anything else is a litellm id,
``provider/model``. Providers and models come from litellm's bundled price
map and provider list, read as files from the installed package: importing
litellm takes seconds, and validating a file must not pay them.

An unknown provider is an error (the call would fail). An unknown model of a
known provider is only a warning: providers ship models faster than any map.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_escalate.models import LANGCHAIN_PROVIDERS, LITELLM_PROVIDER_OF

if TYPE_CHECKING:
    from collections.abc import Iterator

    from langchain_escalate.config.errors import ConfigIssue, Origin, YamlPath
    from langchain_escalate.config.escalate_config import EscalateConfig
    from langchain_escalate.config.schema import ModelOverride, ModelSpec

__all__ = ["LANGCHAIN_PROVIDERS", "ModelIdProblem", "check_model_id", "model_id_issues"]

# One list of LangChain providers, and of litellm's other spellings, for the whole package.
_LITELLM_NAME = LITELLM_PROVIDER_OF

# Providers that serve whatever the user loaded: no map can list their models.
_SELF_HOSTED = frozenset(
    {"ollama", "ollama_chat", "lm_studio", "hosted_vllm", "vllm", "llamafile", "openai_like",
     "custom_openai", "huggingface", "xinference", "triton", "litellm_proxy", "openrouter"}
)  # fmt: skip
_WORD = re.compile(r"[a-z][a-z_]*")
_PRICE_MAP = "model_prices_and_context_window_backup.json"
_PROVIDER_ENUM = re.compile(r"^class LlmProviders\(.*?(?=^\S)", re.MULTILINE | re.DOTALL)
_ENUM_VALUE = re.compile(r'^\s+[A-Z0-9_]+ = "([a-z0-9_.\-]+)"', re.MULTILINE)

ModelIdProblem = tuple[Literal["error", "warning"], str]
"""How bad, and what to tell the user."""


def check_model_id(
    model_id: str, *, custom_provider: str | None = None, self_hosted: bool = False
) -> ModelIdProblem | None:
    """Check a model id against the providers and models known offline.

    Args:
        model_id: ``provider/model`` (litellm) or ``provider:model`` (LangChain).
        custom_provider: The spec's ``custom_llm_provider``, for a bare litellm id.
        self_hosted: The spec sets ``api_base`` (or a price): any model name may be right.

    Returns:
        ``None`` when nothing looks wrong, else ``(severity, message)``.

    Example:
        >>> check_model_id("deepseek/deepseek-chat") is None
        True
        >>> check_model_id("deepsek/deepseek-chatt")[1]
        "unknown provider 'deepsek' (did you mean 'deepseek/deepseek-chat'?)"
    """
    provider, colon, rest = model_id.partition(":")
    if colon and "/" not in provider and provider in LANGCHAIN_PROVIDERS:
        if provider == "litellm":
            return check_model_id(rest, custom_provider=custom_provider, self_hosted=self_hosted)
        litellm_provider = _LITELLM_NAME.get(provider, provider)
        return _check_model(litellm_provider, rest, f"{provider}:", self_hosted=self_hosted)
    if colon and _WORD.fullmatch(provider) and provider != "ft":
        close = difflib.get_close_matches(provider, sorted(LANGCHAIN_PROVIDERS), n=1, cutoff=0.7)
        if close:  # `antropic:claude-sonnet-4-6`: a LangChain id with a typo
            return (
                "error",
                f"unknown provider {provider!r} (did you mean {close[0] + ':' + rest!r}?)",
            )
    return _check_litellm_id(model_id, custom_provider=custom_provider, self_hosted=self_hosted)


def model_id_issues(config: EscalateConfig, origin: Origin) -> list[ConfigIssue]:
    """Return an issue for each model id of ``config`` that ``check_model_id`` questions.

    A model with an ``api_base``, or with a price under ``prices``, may have any name.
    """
    issues = []
    for path, spec in _model_specs(config):
        if spec.model is None:
            continue
        problem = check_model_id(
            spec.model,
            custom_provider=spec.custom_llm_provider,
            self_hosted=spec.api_base is not None or spec.model in config.prices,
        )
        if problem is not None:
            issues.append(origin.issue((*path, "model"), problem[1], problem[0]))
    return issues


def _model_specs(config: EscalateConfig) -> Iterator[tuple[YamlPath, ModelSpec | ModelOverride]]:
    sections: list[tuple[YamlPath, Any]] = [(("models",), config.models)]
    sections += [(("nodes", name, "models"), node.models) for name, node in config.nodes.items()]
    for path, section in sections:
        for role in ("weak", "strong"):
            if (spec := getattr(section, role)) is not None:
                yield (*path, role), spec


def _check_litellm_id(
    model_id: str, *, custom_provider: str | None, self_hosted: bool
) -> ModelIdProblem | None:
    models, providers = _litellm_catalogue()
    if not providers or model_id in models or model_id.startswith("ft:"):
        return None  # no litellm installed to check against, a known id, or a fine-tune
    provider, slash, rest = model_id.partition("/")
    if slash and provider in providers:
        return _check_model(provider, rest, f"{provider}/", self_hosted=self_hosted)
    if slash:
        return "error", f"unknown provider {provider!r}{_suggest_provider(provider, rest, '/')}"
    if custom_provider:
        return _check_model(custom_provider, model_id, "", self_hosted=self_hosted)
    message = (
        f"{model_id!r} names no provider: write provider/model (litellm) or "
        f"provider:model (LangChain){_suggest(model_id, models)}"
    )
    return "error", message


def _check_model(
    provider: str, model: str, prefix: str, *, self_hosted: bool
) -> ModelIdProblem | None:
    known = _models_of(provider)
    if self_hosted or provider in _SELF_HOSTED or model in known or not _litellm_catalogue()[1]:
        return None
    message = (
        f"model {model!r} is not in litellm's price map for {provider!r}"
        f"{_suggest(model, known, prefix)}; fine if it is new: give its price under prices:"
    )
    return "warning", message


def _suggest_provider(provider: str, model: str, separator: str) -> str:
    providers = _litellm_catalogue()[1]
    close = difflib.get_close_matches(provider, sorted(providers), n=1, cutoff=0.6)
    if not close:
        return f"; known providers include {', '.join(sorted(providers)[:12])}, ..."
    model_match = difflib.get_close_matches(model, sorted(_models_of(close[0])), n=1, cutoff=0.6)
    return f" (did you mean {close[0] + separator + (model_match[0] if model_match else model)!r}?)"


def _suggest(word: str, options: frozenset[str] | dict[str, str], prefix: str = "") -> str:
    close = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.75)
    return f" (did you mean {prefix + close[0]!r}?)" if close else ""


@functools.cache
def _models_of(provider: str) -> frozenset[str]:
    """The model names litellm's map lists for ``provider``, without the ``provider/`` prefix."""
    models = _litellm_catalogue()[0]
    return frozenset(
        name.removeprefix(f"{provider}/")
        for name, owner in models.items()
        if owner == provider or owner.startswith(f"{provider}-")
    )


@functools.cache
def _litellm_catalogue() -> tuple[dict[str, str], frozenset[str]]:
    """Return ``({model: provider}, providers)`` from litellm's files, without importing it."""
    spec = importlib.util.find_spec("litellm")  # finds the package; runs none of its code
    if spec is None or not spec.submodule_search_locations:
        return {}, frozenset()
    root = Path(next(iter(spec.submodule_search_locations)))
    try:
        entries = json.loads((root / _PRICE_MAP).read_text(encoding="utf-8"))
        enum = _PROVIDER_ENUM.search((root / "types" / "utils.py").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, frozenset()
    models = {
        name: str(entry["litellm_provider"])
        for name, entry in entries.items()
        if isinstance(entry, dict) and "litellm_provider" in entry
    }
    listed = set(_ENUM_VALUE.findall(enum[0])) if enum else set()
    return models, frozenset(listed | set(models.values()))
