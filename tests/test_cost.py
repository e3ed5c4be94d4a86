"""Usage and cost: litellm's own prices, configured prices, unknown prices, the run summary."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from langchain_escalate.cost import (
    PRUNED_USAGE_KEY,
    ModelPrice,
    PriceBook,
    RunSummary,
    UnknownPriceWarning,
    cache_read_tokens_of,
    cache_write_tokens_of,
    ensure_offline_price_map,
    pruned_usage,
    summarize_run,
    usage_of,
)
from langchain_escalate.records import RECORD_KEY, EscalationRecord
from langchain_escalate.testing import ScriptedChatModel, tool_call

if TYPE_CHECKING:
    from collections.abc import Sequence

litellm = pytest.importorskip("litellm")

# Cheap and strong models from litellm's bundled price map.
WEAK = "deepseek/deepseek-chat"
STRONG = "anthropic/claude-sonnet-4-6"


def _unique_model() -> str:
    # Warnings are once per model name per process: every test gets its own name.
    return f"openai/local-{uuid.uuid4().hex[:8]}"


# --- prices -------------------------------------------------------------------------


@pytest.mark.parametrize("model", [WEAK, STRONG, "openai/gpt-4o-mini", "gpt-4o-mini"])
def test_cost_equals_litellms_completion_cost(model: str) -> None:
    response = litellm.ModelResponse(
        model=model,
        usage=litellm.Usage(prompt_tokens=1234, completion_tokens=567, total_tokens=1801),
    )

    cost = PriceBook().cost_usd(model, 1234, 567)

    assert cost == litellm.completion_cost(completion_response=response, model=model)
    assert cost == sum(
        litellm.cost_per_token(model=model, prompt_tokens=1234, completion_tokens=567)
    )


@pytest.mark.parametrize("model", [WEAK, STRONG, "openai/gpt-4o-mini"])
def test_cache_reads_cost_what_litellms_completion_cost_charges_for_them(model: str) -> None:
    cached = litellm.ModelResponse(
        model=model,
        usage=litellm.Usage(
            prompt_tokens=1234,
            completion_tokens=567,
            total_tokens=1801,
            prompt_tokens_details={"cached_tokens": 1000},
        ),
    )

    cost = PriceBook().cost_usd(model, 1234, 567, cache_read_tokens=1000)

    assert cost == pytest.approx(litellm.completion_cost(completion_response=cached, model=model))
    assert _known(cost) < _known(PriceBook().cost_usd(model, 1234, 567))


@pytest.mark.parametrize("cache_read", [0, 200])
def test_cache_writes_cost_what_litellms_completion_cost_charges_for_them(cache_read: int) -> None:
    # An Anthropic reply that wrote 1000 of its 1234 prompt tokens to the cache,
    # as LangChain reports it; litellm charges the writes at 1.25x the input price.
    reply = AIMessage(
        "ok",
        usage_metadata={
            "input_tokens": 1234,
            "output_tokens": 567,
            "total_tokens": 1801,
            "input_token_details": {"cache_creation": 1000, "cache_read": cache_read},
        },
    )
    response = litellm.ModelResponse(
        model=STRONG,
        usage=litellm.Usage(
            prompt_tokens=1234,
            completion_tokens=567,
            total_tokens=1801,
            cache_creation_input_tokens=1000,
            cache_read_input_tokens=cache_read,
        ),
    )

    cost = PriceBook().cost_usd(
        STRONG,
        *usage_of(reply),
        cache_read_tokens=cache_read_tokens_of(reply),
        cache_write_tokens=cache_write_tokens_of(reply),
    )

    assert cost == pytest.approx(
        litellm.completion_cost(completion_response=response, model=STRONG)
    )
    without_writes = PriceBook().cost_usd(STRONG, 1234, 567, cache_read_tokens=cache_read)
    assert _known(cost) > _known(without_writes)


def test_configured_cache_write_price_defaults_to_twice_the_input_price() -> None:
    book = PriceBook(
        {
            "with-cache-price": {"input": 1.0, "output": 2.0, "cache_write": 1.25},
            "without": {"input": 1.0, "output": 2.0},
            "claude": {"input": 3.0, "output": 15.0},  # litellm's price, without cache_write
        }
    )

    assert book.cost_usd(
        "with-cache-price", 1_000_000, 0, cache_write_tokens=400_000
    ) == pytest.approx(0.6 + 0.5)
    assert book.cost_usd("without", 1_000_000, 0, cache_write_tokens=400_000) == pytest.approx(
        0.6 + 0.8
    )
    # Reads come first; writes count only among the prompt's other tokens.
    assert book.cost_usd(
        "with-cache-price", 1_000_000, 0, cache_read_tokens=800_000, cache_write_tokens=800_000
    ) == pytest.approx(0.8 + 0.2 * 1.25)
    # The default never charges less than litellm does for the model's writes.
    assert _known(book.cost_usd("claude", 1234, 567, cache_write_tokens=1000)) >= _known(
        PriceBook().cost_usd(STRONG, 1234, 567, cache_write_tokens=1000)
    )


def test_configured_cache_read_price_defaults_to_the_input_price() -> None:
    book = PriceBook(
        {
            "with-cache-price": {"input": 1.0, "output": 2.0, "cache_read": 0.1},
            "without": {"input": 1.0, "output": 2.0},
        }
    )

    assert book.cost_usd(
        "with-cache-price", 1_000_000, 0, cache_read_tokens=600_000
    ) == pytest.approx(0.4 + 0.06)
    assert book.cost_usd("without", 1_000_000, 0, cache_read_tokens=600_000) == pytest.approx(1.0)
    # A count above the prompt prices only the prompt's tokens.
    assert book.cost_usd(
        "with-cache-price", 1_000_000, 0, cache_read_tokens=5_000_000
    ) == pytest.approx(0.1)


def test_a_bare_id_echoed_by_the_provider_is_priced_like_its_prefixed_id() -> None:
    book = PriceBook()
    assert book.cost_usd("deepseek-chat", 1000, 100) == book.cost_usd(WEAK, 1000, 100)


def test_configured_prices_come_first_and_match_without_the_provider_prefix() -> None:
    book = PriceBook(
        {
            WEAK: ModelPrice(input=1.0, output=2.0),  # overrides litellm's map
            "qwen2.5": {"input": 0.5, "output": 0.5},
        }
    )
    assert book.cost_usd(WEAK, 1_000_000, 1_000_000) == pytest.approx(3.0)
    assert book.cost_usd("openai/qwen2.5", 2_000_000, 0) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "model", ["openai/qwen2.5", "openai:qwen2.5", "google_genai:gemini-x", "gemini/gemini-x"]
)
def test_configured_prices_match_either_spelling_of_a_model(model: str) -> None:
    # LangChain's "provider:model" and litellm's "provider/model" name one model, one price.
    book = PriceBook(
        {
            "openai:qwen2.5": {"input": 1.0, "output": 0.0},
            "gemini/gemini-x": {"input": 1.0, "output": 0.0},
        }
    )
    bare = PriceBook({model.replace(":", "/").split("/")[1]: {"input": 1.0, "output": 0.0}})
    assert book.cost_usd(model, 1_000_000, 0) == pytest.approx(1.0)
    assert bare.cost_usd(model, 1_000_000, 0) == pytest.approx(1.0)


def test_malformed_prices_are_rejected() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        PriceBook({"m": {"input": -1, "output": 0}})
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        PriceBook({"m": {"input": 1, "output": 1, "cached": 0.1}})


@pytest.mark.parametrize("kind", ["prefixed", "bare"])
def test_unknown_price_is_none_with_one_warning_per_model(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _unique_model() if kind == "prefixed" else f"local-{uuid.uuid4().hex[:8]}"
    book = PriceBook()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = book.cost_usd(model, 100, 10)
        second = PriceBook().cost_usd(model, 100, 10)

    assert first is None
    assert second is None
    [message] = [str(w.message) for w in caught if w.category is UnknownPriceWarning]
    assert message.startswith(f"no price for model {model!r}: its cost is reported as unknown")
    assert f"PriceBook({{{model!r}: ModelPrice(input=..., output=...)}})" in message
    assert capsys.readouterr().out == ""  # litellm's "Provider List" banner is not printed


def test_litellm_is_first_imported_with_the_offline_price_map(tmp_path: Path) -> None:
    # A fresh interpreter with the variable unset, and a stand-in litellm that
    # records the variable at its import: the moment litellm would fetch.
    spy = tmp_path / "litellm"
    spy.mkdir()
    (spy / "__init__.py").write_text(
        "import os\n"
        "SEEN_AT_IMPORT = os.environ.get('LITELLM_LOCAL_MODEL_COST_MAP')\n"
        "model_cost = {}\n"
        "def cost_per_token(**kwargs):\n"
        "    return (0.0, 0.0)\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "LITELLM_LOCAL_MODEL_COST_MAP"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(Path.cwd()), *sys.path])
    script = (
        "import sys\n"
        "from langchain_escalate.cost import PriceBook\n"
        "assert 'litellm' not in sys.modules\n"
        "PriceBook().cost_usd('deepseek/deepseek-chat', 1, 1)\n"
        "print(sys.modules['litellm'].SEEN_AT_IMPORT)\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"


def test_an_explicit_choice_to_fetch_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "False")
    ensure_offline_price_map()
    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "False"


# --- usage --------------------------------------------------------------------------


def test_usage_from_usage_metadata() -> None:
    reply = ScriptedChatModel(script=["ok"], input_tokens_per_call=321, output_tokens_per_call=7)
    assert usage_of(reply.invoke([HumanMessage("hi")])) == (321, 7)


def test_no_usage_is_zero() -> None:
    assert usage_of(AIMessage("ok")) == (0, 0)
    assert usage_of(HumanMessage("hi")) == (0, 0)
    assert cache_read_tokens_of(AIMessage("ok")) == 0
    assert cache_read_tokens_of(HumanMessage("hi")) == 0
    assert cache_write_tokens_of(AIMessage("ok")) == 0
    assert cache_write_tokens_of(HumanMessage("hi")) == 0


@pytest.mark.parametrize(
    ("reply", "tokens_in"),
    [
        (
            AIMessage(
                "ok",
                usage_metadata={
                    "input_tokens": 30,
                    "output_tokens": 8,
                    "total_tokens": 38,
                    "input_token_details": {"cache_read": 25},
                },
            ),
            30,
        ),
    ],
    ids=["usage_metadata"],
)
def test_cache_reads_are_read_as_part_of_the_prompt(reply: AIMessage, tokens_in: int) -> None:
    assert usage_of(reply) == (tokens_in, 8)
    assert cache_read_tokens_of(reply) == 25


@pytest.mark.parametrize(
    "reply",
    [
        AIMessage(
            "ok",
            usage_metadata={
                "input_tokens": 30,
                "output_tokens": 8,
                "total_tokens": 38,
                "input_token_details": {"cache_creation": 20},
            },
        ),
    ],
    ids=["usage_metadata"],
)
def test_cache_writes_are_read_as_part_of_the_prompt(reply: AIMessage) -> None:
    assert usage_of(reply) == (30, 8)
    assert cache_write_tokens_of(reply) == 20


# --- the run summary ----------------------------------------------------------------

PRICES = PriceBook(
    {"weak": {"input": 1.0, "output": 2.0}, "strong": {"input": 10.0, "output": 20.0}}
)


def _weak_replies(count: int) -> list[AIMessage]:
    model = ScriptedChatModel(
        script=[AIMessage("", tool_calls=[tool_call("search", {"q": "x"})])],
        repeat_last=True,
        model_name="weak",
        input_tokens_per_call=1000,
        output_tokens_per_call=100,
    )
    return [model.invoke([HumanMessage("find x")]) for _ in range(count)]


def _known(usd: float | None) -> float:
    assert usd is not None
    return usd


def _record(**fields: object) -> EscalationRecord:
    defaults: dict[str, object] = {
        "node": "agent",
        "action": "escalate",
        "rule": "repeated_action_error",
        "reason": "same failing call 3 times",
        "mode": "advise",
        "model": "strong",
        "outcome": "advised",
    }
    return EscalationRecord.model_validate({**defaults, **fields})


def test_weak_only_run_costs_the_weak_tokens_and_saves_the_difference() -> None:
    summary = summarize_run(
        _weak_replies(3), weak_model="weak", strong_model="strong", prices=PRICES
    )

    assert (summary.weak_tokens_in, summary.weak_tokens_out) == (3000, 300)
    assert summary.weak_usd == pytest.approx(3 * (1000 * 1.0 + 100 * 2.0) / 1e6)
    assert summary.strong_usd == 0.0
    assert summary.all_strong_usd == pytest.approx(3 * (1000 * 10.0 + 100 * 20.0) / 1e6)
    assert summary.saved_usd == pytest.approx(
        _known(summary.all_strong_usd) - _known(summary.weak_usd)
    )
    assert summary.escalations == 0


def test_takeover_replies_are_strong_by_record_or_by_model_name() -> None:
    strong = ScriptedChatModel(
        script=["step 1", "step 2"],
        model_name="strong",
        input_tokens_per_call=2000,
        output_tokens_per_call=200,
    )
    first = strong.invoke([HumanMessage("help")])
    first.additional_kwargs[RECORD_KEY] = _record(mode="takeover", outcome="took_over").to_dict()
    second = strong.invoke([HumanMessage("help")])  # carries only model_name
    run = [
        HumanMessage("find x"),
        *_weak_replies(2),
        first,
        ToolMessage("r", tool_call_id="1"),
        second,
    ]

    summary = summarize_run(run, weak_model="weak", strong_model="strong", prices=PRICES)

    assert (summary.strong_tokens_in, summary.strong_tokens_out) == (4000, 400)
    assert summary.strong_usd == pytest.approx(2 * (2000 * 10.0 + 200 * 20.0) / 1e6)
    assert summary.total_usd == pytest.approx(_known(summary.weak_usd) + _known(summary.strong_usd))
    assert summary.all_strong_usd == pytest.approx(
        _known(summary.strong_usd) + 2 * (1000 * 10.0 + 100 * 20.0) / 1e6
    )
    assert summary.escalations == 1


def test_advise_briefings_count_through_their_records_once() -> None:
    advice = _record(tokens_in=5000, tokens_out=300, cost_usd=0.0123)
    guidance = AIMessage("try the other endpoint", additional_kwargs={RECORD_KEY: advice.to_dict()})
    refused = _record(outcome="over_budget")
    outside = _record(tokens_in=100, tokens_out=10, cost_usd=None)  # priced from its tokens

    summary = summarize_run(
        [*_weak_replies(1), guidance],
        weak_model="weak",
        strong_model="strong",
        prices=PRICES,
        records=[advice.to_dict(), refused, outside],  # advice also rides on a message
    )

    assert summary.escalations == 2
    assert (summary.strong_tokens_in, summary.strong_tokens_out) == (5100, 310)
    assert summary.strong_usd == pytest.approx(0.0123 + (100 * 10.0 + 10 * 20.0) / 1e6)


def test_unknown_prices_make_the_figures_that_need_them_none() -> None:
    weak = _unique_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownPriceWarning)
        summary = summarize_run(
            _weak_replies(1), weak_model=weak, strong_model="strong", prices=PRICES
        )

    assert summary.weak_usd is None
    assert summary.total_usd is None
    assert summary.saved_usd is None
    assert summary.all_strong_usd == pytest.approx((1000 * 10.0 + 100 * 20.0) / 1e6)
    assert "weak " + weak + ": unknown" in summary.describe()


def test_the_summary_is_json_ready() -> None:
    summary = summarize_run(
        _weak_replies(1), weak_model="weak", strong_model="strong", prices=PRICES
    )
    assert summary.to_dict()["weak_tokens_in"] == 1000
    assert summary.to_dict()["escalations"] == 0


def test_summary_prices_each_replys_cache_reads_at_the_cache_read_price() -> None:
    usage = {
        "input_tokens": 1000,
        "output_tokens": 100,
        "total_tokens": 1100,
        "input_token_details": {"cache_read": 800},
    }
    prices = PriceBook(
        {
            "weak": {"input": 1.0, "output": 2.0, "cache_read": 0.1},
            "strong": {"input": 10.0, "output": 20.0, "cache_read": 1.0},
        }
    )

    summary = summarize_run(
        [AIMessage("done", usage_metadata=usage)],
        weak_model="weak",
        strong_model="strong",
        prices=prices,
    )

    assert summary.weak_tokens_in == 1000
    assert summary.weak_usd == pytest.approx((200 * 1.0 + 800 * 0.1 + 100 * 2.0) / 1e6)
    assert summary.all_strong_usd == pytest.approx((200 * 10.0 + 800 * 1.0 + 100 * 20.0) / 1e6)


def test_summary_with_litellm_prices() -> None:
    summary = summarize_run(
        _weak_replies(2), weak_model=WEAK, strong_model=STRONG, prices=PriceBook()
    )
    assert summary.weak_usd == pytest.approx(2 * _known(PriceBook().cost_usd(WEAK, 1000, 100)))
    assert summary.all_strong_usd == pytest.approx(
        2 * _known(PriceBook().cost_usd(STRONG, 1000, 100))
    )


def test_summary_prices_each_replys_cache_writes_at_the_cache_write_price() -> None:
    usage = {
        "input_tokens": 1000,
        "output_tokens": 100,
        "total_tokens": 1100,
        "input_token_details": {"cache_creation": 600},
    }
    prices = PriceBook(
        {
            "weak": {"input": 1.0, "output": 2.0, "cache_write": 1.25},
            "strong": {"input": 10.0, "output": 20.0, "cache_write": 12.5},
        }
    )

    summary = summarize_run(
        [AIMessage("done", usage_metadata=usage)],
        weak_model="weak",
        strong_model="strong",
        prices=prices,
    )

    assert summary.weak_usd == pytest.approx((400 * 1.0 + 600 * 1.25 + 100 * 2.0) / 1e6)
    assert summary.all_strong_usd == pytest.approx((400 * 10.0 + 600 * 12.5 + 100 * 20.0) / 1e6)


def _summary_note(*removed: AIMessage) -> HumanMessage:
    # What loop pruning leaves in state in place of the replies it removed.
    return HumanMessage(
        "(Removed 2 earlier messages of a loop.)",
        additional_kwargs={PRUNED_USAGE_KEY: pruned_usage(removed)},
    )


def test_summary_counts_the_replies_pruning_removed_from_state() -> None:
    weak_replies = _weak_replies(3)
    takeover = AIMessage(
        "step",
        id="strong-step",
        response_metadata={"model_name": "strong"},
        usage_metadata={"input_tokens": 2000, "output_tokens": 200, "total_tokens": 2200},
    )
    removed = [*weak_replies[:2], takeover]
    final_state = [HumanMessage("find x"), _summary_note(*removed), weak_replies[2]]
    every_reply = [*weak_replies, takeover]

    def summary(messages: Sequence[BaseMessage]) -> RunSummary:
        return summarize_run(messages, weak_model="weak", strong_model="strong", prices=PRICES)

    assert summary(final_state) == summary(every_reply)
    assert summary(final_state).weak_tokens_in == 3000
    assert summary(final_state).strong_tokens_in == 2000
    # A stream of the run holds both the removed replies and the note: each reply counts once.
    assert summary([*removed, *final_state]) == summary(every_reply)


def test_a_later_pruning_carries_the_usage_an_earlier_summary_carried() -> None:
    first, second, third = _weak_replies(3)
    earlier_note = _summary_note(first).model_copy(update={"id": "note"})

    carried = pruned_usage([earlier_note, second])
    later_note = HumanMessage("(Removed 2 earlier messages of a loop.)")
    later_note.additional_kwargs[PRUNED_USAGE_KEY] = carried

    assert [entry["id"] for entry in carried] == [first.id, second.id]
    assert (
        summarize_run(
            [later_note, earlier_note, third],
            weak_model="weak",
            strong_model="strong",
            prices=PRICES,
        ).weak_tokens_in
        == 3000
    )
