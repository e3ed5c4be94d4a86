"""``langchain-escalate calibrate``: choose the ``low_confidence`` threshold from logged runs.

Reads RUNS.jsonl (one ``{"id", "weak": {"correct", "cost", "confidence"},
"strong": {"correct", "cost"}}`` a line), prints the quality/cost curve of
"escalate when confidence < t", the cheapest threshold reaching ``Q x`` the
always-strong quality, and RouteLLM's APGR and CPT beside the baselines.

Exit codes: 0 when the target is reached; 1 when no threshold reaches it (the
best reachable is printed); 2 for bad input, one ``FILE:LINE: field: problem``
line on stderr per problem. No model is called and litellm is never imported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_escalate.calibrate import (
    Calibration,
    Point,
    RunsError,
    calibrate,
    plot_calibration,
    read_runs,
)

if TYPE_CHECKING:
    import argparse

EXIT_OK = 0
EXIT_TARGET_MISSED = 1
EXIT_BAD_INPUT = 2
PROBLEMS_SHOWN = 20
"""Bad-input lines printed before the rest are counted."""


# argparse exposes the type of ``add_subparsers()`` only under this private name.
def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``calibrate`` on the ``langchain-escalate`` command line.

    Args:
        subparsers: The command's subparsers.
    """
    parser = subparsers.add_parser(
        "calibrate",
        help="choose the low-confidence threshold from logged runs (RUNS.jsonl)",
        description=(
            "From logged runs, the quality/cost curve of 'escalate when confidence < t' "
            "(the weak cost is always paid, the strong cost only when escalated), the "
            "cheapest threshold whose quality reaches Q x the always-strong quality, and "
            "RouteLLM's APGR and CPT(50%%), CPT(80%%) beside always-weak, always-strong, "
            "random and oracle routing. Exit 0: target reached; 1: not reachable (the best "
            "reachable is shown); 2: bad input."
        ),
    )
    parser.add_argument("runs", metavar="RUNS.jsonl", help="one run a line (see docs/calibrate.md)")
    parser.add_argument(
        "--target-quality",
        type=_unit_float,
        default=0.95,
        metavar="Q",
        help="reach Q x the always-strong quality (0..1, default 0.95)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--holdout",
        type=_share,
        metavar="F",
        help="keep a share F of the runs (0 < F < 1) out of the calibration and report on it",
    )
    parser.add_argument("--plot", metavar="FILE.png", help="draw the curves to this PNG")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Calibrate on the runs file and print the result.

    Args:
        args: ``runs``, ``target_quality``, ``format``, ``holdout``, ``plot``.

    Returns:
        0 when the target is reached, 1 when not, 2 for bad input.
    """
    path = Path(args.runs)
    try:
        runs = read_runs(path)
        result = calibrate(runs, target_quality=args.target_quality, holdout=args.holdout)
    except RunsError as error:
        for problem in error.problems[:PROBLEMS_SHOWN]:
            sys.stderr.write(problem + "\n")
        if len(error.problems) > PROBLEMS_SHOWN:
            sys.stderr.write(f"... and {len(error.problems) - PROBLEMS_SHOWN} more problems\n")
        return EXIT_BAD_INPUT
    except OSError as error:
        sys.stderr.write(f"{path}: cannot read: {error.strerror or error}\n")
        return EXIT_BAD_INPUT
    except ValueError as error:  # a holdout that leaves one side empty
        sys.stderr.write(f"{path}: {error}\n")
        return EXIT_BAD_INPUT
    if args.plot:
        plot_calibration(result, Path(args.plot))
    if args.format == "json":
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    else:
        sys.stdout.write(render_text(result, args.plot))
    return EXIT_OK if result.target_reached else EXIT_TARGET_MISSED


def render_text(result: Calibration, plot: str | None = None) -> str:
    """The report for people: the recommendation first, then summaries, baselines and curve."""
    best, base = result.recommended, result.baselines
    goal = f"{result.target_quality:.0%} of always-strong quality ({base['strong']['quality']:.3f})"
    lines = [f"{result.runs} runs"]
    if result.target_reached:
        lines.append(f"recommended: low_confidence = {best.threshold:.4g}  (reaches {goal})")
    else:
        lines.append(f"no threshold reaches {goal}; the best reachable:")
        lines.append(f"best reachable: low_confidence = {best.threshold:.4g}")
    lines.append(f"  {_describe(best)}")
    lines.append(
        f"APGR {_number(result.apgr)}   CPT(50%) {_share_text(result.cpt50)}   "
        f"CPT(80%) {_share_text(result.cpt80)}   (share of runs sent to the strong model)"
    )
    lines.append("baselines:")
    lines.extend(
        f"  {name:7} {_describe(Point(0, **base[name]))}"
        for name in ("weak", "strong", "random", "oracle")
    )
    if result.holdout is not None:
        held = result.holdout
        verdict = "reaches" if held["target_reached"] else "misses"
        lines.append(
            f"held out ({held['runs']} runs) at t = {held['threshold']:.4g}: quality "
            f"{held['quality']:.3f} vs strong {held['strong_quality']:.3f}, cost "
            f"{held['cost']:.6g} USD, {held['escalation_rate']:.0%} escalated: {verdict} the target"
        )
    lines.append("curve:")
    lines.append("  threshold  quality  escalated  cost (USD)")
    lines.extend(
        f"  {p.threshold:9.4g}  {p.quality:7.3f}  {p.escalation_rate:9.0%}  {p.cost:.6g}"
        for p in result.curve
    )
    if plot:
        lines.append(f"plot: {plot}")
    return "\n".join(lines) + "\n"


def _describe(point: Point) -> str:
    return (
        f"quality {point.quality:.3f}, cost {point.cost:.6g} USD, "
        f"{point.escalation_rate:.0%} escalated"
    )


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _share_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _unit_float(text: str) -> float:
    import argparse  # noqa: PLC0415 - for its error type only

    value = float(text)
    if not 0.0 < value <= 1.0:
        msg = f"{text}: expected a number in (0, 1]"
        raise argparse.ArgumentTypeError(msg)
    return value


def _share(text: str) -> float:
    import argparse  # noqa: PLC0415 - for its error type only

    value = float(text)
    if not 0.0 < value < 1.0:
        msg = f"{text}: expected a share strictly between 0 and 1"
        raise argparse.ArgumentTypeError(msg)
    return value
