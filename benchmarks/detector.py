"""Per-message cost of the stuck detector: by message size, against the previous one, by history.

Part 1 measures ``observe`` on coding-agent-shaped conversations with short
messages, 300-character actions with 1 KB observations, and with 20 KB
observations, for this detector and for the previous implementation
(``benchmarks/baseline_detector``, the detector before issues #9 and #11), in
the same run, and prints the ratio. Targets: median <= 15 µs per message at
1 KB, <= 10x that at 20 KB. It also times one adversarial output
(``"took" + " " * N``, quadratic in the old normalization).

Part 2 measures the cost of ``observe`` for the next messages of a conversation that
already has 100, 1,000 and 10,000 messages, for the incremental detector and
for a naive one that re-reads the whole history on every message (the same
rules: it replays the history through a fresh ``StuckDetector``), in the same
run. The incremental cost should not grow with the history (target: at 10,000
within 1.5x of the cost at 100).

``--against REV`` adds a third detector to both parts: the package's detector
as it was at git revision REV (loaded from git beside the current one), so that
a change is measured against the commit before it in one run.

Run: python benchmarks/detector.py [--quick] [--against REV]
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from langchain_escalate.detector import StuckDetector, Verdict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_detector import StuckDetector as BaselineDetector

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

HISTORY_LENGTHS = (100, 1_000, 10_000)
TARGET_RATIO = 1.5
SIZES = {"short": 120, "1 KB": 1_024, "20 KB": 20_480}
"""Observation sizes of part 1 (actions are ~300 characters in the sized rows)."""
TARGET_1KB_US = 15.0
TARGET_20KB_FACTOR = 10.0
_WORD_LIST = (
    "def class return self value none import from the for if else assert raise path "
    "test file line error result config parse token node match case while"
)
WORDS = tuple(_WORD_LIST.split(" "))


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


def coding_conversation(observation_size: int, steps: int, seed: int = 0) -> list[BaseMessage]:
    """A coding agent's turn: editor and shell calls (~300 characters), outputs of this size."""
    generator = random.Random(seed)
    messages: list[BaseMessage] = [HumanMessage("Fix the bug described in the issue below. " * 8)]
    for step in range(steps):
        call_id = f"toolu_{generator.getrandbits(64):016x}"
        if step % 2:
            name = "execute_bash"
            args: dict[str, Any] = {
                "command": f"cd /workspace/repo && python -m pytest tests/test_{step % 7}.py -x -q "
                + " ".join(generator.choice(WORDS) for _ in range(30))
            }
        else:
            name = "str_replace_editor"
            snippet = " ".join(generator.choice(WORDS) for _ in range(18))
            args = {
                "command": "str_replace",
                "path": f"/workspace/repo/src/module_{step % 5}.py",
                "old_str": snippet,
                "new_str": snippet.replace("value", "result"),
            }
        messages.append(AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id}]))
        messages.append(
            ToolMessage(_output(generator, observation_size, step), tool_call_id=call_id)
        )
    return messages


def _output(generator: random.Random, size: int, step: int) -> str:
    if generator.random() < 0.1:
        head = "ERROR:\nNo replacement was performed, old_str did not appear verbatim.\n"
    else:
        head = f"Here's the result of running `cat -n` at 2026-11-28T10:{step % 60:02d}:00Z:\n"
    lines = [head]
    length = len(head)
    number = 1
    while length < size:
        line = f"{number:6d}\t    " + " ".join(generator.choice(WORDS) for _ in range(9))
        if number % 17 == 0:
            line += f"  # took {generator.randint(1, 90)}ms, id {generator.getrandbits(64):016x}"
        lines.append(line)
        length += len(line) + 1
        number += 1
    return "\n".join(lines)[:size]


def per_message_costs(
    makers: Sequence[Callable[[], Callable[[BaseMessage], Any]]],
    batch: Sequence[BaseMessage],
    repeats: int,
) -> list[list[float]]:
    """Seconds per message for each maker, each the best of ``repeats`` passes with a fresh
    ``make()``; the makers take turns pass by pass, so a change in the machine's load
    weighs on all of them alike."""
    best = [[float("inf")] * len(batch) for _ in makers]
    for _ in range(repeats):
        for costs, make in zip(best, makers, strict=True):
            observe = make()
            for position, message in enumerate(batch):
                start = time.perf_counter()
                observe(message)
                costs[position] = min(costs[position], time.perf_counter() - start)
    return best


def by_size(repeats: int, steps: int, against: tuple[str, type] | None = None) -> None:
    print(f"part 1: cost per message by size (best of {repeats} per message, {2 * steps} messages)")
    header = (
        f"{'observations':>12}  {'median':>9}  {'p90':>9}  {'baseline median':>15}  "
        f"{'baseline p90':>12}  {'speed-up':>8}"
    )
    if against is not None:
        header += f"  {against[0] + ' median':>15}  {against[0] + ' p90':>12}  {'speed-up':>8}"
    print(header)
    medians = {}
    for label, size in SIZES.items():
        messages = coding_conversation(size, steps)
        if label == "short":
            messages = conversation(2 * steps + 1)
        makers = [StuckDetector, BaselineDetector] + ([against[1]] if against else [])
        new, old, *earlier = per_message_costs(
            [functools.partial(_fresh_observe, maker) for maker in makers], messages, repeats
        )
        median, old_median = statistics.median(new), statistics.median(old)
        medians[label] = median
        row = (
            f"{label:>12}  {median * 1e6:>7.1f}µs  {_p90(new) * 1e6:>7.1f}µs  "
            f"{old_median * 1e6:>13.1f}µs  {_p90(old) * 1e6:>10.1f}µs  {old_median / median:>7.1f}x"
        )
        if earlier:
            earlier_median = statistics.median(earlier[0])
            row += (
                f"  {earlier_median * 1e6:>13.1f}µs  {_p90(earlier[0]) * 1e6:>10.1f}µs  "
                f"{earlier_median / median:>7.1f}x"
            )
        print(row)
    at_1kb, at_20kb = medians["1 KB"] * 1e6, medians["20 KB"] * 1e6
    print(
        f"median at 1 KB: {at_1kb:.1f}µs (target <= {TARGET_1KB_US:.0f}µs: "
        f"{'ok' if at_1kb <= TARGET_1KB_US else 'ABOVE TARGET'}); "
        f"20 KB / 1 KB: {at_20kb / at_1kb:.1f}x (target <= {TARGET_20KB_FACTOR:.0f}x: "
        f"{'ok' if at_20kb <= TARGET_20KB_FACTOR * at_1kb else 'ABOVE TARGET'})"
    )


def detector_at(revision: str) -> type:
    """Load the package's ``StuckDetector`` as it was at a git revision, beside the current one."""
    root = Path(__file__).resolve().parents[1]
    folder = "langchain_escalate/detector"

    def git(*args: str) -> str:
        command = ["git", "-C", str(root), *args]
        # git itself, with the revision the person running the benchmark asked for.
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout  # noqa: S603

    name = "detector_at_" + "".join(c if c.isalnum() else "_" for c in revision)
    package = Path(tempfile.mkdtemp(prefix="detector-benchmark-")) / name
    package.mkdir()
    for file in git("ls-tree", "--name-only", f"{revision}:{folder}").split():
        if file.endswith(".py"):
            source = git("show", f"{revision}:{folder}/{file}")
            (package / file).write_text(source.replace("langchain_escalate.detector.", f"{name}."))
    sys.path.insert(0, str(package.parent))
    detector: type = importlib.import_module(name).StuckDetector
    return detector


def adversarial(size: int) -> None:
    request = AIMessage("", tool_calls=[{"name": "echo", "args": {}, "id": "c1"}])
    output = ToolMessage("took" + " " * size, tool_call_id="c1")
    costs = {}
    for name, make in (("current", StuckDetector), ("baseline", BaselineDetector)):
        detector = make()
        detector.observe(request)
        start = time.perf_counter()
        detector.observe(output)
        costs[name] = time.perf_counter() - start
    print(
        f'adversarial output "took" + {size:,} spaces: current {costs["current"] * 1e3:.2f} ms, '
        f"baseline {costs['baseline'] * 1e3:.0f} ms ({costs['baseline'] / costs['current']:.0f}x)\n"
    )


def _p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))]


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
    makers: Sequence[Callable[[], Callable[[BaseMessage], Verdict]]],
    batch: Sequence[BaseMessage],
    repeats: int,
) -> list[float]:
    """Best-of-``repeats`` mean seconds per message to observe ``batch``, for each maker
    (a fresh ``make()`` per pass; the makers take turns pass by pass)."""
    timings: list[list[float]] = [[] for _ in makers]
    for _ in range(repeats):
        for times, make in zip(timings, makers, strict=True):
            observe = make()
            start = time.perf_counter()
            for message in batch:
                observe(message)
            times.append((time.perf_counter() - start) / len(batch))
    return [min(times) for times in timings]


def check_same_verdicts(messages: Sequence[BaseMessage]) -> None:
    incremental, naive = StuckDetector(), NaiveDetector()
    for index, message in enumerate(messages):
        if incremental.observe(message) != naive.observe(message):
            raise RuntimeError(f"naive and incremental detectors disagree at message {index}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument(
        "--against", metavar="REV", help="also measure the detector at this git revision"
    )
    args = parser.parse_args()
    against = (args.against, detector_at(args.against)) if args.against else None
    batch_size, naive_batch, repeats = (50, 2, 2) if args.quick else (400, 5, 7)
    by_size(repeats=3 if args.quick else 7, steps=50 if args.quick else 200, against=against)
    adversarial(8_000 if args.quick else 20_000)

    check_same_verdicts(conversation(400, seed=1))
    messages = conversation(max(HISTORY_LENGTHS) + batch_size)
    print(
        f"part 2: cost per message by history length (best of {repeats}; "
        f"{batch_size} messages, naive {naive_batch})"
    )
    header = f"{'history':>8}  {'incremental':>12}  {'naive':>12}  {'naive/incr':>10}  {'state':>7}"
    if against is not None:
        header += f"  {against[0]:>12}  {'speed-up':>8}"
    print(header)
    costs = {}
    for length in HISTORY_LENGTHS:
        history, batch = messages[:length], messages[length : length + batch_size]
        warm = StuckDetector()
        for message in history:
            warm.observe(message)
        state = warm.to_state()
        restorers = [functools.partial(_restored_observe, state)]
        if against is not None:
            restorers.append(functools.partial(_restored_observe, state, against[1]))
        incremental, *earlier = per_message_seconds(restorers, batch, repeats)
        replay = functools.partial(_naive_observe, history)
        (naive,) = per_message_seconds([replay], batch[:naive_batch], max(1, repeats // 3))
        costs[length] = incremental
        row = (
            f"{length:>8}  {incremental * 1e6:>10.1f}µs  {naive * 1e6:>10.0f}µs  "
            f"{naive / incremental:>9.0f}x  {len(json.dumps(state)):>6}B"
        )
        if earlier:
            row += f"  {earlier[0] * 1e6:>10.1f}µs  {earlier[0] / incremental:>7.1f}x"
        print(row)
    longest, shortest = max(HISTORY_LENGTHS), min(HISTORY_LENGTHS)
    ratio = costs[longest] / costs[shortest]
    status = "ok" if ratio <= TARGET_RATIO else "ABOVE TARGET"
    print(
        f"incremental cost at {longest:,} / at {shortest}: {ratio:.2f}x "
        f"(target <= {TARGET_RATIO}x: {status})"
    )
    print(f"median incremental cost: {statistics.median(costs.values()) * 1e6:.1f}µs per message")


def _fresh_observe(detector: Any) -> Callable[[BaseMessage], Any]:
    observe: Callable[[BaseMessage], Any] = detector().observe
    return observe


def _restored_observe(
    state: dict[str, Any], detector: Any = StuckDetector
) -> Callable[[BaseMessage], Verdict]:
    # An earlier revision restores the same state: the format has not changed.
    observe: Callable[[BaseMessage], Verdict] = detector.from_state(state).observe
    return observe


def _naive_observe(history: Sequence[BaseMessage]) -> Callable[[BaseMessage], Verdict]:
    return NaiveDetector(history).observe


if __name__ == "__main__":
    main()
