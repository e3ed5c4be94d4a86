"""What the adapters read from LangGraph's run config."""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING, Any

from langgraph import constants
from langgraph.config import get_config

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

# The only sign of a checkpointer; LangGraph keeps it "for backwards compatibility".
CONFIG_KEY_CHECKPOINTER = getattr(constants, "CONFIG_KEY_CHECKPOINTER", "__pregel_checkpointer")


def thread_id_of(config: RunnableConfig | None) -> str | None:
    """The run's ``thread_id`` as a string, or ``None`` outside a thread."""
    return None if (thread := _configurable(config).get("thread_id")) is None else str(thread)


def thread_id_of_runtime(runtime: object) -> str | None:
    """The ``thread_id`` of a LangGraph ``Runtime`` (of the run config on an older LangGraph)."""
    if (info := getattr(runtime, "execution_info", None)) is not None:
        return None if info.thread_id is None else str(info.thread_id)
    with suppress(RuntimeError):  # outside a runnable context: no thread
        return thread_id_of(get_config())
    return None


def has_checkpointer(config: RunnableConfig | None) -> bool:
    """Whether the running graph has a checkpointer, so ``interrupt()`` can pause it."""
    return _configurable(config).get(CONFIG_KEY_CHECKPOINTER) is not None


def escalation_key(config: RunnableConfig | None, *parts: object) -> str | None:
    """Idempotency key of a paid call: thread, ``checkpoint_ns`` (same on replay), ``parts``."""
    c = _configurable(config)
    ready = c.get("thread_id") is not None and c.get("checkpoint_ns") and has_checkpointer(config)
    return ":".join(map(str, (c["thread_id"], c["checkpoint_ns"], *parts))) if ready else None


def _configurable(config: RunnableConfig | None) -> dict[str, Any]:
    return (config or {}).get("configurable") or {}
