"""``langchain-escalate calibrate``: the curve, APGR and CPT against a hand computation (#10)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from langchain_escalate.calibrate import (
    Run,
    calibrate,
    read_runs,
    runs_from_records,
    split_runs,
)
from langchain_escalate.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _run(run_id: str, weak_ok: bool, confidence: float, strong_ok: bool) -> dict[str, Any]:
    return {
        "id": run_id,
        "weak": {"correct": weak_ok, "cost": 1.0, "confidence": confidence},
        "strong": {"correct": strong_ok, "cost": 10.0},
    }


# Four runs; the weak model costs 1, the strong one 10.
#
#   run  weak  confidence  strong
#   A    right    0.9      right
#   B    wrong    0.2      right
#   C    right    0.4      wrong
#   D    wrong    0.6      right
#
# Always-weak quality 2/4 = 0.5; always-strong 3/4 = 0.75 (cost 40).
# "Escalate when confidence < t" (an escalated run gets the strong answer):
#
#   t    escalated  quality                cost             rate  PGR=(q-0.5)/0.25
#   0    -          A,C right      = 0.50  4                0     0
#   0.2  -          (B is not < 0.2) 0.50  4                0     0
#   0.4  B          A,B,C right    = 0.75  4 + 10 = 14      0.25  1
#   0.6  B,C        A,B right      = 0.50  4 + 20 = 24      0.50  0
#   0.9  B,C,D      A,B,D right    = 0.75  4 + 30 = 34      0.75  1
#   1    A,B,C,D    A,B,D right    = 0.75  4 + 40 = 44      1     1
#
# Target 0.95 x 0.75 = 0.7125: t = 0.4, 0.9 and 1 reach it; 0.4 is cheapest.
# APGR, trapezoids under PGR over the rate from (0,0) to (1,1):
#   0..0.25: 0.25 x (0+1)/2 = 0.125;  0.25..0.5: 0.125;  0.5..0.75: 0.125;
#   0.75..1: 0.25 x (1+1)/2 = 0.25;   total 0.625.
# CPT(50%) = CPT(80%) = 0.25: the first rate whose PGR reaches them.
# Random at the recommended rate 0.25: quality 0.5 + 0.25 x 0.25 = 0.5625,
#   cost 4 + 0.25 x 40 = 14. Oracle escalates B and D (strong better): quality 1.0,
#   cost 4 + 20 = 24, rate 0.5.
HAND_RUNS = [
    _run("A", True, 0.9, True),
    _run("B", False, 0.2, True),
    _run("C", True, 0.4, False),
    _run("D", False, 0.6, True),
]
HAND_CURVE = [
    {"threshold": 0.0, "quality": 0.5, "cost": 4.0, "escalation_rate": 0.0},
    {"threshold": 0.2, "quality": 0.5, "cost": 4.0, "escalation_rate": 0.0},
    {"threshold": 0.4, "quality": 0.75, "cost": 14.0, "escalation_rate": 0.25},
    {"threshold": 0.6, "quality": 0.5, "cost": 24.0, "escalation_rate": 0.5},
    {"threshold": 0.9, "quality": 0.75, "cost": 34.0, "escalation_rate": 0.75},
    {"threshold": 1.0, "quality": 0.75, "cost": 44.0, "escalation_rate": 1.0},
]


def _write(path: Path, lines: list[Any]) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )
    return path


def _json_output(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["calibrate", *argv, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_curve_apgr_and_cpt_match_the_hand_computation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = _write(tmp_path / "runs.jsonl", HAND_RUNS)

    code, result = _json_output(capsys, str(runs), "--target-quality", "0.95")

    assert code == 0
    assert result["curve"] == [pytest.approx(point) for point in HAND_CURVE]
    assert result["recommended"] == pytest.approx(HAND_CURVE[2])
    assert result["apgr"] == pytest.approx(0.625)
    assert result["cpt50"] == pytest.approx(0.25)
    assert result["cpt80"] == pytest.approx(0.25)
    assert result["baselines"] == {
        "weak": pytest.approx({"quality": 0.5, "cost": 4.0, "escalation_rate": 0.0}),
        "strong": pytest.approx({"quality": 0.75, "cost": 40.0, "escalation_rate": 1.0}),
        "random": pytest.approx({"quality": 0.5625, "cost": 14.0, "escalation_rate": 0.25}),
        "oracle": pytest.approx({"quality": 1.0, "cost": 24.0, "escalation_rate": 0.5}),
    }


def test_text_output_leads_with_the_recommendation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = _write(tmp_path / "runs.jsonl", HAND_RUNS)

    code = main(["calibrate", str(runs)])

    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[1] == (
        "recommended: low_confidence = 0.4  (reaches 95% of always-strong quality (0.750))"
    )
    assert "APGR 0.625   CPT(50%) 25%   CPT(80%) 25%" in out


def test_an_unreachable_target_says_so_and_shows_the_best_reachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The weak model is sure (1.0) and wrong on E: no threshold in 0..1 escalates it,
    # so the best reachable quality is 0.6 (A, B, D of A..E), short of strong's 0.8.
    runs = _write(tmp_path / "runs.jsonl", [*HAND_RUNS, _run("E", False, 1.0, True)])

    code = main(["calibrate", str(runs), "--target-quality", "1"])

    out = capsys.readouterr().out
    assert code == 1
    assert "no threshold reaches 100% of always-strong quality (0.800)" in out
    assert "best reachable: low_confidence = 0.4" in out
    assert "quality 0.600, cost 15 USD, 20% escalated" in out


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ({"id": "a", "weak": {"correct": True, "cost": 1}, "strong": {"correct": True, "cost": 1}},
         "runs.jsonl:2: weak.confidence: Field required"),
        (_run("a", True, 1.5, True),
         "runs.jsonl:2: weak.confidence: Input should be less than or equal to 1"),
        ({**_run("a", True, 0.5, True), "strong": {"correct": True, "cost": -0.01}},
         "runs.jsonl:2: strong.cost: Input should be greater than or equal to 0"),
        ({"weak": _run("a", True, 0.5, True)["weak"], "strong": {"correct": True, "cost": 1}},
         "runs.jsonl:2: id: Field required"),
        ("{not json", "runs.jsonl:2: line: not a JSON object"),
        (_run("A", True, 0.5, True), "runs.jsonl:2: id: 'A' repeats line 1"),
    ],
)  # fmt: skip
def test_bad_lines_are_named_by_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: Any, expected: str
) -> None:
    runs = _write(tmp_path / "runs.jsonl", [HAND_RUNS[0], line])

    code = main(["calibrate", str(runs)])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(str(tmp_path / expected))


def test_every_bad_line_is_reported_not_only_the_first(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "runs.jsonl",
        [_run("a", True, -1, True), "", _run("b", True, 0.5, True) | {"strong": {}}],
    )

    with pytest.raises(ValueError, match=r"weak\.confidence") as raised:
        read_runs(path)

    problems = raised.value.problems  # type: ignore[attr-defined]
    assert [problem.split(": ")[0].rsplit(":", 1)[1] for problem in problems] == ["1", "3", "3"]
    assert {problem.split(": ")[1] for problem in problems} == {
        "weak.confidence",
        "strong.correct",
        "strong.cost",
    }


def test_an_empty_file_is_bad_input_from_the_real_command(tmp_path: Path) -> None:
    empty = tmp_path / "runs.jsonl"
    empty.write_text("\n\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    done = subprocess.run(  # noqa: S603 - our own command, arguments from the test
        [sys.executable, "-m", "langchain_escalate.cli", "calibrate", str(empty)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )

    assert done.returncode == 2
    assert done.stderr == f"{empty}:1: runs: the file has no runs\n"
    assert done.stdout == ""


def test_holdout_calibrates_on_one_part_and_reports_on_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [_run(f"r{i}", i % 3 != 0, (i % 10) / 10, True) for i in range(40)]
    runs = _write(tmp_path / "runs.jsonl", lines)
    fit, held = split_runs([Run.model_validate(line) for line in lines], 0.25)

    code, result = _json_output(capsys, str(runs), "--holdout", "0.25")

    threshold = result["recommended"]["threshold"]
    escalated = [run for run in held if run.weak.confidence < threshold]
    right = sum(1 for run in held if run.weak.confidence < threshold or run.weak.correct)
    assert code in {0, 1}
    assert (len(fit), len(held)) == (30, 10)
    assert result["runs"] == 30
    assert result["holdout"]["runs"] == 10
    assert result["holdout"]["threshold"] == threshold
    assert result["holdout"]["quality"] == pytest.approx(right / 10)
    assert result["holdout"]["escalation_rate"] == pytest.approx(len(escalated) / 10)


def test_the_holdout_split_does_not_depend_on_file_order() -> None:
    runs = [Run.model_validate(_run(f"r{i}", True, 0.5, True)) for i in range(20)]

    _, held = split_runs(runs, 0.3)
    _, held_reversed = split_runs(runs[::-1], 0.3)

    assert {run.id for run in held} == {run.id for run in held_reversed}


def test_plot_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = _write(tmp_path / "runs.jsonl", HAND_RUNS)
    plot = tmp_path / "curve.png"

    main(["calibrate", str(runs), "--plot", str(plot)])

    assert f"plot: {plot}" in capsys.readouterr().out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_records_and_labels_become_runs_that_calibrate_reads(tmp_path: Path) -> None:
    records = [
        {"thread_id": "t1", "action": "escalate", "cost_usd": 0.02, "confidence": {"score": 0.3}},
        {"thread_id": "t1", "action": "escalate", "cost_usd": 0.01},
    ]
    labels = {
        "t1": {"weak_correct": False, "strong_correct": True, "weak_cost": 0.001},
        "t2": {
            "weak_correct": True,
            "strong_correct": True,
            "weak_cost": 0.002,
            "confidence": 0.9,
            "strong_cost": 0.03,
        },
    }

    lines = runs_from_records(records, labels)
    runs = read_runs(_write(tmp_path / "runs.jsonl", lines))

    assert lines[0] == {
        "id": "t1",
        "weak": {"correct": False, "cost": 0.001, "confidence": 0.3},
        "strong": {"correct": True, "cost": pytest.approx(0.03)},
    }
    assert [run.id for run in runs] == ["t1", "t2"]
    assert calibrate(runs, target_quality=1.0).recommended.threshold == 0.9


def test_a_thread_without_a_confidence_is_named() -> None:
    with pytest.raises(ValueError, match=r"thread 't9': no confidence, strong_cost"):
        runs_from_records(
            [], {"t9": {"weak_correct": True, "strong_correct": True, "weak_cost": 0}}
        )


def test_calibrate_imports_neither_litellm_nor_matplotlib_without_plot(tmp_path: Path) -> None:
    runs = _write(tmp_path / "runs.jsonl", HAND_RUNS)
    code = (
        "import sys\n"
        "from langchain_escalate.cli import main\n"
        f"assert main(['calibrate', {str(runs)!r}, '--format', 'json']) == 0\n"
        "loaded = [name for name in ('litellm', 'matplotlib') if name in sys.modules]\n"
        "assert not loaded, loaded\n"
    )

    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
