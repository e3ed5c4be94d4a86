"""One strong-model call under the budget: reserve, call, settle or release.

A call that returned is settled at what its replies cost, an unusable answer
included (it was billed); one that raised before any reply is released; one cut
short by its timeout keeps the estimate spent, since the provider may have
billed it. Cancellation and interrupts release before they go on. Transient
errors are retried first; fatal ones are released and raised unchanged.
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
    """What one paid call gave: the answer, or why there is none (``refusal``, ``failure``).

    Tokens and cost count every reply, the unusable ones included; ``reused``:
    the answer was paid for by an earlier run of this step and read back from
    the ledger.
    """

    answer: ExpertAnswer | None = None
    refusal: str | None = None
    failure: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = 0.0
    latency_s: float = 0.0
    reused: bool = False


@dataclass(frozen=True)
class Payer:
    """Pays for one node's strong-model calls under ``budget`` and records them.

    ``model`` is the expert's name, for prices and records; ``is_graph``: the
    expert is a user's compiled graph, whose replies are priced by their own
    ``model_name``.
    """

    node: str
    model: str
    is_graph: bool
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

        ``call`` is ``Expert.advice_call``/``takeover_call`` (given the tagged
        run ``config``) or a ready ``Call`` the host makes itself; ``tokens_in``
        sizes the budget's estimate; ``reason`` and ``outcome`` override the
        record's defaults. With ``key`` (``run_config.escalation_key``) a
        replayed step reuses its reservation, or reads back the answer it paid for.
        """
        ready = call if isinstance(call, Call) else call(self._traced(config, verdict, mode))
        paid = yield from self._call(ready, thread_id or "default", tokens_in, key)
        why = reason or verdict.reason
        if paid.reused:
            why = f"{why} (The answer paid for before a restart, read back from the ledger.)"
        if paid.refusal is not None:
            why = f"{why} Budget refused: {paid.refusal}"
            return paid, self.record(
                verdict, thread_id, "escalate", "over_budget", mode=mode, reason=why
            )
        done: Outcome = outcome or ("took_over" if mode == "takeover" else "advised")
        if paid.failure is not None:
            failure = redact(paid.failure)
            logger.warning("node %r: expert %r failed: %s", self.node, self.model, failure)
            why, done = f"{why} Expert failed: {paid.failure}", "expert_failed"
        record = self.record(
            verdict, thread_id, "escalate", done, mode=mode, reason=why, model=self.model,
            tokens_in=paid.tokens_in, tokens_out=paid.tokens_out, cost_usd=paid.cost_usd,
            latency_s=round(paid.latency_s, 6),
        )  # fmt: skip
        return paid, record

    def record(
        self,
        verdict: Verdict,
        thread_id: str | None,
        action: Action,
        outcome: Outcome,
        **fields: Any,
    ) -> EscalationRecord:
        """Make, log and emit one record of this node (``fields``: other record fields)."""
        # Records reach state, streams, logs and reports: no secret from a tool goes with them.
        fields["reason"] = redact(fields.get("reason", verdict.reason))
        if action in ("nudge", "stop"):
            fields["cost_usd"] = 0.0  # free: no model was called
        record = EscalationRecord(
            node=self.node, action=action, rule=verdict.rule, outcome=outcome,
            thread_id=thread_id, **fields,
        )  # fmt: skip
        emit_record(record)
        return record

    def cost_of(self, calls: Sequence[AIMessage]) -> tuple[int, int, float | None]:
        """Tokens in, tokens out and USD of the expert's replies (each priced on its own)."""
        from langchain_escalate.cost import price_reply  # noqa: PLC0415 - cost imports litellm lazily

        tokens_in = tokens_out = 0
        total: float | None = 0.0
        for reply in calls:
            model = self.model
            if self.is_graph:
                model = str(reply.response_metadata.get("model_name") or self.model)
            reply_in, reply_out, cost = price_reply(self.prices, model, reply)
            tokens_in, tokens_out = tokens_in + reply_in, tokens_out + reply_out
            total = None if total is None or cost is None else total + cost
        return tokens_in, tokens_out, total

    def estimate(self, tokens_in: int) -> float | None:
        """The call's likely cost; ``None`` (a graph's models are unknown): the budget's default."""
        if self.is_graph:
            return None
        return self.prices.cost_usd(
            self.model, tokens_in + PROMPT_OVERHEAD_TOKENS, EXPECTED_ANSWER_TOKENS
        )

    def _call(
        self, call: Call[ExpertAnswer], thread: str, tokens_in: int, key: str | None
    ) -> Steps[Paid]:
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
        tokens_in, tokens_out, cost = self.cost_of(answer.calls)
        if reservation is not None:
            kept = _kept_answer(answer, tokens_in, tokens_out)
            yield _settle(reservation, cost, kept)
        latency = time.perf_counter() - started
        return Paid(
            answer=answer, tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost,
            latency_s=latency,
        )  # fmt: skip

    def _failed(
        self, error: BaseException, reservation: Reservation | None, latency: float
    ) -> Paid | None:
        """The failure to record, marking what was billed paid; ``None``: re-raise the error."""
        if isinstance(error, StrongTimeoutError):
            # The provider may have billed the abandoned call: the estimate stays spent.
            if reservation is not None:
                reservation.mark_paid(None)
            return Paid(failure=_describe(error), cost_usd=None, latency_s=latency)
        # An interrupt inside an expert graph replays the step, which must find its money free.
        if not isinstance(error, Exception) or isinstance(error, GraphBubbleUp):
            return None
        billed = error.calls if isinstance(error, ExpertError) else ()
        tokens_in, tokens_out, cost = self.cost_of(billed)
        if billed and reservation is not None:
            reservation.mark_paid(cost)
        if classify(error) == "fatal" and not isinstance(error, ExpertError):
            return None
        return Paid(
            failure=_describe(error), tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost,
            latency_s=latency,
        )  # fmt: skip

    def _traced(self, config: RunnableConfig | None, verdict: Verdict, mode: str) -> RunnableConfig:
        # LangGraph's "nostream" tag keeps the strong model's tokens out of
        # stream_mode="messages": a chat UI must not show the internal advice.
        tags = ["escalation"] if self.policy.stream_expert else ["escalation", "nostream"]
        metadata = {"escalation_node": self.node, "escalation_rule": verdict.rule}
        extra: RunnableConfig = {
            "tags": tags,
            "metadata": {**metadata, "escalation_mode": mode},
            "run_name": f"escalation:{self.node}",
        }
        return merge_configs(config, extra)

    def _reserve(
        self, budget: Budget, thread: str, tokens_in: int, key: str | None
    ) -> Call[Reservation]:
        estimate = self.estimate(tokens_in)
        return Call(
            lambda: budget.reserve(thread, estimate_usd=estimate, key=key),
            lambda: budget.areserve(thread, estimate_usd=estimate, key=key),
        )

    def _guarded(self, call: Call[ExpertAnswer]) -> Call[ExpertAnswer]:
        """The call with the policy's retries and timeout."""
        retries, backoff = self.policy.max_retries, self.policy.retry_backoff_s
        timeout = self.policy.strong_timeout_s
        what = f"strong model {self.model!r}"

        def run_once() -> ExpertAnswer:
            if timeout is None:
                return call.run()
            # The run config travels with the call; an abandoned call is not waited for.
            pool = ThreadPoolExecutor(max_workers=1)
            try:
                return pool.submit(contextvars.copy_context().run, call.run).result(timeout)
            except FutureTimeout as error:
                raise StrongTimeoutError(_timeout_text(timeout)) from error
            finally:
                pool.shutdown(wait=False)

        async def arun_once() -> ExpertAnswer:
            if timeout is None:
                return await call.arun()
            try:
                return await asyncio.wait_for(call.arun(), timeout)
            except asyncio.TimeoutError as error:
                raise StrongTimeoutError(_timeout_text(timeout)) from error

        return Call(
            lambda: call_with_retries(run_once, retries=retries, backoff_s=backoff, what=what),
            lambda: acall_with_retries(arun_once, retries=retries, backoff_s=backoff, what=what),
        )


def _settle(reservation: Reservation, cost: float | None, result: dict[str, Any]) -> Call[None]:
    return Call(
        lambda: reservation.settle(cost, result=result),
        lambda: reservation.asettle(cost, result=result),
    )


def _kept_answer(answer: ExpertAnswer, tokens_in: int, tokens_out: int) -> dict[str, Any]:
    """What the ledger keeps of an answer, so a replayed step need not pay for it again."""
    message = answer.message
    return {
        "text": answer.text,
        "content": None if message is None else message.content,
        "tool_calls": [] if message is None else [dict(call) for call in message.tool_calls],
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
    }


def _paid_before(reservation: Reservation) -> Paid:
    """The answer a replayed step already paid for, read back from the ledger."""
    kept = reservation.settled_result or {}
    message = None
    if kept.get("content") is not None:
        message = AIMessage(content=kept["content"], tool_calls=kept.get("tool_calls") or [])
    answer = ExpertAnswer(text=str(kept.get("text", "")), message=message, calls=())
    tokens_in, tokens_out = int(kept.get("tokens_in", 0)), int(kept.get("tokens_out", 0))
    cost = reservation.settled_usd
    return Paid(
        answer=answer, tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost, reused=True
    )


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _timeout_text(timeout: float) -> str:
    return f"the strong model did not answer within {timeout:g} s"
