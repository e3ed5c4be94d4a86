"""The default detector against 200 real agent conversations (tau-bench airline).

The data lives outside the repository (``../shared/data/tau-bench``, or
``ESCALATE_TAU_BENCH``); CI has it. ``benchmarks/tau_bench.py`` prints the full
report; this test keeps the figures that docs/detector.md states from rotting.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from langchain_escalate.detector import StuckDetector, messages_from_dicts

DATA = Path(
    os.environ.get(
        "ESCALATE_TAU_BENCH",
        Path(__file__).resolve().parents[2] / "shared/data/tau-bench/gpt-4o-airline.json",
    )
)
FALSE_ALARM_TARGET = 0.05


@pytest.fixture(scope="module")
def runs() -> list[dict]:
    if not DATA.exists():
        if os.environ.get("CI"):
            pytest.fail(f"tau-bench data missing in CI: {DATA}")
        pytest.skip(f"tau-bench data not found at {DATA} (set ESCALATE_TAU_BENCH)")
    return json.loads(DATA.read_text())


def _flagged(run: dict) -> bool:
    detector = StuckDetector()
    return any(detector.observe(m).stuck for m in messages_from_dicts(run["traj"]))


def test_default_detector_stays_quiet_on_successful_runs(runs: list[dict]) -> None:
    successful = [run for run in runs if run["reward"] == 1.0]
    false_alarms = [run["task_id"] for run in successful if _flagged(run)]
    assert len(successful) == 84
    assert len(false_alarms) / len(successful) <= FALSE_ALARM_TARGET, false_alarms


def test_default_detector_catches_real_loops_in_failed_runs(runs: list[dict]) -> None:
    # docs/detector.md: task 3 (three failed update_reservation_flights calls)
    # and task 9 (a failing booking alternating with `think`).
    failed = [run for run in runs if run["reward"] == 0.0]
    flagged = {(run["task_id"], run["trial"]) for run in failed if _flagged(run)}
    assert {(3, 0), (9, 2)} <= flagged
