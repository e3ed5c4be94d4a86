"""What the adapters read from LangGraph's run config."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    thread_id = ((config or {}).get("configurable") or {}).get("thread_id")
    return str(thread_id) if thread_id is not None else None


def thread_id_of_runtime(runtime: object) -> str | None:
    """The ``thread_id`` of a LangGraph ``Runtime`` (where the run config is out of reach).

    Falls back to the run config in context for LangGraph versions whose
    runtime carries no ``execution_info``.
    """
    info = getattr(runtime, "execution_info", None)
    if info is not None:
        thread_id = getattr(info, "thread_id", None)
        return str(thread_id) if thread_id is not None else None
    from langgraph.config import get_config  # noqa: PLC0415 - only for older LangGraph

    try:
        return thread_id_of(get_config())
    except RuntimeError:  # outside a runnable context: no thread
        return None


def has_checkpointer(config: RunnableConfig | None) -> bool:
    """Whether the running graph has a checkpointer, so ``interrupt()`` can pause it."""
    return ((config or {}).get("configurable") or {}).get(CONFIG_KEY_CHECKPOINTER) is not None


def escalation_key(config: RunnableConfig | None, *parts: object) -> str | None:
    """An idempotency key for one paid call of this graph task, stable across a replay.

    LangGraph names each task by the checkpoint it runs from (``checkpoint_ns``
    is ``node:task_id``, the task id derived from that checkpoint), so a step
    replayed after a crash or an interrupt gets the same key, and the budget
    hands back its own reservation, or the answer it already paid for.

    Args:
        config: The run config.
        *parts: What tells this call apart within the task (firing, rung, step).

    Returns:
        The key; ``None`` outside a thread with a checkpointer.
    """
    configurable = (config or {}).get("configurable") or {}
    thread, task = configurable.get("thread_id"), configurable.get("checkpoint_ns")
    if thread is None or not task or configurable.get(CONFIG_KEY_CHECKPOINTER) is None:
        return None
    return ":".join(str(part) for part in (thread, task, *parts))
