"""check-config on hostile files: exit 2, one line per problem, no traceback, bounded work."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from langchain_escalate.cli import main
from langchain_escalate.config import ConfigError, load_config
from langchain_escalate.config.reading import MAX_BYTES, MAX_DEPTH, MAX_VALUES

ROOT = Path(__file__).resolve().parent.parent

MODELS = "models: {weak: openai/gpt-4.1-mini, strong: anthropic/claude-sonnet-4-6}\n"


def billion_laughs(levels: int) -> str:
    """Ten times more values per level: 10**levels strings from a few hundred bytes."""
    lines = [MODELS, "x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"]
    lines += [
        f"x{level}: &x{level} [{', '.join([f'*x{level - 1}'] * 10)}]\n"
        for level in range(1, levels + 1)
    ]
    lines.append(f"nodes:\n  agent:\n    tool: {{description: *x{levels}}}\n")
    return "".join(lines)


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | bytes) -> list[str]:
    """Run check-config on ``text``; assert exit 2 and one file-prefixed line per problem."""
    file = tmp_path / "escalate.yaml"
    if isinstance(text, bytes):
        file.write_bytes(text)
    else:
        file.write_text(text, encoding="utf-8")
    assert main(["check-config", str(file)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines
    for line in lines:
        assert line.startswith(f"{file}:"), line
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", line), line  # nothing raw reaches the tty
    return [line.removeprefix(f"{file}:") for line in lines]


def test_a_tagged_scalar_that_is_not_its_type_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (line,) = check(tmp_path, capsys, MODELS + "defaults:\n  tool: {max_uses: !!int abc}\n")
    assert line.startswith("3:20: invalid YAML: 'abc' is not a valid int")


def test_a_huge_integer_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (line,) = check(tmp_path, capsys, MODELS + f"defaults:\n  tool: {{max_uses: {'9' * 5000}}}\n")
    assert line.startswith("3:")
    assert "is not a valid int" in line
    assert len(line) < 400  # the 5000 digits are not echoed whole


def test_keys_equal_after_resolution_are_duplicates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = check(
        tmp_path, capsys, MODELS + "prices:\n  1: {input: 1, output: 1}\n  1.0: {input: 1}\n"
    )
    assert "4: prices[\"1.0\"]: duplicate key '1.0' (first on line 3); write each key once" in lines


def test_nul_bytes_are_one_line_with_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (line,) = check(tmp_path, capsys, MODELS + "nodes:\n  agent\x00:\n")
    assert line == "3: invalid YAML: special characters are not allowed '\\x00'"


def test_invalid_utf8_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (line,) = check(tmp_path, capsys, MODELS.encode() + b"nodes: {\xff: 1}\n")
    assert line.startswith(" not UTF-8 text (invalid start byte at byte ")


@pytest.mark.parametrize(
    "nesting",
    [
        "[" * 5000 + "]" * 5000,
        "{a: " * 3000 + "1" + "}" * 3000,
        "\n  " + "- " * 400 + "x",
    ],
    ids=["flow-lists", "flow-mappings", "block-lists"],
)
def test_deep_nesting_is_refused_before_the_stack_overflows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nesting: str
) -> None:
    (line,) = check(tmp_path, capsys, MODELS + "nodes: " + nesting + "\n")
    assert f"nested deeper than {MAX_DEPTH} levels" in line


def test_an_alias_inside_what_it_names_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (line,) = check(tmp_path, capsys, MODELS + "nodes: &loop {agent: *loop}\n")
    assert "an alias sit inside what it names" in line


def test_billion_laughs_fails_fast_in_bounded_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nine levels expand to 10**9 strings; the loader must stop after MAX_VALUES.
    # Memory, not time, is asserted: it is deterministic. Before the bound, seven
    # levels took gigabytes.
    tracemalloc.start()
    try:
        (line,) = check(tmp_path, capsys, billion_laughs(9))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"the document expands to more than {MAX_VALUES:,} values once aliases" in line
    assert peak < 30_000_000


def test_nested_merge_keys_are_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Recent PyYAML keeps each merged key once, so this stays small; with an
    # older one, seven levels copy 10**8 keys and the loader's own bound stops it.
    keys = ", ".join(f"k{index}: {index}" for index in range(10))
    text = MODELS + f"defaults:\n  tool: &m0 {{{keys}}}\n"
    text += "".join(
        f"m{level}: &m{level} {{<<: [{', '.join([f'*m{level - 1}'] * 10)}]}}\n"
        for level in range(1, 8)
    )
    lines = check(tmp_path, capsys, text)
    assert any("merge keys (<<) expand to more than" in line for line in lines) or all(
        "unknown key" in line for line in lines
    )


@pytest.mark.parametrize("number", [".inf", "-.inf", ".nan", "1e309", "-1e999"])
def test_numbers_must_be_finite_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], number: str
) -> None:
    text = MODELS + (
        f"prices:\n  openai/gpt-4.1-mini: {{input: {number}, output: 1}}\n"
        f"defaults:\n  budget: {{max_usd_total: {number}}}\n"
        f"  detector: {{low_confidence: {number}}}\n"
    )
    advice = "is not a finite number; write a number such as 25.0, or null for no limit"
    lines = check(tmp_path, capsys, text)
    # The value as written is quoted; what follows is the same everywhere.
    assert [re.sub(r": \S+ is not", ": is not", line) for line in lines] == [
        f'3: prices["openai/gpt-4.1-mini"].input: {advice}',
        f"5: defaults.budget.max_usd_total: {advice}",
        f"6: defaults.detector.low_confidence: {advice}",
    ]


def test_an_infinite_number_from_the_environment_names_the_variable() -> None:
    text = MODELS + "defaults:\n  budget: {max_usd_total: '${LIMIT}'}\n"
    with pytest.raises(ConfigError) as caught:
        load_config(text, environ={"LIMIT": "1e309"})
    assert str(caught.value) == (
        "<string>:3: defaults.budget.max_usd_total: '${LIMIT}' is not a finite number; "
        "write a number such as 25.0, or null for no limit"
    )


def test_terminal_escapes_are_never_printed_raw(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (line,) = check(
        tmp_path, capsys, MODELS + 'nodes:\n  "evil\\e]0;pwned\\a\\e[2J\\u202e": {monolog: 2}\n'
    )
    assert line.startswith('3: nodes["evil\\x1b]0;pwned\\x07\\x1b[2J\\u202e"].monolog: unknown key')


def test_terminal_escapes_in_a_valid_file_are_escaped_in_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "escalate.yaml"
    file.write_text(
        MODELS + 'defaults:\n  tool: {description: "Ask\\e[2J\\u2028 me"}\nnodes: {a: }\n'
    )
    assert main(["check-config", str(file)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\u2028" not in out
    assert "description=Ask\\x1b[2J\\u2028 me" in out


def test_special_and_oversized_files_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "escalate.fifo.yaml"
    os.mkfifo(fifo)  # reading it would block forever
    assert main(["check-config", str(fifo)]) == 2
    assert (
        capsys.readouterr().err
        == f"{fifo}: is not a regular file; give the path of an escalate.yaml\n"
    )
    assert main(["check-config", "/dev/zero"]) == 2
    assert capsys.readouterr().err.startswith("/dev/zero: is not a regular file")
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * (MAX_BYTES // 10 + 1))
    assert main(["check-config", str(big)]) == 2
    assert f"is larger than {MAX_BYTES:,} bytes" in capsys.readouterr().err


def test_hostile_file_from_the_command_line_prints_no_traceback(tmp_path: Path) -> None:
    file = tmp_path / "escalate.yaml"
    file.write_text(billion_laughs(8))
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "langchain_escalate.cli", "check-config", str(file)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
