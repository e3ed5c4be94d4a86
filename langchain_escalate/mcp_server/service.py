"""The three MCP tools as plain async Python: ask the expert, check a transcript, read the budget.

``ExpertService`` holds what the tools share (the ``Escalator``, the detector
thresholds, the thread store, the records log, the working directory) and
knows nothing of MCP: ``server.py`` maps its results and errors onto the
protocol. Everything a caller can get wrong is a ``ToolInputError``; an
answer the expert could not give (budget refused, strong model failed) is an
``ExpertUnavailableError`` carrying its record.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_escalate.detector import DetectorConfig, StuckDetector
from langchain_escalate.escalation import Escalator
from langchain_escalate.expert.briefing import CHARS_PER_TOKEN, build_briefing
from langchain_escalate.mcp_server.inputs import (
    InputLimits,
    ToolInputError,
    check_text,
    read_files,
    read_transcript,
)
from langchain_escalate.mcp_server.threads import ThreadStore, thread_messages
from langchain_escalate.records_log import append_records

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping, Sequence

    from langchain_core.messages import BaseMessage

    from langchain_escalate.budget import Budget
    from langchain_escalate.cost import ModelPrice
    from langchain_escalate.expert.expert import ExpertSpec
    from langchain_escalate.records import EscalationRecord

__all__ = ["AskResult", "ExpertService", "ExpertUnavailableError"]

DEFAULT_NODE = "mcp"
"""The node name in records when none is configured."""

# Attached files reach the expert whole (within the file caps): the briefing
# bound is doubled until build_briefing keeps the caller's context uncut. The
# input caps bound the context, so a few doublings always suffice.
_MAX_BOUND_DOUBLINGS = 16


class ExpertUnavailableError(RuntimeError):
    """The expert gave no answer: the budget refused, or the strong model failed.

    Attributes:
        record: The ``EscalationRecord`` of the attempt (``over_budget`` or
            ``expert_failed``), already in the records log.
    """

    def __init__(self, message: str, record: EscalationRecord) -> None:
        """Keep the record beside the message."""
        super().__init__(message)
        self.record = record


@dataclass(frozen=True)
class AskResult:
    """The expert's answer, the thread to follow up in, and what it cost.

    Attributes:
        answer: The expert's answer.
        thread_id: Pass it back to ``ask_expert`` to follow up.
        turn: The answer's position in the thread (1 = first question).
        record: The answer's ``EscalationRecord`` (tokens, cost, latency).
        briefing_chars: Size of the briefing the expert read.
    """

    answer: str
    thread_id: str
    turn: int
    record: EscalationRecord
    briefing_chars: int

    def to_text(self) -> str:
        """The answer, then one line with the thread and the cost (what the calling model reads)."""
        return (
            f"{self.answer}\n\n[thread_id: {self.thread_id} (turn {self.turn}; pass it to "
            f"ask_expert to follow up) | {cost_text(self.record)}]"
        )

    def to_dict(self) -> dict[str, Any]:
        """The structured result: answer, thread, turn, cost, and the record."""
        return {
            "answer": self.answer,
            "thread_id": self.thread_id,
            "turn": self.turn,
            "cost_usd": self.record.cost_usd,
            "tokens_in": self.record.tokens_in,
            "tokens_out": self.record.tokens_out,
            "model": self.record.model,
            "briefing_chars": self.briefing_chars,
            "record": self.record.to_dict(),
        }


class ExpertService:
    """The expert, the detector and the budget, for the MCP server (or any other host).

    Args:
        strong: The expert: a litellm model id, a ``BaseChatModel``, a
            ``ModelRef`` or a compiled graph (as ``create_ask_expert_tool``).
        node: The name in records, logs and budget refusals.
        budget: Bounds the strong model (shared ledger: SQLite or PostgreSQL
            to hold across processes); unbounded when ``None``.
        prices: USD per 1M tokens for models litellm's price map lacks.
        briefing_max_tokens: Bound on the briefing (attached files raise it
            so they fit whole; see ``InputLimits`` for their caps).
        detector: Thresholds for ``check_stuck``.
        records: A JSONL file each ``EscalationRecord`` is appended to (what
            ``langchain-escalate report`` reads); ``None``: not written.
        threads: The SQLite file of consultation threads; ``None``: kept in
            memory for this process only.
        workdir: Files are read inside this directory only (default: the
            current directory).
        limits: Caps on what one call may send.

    Example:
        >>> import asyncio
        >>> from langchain_core.messages import AIMessage
        >>> from langchain_escalate.testing import ScriptedChatModel
        >>> service = ExpertService(ScriptedChatModel(script=[AIMessage("Use the v2 endpoint.")]))
        >>> result = asyncio.run(service.ask_expert("Which endpoint lists invoices?"))
        >>> result.answer, result.turn
        ('Use the v2 endpoint.', 1)
    """

    def __init__(
        self,
        strong: ExpertSpec,
        *,
        node: str = DEFAULT_NODE,
        budget: Budget | None = None,
        prices: Mapping[str, ModelPrice | dict[str, Any]] | None = None,
        briefing_max_tokens: int = 1500,
        detector: DetectorConfig | None = None,
        records: str | os.PathLike[str] | None = None,
        threads: str | os.PathLike[str] | None = None,
        workdir: str | os.PathLike[str] | None = None,
        limits: InputLimits | None = None,
    ) -> None:
        """Set up the service; no model is built and nothing is paid yet."""
        self.escalator = Escalator(strong, node=node, budget=budget, prices=prices)
        self.budget = budget
        self.briefing_max_tokens = briefing_max_tokens
        self.detector = detector or DetectorConfig()
        self.records = Path(records) if records is not None else None
        self.threads = ThreadStore(threads)
        self.workdir = Path(workdir if workdir is not None else Path.cwd()).resolve()
        self.limits = limits or InputLimits()

    async def ask_expert(
        self,
        question: str,
        context: str | None = None,
        files: Sequence[str] | None = None,
        thread_id: str | None = None,
    ) -> AskResult:
        """Ask the strong model, briefed on the thread so far, under the budget.

        Args:
            question: What to ask.
            context: What the expert needs that the question does not say.
            files: Paths inside the working directory, read and briefed.
            thread_id: An earlier answer's thread, to follow up; a new thread
                when ``None`` (a name not seen before starts a thread of that name).

        Returns:
            The answer, its thread and turn, and what it cost.

        Raises:
            ToolInputError: An argument is empty, over a cap, or names a file
                outside the working directory (nothing was paid).
            ExpertUnavailableError: The budget refused or the strong model failed.
        """
        if not question.strip():
            msg = "question is empty; ask one specific question"
            raise ToolInputError(msg)
        check_text("question", question, self.limits.max_question_chars)
        check_text("context", context, self.limits.max_context_chars)
        if thread_id is not None:
            check_text("thread_id", thread_id, 200)
        attached = (
            await asyncio.to_thread(read_files, files, self.workdir, self.limits) if files else ""
        )
        full_context = "\n\n".join(part for part in (context, attached) if part) or None
        thread = thread_id or uuid.uuid4().hex
        earlier = thread_messages(await asyncio.to_thread(self.threads.turns, thread))
        bound = await asyncio.to_thread(self._briefing_bound, question, full_context, earlier)
        answer = await self.escalator.aask(
            question, earlier, context=full_context, thread_id=thread, max_tokens=bound
        )
        if self.records is not None:
            await asyncio.to_thread(append_records, self.records, [answer.record])
        if answer.text is None:
            msg = f"ask_expert could not answer: {answer.refusal}"
            raise ExpertUnavailableError(msg, answer.record)
        turn = await asyncio.to_thread(
            self.threads.append, thread, question, full_context, answer.text, answer.record
        )
        return AskResult(answer.text, thread, turn, answer.record, len(answer.briefing))

    def check_stuck(self, transcript: Any) -> dict[str, Any]:
        """Replay a transcript through a fresh detector, as ``langchain-escalate scan`` does.

        Args:
            transcript: Message objects (OpenAI chat format or LangChain
                message dicts), or them as JSON or JSONL text.

        Returns:
            ``{"stuck", "first_stuck_index", "verdicts": [{"index", "rule",
            "reason", "evidence"}], "messages", "advice"}`` (indices 0-based).

        Raises:
            ToolInputError: The transcript is over a cap or cannot be read.
        """
        messages = read_transcript(transcript, self.limits)
        detector = StuckDetector(self.detector)
        verdicts = [
            (index, verdict)
            for index, verdict in enumerate(map(detector.observe, messages))
            if verdict.stuck
        ]
        # The shape of `langchain-escalate scan --format json`, without "file".
        result: dict[str, Any] = {
            "stuck": bool(verdicts),
            "first_stuck_index": verdicts[0][0] if verdicts else None,
            "verdicts": [
                {
                    "index": index,
                    "rule": verdict.rule,
                    "reason": verdict.reason,
                    "evidence": list(verdict.evidence),
                }
                for index, verdict in verdicts
            ],
            "messages": len(messages),
        }
        result["advice"] = _advice(verdicts, len(messages))
        return result

    async def budget_status(self, thread_id: str | None = None) -> dict[str, Any]:
        """Spent, reserved and remaining per limit, as ``Budget.status`` reports them.

        Args:
            thread_id: The thread for the per-thread limits (``None``: they are ``None``).

        Returns:
            ``{"limited": True, "ledger", "thread_id", "escalations_per_thread",
            "usd_per_thread", "usd_total"}``, each limit ``{"limit", "spent",
            "reserved", "remaining"}``; ``{"limited": False, "thread_id"}``
            without a budget.
        """
        if self.budget is None:
            return {"limited": False, "thread_id": thread_id}
        return {"limited": True, **await self.budget.astatus(thread_id)}

    def _briefing_bound(
        self, question: str, context: str | None, earlier: Sequence[BaseMessage]
    ) -> int:
        """The smallest doubling of the node's bound at which the context is briefed uncut."""
        bound = self.briefing_max_tokens
        if not context:
            return bound
        # Below this the context cannot fit whatever its share: start there.
        bound = max(bound, math.ceil(len(context) / CHARS_PER_TOKEN))
        for _ in range(_MAX_BOUND_DOUBLINGS):
            # The same call Escalator.ask makes; the text is only probed.
            briefing = build_briefing(earlier, question=question, context=context, max_tokens=bound)
            if context.strip() in briefing:
                break
            bound *= 2
        return bound


def cost_text(record: EscalationRecord) -> str:
    """``cost: $0.0012 (950 tokens in, 120 out, model)``, or why the cost is unknown."""
    usage = f"{record.tokens_in} tokens in, {record.tokens_out} out, {record.model}"
    if record.cost_usd is None:
        return f"cost: unknown, no price for {record.model} ({usage})"
    return f"cost: ${record.cost_usd:.4f} ({usage})"


def _advice(verdicts: Sequence[tuple[int, Any]], count: int) -> str:
    if not verdicts:
        return f"Not stuck: no rule fired over {count} messages; carry on."
    index, verdict = verdicts[-1]
    return (
        f"Stuck ({verdict.rule} at message {index}): {verdict.reason} Stop repeating it: change "
        "approach, or call ask_expert with one specific question."
    )
