"""Model specs: ``provider:model`` strings, litellm ids or chat models, built at first use."""

from __future__ import annotations

import threading
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel

ModelKind = Literal["langchain", "litellm"]

# init_chat_model's providers (LangChain 1.x), kept here so that naming a model
# imports nothing; tests/test_models.py checks them against the installed LangChain.
LANGCHAIN_PROVIDERS = frozenset({
    "anthropic", "anthropic_bedrock", "azure_ai", "azure_openai", "baseten", "bedrock",
    "bedrock_converse", "bedrock_mantle_anthropic", "bedrock_mantle_openai", "cohere", "deepseek",
    "fireworks", "google_anthropic_vertex", "google_genai", "google_vertexai", "groq",
    "huggingface", "ibm", "langsmith", "litellm", "meta", "mistralai", "nvidia", "ollama",
    "openai", "openrouter", "perplexity", "together", "upstage", "xai",
})  # fmt: skip

LITELLM_PROVIDER_OF = {
    "anthropic_bedrock": "bedrock", "azure_openai": "azure", "bedrock_converse": "bedrock",
    "bedrock_mantle_anthropic": "bedrock", "bedrock_mantle_openai": "bedrock",
    "fireworks": "fireworks_ai", "google_anthropic_vertex": "vertex_ai", "google_genai": "gemini",
    "google_vertexai": "vertex_ai", "ibm": "watsonx", "meta": "meta_llama", "mistralai": "mistral",
    "nvidia": "nvidia_nim", "together": "together_ai",
}  # fmt: skip
"""LangChain provider names that litellm spells differently (the others are the same)."""


def model_kind(model_id: str) -> ModelKind:
    """``"langchain"`` if the text before the first ``:`` is a known provider, else ``"litellm"``.

    Example:
        >>> model_kind("anthropic:claude-sonnet-4-6"), model_kind("ollama/llama3:8b")
        ('langchain', 'litellm')
    """
    provider, colon, _ = model_id.partition(":")
    langchain = colon and "/" not in provider and provider in LANGCHAIN_PROVIDERS
    return "langchain" if langchain else "litellm"


def price_name(model_id: str) -> str:
    """Return the litellm id a model string is priced and recorded under.

    Example:
        >>> price_name("google_genai:gemini-2.5-flash"), price_name("litellm:deepseek/v3")
        ('gemini/gemini-2.5-flash', 'deepseek/v3')
    """
    if model_kind(model_id) == "litellm":
        return model_id
    provider, _, model = model_id.partition(":")
    provider = LITELLM_PROVIDER_OF.get(provider, provider)
    return model if provider == "litellm" else f"{provider}/{model}"


class ModelRef:
    """A chat model named now and built at first use (naming one imports no SDK nor litellm).

    Args:
        spec: ``"provider:model"`` (through ``init_chat_model``), a litellm id (a
            ``ChatLiteLLM``), a ``BaseChatModel`` (used as it is), or another ``ModelRef``.
        **model_kwargs: Constructor arguments (``temperature``...); only with a string spec.

    Raises:
        TypeError: ``spec`` is none of these, or kwargs were given with a ready model.

    Example:
        >>> ref = ModelRef("anthropic:claude-sonnet-4-6", temperature=0)
        >>> ref.kind, ref.name, ref.is_resolved
        ('langchain', 'anthropic/claude-sonnet-4-6', False)
    """

    def __init__(self, spec: str | BaseChatModel | ModelRef, **model_kwargs: Any) -> None:
        """Name the model; nothing is built or imported yet."""
        problem = _spec_problem(spec, model_kwargs)
        if problem:
            raise TypeError(problem)
        self._source = spec if isinstance(spec, ModelRef) else None  # builds once, for both
        self._spec: str | BaseChatModel = spec._spec if isinstance(spec, ModelRef) else spec  # noqa: SLF001
        self._kwargs = model_kwargs
        self._model = spec if isinstance(spec, BaseChatModel) else None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The model's litellm name, for records and pricing; known without building it."""
        spec = self._spec
        return price_name(spec) if isinstance(spec, str) else model_name_of(spec)

    @property
    def spec(self) -> str | None:
        """The model string as given, or ``None`` for a ready chat model."""
        return self._spec if isinstance(self._spec, str) else None

    @property
    def kind(self) -> ModelKind | Literal["model"]:
        """Who builds the model: ``langchain``, ``litellm``, or ``model`` (given ready)."""
        return model_kind(self._spec) if isinstance(self._spec, str) else "model"

    @property
    def is_resolved(self) -> bool:
        """Whether the chat model has been built."""
        return self._source.is_resolved if self._source else self._model is not None

    def get(self) -> BaseChatModel:
        """Return the chat model, building it on first call (thread-safe).

        Raises:
            ImportError: A ``provider:model`` string's LangChain package is not installed.
        """
        if self._source is not None:
            return self._source.get()
        with self._lock:
            if self._model is None:
                self._model = build_chat_model(str(self._spec), self._kwargs)
        return self._model

    def __repr__(self) -> str:
        """Show the model string as given (or the ready model's name)."""
        return f"ModelRef({self.spec or self.name!r})"


def model_name_of(model: BaseChatModel) -> str:
    """Best-effort provider model name of a chat model (``model_name`` or ``model``)."""
    names = (getattr(model, attribute, None) for attribute in ("model_name", "model", "model_id"))
    return next((name for name in names if isinstance(name, str) and name), type(model).__name__)


def build_chat_model(model_id: str, kwargs: dict[str, Any]) -> BaseChatModel:
    """Build the chat model a model string names (what ``ModelRef.get`` calls once).

    Raises:
        ImportError: The LangChain provider package is missing (named in the message).
    """
    from langchain_escalate.cost import ensure_offline_price_map  # noqa: PLC0415

    if model_kind(model_id) == "litellm" or model_id.startswith("litellm:"):
        ensure_offline_price_map()
    if model_kind(model_id) == "litellm":
        from langchain_litellm import ChatLiteLLM  # noqa: PLC0415 - litellm is slow to import

        return ChatLiteLLM(model=model_id, **kwargs)
    from langchain.chat_models import init_chat_model  # noqa: PLC0415 - only when a model is built

    try:
        model: BaseChatModel = init_chat_model(model_id, **kwargs)
    except ImportError as error:
        missing = getattr(error.__cause__, "name", None) or error.name or "the provider package"
        package = missing.split(".", 1)[0].replace("_", "-")
        msg = (
            f"model {model_id!r} goes through LangChain's init_chat_model, which needs the "
            f"{package} package: pip install {package} "
            f"(or write the litellm id {price_name(model_id)!r}, which needs nothing more)"
        )
        raise ImportError(msg, name=package) from error
    return model


def _spec_problem(spec: object, kwargs: dict[str, Any]) -> str | None:
    kind = type(spec).__name__
    if not isinstance(spec, (str, BaseChatModel, ModelRef)):
        return f"expected a model string ('provider:model' or a litellm id) or a model, got {kind}"
    if isinstance(spec, ModelRef) and kwargs:
        return "ModelRef(...) takes no model kwargs when wrapping another ModelRef"
    if isinstance(spec, BaseChatModel) and kwargs:
        return f"model kwargs {sorted(kwargs)} apply only to a model string, not to a ready {kind}"
    if isinstance(spec, str) and not spec.strip():
        return "a model id must not be empty"
    return None
