"""The ask-expert tool: the weak model asks, the strong model answers with the conversation briefed.

The "ask-expert" pattern lets the cheap model decide for itself when to ask a
stronger one. Usual ask-expert tools make the model restate the whole problem,
which is lossy and costs tokens; this one reads the conversation from the graph
state and sends the strong model the same bounded briefing the escalating node
uses, so the weak model only has to ask its question.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.prebuilt import ToolRuntime  # noqa: TC002 - read at runtime to inject the graph state
from langgraph.types import Command
from pydantic import BaseModel, Field

from langchain_escalate.escalation import Escalator
from langchain_escalate.records import ESCALATIONS_KEY, RECORD_KEY

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from langchain_escalate.budget import Budget
    from langchain_escalate.cost import ModelPrice
    from langchain_escalate.escalation import Answer
    from langchain_escalate.expert.expert import ExpertSpec

DEFAULT_NAME = "ask_expert"

DEFAULT_DESCRIPTION = (
    "Ask a stronger expert model for help when you are stuck, keep getting errors, or are "
    "unsure how to go on. The expert already sees this conversation (the task, what you "
    "tried and what came back), so ask one short, specific question; use `context` only for "
    "what the conversation does not show. The expert answers with guidance; you act on it."
)


MIN_BRIEFING_TOKENS = 200
"""The smallest briefing bound, as for ``EscalationPolicy.briefing_max_tokens``."""

_StateKind = Literal["none", "messages", "plain", "with_escalations"]
"""The graph state the tool was called from: none (a direct call), the message list, a state
with ``messages``, or one that also has ``escalations``."""

# Outcomes in which the strong model was called: each counts as one use.
_USED_OUTCOMES = frozenset({"answered", "expert_failed"})

_IN_FLIGHT_STEPS = 256  # steps whose parallel calls' uses are kept while their records land

# Outside a graph no runtime is injected. ToolRuntime must stay the parameter's
# declared type (an Optional hides it from LangChain's injection), so the
# default is a typed None.
_OUTSIDE_GRAPH = cast("ToolRuntime[Any, Any]", None)


class AskExpertInput(BaseModel):
    """What the weak model sends: a question, and optionally context the conversation lacks."""

    question: str = Field(description="What you need to know, in one or two sentences.")
    context: str | None = Field(
        default=None,
        description="Anything the expert needs that the conversation does not already show.",
    )


def create_ask_expert_tool(
    strong: ExpertSpec,
    *,
    name: str = DEFAULT_NAME,
    description: str | None = None,
    max_uses: int | None = None,
    budget: Budget | None = None,
    prices: Mapping[str, ModelPrice | dict[str, Any]] | None = None,
    briefing_max_tokens: int = 1500,
) -> BaseTool:
    """Create a tool the weak model calls to ask the strong model for help.

    Inside a graph (``ToolNode``, ``create_agent``) the tool reads the
    conversation from the graph state and sends the strong model a bounded
    briefing: the task, what was tried and what came back, the question and
    the context. It returns a ``Command`` that adds the answer as the
    ``ToolMessage`` of the call, carrying its ``EscalationRecord`` under
    ``additional_kwargs[RECORD_KEY]``; when the state has an ``escalations``
    key, the record is appended there too (a graph whose state is the message
    list itself gets the ``ToolMessage``). Called directly, outside a graph,
    only the question and the context are sent, and the answer text is
    returned.

    ``max_uses`` and the budget are enforced with a tool result the model can
    read ("ask_expert has been used 2 of 2 times in this thread; continue on
    your own"), never an exception. Uses are counted from the records of the
    thread's earlier answers, so the count survives restarts; outside a graph
    they are counted per tool object.

    Args:
        strong: The expert: a litellm model id (resolved at first use), a
            ``BaseChatModel``, or a compiled graph called with
            ``{"messages": [briefing]}`` whose last AI message is the answer.
        name: The tool's name, as the weak model sees it.
        description: What the weak model reads about the tool; a default
            tells it to ask short questions because the expert sees the
            conversation.
        max_uses: Answers allowed per thread (``None``: unlimited). Calls that
            the budget refused do not count.
        budget: Bounds the strong model's spending (escalations and USD per
            thread, USD in total); unbounded by default.
        prices: USD per 1M tokens for models litellm's price map lacks.
        briefing_max_tokens: Upper bound on the briefing sent to the strong model.

    Returns:
        A LangChain ``BaseTool`` with arguments ``question`` and ``context``
        (sync and async).

    Raises:
        TypeError: ``strong`` is none of the accepted kinds.
        ValueError: ``max_uses`` or ``briefing_max_tokens`` is out of range.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> from langchain_escalate.testing import ScriptedChatModel
        >>> strong = ScriptedChatModel(script=[AIMessage("Use the v2 endpoint.")])
        >>> ask = create_ask_expert_tool(strong, max_uses=1)
        >>> ask.invoke({"question": "Which endpoint lists invoices?"})
        'Use the v2 endpoint.'
        >>> ask.invoke({"question": "And refunds?"})
        'ask_expert has been used 1 of 1 times by this tool; continue on your own.'
    """
    if max_uses is not None and max_uses < 1:
        msg = (
            f"create_ask_expert_tool({name!r}): max_uses must be at least 1 or None, got {max_uses}"
        )
        raise ValueError(msg)
    if briefing_max_tokens < MIN_BRIEFING_TOKENS:
        msg = (
            f"create_ask_expert_tool({name!r}): briefing_max_tokens must be at least "
            f"{MIN_BRIEFING_TOKENS} (room for the task, the attempts and the question), "
            f"got {briefing_max_tokens}"
        )
        raise ValueError(msg)
    asker = _Asker(
        Escalator(strong, node=name, budget=budget, prices=prices),
        name=name,
        max_uses=max_uses,
        briefing_max_tokens=briefing_max_tokens,
    )
    return StructuredTool.from_function(
        func=asker.run,
        coroutine=asker.arun,
        name=name,
        description=description or DEFAULT_DESCRIPTION,
        args_schema=AskExpertInput,
    )


@dataclass(frozen=True)
class _Call:
    """Where the tool was called from: a graph's tool call, or a direct call."""

    messages: Sequence[BaseMessage]
    tool_call_id: str | None
    thread_id: str | None
    config: RunnableConfig | None
    state_kind: _StateKind
    step_key: tuple[str | None, int] = (None, 0)
    """The thread and the AI message asking: parallel calls of one step share it."""

    @property
    def in_graph(self) -> bool:
        return self.tool_call_id is not None

    @classmethod
    def of(cls, runtime: ToolRuntime[Any, Any] | None) -> _Call:
        if runtime is None or runtime.tool_call_id is None:
            return cls(
                messages=(), tool_call_id=None, thread_id=None, config=None, state_kind="none"
            )
        messages = _messages_of(runtime.state)
        configurable = (runtime.config or {}).get("configurable") or {}
        thread_id = configurable.get("thread_id")
        thread = str(thread_id) if thread_id is not None else None
        before = _before_call(messages, runtime.tool_call_id)
        return cls(
            messages=before,
            tool_call_id=runtime.tool_call_id,
            thread_id=thread,
            config=runtime.config,
            state_kind=_kind_of(runtime.state),
            step_key=(thread, len(before)),
        )


class _Asker:
    """The tool's logic: count the use, ask the escalator, shape the reply (sync and async twins).

    ``max_uses`` is exact under parallel calls whatever their ids: the uses
    already answered come from the records in the conversation, and the calls
    of the step in progress (whose records are not in the state yet) take and
    give back uses under a lock. A call the budget refused gives its use back.
    """

    def __init__(
        self, escalator: Escalator, *, name: str, max_uses: int | None, briefing_max_tokens: int
    ) -> None:
        self._escalator = escalator
        self._name = name
        self._max_uses = max_uses
        self._briefing_max_tokens = briefing_max_tokens
        self._taken: OrderedDict[tuple[str | None, int], int] = OrderedDict()
        self._lock = threading.Lock()

    def run(
        self,
        question: str,
        context: str | None = None,
        runtime: ToolRuntime[Any, Any] = _OUTSIDE_GRAPH,
    ) -> Command[Any] | ToolMessage | str:
        """Ask the expert (sync); the tool's ``func``."""
        call = _Call.of(runtime)
        refusal = self._take_use(call)
        if refusal is not None:
            return self._reply(call, refusal, record=None, failed=True)
        answer: Answer | None = None
        try:
            answer = self._escalator.ask(question, call.messages, **self._ask_kwargs(call, context))
        finally:
            self._give_back_unless_used(call, answer)
        return self._answer(call, answer)

    async def arun(
        self,
        question: str,
        context: str | None = None,
        runtime: ToolRuntime[Any, Any] = _OUTSIDE_GRAPH,
    ) -> Command[Any] | ToolMessage | str:
        """Ask the expert (async); the tool's ``coroutine``."""
        call = _Call.of(runtime)
        refusal = self._take_use(call)
        if refusal is not None:
            return self._reply(call, refusal, record=None, failed=True)
        answer: Answer | None = None
        try:
            answer = await self._escalator.aask(
                question, call.messages, **self._ask_kwargs(call, context)
            )
        finally:
            self._give_back_unless_used(call, answer)
        return self._answer(call, answer)

    def _ask_kwargs(self, call: _Call, context: str | None) -> dict[str, Any]:
        return {
            "context": context,
            "thread_id": call.thread_id,
            "config": call.config,
            "max_tokens": self._briefing_max_tokens,
        }

    def _take_use(self, call: _Call) -> str | None:
        """Take one use; a refusal a model can read when none is left."""
        if self._max_uses is None:
            return None
        answered = _uses_in(call.messages, self._name) if call.in_graph else 0
        with self._lock:
            taken = self._taken.get(call.step_key, 0)
            if answered + taken >= self._max_uses:
                scope = "in this thread" if call.in_graph else "by this tool"
                return (
                    f"{self._name} has been used {min(answered + taken, self._max_uses)} of "
                    f"{self._max_uses} times {scope}; continue on your own."
                )
            self._taken[call.step_key] = taken + 1
            self._taken.move_to_end(call.step_key)
            while len(self._taken) > _IN_FLIGHT_STEPS:
                self._taken.popitem(last=False)
        return None

    def _give_back_unless_used(self, call: _Call, answer: Answer | None) -> None:
        if self._max_uses is None or (
            answer is not None and answer.record.outcome in _USED_OUTCOMES
        ):
            return
        with self._lock:
            if self._taken.get(call.step_key, 0) > 0:
                self._taken[call.step_key] -= 1

    def _answer(self, call: _Call, answer: Answer | None) -> Command[Any] | ToolMessage | str:
        if answer is None:  # pragma: no cover - ask raised; the finally clause ran
            msg = "no answer"
            raise RuntimeError(msg)
        if answer.text is not None:
            return self._reply(call, answer.text, record=answer.record.to_dict(), failed=False)
        refusal = f"{self._name} could not answer: {answer.refusal}; continue on your own."
        return self._reply(call, refusal, record=answer.record.to_dict(), failed=True)

    def _reply(
        self, call: _Call, text: str, *, record: dict[str, Any] | None, failed: bool
    ) -> Command[Any] | ToolMessage | str:
        if not call.in_graph:
            return text
        message = ToolMessage(
            text,
            tool_call_id=str(call.tool_call_id),
            name=self._name,
            status="error" if failed else "success",
            additional_kwargs={RECORD_KEY: record} if record is not None else {},
        )
        if call.state_kind == "messages":
            # A graph whose state is the message list takes the message itself.
            return message
        update: dict[str, Any] = {"messages": [message]}
        if record is not None and call.state_kind == "with_escalations":
            update[ESCALATIONS_KEY] = [record]
        return Command(update=update)


def _before_call(messages: Sequence[BaseMessage], tool_call_id: str) -> Sequence[BaseMessage]:
    """The conversation before the AI message making this call."""
    for position in range(len(messages) - 1, -1, -1):
        message = messages[position]
        if isinstance(message, AIMessage) and any(
            call.get("id") == tool_call_id for call in message.tool_calls
        ):
            return messages[:position]
    return messages


def _messages_of(state: Any) -> Sequence[BaseMessage]:
    """The conversation in a graph state: a dict or object with ``messages``, or the list itself."""
    if isinstance(state, list):
        return state
    messages = (
        state.get("messages") if isinstance(state, Mapping) else getattr(state, "messages", None)
    )
    return messages if isinstance(messages, list) else []


def _kind_of(state: Any) -> _StateKind:
    if isinstance(state, list):
        return "messages"
    has = (
        ESCALATIONS_KEY in state if isinstance(state, Mapping) else hasattr(state, ESCALATIONS_KEY)
    )
    return "with_escalations" if has else "plain"


def _uses_in(messages: Sequence[BaseMessage], name: str) -> int:
    """Answers this tool already gave in the conversation (from the records they carry)."""
    used = 0
    for message in messages:
        record = (
            message.additional_kwargs.get(RECORD_KEY) if isinstance(message, ToolMessage) else None
        )
        if (
            isinstance(record, Mapping)
            and record.get("node") == name
            and record.get("outcome") in _USED_OUTCOMES
        ):
            used += 1
    return used
