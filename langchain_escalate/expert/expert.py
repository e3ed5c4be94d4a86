"""The strong side of an escalation: a chat model, or the user's compiled graph."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig

from langchain_escalate.drive import Call
from langchain_escalate.models import ModelRef

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from langchain_core.tools import BaseTool

ADVISOR_PROMPT = (
    "You are a senior engineer helping a less capable AI assistant that is stuck on a task. "
    "You will read a briefing: the task, what the assistant tried and what came back, and why "
    "it looks stuck. Reply with short, concrete guidance the assistant can act on next "
    "(which tool to call with which arguments, or what to answer). Do not repeat the briefing."
)  # the strong model's system prompt in ``advise`` mode
TAKEOVER_PROMPT = (
    "You are taking over a task from a less capable AI assistant that got stuck. The first "
    "message briefs you on the task and what was tried. Act directly: call the tools you need "
    "or give the final answer."
)  # the strong model's system prompt in ``takeover`` mode

# A graph expert is any Runnable from {"messages": [...]} to a state dict (typed loosely:
# compiled graphs are generic over user state types).
ExpertSpec = str | BaseChatModel | ModelRef | Runnable[Any, Any]


class ExpertError(RuntimeError):
    """The expert answered with nothing usable; ``calls`` are the replies billed all the same."""

    def __init__(self, message: str, calls: Sequence[AIMessage] = ()) -> None:
        """Say what was wrong; keep the billed replies."""
        super().__init__(message)
        self.calls = tuple(calls)


@dataclass(frozen=True)
class ExpertAnswer:
    """The guidance (or takeover step ``message``) and every AI message it took (``calls``)."""

    text: str
    message: AIMessage | None
    calls: tuple[AIMessage, ...]


class Expert:
    r"""The strong model, or the user's compiled graph, that helps a stuck weak model.

    Args:
        strong: ``"provider:model"`` (``init_chat_model``) or ``"provider/model"`` (litellm),
            resolved at first use; a ``BaseChatModel``; a ``ModelRef``; or a compiled graph
            taking and returning ``{"messages": [...]}`` (``advise`` only).
        tools: Tools the strong model is bound to in ``take_over``.
        name: Name in records and pricing; by default the model's or graph's.

    Raises:
        TypeError: ``strong`` is none of the accepted kinds.

    Example:
        >>> from langchain_escalate.testing import ScriptedChatModel
        >>> expert = Expert(ScriptedChatModel(script=["Use the v2 endpoint."], model_name="big"))
        >>> expert.advise("## Task\\nFetch the data").text
        'Use the v2 endpoint.'
    """

    def __init__(
        self,
        strong: ExpertSpec | Expert,
        *,
        tools: Sequence[BaseTool | Any] | None = None,
        name: str | None = None,
    ) -> None:
        """Wrap ``strong``; a model string is not resolved until the first call."""
        self._graph: Runnable[Any, Any] | None = None
        self._model: ModelRef | None = None
        self._tools = tuple(tools or ())
        self._bound: Runnable[LanguageModelInput, BaseMessage] | None = None
        if isinstance(strong, Expert):  # shares the other expert's resolved model
            self._model, self._graph = strong._model, strong._graph  # noqa: SLF001
            self._tools = self._tools if tools is not None else strong._tools  # noqa: SLF001
            self.name: str = name or strong.name
        elif isinstance(strong, (str, BaseChatModel, ModelRef)):
            self._model = ModelRef(strong)
            self.name = name or self._model.name
        elif isinstance(strong, Runnable):
            self._graph, self._tools = strong, ()
            self.name = name or getattr(strong, "name", None) or type(strong).__name__
        else:
            msg = (
                "strong must be a model string ('provider:model' or 'provider/model'), a "
                "BaseChatModel, a ModelRef or a compiled graph taking {'messages': [...]}, "
                f"got {type(strong).__name__}"
            )
            raise TypeError(msg)

    @property
    def kind(self) -> Literal["model", "graph"]:
        """``"graph"`` for a user's compiled graph, else ``"model"``."""
        return "graph" if self._graph is not None else "model"

    def advise(self, briefing: str, *, config: RunnableConfig | None = None) -> ExpertAnswer:
        """Answer the briefing with guidance; ``ExpertError`` when there is no text."""
        advisor, given = self._advisor(briefing)
        return self._advice(advisor.invoke(given, config), briefing)

    async def aadvise(self, briefing: str, *, config: RunnableConfig | None = None) -> ExpertAnswer:
        """Async twin of ``advise``."""
        advisor, given = self._advisor(briefing)
        return self._advice(await advisor.ainvoke(given, config), briefing)

    def take_over(
        self, messages: Sequence[BaseMessage], *, config: RunnableConfig | None = None
    ) -> ExpertAnswer:
        """Take one step in the weak model's place, bound to the same tools."""
        reply = self._tool_model().invoke([SystemMessage(TAKEOVER_PROMPT), *messages], config)
        return answer_of(reply, step=True)

    async def atake_over(
        self, messages: Sequence[BaseMessage], *, config: RunnableConfig | None = None
    ) -> ExpertAnswer:
        """Async twin of ``take_over``."""
        prompt = [SystemMessage(TAKEOVER_PROMPT), *messages]
        return answer_of(await self._tool_model().ainvoke(prompt, config), step=True)

    def advice_call(self, briefing: str) -> Callable[[RunnableConfig], Call[ExpertAnswer]]:
        """``advise`` as a ``Call`` for the engine's drivers, given the run config."""
        return lambda config: Call(
            lambda: self.advise(briefing, config=config),
            lambda: self.aadvise(briefing, config=config),
        )

    def takeover_call(
        self, messages: Sequence[BaseMessage]
    ) -> Callable[[RunnableConfig], Call[ExpertAnswer]]:
        """``take_over`` as a ``Call`` for the engine's drivers, given the run config."""
        return lambda config: Call(
            lambda: self.take_over(messages, config=config),
            lambda: self.atake_over(messages, config=config),
        )

    def chat_model(self) -> BaseChatModel:
        """The strong chat model, built on first call; ``ExpertError`` for a graph."""
        if self._model is None:
            msg = f"expert {self.name!r} is a compiled graph, not a chat model; use mode='advise'"
            raise ExpertError(msg)
        return self._model.get()

    def _advisor(self, briefing: str) -> tuple[Runnable[Any, Any], Any]:
        """What advises and what it is given: a graph the briefing, a model the advisor prompt."""
        if self._graph is not None:
            return self._graph, {"messages": [HumanMessage(briefing)]}
        return self.chat_model(), [SystemMessage(ADVISOR_PROMPT), HumanMessage(briefing)]

    def _advice(self, output: Any, briefing: str) -> ExpertAnswer:
        if self._graph is not None:
            return _graph_answer(output, briefing)
        return answer_of(output, step=False)

    def _tool_model(self) -> Runnable[LanguageModelInput, BaseMessage]:
        if self._bound is None:
            model = self.chat_model()
            self._bound = model.bind_tools(list(self._tools)) if self._tools else model
        return self._bound

    def __repr__(self) -> str:
        """E.g. ``Expert('anthropic/claude-sonnet-4-6', kind='model')``."""
        return f"Expert({self.name!r}, kind={self.kind!r})"


def answer_of(reply: BaseMessage | None, *, step: bool) -> ExpertAnswer:
    """The expert's reply as an answer: advice needs text, a ``step`` text or tool calls."""
    if not isinstance(reply, AIMessage):
        msg = f"the expert returned no AIMessage (got {type(reply).__name__})"
        raise ExpertError(msg)
    text = str(reply.text).strip()
    if not text and not (step and reply.tool_calls):
        msg = "the expert's step has neither text nor tool calls"
        if not step:
            msg = "the expert returned an empty answer"
        raise ExpertError(msg, calls=(reply,))
    return ExpertAnswer(text=text, message=reply if step else None, calls=(reply,))


def _graph_answer(output: Any, briefing: str) -> ExpertAnswer:
    messages = output.get("messages") if isinstance(output, dict) else None
    if not isinstance(messages, list):
        msg = "the expert graph must take and return {'messages': [...]}; it returned no list"
        raise ExpertError(msg)
    # Only what the graph said after the briefing counts (it may carry messages of its own).
    start = 0
    for position, message in enumerate(messages):
        if isinstance(message, HumanMessage) and message.content == briefing:
            start = position + 1
    calls = tuple(m for m in messages[start:] if isinstance(m, AIMessage))
    text = next((str(m.text).strip() for m in reversed(calls) if str(m.text).strip()), "")
    if not text:
        msg = "the expert graph's answer has no AI message with text"
        raise ExpertError(msg, calls=calls)
    return ExpertAnswer(text=text, message=None, calls=calls)
