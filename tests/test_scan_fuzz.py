"""``scan`` on arbitrary and mutated files: exit 0 or 2, one line per file, never a traceback.

Two sources: hypothesis-generated JSON (message-shaped and not), and a
mutation corpus made from every shipped conversation (truncations, deleted
keys, swapped types, moved and duplicated messages, deep nesting), all scanned
in one call so that a bad file can be seen not to hide the others.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langchain_escalate.cli import main

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "examples" / "conversations").glob("*.json*")) + sorted(
    path for path in (ROOT / "tests" / "data" / "coding").glob("*.json") if path.stem != "expected"
)
PREFIX = "langchain-escalate scan: "


def check_scan(capsys: pytest.CaptureFixture[str], files: list[Path], fmt: str) -> None:
    """Scan ``files`` in one call: every file gets exactly one stdout result or one stderr line."""
    code = main(["scan", "--format", fmt, *map(str, files)])
    out, err = capsys.readouterr()
    errors = err.splitlines()
    assert all(line.startswith(PREFIX) for line in errors), errors
    assert code == (2 if errors else 0)
    if fmt == "json":
        results = [json.loads(line) for line in out.splitlines()]
        assert len(results) + len(errors) == len(files)
        for result in results:
            assert all(0 <= verdict["index"] < result["messages"] for verdict in result["verdicts"])
    else:
        firsts = [line for line in out.splitlines() if not line.startswith(" ")]
        assert len(firsts) + len(errors) == len(files)
    out.encode("utf-8")
    assert "\x1b" not in out + err


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
tool_call = st.fixed_dictionaries(
    {"id": st.sampled_from(["c1", "c2"]) | json_values, "type": st.just("function")},
    optional={
        "function": st.fixed_dictionaries(
            {"name": st.text(max_size=6) | json_values},
            optional={
                "arguments": st.sampled_from(["{}", '{"a": 1}', "not json", ""]) | json_values
            },
        )
    },
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "tool", "system", "developer", "robot"])},
    optional={
        "content": st.none() | st.text(max_size=60) | json_values,
        "tool_calls": st.lists(tool_call, max_size=2) | json_values,
        "tool_call_id": st.sampled_from(["c1", "c2"]) | json_values,
        "status": st.sampled_from(["error", "success"]),
    },
) | st.dictionaries(st.sampled_from(["type", "data", "lc", "content", "kwargs"]), json_values)
documents = st.one_of(
    st.lists(message, max_size=8),
    st.fixed_dictionaries({"messages": st.lists(message, max_size=8)}),
    json_values,
)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(document=documents, jsonl=st.booleans(), fmt=st.sampled_from(["json", "text"]))
def test_generated_files_never_break_scan(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, document: Any, jsonl: bool, fmt: str
) -> None:
    path = tmp_path / "generated.json"
    if jsonl and isinstance(document, list):
        path.write_text("\n".join(json.dumps(item) for item in document))
    else:
        path.write_text(json.dumps(document))
    check_scan(capsys, [path], fmt)


def mutations(items: list[Any], generator: random.Random) -> list[str]:
    """Texts of broken variants of one conversation."""
    text = json.dumps(items)
    variants = [text[: generator.randrange(1, len(text))] for _ in range(3)]  # truncated
    for _ in range(6):
        mutated = json.loads(text)
        target = generator.randrange(len(mutated))
        kind = generator.randrange(6)
        if kind == 0 and isinstance(mutated[target], dict) and mutated[target]:
            del mutated[target][generator.choice(sorted(mutated[target]))]
        elif kind == 1 and isinstance(mutated[target], dict) and mutated[target]:
            key = generator.choice(sorted(mutated[target]))
            mutated[target][key] = generator.choice([None, 7, [], {}, "x", 1e300, True])
        elif kind == 2:
            mutated.insert(generator.randrange(len(mutated)), mutated.pop(target))
        elif kind == 3:
            mutated.insert(target, mutated[target])
        elif kind == 4:
            mutated[target] = {"role": "user", "content": "x", "deep": [[[[[[[[[[[[1]]]]]]]]]]]]}
        else:
            mutated = mutated[::-1]
        variants.append(json.dumps(mutated))
    variants.append("[" * 50_000 + "]" * 50_000)
    return variants


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_mutation_corpus_of_every_shipped_conversation(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str
) -> None:
    generator = random.Random(11)  # noqa: S311 - a reproducible corpus, not a secret
    files = []
    for source in SOURCES:
        text = source.read_text()
        items = (
            [json.loads(line) for line in text.splitlines() if line.strip()]
            if source.suffix == ".jsonl"
            else json.loads(text)
        )
        for number, variant in enumerate(mutations(items, generator)):
            path = tmp_path / f"{source.stem}-{number}.json"
            path.write_text(variant)
            files.append(path)
    assert len(files) > 150
    check_scan(capsys, files, fmt)
