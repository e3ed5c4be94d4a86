"""The ladder engine on its own: rungs, moving down, the budget, records, pruning."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, RemoveMessage, ToolMessage

from langchain_escalate.budget import Budget
from langchain_escalate.detector import Verdict
from langchain_escalate.drive import Call, run_sync
from langchain_escalate.escalation import EscalationStopped, Escalator, Situation
from langchain_escalate.expert.expert import ExpertAnswer
from langchain_escalate.merge import LADDER_KEY, nudge_text, prune_loop, trailing_span
from langchain_escalate.policy import EscalationPolicy
from langchain_escalate.records import RECORD_KEY, records_of
from langchain_escalate.testing import ScriptedChatModel, tool_call

PRICES = {"strong-model": {"input": 3.0, "output": 15.0}}
VERDICT = Verdict(
    stuck=True,
    rule="repeated_action_error",
    reason="fetch failed 3 times.",
    evidence=[1, 6],
    loop_start=1,
)


def _conversation(attempts: int = 3) -> list[BaseMessage]:
    messages: list[BaseMessage] = [HumanMessage("Get the 2023 total.", id="h")]
    for index in range(attempts):
        call = tool_call("fetch_report", {"year": 2023})
        messages.append(AIMessage("", tool_calls=[call], id=f"a{index}"))
        messages.append(
            ToolMessage("Error: 404", tool_call_id=call["id"], status="error", id=f"t{index}")
        )
    return messages


def _strong(*script: Any) -> ScriptedChatModel:
    return ScriptedChatModel(script=list(script) or ["Use the archive."], model_name="strong-model")


def _situation(**overrides: Any) -> Situation:
    fields: dict[str, Any] = {"verdict": VERDICT, "messages": _conversation(), "loop_messages": 6}
    return Situation(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("times_fired", "rung"), [(0, "nudge"), (1, "escalate"), (2, "human"), (5, "human")]
)
def test_the_nth_firing_uses_the_nth_rung_and_the_last_repeats(times_fired: int, rung: str) -> None:
    strong = _strong()
    escalator = Escalator(strong, node="agent", prices=PRICES)
    help_ = escalator.respond(
        _situation(times_fired=times_fired, model_called=True, can_interrupt=True)
    )
    if rung == "human":
        assert (
            help_.deferred_rung == 2
        )  # a model was called in this step: the host asks in a fresh one
    else:
        assert help_.rung == rung


def test_nudge_is_free_and_names_the_repeated_call_and_the_error() -> None:
    strong = _strong()
    help_ = Escalator(strong, node="agent").respond(_situation())

    assert strong.calls == []
    (record,) = help_.records
    assert (record.action, record.outcome, record.cost_usd) == ("nudge", "nudged", 0.0)
    (message,) = help_.messages
    assert isinstance(message, HumanMessage)
    assert 'fetch_report({"year":2023}) 3 times' in message.content
    assert "Error: 404" in message.content
    assert message.additional_kwargs[RECORD_KEY]["id"] == record.id
    assert message.additional_kwargs[LADDER_KEY] == {"fired": 1, "node": "agent"}
    assert help_.removals == []  # a nudge leaves the attempts it talks about in place


def test_advice_is_merged_with_its_record_and_the_loop_pruned() -> None:
    strong = _strong()
    escalator = Escalator(
        strong, node="agent", policy=EscalationPolicy(ladder=["escalate"]), prices=PRICES
    )
    help_ = escalator.respond(_situation(thread_id="t1"))

    assert len(strong.calls) == 1
    (record,) = help_.records
    assert (record.action, record.outcome, record.mode, record.thread_id) == (
        "escalate",
        "advised",
        "advise",
        "t1",
    )
    assert record.cost_usd == pytest.approx((100 * 3.0 + 20 * 15.0) / 1e6)
    assert {r.id for r in help_.removals} == {"a0", "t0", "a1", "t1", "a2", "t2"}
    (message,) = help_.messages
    assert "Use the archive." in message.content
    assert message.content.startswith("(Removed 6 earlier messages of a loop")
    assert help_.guidance is not None


def test_the_record_prices_the_experts_cache_reads_at_the_cache_read_price() -> None:
    usage = {
        "input_tokens": 1000,
        "output_tokens": 20,
        "total_tokens": 1020,
        "input_token_details": {"cache_read": 900},
    }
    strong = _strong(AIMessage("Use the archive.", usage_metadata=usage))
    prices = {"strong-model": {"input": 3.0, "output": 15.0, "cache_read": 0.3}}
    escalator = Escalator(
        strong, node="agent", policy=EscalationPolicy(ladder=["escalate"]), prices=prices
    )

    (record,) = escalator.respond(_situation()).records

    assert (record.tokens_in, record.tokens_out) == (1000, 20)
    assert record.cost_usd == pytest.approx((100 * 3.0 + 900 * 0.3 + 20 * 15.0) / 1e6)


def test_the_record_prices_the_experts_cache_writes_at_the_cache_write_price() -> None:
    usage = {
        "input_tokens": 1000,
        "output_tokens": 20,
        "total_tokens": 1020,
        "input_token_details": {"cache_creation": 800},
    }
    strong = _strong(AIMessage("Use the archive.", usage_metadata=usage))
    prices = {"strong-model": {"input": 3.0, "output": 15.0, "cache_write": 3.75}}
    escalator = Escalator(
        strong, node="agent", policy=EscalationPolicy(ladder=["escalate"]), prices=prices
    )

    (record,) = escalator.respond(_situation()).records

    assert record.cost_usd == pytest.approx((200 * 3.0 + 800 * 3.75 + 20 * 15.0) / 1e6)


def test_refused_budget_moves_down_and_never_calls_the_expert() -> None:
    strong = _strong()
    escalator = Escalator(
        strong, node="agent", policy=EscalationPolicy(ladder=["escalate", "stop"]),
        budget=Budget(max_escalations_per_thread=0), prices=PRICES,
    )  # fmt: skip
    help_ = escalator.respond(_situation(thread_id="t"))

    assert strong.calls == []
    assert [(r.action, r.outcome) for r in help_.records] == [
        ("escalate", "over_budget"),
        ("stop", "stopped"),
    ]
    assert help_.stopped
    assert records_of(help_.messages[-1]) == [r.to_dict() for r in help_.records]


def test_a_failed_expert_releases_its_reservation() -> None:
    budget = Budget(max_escalations_per_thread=1)
    escalator = Escalator(
        _strong(RuntimeError("overloaded")), node="agent",
        policy=EscalationPolicy(ladder=["escalate", "stop"]), budget=budget, prices=PRICES,
    )  # fmt: skip
    help_ = escalator.respond(_situation(thread_id="t"))

    assert [r.outcome for r in help_.records] == ["expert_failed", "stopped"]
    assert budget.escalations("t") == 0
    assert budget.spent("t") == 0.0


def test_the_last_rung_moving_down_ends_at_stop() -> None:
    escalator = Escalator(_strong(""), node="agent", policy=EscalationPolicy(ladder=["escalate"]))
    help_ = escalator.respond(_situation())
    assert [r.outcome for r in help_.records] == ["expert_failed", "stopped"]


def test_human_without_a_checkpointer_is_skipped_to_stop_with_a_warning() -> None:
    escalator = Escalator(
        _strong(), node="planner", policy=EscalationPolicy(ladder=["human", "escalate"])
    )
    with pytest.warns(RuntimeWarning, match="node 'planner'"):
        help_ = escalator.respond(_situation(can_interrupt=False))
    assert [(r.action, r.outcome) for r in help_.records] == [
        ("human", "skipped"),
        ("stop", "stopped"),
    ]


def test_stop_can_raise() -> None:
    escalator = Escalator(
        _strong(), node="agent", policy=EscalationPolicy(ladder=["stop"], stop_behavior="raise")
    )
    with pytest.raises(EscalationStopped) as caught:
        escalator.respond(_situation())
    assert caught.value.record.outcome == "stopped"


async def test_async_and_sync_agree() -> None:
    policy = EscalationPolicy(ladder=["escalate"])
    sync_help = Escalator(_strong(), node="agent", policy=policy, prices=PRICES).respond(
        _situation()
    )
    async_help = await Escalator(_strong(), node="agent", policy=policy, prices=PRICES).arespond(
        _situation()
    )
    assert [m.content for m in sync_help.messages] == [m.content for m in async_help.messages]
    assert [r.cost_usd for r in sync_help.records] == [r.cost_usd for r in async_help.records]


def test_records_are_logged_outside_a_graph(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "langchain_escalate"):
        Escalator(_strong(), node="agent").respond(_situation())
    assert "node 'agent': nudge (nudged) on repeated_action_error" in caplog.text


def test_ask_answers_a_question_under_the_budget() -> None:
    strong = _strong("Use -fno-lto.")
    budget = Budget(max_escalations_per_thread=1)
    escalator = Escalator(strong, node="ask_expert", budget=budget, prices=PRICES)

    answer = escalator.ask(
        "Which flag disables LTO?", [HumanMessage("Fix the build.")], thread_id="t"
    )
    assert answer.text == "Use -fno-lto."
    assert (answer.record.outcome, answer.record.rule) == ("answered", None)
    assert "Which flag disables LTO?" in strong.calls[0][-1].content

    refused = escalator.ask("Again?", thread_id="t")
    assert refused.text is None
    assert refused.record.outcome == "over_budget"
    assert refused.refusal == "thread t has used 1 of 1 escalations"


def test_ask_refusal_of_a_failed_expert_is_the_bare_cause() -> None:
    answer = Escalator(_strong(RuntimeError("upstream 503")), node="ask_expert").ask("Why?")
    assert answer.text is None
    assert answer.refusal == "the expert failed: RuntimeError: upstream 503"
    assert answer.record.outcome == "expert_failed"


def test_a_host_call_is_paid_under_the_budget_and_recorded() -> None:
    budget = Budget(max_usd_per_thread=1.0)
    escalator = Escalator(_strong(), node="mw", budget=budget, prices=PRICES)
    usage = {"input_tokens": 1000, "output_tokens": 100, "total_tokens": 1100}
    reply = AIMessage(
        "", tool_calls=[tool_call("fetch_archive", {"year": 2023})], usage_metadata=usage
    )
    answer = ExpertAnswer(text="", message=reply, calls=(reply,))

    async def arun() -> ExpertAnswer:
        return answer

    paid, record = run_sync(
        escalator.payer.pay(
            Call(lambda: answer, arun), verdict=VERDICT, thread_id="t", config=None,
            tokens_in=1000, mode="takeover",
        )
    )  # fmt: skip
    assert paid.answer is answer
    assert record.outcome == "took_over"
    assert record.cost_usd == pytest.approx((1000 * 3 + 100 * 15) / 1e6)
    assert budget.spent("t") == pytest.approx(record.cost_usd)


def test_prune_never_splits_tool_calls_from_their_results() -> None:
    messages = _conversation(3)
    # A loop span that starts on a tool result moves forward to the next call.
    removals, summary = prune_loop(messages, 3)
    assert [r.id for r in removals] == ["a2", "t2"]
    assert "fetch_report" in summary
    assert all(isinstance(r, RemoveMessage) for r in removals)


def test_prune_keeps_the_persons_message_and_earlier_help() -> None:
    help_message = HumanMessage("hint", id="n", additional_kwargs={RECORD_KEY: {"action": "nudge"}})
    messages = [*_conversation(2), help_message, *_conversation(2)[1:]]
    removals, _ = prune_loop(messages, len(messages))
    removed = {r.id for r in removals}
    assert "h" not in removed
    assert "n" not in removed


def test_prune_does_nothing_without_message_ids() -> None:
    messages = [HumanMessage("task"), AIMessage("same"), AIMessage("same")]
    assert prune_loop(messages, 2) == ([], "")


def test_trailing_span_skips_messages_the_detector_did_not_see() -> None:
    messages = [HumanMessage("x"), AIMessage("a"), HumanMessage("help"), AIMessage("b")]
    assert trailing_span(messages, 2, seen=lambda p: p != 2) == 3


def test_nudge_text_without_a_tool_loop_uses_the_reason() -> None:
    text = nudge_text(Verdict(stuck=True, rule="monologue", reason="Same reply 3 times."), [])
    assert text.startswith("You seem to be stuck: Same reply 3 times.")
