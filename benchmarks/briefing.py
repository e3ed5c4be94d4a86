"""What the briefing keeps on real coding-agent runs, before vs after (issue #9).

Replays the three OpenHands runs in ``../shared/data/openhands-llama4`` and, at
each cut point, builds the briefing the strong model would read with the
previous implementation (copied below as ``previous_briefing``) and with the
current ``build_briefing``, at the same bound. Cut points: every firing of the
default detector, and a fixed list (after every tool result from message 10
on, with the last six messages as evidence). Printed per bound:

- statement kept: the issue text (the ``<issue_description>`` block) whole;
- task kept: the whole first user message;
- latest error kept: the last failing tool result whole (or, when longer than
  a quarter of the bound, its first and last 40 characters);
- the largest briefing, in ``count_tokens_approximately`` tokens, and how many
  exceed the bound.

Texts are compared with white space collapsed (the previous version collapsed it).

Run: python benchmarks/briefing.py [--data DIR] [--bounds 800,1500,3000]
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_escalate.detector import DetectorConfig, StuckDetector, Verdict
from langchain_escalate.detector.formats import messages_from_dicts
from langchain_escalate.detector.steps import is_error
from langchain_escalate.expert.briefing import build_briefing, estimate_tokens

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

DATA = next(
    (
        folder / "shared" / "data" / "openhands-llama4"
        for folder in Path(__file__).resolve().parents[2:4]
        if (folder / "shared" / "data").is_dir()
    ),
    Path("../shared/data/openhands-llama4"),
)
"""``../shared`` next to the repository (or next to the folder of its worktrees)."""
ISSUE = re.compile(r"<issue_description>(.*?)</issue_description>", re.DOTALL)
FIXED_FROM = 10
EVIDENCE_SPAN = 6


@dataclass
class Tally:
    points: int = 0
    statement: int = 0
    task: int = 0
    error: int = 0
    error_points: int = 0
    largest: int = 0
    over: int = 0
    misses: list[str] = field(default_factory=list)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--bounds", default="800,1500,3000")
    args = parser.parse_args()
    runs = {path.name: read_run(path) for path in sorted(args.data.glob("*.json"))}
    if not runs:
        raise SystemExit(f"no runs in {args.data}")
    points = [(name, cut, verdict) for name, ms in runs.items() for cut, verdict in cuts(ms)]
    firings = sum(1 for _, _, verdict in points if verdict.rule != "fixed_cut")
    print(f"{len(runs)} runs, {len(points)} cut points ({firings} detector firings)")
    for bound in (int(value) for value in args.bounds.split(",")):
        for label, build in (("before", previous_briefing), ("after", build_briefing)):
            tally = measure(runs, points, build, bound)
            print(render(label, bound, tally))
        for label, build in (("before", previous_briefing), ("after", build_briefing)):
            firing_points = [p for p in points if p[2].rule != "fixed_cut"]
            tally = measure(runs, firing_points, build, bound)
            print(render(f"{label} (firings only)", bound, tally))


def read_run(path: Path) -> list[BaseMessage]:
    return messages_from_dicts(json.loads(path.read_text(encoding="utf-8")))


def cuts(messages: Sequence[BaseMessage]) -> list[tuple[int, Verdict]]:
    """The default detector's firings, then a fixed cut after every tool result."""
    detector = StuckDetector(DetectorConfig())
    points = [
        (index, verdict)
        for index, verdict in enumerate(map(detector.observe, messages))
        if verdict.stuck
    ]
    for index in range(FIXED_FROM, len(messages)):
        if isinstance(messages[index], ToolMessage):
            evidence = list(range(max(index - EVIDENCE_SPAN + 1, 0), index + 1))
            points.append(
                (index, Verdict(stuck=True, rule="fixed_cut", reason="a fixed cut point.",
                                evidence=evidence))
            )  # fmt: skip
    return points


def measure(
    runs: dict[str, list[BaseMessage]],
    points: Sequence[tuple[str, int, Verdict]],
    build: Callable[..., str],
    bound: int,
) -> Tally:
    tally = Tally()
    for name, cut, verdict in points:
        messages = runs[name][: cut + 1]
        text = flat(build(messages, verdict=verdict, max_tokens=bound))
        task = next(str(m.text) for m in messages if isinstance(m, HumanMessage))
        issue = ISSUE.search(task)
        tally.points += 1
        tally.statement += issue is not None and flat(issue.group(1)) in text
        tally.task += flat(task) in text
        error = latest_error(messages)
        if error is not None:
            tally.error_points += 1
            tally.error += error_kept(error, text, bound)
        tokens = estimate_tokens(build(messages, verdict=verdict, max_tokens=bound))
        tally.largest = max(tally.largest, tokens)
        tally.over += tokens > bound
    return tally


def latest_error(messages: Sequence[BaseMessage]) -> str | None:
    for message in reversed(messages):
        if isinstance(message, ToolMessage) and is_error(message):
            return str(message.text)
    return None


def error_kept(error: str, text: str, bound: int) -> bool:
    body = flat(error)
    if len(body) <= bound:  # a quarter of the bound, at four characters a token
        return body in text
    return body[:40] in text and body[-40:] in text


def flat(text: str) -> str:
    return " ".join(text.split())


def render(label: str, bound: int, tally: Tally) -> str:
    return (
        f"max_tokens={bound:>5} {label:<22} statement whole {tally.statement:>3}/{tally.points}"
        f"  task whole {tally.task:>3}/{tally.points}"
        f"  latest error kept {tally.error:>3}/{tally.error_points}"
        f"  largest {tally.largest:>5} tokens  over bound {tally.over}"
    )


# --- the previous implementation (before issue #9), kept as the baseline ---------

_CHARS_PER_TOKEN = 4
_ELLIPSIS = " [...] "
_MIN_OBSERVATION_CHARS = 120
_PREVIOUS_QUESTION = (
    "The assistant is stuck. What should it do differently to finish the task? "
    "Answer with short, concrete guidance it can act on."
)


def previous_briefing(
    messages: Sequence[BaseMessage], *, verdict: Verdict | None = None, max_tokens: int = 1500
) -> str:
    budget = max_tokens * _CHARS_PER_TOKEN
    start = next(
        (p for p in range(len(messages) - 1, -1, -1) if isinstance(messages[p], HumanMessage)), 0
    )
    first = messages[start]
    task = _text(first) if isinstance(first, HumanMessage) else "(no task given)"
    ask = _cut_middle(_PREVIOUS_QUESTION, budget // 6)
    why = f"Stuck detector rule `{verdict.rule}`: {verdict.reason}" if verdict else ""
    task = _cut_middle(task, max(budget // 3, _MIN_OBSERVATION_CHARS))
    sections = [("## Task", task)]
    fixed = _sections(sections) + _sections([("## Why help is needed", why), ("## Question", ask)])
    room = budget - len(fixed) - len("## What was tried\n\n")
    steps = _previous_steps(messages[start + 1 :], room)
    if steps:
        sections.append(("## What was tried", steps))
    sections += [("## Why help is needed", why), ("## Question", ask)]
    return _sections(sections)[:budget].rstrip()


def _previous_steps(steps: Sequence[BaseMessage], room: int) -> str:
    if room <= 0 or not steps:
        return ""
    per_line = max(room // 8, _MIN_OBSERVATION_CHARS)
    lines: list[str] = []
    used = omitted = 0
    for index in range(len(steps) - 1, -1, -1):
        line = _previous_line(steps[index], per_line)
        if not line:
            continue
        if used + len(line) + 1 > room - 40:
            omitted = sum(1 for m in steps[: index + 1] if not isinstance(m, SystemMessage))
            break
        lines.append(line)
        used += len(line) + 1
    lines.reverse()
    if omitted:
        lines.insert(0, f"- ({omitted} earlier steps omitted)")
    return "\n".join(lines)


def _previous_line(message: BaseMessage, max_chars: int) -> str:
    if isinstance(message, AIMessage):
        if message.tool_calls:
            calls = "; ".join(
                f"{c['name']}({json.dumps(c['args'], sort_keys=True, separators=(',', ':'))})"
                for c in message.tool_calls
            )
            return "- called " + _cut_middle(calls, max_chars)
        text = _text(message)
        return "- replied: " + _cut_middle(text, max_chars) if text else ""
    if isinstance(message, ToolMessage):
        label = "error" if message.status == "error" else "result"
        return f"  -> {label}: " + _cut_middle(_text(message) or "(empty)", max_chars)
    if isinstance(message, HumanMessage):
        return "- user said: " + _cut_middle(_text(message), max_chars)
    return ""


def _cut_middle(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    keep = max_chars - len(_ELLIPSIS)
    return text[: keep - keep // 2] + _ELLIPSIS + text[len(text) - keep // 2 :]


def _sections(sections: Sequence[tuple[str, Any]]) -> str:
    return "".join(f"{title}\n{body}\n\n" for title, body in sections if body)


def _text(message: BaseMessage) -> str:
    return " ".join(str(message.text).split())


if __name__ == "__main__":
    main()
