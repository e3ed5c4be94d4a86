"""Confidence sources for a weak model's reply: verbalized, logprobs, consistency, verify.

Each source gives a score in 0..1, or nothing when it has nothing to say (a
reply without a ``Confidence:`` line, a provider without logprobs). The scores
are combined by the minimum unless the user gives a function, and the result
names the lowest source, so an escalation record can say *why* the confidence
was low. A reply with no score from any source is not low-confidence.

Pure: ``langchain_core`` messages and the detector's normalization, no LangGraph,
no litellm. The escalating node and the middleware call ``ConfidenceScorer``;
``resample`` is their callable that draws one more weak sample. See
``docs/confidence.md``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeGuard, cast

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from langchain_escalate.detector.normalize import normalize_text
from langchain_escalate.detector.steps import (
    action_key,
    calls_of,
    content_text,
    read_confidence,
    short_hash,
    strip_confidence,
)
from langchain_escalate.detector.verdict import Verdict

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence

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

# A verifier may be a plain function of (reply, state) or a coroutine function.
Verifier = Any
Combiner = Any


class ConfidenceConfig(BaseModel):
    """Which confidence sources score a weak model's reply, and how they combine.

    Attributes:
        sources: Any of ``verbalized``, ``logprobs``, ``consistency``, ``verify``.
        samples: k, the extra weak samples ``consistency`` may draw; drawing
            stops early once the majority answer can no longer change.
        logprobs_aggregate: ``mean`` (the geometric-mean probability of the
            answer's tokens) or ``min`` (its least likely token).
        verify: ``(reply, state) -> float | bool`` (sync or async), or an import
            string ``"pkg.module:function"`` (for YAML). Required with ``verify``.
        combine: ``(scores: dict[str, float]) -> float``, or an import string;
            ``None`` takes the minimum.

    Example:
        >>> ConfidenceConfig(sources=["verbalized", "consistency"], samples=5).samples
        5
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    sources: tuple[Source, ...] = Field(default=("verbalized",), min_length=1)
    samples: int = Field(default=3, ge=1, le=20)
    logprobs_aggregate: Aggregate = "mean"
    verify: Verifier | None = None
    combine: Combiner | None = None

    @field_validator("verify", "combine", mode="before")
    @classmethod
    def _resolve(cls, value: Any) -> Any:
        if value is None or callable(value):
            return value
        if isinstance(value, str):
            return import_string(value)
        msg = f"expected a callable or an import string 'pkg.module:function', got {value!r}"
        raise ValueError(msg)

    @field_serializer("verify", "combine")
    def _as_import_string(self, value: Any) -> str | None:
        # Shown by check-config and kept in records as the import string YAML takes.
        if value is None:
            return None
        return f"{value.__module__}:{value.__qualname__}"

    @field_validator("sources")
    @classmethod
    def _no_repeats(cls, value: tuple[Source, ...]) -> tuple[Source, ...]:
        if len(set(value)) != len(value):
            msg = f"each source once: {list(value)}"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _verify_needs_a_function(self) -> ConfidenceConfig:
        if "verify" in self.sources and self.verify is None:
            msg = "the 'verify' source needs a verify function: verify=check or 'pkg.mod:check'"
            raise ValueError(msg)
        return self


@dataclass(frozen=True)
class ConfidenceResult:
    """What the sources said about one reply.

    Attributes:
        score: The combined confidence, ``None`` when no source had a score.
        low_source: The source with the lowest score (``None`` with no score).
        scores: Each source that gave a score, by name.
        reply: The reply without its ``Confidence:`` line (what the graph keeps).
        samples: The extra weak samples ``consistency`` drew; their usage is cost.
        verify_error: ``"ValueError: ..."`` when the verifier raised (a failed check).
    """

    score: float | None
    low_source: str | None
    scores: dict[str, float]
    reply: AIMessage
    samples: list[AIMessage] = field(default_factory=list)
    verify_error: str | None = None

    def to_metadata(self) -> dict[str, Any]:
        """Return the JSON-ready summary for a record or ``response_metadata``."""
        summary: dict[str, Any] = {
            "score": self.score,
            "low_source": self.low_source,
            "scores": self.scores,
            "samples": len(self.samples),
        }
        if self.verify_error is not None:
            summary["verify_error"] = self.verify_error
        return summary

    def scored_reply(self) -> AIMessage:
        """Return the stripped reply with the combined score where the detector reads it.

        ``response_metadata["confidence"]`` is what the ``low_confidence`` rule
        reads first; ``response_metadata["confidence_sources"]`` keeps the detail.
        """
        if self.score is None:
            return self.reply
        metadata = {
            **self.reply.response_metadata,
            METADATA_KEY: self.score,
            SOURCES_KEY: self.to_metadata(),
        }
        return self.reply.model_copy(update={"response_metadata": metadata})


class ConfidenceScorer:
    r"""Score a weak model's reply with the configured sources (sync and async twins).

    Args:
        config: The sources and their settings.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> scorer = ConfidenceScorer(ConfidenceConfig(sources=["verbalized"]))
        >>> result = scorer.score(AIMessage("Paris.\nConfidence: 0.4"), {})
        >>> result.score, result.low_source, result.reply.content
        (0.4, 'verbalized', 'Paris.')
    """

    def __init__(self, config: ConfidenceConfig | None = None) -> None:
        """Keep the configuration (see the class docstring)."""
        self.config = config or ConfidenceConfig()

    def prepare(self, messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        """Return the weak model's input, with the verbalized instruction when that source is on.

        Args:
            messages: What the weak model would be called with.

        Returns:
            The messages, the instruction added to the system prompt.
        """
        if "verbalized" not in self.config.sources:
            return list(messages)
        return with_verbalized_instruction(messages)

    def score(
        self,
        reply: AIMessage,
        state: Any,
        *,
        resample: Callable[[], AIMessage] | None = None,
    ) -> ConfidenceResult:
        """Score ``reply`` with every configured source and combine.

        Args:
            reply: The weak model's reply (a final answer or a tool call).
            state: The graph state (or ``{"messages": [...]}``), passed to ``verify``.
            resample: Draws one more weak sample for ``consistency``; without
                it that source is absent.

        Returns:
            The combined score, the low source and the detail.
        """
        scores = self._single_message_scores(reply)
        samples: list[AIMessage] = []
        if "consistency" in self.config.sources and resample is not None:
            tally = Agreement(reply, self.config.samples)
            while not tally.settled():
                samples.append(tally.add(resample()))
            scores["consistency"] = tally.score()
        verify_error = None
        if "verify" in self.config.sources:
            scores["verify"], verify_error = run_verifier(self._verifier(), reply, state)
        return self._result(reply, scores, samples, verify_error)

    async def ascore(
        self,
        reply: AIMessage,
        state: Any,
        *,
        resample: Callable[[], Awaitable[AIMessage]] | None = None,
    ) -> ConfidenceResult:
        """Async twin of ``score``: ``resample`` and ``verify`` may be awaited."""
        scores = self._single_message_scores(reply)
        samples: list[AIMessage] = []
        if "consistency" in self.config.sources and resample is not None:
            tally = Agreement(reply, self.config.samples)
            while not tally.settled():
                samples.append(tally.add(await resample()))
            scores["consistency"] = tally.score()
        verify_error = None
        if "verify" in self.config.sources:
            scores["verify"], verify_error = await arun_verifier(self._verifier(), reply, state)
        return self._result(reply, scores, samples, verify_error)

    def _verifier(self) -> Callable[..., Any]:
        # ConfidenceConfig refuses the "verify" source without a function.
        return cast("Callable[..., Any]", self.config.verify)

    def _single_message_scores(self, reply: AIMessage) -> dict[str, float]:
        scores: dict[str, float] = {}
        if "verbalized" in self.config.sources:
            stated = verbalized_score(reply)
            if stated is not None:
                scores["verbalized"] = stated
        if "logprobs" in self.config.sources:
            probability = logprob_score(reply, self.config.logprobs_aggregate)
            if probability is not None:
                scores["logprobs"] = probability
        return scores

    def _result(
        self,
        reply: AIMessage,
        scores: dict[str, float],
        samples: list[AIMessage],
        verify_error: str | None,
    ) -> ConfidenceResult:
        combined, low = combine_scores(scores, self.config.combine)
        return ConfidenceResult(
            score=combined,
            low_source=low,
            scores=scores,
            reply=without_verbalized(reply),
            samples=samples,
            verify_error=verify_error,
        )


def with_verbalized_instruction(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """Return ``messages`` with ``VERBALIZED_INSTRUCTION`` in the system prompt.

    The instruction is appended to the first system message, or a system message
    holding it is put first. Added once: messages that already hold it are unchanged.

    Args:
        messages: The weak model's input.

    Returns:
        A new list; the caller's messages are not modified.
    """
    out = list(messages)
    for index, message in enumerate(out):
        if isinstance(message, SystemMessage):
            text = content_text(message.content)
            if VERBALIZED_INSTRUCTION not in text:
                out[index] = message.model_copy(
                    update={"content": f"{text}\n\n{VERBALIZED_INSTRUCTION}".strip()}
                )
            return out
    return [SystemMessage(VERBALIZED_INSTRUCTION), *out]


def verbalized_score(reply: AIMessage) -> float | None:
    r"""Return the reply's stated confidence: a final ``Confidence: x`` line or metadata.

    The detector's parser (``response_metadata["confidence"]`` first, then the
    line; ``35%`` reads as 0.35), without its logprobs fallback, which is the
    ``logprobs`` source's job.

    Example:
        >>> verbalized_score(AIMessage("42\nConfidence: 35%"))
        0.35
    """
    metadata = {k: v for k, v in reply.response_metadata.items() if k != "logprobs"}
    return read_confidence(reply.model_copy(update={"response_metadata": metadata}))


def without_verbalized(reply: AIMessage) -> AIMessage:
    """Return the reply without its final ``Confidence: x`` line (for the detector only)."""
    if isinstance(reply.content, str):
        stripped = strip_confidence(reply.content)
        if stripped != reply.content:
            return reply.model_copy(update={"content": stripped})
    return reply


def logprob_score(reply: AIMessage, aggregate: Aggregate = "mean") -> float | None:
    r"""Return the probability of the reply's answer tokens, from the provider's logprobs.

    Reads ``response_metadata["logprobs"]["content"]`` (OpenAI's shape, as a dict
    or as litellm's ``ChoiceLogprobs``). Only the answer's tokens count: those
    of a final ``Confidence:`` line are left out, as they rate the rating.

    Args:
        reply: The weak model's reply.
        aggregate: ``mean``: ``exp`` of the mean logprob (the geometric-mean token
            probability); ``min``: the least likely token's probability.

    Returns:
        A probability in 0..1; ``None`` (and one debug log) when the reply carries
        no logprobs (the provider gave none, or they were not requested).

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
    answer = answer_tokens(tokens, content_text(reply.content))
    values = [value for _, value in answer] or [value for _, value in tokens]
    if aggregate == "min":
        return math.exp(min(values))
    return math.exp(sum(values) / len(values))


def token_logprobs(logprobs: Any) -> list[tuple[str, float]]:
    """Return ``(token, logprob)`` pairs from OpenAI-shaped logprobs (dict or object)."""
    if logprobs is None:
        return []
    content = (
        logprobs.get("content")
        if isinstance(logprobs, dict)
        else getattr(logprobs, "content", None)
    )
    pairs: list[tuple[str, float]] = []
    for entry in content if isinstance(content, list) else []:
        if isinstance(entry, dict):
            token, value = entry.get("token"), entry.get("logprob")
        else:
            token, value = getattr(entry, "token", None), getattr(entry, "logprob", None)
        if isinstance(token, str) and _is_logprob(value):
            pairs.append((token, float(value)))
    return pairs


def answer_tokens(tokens: list[tuple[str, float]], text: str) -> list[tuple[str, float]]:
    """Return the tokens that spell ``text`` before its final ``Confidence:`` line."""
    end = len(strip_confidence(text))
    kept: list[tuple[str, float]] = []
    seen = 0
    for token, value in tokens:
        if seen >= end:
            break
        kept.append((token, value))
        seen += len(token)
    return kept


class Agreement:
    """Counts how many weak samples give the reply's answer, and when to stop drawing.

    Answers are compared as the detector compares steps: a tool call by its
    canonical action (names and normalized arguments, ids ignored), a reply by
    its normalized text without the ``Confidence:`` line.

    Args:
        reply: The reply being scored.
        samples: The most extra samples to draw (k).
    """

    def __init__(self, reply: AIMessage, samples: int) -> None:
        """Start with the reply as the first vote."""
        self._key = answer_key(reply)
        self._votes: Counter[str] = Counter({self._key: 1})
        self._left = samples

    def add(self, sample: AIMessage) -> AIMessage:
        """Count one more sample; return it (so callers can keep it for cost)."""
        self._votes[answer_key(sample)] += 1
        self._left -= 1
        return sample

    def settled(self) -> bool:
        """True when k samples were drawn, or no remaining draw can change the majority."""
        if self._left <= 0:
            return True
        counts = [*sorted(self._votes.values(), reverse=True), 0]
        return counts[0] > counts[1] + self._left

    def score(self) -> float:
        """The share of answers (the reply and its samples) that agree with the reply."""
        return self._votes[self._key] / sum(self._votes.values())


def answer_key(message: AIMessage) -> str:
    """Return what ``consistency`` compares: the canonical action, or the normalized reply."""
    calls = calls_of(message)
    if calls:
        return "action:" + action_key(calls)
    text = strip_confidence(content_text(message.content)).strip()
    return "reply:" + short_hash(normalize_text(text))


def run_verifier(
    verifier: Callable[..., Any], reply: AIMessage, state: Any
) -> tuple[float, str | None]:
    """Run the user's check; a raise or a bad return is a failed check (0.0), never a crash.

    Args:
        verifier: ``(reply, state) -> float | bool``.
        reply: The reply to check.
        state: The graph state.

    Returns:
        The score (``True`` is 1.0, ``False`` 0.0) and, when the check failed by
        raising or returning something else, the error text for the record.
    """
    try:
        outcome = verifier(reply, state)
    except Exception as error:  # noqa: BLE001 - the user's check failing is a failed check
        return _failed_check(error)
    if inspect.isawaitable(outcome):
        _close(outcome)
        return 0.0, "verify returned an awaitable: use ascore for an async verifier"
    return _verdict(outcome)


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
    return _verdict(outcome)


def combine_scores(
    scores: Mapping[str, float], combine: Callable[[dict[str, float]], float] | None = None
) -> tuple[float | None, str | None]:
    """Combine per-source scores; return the score and the name of the lowest source.

    Args:
        scores: Each source's score.
        combine: The user's function of the scores; ``None`` takes the minimum.
            Its result is clipped to 0..1.

    Returns:
        ``(score, low_source)``; ``(None, None)`` when no source gave a score.

    Example:
        >>> combine_scores({"verbalized": 0.9, "consistency": 0.4})
        (0.4, 'consistency')
    """
    if not scores:
        return None, None
    low = min(scores, key=lambda name: scores[name])
    if combine is None:
        return scores[low], low
    combined = float(combine(dict(scores)))
    return min(1.0, max(0.0, combined)), low


def with_low_source(verdict: Verdict, reply: AIMessage) -> Verdict:
    """Return ``verdict`` with the reply's lowest confidence source named in its reason.

    Only a ``low_confidence`` verdict on a reply the sources scored is changed.

    Args:
        verdict: The detector's verdict on ``reply``.
        reply: The scored reply (``response_metadata["confidence_sources"]``).

    Returns:
        The verdict, its reason ending ``Lowest source: consistency.`` when it applies.
    """
    low = (reply.response_metadata.get(SOURCES_KEY) or {}).get("low_source")
    if verdict.rule != "low_confidence" or not low:
        return verdict
    return replace(verdict, reason=f"{verdict.reason} Lowest source: {low}.")


def review_verdict(
    reply: AIMessage, review_tools: Collection[str], threshold: float | None
) -> Verdict:
    """Return a stuck verdict when a call under review has a combined confidence below threshold.

    Used by the escalating node and the middleware alike, before the call runs.

    Args:
        reply: The weak model's scored reply (its ``response_metadata["confidence"]``).
        review_tools: Names of the tools whose calls are reviewed.
        threshold: The detector's ``low_confidence`` threshold (``None``: off).

    Returns:
        ``Verdict(stuck=True, rule="low_confidence", ...)`` whose reason names the
        proposed call, its score and the lowest source; otherwise a calm ``Verdict()``.

    Example:
        >>> from langchain_core.messages import ToolCall
        >>> call = ToolCall(name="issue_refund", args={"amount": 250}, id="c1")
        >>> reply = AIMessage("", tool_calls=[call], response_metadata={"confidence": 0.3})
        >>> review_verdict(reply, ["issue_refund"], 0.5).stuck
        True
    """
    # Imported here: the expert package is heavy, and calibrate imports this module.
    from langchain_escalate.expert.briefing import describe_call  # noqa: PLC0415

    score = reply.response_metadata.get(METADATA_KEY)
    reviewed = [call for call in reply.tool_calls if call["name"] in review_tools]
    if not reviewed or threshold is None or score is None or score >= threshold:
        return Verdict()
    low = (reply.response_metadata.get(SOURCES_KEY) or {}).get("low_source")
    reason = (
        f"The model proposed {describe_call(reply)} ({reviewed[0]['name']} is under review) "
        f"with confidence {score:.2f} from {low}, below the threshold {threshold:.2f}; "
        "the call did not run."
    )
    return Verdict(stuck=True, rule="low_confidence", reason=reason)


def import_string(path: str) -> Callable[..., Any]:
    """Import ``"pkg.module:attribute"`` and return the callable it names.

    Raises:
        ValueError: The string has no ``:``, the module or attribute is missing,
            or the attribute is not callable (the message says which).
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        msg = f"{path!r} is not an import string: write 'pkg.module:function'"
        raise ValueError(msg)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        msg = f"cannot import module {module_name!r} for {path!r}: {error}"
        raise ValueError(msg) from error
    for part in attribute.split("."):
        if not hasattr(target, part):
            msg = f"module {module_name!r} has no attribute {attribute!r}"
            raise ValueError(msg)
        target = getattr(target, part)
    if not callable(target):
        msg = f"{path!r} is not callable"
        raise ValueError(msg)  # noqa: TRY004 - pydantic reports only ValueError with its location
    return target  # type: ignore[no-any-return]


def _is_logprob(value: Any) -> TypeGuard[float]:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return is_number and math.isfinite(value) and value <= 0


def _verdict(outcome: Any) -> tuple[float, str | None]:
    if isinstance(outcome, bool):
        return (1.0 if outcome else 0.0), None
    if isinstance(outcome, (int, float)) and math.isfinite(outcome) and 0.0 <= outcome <= 1.0:
        return float(outcome), None
    return 0.0, f"verify returned {outcome!r}: expected a bool or a number in 0..1"


def _failed_check(error: Exception) -> tuple[float, str]:
    logger.warning("confidence: the verify function raised %s: %s", type(error).__name__, error)
    return 0.0, f"{type(error).__name__}: {error}"


def _close(outcome: Any) -> None:
    # An un-awaited coroutine warns at garbage collection; close it explicitly.
    close = getattr(outcome, "close", None)
    if callable(close):
        close()
