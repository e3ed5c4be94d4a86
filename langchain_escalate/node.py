"""The escalating LangGraph node: a weak step watched by the stuck detector.

Each step feeds the detector what arrived since the last one; when it says
stuck, the ladder (``escalation.Escalator``) answers before a weak call is
spent; otherwise the weak model acts, and its reply is checked too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
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
from langchain_escalate.escalation import Escalator, Help, Situation, TakeoverSituation
from langchain_escalate.expert.expert import Expert
from langchain_escalate.models import ModelRef
from langchain_escalate.policy import EscalationPolicy
from langchain_escalate.progress import Progress, feed, load_progress, loop_span, rebuild_progress
from langchain_escalate.progress import takeover_in_progress as takeover_of
from langchain_escalate.records import ESCALATIONS_KEY, PROGRESS_KEY
from langchain_escalate.run_config import has_checkpointer, thread_id_of

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from langchain_escalate.budget import Budget
    from langchain_escalate.cost import ModelPrice
    from langchain_escalate.expert.expert import ExpertSpec
    from langchain_escalate.records import EscalationRecord

PENDING_KEY = "escalation_pending"
"""``additional_kwargs`` key marking a ``human`` rung deferred to the next step (plain state)."""

DEFAULT_NODE_NAME = "agent"

# The user's graph decides the state's type: a dict (TypedDict) or an object
# (pydantic model, dataclass); the node reads it through ``_read``.
State = Any
WeakStep = str | BaseChatModel | ModelRef | Runnable[Any, Any] | Callable[..., Any]


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
    policy = policy or EscalationPolicy()
    scorer = conf.ConfidenceScorer(confidence) if confidence is not None else None
    step = _EscalatingStep(
        _Weak(weak, tools=tools, node=name or DEFAULT_NODE_NAME, policy=policy, scorer=scorer),
        Expert(strong, tools=tools),  # built now: a wrong kind of expert fails here
        detector=detector or DetectorConfig(),
        policy=policy,
        budget=budget,
        prices=PriceBook(prices),  # so do malformed prices
        name=name,
        review_tools=conf.reviewed_tools(review_tools, confidence),
    )
    return RunnableLambda(step.invoke, afunc=step.ainvoke, name=name or "escalating_node")


class _Weak:
    """The weak step: a chat model bound to tools, or the user's own node."""

    def __init__(
        self,
        weak: Any,
        *,
        tools: Sequence[Any] | None,
        node: str,
        policy: EscalationPolicy,
        scorer: conf.ConfidenceScorer | None,
    ) -> None:
        self._tools, self._policy, self.scorer = list(tools or []), policy, scorer
        self._model: ModelRef | None = None
        self._node: Runnable[Any, Any] | None = None
        self._bound: Runnable[Any, Any] | None = None
        self._lock = threading.Lock()
        if isinstance(weak, (str, BaseChatModel, ModelRef)):
            self._model = ModelRef(weak)
        elif isinstance(weak, Runnable):
            self._node = weak
        elif callable(weak):
            self._node = RunnableLambda(weak)
        else:
            msg = (
                f"node {node!r}: weak must be a model string ('provider:model' or "
                "'provider/model'), a BaseChatModel, or your own node (a callable or Runnable "
                f"from state to update), got {type(weak).__name__}"
            )
            raise TypeError(msg)

    def call(self, state: State, messages: list[BaseMessage], config: RunnableConfig) -> Call[Any]:
        """The weak call, transient errors retried: a model gives an AIMessage, a node an update."""
        if self.scorer is not None:
            messages = self.scorer.prepare(messages)  # the verbalized instruction, when on
        if self._node is None:
            runnable, given = self._model_runnable(), messages
        else:
            runnable, given = self._node, _with_messages(state, messages)
        what = f"weak step of node {config.get('metadata', {}).get('langgraph_node', '')!r}"
        retry = partial(call_with_retries, retries=self._policy.max_retries, what=what)
        aretry = partial(acall_with_retries, retries=self._policy.max_retries, what=what)
        backoff = self._policy.retry_backoff_s
        return Call(
            lambda: retry(lambda: runnable.invoke(given, config), backoff_s=backoff),
            lambda: aretry(lambda: runnable.ainvoke(given, config), backoff_s=backoff),
        )

    def reply(self, result: Any, node: str) -> tuple[AIMessage, dict[str, Any]]:
        return _reply_of(result, node, is_model=self._node is None)

    def scored(
        self,
        scorer: conf.ConfidenceScorer,
        reply: AIMessage,
        state: State,
        messages: list[BaseMessage],
        config: RunnableConfig,
    ) -> Call[conf.ConfidenceResult]:
        """Score ``reply``; ``consistency`` draws its extra samples from this weak step."""
        again = self.call(state, messages, config)
        node = str(config.get("metadata", {}).get("langgraph_node", ""))

        async def asample() -> AIMessage:
            return self.reply(await again.arun(), node)[0]

        return Call(
            lambda: scorer.score(reply, state, resample=lambda: self.reply(again.run(), node)[0]),
            lambda: scorer.ascore(reply, state, resample=asample),
        )

    def _model_runnable(self) -> Runnable[Any, Any]:
        with self._lock:  # resolved and bound once, at first use
            if self._bound is None and self._model is not None:
                model = self._model.get()
                bound: Runnable[Any, Any] = model.bind_tools(self._tools) if self._tools else model
                if self.scorer is not None and "logprobs" in self.scorer.config.sources:
                    bound = bound.bind(logprobs=True)  # passed on where the provider can
                self._bound = bound
            return cast("Runnable[Any, Any]", self._bound)


class _Outcome:
    """What the step will write, kept apart until the end so that a failure writes nothing.

    ``working`` is the conversation as the weak model will read it: the
    state's own list until help changes it, so a healthy step copies nothing.
    """

    def __init__(self, messages: list[BaseMessage]) -> None:
        self.working = messages
        self.removals: list[RemoveMessage] = []
        self.added: list[BaseMessage] = []
        self.records: list[EscalationRecord] = []
        self.extra: dict[str, Any] = {}

    @property
    def last_id(self) -> str | None:
        """Id of the conversation's last message once the update is applied."""
        last = self.added or self.working
        return last[-1].id if last else None

    def absorb(self, help_: Help) -> None:
        self.records.extend(help_.records)
        if help_.removals:
            gone = {r.id for r in help_.removals}
            self.working = [m for m in self.working if m.id not in gone]
            self.added = [m for m in self.added if m.id not in gone]
            self.removals.extend(help_.removals)
        self.add(help_.messages, visible=True)

    def replace_last(self, message: BaseMessage) -> None:
        """Replace the last message by one with its id (``add_messages`` replaces it)."""
        self.working = [*self.working[:-1], message]
        self.added = [*(m for m in self.added if m.id != message.id), message]

    def add(self, messages: Sequence[BaseMessage], *, visible: bool) -> None:
        """Add to the update (``visible``: and to what the weak model reads next)."""
        self.added.extend(conf.with_ids(messages))  # our ids: the next step finds where this ended
        if visible and messages:
            self.working = [*self.working, *messages]


@dataclass
class _Invocation:
    """What one invocation of the node works with."""

    node: str
    state: State
    config: RunnableConfig
    with_state: bool
    with_records: bool
    escalator: Escalator
    progress: Progress
    out: _Outcome

    def situation(self, verdict: Verdict, loop: int, **kwargs: Any) -> Situation:
        return Situation(
            verdict=verdict,
            messages=self.out.working,
            times_fired=self.progress.fired,
            loop_messages=loop,
            thread_id=thread_id_of(self.config),
            can_interrupt=has_checkpointer(self.config),
            config=self.config,
            **kwargs,
        )


@dataclass
class _Attempt:
    """One weak call: its reply (``None`` when it failed) and the detector's verdict."""

    verdict: Verdict
    loop: int = 0
    reply: AIMessage | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    dropped_usage: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _EscalatingStep:
    """One invocation of the node, written once for sync and async."""

    weak: _Weak
    expert: Expert
    detector: DetectorConfig
    policy: EscalationPolicy
    budget: Budget | None
    prices: PriceBook
    name: str | None
    review_tools: frozenset[str]
    escalators: dict[str, Escalator] = field(default_factory=dict)

    def invoke(self, state: State, config: RunnableConfig) -> Any:
        return run_sync(self._run(state, config))

    async def ainvoke(self, state: State, config: RunnableConfig) -> Any:
        return await run_async(self._run(state, config))

    def _run(self, state: State, config: RunnableConfig) -> Steps[Any]:
        run, messages, new_from = self._start(state, config)
        verdict, loop = feed(run.progress, messages, new_from)
        takeover = takeover_of(messages)
        if takeover is not None:
            help_ = yield from run.escalator.takeover_steps(
                TakeoverSituation(
                    briefing=takeover.briefing,
                    steps_so_far=takeover.steps_so_far,
                    step=takeover.step,
                    verdict=takeover.verdict,
                    thread_id=thread_id_of(config),
                    config=config,
                )
            )
            run.out.absorb(help_)
            if help_.takeover is not None:
                return self._finish(run)
            verdict = Verdict()  # the budget or the expert ended it: the weak model resumes
        start_rung: int | None = None
        dropped: list[dict[str, Any]] = []  # usage of the stuck reply the ladder answers
        pending = self._pending(run, messages)
        if pending is not None:
            verdict, loop, start_rung = Verdict(**pending["verdict"]), 0, int(pending["rung"])
            dropped = list(pending.get("dropped_usage", []))
        weak_calls, last_reply = 0, cast("AIMessage | None", None)
        while True:
            if verdict.stuck:
                situation = run.situation(
                    verdict,
                    loop,
                    model_called=weak_calls > 0,
                    start_rung=start_rung,
                    dropped_usage=dropped,
                )
                start_rung = None
                ended = yield from self._answer(run, situation)
                if ended is not None:
                    return ended
            if weak_calls >= self._max_weak_calls and last_reply is not None:
                run.out.add([last_reply], visible=False)  # the ladder did not help: keep it
                return self._finish(run)
            weak_calls += 1
            attempt = yield from self._weak_attempt(run, last=weak_calls >= self._max_weak_calls)
            verdict, loop, dropped = attempt.verdict, attempt.loop, attempt.dropped_usage
            if attempt.reply is None:
                continue
            last_reply = attempt.reply
            if not verdict.stuck:
                run.out.extra.update(attempt.extra)
                run.out.add([attempt.reply], visible=False)
                return self._finish(run)

    def _answer(self, run: _Invocation, situation: Situation) -> Steps[Any]:
        """Walk the ladder; the node's return value when the step ends here, else ``None``."""
        help_ = yield from run.escalator.steps(situation)
        run.out.absorb(help_)
        if help_.deferred_rung is not None:
            pending = {"verdict": situation.verdict.to_dict(), "rung": help_.deferred_rung}
            if situation.dropped_usage:  # nothing added carries it: the deferred rung's step will
                pending["dropped_usage"] = list(situation.dropped_usage)
            return self._defer(run, pending)
        run.progress.answered()
        return self._finish(run) if help_.stopped or help_.takeover is not None else None

    def _start(
        self, state: State, config: RunnableConfig
    ) -> tuple[_Invocation, list[BaseMessage], int]:
        node = self.name or str((config.get("metadata") or {}).get("langgraph_node") or "")
        node = node or DEFAULT_NODE_NAME
        messages = _messages_of(state, node)
        saved = _read(state, PROGRESS_KEY)  # its keys are written only when the state has them
        if saved is not None:
            progress, new_from = load_progress(saved.get(node), messages, self.detector, name=node)
        else:
            progress, new_from = rebuild_progress(
                messages, self.detector, name=node, exact_indices=False
            )
        if node not in self.escalators:
            self.escalators[node] = Escalator(
                self.expert, node=node, policy=self.policy, budget=self.budget, prices=self.prices
            )
        with_records = _read(state, ESCALATIONS_KEY) is not None
        escalator, outcome = self.escalators[node], _Outcome(messages)
        run = _Invocation(
            node, state, config, saved is not None, with_records, escalator, progress, outcome
        )
        return run, messages, new_from

    @property
    def _max_weak_calls(self) -> int:
        return 2 * len(self.policy.ladder) + 4  # every rung followed by a weak call, and retries

    def _weak_attempt(self, run: _Invocation, *, last: bool) -> Steps[_Attempt]:
        """One weak call, fed to the detector; a call that fails counts as a failure."""
        detector, progress = run.progress.detector, run.progress
        try:
            result = yield self.weak.call(run.state, run.out.working, run.config)
        except GraphBubbleUp:
            raise  # your node's own interrupt() or Command(graph=PARENT) is not a failure
        except Exception as error:
            if classify(error) == "fatal" or last:
                raise  # a missing key is not being stuck; past the bound the error is the user's
            failure = detector.record_failure(f"the weak step raised {error!r}")
            return _Attempt(progress.exact(failure))
        try:
            reply, extra = self.weak.reply(result, run.node)
        except _EmptyReplyError as error:
            verdict = progress.exact(detector.record_failure(str(error)))
            if last:
                raise
            return _Attempt(verdict)
        reply = yield from self._confidence(run, reply)
        verdict = conf.with_low_source(detector.observe(reply), reply)
        if not verdict.stuck:
            verdict = conf.review_verdict(reply, self.review_tools, self.detector.low_confidence)
        kept = conf.without_verbalized(reply)
        attempt = _Attempt(verdict=verdict, reply=kept, extra=extra)
        if verdict.stuck:
            # The stuck reply is not kept: the help that answers it carries its usage.
            attempt.loop = loop_span(progress, verdict, run.out.working, dropped=1)
            attempt.dropped_usage = pruned_usage([kept, reply])
            attempt.verdict = progress.exact(verdict)
        return attempt

    def _confidence(self, run: _Invocation, reply: AIMessage) -> Steps[AIMessage]:
        """The reply with its combined confidence: final replies and calls under review."""
        scorer = self.weak.scorer
        if scorer is None or not conf.needs_score(reply, self.review_tools):
            return reply
        result = yield self.weak.scored(scorer, reply, run.state, run.out.working, run.config)
        kept: AIMessage = (
            result.kept_reply()
        )  # the reply kept (or the help) carries the samples' usage
        return kept

    @staticmethod
    def _pending(run: _Invocation, messages: Sequence[BaseMessage]) -> dict[str, Any] | None:
        """A ``human`` rung deferred by the previous step, if any (its marker cleared)."""
        if run.with_state:
            pending, run.progress.pending = run.progress.pending, None
            return pending
        if not messages or PENDING_KEY not in messages[-1].additional_kwargs:
            return None
        kwargs = dict(messages[-1].additional_kwargs)
        pending = kwargs.pop(PENDING_KEY)
        run.out.replace_last(messages[-1].model_copy(update={"additional_kwargs": kwargs}))
        return dict(pending)

    def _defer(self, run: _Invocation, pending: dict[str, Any]) -> Command[Any]:
        """End the step; the next one runs the ``human`` rung before any model call.

        A resume replays the whole step: asking in a fresh step means the model
        calls of this one are never made (or paid) twice.
        """
        if run.with_state:
            run.progress.pending = pending
        else:  # plain MessagesState has nowhere else to keep it: the last message carries it
            last = run.out.working[-1]
            extra = {**last.additional_kwargs, PENDING_KEY: pending}
            run.out.replace_last(last.model_copy(update={"additional_kwargs": extra}))
        return Command(update=self._finish(run), goto=run.node)

    @staticmethod
    def _finish(run: _Invocation) -> dict[str, Any]:
        out, progress = run.out, run.progress
        progress.last_id = out.last_id or progress.last_id
        update: dict[str, Any] = {**out.extra, "messages": [*out.removals, *out.added]}
        if run.with_state:
            if run.with_records:
                update[ESCALATIONS_KEY] = [record.to_dict() for record in out.records]
            update[PROGRESS_KEY] = {run.node: progress.to_dict()}
        return update


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


def _messages_of(state: State, node: str) -> list[BaseMessage]:
    messages = _read(state, "messages")
    # Only the last message is checked: the check must not grow with the history.
    if not isinstance(messages, list) or (messages and not isinstance(messages[-1], BaseMessage)):
        msg = (
            f"node {node!r}: the state has no 'messages' list of LangChain messages; use a state "
            "with a messages channel, e.g. MessagesState or EscalationState"
        )
        raise ValueError(msg)
    return messages


def _reply_of(result: Any, node: str, *, is_model: bool) -> tuple[AIMessage, dict[str, Any]]:
    """The weak step's reply and the other keys of a user's node update."""
    if is_model and not isinstance(result, AIMessage):
        msg = f"node {node!r}: the weak model returned {type(result).__name__}, not an AIMessage"
        raise _EmptyReplyError(msg)
    if is_model:
        reply, extra = result, {}
    elif not isinstance(result, Mapping):
        msg = (
            f"node {node!r}: your weak node must return a state update dict with 'messages', "
            f"got {type(result).__name__}"
        )
        raise TypeError(msg)
    else:
        written = result.get("messages")
        written = written if isinstance(written, list) else [written] if written else []
        replies = [m for m in written if isinstance(m, AIMessage)]
        if not replies:
            msg = f"node {node!r}: your weak node's update has no AIMessage"
            raise _EmptyReplyError(msg)
        reply, extra = replies[-1], {k: v for k, v in result.items() if k != "messages"}
    if not reply.tool_calls and not str(reply.text).strip():
        msg = f"node {node!r}: the weak step returned an empty reply"
        raise _EmptyReplyError(msg)
    return reply, extra
