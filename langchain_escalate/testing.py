"""Test your agent offline: scripted chat models that stand in for real ones.

A ``ScriptedChatModel`` answers with the steps of its script, in order, and
remembers what it was sent, so a test can assert what the model *received*
(the briefing, a nudge, the tool results) rather than what it was told to say.
Use one for the weak model (to script a loop the detector must catch) and one
for the strong model (to script its advice), in the graph you ship. See
``docs/testing-offline.md``.

Public names: ``ScriptedChatModel``, ``tool_call``, ``ScriptExhaustedError``.

Example:
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> from langchain_escalate.testing import ScriptedChatModel, tool_call
    >>> model = ScriptedChatModel(
    ...     script=[AIMessage("", tool_calls=[tool_call("search", {"q": "x"})]), AIMessage("done")]
    ... )
    >>> model.invoke([HumanMessage("find x")]).tool_calls[0]["name"]
    'search'
    >>> model.invoke([HumanMessage("find x")]).content
    'done'
    >>> len(model.calls)
    2
"""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.tool import ToolCall
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field, PrivateAttr

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.runnables import Runnable

__all__ = ["ScriptExhaustedError", "ScriptedChatModel", "tool_call"]

_call_ids = itertools.count(1)


def tool_call(name: str, args: dict[str, Any], *, call_id: str | None = None) -> ToolCall:
    """Build a tool call with a fresh id, as a provider would send it.

    Args:
        name: Tool name.
        args: Tool arguments.
        call_id: Fixed id; a new unique one by default.

    Returns:
        A ``ToolCall`` dict for ``AIMessage(tool_calls=[...])``.

    Example:
        >>> call = tool_call("find_booking", {"reference": "QX7K2M"})
        >>> call["name"], call["args"], call["id"].startswith("call_")
        ('find_booking', {'reference': 'QX7K2M'}, True)
    """
    return ToolCall(
        name=name, args=args, id=call_id or f"call_{next(_call_ids):06d}", type="tool_call"
    )


class ScriptExhaustedError(AssertionError):
    """The scripted model was called more times than its script has steps.

    An ``AssertionError``, so pytest reports it as a failed expectation: the
    agent made more model calls than the test planned for.
    """


class ScriptedChatModel(BaseChatModel):
    """A chat model that follows a script and records every call.

    Each call takes the next step of ``script``:

    * an ``AIMessage`` (or a ``str``, for a plain reply) is returned with a
      fresh message id and fresh tool-call ids, as a provider would send it,
      and with ``usage_metadata`` filled in when the step has none
      (``input_tokens_per_call`` / ``output_tokens_per_call``), so cost
      accounting sees usage;
    * a callable receives the input messages and returns the reply (to answer
      from what the model was sent);
    * an exception is raised (a provider error, a timeout).

    When the script runs out, ``ScriptExhaustedError`` is raised, unless
    ``repeat_last`` is set (a model stuck for good). ``bind_tools`` records the
    tool names and returns the model itself: the script decides the calls.

    Attributes:
        script: The steps, in order.
        model_name: Reported as ``response_metadata["model_name"]``; name it
            after a real model (``"deepseek/deepseek-chat"``) to price its
            usage at that model's price.
        repeat_last: Answer with the last step for ever once the script is used up.
        input_tokens_per_call: Usage reported when a step has none.
        output_tokens_per_call: Likewise.
        calls: The input messages of every call, in order.
        bound_tools: Tool names from the last ``bind_tools`` call.

    Example:
        >>> stuck = ScriptedChatModel(
        ...     script=[AIMessage("", tool_calls=[tool_call("search", {"q": "x"})])],
        ...     repeat_last=True,
        ... )
        >>> [stuck.invoke("go").tool_calls[0]["name"] for _ in range(3)]
        ['search', 'search', 'search']
        >>> stuck.remaining
        0
    """

    script: list[Any]
    model_name: str = "scripted-model"
    repeat_last: bool = False
    input_tokens_per_call: int = 100
    output_tokens_per_call: int = 20
    calls: list[list[BaseMessage]] = Field(default_factory=list, exclude=True)
    bound_tools: list[str] = Field(default_factory=list, exclude=True)
    _position: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def remaining(self) -> int:
        """Steps of the script not used yet."""
        return len(self.script) - self._position

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Record the tool names and return the model itself (the script decides the calls)."""
        del tool_choice, kwargs
        self.bound_tools = [getattr(tool, "name", None) or _name_of(tool) for tool in tools]
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        del stop, run_manager, kwargs
        with self._lock:
            self.calls.append(list(messages))
            step = self._next_step()
        if isinstance(step, Exception):
            raise step
        message = step(list(messages)) if callable(step) else step
        if isinstance(message, str):
            message = AIMessage(message)
        message = self._stamp(message)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _next_step(self) -> Any:
        if self._position >= len(self.script):
            if self.repeat_last and self.script:
                return self.script[-1]
            msg = (
                f"ScriptedChatModel {self.model_name!r} was called {len(self.calls)} times "
                f"but its script has {len(self.script)} steps"
            )
            raise ScriptExhaustedError(msg)
        step = self.script[self._position]
        self._position += 1
        return step

    def _stamp(self, message: AIMessage) -> AIMessage:
        # Fresh ids and tool-call ids on every answer, as a real provider gives:
        # the detector must not depend on them being equal.
        tool_calls = [
            tool_call(call["name"], call["args"])
            if self.repeat_last or call.get("id") is None
            else call
            for call in message.tool_calls
        ]
        usage = message.usage_metadata or {
            "input_tokens": self.input_tokens_per_call,
            "output_tokens": self.output_tokens_per_call,
            "total_tokens": self.input_tokens_per_call + self.output_tokens_per_call,
        }
        metadata = {"model_name": self.model_name, **message.response_metadata}
        return message.model_copy(
            update={
                "id": f"run-{next(_call_ids):06d}",
                "tool_calls": tool_calls,
                "usage_metadata": usage,
                "response_metadata": metadata,
            }
        )


def _name_of(tool: Any) -> str:
    if isinstance(tool, dict):
        return str(tool.get("name") or tool.get("function", {}).get("name", "tool"))
    return str(getattr(tool, "__name__", "tool"))
