"""Run a docs excerpt as written, offline: stand-ins for what it leaves out.

An excerpt (``builder.add_node("agent", create_escalating_node("deepseek/deepseek-chat",
...))``) is a piece of a user's program: it names models and uses a ``builder``
and ``tools`` it does not define. ``run_excerpt`` provides those, swaps every
model the excerpt names for a ``ScriptedChatModel`` that answers ``REPLY`` —
after checking the string is one the real resolution would accept — and then
runs what the excerpt built, so an excerpt that could not work for a user
fails here.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any
from unittest import mock

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from langchain_escalate import models
from langchain_escalate.cost import ensure_offline_price_map
from langchain_escalate.records import EscalationState
from langchain_escalate.testing import ScriptedChatModel

REPLY = "Done (scripted stand-in)."

ESCALATE_YAML = """\
models:
  weak: deepseek/deepseek-chat
  strong: anthropic:claude-sonnet-4-6
nodes:
  agent:
  planner:
  coder:
"""
"""The ``escalate.yaml`` an excerpt loads: the README's node names, both model forms."""

INIT_CHAT_MODEL_NAMES = (
    "langchain.chat_models.init_chat_model",
    "langchain.agents.factory.init_chat_model",  # what create_agent("...") calls
)


class ExcerptError(AssertionError):
    """An excerpt failed as it would for a user who ran it."""


@tool
def lookup(query: str) -> str:
    """Look something up (the stand-in for the excerpt's ``tools``)."""
    return f"no result for {query!r}"


def run_excerpt(code: str, label: str) -> None:
    """Run one excerpt with stand-ins, then run the graph or agent it built.

    Raises:
        ExcerptError: The excerpt, a model string it names, or what it built failed.
    """
    refs: list[models.ModelRef] = []
    real_init = models.ModelRef.__init__

    def remember(self: models.ModelRef, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        refs.append(self)

    namespace: dict[str, Any] = {
        "__name__": "docs_excerpt",
        "builder": StateGraph(EscalationState),
        "tools": [lookup],
    }
    Path("escalate.yaml").write_text(ESCALATE_YAML)
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(models.ModelRef, "__init__", remember))
        stack.enter_context(mock.patch.object(models, "build_chat_model", _stand_in_for_ref))
        for target in INIT_CHAT_MODEL_NAMES:
            stack.enter_context(mock.patch(target, _stand_in_for_init_chat_model))
        try:
            exec(compile(code, label, "exec"), namespace)  # noqa: S102
            for ref in refs:
                ref.get()  # lazily named models are checked too
            _run_what_was_built(namespace)
        except Exception as error:
            msg = f"{label}: {type(error).__name__}: {error}"
            raise ExcerptError(msg) from error


def _stand_in_for_ref(model_id: str, kwargs: dict[str, Any]) -> ScriptedChatModel:
    """What ``ModelRef.get`` builds: checked like the real one, then scripted."""
    del kwargs
    if models.model_kind(model_id) == "litellm":
        _check_litellm_id(model_id)
    return _scripted(models.price_name(model_id))


def _stand_in_for_init_chat_model(model: str, **kwargs: Any) -> ScriptedChatModel:
    """What ``create_agent("...")`` builds: only a string ``init_chat_model`` reads right."""
    provider = kwargs.get("model_provider")
    spec = f"{provider}:{model}" if provider else model
    if models.model_kind(spec) != "langchain":
        msg = (
            f"create_agent/init_chat_model got {model!r}, but init_chat_model wants "
            "'provider:model' with a provider LangChain knows, e.g. 'deepseek:deepseek-chat' "
            f"(needs langchain-deepseek) or 'litellm:{model}' for a litellm id"
        )
        raise ValueError(msg)
    return _scripted(models.price_name(spec))


def _check_litellm_id(model_id: str) -> None:
    ensure_offline_price_map()
    import litellm  # noqa: PLC0415 - seconds to import

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # litellm prints its provider list
            litellm.get_llm_provider(model_id)
    except Exception as error:
        msg = f"{model_id!r} is not a litellm id litellm can route: {error}"
        raise ValueError(msg) from error


def _scripted(name: str) -> ScriptedChatModel:
    return ScriptedChatModel(script=[AIMessage(REPLY)], repeat_last=True, model_name=name)


def _run_what_was_built(namespace: dict[str, Any]) -> None:
    agent = namespace.get("agent")
    if hasattr(agent, "invoke"):
        result = agent.invoke({"messages": [HumanMessage("hello")]})
        _assert_answered(result)
    builder = namespace.get("builder")
    if isinstance(builder, StateGraph) and builder.nodes:
        previous = START
        for name in builder.nodes:
            builder.add_edge(previous, name)
            previous = name
        builder.add_edge(previous, END)
        graph = builder.compile(checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "docs-excerpt"}}
        _assert_answered(graph.invoke({"messages": [HumanMessage("hello")]}, config))


def _assert_answered(result: dict[str, Any]) -> None:
    last = result["messages"][-1]
    if last.content != REPLY:
        msg = f"expected the scripted reply {REPLY!r} last, got {last!r}"
        raise AssertionError(msg)
