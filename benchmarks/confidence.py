"""How well each confidence source separates right answers from wrong ones, on a real model.

Three steps, each reproducible:

    python benchmarks/confidence.py questions   # write tests/data/questions.jsonl (seeded)
    python scripts/model_server.py start        # Gemma 3 270M on 127.0.0.1:8765
    python benchmarks/confidence.py run --limit 60 --seconds 540
    python scripts/model_server.py stop

``run`` asks the weak model (Gemma 3 270M through litellm, the answer constrained
to JSON ``{"answer", "confidence"}`` by the server's grammar) each question
once greedily with token logprobs, then draws up to k sampled answers for
``consistency``. Every reply goes through ``langchain_escalate.confidence``
exactly as the node would score it. It prints the AUROC of each source (right
vs wrong answers), writes one RUNS.jsonl per source and runs ``calibrate`` on
each.

The "strong" side of RUNS.jsonl is a stand-in, labelled as such: always
correct, costed at litellm's price for a real strong model (STRONG_PRICE_ID)
for the same tokens. The weak side is costed at a real cheap model's price
(WEAK_PRICE_ID), since a local 270M model has none; consistency samples are
part of the weak cost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "tests" / "data" / "questions.jsonl"
RUNS_DIR = ROOT / "tests" / "data"
SEED = 20261201
API_BASE = "http://127.0.0.1:8765/v1"
WEAK_ID = "openai/gemma-3-270m"
WEAK_PRICE_ID = "gpt-4o-mini"
STRONG_PRICE_ID = "claude-sonnet-4-5"

# --- the question set ----------------------------------------------------------

CAPITALS = {
    "France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid",
    "Germany": "Berlin", "Canada": "Ottawa", "Australia": "Canberra", "Brazil": "Brasilia",
    "Egypt": "Cairo", "Kenya": "Nairobi", "Norway": "Oslo", "Sweden": "Stockholm",
    "Finland": "Helsinki", "Poland": "Warsaw", "Greece": "Athens", "Portugal": "Lisbon",
    "Ireland": "Dublin", "Austria": "Vienna", "Hungary": "Budapest", "Peru": "Lima",
    "Chile": "Santiago", "Argentina": "Buenos Aires", "Mexico": "Mexico City",
    "India": "New Delhi", "China": "Beijing", "Russia": "Moscow", "Turkey": "Ankara",
    "Thailand": "Bangkok", "Vietnam": "Hanoi", "Indonesia": "Jakarta",
    "Nigeria": "Abuja", "Morocco": "Rabat", "Iran": "Tehran", "Iraq": "Baghdad",
    "Cuba": "Havana", "Denmark": "Copenhagen", "Belgium": "Brussels",
    "Netherlands": "Amsterdam", "Switzerland": "Bern", "New Zealand": "Wellington",
}  # fmt: skip
SYMBOLS = {
    "gold": "Au", "silver": "Ag", "iron": "Fe", "copper": "Cu", "lead": "Pb",
    "sodium": "Na", "potassium": "K", "oxygen": "O", "hydrogen": "H", "carbon": "C",
    "nitrogen": "N", "helium": "He", "neon": "Ne", "tin": "Sn", "mercury": "Hg",
    "calcium": "Ca", "zinc": "Zn", "sulfur": "S", "chlorine": "Cl", "uranium": "U",
}  # fmt: skip
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
)  # fmt: skip


EXAMPLES = (
    "What is 3 + 4?",
    "What is the capital of Italy?",
    "What day of the week was 2001-01-01?",
)
"""The questions the prompt answers as worked examples: not asked."""


def make_questions(seed: int = SEED) -> list[dict[str, Any]]:
    """The labelled question set: arithmetic, dates and lookups, answers checkable by code."""
    rng = random.Random(seed)
    items = [*_arithmetic(rng), *_dates(rng), *_lookups(rng)]
    # One item per question, none of them a worked example of the prompt.
    unique: dict[str, tuple[str, str]] = {}
    for category, question, answer in items:
        if question not in EXAMPLES:
            unique.setdefault(question, (category, answer))
    return [
        {"id": f"q{index:03d}", "category": category, "question": question, "answer": answer}
        for index, (question, (category, answer)) in enumerate(unique.items())
    ]


def _arithmetic(rng: random.Random) -> list[tuple[str, str, str]]:
    items = []
    for _ in range(60):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        items.append(("add_small", f"What is {a} + {b}?", str(a + b)))
    for _ in range(40):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        items.append(("add_large", f"What is {a} + {b}?", str(a + b)))
    for _ in range(30):
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        items.append(("multiply", f"What is {a} * {b}?", str(a * b)))
    for _ in range(30):
        a, b = rng.randint(20, 99), rng.randint(1, 19)
        items.append(("subtract", f"What is {a} - {b}?", str(a - b)))
    return items


def _dates(rng: random.Random) -> list[tuple[str, str, str]]:
    items = []
    for _ in range(30):
        day = dt.date(2000, 1, 1) + dt.timedelta(days=rng.randint(0, 9000))
        question = f"What day of the week was {day.isoformat()}?"
        items.append(("weekday", question, WEEKDAYS[day.weekday()]))
    for _ in range(30):
        day = dt.date(2020, 1, 1) + dt.timedelta(days=rng.randint(0, 1500))
        step = rng.randint(1, 20)
        later = day + dt.timedelta(days=step)
        question = f"What date is {step} days after {day.isoformat()}? Answer as YYYY-MM-DD."
        items.append(("date_add", question, later.isoformat()))
    items.extend(
        ("next_month", f"Which month comes after {month}?", MONTHS[(index + 1) % 12])
        for index, month in enumerate(MONTHS)
    )
    return items


def _lookups(rng: random.Random) -> list[tuple[str, str, str]]:
    items = [
        ("capital", f"What is the capital of {country}?", city)
        for country, city in CAPITALS.items()
    ]
    items.extend(
        ("symbol", f"What is the chemical symbol of {element}?", symbol)
        for element, symbol in SYMBOLS.items()
    )
    for year in rng.sample(range(1900, 2100), 30):
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        items.append(
            ("leap_year", f"Is {year} a leap year? Answer yes or no.", "yes" if leap else "no")
        )
    return items


def is_correct(given: str, expected: str) -> bool:
    """Compare case-insensitively, ignoring punctuation and spaces around; numbers as numbers."""
    given_norm = re.sub(r"^[\s\"'.,:;]+|[\s\"'.,:;!?]+$", "", given).lower()
    expected_norm = expected.lower()
    if re.fullmatch(r"-?\d+", expected_norm):
        return bool(re.fullmatch(r"-?\d+(\.0+)?", given_norm)) and int(float(given_norm)) == int(
            expected_norm
        )
    return given_norm == expected_norm


# --- asking the model ----------------------------------------------------------

PROMPT = """Answer the question in JSON: the answer, and how sure you are from 0 to 100.
Q: What is 3 + 4?
A: {"answer": "7", "confidence": 95}
Q: What is the capital of Italy?
A: {"answer": "Rome", "confidence": 90}
Q: What day of the week was 2001-01-01?
A: {"answer": "Monday", "confidence": 40}
Q: %s
A:"""

GRAMMAR = r"""
root ::= "{\"answer\": \"" answer "\", \"confidence\": " confidence "}"
answer ::= [^"\\\n]{1,16}
confidence ::= [0-9] | [1-9] [0-9] | "100"
"""
"""The answer as a JSON object in the prompt's layout, in llama.cpp's GBNF.

A JSON schema (``response_format``) gives the same object, but its grammar lets
the model spend tokens on free white space (22 tokens a reply measured, against
about 12 here), and on a 2-core machine shared with other jobs tokens are time.
"""

EXTRA_BODY = {"grammar": GRAMMAR, "cache_prompt": True}
"""llama.cpp request fields; the few-shot prefix is the same for every question, so
``cache_prompt`` lets the server reuse it."""


def weak_models(api_base: str = API_BASE) -> tuple[Any, Any]:
    """The greedy model with logprobs requested, and the sampling one (temperature 0.7)."""
    from langchain_litellm import ChatLiteLLM  # noqa: PLC0415 - seconds to import

    base = ChatLiteLLM(
        model=WEAK_ID,
        api_base=api_base,
        api_key="sk-local-not-a-secret",
        temperature=0,
        max_tokens=40,
        model_kwargs={"extra_body": EXTRA_BODY},
    )
    # How a user asks for logprobs: through the chat model's own binding.
    greedy = base.bind(logprobs=True, top_logprobs=1)
    sampler = base.bind(temperature=0.7)
    return greedy, sampler


def parse(content: str) -> tuple[str, float | None, tuple[int, int] | None]:
    """The answer, the stated confidence (0..1) and where the answer's value sits in the text."""
    try:
        data = json.loads(content)
    except ValueError:
        return content, None, None
    answer = str(data.get("answer", ""))
    match = re.search(r'"answer"\s*:\s*"', content)
    span = (match.end(), match.end() + len(json.dumps(answer)) - 2) if match else None
    stated = data.get("confidence")
    return answer, (stated / 100 if isinstance(stated, int) else None), span


def as_reply(raw: Any) -> Any:
    """The JSON reply as the node would see a plain answer: the answer's text, its stated
    confidence in ``response_metadata["confidence"]``, and the logprobs of its own tokens."""
    from langchain_core.messages import AIMessage  # noqa: PLC0415

    from langchain_escalate.confidence import token_logprobs  # noqa: PLC0415

    content = str(raw.content)
    answer, stated, span = parse(content)
    metadata: dict[str, Any] = {}
    if stated is not None:
        metadata["confidence"] = stated
    tokens = token_logprobs(raw.response_metadata.get("logprobs"))
    if tokens and span:
        metadata["logprobs"] = {
            "content": [{"token": t, "logprob": v} for t, v in _within(tokens, span)]
        }
    return AIMessage(answer, response_metadata=metadata, usage_metadata=raw.usage_metadata)


def _within(tokens: list[tuple[str, float]], span: tuple[int, int]) -> list[tuple[str, float]]:
    kept, at = [], 0
    for token, value in tokens:
        if at < span[1] and at + len(token) > span[0]:
            kept.append((token, value))
        at += len(token)
    return kept


def ask(item: dict[str, Any], greedy: Any, sampler: Any, samples: int) -> dict[str, Any]:
    """One question: the scored greedy reply and the per-source scores."""
    from langchain_escalate.confidence import (  # noqa: PLC0415
        ConfidenceConfig,
        ConfidenceScorer,
        token_logprobs,
    )

    prompt = PROMPT % item["question"]
    raw = greedy.invoke(prompt)
    reply = as_reply(raw)
    seeds = iter(range(1, 100))
    drawn: list[Any] = []

    def resample() -> Any:
        sample = as_reply(
            sampler.invoke(prompt, extra_body={**EXTRA_BODY, "seed": next(seeds), "top_k": 40})
        )
        drawn.append(sample)
        return sample

    config = ConfidenceConfig(sources=["verbalized", "logprobs", "consistency"], samples=samples)
    result = ConfidenceScorer(config).score(reply, {}, resample=resample)
    all_tokens = [v for _, v in token_logprobs(raw.response_metadata.get("logprobs"))]
    return {
        "id": item["id"],
        "category": item["category"],
        "answer": reply.content,
        "expected": item["answer"],
        "correct": is_correct(str(reply.content), item["answer"]),
        "scores": result.scores,
        "combined": result.score,
        "low_source": result.low_source,
        "logprobs_min": _span_min(reply),
        "logprobs_all_mean": _exp_mean(all_tokens),
        "logprobs_all_min": _exp_min(all_tokens),
        "samples": [str(sample.content) for sample in drawn],
        "tokens": _tokens(raw),
        "sample_tokens": [_tokens(sample) for sample in drawn],
    }


def _span_min(reply: Any) -> float | None:
    from langchain_escalate.confidence import logprob_score  # noqa: PLC0415

    return logprob_score(reply, "min") if reply.response_metadata.get("logprobs") else None


def _exp_mean(values: list[float]) -> float | None:
    import math  # noqa: PLC0415

    return math.exp(sum(values) / len(values)) if values else None


def _exp_min(values: list[float]) -> float | None:
    import math  # noqa: PLC0415

    return math.exp(min(values)) if values else None


def _tokens(message: Any) -> list[int]:
    usage = message.usage_metadata or {}
    return [usage.get("input_tokens", 0), usage.get("output_tokens", 0)]


# --- measuring -----------------------------------------------------------------


def auroc(scores: list[float], labels: list[bool]) -> float | None:
    """P(score of a right answer > score of a wrong one), ties counting half (Mann-Whitney)."""
    right = [s for s, ok in zip(scores, labels, strict=True) if ok]
    wrong = [s for s, ok in zip(scores, labels, strict=True) if not ok]
    if not right or not wrong:
        return None
    wins = sum((r > w) + 0.5 * (r == w) for r in right for w in wrong)
    return wins / (len(right) * len(wrong))


SOURCES = {
    "verbalized": lambda row: row["scores"].get("verbalized"),
    "logprobs (answer span, mean)": lambda row: row["scores"].get("logprobs"),
    "logprobs (answer span, min)": lambda row: row["logprobs_min"],
    "logprobs (all tokens, mean)": lambda row: row["logprobs_all_mean"],
    "logprobs (all tokens, min)": lambda row: row["logprobs_all_min"],
    "consistency": lambda row: row["scores"].get("consistency"),
    "combined (minimum)": lambda row: row["combined"],
}
RUNS_SOURCES = {
    "verbalized": "verbalized",
    "logprobs": "logprobs (answer span, mean)",
    "consistency": "consistency",
    "combined": "combined (minimum)",
}


def report(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    labels = [row["correct"] for row in rows]
    table = []
    for name, read in SOURCES.items():
        pairs = [(read(row), row["correct"]) for row in rows if read(row) is not None]
        value = auroc([s for s, _ in pairs], [ok for _, ok in pairs]) if pairs else None
        table.append({"source": name, "answered": len(pairs), "auroc": value})
    print(f"{len(rows)} questions, {sum(labels)} right ({sum(labels) / len(rows):.0%})")
    print(f"{'source':34} {'scored':>6} {'AUROC':>6}")
    for line in table:
        shown = "n/a" if line["auroc"] is None else f"{line['auroc']:.3f}"
        print(f"{line['source']:34} {line['answered']:>6} {shown:>6}")
    return table


def write_runs(rows: list[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    from langchain_escalate.cost import PriceBook  # noqa: PLC0415

    prices = PriceBook()
    written = {}
    for short, name in RUNS_SOURCES.items():
        path = out_dir / f"runs_gemma270m_{short}.jsonl"
        with path.open("w") as out:
            for row in rows:
                confidence = SOURCES[name](row)
                tokens_in, tokens_out = row["tokens"]
                weak_cost = prices.cost_usd(WEAK_PRICE_ID, tokens_in, tokens_out) or 0.0
                if short in {"consistency", "combined"}:
                    for sample_in, sample_out in row["sample_tokens"]:
                        weak_cost += prices.cost_usd(WEAK_PRICE_ID, sample_in, sample_out) or 0.0
                strong_cost = prices.cost_usd(STRONG_PRICE_ID, tokens_in, tokens_out) or 0.0
                line = {
                    "id": row["id"],
                    "weak": {
                        "correct": row["correct"],
                        "cost": weak_cost,
                        "confidence": 0.0 if confidence is None else confidence,
                    },
                    "strong": {"correct": True, "cost": strong_cost},
                    "note": f"strong is a stand-in: always right, priced as {STRONG_PRICE_ID}",
                }
                out.write(json.dumps(line) + "\n")
        written[short] = path
    return written


def run(args: argparse.Namespace) -> int:
    items = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    random.Random(SEED).shuffle(items)
    items = items[: args.limit]
    raw_path = Path(args.raw)
    rows: list[dict[str, Any]] = []
    if (args.reuse or args.resume) and raw_path.exists():
        rows = [json.loads(line) for line in raw_path.read_text().splitlines() if line.strip()]
    if not args.reuse:
        done = {row["id"] for row in rows}
        greedy, sampler = weak_models(args.api_base)
        started = time.monotonic()
        asked = 0
        with raw_path.open("a" if args.resume else "w") as out:
            for item in (item for item in items if item["id"] not in done):
                if time.monotonic() - started > args.seconds:
                    print(f"time budget reached after {len(rows)} of {len(items)} questions")
                    break
                row = ask(item, greedy, sampler, args.samples)
                asked += 1
                rows.append(row)
                out.write(json.dumps(row) + "\n")
                out.flush()
        elapsed = time.monotonic() - started
        calls = asked + sum(len(row["samples"]) for row in rows[-asked:]) if asked else 0
        print(f"{calls} model calls in {elapsed:.0f} s ({elapsed / max(calls, 1):.1f} s per call)")
    report(rows)
    draws = [len(row["samples"]) for row in rows]
    print(f"consistency: {statistics.fmean(draws):.2f} samples per question (k={args.samples})")
    paths = write_runs(rows, Path(args.out))
    from langchain_escalate.cli import main as cli  # noqa: PLC0415

    for short, path in paths.items():
        print(f"\n== calibrate {short}: {path}")
        extra = ["--plot", args.plot] if short == args.plot_source and args.plot else []
        cli(["calibrate", str(path), "--target-quality", str(args.target), *extra])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("questions", help="write tests/data/questions.jsonl")
    own = sub.add_parser(
        "serve", help="a private model server (foreground), as scripts/model_server.py"
    )
    own.add_argument("--port", type=int, default=8766)
    go = sub.add_parser("run", help="ask the local model and measure each source")
    go.add_argument("--limit", type=int, default=300, help="questions (a seeded shuffle)")
    go.add_argument("--seconds", type=float, default=540, help="stop asking after this")
    go.add_argument("--samples", type=int, default=3, help="k for consistency")
    go.add_argument("--raw", default=str(Path(tempfile.gettempdir()) / "confidence_raw.jsonl"))
    go.add_argument("--reuse", action="store_true", help="measure the saved raw replies again")
    go.add_argument("--api-base", default=API_BASE, help="the weak model's server")
    go.add_argument("--resume", action="store_true", help="ask only questions not in --raw yet")
    go.add_argument("--out", default=str(RUNS_DIR))
    go.add_argument("--target", type=float, default=0.95)
    go.add_argument("--plot", default=str(ROOT / "docs" / "images" / "calibrate_gemma270m.png"))
    go.add_argument("--plot-source", default="combined")
    args = parser.parse_args(argv)
    if args.command == "questions":
        items = make_questions()
        QUESTIONS.parent.mkdir(parents=True, exist_ok=True)
        QUESTIONS.write_text("".join(json.dumps(item) + "\n" for item in items))
        print(f"wrote {len(items)} questions to {QUESTIONS.relative_to(ROOT)}")
        return 0
    if args.command == "serve":
        return serve(args.port)
    return run(args)


def serve(port: int) -> int:
    """Serve the same model with the same settings on another loopback port.

    The shared server on 8765 answers one request at a time; other jobs' long
    prompts queue ahead of the benchmark's short ones. Stop it by its pid.
    """
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location(
        "model_server", ROOT / "scripts" / "model_server.py"
    )
    if spec is None or spec.loader is None:
        raise ImportError(ROOT / "scripts" / "model_server.py")
    server = importlib.util.module_from_spec(spec)
    sys.modules["model_server"] = server
    spec.loader.exec_module(server)
    server.PORT = port
    server.serve()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
