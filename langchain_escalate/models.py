"""Model specs: a litellm id or a chat model, resolved lazily at first use."""

from __future__ import annotations

import threading
from typing import Any

from langchain_core.language_models import BaseChatModel


class ModelRef:
    """A chat model named now and built at first use.

    A string is a litellm model id (``"anthropic/claude-sonnet-4-6"``,
    ``"openai/qwen2.5"`` with ``api_base=...``) that becomes a
    ``langchain_litellm.ChatLiteLLM`` the first time ``get()`` is called, so
    importing litellm (seconds) is paid only by code that calls a model. A
    ``BaseChatModel`` is used as it is.

    Args:
        spec: A litellm id, a ``BaseChatModel``, or another ``ModelRef``.
        **litellm_kwargs: Extra ``ChatLiteLLM`` arguments (``api_base``,
            ``temperature``, ``max_tokens``...); only with a string spec.

    Raises:
        TypeError: ``spec`` is none of the accepted kinds, or kwargs were given
            with a ready model.

    Example:
        >>> ref = ModelRef("deepseek/deepseek-chat", temperature=0)
        >>> ref.name
        'deepseek/deepseek-chat'
    """

    def __init__(self, spec: str | BaseChatModel | ModelRef, **litellm_kwargs: Any) -> None:
        """Name the model; nothing is built or imported yet."""
        if isinstance(spec, ModelRef):
            if litellm_kwargs:
                msg = "ModelRef(...) takes no litellm kwargs when wrapping another ModelRef"
                raise TypeError(msg)
            # Same class. The wrapped ref builds the model, once, for both.
            self._spec: str | BaseChatModel = spec._spec  # noqa: SLF001
            self._kwargs: dict[str, Any] = dict(spec._kwargs)  # noqa: SLF001
            self._model: BaseChatModel | None = spec._model  # noqa: SLF001
            self._source: ModelRef | None = spec
        elif isinstance(spec, (str, BaseChatModel)):
            if isinstance(spec, BaseChatModel) and litellm_kwargs:
                msg = (
                    f"litellm kwargs {sorted(litellm_kwargs)} apply only to a model id, "
                    f"not to a ready {type(spec).__name__}"
                )
                raise TypeError(msg)
            if isinstance(spec, str) and not spec.strip():
                msg = "a model id must not be empty"
                raise TypeError(msg)
            self._spec = spec
            self._kwargs = litellm_kwargs
            self._model = spec if isinstance(spec, BaseChatModel) else None
            self._source = None
        else:
            msg = f"expected a litellm model id (str) or a BaseChatModel, got {type(spec).__name__}"
            raise TypeError(msg)
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The model's name for records and pricing, known without building it."""
        if isinstance(self._spec, str):
            return self._spec
        return model_name_of(self._spec)

    @property
    def is_resolved(self) -> bool:
        """Whether the chat model has been built."""
        return self._model is not None or (self._source is not None and self._source.is_resolved)

    def get(self) -> BaseChatModel:
        """Return the chat model, building it on first call (thread-safe)."""
        if self._model is None:
            if self._source is not None:
                self._model = self._source.get()
                return self._model
            with self._lock:
                if self._model is None:
                    self._model = _build_litellm(str(self._spec), self._kwargs)
        return self._model

    def __repr__(self) -> str:
        """Show the model's name."""
        return f"ModelRef({self.name!r})"


def model_name_of(model: BaseChatModel) -> str:
    """Best-effort provider model name of a chat model (``model_name`` or ``model``)."""
    for attribute in ("model_name", "model", "model_id"):
        value = getattr(model, attribute, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


def _build_litellm(model_id: str, kwargs: dict[str, Any]) -> BaseChatModel:
    from langchain_escalate.cost import ensure_offline_price_map  # noqa: PLC0415 - litellm is slow to import

    ensure_offline_price_map()
    from langchain_litellm import ChatLiteLLM  # noqa: PLC0415 - litellm is slow to import

    model: BaseChatModel = ChatLiteLLM(model=model_id, **kwargs)
    return model
