"""Per-message cost of the stuck detector as the conversation grows.

Measures the cost of ``observe`` for the next messages of a conversation that
already has 100, 1,000 and 10,000 messages, for the incremental detector and
for a naive one that re-reads the whole history on every message (the same
rules: it replays the history through a fresh ``StuckDetector``), in the same
run. The incremental cost should not grow with the history (target: at 10,000
within 1.5x of the cost at 100).

Run: python benchmarks/detector.py [--quick]
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import time
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from langchain_escalate.detector import StuckDetector, Verdict

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

HISTORY_LENGTHS = (100, 1_000, 10_000)
TARGET_RATIO = 1.5


def conversation(length: int, seed: int = 0) -> list[BaseMessage]:
    """A realistic agent conversation: turns of tool calls, JSON results, the odd error and loop."""
    generator = random.Random(seed)
    messages: list[BaseMessage] = []
    call_number = 0
    while len(messages) < length:
        messages.append(HumanMessage(f"Please handle ticket {generator.randrange(10_000)}."))
        looping = generator.random() < 0.1
        for step in range(generator.randint(2, 12)):
            call_number += 1
            call_id = f"call_{call_number:08x}"
            tool = (
                "get_ticket"
                if looping
                else generator.choice(["get_ticket", "search", "read_file", "update"])
            )
            args = (
                {"id": 7}
                if looping
                else {"id": generator.randrange(500), "fields": ["status", "owner"]}
            )
            messages.append(AIMessage("", tool_calls=[{"name": tool, "args": args, "id": call_id}]))
            if looping or generator.random() < 0.1:
                output = f"Error: backend timeout after {generator.randint(1, 30)} seconds"
            else:
                output = json.dumps(
                    {
                        "id": args["id"],
                        "status": generator.choice(["open", "pending", "closed"]),
                        "updated_at": f"2026-11-{generator.randint(1, 28):02d}T10:{step:02d}:00Z",
                        "body": " ".join(
                            generator.choice(["lorem", "ipsum", "dolor", "sit"]) for _ in range(40)
                        ),
                    }
                )
            messages.append(ToolMessage(output, tool_call_id=call_id))
        messages.append(AIMessage(f"Ticket handled after {step + 1} steps."))
    return messages[:length]


class NaiveDetector:
    """The baseline: keeps the whole history and replays it through fresh rules on every message."""

    def __init__(self, history: Sequence[BaseMessage] = ()) -> None:
        self.history = list(history)

    def observe(self, message: BaseMessage) -> Verdict:
        self.history.append(message)
        detector = StuckDetector()
        verdict = Verdict()
        for seen in self.history:
            verdict = detector.observe(seen)
        return verdict


def per_message_seconds(
    make: Callable[[], Callable[[BaseMessage], Verdict]], batch: Sequence[BaseMessage], repeats: int
) -> float:
    """Best-of-``repeats`` mean seconds per message to observe ``batch`` with a fresh ``make()``."""
    timings = []
    for _ in range(repeats):
        observe = make()
        start = time.perf_counter()
        for message in batch:
            observe(message)
        timings.append((time.perf_counter() - start) / len(batch))
    return min(timings)


def check_same_verdicts(messages: Sequence[BaseMessage]) -> None:
    incremental, naive = StuckDetector(), NaiveDetector()
    for index, message in enumerate(messages):
        if incremental.observe(message) != naive.observe(message):
            raise RuntimeError(f"naive and incremental detectors disagree at message {index}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    args = parser.parse_args()
    batch_size, naive_batch, repeats = (50, 2, 2) if args.quick else (400, 5, 7)

    check_same_verdicts(conversation(400, seed=1))
    messages = conversation(max(HISTORY_LENGTHS) + batch_size)
    print(
        f"detector cost per message (best of {repeats}; {batch_size} messages, naive {naive_batch})"
    )
    print(f"{'history':>8}  {'incremental':>12}  {'naive':>12}  {'naive/incr':>10}  {'state':>7}")
    costs = {}
    for length in HISTORY_LENGTHS:
        history, batch = messages[:length], messages[length : length + batch_size]
        warm = StuckDetector()
        for message in history:
            warm.observe(message)
        state = warm.to_state()
        restore = functools.partial(_restored_observe, state)
        incremental = per_message_seconds(restore, batch, repeats)
        replay = functools.partial(_naive_observe, history)
        naive = per_message_seconds(replay, batch[:naive_batch], max(1, repeats // 3))
        costs[length] = incremental
        print(
            f"{length:>8}  {incremental * 1e6:>10.1f}µs  {naive * 1e6:>10.0f}µs  "
            f"{naive / incremental:>9.0f}x  {len(json.dumps(state)):>6}B"
        )
    longest, shortest = max(HISTORY_LENGTHS), min(HISTORY_LENGTHS)
    ratio = costs[longest] / costs[shortest]
    status = "ok" if ratio <= TARGET_RATIO else "ABOVE TARGET"
    print(
        f"incremental cost at {longest:,} / at {shortest}: {ratio:.2f}x "
        f"(target <= {TARGET_RATIO}x: {status})"
    )
    print(f"median incremental cost: {statistics.median(costs.values()) * 1e6:.1f}µs per message")


def _restored_observe(state: dict[str, Any]) -> Callable[[BaseMessage], Verdict]:
    return StuckDetector.from_state(state).observe


def _naive_observe(history: Sequence[BaseMessage]) -> Callable[[BaseMessage], Verdict]:
    return NaiveDetector(history).observe


if __name__ == "__main__":
    main()
