"""``ExpertService`` in process: what the strong model is sent, and what is refused before paying.

The scripted strong model records every call; the tests read what the server
sent it (the briefing), never what the script itself answers.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import pytest
from langchain_core.messages import AIMessage

from langchain_escalate.budget import Budget
from langchain_escalate.mcp_server import ExpertService, InputLimits, ToolInputError
from langchain_escalate.mcp_server.inputs import read_files
from langchain_escalate.testing import ScriptedChatModel
from tests.test_mcp_server import LOOPING

if TYPE_CHECKING:
    from pathlib import Path


PRICES = {"scripted-model": {"input": 1.0, "output": 1.0}}
"""USD per 1M tokens: a price for the scripted model, so no price map is loaded."""


def briefing_sent(model: ScriptedChatModel, call: int = -1) -> str:
    return str(model.calls[call][-1].content)


@pytest.fixture
def expert() -> ScriptedChatModel:
    return ScriptedChatModel(script=[AIMessage("Try the v2 endpoint.")], repeat_last=True)


def test_attached_files_reach_the_expert_whole(tmp_path: Path, expert: ScriptedChatModel) -> None:
    # 60 KiB is far beyond the default briefing bound (1500 tokens): it must not be cut.
    source = "".join(f"line {n}: value = compute({n})\n" for n in range(2_000))
    (tmp_path / "big.py").write_text(source)
    service = ExpertService(expert, workdir=tmp_path, prices=PRICES)
    asyncio.run(service.ask_expert("Where is the bug?", files=["big.py"]))
    sent = briefing_sent(expert)
    assert "--- big.py ---" in sent
    assert source.strip() in sent


def test_a_thread_briefs_earlier_turns_and_a_new_thread_does_not(
    tmp_path: Path, expert: ScriptedChatModel
) -> None:
    service = ExpertService(expert, threads=tmp_path / "threads.db", prices=PRICES)
    first = asyncio.run(service.ask_expert("Which endpoint lists invoices?", context="v1 is 404"))
    asyncio.run(service.ask_expert("And refunds?", thread_id=first.thread_id))
    follow_up = briefing_sent(expert)
    assert "Which endpoint lists invoices?" in follow_up
    assert "v1 is 404" in follow_up
    assert "Try the v2 endpoint." in follow_up
    asyncio.run(service.ask_expert("Something else"))
    assert "Which endpoint lists invoices?" not in briefing_sent(expert)
    # A second service on the same file (another process, a restart) continues the thread.
    again = ExpertService(expert, threads=tmp_path / "threads.db", prices=PRICES)
    third = asyncio.run(again.ask_expert("And credits?", thread_id=first.thread_id))
    assert third.turn == 3


def test_refused_inputs_cost_nothing(tmp_path: Path, expert: ScriptedChatModel) -> None:
    (tmp_path / "binary.bin").write_bytes(b"\xff\xfe\x00")
    service = ExpertService(expert, workdir=tmp_path, limits=InputLimits(max_context_chars=10))
    for call, expected in [
        (service.ask_expert("   "), "question is empty"),
        (service.ask_expert("Why?", context="x" * 11), "context is 11 characters"),
        (service.ask_expert("Why?", files=["binary.bin"]), "not UTF-8 text"),
        (service.ask_expert("Why?", files=["missing.txt"]), "does not exist"),
        (service.ask_expert("Why?", files=["."]), "not a regular file"),
    ]:
        with pytest.raises(ToolInputError, match=expected):
            asyncio.run(call)
    assert expert.calls == []


def test_files_inside_the_workdir_may_be_reached_through_links(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("inside")
    (tmp_path / "alias.txt").symlink_to(tmp_path / "real.txt")
    limits = InputLimits(max_total_file_bytes=10)
    assert read_files(["alias.txt"], tmp_path, limits) == "--- real.txt ---\ninside"
    (tmp_path / "more.txt").write_text("more than ten bytes")
    with pytest.raises(ToolInputError, match="files total more than 10 bytes"):
        read_files(["real.txt", "more.txt"], tmp_path, limits)


def test_check_stuck_reads_jsonl_text_like_scan(expert: ScriptedChatModel) -> None:
    service = ExpertService(expert)
    as_list = service.check_stuck(LOOPING)
    as_jsonl = service.check_stuck("\n".join(json.dumps(message) for message in LOOPING))
    assert as_list == as_jsonl
    assert as_list["stuck"] is True
    with pytest.raises(ToolInputError, match="not valid JSON"):
        service.check_stuck("[{")


def test_budget_status_counts_what_was_spent_and_what_is_held(
    tmp_path: Path, expert: ScriptedChatModel
) -> None:
    budget = Budget(
        max_escalations_per_thread=3,
        max_usd_total=1.0,
        ledger=f"sqlite:///{tmp_path / 'ledger.db'}",
    )
    service = ExpertService(expert, budget=budget, prices=PRICES)
    answer = asyncio.run(service.ask_expert("Why?"))
    # Another agent on the same ledger holds a reservation for this thread right now.
    held = Budget(max_escalations_per_thread=3, ledger=budget.ledger).reserve(
        answer.thread_id, 0.25
    )
    status = asyncio.run(service.budget_status(answer.thread_id))
    assert status["limited"] is True
    per_thread = status["escalations_per_thread"]
    assert (per_thread["spent"], per_thread["reserved"], per_thread["remaining"]) == (1, 1, 1)
    total = status["usd_total"]
    assert total["spent"] == pytest.approx(answer.record.cost_usd)
    assert total["reserved"] == pytest.approx(0.25)
    assert total["remaining"] == pytest.approx(1.0 - 0.25 - (answer.record.cost_usd or 0))
    held.release()
    no_thread = asyncio.run(service.budget_status())
    assert no_thread["escalations_per_thread"] is None
    assert no_thread["usd_total"]["reserved"] == 0
    unbounded = ExpertService(expert)
    assert asyncio.run(unbounded.budget_status("t")) == {"limited": False, "thread_id": "t"}
