"""Model specs: a model string or a chat model, resolved lazily at first use.

A model string takes one of two forms, told apart by ``model_kind``:

* ``"provider:model"`` (LangChain's convention, ``"anthropic:claude-sonnet-4-6"``)
  when the part before the first ``:`` names a provider LangChain's
  ``init_chat_model`` knows and comes before any ``/``. It is built by
  ``init_chat_model``, which needs the provider's package
  (``langchain-anthropic``...).
* Anything else is a litellm id (``"anthropic/claude-sonnet-4-6"``,
  ``"ollama/llama3:8b"``, ``"ft:gpt-4o-mini:org::id"``) and becomes a
  ``langchain_litellm.ChatLiteLLM``, which needs nothing more.

Either way the model is priced under its litellm name (``price_name``), so both
spellings of one model cost the same and land in the same row of a report.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel

ModelKind = Literal["langchain", "litellm"]

LANGCHAIN_PROVIDERS = frozenset(
    {
        "anthropic",
        "anthropic_bedrock",
        "azure_ai",
        "azure_openai",
        "baseten",
        "bedrock",
        "bedrock_converse",
        "bedrock_mantle_anthropic",
        "bedrock_mantle_openai",
        "cohere",
        "deepseek",
        "fireworks",
        "google_anthropic_vertex",
        "google_genai",
        "google_vertexai",
        "groq",
        "huggingface",
        "ibm",
        "langsmith",
        "litellm",
        "meta",
        "mistralai",
        "nvidia",
        "ollama",
        "openai",
        "openrouter",
        "perplexity",
        "together",
        "upstage",
        "xai",
    }
)
"""The providers ``init_chat_model`` takes as ``provider:model`` (LangChain 1.x).

Kept here so that naming a model imports nothing; ``tests/test_models.py``
checks it against the installed LangChain."""

LITELLM_PROVIDER_OF = {
    "anthropic_bedrock": "bedrock",
    "azure_openai": "azure",
    "bedrock_converse": "bedrock",
    "bedrock_mantle_anthropic": "bedrock",
    "bedrock_mantle_openai": "bedrock",
    "fireworks": "fireworks_ai",
    "google_anthropic_vertex": "vertex_ai",
    "google_genai": "gemini",
    "google_vertexai": "vertex_ai",
    "ibm": "watsonx",
    "meta": "meta_llama",
    "mistralai": "mistral",
    "nvidia": "nvidia_nim",
    "together": "together_ai",
}
"""LangChain provider names that litellm spells differently (the others are the same)."""


def model_kind(model_id: str) -> ModelKind:
    """Say which library builds a model string: LangChain or litellm.

    Args:
        model_id: A model string.

    Returns:
        ``"langchain"`` when the text before the first ``:`` is a provider
        ``init_chat_model`` knows and no ``/`` comes before that ``:``;
        ``"litellm"`` otherwise.

    Example:
        >>> model_kind("anthropic:claude-sonnet-4-6"), model_kind("anthropic/claude-sonnet-4-6")
        ('langchain', 'litellm')
        >>> model_kind("ollama/llama3:8b"), model_kind("ft:gpt-4o-mini:acme::x1")
        ('litellm', 'litellm')
    """
    provider, colon, _ = model_id.partition(":")
    if colon and "/" not in provider and provider in LANGCHAIN_PROVIDERS:
        return "langchain"
    return "litellm"


def price_name(model_id: str) -> str:
    """Return the name litellm's price map knows a model string by.

    A litellm id is its own price name. ``provider:model`` becomes
    ``litellm_provider/model``; ``litellm:ID`` becomes ``ID``.

    Args:
        model_id: A model string of either form.

    Returns:
        The litellm id to price the model under (and to record it as).

    Example:
        >>> price_name("anthropic:claude-sonnet-4-6")
        'anthropic/claude-sonnet-4-6'
        >>> price_name("google_genai:gemini-2.5-flash")
        'gemini/gemini-2.5-flash'
        >>> price_name("litellm:deepseek/deepseek-chat")
        'deepseek/deepseek-chat'
    """
    if model_kind(model_id) == "litellm":
        return model_id
    provider, _, model = model_id.partition(":")
    if provider == "litellm":
        return model
    return f"{LITELLM_PROVIDER_OF.get(provider, provider)}/{model}"


class ModelRef:
    """A chat model named now and built at first use.

    A string is built the first time ``get()`` is called, so naming a model
    (loading a config, building a graph) imports no provider SDK and litellm
    (seconds) is paid only by code that calls a model:

    * ``"provider:model"`` with a provider LangChain knows
      (``"anthropic:claude-sonnet-4-6"``) goes through LangChain's
      ``init_chat_model``; the provider's package (``langchain-anthropic``)
      must be installed, and a clear ``ImportError`` names it when not.
    * any other string is a litellm id (``"anthropic/claude-sonnet-4-6"``,
      ``"openai/qwen2.5"`` with ``api_base=...``) and becomes a
      ``langchain_litellm.ChatLiteLLM``.

    A ``BaseChatModel`` is used as it is.

    Args:
        spec: A model string, a ``BaseChatModel``, or another ``ModelRef``.
        **model_kwargs: Extra arguments for the model's constructor
            (``temperature``, ``max_tokens``, ``api_base`` for litellm,
            ``base_url`` for ``init_chat_model``...); only with a string spec.

    Raises:
        TypeError: ``spec`` is none of the accepted kinds, or kwargs were given
            with a ready model.

    Example:
        >>> ref = ModelRef("anthropic:claude-sonnet-4-6", temperature=0)
        >>> ref.kind, ref.name, ref.is_resolved
        ('langchain', 'anthropic/claude-sonnet-4-6', False)
        >>> ModelRef("deepseek/deepseek-chat").name
        'deepseek/deepseek-chat'
    """

    def __init__(self, spec: str | BaseChatModel | ModelRef, **model_kwargs: Any) -> None:
        """Name the model; nothing is built or imported yet."""
        if isinstance(spec, ModelRef):
            if model_kwargs:
                msg = "ModelRef(...) takes no model kwargs when wrapping another ModelRef"
                raise TypeError(msg)
            # Same class. The wrapped ref builds the model, once, for both.
            self._spec: str | BaseChatModel = spec._spec  # noqa: SLF001
            self._kwargs: dict[str, Any] = dict(spec._kwargs)  # noqa: SLF001
            self._model: BaseChatModel | None = spec._model  # noqa: SLF001
            self._source: ModelRef | None = spec
        elif isinstance(spec, (str, BaseChatModel)):
            if isinstance(spec, BaseChatModel) and model_kwargs:
                msg = (
                    f"model kwargs {sorted(model_kwargs)} apply only to a model string, "
                    f"not to a ready {type(spec).__name__}"
                )
                raise TypeError(msg)
            if isinstance(spec, str) and not spec.strip():
                msg = "a model id must not be empty"
                raise TypeError(msg)
            self._spec = spec
            self._kwargs = model_kwargs
            self._model = spec if isinstance(spec, BaseChatModel) else None
            self._source = None
        else:
            msg = (
                "expected a model string ('provider:model' or a litellm id) or a "
                f"BaseChatModel, got {type(spec).__name__}"
            )
            raise TypeError(msg)
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The model's litellm name, for records and pricing; known without building it."""
        if isinstance(self._spec, str):
            return price_name(self._spec)
        return model_name_of(self._spec)

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
        return self._model is not None or (self._source is not None and self._source.is_resolved)

    def get(self) -> BaseChatModel:
        """Return the chat model, building it on first call (thread-safe).

        Raises:
            ImportError: A ``provider:model`` string's LangChain package is not
                installed; the message names the package to install.
        """
        if self._model is None:
            if self._source is not None:
                self._model = self._source.get()
                return self._model
            with self._lock:
                if self._model is None:
                    self._model = build_chat_model(str(self._spec), self._kwargs)
        return self._model

    def __repr__(self) -> str:
        """Show the model string as given (or the ready model's name)."""
        return f"ModelRef({self.spec or self.name!r})"


def model_name_of(model: BaseChatModel) -> str:
    """Best-effort provider model name of a chat model (``model_name`` or ``model``)."""
    for attribute in ("model_name", "model", "model_id"):
        value = getattr(model, attribute, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


def build_chat_model(model_id: str, kwargs: dict[str, Any]) -> BaseChatModel:
    """Build the chat model a model string names (what ``ModelRef.get`` calls once).

    Args:
        model_id: ``"provider:model"`` or a litellm id (see ``model_kind``).
        kwargs: Constructor arguments for the model.

    Returns:
        The chat model: ``init_chat_model``'s for ``provider:model``, a
        ``ChatLiteLLM`` otherwise.

    Raises:
        ImportError: The LangChain provider package is missing (named in the message).
    """
    if model_kind(model_id) == "langchain":
        return _build_langchain(model_id, kwargs)
    return _build_litellm(model_id, kwargs)


def _build_langchain(model_id: str, kwargs: dict[str, Any]) -> BaseChatModel:
    from langchain.chat_models import init_chat_model  # noqa: PLC0415 - only when a model is built

    if model_id.startswith("litellm:"):
        _offline_prices()
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


def _build_litellm(model_id: str, kwargs: dict[str, Any]) -> BaseChatModel:
    _offline_prices()
    from langchain_litellm import ChatLiteLLM  # noqa: PLC0415 - litellm is slow to import

    model: BaseChatModel = ChatLiteLLM(model=model_id, **kwargs)
    return model


def _offline_prices() -> None:
    from langchain_escalate.cost import ensure_offline_price_map  # noqa: PLC0415 - imports litellm

    ensure_offline_price_map()
