"""``langchain-escalate schema`` and ``langchain-escalate check-config``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from langchain_escalate.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "escalate.yaml"

VALID = """\
models:
  weak: openai/qwen2.5
  strong: {model: anthropic/claude-sonnet-4-6, temperature: 0}
defaults:
  budget: {max_usd_per_thread: 0.5, ledger: 'postgresql://app:${PGPASS}@db/ledger'}
nodes:
  planner:
    detector: {monologue: 2}
  coder:
"""

INVALID = """\
models:
  weak: openai/qwen2.5
nodes:
  planner:
    detector:
      monolog: 2
    policy: {ladder: [nudge, escalte]}
"""


@pytest.fixture(autouse=True)
def ledger_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASS", "secret")


def write(tmp_path: Path, text: str, name: str = "escalate.yaml") -> Path:
    file = tmp_path / name
    file.write_text(text)
    return file


def schema_document(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["schema"]) == 0
    document: dict[str, object] = json.loads(capsys.readouterr().out)
    return document


def test_schema_accepts_the_example_and_rejects_typos(capsys: pytest.CaptureFixture[str]) -> None:
    schema = schema_document(capsys)
    validator = jsonschema.Draft202012Validator(schema)
    # The example writes a model as a bare id and a node as empty: the schema must allow both.
    assert list(validator.iter_errors(yaml.safe_load(EXAMPLE.read_text()))) == []
    typo = yaml.safe_load(INVALID)
    messages = [error.message for error in validator.iter_errors(typo)]
    assert any("monolog" in message for message in messages)
    assert any("escalte" in message for message in messages)


def test_schema_describes_fields_for_editors(capsys: pytest.CaptureFixture[str]) -> None:
    schema = schema_document(capsys)
    definitions = schema["$defs"]
    assert isinstance(definitions, dict)
    monologue = definitions["DetectorConfig"]["properties"]["monologue"]
    assert "identical replies" in monologue["description"]
    assert definitions["EscalationPolicy"]["description"] == (
        "The ladder of responses to a stuck verdict, and how escalation works."
    )


def test_check_config_prints_each_nodes_effective_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path, VALID)
    assert main(["check-config", str(file)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{file}: valid, 2 nodes\n")
    planner = out.split("\nplanner\n")[1].split("\n\n")[0]
    assert "  weak:     openai/qwen2.5\n" in planner
    assert "  strong:   anthropic/claude-sonnet-4-6 (temperature=0.0)\n" in planner
    assert "monologue=2" in planner
    assert "ledger=postgresql://app:[REDACTED:url-password]@db/ledger" in planner  # never printed
    assert "secret" not in out
    coder = out.split("\ncoder\n")[1]
    assert "monologue=3" in coder


def test_check_config_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = write(tmp_path, VALID)
    assert main(["check-config", str(file), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["valid"] is True
    planner = document["nodes"]["planner"]
    assert planner["detector"]["monologue"] == 2
    assert planner["strong"] == {"model": "anthropic/claude-sonnet-4-6", "temperature": 0.0}
    assert planner["policy"]["ladder"] == ["nudge", "escalate", "human"]
    assert planner["budget"]["max_usd_per_thread"] == 0.5
    assert document["nodes"]["coder"]["detector"]["monologue"] == 3


def test_check_config_invalid_exits_2_with_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path, INVALID)
    assert main(["check-config", str(file)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0].startswith(
        f"{file}:6: nodes.planner.detector.monolog: unknown key 'monolog' (did you mean"
    )
    assert lines[1].startswith(f"{file}:7: nodes.planner.policy.ladder[1]: 'escalte' is not one of")
    assert len(lines) == 2


def test_check_config_invalid_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = write(tmp_path, INVALID)
    assert main(["check-config", str(file), "--format", "json"]) == 2
    document = json.loads(capsys.readouterr().out)
    assert document["valid"] is False
    assert [(error["line"], error["path"]) for error in document["errors"]] == [
        (6, "nodes.planner.detector.monolog"),
        (7, "nodes.planner.policy.ladder[1]"),
    ]


def test_check_config_malformed_yaml_and_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path, "nodes:\n  planner: {detector: [\n")
    assert main(["check-config", str(file)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{file}:3:1: invalid YAML: ")
    assert main(["check-config", "nowhere"]) == 2
    assert (
        capsys.readouterr().err
        == "nowhere: no such file; give the path of an escalate.yaml, or YAML text\n"
    )


GRAPH_MODULE = """\
from langgraph.graph import START, MessagesState, StateGraph

builder = StateGraph(MessagesState)
builder.add_node("planner", lambda state: {"messages": []})
builder.add_node("coder", lambda state: {"messages": []})
builder.add_edge(START, "planner")
graph = builder.compile()
"""


def test_check_config_against_the_users_graph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    write(tmp_path, GRAPH_MODULE, "my_agent_graph.py")
    good = write(tmp_path, VALID)
    assert main(["check-config", str(good), "--graph", "my_agent_graph:graph"]) == 0
    capsys.readouterr()
    bad = write(tmp_path, VALID.replace("  coder:\n", "  codr:\n"), "bad.yaml")
    assert main(["check-config", str(bad), "--graph", "my_agent_graph:builder"]) == 2
    assert capsys.readouterr().err == (
        f"{bad}:9: nodes.codr: the graph has no node 'codr' (did you mean 'coder'?); "
        "its nodes: coder, planner. Rename this section to match, or remove it\n"
    )
    assert main(["check-config", str(good), "--graph", "my_agent_graph:nothing"]) == 2
    assert "has no attribute 'nothing'" in capsys.readouterr().err


def test_config_commands_never_import_litellm() -> None:
    # `import litellm` costs seconds; validating a file must not pay it.
    code = (
        "import sys, contextlib, io\n"
        "from langchain_escalate.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['check-config', {str(EXAMPLE)!r}]) == 0\n"
        "    assert main(['schema']) == 0\n"
        "from langchain_escalate import load_config\n"
        f"cfg = load_config({str(EXAMPLE)!r})\n"
        "for name in cfg.node_names:\n"
        "    cfg.for_node(name)\n"
        "assert 'litellm' not in sys.modules, 'litellm imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)  # noqa: S603 - our own code


def test_check_config_runs_as_a_command() -> None:
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "langchain_escalate.cli", "check-config", str(EXAMPLE)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "\ncoder\n" in result.stdout
