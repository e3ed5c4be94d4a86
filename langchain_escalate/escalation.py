"""The escalation ladder: one implementation for the node, the tool and the middleware.

When the detector fires, an adapter describes the situation (``Situation``) and
asks an ``Escalator`` for help. The escalator picks the rung for this firing
(``EscalationPolicy.rung``), moves down the ladder when a rung cannot run (the
budget refused, the expert failed, no checkpointer for ``human``), calls the
expert under the budget (reserve an estimate, call, settle the actual cost or
release on failure), and returns ``Help``: the messages to merge back (each
carrying its ``EscalationRecord``), the messages to prune, and every record
made. Each record is also emitted as a custom stream event and logged.

Sync and async share one implementation: the logic is a generator that yields
``Call`` objects for its I/O (budget, expert), and ``run_sync`` / ``run_async``
perform them. Adapters that have I/O of their own (the node's weak-model call)
write their logic the same way and ``yield from escalator.steps(...)``.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
)
from langchain_core.runnables.config import merge_configs
from langgraph.errors import GraphBubbleUp
from langgraph.types import interrupt

from langchain_escalate.cost import (
    PRUNED_USAGE_KEY,
    ModelPrice,
    PriceBook,
    cache_read_tokens_of,
    cache_write_tokens_of,
    pruned_usage,
    usage_of,
)
from langchain_escalate.detector.verdict import Verdict
from langchain_escalate.drive import Call, Steps, run_async, run_sync
from langchain_escalate.expert.briefing import (
    build_briefing,
    estimate_tokens,
    truncate_middle,
)
from langchain_escalate.expert.expert import Expert, ExpertAnswer, ExpertError, ExpertSpec
from langchain_escalate.merge import (
    ATTEMPTS_KEY,
    LADDER_KEY,
    STREAM_KEY,
    TAKEOVER_KEY,
    emit_record,
    nudge_text,
    prune_loop,
    record_of,
    records_of,
    stamp,
    trailing_span,
)
from langchain_escalate.policy import EscalationPolicy, Rung
from langchain_escalate.records import Action, EscalationRecord, Outcome

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.runnables import RunnableConfig
    from langchain_core.tools import BaseTool

    from langchain_escalate.budget import Budget, Reservation

logger = logging.getLogger("langchain_escalate")

__all__ = [
    "ADVICE_HEADER",
    "ATTEMPTS_KEY",
    "HUMAN_HEADER",
    "LADDER_KEY",
    "STREAM_KEY",
    "TAKEOVER_KEY",
    "Answer",
    "Call",
    "EscalationStopped",
    "Escalator",
    "Help",
    "Situation",
    "Steps",
    "TakeoverSituation",
    "emit_record",
    "nudge_text",
    "prune_loop",
    "record_of",
    "records_of",
    "run_async",
    "run_sync",
    "trailing_span",
]

ADVICE_HEADER = "Advice from a senior reviewer:"
"""First line of the message that merges the strong model's guidance back (``advise``)."""

HUMAN_HEADER = "A person reviewing this task says:"
"""First line of the message that merges a person's guidance back (``human``)."""

EXPECTED_ANSWER_TOKENS = 500
"""Output tokens assumed when estimating an escalation's cost for the budget."""

_PROMPT_OVERHEAD_TOKENS = 150  # the expert's system prompt and message framing


class EscalationStopped(RuntimeError):  # noqa: N818 - public name fixed by DESIGN.md
    """The ladder reached ``stop`` and the policy says to raise.

    Attributes:
        record: The ``EscalationRecord`` of the stop.
    """

    def __init__(self, record: EscalationRecord) -> None:
        """Keep the record and say which node stopped and why."""
        super().__init__(f"node {record.node!r} stopped the turn: {record.reason}")
        self.record = record


@dataclass(frozen=True)
class Situation:
    """What an adapter knows when the detector fired.

    Attributes:
        verdict: The detector's verdict (``stuck`` is true).
        messages: The conversation as the host holds it (graph state); the
            briefing is built from it and the loop is pruned from it.
        times_fired: Firings already answered in this turn (the ladder
            position): the ``n``-th firing uses ``policy.rung(n)``.
        loop_messages: How many trailing messages of ``messages`` are the loop
            (see ``trailing_span``); pruned after help arrives. 0: none.
        thread_id: The thread, for the budget and the record.
        can_interrupt: Whether ``interrupt()`` can run (a checkpointer is set).
        model_called: A model was already called in this host step; the
            ``human`` rung is then deferred (``Help.deferred_rung``) so that a
            resume, which replays the step, does not pay for it again.
        start_rung: Ladder index to start from instead of ``times_fired``
            (to run a deferred ``human`` rung).
        config: The host's run config; the expert call inherits it, tagged.
        host_takes_over: In ``takeover`` mode, the host runs the strong model
            itself (the middleware's ``request.override``): the ladder returns
            ``Help(host_takeover=True)`` without calling it, and the host pays
            through ``Escalator.paid_steps``.
        dropped_usage: Usage entries (``cost.pruned_usage``) of replies the
            host dropped without keeping them in state (a stuck reply). The
            first message the help adds carries them, with those of the pruned
            loop, so a run summary of the final state still counts them.
    """

    verdict: Verdict
    messages: Sequence[BaseMessage]
    times_fired: int = 0
    loop_messages: int = 0
    thread_id: str | None = None
    can_interrupt: bool = False
    model_called: bool = False
    start_rung: int | None = None
    config: RunnableConfig | None = None
    host_takes_over: bool = False
    dropped_usage: Sequence[Mapping[str, Any]] = ()


@dataclass
class Help:
    """What the ladder did, and what to merge back into the conversation.

    Attributes:
        rung: The rung that ran (``None`` when deferred).
        records: Every record made for this firing, in order (rungs that could
            not run first).
        messages: Messages to append after ``removals``, each carrying its
            record under ``additional_kwargs[RECORD_KEY]``.
        removals: ``RemoveMessage`` for the pruned loop.
        guidance: Text for the weak model, which should act again (``nudge``,
            ``advise``, ``human``); ``None`` otherwise.
        takeover: The strong model's step in ``takeover`` (also in ``messages``).
        stopped: The turn is over (``stop``).
        deferred_rung: Ladder index of a ``human`` rung the host must run at
            the start of a fresh step (a model was called in this one).
        briefing: The briefing built for this firing, if any.
        host_takeover: The host must start the takeover itself
            (``Situation.host_takes_over``); nothing was paid yet.
    """

    rung: Rung | None
    records: list[EscalationRecord] = field(default_factory=list)
    messages: list[BaseMessage] = field(default_factory=list)
    removals: list[RemoveMessage] = field(default_factory=list)
    guidance: str | None = None
    takeover: AIMessage | None = None
    stopped: bool = False
    deferred_rung: int | None = None
    briefing: str | None = None
    host_takeover: bool = False

    @property
    def updates(self) -> list[BaseMessage]:
        """``removals`` then ``messages``: the ``messages`` update for ``add_messages``."""
        return [*self.removals, *self.messages]


@dataclass(frozen=True)
class Answer:
    """The expert's answer to a question the weak model asked (the ask-expert tool).

    Attributes:
        text: The answer; ``None`` when the budget refused or the expert failed.
        record: The record (``outcome`` ``answered``, ``over_budget`` or
            ``expert_failed``).
        refusal: Why there is no answer, in words a model can read.
        briefing: The briefing the expert read.
    """

    text: str | None
    record: EscalationRecord
    refusal: str | None
    briefing: str


@dataclass(frozen=True)
class TakeoverSituation:
    """A takeover in progress: the strong model takes one more step.

    Attributes:
        briefing: The briefing the takeover started with.
        steps_so_far: The messages since the takeover began (its steps and
            their tool results).
        step: This step's number (1 = the first after the one that began it).
        verdict: The verdict that started the takeover.
        thread_id: The thread, for the budget and the record.
        config: The host's run config.
    """

    briefing: str
    steps_so_far: Sequence[BaseMessage]
    step: int
    verdict: Verdict
    thread_id: str | None = None
    config: RunnableConfig | None = None


class Escalator:
    """Answers stuck verdicts by walking the ladder; shared by node, tool and middleware.

    Args:
        strong: The expert: a litellm id, a ``BaseChatModel``, a ``ModelRef``,
            a compiled graph, or an ``Expert``.
        node: Name used in records, stream events, logs and warnings.
        policy: The ladder and modes; ``EscalationPolicy()`` by default.
        budget: Bounds the strong model; ``None`` means unbounded.
        prices: Prices for models litellm lacks (USD per 1M tokens), or a
            ready ``PriceBook``.
        tools: Tools the strong model is bound to in ``takeover``.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> from langchain_escalate.detector.verdict import Verdict
        >>> from langchain_escalate.testing import ScriptedChatModel
        >>> escalator = Escalator(ScriptedChatModel(script=["unused"]), node="agent")
        >>> verdict = Verdict(stuck=True, rule="monologue", reason="Same reply 3 times.")
        >>> help = escalator.respond(Situation(verdict=verdict, messages=[HumanMessage("hi")]))
        >>> help.rung, help.records[0].outcome
        ('nudge', 'nudged')
    """

    def __init__(
        self,
        strong: ExpertSpec | Expert,
        *,
        node: str,
        policy: EscalationPolicy | None = None,
        budget: Budget | None = None,
        prices: PriceBook | Mapping[str, ModelPrice | dict[str, Any]] | None = None,
        tools: Sequence[BaseTool | Any] | None = None,
    ) -> None:
        """Configure the ladder for one node (or tool, or middleware) named ``node``."""
        if isinstance(strong, Expert) and tools is None:
            self.expert = strong
        else:
            self.expert = Expert(strong, tools=tools)
        self.node = node
        self.policy = policy or EscalationPolicy()
        self.budget = budget
        self.prices = prices if isinstance(prices, PriceBook) else PriceBook(prices)

    @property
    def mode(self) -> str:
        """The mode in effect: ``graph`` for a compiled-graph expert, else the policy's."""
        return "graph" if self.expert.kind == "graph" else self.policy.mode

    def respond(self, situation: Situation) -> Help:
        """Walk the ladder for one firing (sync).

        Args:
            situation: What the adapter knows.

        Returns:
            What was done and what to merge back.

        Raises:
            EscalationStopped: The ladder reached ``stop`` with
                ``stop_behavior="raise"``.
            GraphInterrupt: The ``human`` rung interrupted the graph.
        """
        return run_sync(self.steps(situation))

    async def arespond(self, situation: Situation) -> Help:
        """Async twin of ``respond``."""
        return await run_async(self.steps(situation))

    def take_over_step(self, situation: TakeoverSituation) -> Help:
        """Let the strong model take one more step of a takeover (sync).

        Args:
            situation: The takeover in progress.

        Returns:
            ``Help`` with ``takeover`` set, or with ``rung=None`` when the
            budget refused or the expert failed: the weak model takes back.
        """
        return run_sync(self.takeover_steps(situation))

    async def atake_over_step(self, situation: TakeoverSituation) -> Help:
        """Async twin of ``take_over_step``."""
        return await run_async(self.takeover_steps(situation))

    def ask(
        self,
        question: str,
        messages: Sequence[BaseMessage] = (),
        *,
        context: str | None = None,
        thread_id: str | None = None,
        config: RunnableConfig | None = None,
        max_tokens: int | None = None,
    ) -> Answer:
        """Ask the expert one question under the budget, briefed on ``messages`` (no ladder).

        Args:
            question: What the weak model asks.
            messages: The conversation (without the tool call asking); may be empty.
            context: Extra context the weak model gave.
            thread_id: The thread, for the budget and the record.
            config: Run config (tagged for traces).
            max_tokens: Bound on the briefing; ``policy.briefing_max_tokens`` by default.

        Returns:
            The answer, or why there is none. The record is emitted and logged.
        """
        return run_sync(
            self.ask_steps(
                question, messages, context=context, thread_id=thread_id, config=config,
                max_tokens=max_tokens,
            )
        )  # fmt: skip

    async def aask(
        self,
        question: str,
        messages: Sequence[BaseMessage] = (),
        *,
        context: str | None = None,
        thread_id: str | None = None,
        config: RunnableConfig | None = None,
        max_tokens: int | None = None,
    ) -> Answer:
        """Async twin of ``ask``."""
        return await run_async(
            self.ask_steps(
                question, messages, context=context, thread_id=thread_id, config=config,
                max_tokens=max_tokens,
            )
        )  # fmt: skip

    def paid_steps(
        self,
        call: Call[AIMessage],
        *,
        verdict: Verdict,
        thread_id: str | None,
        estimate_tokens_in: int,
        reason: str | None = None,
        mode: str = "takeover",
    ) -> Steps[tuple[AIMessage | None, list[EscalationRecord]]]:
        """Run a strong-model call the host makes itself, under the budget, with its record.

        For the middleware's takeover, where the host's handler calls the
        strong model: reserve an estimate, run ``call``, settle the actual cost
        (or release on failure), and record it.

        Args:
            call: The host's call, returning the strong model's ``AIMessage``.
            verdict: The verdict being answered.
            thread_id: The thread, for the budget and the record.
            estimate_tokens_in: Prompt size for the estimate.
            reason: The record's reason; the verdict's by default.
            mode: The record's mode.

        Returns:
            A generator that returns the reply stamped with its record (``None``
            when refused or failed) and every record made.
        """
        return self._host_call(
            call, verdict=verdict, thread_id=thread_id, estimate_tokens_in=estimate_tokens_in,
            reason=reason, mode=mode,
        )  # fmt: skip

    def expert_model(self) -> BaseChatModel:
        """The strong chat model, resolved (for a host that calls it itself).

        Raises:
            ExpertError: The expert is a compiled graph.
        """
        return self.expert.chat_model()

    def briefing_for(self, situation: Situation) -> str:
        """Build the bounded briefing for ``situation`` (``policy.briefing_max_tokens``)."""
        return build_briefing(
            situation.messages,
            verdict=situation.verdict,
            max_tokens=self.policy.briefing_max_tokens,
        )

    def steps(self, situation: Situation) -> Steps[Help]:
        """The ladder logic as a generator of ``Call`` (for adapters with I/O of their own).

        Args:
            situation: What the adapter knows.

        Returns:
            A generator to drive with ``run_sync``/``run_async`` or ``yield from``.
        """
        return self._walk(situation)

    def takeover_steps(self, situation: TakeoverSituation) -> Steps[Help]:
        """The takeover-continuation logic as a generator of ``Call``."""
        return self._continue_takeover(situation)

    # -- the ladder ---------------------------------------------------------

    def _walk(self, situation: Situation) -> Steps[Help]:
        ladder = self.policy.ladder
        index = situation.start_rung
        if index is None:
            index = min(situation.times_fired, len(ladder) - 1)
        records: list[EscalationRecord] = []
        model_called = situation.model_called
        briefing: str | None = None
        while True:
            rung: Rung = ladder[index] if index < len(ladder) else "stop"
            if rung == "nudge":
                record = self._record(situation, "nudge", "nudged")
                text = nudge_text(situation.verdict, situation.messages)
                return self._guidance_help(situation, rung, records, record, text, prune=False)
            if rung == "escalate":
                briefing = briefing or self.briefing_for(situation)
                outcome = yield from self._escalate(situation, briefing, records)
                if isinstance(outcome, Help):
                    return outcome
                model_called = model_called or outcome
                index += 1
                continue
            if rung == "human":
                if not situation.can_interrupt:
                    self._skip_human(situation, records)
                    index = len(ladder)  # straight to stop, as DESIGN.md says
                    continue
                if model_called:
                    return Help(rung=None, records=records, deferred_rung=index, briefing=briefing)
                briefing = briefing or self.briefing_for(situation)
                return self._ask_human(situation, briefing, records)
            return self._stop(situation, records)

    def _escalate(
        self, situation: Situation, briefing: str, records: list[EscalationRecord]
    ) -> Generator[Call[Any], Any, Help | bool]:
        """Call the expert under the budget; a ``Help``, or whether a model was called."""
        takeover = self.mode == "takeover"
        if takeover and situation.host_takes_over:
            return Help(rung="escalate", records=records, briefing=briefing, host_takeover=True)
        expert = self.expert
        call = (
            expert.takeover_call([HumanMessage(briefing)])
            if takeover
            else expert.advice_call(briefing)
        )
        answer, record = yield from self._paid_call(
            call,
            verdict=situation.verdict,
            thread_id=situation.thread_id,
            config=situation.config,
            estimate_tokens_in=estimate_tokens(briefing),
            records=records,
            mode="takeover" if takeover else self.mode,
        )
        if answer is None or record is None:
            return record is not None  # a failed call may still have been paid
        if not takeover:
            text = f"{ADVICE_HEADER}\n{answer.text}"
            return self._guidance_help(
                situation, "escalate", records, record, text, prune=True, briefing=briefing
            )
        fired = situation.times_fired + 1
        step = stamp(answer.message or AIMessage(answer.text), record, records, fired=fired)
        step.additional_kwargs[TAKEOVER_KEY] = {
            "step": 0,
            "steps": self.policy.takeover_steps + 1,
            "briefing": briefing,
        }
        removals, summary, carried = self._prune(situation)
        messages: list[BaseMessage] = []
        if summary:
            note = HumanMessage(summary, additional_kwargs=carried)
            messages.append(stamp(note, record, [], fired=fired))
        else:
            step.additional_kwargs.update(carried)
        messages.append(step)
        help_ = Help(
            rung="escalate",
            records=[*records, record],
            messages=messages,
            removals=removals,
            takeover=step,
            briefing=briefing,
        )
        _emit_all(help_.records)
        return help_

    def _continue_takeover(self, situation: TakeoverSituation) -> Steps[Help]:
        records: list[EscalationRecord] = []
        reading = [HumanMessage(situation.briefing), *situation.steps_so_far]
        answer, record = yield from self._paid_call(
            self.expert.takeover_call(reading),
            verdict=situation.verdict,
            thread_id=situation.thread_id,
            config=situation.config,
            estimate_tokens_in=sum(estimate_tokens(str(m.text)) for m in reading),
            records=records,
            mode="takeover",
            reason=f"takeover step {situation.step + 1} of {self.policy.takeover_steps + 1}",
        )
        if answer is None or record is None:
            return Help(rung=None, records=records)
        step = stamp(answer.message or AIMessage(answer.text), record, [], fired=None)
        step.additional_kwargs[TAKEOVER_KEY] = {
            "step": situation.step,
            "steps": self.policy.takeover_steps + 1,
        }
        emit_record(record)
        return Help(rung="escalate", records=[record], messages=[step], takeover=step)

    def ask_steps(
        self,
        question: str,
        messages: Sequence[BaseMessage] = (),
        *,
        context: str | None = None,
        thread_id: str | None = None,
        config: RunnableConfig | None = None,
        max_tokens: int | None = None,
    ) -> Steps[Answer]:
        """``ask`` as a generator of ``Call`` (for adapters with I/O of their own)."""
        briefing = build_briefing(
            messages,
            question=question,
            context=context,
            max_tokens=max_tokens or self.policy.briefing_max_tokens,
        )
        records: list[EscalationRecord] = []
        asked = Verdict(rule=None, reason=f"the model asked: {truncate_middle(question, 200)}")
        causes: list[str] = []
        answer, record = yield from self._paid_call(
            self.expert.advice_call(briefing),
            causes=causes,
            verdict=asked,
            thread_id=thread_id,
            config=config,
            estimate_tokens_in=estimate_tokens(briefing),
            records=records,
            mode=self.mode if self.mode == "graph" else "advise",
            outcome="answered",
        )
        if answer is None or record is None:
            refused = records[-1]
            cause = causes[-1] if causes else refused.reason
            return Answer(text=None, record=refused, refusal=cause, briefing=briefing)
        emit_record(record)
        return Answer(text=answer.text, record=record, refusal=None, briefing=briefing)

    def _host_call(
        self,
        call: Call[AIMessage],
        *,
        verdict: Verdict,
        thread_id: str | None,
        estimate_tokens_in: int,
        reason: str | None,
        mode: str,
    ) -> Steps[tuple[AIMessage | None, list[EscalationRecord]]]:
        records: list[EscalationRecord] = []

        def wrapped(config: RunnableConfig) -> Call[ExpertAnswer]:
            del config  # the host's call carries its own config

            async def arun() -> ExpertAnswer:
                return _host_answer(await call.arun())

            return Call(lambda: _host_answer(call.run()), arun)

        answer, record = yield from self._paid_call(
            wrapped,
            verdict=verdict,
            thread_id=thread_id,
            config=None,
            estimate_tokens_in=estimate_tokens_in,
            records=records,
            mode=mode,
            reason=reason,
        )
        if answer is None or record is None or answer.message is None:
            return None, records
        emit_record(record)
        return stamp(answer.message, record, [], fired=None), [*records, record]

    def _paid_call(
        self,
        call: Callable[[RunnableConfig], Call[ExpertAnswer]],
        *,
        verdict: Verdict,
        thread_id: str | None,
        config: RunnableConfig | None,
        estimate_tokens_in: int,
        records: list[EscalationRecord],
        mode: str,
        reason: str | None = None,
        outcome: Outcome | None = None,
        causes: list[str] | None = None,
    ) -> Generator[Call[Any], Any, tuple[ExpertAnswer | None, EscalationRecord | None]]:
        """Reserve, call the expert, settle or release.

        Returns ``(answer, record)`` on success, ``(None, None)`` when the
        budget refused, ``(None, failed_record)`` when the expert failed; the
        records of a refusal or a failure are appended to ``records``, and its
        bare cause (for a model to read) to ``causes``.
        """
        why = reason or verdict.reason
        reservation: Reservation | None = None
        if self.budget is not None:
            reservation = yield self._reserve(thread_id, self._estimate(estimate_tokens_in))
            if reservation is not None and not reservation.granted:
                refused = self._new_record(
                    verdict, thread_id, "escalate", "over_budget", mode=mode,
                    reason=f"{why} Budget refused: {reservation.reason}",
                )  # fmt: skip
                records.append(refused)
                if causes is not None:
                    causes.append(reservation.reason)
                return None, None
        started = time.perf_counter()
        try:
            answer: ExpertAnswer = yield call(self._expert_config(config, verdict, mode))
        except GraphBubbleUp:
            # An interrupt inside the expert graph: the step will be replayed on
            # resume, and must find the money it set aside free again.
            if reservation is not None:
                yield Call(reservation.release, reservation.arelease)
            raise
        except Exception as error:  # noqa: BLE001 - any expert failure moves down the ladder
            latency = time.perf_counter() - started
            if reservation is not None:
                yield Call(reservation.release, reservation.arelease)
            if causes is not None:
                causes.append(f"the expert failed: {type(error).__name__}: {error}")
            logger.warning("node %r: expert %r failed: %s", self.node, self.expert.name, error)
            failed = self._new_record(
                verdict, thread_id, "escalate", "expert_failed", mode=mode,
                reason=f"{why} Expert failed: {type(error).__name__}: {error}", latency_s=latency,
                model=self.expert.name,
            )  # fmt: skip
            records.append(failed)
            return None, failed
        latency = time.perf_counter() - started
        tokens_in, tokens_out, cost = self._usage(answer)
        if reservation is not None:
            granted = reservation
            yield Call(lambda: granted.settle(cost), lambda: granted.asettle(cost))
        done: Outcome = outcome or ("took_over" if mode == "takeover" else "advised")
        record = self._new_record(
            verdict, thread_id, "escalate", done, mode=mode, reason=why, latency_s=latency,
            model=self.expert.name, tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost,
        )  # fmt: skip
        return answer, record

    def _reserve(self, thread_id: str | None, estimate: float | None) -> Call[Reservation]:
        budget = self.budget
        if budget is None:  # pragma: no cover - callers check
            msg = "no budget configured"
            raise RuntimeError(msg)
        thread = thread_id or "default"
        return Call(
            lambda: budget.reserve(thread, estimate_usd=estimate),
            lambda: budget.areserve(thread, estimate_usd=estimate),
        )

    def _ask_human(
        self, situation: Situation, briefing: str, records: list[EscalationRecord]
    ) -> Help:
        verdict = situation.verdict
        payload = {
            "node": self.node,
            "rule": verdict.rule,
            "reason": verdict.reason,
            "evidence": list(verdict.evidence),
            "briefing": briefing,
        }
        answer = interrupt(payload)
        guidance = _guidance_from(answer, self.node)
        record = self._record(situation, "human", "human")
        text = f"{HUMAN_HEADER}\n{guidance}"
        return self._guidance_help(
            situation, "human", records, record, text, prune=True, briefing=briefing
        )

    def _skip_human(self, situation: Situation, records: list[EscalationRecord]) -> None:
        message = (
            f"node {self.node!r}: the 'human' rung needs a checkpointer (compile the graph with "
            "checkpointer=...); skipping to 'stop'"
        )
        logger.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=4)
        records.append(
            self._record(
                situation, "human", "skipped", reason=f"{situation.verdict.reason} No checkpointer."
            )
        )

    def _stop(self, situation: Situation, records: list[EscalationRecord]) -> Help:
        record = self._record(situation, "stop", "stopped")
        if self.policy.stop_behavior == "raise":
            emit_record(record)  # the rungs before it were reported as they failed
            raise EscalationStopped(record)
        text = f"I stopped working on this task because I was stuck: {situation.verdict.reason}"
        _, _, carried = self._prune(situation, loop=False)
        message = stamp(
            AIMessage(text, additional_kwargs=carried),
            record,
            records,
            fired=situation.times_fired + 1,
        )
        help_ = Help(rung="stop", records=[*records, record], messages=[message], stopped=True)
        _emit_all(help_.records)
        return help_

    def _guidance_help(
        self,
        situation: Situation,
        rung: Rung,
        records: list[EscalationRecord],
        record: EscalationRecord,
        text: str,
        *,
        prune: bool,
        briefing: str | None = None,
    ) -> Help:
        removals, summary, carried = self._prune(situation, loop=prune)
        content = f"{summary}\n\n{text}" if summary else text
        message = stamp(
            HumanMessage(content, additional_kwargs=carried),
            record,
            records,
            fired=situation.times_fired + 1,
        )
        help_ = Help(
            rung=rung,
            records=[*records, record],
            messages=[message],
            removals=removals,
            guidance=text,
            briefing=briefing,
        )
        _emit_all(help_.records)
        return help_

    def _prune(
        self, situation: Situation, *, loop: bool = True
    ) -> tuple[list[RemoveMessage], str, dict[str, Any]]:
        """The removals, the summary line, and the ``additional_kwargs`` of the first message added.

        ``loop=False`` prunes nothing (a nudge, a stop), but the usage of the
        replies the host dropped is carried all the same.
        """
        removals: list[RemoveMessage] = []
        summary = ""
        if loop and self.policy.prune_loop and situation.loop_messages > 0:
            removals, summary = prune_loop(situation.messages, situation.loop_messages)
        # What the removed and dropped replies cost stays in state, on the first
        # message the help adds, so a run summary of the final state counts them.
        removed = {removal.id for removal in removals}
        usage = {
            str(entry["id"]): dict(entry)
            for entry in [
                *pruned_usage(m for m in situation.messages if m.id in removed),
                *situation.dropped_usage,
            ]
        }
        return removals, summary, {PRUNED_USAGE_KEY: list(usage.values())} if usage else {}

    # -- records, cost ------------------------------------------------------

    def _record(
        self, situation: Situation, action: Action, outcome: Outcome, *, reason: str | None = None
    ) -> EscalationRecord:
        return self._new_record(
            situation.verdict, situation.thread_id, action, outcome, reason=reason
        )

    def _new_record(
        self,
        verdict: Verdict,
        thread_id: str | None,
        action: Action,
        outcome: Outcome,
        *,
        reason: str | None = None,
        mode: str | None = None,
        model: str | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost_usd: float | None = None,
        latency_s: float = 0.0,
    ) -> EscalationRecord:
        if action in ("nudge", "stop"):
            cost_usd = 0.0  # free: no model was called
        record = EscalationRecord(
            node=self.node,
            action=action,
            rule=verdict.rule,
            reason=reason or verdict.reason,
            mode=mode,
            model=model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost_usd,
            latency_s=round(latency_s, 6),
            outcome=outcome,
            thread_id=thread_id,
        )
        if outcome in ("over_budget", "expert_failed", "skipped"):
            emit_record(record)  # the rungs that could not run are reported as they happen
        return record

    def _estimate(self, tokens_in: int) -> float | None:
        """The call's likely cost; ``None`` lets the budget use its default estimate."""
        if self.expert.kind == "graph":
            return None  # the models inside a user's graph are unknown
        prompt = tokens_in + _PROMPT_OVERHEAD_TOKENS
        return self.prices.cost_usd(self.expert.name, prompt, EXPECTED_ANSWER_TOKENS)

    def _usage(self, answer: ExpertAnswer) -> tuple[int, int, float | None]:
        tokens_in = tokens_out = 0
        cost: float | None = 0.0
        for call in answer.calls:
            call_in, call_out = usage_of(call)
            tokens_in += call_in
            tokens_out += call_out
            model = self.expert.name
            if self.expert.kind == "graph":
                model = str(call.response_metadata.get("model_name") or self.expert.name)
            call_cost = self.prices.cost_usd(
                model,
                call_in,
                call_out,
                cache_read_tokens=cache_read_tokens_of(call),
                cache_write_tokens=cache_write_tokens_of(call),
            )
            cost = None if cost is None or call_cost is None else cost + call_cost
        return tokens_in, tokens_out, cost

    def _expert_config(
        self, config: RunnableConfig | None, verdict: Verdict, mode: str
    ) -> RunnableConfig:
        return merge_configs(
            config,
            {
                "tags": ["escalation"],
                "metadata": {
                    "escalation_node": self.node,
                    "escalation_rule": verdict.rule,
                    "escalation_mode": mode,
                },
                "run_name": f"escalation:{self.node}",
            },
        )


def _host_answer(reply: Any) -> ExpertAnswer:
    # A host may hand back a ModelResponse-like object with ``.result``.
    messages = getattr(reply, "result", None)
    if isinstance(messages, list):
        reply = next((m for m in reversed(messages) if isinstance(m, AIMessage)), reply)
    if not isinstance(reply, AIMessage):
        msg = f"the strong model's call returned {type(reply).__name__}, not an AIMessage"
        raise ExpertError(msg)
    if not reply.tool_calls and not str(reply.text).strip():
        msg = "the strong model's step has neither text nor tool calls"
        raise ExpertError(msg)
    return ExpertAnswer(text=str(reply.text).strip(), message=reply, calls=(reply,))


def _guidance_from(answer: Any, node: str) -> str:
    if isinstance(answer, Mapping):
        answer = answer.get("guidance")
    if not isinstance(answer, str) or not answer.strip():
        msg = (
            f"node {node!r}: resume the 'human' interrupt with guidance text, e.g. "
            "Command(resume='try the v2 endpoint') or Command(resume={'guidance': '...'}); "
            f"got {answer!r}"
        )
        raise ValueError(msg)
    return answer.strip()


def _emit_all(records: Sequence[EscalationRecord]) -> None:
    for record in records:
        if record.outcome not in ("over_budget", "expert_failed", "skipped"):
            emit_record(record)
