"""Choose the ``low_confidence`` threshold from logged runs: the quality/cost curve.

Each run answers one task twice: the weak model (with its confidence and its
cost) and the strong model. The policy "escalate when confidence < t" pays the
weak cost always and the strong cost only when it escalates; an escalated run
gets the strong model's quality. Sweeping ``t`` gives a curve; the cheapest
point whose quality reaches ``Q x`` the always-strong quality is recommended.

The summaries follow RouteLLM (Ong et al., 2024, "RouteLLM: Learning to Route
LLMs with Preference Data", arXiv:2406.18665): the performance gap recovered
``PGR = (quality - weak) / (strong - weak)`` against the share of calls sent to
the strong model; APGR is the area under PGR over that share; CPT(x%) is the
least share of strong calls that reaches a PGR of x%. See ``docs/calibrate.md``.

No model is called here, and litellm is never imported.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

Correctness = StrictBool | Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
"""A run's quality: ``true``/``false``, or a grade in 0..1."""


class _Weak(BaseModel):
    model_config = ConfigDict(extra="ignore")
    correct: Correctness = Field(description="Was the weak answer right (or its grade, 0..1)?")
    cost: float = Field(ge=0, allow_inf_nan=False, description="Weak model's cost in USD.")
    confidence: float = Field(ge=0, le=1, allow_inf_nan=False, description="Confidence, 0..1.")


class _Strong(BaseModel):
    model_config = ConfigDict(extra="ignore")
    correct: Correctness = Field(description="Was the strong answer right (or its grade, 0..1)?")
    cost: float = Field(ge=0, allow_inf_nan=False, description="Strong model's cost in USD.")


class Run(BaseModel):
    """One line of RUNS.jsonl: ``{"id", "weak": {...}, "strong": {...}}``."""

    model_config = ConfigDict(extra="ignore")
    id: str | int
    weak: _Weak
    strong: _Strong

    @property
    def weak_quality(self) -> float:
        """The weak answer's quality in 0..1."""
        return float(self.weak.correct)

    @property
    def strong_quality(self) -> float:
        """The strong answer's quality in 0..1."""
        return float(self.strong.correct)


class RunsError(ValueError):
    """RUNS.jsonl cannot be read; ``problems`` holds one ``FILE:LINE: field: problem`` each."""

    def __init__(self, problems: list[str]) -> None:
        """Keep every problem; the message is the first."""
        super().__init__(problems[0])
        self.problems = problems


@dataclass(frozen=True)
class Point:
    """One operating point: escalate when confidence < ``threshold``."""

    threshold: float
    quality: float
    cost: float
    escalation_rate: float


@dataclass(frozen=True)
class Calibration:
    """The curve, the recommended point and the RouteLLM-style summaries."""

    curve: list[Point]
    recommended: Point
    target_reached: bool
    target_quality: float
    apgr: float | None
    cpt50: float | None
    cpt80: float | None
    baselines: dict[str, dict[str, float]]
    runs: int
    holdout: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """The JSON output of ``langchain-escalate calibrate`` (``docs/calibrate.md``)."""
        result = {
            "curve": [asdict(point) for point in self.curve],
            "recommended": asdict(self.recommended),
            "target_reached": self.target_reached,
            "target_quality": self.target_quality,
            "apgr": self.apgr,
            "cpt50": self.cpt50,
            "cpt80": self.cpt80,
            "baselines": self.baselines,
            "runs": self.runs,
        }
        if self.holdout is not None:
            result["holdout"] = self.holdout
        return result


def read_runs(path: Path) -> list[Run]:
    """Read and validate RUNS.jsonl (blank lines skipped).

    Args:
        path: The file.

    Returns:
        The runs, in file order.

    Raises:
        RunsError: One ``FILE:LINE: field: problem`` per problem found (not JSON,
            a missing field, a confidence outside 0..1, a negative cost, a
            repeated id), or the file has no runs.
    """
    problems: list[str] = []
    runs: list[Run] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            run = Run.model_validate(json.loads(line))
        except ValueError as error:
            problems.extend(f"{path}:{number}: {where}" for where in _problems(error))
            continue
        key = str(run.id)
        if key in first_line:
            problems.append(f"{path}:{number}: id: {key!r} repeats line {first_line[key]}")
            continue
        first_line[key] = number
        runs.append(run)
    if not runs and not problems:
        problems.append(f"{path}:1: runs: the file has no runs")
    if problems:
        raise RunsError(problems)
    return runs


def calibrate(
    runs: Sequence[Run], *, target_quality: float = 0.95, holdout: float | None = None
) -> Calibration:
    """Compute the curve, the recommended threshold and the summaries.

    Args:
        runs: The logged runs.
        target_quality: Q: reach ``Q x`` the always-strong quality.
        holdout: A share of the runs (0..1, chosen by a hash of their ids) kept
            out of the calibration and used to report how the chosen threshold does.

    Returns:
        The calibration; with ``holdout``, ``Calibration.holdout`` says how the
        threshold did on the held-out runs.

    Example:
        >>> runs = [Run.model_validate({"id": i, "weak": {"correct": i > 0, "cost": 1,
        ...     "confidence": i / 2}, "strong": {"correct": True, "cost": 10}}) for i in range(3)]
        >>> calibrate(runs, target_quality=1.0).recommended.threshold
        0.5
    """
    fit, held = split_runs(runs, holdout) if holdout else (list(runs), [])
    curve = quality_cost_curve(fit)
    weak, strong = _quality(fit, weak=True), _quality(fit, weak=False)
    target = target_quality * strong
    reaching = [point for point in curve if point.quality >= target - 1e-12]
    best = reaching or [max(curve, key=lambda point: point.quality)]
    recommended = min(best, key=lambda point: (point.cost, point.threshold))
    gaps = [(point.escalation_rate, _pgr(point.quality, weak, strong)) for point in curve]
    return Calibration(
        curve=curve,
        recommended=recommended,
        target_reached=bool(reaching),
        target_quality=target_quality,
        apgr=_apgr(gaps),
        cpt50=_cpt(gaps, 0.5),
        cpt80=_cpt(gaps, 0.8),
        baselines=baselines(fit, recommended.escalation_rate),
        runs=len(fit),
        holdout=_held_out(held, recommended.threshold, target_quality) if held else None,
    )


def quality_cost_curve(runs: Sequence[Run]) -> list[Point]:
    """One point per distinct threshold: 0, every confidence seen, and 1.

    Below the lowest confidence nothing escalates; at ``t`` every run whose
    confidence is below ``t`` escalates. Thresholds stay in 0..1, what the
    ``low_confidence`` rule accepts, so a run with confidence 1.0 never escalates.
    """
    thresholds = sorted({0.0, 1.0, *(run.weak.confidence for run in runs)})
    return [operating_point(runs, threshold) for threshold in thresholds]


def operating_point(runs: Sequence[Run], threshold: float) -> Point:
    """Quality, cost and escalation rate of "escalate when confidence < threshold"."""
    quality = cost = 0.0
    escalated = 0
    for run in runs:
        cost += run.weak.cost
        if run.weak.confidence < threshold:
            escalated += 1
            cost += run.strong.cost
            quality += run.strong_quality
        else:
            quality += run.weak_quality
    count = len(runs)
    return Point(threshold, quality / count, cost, escalated / count)


def baselines(runs: Sequence[Run], random_rate: float) -> dict[str, dict[str, float]]:
    """Always-weak, always-strong, random (at ``random_rate``) and oracle routing.

    Always-strong asks the strong model alone (no weak cost). Random escalates
    a share ``random_rate`` of runs at random (expected values). The oracle
    escalates exactly the runs where the strong answer is better.
    """
    count = len(runs)
    weak_cost = sum(run.weak.cost for run in runs)
    strong_cost = sum(run.strong.cost for run in runs)
    weak, strong = _quality(runs, weak=True), _quality(runs, weak=False)
    oracle = [run for run in runs if run.strong_quality > run.weak_quality]
    oracle_quality = sum(max(run.weak_quality, run.strong_quality) for run in runs) / count
    return {
        "weak": _baseline(weak, weak_cost, 0.0),
        "strong": _baseline(strong, strong_cost, 1.0),
        "random": _baseline(
            weak + random_rate * (strong - weak), weak_cost + random_rate * strong_cost, random_rate
        ),
        "oracle": _baseline(
            oracle_quality,
            weak_cost + sum(run.strong.cost for run in oracle),
            len(oracle) / count,
        ),
    }


def split_runs(runs: Sequence[Run], holdout: float) -> tuple[list[Run], list[Run]]:
    """Split into (calibration, held-out) by a hash of each id: stable across file orders."""
    ranked = sorted(runs, key=lambda run: hashlib.blake2b(str(run.id).encode()).hexdigest())
    held = round(len(ranked) * holdout)
    if not 0 < held < len(ranked):
        msg = f"--holdout {holdout} of {len(ranked)} runs leaves one side empty"
        raise ValueError(msg)
    return ranked[held:], ranked[:held]


def runs_from_records(
    records: Iterable[Mapping[str, Any]], labels: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Turn a shadow evaluation's escalation records and your labels into RUNS.jsonl lines.

    Run every task once with escalation forced on (or with the strong model run
    beside the weak one), label each answer, and key everything by ``thread_id``.

    Args:
        records: ``EscalationRecord.to_dict()`` dicts; the strong cost of a thread
            is the sum of ``cost_usd`` over its records, and its confidence the
            record's ``confidence`` (a number, or a dict with ``"score"``) when
            the record has one.
        labels: Per thread id: ``weak_correct`` and ``strong_correct`` (bool or
            0..1), ``weak_cost`` (USD), and optionally ``confidence`` and
            ``strong_cost`` (which override what the records say).

    Returns:
        One RUNS.jsonl object per labelled thread, in the labels' order.

    Raises:
        ValueError: A thread lacks a confidence or a strong cost, or a label
            lacks a field (the message names the thread and the field).
    """
    strong_cost: dict[str, float] = {}
    confidence: dict[str, float] = {}
    for record in records:
        thread = str(record.get("thread_id"))
        strong_cost[thread] = strong_cost.get(thread, 0.0) + float(record.get("cost_usd") or 0.0)
        stated = record.get("confidence")
        if isinstance(stated, dict):
            stated = stated.get("score")
        if isinstance(stated, (int, float)) and thread not in confidence:
            confidence[thread] = float(stated)
    runs = []
    for thread, label in labels.items():
        found = {
            "confidence": label.get("confidence", confidence.get(thread)),
            "strong_cost": label.get("strong_cost", strong_cost.get(thread)),
            **{key: label.get(key) for key in ("weak_correct", "strong_correct", "weak_cost")},
        }
        missing = [key for key, value in found.items() if value is None]
        if missing:
            msg = f"thread {thread!r}: no {', '.join(missing)} in its records or its label"
            raise ValueError(msg)
        run = {
            "id": thread,
            "weak": {
                "correct": found["weak_correct"],
                "cost": found["weak_cost"],
                "confidence": found["confidence"],
            },
            "strong": {"correct": found["strong_correct"], "cost": found["strong_cost"]},
        }
        runs.append(Run.model_validate(run).model_dump(mode="json"))
    return runs


def _problems(error: ValueError) -> list[str]:
    if isinstance(error, ValidationError):
        return [
            f"{'.'.join(str(part) for part in item['loc']) or 'line'}: {item['msg']}"
            for item in error.errors()
        ]
    return [f"line: not a JSON object ({error})"]


def _quality(runs: Sequence[Run], *, weak: bool) -> float:
    total = sum(run.weak_quality if weak else run.strong_quality for run in runs)
    return total / len(runs)


def _pgr(quality: float, weak: float, strong: float) -> float | None:
    if strong <= weak:
        return None
    return (quality - weak) / (strong - weak)


def _apgr(gaps: list[tuple[float, float | None]]) -> float | None:
    """Trapezoid area under PGR against the strong-call share, from (0, 0) to (1, 1)."""
    if any(pgr is None for _, pgr in gaps):
        return None
    points = sorted({(0.0, 0.0), (1.0, 1.0), *((rate, pgr or 0.0) for rate, pgr in gaps)})
    area = 0.0
    for (rate0, pgr0), (rate1, pgr1) in itertools.pairwise(points):
        area += (rate1 - rate0) * (pgr0 + pgr1) / 2
    return area


def _cpt(gaps: list[tuple[float, float | None]], share: float) -> float | None:
    """The least strong-call share of an operating point whose PGR reaches ``share``."""
    if any(pgr is None for _, pgr in gaps):
        return None
    reaching = [rate for rate, pgr in [*gaps, (1.0, 1.0)] if (pgr or 0.0) >= share - 1e-12]
    return min(reaching)


def _baseline(quality: float, cost: float, rate: float) -> dict[str, float]:
    return {"quality": quality, "cost": cost, "escalation_rate": rate}


def _held_out(runs: list[Run], threshold: float, target_quality: float) -> dict[str, Any]:
    point = operating_point(runs, threshold)
    target = target_quality * _quality(runs, weak=False)
    return {
        "runs": len(runs),
        **asdict(point),
        "strong_quality": _quality(runs, weak=False),
        "target_reached": point.quality >= target - 1e-12,
    }


def plot_calibration(calibration: Calibration, path: Path) -> None:
    """Draw quality and cost against the threshold, and quality against cost, to a PNG.

    The recommended point is marked; always-weak, always-strong, random and
    oracle are drawn beside the curve.

    Args:
        calibration: What ``calibrate`` returned.
        path: The PNG to write.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'langchain-escalate[plot]'``).
    """
    import matplotlib as mpl  # noqa: PLC0415 - optional, and slow to import

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    curve, best, base = calibration.curve, calibration.recommended, calibration.baselines
    figure, (by_threshold, tradeoff) = plt.subplots(1, 2, figsize=(11, 4.2))
    thresholds = [point.threshold for point in curve]
    by_threshold.step(thresholds, [p.quality for p in curve], where="pre", label="quality")
    by_threshold.axhline(base["strong"]["quality"], color="tab:green", ls="--", label="strong")
    by_threshold.axhline(base["weak"]["quality"], color="tab:red", ls="--", label="weak")
    by_threshold.axvline(best.threshold, color="black", ls=":", label=f"t = {best.threshold:.3g}")
    by_threshold.set(xlabel="threshold t (escalate when confidence < t)", ylabel="quality")
    cost_axis = by_threshold.twinx()
    cost_axis.step(thresholds, [p.cost for p in curve], where="pre", color="tab:orange")
    cost_axis.set_ylabel("cost (USD)", color="tab:orange")
    by_threshold.legend(loc="lower right", fontsize="small")

    tradeoff.plot([p.cost for p in curve], [p.quality for p in curve], "o-", ms=3, label="curve")
    for name, marker in (("weak", "s"), ("strong", "D"), ("oracle", "*"), ("random", "x")):
        tradeoff.plot(base[name]["cost"], base[name]["quality"], marker, ms=9, label=name)
    tradeoff.plot(
        [base["weak"]["cost"], base["weak"]["cost"] + base["strong"]["cost"]],
        [base["weak"]["quality"], base["strong"]["quality"]],
        ":",
        color="grey",
        label="random, every rate",
    )
    tradeoff.plot(best.cost, best.quality, "o", ms=12, mfc="none", mec="black", label="recommended")
    tradeoff.set(xlabel="cost (USD)", ylabel="quality", title=f"{calibration.runs} runs")
    tradeoff.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
