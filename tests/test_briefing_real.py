"""The briefing on real agent runs: OpenHands coding runs and tau-bench conversations.

At every cut point (each firing of the default detector, and a fixed list) and
for bounds from 200 to 8,000 tokens, the briefing the strong model would read
there keeps what the expert needs: the task whole when it fits in half the
bound, the latest failure and the detector's evidence verbatim (head and tail
when too long for their share), and it is never over the bound as
langchain-core's ``count_tokens_approximately`` counts it.

The data lives next to the repository (``../shared/data``); without it these
tests are skipped.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately

from langchain_escalate.detector import DetectorConfig, StuckDetector, Verdict
from langchain_escalate.detector.formats import messages_from_dicts
from langchain_escalate.detector.steps import content_text, is_error
from langchain_escalate.expert.briefing import build_briefing, describe_call

if TYPE_CHECKING:
    from collections.abc import Sequence

SHARED = next(
    (
        folder / "shared" / "data"
        for folder in Path(__file__).resolve().parents[2:4]
        if (folder / "shared" / "data").is_dir()
    ),
    None,
)
pytestmark = pytest.mark.skipif(SHARED is None, reason="../shared/data is absent")

BOUNDS = (200, 400, 800, 1500, 3000, 8000)
EVIDENCE_FROM = 800
"""Below this bound the evidence may not all fit beside a task that keeps half of it."""
ENDS = 20
"""Characters of a cut message's head and of its tail that must be kept."""
ISSUE = re.compile(r"<issue_description>.*?</issue_description>", re.DOTALL)
CONTINUE = "Please continue working on the task on whatever approach you think is suitable."

Cut = tuple[str, list[BaseMessage], Verdict]


@cache
def openhands_cuts() -> list[Cut]:
    assert SHARED is not None
    cuts: list[Cut] = []
    for path in sorted((SHARED / "openhands-llama4").glob("*.json")):
        messages = messages_from_dicts(json.loads(path.read_text(encoding="utf-8")))
        cuts += [
            (path.name, messages[: index + 1], verdict) for index, verdict in firings(messages)
        ]
        for index in range(6, len(messages), 7):  # the fixed list
            cuts.append((f"{path.name}@{index}", messages[: index + 1], recent_evidence(index)))
    return cuts


@cache
def tau_bench_cuts() -> list[Cut]:
    assert SHARED is not None
    runs = json.loads((SHARED / "tau-bench" / "gpt-4o-airline.json").read_text(encoding="utf-8"))
    cuts: list[Cut] = []
    for number, run in enumerate(runs):
        messages = messages_from_dicts(run["traj"])
        name = f"tau-bench run {number}"
        cuts += [(name, messages[: index + 1], verdict) for index, verdict in firings(messages)]
        failure = next((i for i, m in enumerate(messages) if failed(m)), None)
        if failure is not None:
            cuts.append(
                (f"{name} at its first error", messages[: failure + 1], recent_evidence(failure))
            )
        cuts.append((f"{name} (end)", messages, recent_evidence(len(messages) - 1)))
    return cuts


def firings(messages: Sequence[BaseMessage]) -> list[tuple[int, Verdict]]:
    detector = StuckDetector(DetectorConfig())
    return [(i, v) for i, v in enumerate(map(detector.observe, messages)) if v.stuck]


def recent_evidence(index: int) -> Verdict:
    evidence = list(range(max(index - 5, 0), index + 1))
    return Verdict(stuck=True, rule="fixed_cut", reason="A fixed cut point.", evidence=evidence)


def tokens(text: str) -> int:
    return count_tokens_approximately([HumanMessage(text)])


def body(message: BaseMessage) -> str:
    if isinstance(message, AIMessage) and message.tool_calls:
        return describe_call(message)
    return content_text(message.content).strip()


def kept(text: str, briefing: str) -> bool:
    """Whole, or cut in the middle with its head and its tail kept."""
    return text in briefing or (text[:ENDS] in briefing and text[-ENDS:] in briefing)


def first_task(messages: Sequence[BaseMessage]) -> str:
    return next(str(m.text).strip() for m in messages if isinstance(m, HumanMessage))


def failed(message: BaseMessage) -> bool:
    return isinstance(message, ToolMessage) and is_error(message)


def latest_error(messages: Sequence[BaseMessage]) -> ToolMessage | None:
    """The last failing tool result after the person's last message (so after the task)."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return None
        if failed(message):
            assert isinstance(message, ToolMessage)
            return message
    return None


@pytest.mark.parametrize("max_tokens", BOUNDS)
def test_openhands_briefings_keep_the_task_and_the_failures_within_the_bound(
    max_tokens: int,
) -> None:
    cuts = openhands_cuts()
    assert len(cuts) > 20
    for name, messages, verdict in cuts:
        briefing = build_briefing(messages, verdict=verdict, max_tokens=max_tokens)
        where = f"{name} at max_tokens={max_tokens}"
        assert tokens(briefing) <= max_tokens, where
        task = first_task(messages)
        issue = ISSUE.search(task)
        assert issue is not None
        statement = task[: issue.end()]
        if tokens(task) <= max_tokens // 2:
            assert task in briefing, where
        elif tokens(statement) <= max_tokens // 2:
            assert statement in briefing, where  # the issue whole, the boilerplate after it cut
        else:
            assert task[: max_tokens // 2] in briefing, where  # cut: its head is what stays
        error = latest_error(messages)
        if error is not None:
            assert kept(body(error), briefing), where
            assert "-> error:" in briefing, where
        if max_tokens >= EVIDENCE_FROM:
            for index in verdict.evidence:
                if index > 1 and body(messages[index]):
                    assert kept(body(messages[index]), briefing), f"{where}: message {index}"


@pytest.mark.parametrize("max_tokens", BOUNDS)
def test_tau_bench_briefings_keep_the_request_and_the_failures_within_the_bound(
    max_tokens: int,
) -> None:
    cuts = tau_bench_cuts()
    assert len(cuts) >= 200
    for name, messages, verdict in cuts:
        briefing = build_briefing(messages, verdict=verdict, max_tokens=max_tokens)
        where = f"{name} at max_tokens={max_tokens}"
        assert tokens(briefing) <= max_tokens, where
        # The customer's first message is the task until they ask for something new.
        task = first_task(messages)
        if (
            tokens(task) <= max_tokens // 2
            and sum(isinstance(m, HumanMessage) for m in messages) == 1
        ):
            assert f"## Task\n{task}" in briefing, where
        error = latest_error(messages)
        if error is not None and max_tokens >= EVIDENCE_FROM:
            assert kept(body(error), briefing), where


@pytest.mark.parametrize("max_tokens", [800, 1500, 3000])
def test_a_please_continue_message_does_not_replace_the_coding_task(max_tokens: int) -> None:
    for name, messages, _verdict in openhands_cuts()[::3]:
        resumed = [*messages, HumanMessage(CONTINUE), *attempts_after_continue()]
        briefing = build_briefing(resumed, verdict=None, max_tokens=max_tokens)
        where = f"{name} at max_tokens={max_tokens}"
        issue = ISSUE.search(first_task(messages))
        assert issue is not None
        assert briefing.startswith("## Task\n<uploaded_files>"), where
        assert issue.group()[:200] in briefing, where
        assert f"- user said: {CONTINUE}" in briefing, where
        assert tokens(briefing) <= max_tokens, where


def attempts_after_continue() -> list[BaseMessage]:
    call = {"name": "execute_bash", "args": {"command": "make test"}, "id": "after-continue"}
    return [
        AIMessage("", tool_calls=[call]),
        ToolMessage(
            "make: *** No rule to make target 'test'.  Stop.", tool_call_id="after-continue"
        ),
    ]
