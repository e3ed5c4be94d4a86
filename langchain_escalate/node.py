"""The escalating LangGraph node: a weak step watched by the stuck detector.

When the detector says stuck, the ladder (``escalation.Escalator``) answers before a weak call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, cached_property, partial
from typing import TYPE_CHECKING, Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, RemoveMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langgraph.errors import GraphBubbleUp
from langgraph.types import Command

from langchain_escalate import confidence as conf
from langchain_escalate.cost import PriceBook, pruned_usage
from langchain_escalate.detector import DetectorConfig, Verdict
from langchain_escalate.drive import Call, Steps, run_async, run_sync
from langchain_escalate.errors import acall_with_retries, call_with_retries, classify
from langchain_escalate.escalation import Escalator, Help, Situation
from langchain_escalate.expert.expert import Expert
from langchain_escalate.models import ModelRef
from langchain_escalate.policy import EscalationPolicy
from langchain_escalate.progress import feed, load_progress, loop_span, rebuild_progress
from langchain_escalate.progress import takeover_in_progress as takeover_of
from langchain_escalate.records import ESCALATIONS_KEY, PROGRESS_KEY
from langchain_escalate.run_config import has_checkpointer, thread_id_of

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from langchain_escalate.budget import Budget
    from langchain_escalate.cost import ModelPrice
    from langchain_escalate.expert.expert import ExpertSpec
    from langchain_escalate.progress import Progress
    from langchain_escalate.records import EscalationRecord

PENDING_KEY = "escalation_pending"
"""``additional_kwargs`` key marking a ``human`` rung deferred to the next step (plain state)."""

DEFAULT_NODE_NAME = "agent"

State = Any  # the graph's: a dict (TypedDict) or an object (pydantic, dataclass); see ``_read``
WeakStep = str | BaseChatModel | ModelRef | Runnable[Any, Any] | Callable[..., Any]
# A weak call's verdict, loop span, dropped usage, and reply.
_Attempt = tuple[Verdict, int, list[dict[str, Any]], AIMessage | None]


def create_escalating_node(
    weak: WeakStep,
    strong: ExpertSpec,
    *,
    tools: Sequence[BaseTool | Callable[..., Any] | dict[str, Any]] | None = None,
    detector: DetectorConfig | None = None,
    policy: EscalationPolicy | None = None,
    budget: Budget | None = None,
    prices: Mapping[str, ModelPrice | dict[str, Any]] | None = None,
    confidence: conf.ConfidenceConfig | None = None,
    review_tools: Sequence[str] = (),
    name: str | None = None,
) -> Runnable[Any, Any]:
    """Create a LangGraph node that runs a weak step and escalates when it is stuck.

    Works in any state with a ``messages`` channel; with the ``EscalationState`` keys,
    records also go to ``escalations``, progress to ``escalation_progress`` (docs/decisions.md).

    Args:
        weak: A model (``"provider:model"``, ``"provider/model"``, a ``BaseChatModel``:
            bound to ``tools``) or your own node (state in, ``messages`` update out).
        strong: A model (the same kinds) or a compiled graph.
        tools: The weak model's tools; in ``takeover`` mode the strong model's too.
        detector: Thresholds of the stuck detector.
        policy: The ladder and the escalation mode.
        budget: Bounds on the strong model's spending; unbounded by default.
        prices: USD per 1M tokens for models litellm's price map lacks.
        confidence: Sources scoring final replies and ``review_tools`` calls (docs/confidence.md).
        review_tools: Tools whose calls are scored before they run.
        name: Name in records, logs and progress; by default the graph's node name.

    Returns:
        A Runnable for ``StateGraph.add_node`` (sync and async).

    Raises:
        TypeError: ``weak``/``strong`` of no accepted kind; ``review_tools`` a string.
        ValueError: ``review_tools`` without ``confidence``.

    Example:
        >>> from langgraph.graph import START, MessagesState, StateGraph
        >>> from langchain_escalate.testing import ScriptedChatModel as Scripted
        >>> node = create_escalating_node(Scripted(script=["Paris."]), "unused/model")
        >>> graph = StateGraph(MessagesState).add_node("agent", node).add_edge(START, "agent")
        >>> graph = graph.compile()
        >>> graph.invoke({"messages": [("user", "Capital of France?")]})["messages"][-1].content
        'Paris.'
    """
    weak_step = _weak_of(weak, name or DEFAULT_NODE_NAME)
    expert = Expert(strong, tools=tools)  # built now: a wrong kind of expert fails here
    step = _EscalatingStep(
        weak_step,
        list(tools or []),
        cache(partial(Escalator, expert, policy=policy, budget=budget, prices=PriceBook(prices))),
        detector=detector or DetectorConfig(),
        policy=policy or EscalationPolicy(),
        name=name,
        review_tools=conf.reviewed_tools(review_tools, confidence),
        scorer=conf.ConfidenceScorer(confidence) if confidence is not None else None,
    )
    return RunnableLambda(step.invoke, afunc=step.ainvoke, name=name or "escalating_node")


def _weak_of(weak: WeakStep, node: str) -> ModelRef | Runnable[Any, Any]:
    """A model, bound to the tools at first use, or the user's own node."""
    if isinstance(weak, (str, BaseChatModel, ModelRef)):
        return ModelRef(weak)
    if isinstance(weak, Runnable) or callable(weak):
        return weak if isinstance(weak, Runnable) else RunnableLambda(weak)
    msg = (
        f"node {node!r}: weak must be a model string ('provider:model' or "
        "'provider/model'), a BaseChatModel, or your own node (a callable or Runnable "
        f"from state to update), got {type(weak).__name__}"
    )
    raise TypeError(msg)


@dataclass
class _Run:
    """One invocation and its update, written only at the end, so a failure writes nothing."""

    node: str
    state: State
    config: RunnableConfig
    progress: Progress
    working: list[BaseMessage]  # what the weak model reads: the state's list until help comes
    with_state: bool  # the state has the ``EscalationState`` keys
    removals: list[RemoveMessage] = field(default_factory=list)
    added: list[BaseMessage] = field(default_factory=list)
    records: list[EscalationRecord] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def absorb(self, help_: Help) -> None:
        gone = {r.id for r in help_.removals}
        self.working = [m for m in self.working if m.id not in gone]
        self.added = [m for m in self.added if m.id not in gone]
        self.removals.extend(help_.removals)
        self.records.extend(help_.records)
        self.added.extend(conf.with_ids(help_.messages))  # our ids: the next step finds its end
        self.working = [*self.working, *help_.messages]

    def replace_last(self, message: BaseMessage) -> None:
        """Replace the last message by one with its id (``add_messages`` replaces it)."""
        self.working = [*self.working[:-1], message]
        self.added = [*(m for m in self.added if m.id != message.id), message]

    def take_pending(self, messages: Sequence[BaseMessage]) -> dict[str, Any] | None:
        """A ``human`` rung deferred by the previous step, if any (its marker cleared)."""
        if self.with_state:
            pending, self.progress.pending = self.progress.pending, None
            return pending
        if not messages or PENDING_KEY not in messages[-1].additional_kwargs:
            return None
        kwargs = dict(messages[-1].additional_kwargs)
        pending = kwargs.pop(PENDING_KEY)
        self.replace_last(messages[-1].model_copy(update={"additional_kwargs": kwargs}))
        return dict(pending)

    def defer(self, pending: dict[str, Any]) -> Command[Any]:
        """End the step; the next one runs the ``human`` rung before any model call.

        A resume replays the whole step: in a fresh step, this one's calls are not paid twice.
        """
        if self.with_state:
            self.progress.pending = pending
        else:  # plain MessagesState has nowhere else to keep it: the last message carries it
            last = self.working[-1]
            extra = {**last.additional_kwargs, PENDING_KEY: pending}
            self.replace_last(last.model_copy(update={"additional_kwargs": extra}))
        return Command(update=self.finish(), goto=self.node)

    def finish(self, reply: AIMessage | None = None) -> dict[str, Any]:
        """The state update, ending with the weak ``reply`` when one is kept."""
        self.added.extend(conf.with_ids([] if reply is None else [reply]))
        last = self.added or self.working
        self.progress.last_id = (last[-1].id if last else None) or self.progress.last_id
        update: dict[str, Any] = {**self.extra, "messages": [*self.removals, *self.added]}
        if self.with_state:
            if _read(self.state, ESCALATIONS_KEY) is not None:
                update[ESCALATIONS_KEY] = [record.to_dict() for record in self.records]
            update[PROGRESS_KEY] = {self.node: self.progress.to_dict()}
        return update


@dataclass
class _EscalatingStep:
    """One invocation of the node, written once for sync and async."""

    weak: ModelRef | Runnable[Any, Any]
    tools: list[Any]
    escalator: Callable[..., Escalator]  # one per node name (``node=``), cached
    detector: DetectorConfig
    policy: EscalationPolicy
    name: str | None
    review_tools: frozenset[str]
    scorer: conf.ConfidenceScorer | None

    def invoke(self, state: State, config: RunnableConfig) -> Any:
        return run_sync(self._run(state, config))

    async def ainvoke(self, state: State, config: RunnableConfig) -> Any:
        return await run_async(self._run(state, config))

    def _run(self, state: State, config: RunnableConfig) -> Steps[Any]:
        run, new_from = self._start(state, config)
        messages = run.working
        verdict, loop = feed(run.progress, messages, new_from)
        takeover = takeover_of(messages)
        if takeover is not None:
            going = replace(takeover, thread_id=thread_id_of(config), config=config)
            help_ = yield from self.escalator(node=run.node).takeover_steps(going)
            run.absorb(help_)
            if help_.takeover is not None:
                return run.finish()
            verdict = Verdict()  # the budget or the expert ended it: the weak model resumes
        pending = run.take_pending(messages) or {}
        if pending:
            verdict, loop = Verdict(**pending["verdict"]), 0
        start_rung = int(pending["rung"]) if pending else None
        dropped = list(pending.get("dropped_usage", []))  # the stuck reply's, which help carries
        # Every rung followed by a weak call, and retries.
        max_calls, weak_calls, last_reply = 2 * len(self.policy.ladder) + 4, 0, None
        while True:
            if verdict.stuck:
                situation = Situation(
                    verdict=verdict,
                    messages=run.working,
                    times_fired=run.progress.fired,
                    loop_messages=loop,
                    thread_id=thread_id_of(config),
                    can_interrupt=has_checkpointer(config),
                    model_called=weak_calls > 0,
                    start_rung=start_rung,
                    config=config,
                    dropped_usage=dropped,
                )
                start_rung = None
                ended = yield from self._answer(run, situation)
                if ended is not None:
                    return ended
            if weak_calls >= max_calls and last_reply is not None:
                return run.finish(last_reply)  # the ladder did not help: keep it
            weak_calls += 1
            attempt = yield from self._weak_attempt(run, last=weak_calls >= max_calls)
            verdict, loop, dropped, reply = attempt
            if reply is not None:
                last_reply = reply
                if not verdict.stuck:
                    return run.finish(reply)

    def _answer(self, run: _Run, situation: Situation) -> Steps[Any]:
        """Walk the ladder; the node's return value when the step ends here, else ``None``."""
        help_ = yield from self.escalator(node=run.node).steps(situation)
        run.absorb(help_)
        if help_.deferred_rung is not None:
            pending = {"verdict": situation.verdict.to_dict(), "rung": help_.deferred_rung}
            if situation.dropped_usage:  # nothing added carries it: the deferred rung's step will
                pending["dropped_usage"] = list(situation.dropped_usage)
            return run.defer(pending)
        run.progress.answered()
        return run.finish() if help_.stopped or help_.takeover is not None else None

    def _start(self, state: State, config: RunnableConfig) -> tuple[_Run, int]:
        metadata = config.get("metadata") or {}
        node = self.name or str(metadata.get("langgraph_node") or DEFAULT_NODE_NAME)
        messages = _read(state, "messages")
        # Only the last message is checked: the check must not grow with the history.
        if not isinstance(messages, list) or (
            messages and not isinstance(messages[-1], BaseMessage)
        ):
            msg = (
                f"node {node!r}: the state has no 'messages' list of LangChain messages; use a "
                "state with a messages channel, e.g. MessagesState or EscalationState"
            )
            raise ValueError(msg)
        saved = _read(state, PROGRESS_KEY)  # its keys are written only when the state has them
        progress, new_from = (
            load_progress(saved.get(node), messages, self.detector, name=node)
            if saved is not None
            else rebuild_progress(messages, self.detector, name=node, exact_indices=False)
        )
        return _Run(node, state, config, progress, messages, saved is not None), new_from

    def _weak_attempt(self, run: _Run, *, last: bool) -> Steps[_Attempt]:
        """One weak call, fed to the detector; a call that fails counts as a failure."""
        progress = run.progress
        try:
            reply, extra = self._reply((yield self._weak_call(run)), run.node)
        except GraphBubbleUp:
            raise  # your node's own interrupt() or Command(graph=PARENT) is not a failure
        except Exception as error:
            if classify(error) == "fatal" or last:
                raise  # a missing key is not being stuck; past the bound the error is the user's
            raised = not isinstance(error, _EmptyReplyError)  # else: a failure, not an error
            why = f"the weak step raised {error!r}" if raised else str(error)
            return progress.exact(progress.detector.record_failure(why)), 0, [], None
        reply = yield from self._confidence(run, reply)
        verdict = conf.with_low_source(progress.detector.observe(reply), reply)
        if not verdict.stuck:
            verdict = conf.review_verdict(reply, self.review_tools, self.detector.low_confidence)
        kept = conf.without_verbalized(reply)
        if not verdict.stuck:
            run.extra.update(extra)
            return verdict, 0, [], kept
        # The stuck reply is not kept: the help that answers it carries its usage.
        loop = loop_span(progress, verdict, run.working, dropped=1)
        return progress.exact(verdict), loop, pruned_usage([kept, reply]), kept

    def _confidence(self, run: _Run, reply: AIMessage) -> Steps[AIMessage]:
        """The reply with its combined confidence: final replies and calls under review."""
        scorer = self.scorer
        if scorer is None or not conf.needs_score(reply, self.review_tools):
            return reply
        # ``consistency`` draws its samples from the weak step.
        sample = self._weak_call(run).then(lambda again: self._reply(again, run.node)[0])
        result: conf.ConfidenceResult = yield Call(
            lambda: scorer.score(reply, run.state, resample=sample.run),
            lambda: scorer.ascore(reply, run.state, resample=sample.arun),
        )
        return result.kept_reply()  # the reply kept (or the help) carries the samples' usage

    def _weak_call(self, run: _Run) -> Call[Any]:
        """The weak call, transient errors retried: a model gives an AIMessage, a node an update."""
        messages = run.working if self.scorer is None else self.scorer.prepare(run.working)
        runnable = self._bound if isinstance(self.weak, ModelRef) else self.weak
        given = messages if isinstance(self.weak, ModelRef) else _with_messages(run.state, messages)
        retry: dict[str, Any] = {
            "retries": self.policy.max_retries,
            "backoff_s": self.policy.retry_backoff_s,
            "what": f"weak step of node {run.node!r}",
        }
        return Call(
            lambda: call_with_retries(lambda: runnable.invoke(given, run.config), **retry),
            lambda: acall_with_retries(lambda: runnable.ainvoke(given, run.config), **retry),
        )

    def _reply(self, result: Any, node: str) -> tuple[AIMessage, dict[str, Any]]:
        """The weak step's reply and the other keys of a user's node update."""
        model = isinstance(self.weak, ModelRef)
        if not model and not isinstance(result, Mapping):
            msg = (
                f"node {node!r}: your weak node must return a state update dict with 'messages', "
                f"got {type(result).__name__}"
            )
            raise TypeError(msg)
        written = [result] if model else result.get("messages")
        written = written if isinstance(written, list) else [written] if written else []
        reply = next((m for m in reversed(written) if isinstance(m, AIMessage)), None)
        if reply is None and model:
            msg = (
                f"node {node!r}: the weak model returned {type(result).__name__}, not an AIMessage"
            )
            raise _EmptyReplyError(msg)
        if reply is None:
            msg = f"node {node!r}: your weak node's update has no AIMessage"
            raise _EmptyReplyError(msg)
        if not reply.tool_calls and not str(reply.text).strip():
            msg = f"node {node!r}: the weak step returned an empty reply"
            raise _EmptyReplyError(msg)
        return reply, {} if model else {k: v for k, v in result.items() if k != "messages"}

    @cached_property
    def _bound(self) -> Runnable[Any, Any]:
        """The weak model, built and bound to the tools at first use."""
        model = cast("ModelRef", self.weak).get()
        bound: Runnable[Any, Any] = model.bind_tools(self.tools) if self.tools else model
        if self.scorer is not None and "logprobs" in self.scorer.config.sources:
            bound = bound.bind(logprobs=True)  # passed on where the provider can
        return bound


class _EmptyReplyError(ValueError):
    """The weak step returned nothing usable."""


def _read(state: Any, key: str) -> Any:
    """A state key, from a dict (TypedDict state) or an attribute (pydantic or dataclass state)."""
    return state.get(key) if isinstance(state, Mapping) else getattr(state, key, None)


def _with_messages(state: Any, messages: list[BaseMessage]) -> Any:
    """The state your node receives: the same state with the help messages added."""
    if isinstance(state, Mapping):
        return {**state, "messages": messages}
    if hasattr(state, "model_copy"):
        return state.model_copy(update={"messages": messages})
    return replace(state, messages=messages)
