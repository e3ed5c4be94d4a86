"""Confidence sources for a weak model's reply: verbalized, logprobs, consistency, verify.

Pure (no LangGraph, no litellm at import); see ``docs/confidence.md``.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import math
import pkgutil
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, cast

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from langchain_escalate.detector import steps
from langchain_escalate.detector.normalize import normalize_text
from langchain_escalate.detector.verdict import Verdict

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence

    from pydantic import ValidationInfo

logger = logging.getLogger("langchain_escalate")

Source = Literal["verbalized", "logprobs", "consistency", "verify"]
Aggregate = Literal["mean", "min"]

VERBALIZED_INSTRUCTION = (
    "When you give your final answer (not when you call a tool), end it with one "
    "line of the form `Confidence: x`, where x is your probability, between 0 and 1, "
    "that the answer is correct."
)
"""Added to the weak model's system prompt when the ``verbalized`` source is on."""

METADATA_KEY = "confidence"
"""``response_metadata`` key the detector's ``low_confidence`` rule reads."""

SOURCES_KEY = "confidence_sources"
"""``response_metadata`` key holding the per-source scores and the low source."""


class ConfidenceConfig(BaseModel):
    """Which confidence sources score a weak model's reply, and how they combine.

    Attributes:
        sources: Any of ``verbalized``, ``logprobs``, ``consistency``, ``verify``.
        samples: k, the most extra weak samples ``consistency`` draws.
        logprobs_aggregate: ``mean`` (geometric-mean token probability) or ``min``.
        verify: ``(reply, state) -> float | bool`` (sync or async), or an import
            string ``"pkg.module:function"``. Required with the ``verify`` source.
        combine: ``(scores: dict[str, float]) -> float``, or an import string;
            ``None`` takes the minimum.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    sources: tuple[Source, ...] = Field(default=("verbalized",), min_length=1)
    samples: int = Field(default=3, ge=1, le=20)
    logprobs_aggregate: Aggregate = "mean"
    verify: Any | None = Field(default=None, validate_default=True)
    combine: Any | None = None

    @field_validator("sources")
    @classmethod
    def _no_repeats(cls, value: tuple[Source, ...]) -> tuple[Source, ...]:
        if len(set(value)) != len(value):
            msg = f"each source once: {list(value)}"
            raise ValueError(msg)
        return value

    @field_validator("verify", "combine", mode="before")
    @classmethod
    def _resolve(cls, value: Any) -> Any:
        if value is None or callable(value):
            return value
        if isinstance(value, str):
            return import_string(value)
        msg = f"expected a callable or an import string 'pkg.module:function', got {value!r}"
        raise ValueError(msg)

    @field_validator("verify")
    @classmethod
    def _verify_needs_a_function(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and "verify" in info.data.get("sources", ()):
            msg = "the 'verify' source needs a verify function: verify=check or 'pkg.mod:check'"
            raise ValueError(msg)
        return value

    @field_serializer("verify", "combine")
    def _as_import_string(self, value: Any) -> str | None:
        # Shown by check-config and kept in records as the import string YAML takes.
        return None if value is None else f"{value.__module__}:{value.__qualname__}"


@dataclass(frozen=True)
class ConfidenceResult:
    """What the sources said about one reply.

    Attributes:
        score: The combined confidence; ``None`` when no source had a score.
        low_source: The source with the lowest score.
        scores: Each source that gave a score, by name.
        reply: The reply without its ``Confidence:`` line.
        samples: The extra weak samples ``consistency`` drew; their usage is cost.
        verify_error: ``"ValueError: ..."`` when the check failed that way.
    """

    score: float | None
    low_source: str | None
    scores: dict[str, float]
    reply: AIMessage
    samples: list[AIMessage] = field(default_factory=list)
    verify_error: str | None = None

    def to_metadata(self) -> dict[str, Any]:
        """Return the JSON-ready summary for a record or ``response_metadata``."""
        summary = {"score": self.score, "low_source": self.low_source, "scores": self.scores}
        error = {} if self.verify_error is None else {"verify_error": self.verify_error}
        return {**summary, "samples": len(self.samples), **error}

    def scored_reply(self) -> AIMessage:
        """Return the reply with its score where the detector reads it (``response_metadata``)."""
        if self.score is None:
            return self.reply
        metadata = {METADATA_KEY: self.score, SOURCES_KEY: self.to_metadata()}
        return self.reply.model_copy(
            update={"response_metadata": {**self.reply.response_metadata, **metadata}}
        )

    def kept_reply(self) -> AIMessage:
        """Return ``scored_reply()`` carrying the samples' usage, which was paid for."""
        scored = self.scored_reply()
        if not self.samples:
            return scored
        from langchain_escalate.cost import PRUNED_USAGE_KEY, pruned_usage  # noqa: PLC0415 - LangGraph

        usage = {PRUNED_USAGE_KEY: pruned_usage(with_ids(self.samples))}
        return scored.model_copy(
            update={"additional_kwargs": {**scored.additional_kwargs, **usage}}
        )


class ConfidenceScorer:
    r"""Score a weak model's reply with the configured sources (sync and async twins).

    Args:
        config: The sources and their settings.

    Example:
        >>> scorer = ConfidenceScorer(ConfidenceConfig(sources=["verbalized"]))
        >>> result = scorer.score(AIMessage("Paris.\nConfidence: 0.4"), {})
        >>> result.score, result.low_source, result.reply.content
        (0.4, 'verbalized', 'Paris.')
    """

    def __init__(self, config: ConfidenceConfig | None = None) -> None:
        """Keep the configuration (see the class docstring)."""
        self.config = config or ConfidenceConfig()

    def prepare(self, messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        """Return the weak model's input, with the verbalized instruction if that source is on."""
        if "verbalized" not in self.config.sources:
            return list(messages)
        return with_verbalized_instruction(messages)

    def score(
        self, reply: AIMessage, state: Any, *, resample: Callable[[], AIMessage] | None = None
    ) -> ConfidenceResult:
        """Score ``reply`` (a final answer or a tool call) with every source and combine.

        Args:
            reply: The weak model's reply.
            state: The graph state (or ``{"messages": [...]}``), passed to ``verify``.
            resample: Draws one more weak sample for ``consistency``; without
                it that source is absent.
        """
        drawing = "consistency" in self.config.sources and resample is not None
        tally = Agreement(reply, self.config.samples) if drawing else None
        while tally is not None and resample is not None and not tally.settled():
            tally.add(resample())
        verify = None
        if "verify" in self.config.sources:
            verify = run_verifier(cast("Callable[..., Any]", self.config.verify), reply, state)
        return self._result(reply, tally, verify)

    async def ascore(
        self,
        reply: AIMessage,
        state: Any,
        *,
        resample: Callable[[], Awaitable[AIMessage]] | None = None,
    ) -> ConfidenceResult:
        """Async twin of ``score``: ``resample`` and ``verify`` may be awaited."""
        drawing = "consistency" in self.config.sources and resample is not None
        tally = Agreement(reply, self.config.samples) if drawing else None
        while tally is not None and resample is not None and not tally.settled():
            tally.add(await resample())
        verify = None
        if "verify" in self.config.sources:
            verify = await arun_verifier(
                cast("Callable[..., Any]", self.config.verify), reply, state
            )
        return self._result(reply, tally, verify)

    def _result(
        self, reply: AIMessage, tally: Agreement | None, verify: tuple[float, str | None] | None
    ) -> ConfidenceResult:
        sources, aggregate = self.config.sources, self.config.logprobs_aggregate
        scores = {  # in this order: the first of equal scores is the low source
            "verbalized": verbalized_score(reply) if "verbalized" in sources else None,
            "logprobs": logprob_score(reply, aggregate) if "logprobs" in sources else None,
            "consistency": tally.score() if tally is not None else None,
            "verify": verify[0] if verify is not None else None,
        }
        present = {name: value for name, value in scores.items() if value is not None}
        combined, low = combine_scores(present, self.config.combine)
        return ConfidenceResult(
            score=combined,
            low_source=low,
            scores=present,
            reply=without_verbalized(reply),
            samples=tally.samples if tally is not None else [],
            verify_error=verify[1] if verify is not None else None,
        )


def needs_score(reply: AIMessage, review_tools: Collection[str]) -> bool:
    """Return whether ``reply`` is scored: a final reply, or a call to a tool under review."""
    return not reply.tool_calls or any(call["name"] in review_tools for call in reply.tool_calls)


def reviewed_tools(
    review_tools: Sequence[str], confidence: ConfidenceConfig | None
) -> frozenset[str]:
    """Return the names of the tools under review, checked against the confidence sources.

    Raises:
        TypeError: ``review_tools`` is a string (it would review tools named by letters).
        ValueError: ``review_tools`` without ``confidence``: nothing would score the calls.
    """
    if isinstance(review_tools, str):
        msg = f"review_tools must be a list of tool names, got the string {review_tools!r}"
        raise TypeError(msg)
    if review_tools and confidence is None:
        msg = (
            f"review_tools={list(review_tools)!r} needs confidence sources to score the "
            'calls: e.g. confidence=ConfidenceConfig(sources=["consistency"])'
        )
        raise ValueError(msg)
    return frozenset(review_tools)


def with_ids(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """Give each message without an id an ``esc-`` one, in place, so later steps can find it."""
    for message in messages:
        message.id = message.id or f"esc-{uuid.uuid4().hex}"
    return list(messages)


def with_verbalized_instruction(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """Return a copy of ``messages`` with ``VERBALIZED_INSTRUCTION`` once in the system prompt."""
    out = list(messages)
    for index, message in enumerate(out):
        if isinstance(message, SystemMessage):
            text = steps.content_text(message.content)
            if VERBALIZED_INSTRUCTION not in text:
                content = f"{text}\n\n{VERBALIZED_INSTRUCTION}".strip()
                out[index] = message.model_copy(update={"content": content})
            return out
    return [SystemMessage(VERBALIZED_INSTRUCTION), *out]


def verbalized_score(reply: AIMessage) -> float | None:
    r"""Return the stated confidence: ``response_metadata["confidence"]``, else a last line.

    The detector's parser (``35%`` reads 0.35) without its logprobs fallback.

    Example:
        >>> verbalized_score(AIMessage("42\nConfidence: 35%"))
        0.35
    """
    metadata = {k: v for k, v in reply.response_metadata.items() if k != "logprobs"}
    return steps.read_confidence(reply.model_copy(update={"response_metadata": metadata}))


def without_verbalized(reply: AIMessage) -> AIMessage:
    """Return the reply without its final ``Confidence: x`` line (for the detector only)."""
    text = reply.content
    if isinstance(text, str) and (stripped := steps.strip_confidence(text)) != text:
        return reply.model_copy(update={"content": stripped})
    return reply


def logprob_score(reply: AIMessage, aggregate: Aggregate = "mean") -> float | None:
    """Return the probability of the answer's tokens (not a ``Confidence:`` line's) from logprobs.

    Args:
        reply: Its ``response_metadata["logprobs"]``: OpenAI's shape, dict or object.
        aggregate: ``mean``: the geometric-mean token probability; ``min``: the lowest.

    Returns:
        A probability in 0..1; ``None`` (and one debug log) without logprobs.

    Example:
        >>> tokens = [{"token": "4", "logprob": -0.5}, {"token": "2", "logprob": -1.5}]
        >>> reply = AIMessage("42", response_metadata={"logprobs": {"content": tokens}})
        >>> round(logprob_score(reply), 3), round(logprob_score(reply, "min"), 3)
        (0.368, 0.223)
    """
    tokens = token_logprobs(reply.response_metadata.get("logprobs"))
    if not tokens:
        logger.debug("logprobs confidence: the reply carries no token logprobs; source absent")
        return None
    end = len(steps.strip_confidence(steps.content_text(reply.content)))
    starts = itertools.accumulate((len(token) for token, _ in tokens), initial=0)
    values = [value for (_, value), start in zip(tokens, starts, strict=False) if start < end]
    values = values or [value for _, value in tokens]
    return math.exp(min(values) if aggregate == "min" else sum(values) / len(values))


def token_logprobs(logprobs: Any) -> list[tuple[str, float]]:
    """Return ``(token, logprob)`` pairs from OpenAI-shaped logprobs (dict or object)."""
    content = _field(logprobs, "content")
    pairs: list[tuple[str, float]] = []
    for entry in content if isinstance(content, list) else []:
        token, value = _field(entry, "token"), _field(entry, "logprob")
        if isinstance(token, str) and _is_number(value) and value <= 0:
            pairs.append((token, float(value)))
    return pairs


class Agreement:
    """Counts how many weak samples give the reply's ``answer_key``, and when to stop drawing.

    Args:
        reply: The reply being scored, the first vote.
        samples: The most extra samples to draw (k).
    """

    def __init__(self, reply: AIMessage, samples: int) -> None:
        """Start with the reply as the first vote."""
        self._key = answer_key(reply)
        self._votes: Counter[str] = Counter({self._key: 1})
        self._left = samples
        self.samples: list[AIMessage] = []

    def add(self, sample: AIMessage) -> AIMessage:
        """Count one more sample and keep it in ``samples`` (its usage is cost); return it."""
        self._votes[answer_key(sample)] += 1
        self._left -= 1
        self.samples.append(sample)
        return sample

    def settled(self) -> bool:
        """True when k samples were drawn, or no remaining draw can change the majority."""
        counts = [*sorted(self._votes.values(), reverse=True), 0]
        return self._left <= 0 or counts[0] > counts[1] + self._left

    def score(self) -> float:
        """The share of answers (the reply and its samples) that agree with the reply."""
        return self._votes[self._key] / sum(self._votes.values())


def answer_key(message: AIMessage) -> str:
    """Return what ``consistency`` compares: a call's canonical action, or the normalized text."""
    calls = steps.calls_of(message)
    if calls:
        return "action:" + steps.action_key(calls)
    text = steps.strip_confidence(steps.content_text(message.content)).strip()
    return "reply:" + steps.short_hash(normalize_text(text))


def run_verifier(
    verifier: Callable[..., Any], reply: AIMessage, state: Any
) -> tuple[float, str | None]:
    """Run the check ``(reply, state) -> float | bool``: the score, and why it failed if it did.

    A check that raises or returns something else scores 0.0; the error text is for the record.
    """
    try:
        outcome = verifier(reply, state)
    except Exception as error:  # noqa: BLE001 - the user's check failing is a failed check
        return _failed_check(error)
    if inspect.isawaitable(outcome):
        close = getattr(outcome, "close", None)
        if callable(close):  # an un-awaited coroutine warns at garbage collection
            close()
        return 0.0, "verify returned an awaitable: use ascore for an async verifier"
    return _checked(outcome)


async def arun_verifier(
    verifier: Callable[..., Any], reply: AIMessage, state: Any
) -> tuple[float, str | None]:
    """Async twin of ``run_verifier``: a coroutine verifier is awaited."""
    try:
        outcome = verifier(reply, state)
        if inspect.isawaitable(outcome):
            outcome = await outcome
    except Exception as error:  # noqa: BLE001 - the user's check failing is a failed check
        return _failed_check(error)
    return _checked(outcome)


def combine_scores(
    scores: Mapping[str, float], combine: Callable[[dict[str, float]], float] | None = None
) -> tuple[float | None, str | None]:
    """Return the combined score (clipped to 0..1; ``None``: none) and the lowest source's name.

    Example:
        >>> combine_scores({"verbalized": 0.9, "consistency": 0.4})
        (0.4, 'consistency')
    """
    if not scores:
        return None, None
    low = min(scores, key=lambda name: scores[name])
    if combine is None:
        return scores[low], low
    return min(1.0, max(0.0, float(combine(dict(scores))))), low


def with_low_source(verdict: Verdict, reply: AIMessage) -> Verdict:
    """Return ``verdict``; a ``low_confidence`` one on a scored reply names its lowest source."""
    low = _low_source(reply)
    if verdict.rule != "low_confidence" or not low:
        return verdict
    return replace(verdict, reason=f"{verdict.reason} Lowest source: {low}.")


def review_verdict(
    reply: AIMessage, review_tools: Collection[str], threshold: float | None
) -> Verdict:
    """Return a stuck verdict when a scored call under review is below ``threshold``.

    Its reason names the call, its score and the lowest source. Otherwise, or with
    ``threshold=None``, a calm ``Verdict()``.

    Example:
        >>> from langchain_core.messages import ToolCall
        >>> call = ToolCall(name="issue_refund", args={"amount": 250}, id="c1")
        >>> reply = AIMessage("", tool_calls=[call], response_metadata={"confidence": 0.3})
        >>> review_verdict(reply, ["issue_refund"], 0.5).stuck
        True
    """
    # Imported here: the expert package is heavy, and the config loader imports this module.
    from langchain_escalate.expert.briefing import describe_call  # noqa: PLC0415

    score = reply.response_metadata.get(METADATA_KEY)
    reviewed = [call for call in reply.tool_calls if call["name"] in review_tools]
    if not reviewed or threshold is None or score is None or score >= threshold:
        return Verdict()
    reason = (
        f"The model proposed {describe_call(reply)} ({reviewed[0]['name']} is under review) "
        f"with confidence {score:.2f} from {_low_source(reply)}, below the threshold "
        f"{threshold:.2f}; the call did not run."
    )
    return Verdict(stuck=True, rule="low_confidence", reason=reason)


def import_object(path: str) -> Any:
    """Import ``"pkg.module:attribute"`` (the attribute may be dotted) and return it.

    Raises:
        ValueError: No ``:``, or the module or the attribute is missing (says which).
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        msg = f"{path!r} is not an import string: write 'pkg.module:attribute'"
        raise ValueError(msg)
    try:
        return pkgutil.resolve_name(path)
    except ImportError as error:
        msg = f"cannot import module {module_name!r} for {path!r}: {error}"
        raise ValueError(msg) from error
    except AttributeError as error:
        msg = f"module {module_name!r} has no attribute {attribute!r}"
        raise ValueError(msg) from error


def import_string(path: str) -> Callable[..., Any]:
    """Import ``"pkg.module:function"`` and return the callable it names.

    Raises:
        ValueError: As ``import_object``, or the attribute is not callable.
    """
    target = import_object(path)
    if not callable(target):
        msg = f"{path!r} is not callable"
        raise ValueError(msg)  # noqa: TRY004 - pydantic reports only ValueError with its location
    return target  # type: ignore[no-any-return]


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _low_source(reply: AIMessage) -> str | None:
    return (reply.response_metadata.get(SOURCES_KEY) or {}).get("low_source")


def _checked(outcome: Any) -> tuple[float, str | None]:
    if isinstance(outcome, bool):
        return (1.0 if outcome else 0.0), None
    if _is_number(outcome) and 0.0 <= outcome <= 1.0:
        return float(outcome), None
    return 0.0, f"verify returned {outcome!r}: expected a bool or a number in 0..1"


def _failed_check(error: Exception) -> tuple[float, str]:
    logger.warning("confidence: the verify function raised %s: %s", type(error).__name__, error)
    return 0.0, f"{type(error).__name__}: {error}"
