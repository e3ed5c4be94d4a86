"""Confidence sources, each driven by a scripted weak model (issue #10)."""

from __future__ import annotations

import logging
import operator
import statistics
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import ValidationError

from langchain_escalate.confidence import (
    VERBALIZED_INSTRUCTION,
    ConfidenceConfig,
    ConfidenceScorer,
    combine_scores,
)
from langchain_escalate.detector import DetectorConfig, StuckDetector
from langchain_escalate.testing import ScriptedChatModel, tool_call

QUESTION = [HumanMessage("What is 17 + 25?")]


def _resampler(model: ScriptedChatModel) -> Any:
    return lambda: model.invoke(QUESTION)


def _aresampler(model: ScriptedChatModel) -> Any:
    async def draw() -> AIMessage:
        return await model.ainvoke(QUESTION)

    return draw


# --- verbalized -----------------------------------------------------------------


def test_verbalized_instruction_joins_the_system_prompt_once() -> None:
    scorer = ConfidenceScorer(ConfidenceConfig(sources=["verbalized"]))

    prepared = scorer.prepare([SystemMessage("You are terse."), *QUESTION])
    again = scorer.prepare(prepared)

    assert isinstance(prepared[0], SystemMessage)
    assert prepared[0].content == f"You are terse.\n\n{VERBALIZED_INSTRUCTION}"
    assert again[0].content == prepared[0].content
    assert prepared[1:] == QUESTION


def test_verbalized_instruction_without_a_system_prompt_comes_first() -> None:
    prepared = ConfidenceScorer().prepare(QUESTION)

    assert prepared[0] == SystemMessage(VERBALIZED_INSTRUCTION)
    assert prepared[1:] == QUESTION


def test_no_instruction_when_verbalized_is_off() -> None:
    scorer = ConfidenceScorer(ConfidenceConfig(sources=["logprobs"]))

    assert scorer.prepare(QUESTION) == QUESTION


def test_verbalized_score_is_parsed_and_the_line_stripped() -> None:
    weak = ScriptedChatModel(script=[AIMessage("42\nConfidence: 30%")])
    reply = weak.invoke(QUESTION)

    result = ConfidenceScorer().score(reply, {"messages": QUESTION})

    assert result.score == pytest.approx(0.3)
    assert result.low_source == "verbalized"
    assert result.reply.content == "42"


def test_a_reply_with_no_score_is_not_low_confidence() -> None:
    reply = AIMessage("42")

    result = ConfidenceScorer().score(reply, {})
    scored = result.scored_reply()
    verdict = StuckDetector(DetectorConfig(low_confidence=0.5)).observe(scored)

    assert (result.score, result.low_source) == (None, None)
    assert "confidence" not in scored.response_metadata
    assert not verdict.stuck


def test_the_detector_reads_the_combined_score() -> None:
    # Verbalized 0.9 alone would pass; consistency 1/3 is what makes it low.
    weak = ScriptedChatModel(script=[AIMessage("41"), AIMessage("43")])
    reply = AIMessage("42\nConfidence: 0.9")
    scorer = ConfidenceScorer(ConfidenceConfig(sources=["verbalized", "consistency"], samples=2))

    scored = scorer.score(reply, {}, resample=_resampler(weak)).scored_reply()
    verdict = StuckDetector(DetectorConfig(low_confidence=0.5)).observe(scored)

    assert scored.content == "42"
    assert scored.response_metadata["confidence_sources"]["low_source"] == "consistency"
    assert verdict.stuck
    assert verdict.rule == "low_confidence"


# --- logprobs -------------------------------------------------------------------


def _with_logprobs(text: str, logprobs: list[tuple[str, float]]) -> AIMessage:
    content = [{"token": token, "logprob": value, "top_logprobs": []} for token, value in logprobs]
    return AIMessage(text, response_metadata={"logprobs": {"content": content}})


def test_logprobs_score_the_answer_tokens_not_the_confidence_line() -> None:
    tokens = [("4", -0.1), ("2", -0.3), ("\n", -0.0), ("Confidence", -5.0), (": 0.9", -5.0)]
    reply = _with_logprobs("42\nConfidence: 0.9", tokens)
    mean = ConfidenceScorer(ConfidenceConfig(sources=["logprobs"]))
    least = ConfidenceScorer(ConfidenceConfig(sources=["logprobs"], logprobs_aggregate="min"))

    # exp(mean(-0.1, -0.3)) = exp(-0.2); exp(min) = exp(-0.3).
    assert mean.score(reply, {}).score == pytest.approx(0.818730753)
    assert least.score(reply, {}).score == pytest.approx(0.740818221)


def test_missing_logprobs_leave_the_source_absent_with_one_debug_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    weak = ScriptedChatModel(script=[AIMessage("42\nConfidence: 0.8")])
    scorer = ConfidenceScorer(ConfidenceConfig(sources=["verbalized", "logprobs"]))

    with caplog.at_level(logging.DEBUG, logger="langchain_escalate"):
        result = scorer.score(weak.invoke(QUESTION), {})

    assert result.scores == {"verbalized": 0.8}
    assert result.low_source == "verbalized"
    notes = [record for record in caplog.records if "logprobs" in record.getMessage()]
    assert len(notes) == 1
    assert notes[0].levelno == logging.DEBUG


def test_logprobs_as_litellm_objects_are_read() -> None:
    class Token:
        def __init__(self, token: str, logprob: float) -> None:
            self.token, self.logprob = token, logprob

    class ChoiceLogprobs:
        def __init__(self) -> None:
            self.content = [Token("42", -0.5)]

    reply = AIMessage("42", response_metadata={"logprobs": ChoiceLogprobs()})

    result = ConfidenceScorer(ConfidenceConfig(sources=["logprobs"])).score(reply, {})

    assert result.score == pytest.approx(0.60653066)


# --- consistency ----------------------------------------------------------------


def test_disagreeing_samples_give_low_consistency_and_their_cost_is_kept() -> None:
    weak = ScriptedChatModel(script=[AIMessage("41"), AIMessage("43"), AIMessage("40")])
    scorer = ConfidenceScorer(ConfidenceConfig(sources=["consistency"], samples=3))

    result = scorer.score(AIMessage("42"), {}, resample=_resampler(weak))

    assert result.scores["consistency"] == pytest.approx(1 / 4)
    assert result.low_source == "consistency"
    assert len(result.samples) == 3
    assert all(sample.usage_metadata for sample in result.samples)


def test_agreeing_samples_stop_early_once_the_majority_is_certain() -> None:
    # k=4: after two agreeing samples the reply's answer has 3 votes, and the
    # two draws left cannot make another answer reach it.
    weak = ScriptedChatModel(script=[AIMessage(" 42 "), AIMessage("42"), AIMessage("unused")])
    scorer = ConfidenceScorer(ConfidenceConfig(sources=["consistency"], samples=4))

    result = scorer.score(AIMessage("42"), {}, resample=_resampler(weak))

    assert result.scores["consistency"] == 1.0
    assert len(result.samples) == 2
    assert weak.remaining == 1


def test_tool_calls_are_compared_as_actions_ignoring_ids_and_key_order() -> None:
    refund = {"order": "A1", "amount": 20}
    weak = ScriptedChatModel(
        script=[
            AIMessage("", tool_calls=[tool_call("refund", {"order": "A1", "amount": 200})]),
            AIMessage("", tool_calls=[tool_call("refund", {"amount": 20, "order": "A1"})]),
        ]
    )
    reply = AIMessage("", tool_calls=[tool_call("refund", refund)])
    scorer = ConfidenceScorer(ConfidenceConfig(sources=["consistency"], samples=2))

    result = scorer.score(reply, {}, resample=_resampler(weak))

    assert result.scores["consistency"] == pytest.approx(2 / 3)


def test_consistency_without_a_resampler_is_absent() -> None:
    scorer = ConfidenceScorer(ConfidenceConfig(sources=["consistency"]))

    assert scorer.score(AIMessage("42"), {}).score is None


async def test_async_consistency_draws_through_the_async_resampler() -> None:
    weak = ScriptedChatModel(script=[AIMessage("41"), AIMessage("42")])
    scorer = ConfidenceScorer(ConfidenceConfig(sources=["consistency"], samples=2))

    result = await scorer.ascore(AIMessage("42"), {}, resample=_aresampler(weak))

    assert result.scores["consistency"] == pytest.approx(2 / 3)
    assert len(weak.calls) == 2


# --- verify ---------------------------------------------------------------------


def _answer_is_42(reply: AIMessage, state: Any) -> bool:
    del state
    return str(reply.content).strip() == "42"


def test_verify_passes_and_fails_on_the_users_check() -> None:
    scorer = ConfidenceScorer(ConfidenceConfig(sources=["verify"], verify=_answer_is_42))

    assert scorer.score(AIMessage("42"), {}).score == 1.0
    failed = scorer.score(AIMessage("41"), {})
    assert (failed.score, failed.low_source, failed.verify_error) == (0.0, "verify", None)


def test_a_raising_verifier_is_a_failed_check_with_the_exception_text() -> None:
    def check(reply: AIMessage, state: Any) -> bool:
        msg = f"no order {state['order']} for {reply.content}"
        raise LookupError(msg)

    scorer = ConfidenceScorer(ConfidenceConfig(sources=["verbalized", "verify"], verify=check))

    result = scorer.score(AIMessage("refunded\nConfidence: 0.95"), {"order": "A1"})

    assert result.score == 0.0
    assert result.low_source == "verify"
    assert result.verify_error == "LookupError: no order A1 for refunded\nConfidence: 0.95"
    assert result.to_metadata()["verify_error"] == result.verify_error


def test_a_verifier_returning_nonsense_is_a_failed_check() -> None:
    scorer = ConfidenceScorer(ConfidenceConfig(sources=["verify"], verify=lambda r, s: 1.5))

    result = scorer.score(AIMessage("42"), {})

    assert result.score == 0.0
    assert result.verify_error == "verify returned 1.5: expected a bool or a number in 0..1"


async def test_an_async_verifier_is_awaited() -> None:
    async def check(reply: AIMessage, state: Any) -> float:
        del reply, state
        return 0.25

    scorer = ConfidenceScorer(ConfidenceConfig(sources=["verify"], verify=check))

    assert (await scorer.ascore(AIMessage("42"), {})).score == 0.25
    sync = scorer.score(AIMessage("42"), {})
    assert sync.score == 0.0
    assert sync.verify_error is not None
    assert "ascore" in sync.verify_error


def test_verify_and_combine_from_import_strings_as_yaml_gives_them() -> None:
    config = ConfidenceConfig.model_validate(
        {"sources": ["verify"], "verify": "operator:eq", "combine": "statistics:fmean"}
    )

    assert config.verify is operator.eq
    assert config.combine is statistics.fmean


@pytest.mark.parametrize(
    ("verify", "problem"),
    [
        ("no_colon", "not an import string"),
        ("nowhere_module_xyz:check", "cannot import module"),
        ("json:no_such_function", "has no attribute"),
        (None, "needs a verify function"),
    ],
)
def test_bad_verify_settings_are_refused_with_the_reason(verify: Any, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        ConfidenceConfig.model_validate({"sources": ["verify"], "verify": verify})


# --- combine --------------------------------------------------------------------


def test_combine_by_minimum_names_the_low_source() -> None:
    weak = ScriptedChatModel(script=[AIMessage("41"), AIMessage("42")])
    reply = _with_logprobs("42\nConfidence: 0.7", [("42", -0.01)])
    scorer = ConfidenceScorer(
        ConfidenceConfig(sources=["verbalized", "logprobs", "consistency"], samples=2)
    )

    result = scorer.score(reply, {}, resample=_resampler(weak))

    assert result.scores["verbalized"] == 0.7
    assert result.scores["consistency"] == pytest.approx(2 / 3)
    assert result.score == pytest.approx(2 / 3)
    assert result.low_source == "consistency"


def test_a_custom_combine_is_used_and_the_low_source_still_named() -> None:
    def mean(scores: dict[str, float]) -> float:
        return sum(scores.values()) / len(scores)

    scorer = ConfidenceScorer(
        ConfidenceConfig(sources=["verbalized", "verify"], verify=lambda r, s: 0.2, combine=mean)
    )

    result = scorer.score(AIMessage("42\nConfidence: 0.8"), {})

    assert result.score == pytest.approx(0.5)
    assert result.low_source == "verify"


def test_combine_with_no_scores_is_no_confidence() -> None:
    assert combine_scores({}) == (None, None)


def test_each_source_once() -> None:
    with pytest.raises(ValidationError, match="each source once"):
        ConfidenceConfig(sources=["verbalized", "verbalized"])
