"""Scripted chat models for testing agents that use langchain-escalate.

A ``ScriptedChatModel`` answers with the messages of its script, in order, and
remembers what it was sent, so a test can assert what the model *received*
(the briefing, a nudge) rather than what it was told to say.

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

_call_ids = itertools.count(1)


def tool_call(name: str, args: dict[str, Any], *, call_id: str | None = None) -> ToolCall:
    """Build a tool call with a fresh id, as a provider would send it.

    Args:
        name: Tool name.
        args: Tool arguments.
        call_id: Fixed id; a new unique one by default.

    Returns:
        A ``ToolCall`` dict for ``AIMessage(tool_calls=[...])``.
    """
    return ToolCall(
        name=name, args=args, id=call_id or f"call_{next(_call_ids):06d}", type="tool_call"
    )


class ScriptExhaustedError(AssertionError):
    """The scripted model was called more times than its script has steps."""


class ScriptedChatModel(BaseChatModel):
    """A chat model that follows a script and records every call.

    Each call takes the next step of ``script``. An ``AIMessage`` step is
    returned with a fresh id and with ``usage_metadata`` filled in when the
    step has none (``input_tokens_per_call``/``output_tokens_per_call``), so
    cost accounting sees realistic usage. A callable step receives the input
    messages; an exception step is raised. When the script runs out,
    ``ScriptExhaustedError`` is raised unless ``repeat_last`` is set.

    Attributes:
        script: The answers, in order.
        model_name: Reported as ``response_metadata["model_name"]`` (used for pricing).
        calls: The input messages of every call, in order.
        bound_tools: Tool names from the last ``bind_tools`` call.
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
