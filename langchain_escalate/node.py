"""The escalating LangGraph node: a weak step watched by the stuck detector.

``create_escalating_node`` replaces an agent's model node. Each invocation
feeds the detector the messages that arrived since the last one; when it says
stuck, the ladder (``escalation.Escalator``) answers before a weak call is
spent; otherwise the weak model acts, and its reply is checked too.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, RemoveMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langgraph.errors import GraphBubbleUp
from langgraph.types import Command

from langchain_escalate.confidence import (
    ConfidenceConfig,
    ConfidenceResult,
    ConfidenceScorer,
    review_verdict,
    with_low_source,
    without_verbalized,
)
from langchain_escalate.cost import PRUNED_USAGE_KEY, PriceBook, pruned_usage
from langchain_escalate.detector import DetectorConfig, Verdict
from langchain_escalate.drive import Call, Steps, run_async, run_sync
from langchain_escalate.errors import acall_with_retries, call_with_retries, classify
from langchain_escalate.escalation import Escalator, Help, Situation, TakeoverSituation
from langchain_escalate.expert.expert import Expert
from langchain_escalate.models import ModelRef
from langchain_escalate.policy import EscalationPolicy
from langchain_escalate.progress import (
    Progress,
    feed,
    load_progress,
    loop_span,
    rebuild_progress,
    takeover_in_progress,
)
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
    confidence: ConfidenceConfig | None = None,
    review_tools: Sequence[str] = (),
    name: str | None = None,
) -> Runnable[Any, Any]:
    """Create a LangGraph node that runs a weak step and escalates when it is stuck.

    Works in any graph whose state has a ``messages`` channel (plain
    ``MessagesState`` included). With the ``EscalationState`` keys
    (``escalations``, ``escalation_progress``) the node also appends every
    ``EscalationRecord`` to ``escalations`` and keeps the detector's state in
    ``escalation_progress``, so a step costs the same whatever the length of
    the conversation. Without them, records ride in the metadata of the
    messages the escalation adds and the detector replays the conversation
    each step (see docs/decisions.md).

    Errors of the weak model: authentication, bad request, unknown model and
    programming errors raise unchanged; transient ones (429, 5xx, timeouts)
    are retried (``policy.max_retries``) and then count as failures.

    Args:
        weak: The step being wrapped: a litellm model id, a ``BaseChatModel``
            (bound to ``tools`` by the node), or your own node (a callable or
            Runnable from state to an update with ``messages``).
        strong: The expert: a litellm model id, a ``BaseChatModel``, or a
            compiled graph called with ``{"messages": [briefing]}``. Model ids
            are resolved at first use.
        tools: The weak model's tools; in ``takeover`` mode the strong model
            is bound to them too. Not needed when ``weak`` is your own node
            (then pass them for ``takeover``).
        detector: Thresholds of the stuck detector.
        policy: The ladder and the escalation mode.
        budget: Bounds on the strong model's spending; unbounded by default.
        prices: USD per 1M tokens for models litellm's price map lacks.
        confidence: Confidence sources that score the weak model's final
            replies (and calls to ``review_tools``); the detector's
            ``low_confidence`` threshold decides. See docs/confidence.md.
        review_tools: Tools whose calls are scored before they run: below the
            threshold the ladder answers and the call does not run. Needs a
            source that scores tool calls (``consistency``, ``logprobs`` or ``verify``).
        name: Node name for records, logs and progress; by default the name
            the graph gives the node (``langgraph_node``).

    Returns:
        A Runnable to pass to ``StateGraph.add_node`` (sync and async).

    Raises:
        TypeError: ``weak`` or ``strong`` is none of the accepted kinds.
        Exception: At run time, a fatal error of the weak or strong model
            (see ``langchain_escalate.errors``), unchanged.

    Example:
        >>> from langgraph.graph import START, MessagesState, StateGraph
        >>> from langchain_escalate.testing import ScriptedChatModel
        >>> node = create_escalating_node(
        ...     ScriptedChatModel(script=["Paris."]), ScriptedChatModel(script=[])
        ... )
        >>> graph = StateGraph(MessagesState).add_node("agent", node)
        >>> graph = graph.add_edge(START, "agent").compile()
        >>> graph.invoke({"messages": [("user", "Capital of France?")]})["messages"][-1].content
        'Paris.'
    """
    label = name or DEFAULT_NODE_NAME
    resolved = policy or EscalationPolicy()
    scorer = ConfidenceScorer(confidence) if confidence is not None else None
    step = _EscalatingStep(
        _Weak(weak, tools=tools, node=label, policy=resolved, scorer=scorer),
        strong,
        tools=tools,
        detector=detector or DetectorConfig(),
        policy=resolved,
        budget=budget,
        prices=prices,
        name=name,
        review_tools=frozenset(review_tools),
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
        scorer: ConfidenceScorer | None = None,
    ) -> None:
        self._tools = list(tools or [])
        self._policy = policy
        self.scorer = scorer
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
                f"node {node!r}: weak must be a litellm model id (str), a BaseChatModel, or your "
                f"own node (a callable or Runnable from state to update), got {type(weak).__name__}"
            )
            raise TypeError(msg)

    @property
    def is_model(self) -> bool:
        return self._model is not None

    def call(self, state: State, messages: list[BaseMessage], config: RunnableConfig) -> Call[Any]:
        """The weak call, transient errors retried: a model gives an AIMessage, a node an update."""
        runnable: Runnable[Any, Any]
        if self.scorer is not None:
            messages = self.scorer.prepare(messages)  # the verbalized instruction, when on
        if self._node is not None:
            runnable, given = self._node, _with_messages(state, messages)
        else:
            runnable, given = self._model_runnable(), messages
        retries, backoff = self._policy.max_retries, self._policy.retry_backoff_s
        what = f"weak step of node {config.get('metadata', {}).get('langgraph_node', '')!r}"
        return Call(
            lambda: call_with_retries(
                lambda: runnable.invoke(given, config),
                retries=retries,
                backoff_s=backoff,
                what=what,
            ),
            lambda: acall_with_retries(
                lambda: runnable.ainvoke(given, config),
                retries=retries,
                backoff_s=backoff,
                what=what,
            ),
        )

    def scored(
        self, reply: AIMessage, state: State, messages: list[BaseMessage], config: RunnableConfig
    ) -> Call[ConfidenceResult]:
        """Score ``reply``; ``consistency`` draws its extra samples from this weak step."""
        scorer = self.scorer
        if scorer is None:  # pragma: no cover - callers check
            msg = "no confidence sources configured"
            raise RuntimeError(msg)
        again = self.call(state, messages, config)
        node = str(config.get("metadata", {}).get("langgraph_node", ""))

        def sample() -> AIMessage:
            return _reply_of(again.run(), node, is_model=self.is_model)[0]

        async def asample() -> AIMessage:
            return _reply_of(await again.arun(), node, is_model=self.is_model)[0]

        return Call(
            lambda: scorer.score(reply, state, resample=sample),
            lambda: scorer.ascore(reply, state, resample=asample),
        )

    def _model_runnable(self) -> Runnable[Any, Any]:
        if self._bound is None:
            with self._lock:
                if self._bound is None and self._model is not None:
                    model = self._model.get()
                    bound = model.bind_tools(self._tools) if self._tools else model
                    if self.scorer is not None and "logprobs" in self.scorer.config.sources:
                        bound = bound.bind(logprobs=True)  # passed on where the provider can
                    self._bound = bound
        if self._bound is None:  # pragma: no cover - only models get here
            msg = "the weak step is not a model"
            raise TypeError(msg)
        return self._bound


class _Outcome:
    """What this invocation will write: kept apart until the end, so a failure writes nothing.

    ``working`` is the conversation as the weak model will see it. It is the
    state's own list until help changes it; only then is it copied, so a step
    that needs no help copies nothing, whatever the length of the history.
    """

    def __init__(self, messages: list[BaseMessage]) -> None:
        self._state_messages = messages
        self._working: list[BaseMessage] | None = None
        self.removals: list[RemoveMessage] = []
        self.added: list[BaseMessage] = []
        self.records: list[EscalationRecord] = []
        self.extra: dict[str, Any] = {}

    @property
    def working(self) -> list[BaseMessage]:
        return self._state_messages if self._working is None else self._working

    @property
    def last_id(self) -> str | None:
        """Id of the last message of the conversation once the update is applied."""
        if self.added:
            return self.added[-1].id
        return self.working[-1].id if self.working else None

    def absorb(self, help_: Help) -> None:
        self.records.extend(help_.records)
        if help_.removals:
            gone = {r.id for r in help_.removals}
            self._working = [m for m in self.working if m.id not in gone]
            self.added = [m for m in self.added if m.id not in gone]
            self.removals.extend(help_.removals)
        self.add(help_.messages, visible=True)

    def replace_last(self, message: BaseMessage) -> None:
        """Replace the last message by one with the same id (``add_messages`` replaces it)."""
        self._working = [*self.working[:-1], message]
        self.added = [m for m in self.added if m.id != message.id]
        self.added.append(message)

    def add(self, messages: Sequence[BaseMessage], *, visible: bool) -> None:
        """Add messages to the update (``visible``: also to what the weak model reads next)."""
        for message in messages:
            if message.id is None:
                # Our own id, so the next invocation can find where it stopped.
                message.id = f"esc-{uuid.uuid4().hex}"
            self.added.append(message)
        if visible and messages:
            self._working = [*self.working, *messages]


@dataclass
class _Invocation:
    """What one invocation of the node works with."""

    node: str
    state: State
    config: RunnableConfig
    thread: str | None
    can_interrupt: bool
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
            thread_id=self.thread,
            can_interrupt=self.can_interrupt,
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


class _EscalatingStep:
    """One invocation of the node, written once for sync and async."""

    def __init__(
        self,
        weak: _Weak,
        strong: ExpertSpec,
        *,
        tools: Sequence[Any] | None,
        detector: DetectorConfig,
        policy: EscalationPolicy,
        budget: Budget | None,
        prices: Mapping[str, ModelPrice | dict[str, Any]] | None,
        name: str | None,
        review_tools: frozenset[str] = frozenset(),
    ) -> None:
        self._weak = weak
        self._review_tools = review_tools
        # Built now: a wrong kind of expert is a mistake to report at build time,
        # and one expert (one resolved model) serves every name the node runs under.
        self._expert = Expert(strong, tools=tools)
        self._detector_config = detector
        self._policy = policy
        self._budget = budget
        self._prices = PriceBook(prices)  # malformed prices fail here, at build time
        self._name = name
        self._escalators: dict[str, Escalator] = {}

    def invoke(self, state: State, config: RunnableConfig) -> Any:
        return run_sync(self._run(state, config))

    async def ainvoke(self, state: State, config: RunnableConfig) -> Any:
        return await run_async(self._run(state, config))

    # -- one invocation -------------------------------------------------------

    def _run(self, state: State, config: RunnableConfig) -> Steps[Any]:
        run, messages, new_from = self._start(state, config)
        verdict, loop = feed(run.progress, messages, new_from)
        takeover = takeover_in_progress(messages)
        if takeover is not None:
            help_ = yield from run.escalator.takeover_steps(
                TakeoverSituation(
                    briefing=takeover.briefing,
                    steps_so_far=takeover.steps_so_far,
                    step=takeover.step,
                    verdict=takeover.verdict,
                    thread_id=run.thread,
                    config=config,
                )
            )
            run.out.absorb(help_)
            if help_.takeover is not None:
                return self._finish(run)
            # The budget or the expert ended the takeover: the weak model resumes.
            verdict = Verdict()

        start_rung: int | None = None
        # Usage of the stuck reply the ladder answers: it is dropped, but was paid for.
        dropped: list[dict[str, Any]] = []
        pending = self._pending(run, messages)
        if pending is not None:
            verdict, loop = Verdict(**pending["verdict"]), 0
            start_rung = int(pending["rung"])
            dropped = list(pending.get("dropped_usage", []))
        weak_calls = 0
        last_reply: AIMessage | None = None
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
                # The ladder did not get the weak model out within one step:
                # keep its last reply rather than loop here.
                run.out.add([last_reply], visible=False)
                return self._finish(run)
            weak_calls += 1
            attempt = yield from self._weak_attempt(
                run, last_call=weak_calls >= self._max_weak_calls
            )
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
            if situation.dropped_usage:
                # Nothing was added to carry it: the step that runs the rung will.
                pending["dropped_usage"] = list(situation.dropped_usage)
            return self._defer(run, pending)
        run.progress.answered()
        if help_.stopped or help_.takeover is not None:
            return self._finish(run)
        return None

    def _start(
        self, state: State, config: RunnableConfig
    ) -> tuple[_Invocation, list[BaseMessage], int]:
        node = self._node_name(config)
        messages = _messages_of(state, node)
        thread = thread_id_of(config)
        # The EscalationState keys are written only when the graph's state has them.
        with_state = _read(state, PROGRESS_KEY) is not None
        saved = (_read(state, PROGRESS_KEY) or {}).get(node) if with_state else None
        progress, new_from = (
            load_progress(saved, messages, self._detector_config, name=node)
            if with_state
            else rebuild_progress(messages, self._detector_config, name=node, exact_indices=False)
        )
        run = _Invocation(
            node=node,
            state=state,
            config=config,
            thread=thread,
            can_interrupt=has_checkpointer(config),
            with_state=with_state,
            with_records=_read(state, ESCALATIONS_KEY) is not None,
            escalator=self._escalator(node),
            progress=progress,
            out=_Outcome(messages),
        )
        return run, messages, new_from

    @property
    def _max_weak_calls(self) -> int:
        # Enough for every rung to be followed by a weak call, plus retries.
        return 2 * len(self._policy.ladder) + 4

    def _weak_attempt(self, run: _Invocation, *, last_call: bool) -> Steps[_Attempt]:
        """One weak call, fed to the detector; a call that fails counts as a failure."""
        detector = run.progress.detector
        try:
            result = yield self._weak.call(run.state, run.out.working, run.config)
        except GraphBubbleUp:
            raise  # your node's own interrupt() or Command(graph=PARENT) is not a failure
        except Exception as error:
            if classify(error) == "fatal" or last_call:
                # A missing key or a wrong model id is not being stuck; past the
                # bound the error is the user's to see. Nothing was written.
                raise
            verdict = run.progress.exact(detector.record_failure(f"the weak step raised {error!r}"))
            return _Attempt(verdict=verdict)
        try:
            reply, extra = _reply_of(result, run.node, is_model=self._weak.is_model)
        except _EmptyReplyError as error:
            verdict = run.progress.exact(detector.record_failure(str(error)))
            if last_call:
                raise
            return _Attempt(verdict=verdict)
        reply = yield from self._confidence(run, reply)
        verdict = with_low_source(detector.observe(reply), reply)
        if not verdict.stuck:
            threshold = self._detector_config.low_confidence
            verdict = review_verdict(reply, self._review_tools, threshold)
        kept = without_verbalized(reply)
        attempt = _Attempt(verdict=verdict, reply=kept, extra=extra)
        if verdict.stuck:
            # The stuck reply is not kept: the detector saw it, the state will not;
            # the help that answers it carries its usage instead.
            attempt.loop = loop_span(run.progress, verdict, run.out.working, dropped=1)
            attempt.dropped_usage = pruned_usage([kept, reply])
            attempt.verdict = run.progress.exact(verdict)
        return attempt

    def _confidence(self, run: _Invocation, reply: AIMessage) -> Steps[AIMessage]:
        """The reply with its combined confidence, when the sources score it."""
        scorer = self._weak.scorer
        if scorer is None or not self._scored(reply):
            return reply
        result: ConfidenceResult = yield self._weak.scored(
            reply, run.state, run.out.working, run.config
        )
        scored = result.scored_reply()
        if result.samples:
            # The extra samples were paid for: the reply kept (or the help) carries their usage.
            scored.additional_kwargs[PRUNED_USAGE_KEY] = pruned_usage(_with_ids(result.samples))
        return scored

    def _scored(self, reply: AIMessage) -> bool:
        """Final replies are scored, and calls to the tools under review."""
        return not reply.tool_calls or any(
            call["name"] in self._review_tools for call in reply.tool_calls
        )

    @staticmethod
    def _pending(run: _Invocation, messages: Sequence[BaseMessage]) -> dict[str, Any] | None:
        """A ``human`` rung deferred by the previous step, if any (and clear its marker)."""
        if run.with_state:
            pending, run.progress.pending = run.progress.pending, None
            return pending
        if not messages or PENDING_KEY not in messages[-1].additional_kwargs:
            return None
        last = messages[-1]
        kwargs = {k: v for k, v in last.additional_kwargs.items() if k != PENDING_KEY}
        run.out.replace_last(last.model_copy(update={"additional_kwargs": kwargs}))
        return dict(last.additional_kwargs[PENDING_KEY])

    def _defer(self, run: _Invocation, pending: dict[str, Any]) -> Command[Any]:
        """End this step and come back to run the ``human`` rung before any model call.

        A resume replays the whole step; asking the person in a fresh step
        means the model calls made in this one are never made (or paid) twice.
        """
        if run.with_state:
            run.progress.pending = pending
        else:
            # Plain MessagesState has nowhere else to keep it: the last message carries it.
            last = run.out.working[-1]
            extra = {**last.additional_kwargs, PENDING_KEY: pending}
            run.out.replace_last(last.model_copy(update={"additional_kwargs": extra}))
        return Command(update=self._finish(run), goto=run.node)

    def _finish(self, run: _Invocation) -> dict[str, Any]:
        out, progress = run.out, run.progress
        if out.last_id is not None:
            progress.last_id = out.last_id
        update: dict[str, Any] = {**out.extra, "messages": [*out.removals, *out.added]}
        if run.with_state:
            if run.with_records:
                update[ESCALATIONS_KEY] = [record.to_dict() for record in out.records]
            update[PROGRESS_KEY] = {run.node: progress.to_dict()}
        return update

    def _node_name(self, config: RunnableConfig) -> str:
        if self._name:
            return self._name
        metadata = config.get("metadata") or {}
        return str(metadata.get("langgraph_node") or DEFAULT_NODE_NAME)

    def _escalator(self, node: str) -> Escalator:
        escalator = self._escalators.get(node)
        if escalator is None:
            escalator = Escalator(
                self._expert,
                node=node,
                policy=self._policy,
                budget=self._budget,
                prices=self._prices,
            )
            self._escalators[node] = escalator
        return escalator


class _EmptyReplyError(ValueError):
    """The weak step returned nothing usable."""


def _read(state: Any, key: str) -> Any:
    """A state key, from a dict (TypedDict state) or an attribute (pydantic or dataclass state)."""
    if isinstance(state, Mapping):
        return state.get(key)
    return getattr(state, key, None)


def _with_messages(state: Any, messages: list[BaseMessage]) -> Any:
    """The state your node receives: the same state with the help messages added."""
    if isinstance(state, Mapping):
        return {**state, "messages": messages}
    if hasattr(state, "model_copy"):
        return state.model_copy(update={"messages": messages})
    return replace(state, messages=messages)


def _messages_of(state: State, node: str) -> list[BaseMessage]:
    messages = _read(state, "messages")
    # The last message is checked, not all of them: the check must not grow with the history.
    if not isinstance(messages, list) or (messages and not isinstance(messages[-1], BaseMessage)):
        msg = (
            f"node {node!r}: the state has no 'messages' list of LangChain messages; use a state "
            "with a messages channel, e.g. MessagesState or EscalationState"
        )
        raise ValueError(msg)
    return messages


def _with_ids(messages: list[AIMessage]) -> list[AIMessage]:
    for message in messages:
        if message.id is None:
            message.id = f"esc-{uuid.uuid4().hex}"
    return messages


def _reply_of(result: Any, node: str, *, is_model: bool) -> tuple[AIMessage, dict[str, Any]]:
    """The weak step's reply and the other keys of a user's node update."""
    if is_model:
        if not isinstance(result, AIMessage):
            msg = (
                f"node {node!r}: the weak model returned {type(result).__name__}, not an AIMessage"
            )
            raise _EmptyReplyError(msg)
        reply, extra = result, {}
    else:
        if not isinstance(result, Mapping):
            msg = (
                f"node {node!r}: your weak node must return a state update dict with 'messages', "
                f"got {type(result).__name__}"
            )
            raise TypeError(msg)
        written = result.get("messages")
        written = written if isinstance(written, list) else [written] if written else []
        replies = [m for m in written if isinstance(m, AIMessage)]
        if not replies:
            msg = f"node {node!r}: your weak node's update has no AIMessage"
            raise _EmptyReplyError(msg)
        reply = replies[-1]
        extra = {k: v for k, v in result.items() if k != "messages"}
    if not reply.tool_calls and not str(reply.text).strip():
        msg = f"node {node!r}: the weak step returned an empty reply"
        raise _EmptyReplyError(msg)
    return reply, extra
