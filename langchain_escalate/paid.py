"""One strong-model call under the budget: reserve, call, then settle or release.

A call that returned is settled at what its replies cost (an unusable one too); one that raised
before any reply is released; one cut short by its timeout keeps the estimate spent.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage
from langchain_core.runnables.config import merge_configs
from langgraph.errors import GraphBubbleUp

from langchain_escalate.cost import price_reply
from langchain_escalate.drive import Call, Steps
from langchain_escalate.errors import acall_with_retries, call_with_retries, classify
from langchain_escalate.expert.expert import ExpertAnswer, ExpertError
from langchain_escalate.records import EscalationRecord, emit_record
from langchain_escalate.redact import redact

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from langchain_core.runnables import RunnableConfig

    from langchain_escalate.budget import Budget, Reservation
    from langchain_escalate.cost import PriceBook
    from langchain_escalate.detector.verdict import Verdict
    from langchain_escalate.policy import EscalationPolicy
    from langchain_escalate.records import Action, Outcome

logger = logging.getLogger("langchain_escalate")
EXPECTED_ANSWER_TOKENS = 500  # output tokens assumed in a call's estimate for the budget
PROMPT_OVERHEAD_TOKENS = 150  # the expert's system prompt and message framing


class StrongTimeoutError(TimeoutError):
    """The strong model did not answer within ``EscalationPolicy.strong_timeout_s``."""


@dataclass(frozen=True)
class Paid:
    """One paid call: the answer or why there is none; tokens and cost count every reply."""

    answer: ExpertAnswer | None = None
    refusal: str | None = None
    failure: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None
    latency_s: float = 0.0
    reused: bool = False  # an earlier run of this step paid: the answer is from the ledger


@dataclass(frozen=True)
class Payer:
    """Pays for one node's strong-model calls under ``budget`` and records them."""

    node: str
    model: str  # the expert's name, for prices and records
    is_graph: bool  # a compiled-graph expert: each reply is priced by its own model_name
    prices: PriceBook
    budget: Budget | None
    policy: EscalationPolicy

    def pay(
        self,
        call: Call[ExpertAnswer] | Callable[[RunnableConfig], Call[ExpertAnswer]],
        *,
        verdict: Verdict,
        thread_id: str | None,
        config: RunnableConfig | None,
        tokens_in: int,
        mode: str,
        reason: str | None = None,
        outcome: Outcome | None = None,
        key: str | None = None,
    ) -> Steps[tuple[Paid, EscalationRecord]]:
        """Pay for one expert call and record it; ``Paid.answer`` is ``None`` if refused or failed.

        ``call``: ``Expert.advice_call``/``takeover_call`` (given the tagged ``config``) or a ready
        ``Call``. With ``key`` a replayed step reuses its reservation or the answer it paid for.
        """
        ready = call if isinstance(call, Call) else call(self._traced(config, verdict, mode))
        paid = yield from self._call(ready, thread_id or "default", tokens_in, key)
        why = reason or verdict.reason
        if paid.reused:
            why = f"{why} (The answer paid for before a restart, read back from the ledger.)"
        done: Outcome = outcome or ("took_over" if mode == "takeover" else "advised")
        if paid.refusal is not None:  # the strong model was not called: no model, no cost
            why, done = f"{why} Budget refused: {paid.refusal}", "over_budget"
        elif paid.failure is not None:
            failure = redact(paid.failure)
            logger.warning("node %r: expert %r failed: %s", self.node, self.model, failure)
            why, done = f"{why} Expert failed: {paid.failure}", "expert_failed"
        record = self.record(
            verdict, thread_id, "escalate", done, mode=mode, reason=why,
            model=None if paid.refusal is not None else self.model, tokens_in=paid.tokens_in,
            tokens_out=paid.tokens_out, cost_usd=paid.cost_usd, latency_s=round(paid.latency_s, 6),
        )  # fmt: skip
        return paid, record

    def record(
        self, verdict: Verdict, thread_id: str | None, action: Action, outcome: Outcome, **more: Any
    ) -> EscalationRecord:
        """Make, log and emit one record of this node (``more``: other record fields)."""
        # Records reach state, streams, logs and reports: no secret from a tool goes with them.
        more["reason"] = redact(more.get("reason", verdict.reason))
        if action in ("nudge", "stop"):
            more["cost_usd"] = 0.0  # free: no model was called
        record = EscalationRecord(
            node=self.node, action=action, rule=verdict.rule, outcome=outcome,
            thread_id=thread_id, **more,
        )  # fmt: skip
        emit_record(record)
        return record

    def _call(
        self, call: Call[ExpertAnswer], thread: str, tokens_in: int, key: str | None
    ) -> Steps[Paid]:
        """Reserve, call, then settle or release; what was paid, or the error raised on."""
        reservation: Reservation | None = None
        if self.budget is not None:
            reservation = yield self._reserve(self.budget, thread, tokens_in, key)
            if reservation.granted and reservation.already_settled:
                if reservation.settled_result is not None:
                    return _paid_before(reservation)
                # Paid before, but its answer was not kept: this call is a new one.
                again = None if key is None else f"{key}:again"
                reservation = yield self._reserve(self.budget, thread, tokens_in, again)
            if not reservation.granted:
                return Paid(refusal=reservation.reason)
        started = time.perf_counter()
        try:
            answer: ExpertAnswer = yield self._guarded(call)
        except BaseException as error:
            failed = self._failed(error, reservation, time.perf_counter() - started)
            if reservation is not None:  # settles what was marked paid, else releases
                yield Call(reservation.release, reservation.arelease)
            if failed is None:
                raise
            return failed
        tokens_in, tokens_out, cost = self._cost_of(answer.calls)
        if reservation is not None:
            message = answer.message  # kept, so a replayed step need not pay for it again
            kept = {
                "text": answer.text, "content": None if message is None else message.content,
                "tool_calls": [] if message is None else [dict(c) for c in message.tool_calls],
                "tokens_in": tokens_in, "tokens_out": tokens_out,
            }  # fmt: skip
            yield Call(
                lambda: reservation.settle(cost, result=kept),
                lambda: reservation.asettle(cost, result=kept),
            )
        latency = time.perf_counter() - started
        return Paid(
            answer=answer, tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost,
            latency_s=latency,
        )  # fmt: skip

    def _failed(
        self, error: BaseException, reservation: Reservation | None, latency: float
    ) -> Paid | None:
        """The failure to record, marking what was billed paid; ``None``: re-raise the error."""
        # An interrupt inside an expert graph replays the step, which must find its money free.
        if not isinstance(error, Exception) or isinstance(error, GraphBubbleUp):
            return None
        billed = error.calls if isinstance(error, ExpertError) else ()
        tokens_in, tokens_out, cost = self._cost_of(billed)
        # The provider may have billed a call abandoned at its timeout: the estimate stays spent.
        timed_out = isinstance(error, StrongTimeoutError)
        if (billed or timed_out) and reservation is not None:
            reservation.mark_paid(None if timed_out else cost)
        if classify(error) == "fatal" and not isinstance(error, ExpertError):
            return None
        cost = None if timed_out else cost
        return Paid(
            failure=_describe(error), tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost,
            latency_s=latency,
        )  # fmt: skip

    def _cost_of(self, calls: Sequence[AIMessage]) -> tuple[int, int, float | None]:
        """Tokens in, tokens out and USD of the expert's replies (each priced on its own)."""
        priced = [price_reply(self.prices, self._model_of(reply), reply) for reply in calls]
        total: float | None = 0.0
        for *_, cost in priced:  # in order, as every other total of the package is added
            total = None if total is None or cost is None else total + cost
        return sum(p[0] for p in priced), sum(p[1] for p in priced), total

    def _model_of(self, reply: AIMessage) -> str:
        if self.is_graph:
            return str(reply.response_metadata.get("model_name") or self.model)
        return self.model

    def _traced(self, config: RunnableConfig | None, verdict: Verdict, mode: str) -> RunnableConfig:
        """The run config, tagged; "nostream" keeps the internal advice out of a chat's stream."""
        tags = ["escalation"] if self.policy.stream_expert else ["escalation", "nostream"]
        meta = {"escalation_node": self.node, "escalation_rule": verdict.rule}
        extra: RunnableConfig = {"tags": tags, "run_name": f"escalation:{self.node}"}
        return merge_configs(config, {**extra, "metadata": {**meta, "escalation_mode": mode}})

    def _reserve(
        self, budget: Budget, thread: str, tokens_in: int, key: str | None
    ) -> Call[Reservation]:
        """Reserve the call's likely cost (a graph's is unknown: the budget's default)."""
        estimate = None
        if not self.is_graph:
            tokens = tokens_in + PROMPT_OVERHEAD_TOKENS
            estimate = self.prices.cost_usd(self.model, tokens, EXPECTED_ANSWER_TOKENS)
        return Call(
            lambda: budget.reserve(thread, estimate_usd=estimate, key=key),
            lambda: budget.areserve(thread, estimate_usd=estimate, key=key),
        )

    def _guarded(self, call: Call[ExpertAnswer]) -> Call[ExpertAnswer]:
        """The call with the policy's retries and timeout."""
        retries, backoff = self.policy.max_retries, self.policy.retry_backoff_s
        timeout, what = self.policy.strong_timeout_s, f"strong model {self.model!r}"
        late = f"the strong model did not answer within {timeout or 0:g} s"

        def run_once() -> ExpertAnswer:
            if timeout is None:
                return call.run()
            pool = ThreadPoolExecutor(max_workers=1)  # the run config travels with the call
            try:
                return pool.submit(contextvars.copy_context().run, call.run).result(timeout)
            except FutureTimeout as error:
                raise StrongTimeoutError(late) from error
            finally:
                pool.shutdown(wait=False)  # an abandoned call is not waited for

        async def arun_once() -> ExpertAnswer:
            if timeout is None:
                return await call.arun()
            try:
                return await asyncio.wait_for(call.arun(), timeout)
            except asyncio.TimeoutError as error:
                raise StrongTimeoutError(late) from error

        return Call(
            lambda: call_with_retries(run_once, retries=retries, backoff_s=backoff, what=what),
            lambda: acall_with_retries(arun_once, retries=retries, backoff_s=backoff, what=what),
        )


def _paid_before(reservation: Reservation) -> Paid:
    """The answer a replayed step already paid for, read back from the ledger."""
    kept = reservation.settled_result or {}
    content = kept.get("content")
    calls = kept.get("tool_calls") or []
    message = None if content is None else AIMessage(content=content, tool_calls=calls)
    answer = ExpertAnswer(text=str(kept.get("text", "")), message=message, calls=())
    return Paid(
        answer=answer, tokens_in=int(kept.get("tokens_in", 0)),
        tokens_out=int(kept.get("tokens_out", 0)), cost_usd=reservation.settled_usd, reused=True,
    )  # fmt: skip


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
