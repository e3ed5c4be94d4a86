"""What the adapters read from LangGraph's run config."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

try:
    from langgraph.constants import CONFIG_KEY_CHECKPOINTER
except ImportError:  # pragma: no cover - depends on the installed langgraph
    # LangGraph has no public way to ask whether a run has a checkpointer; it
    # keeps this constant importable "for backwards compatibility". Should it
    # go, the key's value is the fallback.
    CONFIG_KEY_CHECKPOINTER = "__pregel_checkpointer"


def thread_id_of(config: RunnableConfig | None) -> str | None:
    """The run's ``thread_id`` as a string, or ``None`` outside a thread."""
    return _text(_configurable(config).get("thread_id"))


def thread_id_of_runtime(runtime: object) -> str | None:
    """The ``thread_id`` of a LangGraph ``Runtime`` (of the run config on an older LangGraph)."""
    info = getattr(runtime, "execution_info", None)
    if info is not None:
        return _text(getattr(info, "thread_id", None))
    from langgraph.config import get_config  # noqa: PLC0415 - only for older LangGraph

    try:
        return thread_id_of(get_config())
    except RuntimeError:  # outside a runnable context: no thread
        return None


def has_checkpointer(config: RunnableConfig | None) -> bool:
    """Whether the running graph has a checkpointer, so ``interrupt()`` can pause it."""
    return _configurable(config).get(CONFIG_KEY_CHECKPOINTER) is not None


def escalation_key(config: RunnableConfig | None, *parts: object) -> str | None:
    """An idempotency key for one paid call of this task; ``None`` without thread and checkpointer.

    ``checkpoint_ns`` (``node:task_id``) derives from the checkpoint the task
    runs from, so a step replayed after a crash or an interrupt gets the same
    key, and the budget hands back its reservation or the answer it paid for.
    ``parts`` tell calls apart within the task (firing, rung, step).
    """
    configurable = _configurable(config)
    thread, task = configurable.get("thread_id"), configurable.get("checkpoint_ns")
    if thread is None or not task or not has_checkpointer(config):
        return None
    return ":".join(str(part) for part in (thread, task, *parts))


def _configurable(config: RunnableConfig | None) -> dict[str, Any]:
    return (config or {}).get("configurable") or {}


def _text(value: object) -> str | None:
    return None if value is None else str(value)
