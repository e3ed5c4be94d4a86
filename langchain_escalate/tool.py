"""The ask-expert tool: the weak model asks; the strong model answers, briefed on the thread."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.prebuilt import ToolRuntime  # noqa: TC002 - read at runtime to inject the graph state
from langgraph.types import Command
from pydantic import BaseModel, Field

from langchain_escalate.drive import Steps, run_async, run_sync
from langchain_escalate.escalation import Escalator
from langchain_escalate.records import ESCALATIONS_KEY, RECORD_KEY
from langchain_escalate.run_config import thread_id_of

if TYPE_CHECKING:
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
MIN_BRIEFING_TOKENS = 200  # the smallest briefing bound, as for EscalationPolicy's
_USED_OUTCOMES = frozenset({"answered", "expert_failed"})  # the strong model was called
_IN_FLIGHT_STEPS = 256  # steps whose parallel calls' uses are kept while their records land
# Outside a graph no runtime is injected; an Optional would hide it from LangChain's injection.
_OUTSIDE_GRAPH = cast("ToolRuntime[Any, Any]", None)
_Result = Command[Any] | ToolMessage | str


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

    In a graph it briefs the strong model on the conversation (docs/tool.md) and answers with
    a ``ToolMessage`` carrying its ``EscalationRecord``; called directly, with the text. Limits
    answer with a result the model can read, never an exception.

    Args:
        strong: The expert: a model id (``"provider:model"`` or ``"provider/model"``, resolved
            at first use), a ``BaseChatModel``, or a graph given ``{"messages": [briefing]}``.
        name: The tool's name, as the weak model sees it.
        description: What the weak model reads about the tool.
        max_uses: Answers allowed per thread (``None``: unlimited); refused calls do not count.
        budget: Bounds the strong model's spending; unbounded by default.
        prices: USD per 1M tokens for models litellm's price map lacks.
        briefing_max_tokens: Upper bound on the briefing.

    Raises:
        TypeError: ``strong`` is none of the accepted kinds.
        ValueError: ``max_uses`` or ``briefing_max_tokens`` is out of range.

    Example:
        >>> from langchain_escalate.testing import ScriptedChatModel
        >>> ask = create_ask_expert_tool(ScriptedChatModel(script=["Use v2."]), max_uses=1)
        >>> ask.invoke({"question": "Which endpoint lists invoices?"})
        'Use v2.'
        >>> ask.invoke({"question": "And refunds?"})
        'ask_expert has been used 1 of 1 times by this tool; continue on your own.'
    """
    where = f"create_ask_expert_tool({name!r})"
    if max_uses is not None and max_uses < 1:
        msg = f"{where}: max_uses must be at least 1 or None, got {max_uses}"
        raise ValueError(msg)
    if briefing_max_tokens < MIN_BRIEFING_TOKENS:
        msg = (
            f"{where}: briefing_max_tokens must be at least {MIN_BRIEFING_TOKENS} (room for "
            f"the task, the attempts and the question), got {briefing_max_tokens}"
        )
        raise ValueError(msg)
    asker = _Asker(
        Escalator(strong, node=name, budget=budget, prices=prices), max_uses, briefing_max_tokens
    )
    return StructuredTool.from_function(
        func=asker.run,
        coroutine=asker.arun,
        name=name,
        description=description or DEFAULT_DESCRIPTION,
        args_schema=AskExpertInput,
    )


@dataclass
class _Asker:
    """Count the use, ask the escalator, shape the reply; ``escalator.node`` is the tool's name.

    ``max_uses`` is exact under parallel calls: answered uses are read from the records in the
    conversation, those of the step in progress counted in ``taken`` under a lock.
    """

    escalator: Escalator
    max_uses: int | None
    max_tokens: int
    taken: dict[tuple[str | None, int], int] = field(default_factory=dict)  # oldest first
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(
        self, question: str, context: str | None = None, runtime: ToolRuntime = _OUTSIDE_GRAPH
    ) -> _Result:
        return run_sync(self._ask(question, context, runtime))

    async def arun(
        self, question: str, context: str | None = None, runtime: ToolRuntime = _OUTSIDE_GRAPH
    ) -> _Result:
        return await run_async(self._ask(question, context, runtime))

    def _ask(self, question: str, context: str | None, runtime: ToolRuntime) -> Steps[_Result]:
        graph = runtime if runtime is not None and runtime.tool_call_id is not None else None
        messages = _before_call(graph) if graph else []
        config = graph.config if graph else None
        step = (thread_id_of(config), len(messages))  # parallel calls of one step share it
        answered = _uses_in(messages, self.escalator.node) if graph else None
        if (refusal := self._take_use(step, answered)) is not None:
            return self._reply(graph, refusal)
        answer: Answer | None = None
        try:
            answer = yield from self.escalator.ask_steps(
                question, messages, context=context, thread_id=step[0], config=config,
                max_tokens=self.max_tokens,
            )  # fmt: skip
        finally:
            if self.max_uses is not None and (answer is None or not answer.record.strong_called):
                with self.lock:  # a call that did not reach the strong model gives its use back
                    self.taken[step] = max(self.taken.get(step, 0) - 1, 0)
        if answer.text is not None:
            return self._reply(graph, answer.text, answer.record.to_dict(), "success")
        text = f"{self.escalator.node} could not answer: {answer.refusal}; continue on your own."
        return self._reply(graph, text, answer.record.to_dict())

    def _take_use(self, step: tuple[str | None, int], answered: int | None) -> str | None:
        """Take one use; a refusal a model can read when none is left."""
        if self.max_uses is None:
            return None
        with self.lock:
            used = (answered or 0) + self.taken.get(step, 0)
            if used >= self.max_uses:
                scope = "by this tool" if answered is None else "in this thread"
                return (
                    f"{self.escalator.node} has been used {min(used, self.max_uses)} of "
                    f"{self.max_uses} times {scope}; continue on your own."
                )
            self.taken[step] = self.taken.pop(step, 0) + 1  # re-inserted as the newest
            if len(self.taken) > _IN_FLIGHT_STEPS:
                del self.taken[next(iter(self.taken))]
        return None

    def _reply(
        self, runtime: ToolRuntime | None, text: str, record: Any = None, status: str = "error"
    ) -> _Result:
        """The text outside a graph; in one, a ``ToolMessage``, in a ``Command`` with the record."""
        if runtime is None:
            return text
        message = ToolMessage(
            text, tool_call_id=str(runtime.tool_call_id), name=self.escalator.node, status=status,
            additional_kwargs={} if record is None else {RECORD_KEY: record},
        )  # fmt: skip
        if isinstance(state := runtime.state, list):  # a message-list state takes the message
            return message
        if isinstance(state, Mapping):
            has = ESCALATIONS_KEY in state
        else:
            has = hasattr(state, ESCALATIONS_KEY)
        records = {ESCALATIONS_KEY: [record]} if record is not None and has else {}
        return Command(update={"messages": [message], **records})


def _before_call(runtime: ToolRuntime) -> list[BaseMessage]:
    """The conversation in the state, before the AI message making this call."""
    state: Any = runtime.state
    if isinstance(state, Mapping):
        state = state.get("messages")
    elif not isinstance(state, list):
        state = getattr(state, "messages", None)
    messages: list[BaseMessage] = state if isinstance(state, list) else []
    for at in range(len(messages) - 1, -1, -1):
        message = messages[at]
        if isinstance(message, AIMessage) and any(
            c.get("id") == runtime.tool_call_id for c in message.tool_calls
        ):
            return messages[:at]
    return messages


def _uses_in(messages: Sequence[BaseMessage], name: str) -> int:
    """Answers this tool already gave in the conversation (from the records they carry)."""
    records = [m.additional_kwargs.get(RECORD_KEY) for m in messages if isinstance(m, ToolMessage)]
    return sum(
        isinstance(r, Mapping) and r.get("node") == name and r.get("outcome") in _USED_OUTCOMES
        for r in records
    )
