"""Hostile tool outputs cannot freeze an agent: linear normalization, bounded work per message.

Issue #11: a volatile-token pattern backtracked on ``"took" + " " * N`` (9 s at
40 KB). Every pattern the detector applies to text is fed adversarial inputs
built against it. Two checks, neither on wall-clock time alone:

- ``observe()`` hands the patterns a bounded number of characters whatever
  the message's size (counted, so deterministic);
- ``normalize_text`` (which reads its whole input) grows linearly: 32x the
  input costs far less than the ~1000x a quadratic pattern would (a ratio of
  two best-of-five timings in the same process, with a 10x margin).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from langchain_escalate.detector import StuckDetector, normalize, steps
from langchain_escalate.detector.normalize import WINDOW, normalize_text

if TYPE_CHECKING:
    from collections.abc import Callable

MB = 1_000_000

ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "took + spaces": lambda n: "took" + " " * n,
    "took: + spaces + digits": lambda n: "took:" + " " * (n // 2) + "1" * (n // 2),
    "keyword soup": lambda n: "took in after " * (n // 14),
    "digits": lambda n: "1" * n,
    "digits then unit-like": lambda n: "1" * n + "mx",
    "hex letters": lambda n: "a" * n,
    "hex letters then a word character": lambda n: "a" * n + "g",
    "hex run": lambda n: "0x" + "f" * n,
    "uuid-ish": lambda n: "deadbeef-" * (n // 9),
    "timestamp with endless fraction": lambda n: "2026-11-28T10:00:00." + "1" * n,
    "clock with endless fraction": lambda n: "12:00:00." + "1" * n,
    "http-date-ish": lambda n: "Sat, 28 Nov " * (n // 12),
    "dates": lambda n: "2026-11-28 " * (n // 11),
    "white space": lambda n: " \t\n" * (n // 3),
    "error prefix then spaces": lambda n: "Error" + " " * n,
    "exception-like word": lambda n: "A" * n + "Error",
    "command-not-found-ish": lambda n: "bash: " + "x" * n,
    "json error": lambda n: '{"error": "' + "x" * n + '"}',
    "nested json": lambda n: "[" * n,
    "confidence line": lambda n: "Confidence: 0.5" + " " * n + "x",
    "mixed separators": lambda n: "1.1.1.1 " * (n // 8),
}


class _Counting:
    """Wraps a compiled pattern and counts the characters handed to it."""

    def __init__(self, pattern: re.Pattern[str], seen: list[int]) -> None:
        self._pattern, self._seen = pattern, seen

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._pattern, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            text = next((arg for arg in args if isinstance(arg, str)), "")
            self._seen.append(len(text))
            return method(*args, **kwargs)

        return counted


@pytest.fixture
def scanned(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Characters each pattern call of the detector was given, in order."""
    seen: list[int] = []
    for module in (normalize, steps):
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                monkeypatch.setattr(module, name, _Counting(value, seen))
    return seen


@pytest.mark.parametrize("make", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_observe_reads_a_bounded_part_of_a_1_mb_tool_output(
    make: Callable[[int], str], scanned: list[int]
) -> None:
    detector = StuckDetector()
    detector.observe(HumanMessage("Run it."))
    detector.observe(AIMessage("", tool_calls=[{"name": "run", "args": {}, "id": "c1"}]))
    scanned.clear()
    detector.observe(ToolMessage(make(MB), tool_call_id="c1"))
    assert scanned, "the patterns were not reached"
    # The fingerprint's two windows (a digit check, then the volatile pass), and the
    # head read for an error shape (two patterns).
    assert sum(scanned) <= 2 * (2 * WINDOW) + 2 * steps.ERROR_HEAD


@pytest.mark.parametrize("make", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_observe_reads_a_bounded_part_of_a_1_mb_reply_and_argument(
    make: Callable[[int], str], scanned: list[int]
) -> None:
    detector = StuckDetector()
    detector.observe(AIMessage(make(MB)))
    detector.observe(
        AIMessage("", tool_calls=[{"name": "run", "args": {"x": make(MB)}, "id": "c"}])
    )
    # Per message: the fingerprint's two windows, each read by at most two patterns
    # (and a confidence line of <= 200 characters). An ASCII text without a digit
    # needs no pattern at all.
    assert max(scanned, default=0) <= WINDOW
    assert sum(scanned) <= 2 * (2 * 2 * WINDOW + 200)


def _seconds(text: str) -> float:
    best = float("inf")
    for _ in range(5):  # the best of five: a busy machine stalls single runs
        start = time.perf_counter()
        normalize_text(text)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("make", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_normalize_text_is_linear_up_to_1_mb(make: Callable[[int], str]) -> None:
    small, large = _seconds(make(MB // 32)), _seconds(make(MB))
    # Linear: ~32x. Quadratic: ~1000x (the old pattern: minutes). The bound leaves
    # a 10x margin for a busy machine, where one slow run is common.
    assert large <= 320 * max(small, 1e-3)
