"""``EscalationMiddleware``: the escalation ladder for ``langchain.agents.create_agent``.

LangChain's ``ModelFallbackMiddleware`` switches models only when a call
raises, never when the model is stuck. This middleware watches the
conversation with the stuck detector and, when it fires, answers with the same
ladder and modes as the escalating node, through the same engine
(``escalation.Escalator``):

- ``before_model`` feeds the detector what arrived since the last model call
  (tool results) and, when stuck, runs the ladder before the weak model is
  called: a nudge or the strong model's advice is added to the messages, a
  person is asked through ``interrupt()``, or the run ends (``jump_to="end"``).
- ``wrap_model_call`` runs the ``takeover`` steps: the request goes to the
  strong model (``request.override(model=...)``) with the agent's own system
  prompt and tools, under the budget. The steps are marked like the node's
  (``merge.TAKEOVER_KEY``) and continued the same way (``takeover_in_progress``).
- ``after_model`` checks a final reply (no tool calls) for the reply rules
  (low confidence, monologue) and sends the agent back to the model when it
  is stuck, instead of letting the run end on a doubtful answer. A call to a
  tool under review (``review_tools``) with a low confidence is sent back the
  same way, before it runs.

With ``confidence=``, ``wrap_model_call`` also asks the model for what the
sources need (the verbalized instruction in the system prompt, logprobs in the
model settings) and scores its final replies and calls under review, as the
escalating node does (``confidence.ConfidenceScorer``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Optional

from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ExtendedModelResponse,
    ModelRequest,
    ModelResponse,
    PrivateStateAttr,
    hook_config,
)
from langchain_core.messages import AIMessage, BaseMessage, RemoveMessage, SystemMessage
from langgraph.config import get_config
from langgraph.types import Command
from typing_extensions import NotRequired

from langchain_escalate.confidence import (
    ConfidenceConfig,
    ConfidenceResult,
    ConfidenceScorer,
    review_verdict,
    with_low_source,
    without_verbalized,
)
from langchain_escalate.cost import PRUNED_USAGE_KEY, pruned_usage
from langchain_escalate.detector import DetectorConfig, Verdict
from langchain_escalate.drive import Call, Steps, run_async, run_sync
from langchain_escalate.escalation import Escalator, Situation
from langchain_escalate.expert.briefing import estimate_tokens, is_help_message
from langchain_escalate.expert.expert import ExpertAnswer, ExpertError
from langchain_escalate.merge import TAKEOVER_KEY, stamp
from langchain_escalate.progress import feed, load_progress, loop_span, takeover_in_progress
from langchain_escalate.records import (
    ESCALATIONS_KEY,
    PROGRESS_KEY,
    RECORD_KEY,
    add_records,
    merge_progress,
)
from langchain_escalate.run_config import has_checkpointer, thread_id_of, thread_id_of_runtime

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from langchain_core.runnables import RunnableConfig
    from langgraph.runtime import Runtime

    from langchain_escalate.budget import Budget
    from langchain_escalate.cost import ModelPrice
    from langchain_escalate.expert.expert import ExpertSpec
    from langchain_escalate.policy import EscalationPolicy
    from langchain_escalate.progress import Progress
    from langchain_escalate.records import EscalationRecord

DROPPED_FIELD = "dropped_usage"
"""Key of a pending verdict (or takeover) holding the usage of the stuck reply it answers."""

DEFAULT_NAME = "EscalationMiddleware"


class EscalationMiddlewareState(AgentState[Any]):
    """What ``EscalationMiddleware`` keeps in the agent's state (and so in checkpoints).

    Attributes:
        escalations: Every ``EscalationRecord`` as a dict, in order.
        escalation_progress: Per middleware name: the detector's state, the
            ladder position in the turn, and a takeover in progress. Private:
            not part of the agent's input or output.
    """

    escalations: NotRequired[Annotated[list[dict[str, Any]], add_records]]
    escalation_progress: NotRequired[Annotated[dict[str, Any], merge_progress, PrivateStateAttr]]


class EscalationMiddleware(AgentMiddleware[EscalationMiddlewareState, Any, Any]):
    """Escalate a stuck ``create_agent`` agent to a stronger model, a person, or a stop.

    Watches the conversation before each model call. When the stuck detector
    fires, the next rung of ``policy.ladder`` runs: ``nudge`` (a free hint),
    ``escalate`` (``advise``: the strong model's guidance is added and the
    agent's own model acts; ``takeover``: the strong model takes this model
    call and the next ``policy.takeover_steps``), ``human`` (``interrupt()``;
    needs a checkpointer), ``stop`` (the run ends with a message saying why).
    Every action appends an ``EscalationRecord`` to ``escalations`` and to the
    metadata of the messages it adds. On a healthy run it calls nothing and
    adds nothing but its own bookkeeping.

    Args:
        strong: The expert: a litellm model id (resolved at first use), a
            ``BaseChatModel``, or a compiled graph called with
            ``{"messages": [briefing]}`` (``advise`` only).
        detector: Thresholds of the stuck detector.
        policy: The ladder and the escalation mode.
        budget: Bounds the strong model's spending; unbounded by default.
        prices: USD per 1M tokens for models litellm's price map lacks.
        confidence: Sources scoring final replies and calls to ``review_tools``
            against the detector's ``low_confidence`` (docs/confidence.md).
        review_tools: Tools whose calls are scored before they run; below the
            threshold the call is dropped and the ladder answers.
        name: The middleware's name: its node names in the agent graph, its
            entry in ``escalation_progress``, and the ``node`` of its records.
            Two instances in one agent need distinct names.

    Raises:
        TypeError: ``strong`` is none of the accepted kinds, or ``review_tools``
            is a string rather than a list of names.
        ValueError: ``review_tools`` without ``confidence``.

    Example:
        >>> from langchain.agents import create_agent
        >>> from langchain_escalate.testing import ScriptedChatModel
        >>> agent = create_agent(
        ...     ScriptedChatModel(script=["Paris."]),
        ...     middleware=[EscalationMiddleware(ScriptedChatModel(script=[]))],
        ... )
        >>> agent.invoke({"messages": [("user", "Capital of France?")]})["messages"][-1].content
        'Paris.'
    """

    state_schema = EscalationMiddlewareState

    def __init__(
        self,
        strong: ExpertSpec,
        *,
        detector: DetectorConfig | None = None,
        policy: EscalationPolicy | None = None,
        budget: Budget | None = None,
        prices: Mapping[str, ModelPrice | dict[str, Any]] | None = None,
        confidence: ConfidenceConfig | None = None,
        review_tools: Sequence[str] = (),
        name: str = DEFAULT_NAME,
    ) -> None:
        """Build the middleware; the strong model is resolved at its first call."""
        super().__init__()
        self._name = name
        self._detector = detector or DetectorConfig()
        self._scoring = _scoring(confidence, review_tools)
        self._review_tools = frozenset(review_tools)
        self._escalator = Escalator(strong, node=name, policy=policy, budget=budget, prices=prices)

    @property
    def name(self) -> str:
        """The middleware's name (its nodes in the agent graph, its progress entry)."""
        return self._name

    # -- before each model call: detect, then climb the ladder -----------------

    @hook_config(can_jump_to=["end"])
    def before_model(
        self,
        state: EscalationMiddlewareState,
        runtime: Runtime[Any],
        # LangGraph injects the run config into a parameter annotated exactly so;
        # reading it from context instead fails in async code on Python 3.10.
        config: Optional[RunnableConfig] = None,  # noqa: UP045
    ) -> dict[str, Any] | None:
        """Feed the detector the new messages; when stuck, run the next rung of the ladder.

        Args:
            state: The agent state.
            runtime: The LangGraph runtime (unused).
            config: The run config, injected by LangGraph.

        Returns:
            The messages the rung adds or prunes, its records, this
            middleware's progress, and ``jump_to="end"`` after ``stop``.
        """
        del runtime
        return run_sync(self._before_model(state, config or get_config()))

    @hook_config(can_jump_to=["end"])
    async def abefore_model(
        self,
        state: EscalationMiddlewareState,
        runtime: Runtime[Any],
        config: Optional[RunnableConfig] = None,  # noqa: UP045 - see before_model
    ) -> dict[str, Any] | None:
        """Async twin of ``before_model``."""
        del runtime
        return await run_async(self._before_model(state, config or get_config()))

    def _before_model(
        self, state: EscalationMiddlewareState, config: RunnableConfig
    ) -> Steps[dict[str, Any] | None]:
        messages = state["messages"]
        saved = _saved(state, self._name)
        progress, start = load_progress(saved, messages, self._detector)
        verdict, loop = feed(progress, messages, start)
        start_rung: int | None = None
        dropped: list[dict[str, Any]] = []
        if progress.pending is not None:
            # A stuck final reply (after_model), or a rung deferred earlier.
            pending, progress.pending = progress.pending, None
            verdict = Verdict(**pending["verdict"])
            loop = int(pending.get("loop", 0))
            start_rung = pending.get("rung")
            dropped = list(pending.get(DROPPED_FIELD, []))
        if not verdict.stuck:
            return _progress_update(self._name, progress, saved)
        help_ = yield from self._escalator.steps(
            Situation(
                verdict=verdict,
                messages=messages,
                times_fired=progress.fired,
                loop_messages=loop,
                thread_id=thread_id_of(config),
                can_interrupt=has_checkpointer(config),
                start_rung=start_rung,
                config=config,
                host_takes_over=True,
                dropped_usage=dropped,
            )
        )
        if help_.host_takeover:
            # wrap_model_call takes the first step; no message carries the dropped usage yet.
            progress.pending = {
                "verdict": verdict.to_dict(),
                "rung": _escalate_rung(self._escalator, start_rung, progress.fired),
                "takeover": True,
                DROPPED_FIELD: dropped,
            }
        progress.answered()
        added = _with_ids(help_.messages)
        if added:
            progress.last_id = added[-1].id
        update: dict[str, Any] = {
            "messages": [*help_.removals, *added],
            ESCALATIONS_KEY: [record.to_dict() for record in help_.records],
            PROGRESS_KEY: {self._name: progress.to_dict()},
        }
        if help_.stopped:
            update["jump_to"] = "end"
        return update

    # -- the model call: the strong model during a takeover ---------------------

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
        """Send the request to the strong model while a takeover lasts; else pass it on.

        With ``confidence``, outside a takeover, final replies and calls under
        review come back scored (``response_metadata["confidence"]``).

        Args:
            request: The model request (the agent's messages, system prompt, tools).
            handler: Calls the model (and any inner middleware).

        Returns:
            The model's response; during a takeover, the strong model's step
            carrying its record, with the takeover's progress as a state update.
        """

        def call(req: ModelRequest[Any]) -> Call[ModelResponse[Any]]:
            return Call(lambda: handler(req), _sync_only)

        return run_sync(_model_call(self._escalator, self._name, request, call, self._scoring))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
        """Async twin of ``wrap_model_call``."""

        def call(req: ModelRequest[Any]) -> Call[ModelResponse[Any]]:
            return Call(_async_only, lambda: handler(req))

        return await run_async(
            _model_call(self._escalator, self._name, request, call, self._scoring)
        )

    # -- after the model call: a final reply may be stuck too --------------------

    @hook_config(can_jump_to=["model"])
    def after_model(
        self, state: EscalationMiddlewareState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Check a final reply (low confidence, repeated replies) before the run ends on it.

        Args:
            state: The agent state.
            runtime: The LangGraph runtime (unused).

        Returns:
            ``None`` when the reply's tool calls may run (``before_model``
            reads it next). For a stuck final reply, or a low-confidence call
            to a tool under review: its removal, the pending verdict, and
            ``jump_to="model"`` so the ladder answers first. A healthy final
            reply loses its ``Confidence:`` line, if any.
        """
        del runtime
        messages = state["messages"]
        reply = messages[-1] if messages else None
        if not isinstance(reply, AIMessage):
            return None
        review = review_verdict(reply, self._review_tools, self._detector.low_confidence)
        if reply.tool_calls and not review.stuck:
            return None  # the call runs; before_model reads it next
        saved = _saved(state, self._name)
        if is_help_message(reply):
            # A takeover that could not start left a rung pending: run it before the end.
            return {"jump_to": "model"} if saved.get("pending") else None
        progress, start = load_progress(saved, messages, self._detector)
        verdict, _ = feed(progress, messages, start)
        verdict = with_low_source(verdict, reply)
        if reply.tool_calls and not verdict.stuck:
            verdict = review  # as in the node, a rule of the detector's own comes first
        if not verdict.stuck:
            update = _progress_update(self._name, progress, saved) or {}
            stripped = without_verbalized(reply)
            if stripped is not reply:
                update["messages"] = [stripped]
            return update or None
        return _send_back(self._name, progress, verdict, messages)

    async def aafter_model(
        self, state: EscalationMiddlewareState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async twin of ``after_model`` (it does no I/O)."""
        return self.after_model(state, runtime)


def _model_call(
    escalator: Escalator,
    name: str,
    request: ModelRequest[Any],
    call: Callable[[ModelRequest[Any]], Call[ModelResponse[Any]]],
    scoring: _Scoring | None = None,
) -> Steps[ModelResponse[Any] | ExtendedModelResponse[Any]]:
    """The agent's model call (scored when asked), or the strong model's during a takeover."""
    saved = _saved(request.state, name)
    pending = saved.get("pending") or {}
    starting = bool(pending.get("takeover"))
    going = None if starting else takeover_in_progress(request.messages)
    if not starting and going is None:
        if scoring is not None:
            return (yield from scoring.scored_call(request, call))
        response: ModelResponse[Any] = yield call(request)
        return response
    steps = escalator.policy.takeover_steps + 1
    step = 0 if going is None else going.step
    verdict = Verdict(**pending["verdict"]) if going is None else going.verdict
    responses: list[ModelResponse[Any]] = []
    strong_request = request.override(model=escalator.expert.chat_model())
    paid, record = yield from escalator.payer.pay(
        _kept(call(strong_request), responses),
        verdict=verdict,
        thread_id=thread_id_of_runtime(request.runtime),
        config=None,
        tokens_in=_request_tokens(request),
        mode="takeover",
        reason=f"{verdict.reason} Takeover step {step + 1} of {steps}.",
    )
    entry = {**saved, "pending": None} if starting else saved
    if paid.answer is None and starting:
        # The takeover could not start (budget refused, strong model failed): like any
        # rung that cannot run, the ladder moves down, from before_model's next run.
        result = ModelResponse(result=[_could_not_take_over(record)])
        entry["pending"] = {**pending, "rung": int(pending["rung"]) + 1, "takeover": False}
    elif paid.answer is None:
        # A later step could not run: the agent's own model takes back, as in the node.
        result = yield call(request)
    else:
        reply = stamp(paid.answer.message or AIMessage(paid.answer.text), record, [], fired=None)
        reply.additional_kwargs[TAKEOVER_KEY] = {"step": step, "steps": steps}
        if starting and pending.get(DROPPED_FIELD):
            reply.additional_kwargs[PRUNED_USAGE_KEY] = pending[DROPPED_FIELD]
        # The stamped reply replaces the raw one; a structured response is kept.
        strong = responses[-1]
        others = [m for m in strong.result if not isinstance(m, AIMessage)]
        result = ModelResponse(
            result=[reply, *others], structured_response=strong.structured_response
        )
    update: dict[str, Any] = {
        PROGRESS_KEY: {name: entry},
        ESCALATIONS_KEY: [record.to_dict()],
    }
    return ExtendedModelResponse(model_response=result, command=Command(update=update))


@dataclass(frozen=True)
class _Scoring:
    """The confidence sources around the agent's own model call."""

    scorer: ConfidenceScorer
    review_tools: frozenset[str]

    def scored_call(
        self,
        request: ModelRequest[Any],
        call: Callable[[ModelRequest[Any]], Call[ModelResponse[Any]]],
    ) -> Steps[ModelResponse[Any]]:
        """Call the model as the sources need; score a final reply or a call under review."""
        asked = self.asked(request)
        response: ModelResponse[Any] = yield call(asked)
        reply = _ai_reply(response)
        if reply is None or not self._scores(reply):
            return response
        again = call(asked)  # consistency's extra samples: the same request, again

        def sample() -> AIMessage:
            return _ai_reply(again.run()) or AIMessage("")

        async def asample() -> AIMessage:
            return _ai_reply(await again.arun()) or AIMessage("")

        state = request.state
        result: ConfidenceResult = yield Call(
            lambda: self.scorer.score(reply, state, resample=sample),
            lambda: self.scorer.ascore(reply, state, resample=asample),
        )
        scored = result.scored_reply()
        if result.samples:
            # The samples were paid for: the reply (or, if it is dropped, the help) carries them.
            usage = pruned_usage(_with_ids(list(result.samples)))
            scored.additional_kwargs = {**scored.additional_kwargs, PRUNED_USAGE_KEY: usage}
        messages = [scored if message is reply else message for message in response.result]
        return ModelResponse(result=messages, structured_response=response.structured_response)

    def asked(self, request: ModelRequest[Any]) -> ModelRequest[Any]:
        """The request with the verbalized instruction and the logprobs setting, when on."""
        sources = self.scorer.config.sources
        if "verbalized" in sources:
            own = [request.system_message] if request.system_message is not None else []
            system = self.scorer.prepare(own)[0]  # the agent's own prompt, then the instruction
            if isinstance(system, SystemMessage):
                request = request.override(system_message=system)
        if "logprobs" in sources:
            # Passed to the model's binding; providers without logprobs leave the source absent.
            request = request.override(model_settings={**request.model_settings, "logprobs": True})
        return request

    def _scores(self, reply: AIMessage) -> bool:
        """Final replies are scored, and calls to the tools under review."""
        return not reply.tool_calls or any(
            call["name"] in self.review_tools for call in reply.tool_calls
        )


def _scoring(confidence: ConfidenceConfig | None, names: Sequence[str]) -> _Scoring | None:
    """The confidence sources, and the tools under review (a list of names) they score."""
    if isinstance(names, str):
        msg = f"review_tools must be a list of tool names, got the string {names!r}"
        raise TypeError(msg)
    if names and confidence is None:
        msg = (
            f"review_tools={list(names)!r} needs confidence sources to score the calls: "
            'e.g. confidence=ConfidenceConfig(sources=["consistency"])'
        )
        raise ValueError(msg)
    if confidence is None:
        return None
    return _Scoring(ConfidenceScorer(confidence), frozenset(names))


def _ai_reply(response: ModelResponse[Any]) -> AIMessage | None:
    """The model's reply in a response (the first AIMessage), if any."""
    return next((m for m in response.result if isinstance(m, AIMessage)), None)


def _send_back(
    name: str, progress: Progress, verdict: Verdict, messages: list[Any]
) -> dict[str, Any]:
    """Remove the stuck reply, leave its verdict pending, and go back to the model."""
    # Like the node, the stuck reply leaves the conversation; the ladder answers instead.
    reply = messages[-1]
    loop = loop_span(progress, verdict, messages[:-1], dropped=1)
    # Its usage goes with the pending verdict, for the help that answers it to carry.
    progress.pending = {
        "verdict": verdict.to_dict(),
        "loop": loop,
        DROPPED_FIELD: pruned_usage([reply]),
    }
    progress.last_id = messages[-2].id if len(messages) > 1 else None
    return {
        "messages": [RemoveMessage(id=str(reply.id))],
        PROGRESS_KEY: {name: progress.to_dict()},
        "jump_to": "model",
    }


def _progress_update(
    name: str, progress: Progress, saved: Mapping[str, Any]
) -> dict[str, Any] | None:
    """This middleware's progress as a state update, or ``None`` when it did not change."""
    current = progress.to_dict()
    if current == dict(saved):
        return None
    return {PROGRESS_KEY: {name: current}}


def _saved(state: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The progress this middleware saved in the state."""
    return dict((state.get(PROGRESS_KEY) or {}).get(name) or {})


def _escalate_rung(escalator: Escalator, start_rung: int | None, fired: int) -> int:
    """Index of the ``escalate`` rung the ladder walk reached for this firing."""
    ladder = escalator.policy.ladder
    index = start_rung if start_rung is not None else escalator.policy.start_index(fired)
    while index < len(ladder) - 1 and ladder[index] != "escalate":
        index += 1
    return index


def _could_not_take_over(record: EscalationRecord) -> AIMessage:
    """The reply in place of a takeover that could not start; it carries the record why."""
    return AIMessage(
        f"(The strong model could not take over: {record.reason})",
        id=f"esc-{uuid.uuid4().hex}",
        additional_kwargs={RECORD_KEY: record.to_dict()},
    )


def _request_tokens(request: ModelRequest[Any]) -> int:
    system = request.system_message.text if request.system_message is not None else ""
    return estimate_tokens(system) + sum(estimate_tokens(str(m.text)) for m in request.messages)


def _kept(call: Call[ModelResponse[Any]], into: list[ModelResponse[Any]]) -> Call[ExpertAnswer]:
    """The host's model call as the engine pays for it; the whole response is kept."""

    def reply_of(response: ModelResponse[Any]) -> ExpertAnswer:
        into.append(response)
        reply = next((m for m in response.result if isinstance(m, AIMessage)), None)
        if reply is None:
            msg = "the strong model's call returned no AIMessage"
            raise ExpertError(msg)
        if not reply.tool_calls and not str(reply.text).strip():
            msg = "the strong model's step has neither text nor tool calls"
            raise ExpertError(msg, calls=(reply,))
        return ExpertAnswer(text=str(reply.text).strip(), message=reply, calls=(reply,))

    async def arun() -> ExpertAnswer:
        return reply_of(await call.arun())

    return Call(lambda: reply_of(call.run()), arun)


def _with_ids(messages: list[BaseMessage]) -> list[BaseMessage]:
    """Give added messages ids, so the next step can tell where this one stopped."""
    for message in messages:
        if message.id is None:
            message.id = f"esc-{uuid.uuid4().hex}"
    return messages


def _sync_only() -> Awaitable[Any]:
    msg = "this call runs only on the synchronous path"
    raise RuntimeError(msg)


def _async_only() -> Any:
    msg = "this call runs only on the asynchronous path"
    raise RuntimeError(msg)
