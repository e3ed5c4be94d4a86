"""The escalation ladder, shared by the node, the tool and the middleware.

An adapter describes the firing (``Situation``); ``Escalator`` walks the ladder, pays for the
strong model through ``Payer`` and returns ``Help``: records, messages to merge and to prune.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, RemoveMessage
from langgraph.types import interrupt

from langchain_escalate.cost import PriceBook
from langchain_escalate.detector.steps import short_hash
from langchain_escalate.detector.verdict import Verdict
from langchain_escalate.drive import Steps, run_async, run_sync
from langchain_escalate.expert.briefing import build_briefing, estimate_tokens, truncate_middle
from langchain_escalate.expert.expert import Expert, ExpertSpec
from langchain_escalate.merge import TAKEOVER_KEY, nudge_text, prune_with_usage, stamp
from langchain_escalate.paid import Payer
from langchain_escalate.policy import EscalationPolicy, Rung
from langchain_escalate.redact import redact
from langchain_escalate.run_config import escalation_key

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from langchain_escalate.budget import Budget
    from langchain_escalate.cost import ModelPrice
    from langchain_escalate.expert.expert import ExpertAnswer
    from langchain_escalate.records import Action, EscalationRecord, Outcome

logger = logging.getLogger("langchain_escalate")
ADVICE_HEADER = "Advice from a senior reviewer:"  # heads the strong model's merged guidance
HUMAN_HEADER = "A person reviewing this task says:"  # heads a person's merged guidance


class EscalationStopped(RuntimeError):  # noqa: N818 - public name fixed by DESIGN.md
    """The ladder reached ``stop`` and the policy says to raise; ``record`` is the stop's."""

    def __init__(self, record: EscalationRecord) -> None:
        """Keep the record and say which node stopped and why."""
        super().__init__(f"node {record.node!r} stopped the turn: {record.reason}")
        self.record = record


@dataclass(frozen=True)
class Situation:
    """What an adapter knows when the detector fired."""

    verdict: Verdict
    messages: Sequence[BaseMessage]  # the conversation, briefed on and pruned
    times_fired: int = 0  # firings already answered in this turn (the ladder position)
    loop_messages: int = 0  # how many trailing messages are the loop, pruned after help
    thread_id: str | None = None
    can_interrupt: bool = False  # interrupt() can run: a checkpointer is set
    model_called: bool = False  # a model was called in this host step: defer a human rung
    start_rung: int | None = None  # ladder index to start from instead of the firing's own
    config: RunnableConfig | None = None  # the host's; the expert call inherits it, tagged
    host_takes_over: bool = False  # the host runs a takeover itself (Help.host_takeover)
    dropped_usage: Sequence[Mapping[str, Any]] = ()  # replies the host dropped (pruned_usage)


@dataclass
class Help:
    """What the ladder did, and what to merge back into the conversation."""

    rung: Rung | None  # the rung that ran (None when deferred or nothing ran)
    records: list[EscalationRecord] = field(default_factory=list)  # every record, in order
    messages: list[BaseMessage] = field(default_factory=list)  # to add after removals, stamped
    removals: list[RemoveMessage] = field(default_factory=list)  # the pruned loop
    guidance: str | None = None  # the text the weak model acts on next
    takeover: AIMessage | None = None  # the strong model's takeover step (also in messages)
    stopped: bool = False  # the turn is over
    deferred_rung: int | None = None  # a human rung to run at the start of a fresh step
    host_takeover: bool = False  # the host must start the takeover itself; nothing paid yet


@dataclass(frozen=True)
class Answer:
    """The expert's answer to the ask-expert tool: ``text``, or ``refusal`` saying why not."""

    text: str | None
    record: EscalationRecord
    refusal: str | None
    briefing: str


@dataclass(frozen=True)
class TakeoverSituation:
    """A takeover in progress: ``step`` (1 = the first after the one that began it) is next."""

    briefing: str
    steps_so_far: Sequence[BaseMessage]
    step: int
    verdict: Verdict
    thread_id: str | None = None
    config: RunnableConfig | None = None


class Escalator:
    """Answers stuck verdicts by walking the ladder; shared by node, tool and middleware.

    ``strong`` is what ``Expert`` accepts; ``node`` names records, events and logs.

    Example:
        >>> from langchain_core.messages import HumanMessage
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
    ) -> None:
        """Configure the ladder for one node (or tool, or middleware) named ``node``."""
        self.expert = strong if isinstance(strong, Expert) else Expert(strong)
        self.node, self.policy = node, policy or EscalationPolicy()
        book = prices if isinstance(prices, PriceBook) else PriceBook(prices)
        graph = self.expert.kind == "graph"
        self.payer = Payer(node, self.expert.name, graph, book, budget, self.policy)
        self.mode = "graph" if graph else self.policy.mode  # the mode in effect

    def respond(self, situation: Situation) -> Help:
        """Walk the ladder for one firing; may raise ``EscalationStopped`` or ``GraphInterrupt``."""
        return run_sync(self.steps(situation))

    async def arespond(self, situation: Situation) -> Help:
        """Async twin of ``respond``."""
        return await run_async(self.steps(situation))

    def ask(self, question: str, messages: Sequence[BaseMessage] = (), **kwargs: Any) -> Answer:
        """Ask the expert one question under the budget, briefed on ``messages`` (``ask_steps``)."""
        return run_sync(self.ask_steps(question, messages, **kwargs))

    async def aask(
        self, question: str, messages: Sequence[BaseMessage] = (), **kwargs: Any
    ) -> Answer:
        """Async twin of ``ask``."""
        return await run_async(self.ask_steps(question, messages, **kwargs))

    def steps(self, situation: Situation) -> Steps[Help]:
        """``respond`` as a generator of ``Call``, to drive or ``yield from``."""
        start = situation.start_rung
        index = self.policy.start_index(situation.times_fired) if start is None else start
        records: list[EscalationRecord] = []
        model_called, briefing = situation.model_called, ""
        while (rung := self.policy.rung_at(index)) != "stop":
            if rung == "nudge":
                records.append(self._record(situation, "nudge", "nudged"))
                text = nudge_text(situation.verdict, situation.messages)
                return _guidance(situation, rung, records, text, prune=False)
            if rung == "escalate":
                briefing = briefing or self._briefing(situation)
                help_ = yield from self._escalate(situation, briefing, records, index)
                if help_ is not None:
                    return help_
                model_called = model_called or records[-1].strong_called
            elif not situation.can_interrupt:
                message = (
                    f"node {self.node!r}: the 'human' rung needs a checkpointer (compile the "
                    "graph with checkpointer=...); skipping to 'stop'"
                )
                logger.warning(message)
                warnings.warn(message, RuntimeWarning, stacklevel=4)
                reason = f"{situation.verdict.reason} No checkpointer."
                records.append(self._record(situation, "human", "skipped", reason=reason))
                break  # straight to stop, as DESIGN.md says
            elif model_called:
                return Help(rung=None, records=records, deferred_rung=index)
            else:
                return self._ask_human(situation, briefing or self._briefing(situation), records)
            index += 1
        return self._stop(situation, records)

    def takeover_steps(self, situation: TakeoverSituation) -> Steps[Help]:
        """One more takeover step; ``Help(rung=None)`` when it cannot run (the weak one goes on)."""
        reading = [HumanMessage(situation.briefing), *situation.steps_so_far]
        steps = self.policy.takeover_steps + 1
        paid, record = yield from self.payer.pay(
            self.expert.takeover_call(reading),
            verdict=situation.verdict,
            thread_id=situation.thread_id,
            config=situation.config,
            tokens_in=sum(estimate_tokens(str(m.text)) for m in reading),
            mode="takeover",
            reason=f"takeover step {situation.step + 1} of {steps}",
            key=escalation_key(situation.config, self.node, "takeover", situation.step),
        )
        if paid.answer is None:
            return Help(rung=None, records=[record])
        step = _takeover_step(paid.answer, [record], None, step=situation.step, steps=steps)
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
        """``ask`` as a generator of ``Call``; ``max_tokens`` bounds the briefing (the policy's)."""
        limit = max_tokens or self.policy.briefing_max_tokens
        briefing = build_briefing(messages, question=question, context=context, max_tokens=limit)
        paid, record = yield from self.payer.pay(
            self.expert.advice_call(briefing),
            verdict=Verdict(rule=None, reason=f"the model asked: {truncate_middle(question, 200)}"),
            thread_id=thread_id,
            config=config,
            tokens_in=estimate_tokens(briefing),
            mode="graph" if self.mode == "graph" else "advise",
            outcome="answered",
            key=escalation_key(config, self.node, "ask", short_hash(question)),
        )
        if paid.answer is None:
            refusal = paid.refusal or f"the expert failed: {paid.failure}"
            return Answer(text=None, record=record, refusal=refusal, briefing=briefing)
        return Answer(text=paid.answer.text, record=record, refusal=None, briefing=briefing)

    def _escalate(
        self, situation: Situation, briefing: str, records: list[EscalationRecord], index: int
    ) -> Steps[Help | None]:
        """Call the expert; the ``Help``, or ``None`` (record kept) when the ladder moves down."""
        takeover = self.mode == "takeover"
        if takeover and situation.host_takes_over:
            return Help(rung="escalate", records=records, host_takeover=True)
        briefed = [HumanMessage(briefing)]
        call = self.expert.takeover_call(briefed) if takeover else self.expert.advice_call(briefing)
        paid, record = yield from self.payer.pay(
            call,
            verdict=situation.verdict,
            thread_id=situation.thread_id,
            config=situation.config,
            tokens_in=estimate_tokens(briefing),
            mode=self.mode,
            key=escalation_key(situation.config, self.node, situation.times_fired, index),
        )
        records.append(record)
        prune = self.policy.prune_loop
        if paid.answer is None:
            return None
        if not takeover:
            text = f"{ADVICE_HEADER}\n{paid.answer.text}"
            return _guidance(situation, "escalate", records, text, prune=prune)
        fired = situation.times_fired + 1
        removals, summary, carried = _prune(situation, prune=prune)
        steps = self.policy.takeover_steps + 1
        step = _takeover_step(paid.answer, records, fired, step=0, steps=steps, briefing=briefing)
        if not summary:
            step.additional_kwargs.update(carried)
        note = HumanMessage(summary, additional_kwargs=carried)  # the loop's summary, if any
        messages = [stamp(note, record, [], fired=fired), step] if summary else [step]
        return Help(
            rung="escalate", records=records, messages=messages, removals=removals, takeover=step
        )

    def _ask_human(
        self, situation: Situation, briefing: str, records: list[EscalationRecord]
    ) -> Help:
        verdict = situation.verdict
        answer = interrupt({
            "node": self.node, "rule": verdict.rule, "reason": redact(verdict.reason),
            "evidence": list(verdict.evidence), "briefing": briefing,
        })  # fmt: skip
        if isinstance(answer, Mapping):
            answer = answer.get("guidance")
        if not isinstance(answer, str) or not answer.strip():
            msg = (
                f"node {self.node!r}: resume the 'human' interrupt with guidance text, e.g. "
                "Command(resume='try the v2 endpoint') or Command(resume={'guidance': '...'}); "
                f"got {answer!r}"
            )
            raise ValueError(msg)
        records.append(self._record(situation, "human", "human"))
        text = f"{HUMAN_HEADER}\n{answer.strip()}"
        return _guidance(situation, "human", records, text, prune=self.policy.prune_loop)

    def _stop(self, situation: Situation, records: list[EscalationRecord]) -> Help:
        """End the turn with a message saying why, or raise ``EscalationStopped``."""
        record = self._record(situation, "stop", "stopped")
        if self.policy.stop_behavior == "raise":
            raise EscalationStopped(record)
        text = f"I stopped working on this task because I was stuck: {record.reason}"
        _, _, carried = _prune(situation, prune=False)
        message = AIMessage(text, additional_kwargs=carried)
        stamped = stamp(message, record, records, fired=situation.times_fired + 1)
        return Help(rung="stop", records=[*records, record], messages=[stamped], stopped=True)

    def _record(
        self, situation: Situation, action: Action, outcome: Outcome, **fields: Any
    ) -> EscalationRecord:
        return self.payer.record(situation.verdict, situation.thread_id, action, outcome, **fields)

    def _briefing(self, situation: Situation) -> str:
        limit = self.policy.briefing_max_tokens
        return build_briefing(situation.messages, verdict=situation.verdict, max_tokens=limit)


def _guidance(
    situation: Situation, rung: Rung, records: list[EscalationRecord], text: str, *, prune: bool
) -> Help:
    """Guidance for the weak model (``records[-1]`` is its rung's), after the pruned loop."""
    removals, summary, carried = _prune(situation, prune=prune)
    message = HumanMessage(f"{summary}\n\n{text}" if summary else text, additional_kwargs=carried)
    stamped = stamp(message, records[-1], records[:-1], fired=situation.times_fired + 1)
    return Help(rung, records, [stamped], removals, guidance=text)


def _takeover_step(
    answer: ExpertAnswer, records: list[EscalationRecord], fired: int | None, **mark: Any
) -> Any:
    """The strong model's step, stamped with its record (``records[-1]``) and marked."""
    step = stamp(answer.message or AIMessage(answer.text), records[-1], records[:-1], fired=fired)
    step.additional_kwargs[TAKEOVER_KEY] = mark
    return step


def _prune(situation: Situation, *, prune: bool) -> tuple[list[RemoveMessage], str, dict[str, Any]]:
    return prune_with_usage(
        situation.messages, situation.loop_messages, situation.dropped_usage, prune=prune
    )
