"""``EscalationMiddleware``: the escalation ladder for ``create_agent`` (docs/middleware.md)."""

from __future__ import annotations

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
from langchain_core.messages import AIMessage, RemoveMessage, SystemMessage
from langchain_core.messages.utils import count_tokens_approximately
from langgraph.config import get_config
from langgraph.types import Command
from typing_extensions import NotRequired

from langchain_escalate.confidence import (
    ConfidenceScorer,
    needs_score,
    review_verdict,
    reviewed_tools,
    with_ids,
    with_low_source,
    without_verbalized,
)
from langchain_escalate.cost import PRUNED_USAGE_KEY, pruned_usage
from langchain_escalate.detector import DetectorConfig, Verdict
from langchain_escalate.drive import Call, Steps, run_async, run_sync
from langchain_escalate.escalation import Escalator, Situation
from langchain_escalate.expert.briefing import is_help_message
from langchain_escalate.expert.expert import ExpertAnswer, answer_of
from langchain_escalate.merge import TAKEOVER_KEY, stamp
from langchain_escalate.progress import feed, load_progress, loop_span, takeover_in_progress
from langchain_escalate.records import ESCALATIONS_KEY, PROGRESS_KEY, add_records, merge_progress
from langchain_escalate.run_config import has_checkpointer, thread_id_of, thread_id_of_runtime

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from langchain_core.runnables import RunnableConfig
    from langgraph.runtime import Runtime

    from langchain_escalate.budget import Budget
    from langchain_escalate.confidence import ConfidenceConfig, ConfidenceResult
    from langchain_escalate.cost import ModelPrice
    from langchain_escalate.expert.expert import ExpertSpec
    from langchain_escalate.policy import EscalationPolicy
    from langchain_escalate.progress import Progress

    _Handler = Callable[[ModelRequest[Any]], Call[ModelResponse[Any]]]

DROPPED_FIELD = "dropped_usage"  # in a pending verdict or takeover: the stuck reply's usage
DEFAULT_NAME = "EscalationMiddleware"


class EscalationMiddlewareState(AgentState[Any]):
    """The records (``escalations``) and, private, each middleware's ``escalation_progress``."""

    escalations: NotRequired[Annotated[list[dict[str, Any]], add_records]]
    escalation_progress: NotRequired[Annotated[dict[str, Any], merge_progress, PrivateStateAttr]]


class EscalationMiddleware(AgentMiddleware[EscalationMiddlewareState, Any, Any]):
    """Escalate a stuck ``create_agent`` agent to a stronger model, a person, or a stop.

    When the stuck detector fires, the next rung of ``policy.ladder`` runs and its
    ``EscalationRecord`` goes to ``escalations``; a healthy run adds only bookkeeping.

    Args:
        strong: The expert: a model id (``"provider:model"`` or ``"provider/model"``, resolved
            at first use), a ``BaseChatModel``, or a compiled graph.
        detector: Thresholds of the stuck detector.
        policy: The ladder and the escalation mode.
        budget: Bounds the strong model's spending; unbounded by default.
        prices: USD per 1M tokens for models litellm's price map lacks.
        confidence: Sources scoring final replies and calls to ``review_tools``.
        review_tools: Tools whose calls are scored before they run.
        name: Its node names, progress entry and records' ``node``; distinct per instance.

    Raises:
        TypeError: ``strong`` is of no accepted kind, or ``review_tools`` a string.
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
        self._scorer = ConfidenceScorer(confidence) if confidence is not None else None
        self._review_tools = reviewed_tools(review_tools, confidence)
        self._escalator = Escalator(strong, node=name, policy=policy, budget=budget, prices=prices)

    @property
    def name(self) -> str:
        """The middleware's name."""
        return self._name

    @hook_config(can_jump_to=["end"])
    def before_model(
        self,
        state: EscalationMiddlewareState,
        runtime: Runtime[Any],
        # LangGraph injects the run config into a parameter annotated exactly so;
        # reading it from context instead fails in async code on Python 3.10.
        config: Optional[RunnableConfig] = None,  # noqa: UP045
    ) -> dict[str, Any] | None:
        """Feed the detector the new messages; when stuck, run the next rung of the ladder."""
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
        messages, saved = state["messages"], _saved(state, self._name)
        progress, start = load_progress(saved, messages, self._detector, name=self._name)
        verdict, loop = feed(progress, messages, start)
        pending, progress.pending = progress.pending or {}, None
        if pending:  # a stuck final reply (after_model), or a rung deferred earlier
            verdict, loop = Verdict(**pending["verdict"]), int(pending.get("loop", 0))
        if not verdict.stuck:
            return self._progress_update(progress, saved)
        policy, dropped = self._escalator.policy, list(pending.get(DROPPED_FIELD, []))
        first = pending.get("rung", policy.start_index(progress.fired))  # the walk starts there
        help_ = yield from self._escalator.steps(
            Situation(
                verdict=verdict,
                messages=messages,
                times_fired=progress.fired,
                loop_messages=loop,
                thread_id=thread_id_of(config),
                can_interrupt=has_checkpointer(config),
                start_rung=first,
                config=config,
                host_takes_over=True,
                dropped_usage=dropped,
            )
        )
        if help_.host_takeover:  # wrap_model_call takes the first step, carrying `dropped`
            rung = policy.ladder.index("escalate", first)  # where the walk stopped
            progress.pending = {"verdict": verdict.to_dict(), "rung": rung, "takeover": True}
            progress.pending[DROPPED_FIELD] = dropped
        progress.answered()
        if added := with_ids(help_.messages):
            progress.last_id = added[-1].id
        update: dict[str, Any] = {
            "messages": [*help_.removals, *help_.messages],
            ESCALATIONS_KEY: [record.to_dict() for record in help_.records],
            PROGRESS_KEY: {self._name: progress.to_dict()},
        }
        return {**update, "jump_to": "end"} if help_.stopped else update

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
        """The strong model's step during a takeover; else the model's reply, scored if asked."""
        return run_sync(self._model_call(request, lambda req: Call(lambda: handler(req), _never)))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
        """Async twin of ``wrap_model_call``."""
        return await run_async(
            self._model_call(request, lambda req: Call(_never, lambda: handler(req)))
        )

    def _model_call(
        self, request: ModelRequest[Any], call: _Handler
    ) -> Steps[ModelResponse[Any] | ExtendedModelResponse[Any]]:
        saved = _saved(request.state, self._name)
        if (saved.get("pending") or {}).get("takeover") or takeover_in_progress(request.messages):
            return (yield from self._take_over(request, call, saved))
        if self._scorer is None:
            response: ModelResponse[Any] = yield call(request)
            return response
        return (yield from _scored_call(self._scorer, self._review_tools, request, call))

    @hook_config(can_jump_to=["model"])
    def after_model(
        self, state: EscalationMiddlewareState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Send a stuck final reply (or a doubtful call under review) back to the ladder."""
        del runtime
        messages = state["messages"]
        if not messages or not isinstance(reply := messages[-1], AIMessage):
            return None
        review = review_verdict(reply, self._review_tools, self._detector.low_confidence)
        if reply.tool_calls and not review.stuck:
            return None  # the call runs; before_model reads it next
        saved = _saved(state, self._name)
        if is_help_message(reply):
            # A takeover that could not start left a rung pending: run it before the end.
            return {"jump_to": "model"} if saved.get("pending") else None
        progress, start = load_progress(saved, messages, self._detector, name=self._name)
        verdict = with_low_source(feed(progress, messages, start)[0], reply)
        if reply.tool_calls and not verdict.stuck:
            verdict = review  # as in the node, a rule of the detector's own comes first
        if verdict.stuck:  # remove the reply, leave its verdict (and usage) pending, ask again
            loop = loop_span(progress, verdict, messages[:-1], dropped=1)
            progress.pending = {"verdict": verdict.to_dict(), "loop": loop}
            progress.pending[DROPPED_FIELD] = pruned_usage([reply])
            progress.last_id = messages[-2].id if len(messages) > 1 else None
            return {
                "messages": [RemoveMessage(id=str(reply.id))],
                PROGRESS_KEY: {self._name: progress.to_dict()},
                "jump_to": "model",
            }
        update = self._progress_update(progress, saved) or {}
        if (stripped := without_verbalized(reply)) is not reply:
            update["messages"] = [stripped]
        return update or None

    async def aafter_model(
        self, state: EscalationMiddlewareState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async twin of ``after_model`` (it does no I/O)."""
        return self.after_model(state, runtime)

    def _take_over(
        self, request: ModelRequest[Any], call: _Handler, saved: dict[str, Any]
    ) -> Steps[ExtendedModelResponse[Any]]:
        """One takeover step: the agent's request, answered by the strong model under the budget."""
        pending = saved.get("pending") or {}
        going = None if pending.get("takeover") else takeover_in_progress(request.messages)
        steps, step = self._escalator.policy.takeover_steps + 1, 0 if going is None else going.step
        verdict = Verdict(**pending["verdict"]) if going is None else going.verdict
        responses: list[ModelResponse[Any]] = []

        def answer(response: ModelResponse[Any]) -> ExpertAnswer:
            responses.append(response)  # kept whole: its other messages and structured response
            return answer_of(_ai_reply(response), step=True)

        system = [request.system_message] if request.system_message is not None else []
        paid, record = yield from self._escalator.payer.pay(
            call(request.override(model=self._escalator.expert.chat_model())).then(answer),
            verdict=verdict,
            thread_id=thread_id_of_runtime(request.runtime),
            config=None,
            tokens_in=count_tokens_approximately([*system, *request.messages]),
            mode="takeover",
            reason=f"{verdict.reason} Takeover step {step + 1} of {steps}.",
        )
        entry = saved if going is not None else {**saved, "pending": None}
        if paid.answer is None and going is None:
            # It could not start (budget refused, strong model failed): like any rung that
            # cannot run, the ladder moves down, from before_model's next run.
            note = AIMessage(f"(The strong model could not take over: {record.reason})")
            result = ModelResponse(with_ids([stamp(note, record, (), fired=None)]))
            entry["pending"] = {**pending, "rung": int(pending["rung"]) + 1, "takeover": False}
        elif paid.answer is None:  # a later step could not run: the agent's model takes back
            result = yield call(request)
        else:
            reply = stamp(
                paid.answer.message or AIMessage(paid.answer.text), record, (), fired=None
            )
            reply.additional_kwargs[TAKEOVER_KEY] = {"step": step, "steps": steps}
            if going is None and pending.get(DROPPED_FIELD):
                reply.additional_kwargs[PRUNED_USAGE_KEY] = pending[DROPPED_FIELD]
            others = [m for m in responses[-1].result if not isinstance(m, AIMessage)]
            result = ModelResponse([reply, *others], responses[-1].structured_response)
        update = {PROGRESS_KEY: {self._name: entry}, ESCALATIONS_KEY: [record.to_dict()]}
        return ExtendedModelResponse(model_response=result, command=Command(update=update))

    def _progress_update(self, progress: Progress, saved: dict[str, Any]) -> dict[str, Any] | None:
        """This middleware's progress as a state update, or ``None`` when it did not change."""
        current = progress.to_dict()
        return None if current == saved else {PROGRESS_KEY: {self._name: current}}


def _scored_call(
    scorer: ConfidenceScorer, reviewed: frozenset[str], request: ModelRequest[Any], call: _Handler
) -> Steps[ModelResponse[Any]]:
    """Ask the model as the sources need; score a final reply or a call under review."""
    sources = scorer.config.sources
    if "verbalized" in sources:  # the agent's own prompt, then the instruction
        own = [request.system_message] if request.system_message is not None else []
        if isinstance(system := scorer.prepare(own)[0], SystemMessage):
            request = request.override(system_message=system)
    if "logprobs" in sources:  # providers without logprobs leave the source absent
        request = request.override(model_settings={**request.model_settings, "logprobs": True})
    response: ModelResponse[Any] = yield call(request)
    reply = _ai_reply(response)
    if reply is None or not needs_score(reply, reviewed):
        return response
    # consistency's extra samples: the same request, again
    sample = call(request).then(lambda again: _ai_reply(again) or AIMessage(""))
    result: ConfidenceResult = yield Call(
        lambda: scorer.score(reply, request.state, resample=sample.run),
        lambda: scorer.ascore(reply, request.state, resample=sample.arun),
    )
    kept = result.kept_reply()  # if it is dropped, the help carries the samples' usage
    messages = [kept if message is reply else message for message in response.result]
    return ModelResponse(result=messages, structured_response=response.structured_response)


def _saved(state: Mapping[str, Any], name: str) -> dict[str, Any]:
    return dict((state.get(PROGRESS_KEY) or {}).get(name) or {})


def _ai_reply(response: ModelResponse[Any]) -> AIMessage | None:
    return next((m for m in response.result if isinstance(m, AIMessage)), None)


def _never() -> Any:
    msg = "this call runs only on the other (sync or async) path"
    raise RuntimeError(msg)
