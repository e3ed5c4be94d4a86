"""Fuzzing check-config: whatever the file, exit 0 or 2, one line per problem, no traceback.

Two sources of input: hypothesis's arbitrary text and bytes, and a mutation
corpus (the repository's ``escalate.yaml`` and other valid files, with lines
deleted, duplicated, re-indented, truncated, and hostile snippets spliced in).
Both run derandomized, so CI sees the same cases every run.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langchain_escalate.cli import main

ROOT = Path(__file__).resolve().parent.parent

SEEDS = [
    (ROOT / "escalate.yaml").read_text(),
    """\
models:
  weak: openai/qwen2.5
  strong: {model: anthropic/claude-sonnet-4-6, temperature: 0, model_kwargs: {stop: [x, y]}}
prices:
  openai/qwen2.5: {input: 0.1, output: 0.2}
defaults:
  detector: {monologue: 2, low_confidence: 0.4}
  policy: {ladder: [nudge, escalate, stop], mode: takeover}
  budget: {max_usd_total: 1.5, ledger: '${LEDGER:-memory://}'}
  tool: {name: consult, max_uses: 2}
nodes:
  planner: &node {detector: {max_steps: 40}}
  coder: *node
  reviewer:
""",
]

SNIPPETS = [
    "!!int abc",
    "!!float x",
    "!!timestamp 2024-13-45",
    "!!binary ###",
    "!!python/object:os.system ls",
    "*undefined",
    "&a [*a]",
    "<<: *nothing",
    ".inf",
    "-.inf",
    ".nan",
    "1e309",
    "9" * 5000,
    "\x00",
    "\x1b[2J\x1b]0;title\x07",
    "\u202e\u2028",
    "\ud800",
    "{",
    "[[[[",
    "- - - -",
    "? [a, b]\n: c",
    "'unterminated",
    '"\\xZZ"',
    "${",
    "${UNSET}",
    "${1BAD}",
    "api_key: sk-proj-abcdefghijklmnopqrstuvwx",
    "1: a\n1.0: b",
    "\t- tab",
    "%YAML 1.1\n---",
    "--- !!set {a, b}",
    "...",
    "[" * 200 + "]" * 200,
]

MUTATIONS = ["delete", "duplicate", "insert", "replace_value", "flip", "truncate", "indent"]


def mutate(text: str, steps: list[tuple[str, int, str]]) -> str:
    """Apply ``steps`` (kind, position, snippet) to ``text``."""
    for kind, position, snippet in steps:
        lines = text.split("\n")
        index = position % max(len(lines), 1)
        if kind == "delete":
            del lines[index]
        elif kind == "duplicate":
            lines.insert(index, lines[index])
        elif kind == "insert":
            lines.insert(index, snippet)
        elif kind == "replace_value":
            key, colon, _ = lines[index].partition(": ")
            lines[index] = f"{key}: {snippet}" if colon else lines[index]
        elif kind == "indent":
            lines[index] = "  " + lines[index] if position % 2 else lines[index][2:]
        text = "\n".join(lines)
        if kind == "flip" and text:
            at = position % len(text)
            text = text[:at] + snippet[:1] + text[at + 1 :]
        elif kind == "truncate":
            text = text[: position % (len(text) + 1)]
    return text


def run_check_config(file: Path, *, as_json: bool) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["check-config", str(file), *(["--format", "json"] if as_json else [])]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)  # an exception here is the traceback a user would see
    return code, out.getvalue(), err.getvalue()


RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e]")


def assert_well_behaved(file: Path, data: bytes) -> None:
    file.write_bytes(data)
    code, out, err = run_check_config(file, as_json=False)
    assert code in {0, 2}
    assert not RAW_CONTROL.search(out + err)
    if code == 2:
        assert out == ""
        lines = err.split("\n")
        assert lines[-1] == ""
        assert all(line.startswith(f"{file}:") for line in lines[:-1]), err
    json_code, json_out, _ = run_check_config(file, as_json=True)
    assert json_code == code
    if json_out:
        assert json.loads(json_out)["valid"] is (code == 0)


FUZZ = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(
    seed=st.sampled_from(SEEDS),
    steps=st.lists(
        st.tuples(st.sampled_from(MUTATIONS), st.integers(0, 10_000), st.sampled_from(SNIPPETS)),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_configs(tmp_path: Path, seed: str, steps: list[tuple[str, int, str]]) -> None:
    text = mutate(seed, steps)
    assert_well_behaved(tmp_path / "escalate.yaml", text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(text=st.text(max_size=400))
def test_arbitrary_text(tmp_path: Path, text: str) -> None:
    assert_well_behaved(tmp_path / "escalate.yaml", text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    assert_well_behaved(tmp_path / "escalate.yaml", data)


@pytest.mark.parametrize("seed", SEEDS, ids=["escalate.yaml", "anchors"])
def test_the_seeds_are_valid(tmp_path: Path, seed: str) -> None:
    # A mutation corpus built on invalid files would only test the error path.
    file = tmp_path / "escalate.yaml"
    file.write_text(seed)
    assert run_check_config(file, as_json=False)[0] == 0
