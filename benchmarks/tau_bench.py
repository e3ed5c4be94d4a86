"""The default stuck detector against 200 real agent conversations (tau-bench airline, gpt-4o).

A successful run (reward 1.0) that the detector flags is a false alarm; what it
flags in failed runs (reward 0.0) shows what real trouble looks like. The same
run also scores a trigger-happy configuration (every threshold at its minimum)
as a baseline, to show what the default thresholds buy.

Data: ``../shared/data/tau-bench/gpt-4o-airline.json`` next to the repository,
or ``--data PATH``, or the ``ESCALATE_TAU_BENCH`` environment variable.

Run: python benchmarks/tau_bench.py [--data PATH] [--show N]
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import ToolMessage

from langchain_escalate.detector import DetectorConfig, StuckDetector, Verdict, messages_from_dicts
from langchain_escalate.detector.formats import check_tool_answers
from langchain_escalate.detector.steps import is_error

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "tau-bench" / "gpt-4o-airline.json"
)
FALSE_ALARM_TARGET = 0.05

CONFIGS = {
    "default": DetectorConfig(),
    "minimum thresholds": DetectorConfig(
        repeated_action_observation=2,
        repeated_action_error=2,
        consecutive_failures=2,
        monologue=2,
        alternating=4,
    ),
    "default, windows kept across user turns": DetectorConfig(reset_on_human=False),
}


@dataclass(frozen=True)
class Flag:
    task_id: int
    trial: int
    reward: float
    index: int
    messages: int
    verdict: Verdict


def flags_of(runs: list[dict[str, Any]], config: DetectorConfig) -> list[Flag]:
    flags = []
    for run in runs:
        messages = messages_from_dicts(run["traj"])
        check_tool_answers(messages)
        detector = StuckDetector(config)
        for index, message in enumerate(messages):
            verdict = detector.observe(message)
            if verdict.stuck:
                flags.append(
                    Flag(run["task_id"], run["trial"], run["reward"], index, len(messages), verdict)
                )
    return flags


def has_tool_error(run: dict[str, Any]) -> bool:
    return any(isinstance(m, ToolMessage) and is_error(m) for m in messages_from_dicts(run["traj"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("ESCALATE_TAU_BENCH", DEFAULT_DATA))
    )
    parser.add_argument(
        "--show", type=int, default=10, help="flags of failed runs to print (default 10)"
    )
    args = parser.parse_args()
    if not args.data.is_file():
        parser.error(f"{args.data} not found: pass --data PATH or set ESCALATE_TAU_BENCH")

    runs = json.loads(args.data.read_text())
    successful = [run for run in runs if run["reward"] == 1.0]
    failed = [run for run in runs if run["reward"] != 1.0]
    sizes = sorted(len(run["traj"]) for run in runs)
    print(
        f"tau-bench airline (gpt-4o): {len(runs)} runs, "
        f"{len(successful)} successful, {len(failed)} failed"
    )
    print(f"messages per run: median {sizes[len(sizes) // 2]}, max {sizes[-1]}")
    print(
        "runs with at least one tool error: "
        f"{sum(map(has_tool_error, successful))}/{len(successful)} "
        f"successful, {sum(map(has_tool_error, failed))}/{len(failed)} failed\n"
    )

    for name, config in CONFIGS.items():
        ok_flags = flags_of(successful, config)
        bad_flags = flags_of(failed, config)
        false_alarms = {(flag.task_id, flag.trial) for flag in ok_flags}
        caught = {(flag.task_id, flag.trial) for flag in bad_flags}
        rate = len(false_alarms) / len(successful)
        status = "ok" if rate <= FALSE_ALARM_TARGET else "ABOVE TARGET"
        print(f"[{name}]")
        print(
            f"  successful runs flagged (false alarms): {len(false_alarms)}/{len(successful)} "
            f"({rate:.1%}; target <= {FALSE_ALARM_TARGET:.0%}: {status})"
        )
        print(f"    by rule: {dict(Counter(flag.verdict.rule for flag in ok_flags)) or '-'}")
        print(
            f"  failed runs flagged: {len(caught)}/{len(failed)} ({len(caught) / len(failed):.1%})"
        )
        print(f"    by rule: {dict(Counter(flag.verdict.rule for flag in bad_flags)) or '-'}")
        if name == "default":
            for flag in bad_flags[: args.show]:
                print(
                    f"    task {flag.task_id} trial {flag.trial}, "
                    f"message {flag.index} of {flag.messages}: "
                    f"{flag.verdict.rule}: {flag.verdict.reason}"
                )
        print()


if __name__ == "__main__":
    main()
