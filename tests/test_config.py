"""escalate.yaml: loading, merging per node, errors that point at the line, building."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langchain_escalate import (
    DetectorConfig,
    EscalationMiddleware,
    EscalationPolicy,
    EscalationState,
    create_ask_expert_tool,
    create_escalating_node,
    load_config,
)
from langchain_escalate import middleware as middleware_module
from langchain_escalate import node as node_module
from langchain_escalate import tool as tool_module
from langchain_escalate.budget import Budget
from langchain_escalate.config import BudgetSettings, ConfigError, EscalateConfig, ToolSettings
from langchain_escalate.models import ModelRef
from langchain_escalate.testing import ScriptedChatModel, tool_call

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "escalate.yaml"
DOC = ROOT / "docs" / "config.md"

BASE = """\
models:
  weak: openai/qwen2.5
  strong: anthropic/claude-sonnet-4-6
"""


def errors_of(text: str, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(text, **kwargs)
    return str(caught.value).splitlines()


def test_repo_example_is_valid() -> None:
    cfg = load_config(EXAMPLE, environ={})
    assert cfg.node_names == ("planner", "coder", "reviewer")
    coder = cfg.for_node("coder")
    assert coder.weak is not None
    assert coder.weak.litellm_kwargs() == {"api_base": "http://localhost:8080/v1"}
    assert coder.policy.mode == "takeover"


def test_docs_example_is_valid() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert blocks, "docs/config.md has no ```yaml block"
    cfg = load_config(blocks[0], environ={})
    assert cfg.node_names


def test_docs_error_example_is_what_the_loader_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    section = DOC.read_text().split("## Errors", 1)[1]
    numbered, expected = re.findall(r"```text\n(.*?)```", section, re.DOTALL)[:2]
    text = "".join(re.sub(r"^\s*\d+  ", "", line) + "\n" for line in numbered.splitlines())
    (tmp_path / "escalate.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config("escalate.yaml", environ={})
    assert str(caught.value) == expected.strip()


# --- reading: path or text ---------------------------------------------------------------


def test_path_object_and_string_path_read_the_file(tmp_path: Path) -> None:
    file = tmp_path / "escalate.yaml"
    file.write_text(BASE + "nodes:\n  agent:\n")
    assert load_config(file).node_names == ("agent",)
    assert load_config(str(file)).source == str(file)


def test_a_missing_yaml_file_is_an_error_not_yaml_text(tmp_path: Path) -> None:
    (message,) = errors_of(str(tmp_path / "escalat.yaml"))
    assert (
        message == f"{tmp_path / 'escalat.yaml'}: no such file; "
        "give the path of an escalate.yaml, or YAML text"
    )


def test_text_errors_name_string_source() -> None:
    (message,) = errors_of(BASE + "nodes:\n  agent:\n    detector: {monologue: 1}\n")
    assert message.startswith("<string>:6: nodes.agent.detector.monologue: ")


def test_empty_text_is_the_defaults() -> None:
    cfg = load_config("# nothing yet\n")
    assert cfg.node_names == ()
    assert cfg.defaults.detector == DetectorConfig()


# --- merging -----------------------------------------------------------------------------


def test_node_overrides_only_the_keys_it_writes() -> None:
    cfg = load_config(
        BASE
        + """\
defaults:
  detector: {repeated_action_error: 2, monologue: 4}
  policy: {ladder: [nudge, escalate, stop], takeover_steps: 5}
nodes:
  planner:
    detector: {monologue: null}
    policy: {mode: takeover}
  coder:
"""
    )
    planner = cfg.for_node("planner")
    assert planner.detector == DetectorConfig(repeated_action_error=2, monologue=None)
    assert planner.policy == EscalationPolicy(
        ladder=("nudge", "escalate", "stop"), takeover_steps=5, mode="takeover"
    )
    assert cfg.for_node("coder").detector == DetectorConfig(repeated_action_error=2, monologue=4)


def test_a_model_with_a_new_id_replaces_the_inherited_one_whole() -> None:
    cfg = load_config(
        """\
models:
  strong: {model: openai/qwen2.5, api_base: "http://gpu:8080/v1", temperature: 0.2}
nodes:
  tuned:
    models: {strong: {temperature: 0.0, model_kwargs: {seed: 7}}}
  other:
    models: {strong: deepseek/deepseek-chat}
"""
    )
    tuned = cfg.for_node("tuned").strong
    other = cfg.for_node("other").strong
    assert tuned is not None
    assert other is not None
    assert (tuned.model, tuned.litellm_kwargs()) == (
        "openai/qwen2.5",
        {"api_base": "http://gpu:8080/v1", "temperature": 0.0, "model_kwargs": {"seed": 7}},
    )
    assert (other.model, other.litellm_kwargs()) == ("deepseek/deepseek-chat", {})


def test_settings_equal_the_python_built_objects() -> None:
    cfg = load_config(
        BASE
        + """\
defaults:
  detector:
    repeated_action_observation: 5
    repeated_action_error: 2
    consecutive_failures: 4
    monologue: 2
    alternating: 8
    low_confidence: 0.25
    max_steps: 30
    reset_on_human: false
  policy:
    ladder: [escalate, human, stop]
    mode: takeover
    takeover_steps: 4
    prune_loop: false
    briefing_max_tokens: 900
    stop_behavior: raise
  budget:
    max_escalations_per_thread: 2
    max_usd_per_thread: 0.25
    max_usd_total: 10
    ledger: sqlite:///ledger.db
    reservation_ttl_s: 30
    default_estimate_usd: 0.02
nodes:
  agent:
"""
    )
    settings = cfg.for_node("agent")
    assert settings.detector == DetectorConfig(
        repeated_action_observation=5,
        repeated_action_error=2,
        consecutive_failures=4,
        monologue=2,
        alternating=8,
        low_confidence=0.25,
        max_steps=30,
        reset_on_human=False,
    )
    assert settings.policy == EscalationPolicy(
        ladder=["escalate", "human", "stop"],
        mode="takeover",
        takeover_steps=4,
        prune_loop=False,
        briefing_max_tokens=900,
        stop_behavior="raise",
    )
    python_budget = Budget(
        max_escalations_per_thread=2,
        max_usd_per_thread=0.25,
        max_usd_total=10,
        ledger="sqlite:///ledger.db",
        reservation_ttl_s=30,
        default_estimate_usd=0.02,
    )
    assert settings.budget.model_dump() == python_budget.model_dump()


def test_budget_settings_mirror_budget_arguments_and_defaults() -> None:
    # The YAML side mirrors Budget; a field added to Budget must be added here too.
    mirrored = {name: field.default for name, field in BudgetSettings.model_fields.items()}
    real = {name: field.default for name, field in Budget.model_fields.items()}
    assert mirrored == real


# --- errors ------------------------------------------------------------------------------


def test_duplicate_keys_are_errors_with_both_lines() -> None:
    lines = errors_of(
        BASE + "nodes:\n  agent:\n    policy: {mode: advise}\n    policy: {mode: takeover}\n"
    )
    assert lines == [
        (
            "<string>:7: nodes.agent.policy: duplicate key 'policy' (first on line 6); "
            "write each key once"
        )
    ]


def test_wrong_types_say_what_was_expected() -> None:
    lines = errors_of(
        BASE + "defaults:\n  policy:\n    takeover_steps: three\n    prune_loop: maybe\n"
    )
    assert lines[0].startswith(
        "<string>:6: defaults.policy.takeover_steps: should be a valid integer"
    )
    assert lines[0].endswith("got 'three'")
    assert lines[1].startswith("<string>:7: defaults.policy.prune_loop: should be a valid boolean")


def test_negative_threshold_is_an_error() -> None:
    (line,) = errors_of(BASE + "nodes:\n  planner:\n    detector:\n      monologue: -1\n")
    assert (
        line == "<string>:7: nodes.planner.detector.monologue: "
        "should be greater than or equal to 2, got -1"
    )


def test_unknown_ladder_rung_suggests_the_nearest() -> None:
    (line,) = errors_of(BASE + "defaults:\n  policy:\n    ladder: [nudge, escalte]\n")
    assert line == (
        "<string>:6: defaults.policy.ladder[1]: 'escalte' is not one of "
        "'nudge', 'escalate', 'human' or 'stop' (did you mean 'escalate'?)"
    )


def test_typo_in_a_key_suggests_the_nearest_valid_key() -> None:
    (line,) = errors_of(BASE + "nodes:\n  planner:\n    detector:\n      monolog: 2\n")
    assert line.startswith(
        "<string>:7: nodes.planner.detector.monolog: unknown key 'monolog' "
        "(did you mean 'monologue'?); "
        "expected one of: repeated_action_observation,"
    )


def test_a_key_at_the_wrong_level_says_where_it_belongs() -> None:
    (line,) = errors_of(BASE + "nodes:\n  planner:\n    mode: takeover\n")
    assert "nodes.planner.mode: unknown key 'mode' (it belongs under policy:)" in line


def test_unresolvable_variable_names_variable_path_and_line() -> None:
    text = BASE + "nodes:\n  coder:\n    models:\n      weak: {api_base: '${LOCAL_LLM_URL}/v1'}\n"
    (line,) = errors_of(text, environ={})
    assert line == (
        "<string>:7: nodes.coder.models.weak.api_base: "
        "environment variable LOCAL_LLM_URL is not set; "
        "set it, or give a default: ${LOCAL_LLM_URL:-value}"
    )


def test_variables_defaults_and_escapes() -> None:
    text = BASE + (
        "defaults:\n"
        "  budget: {max_usd_total: '${TOTAL}', ledger: '${LEDGER:-memory://}'}\n"
        "  tool: {description: 'Costs $${PRICE} a call'}\n"
        "nodes: {agent: }\n"
    )
    settings = load_config(text, environ={"TOTAL": "12.5"}).for_node("agent")
    assert settings.budget.max_usd_total == 12.5
    assert settings.budget.ledger == "memory://"
    assert settings.tool.description == "Costs ${PRICE} a call"


def test_malformed_reference_is_an_error() -> None:
    (line,) = errors_of(BASE + "defaults:\n  budget: {ledger: '${1BAD}'}\n", environ={})
    assert "defaults.budget.ledger: malformed reference '${1BAD}'" in line


def test_api_keys_are_refused_with_the_environment_variable_to_use() -> None:
    text = (
        "models:\n  weak: openai/qwen2.5\n  strong:\n"
        "    model: anthropic/claude-sonnet-4-6\n    api_key: sk-ant-xyz\n"
    )
    (line,) = errors_of(text)
    assert line == (
        "<string>:5: models.strong.api_key: credentials do not belong in the config file; "
        "remove 'api_key' "
        "and set the provider's environment variable (ANTHROPIC_API_KEY), which litellm reads"
    )


def test_credentials_in_headers_and_ledger_passwords_are_refused() -> None:
    text = BASE + (
        "nodes:\n"
        "  a:\n"
        "    models: {strong: {extra_headers: {Authorization: Bearer x}}}\n"
        "    budget: {max_usd_total: 1, ledger: 'postgresql://app:hunter2@db/ledger'}\n"
    )
    lines = errors_of(text)
    assert [line.split(": ")[1] for line in lines] == [
        "nodes.a.models.strong.extra_headers.Authorization",
        "nodes.a.budget.ledger",
    ]
    assert "hunter2" not in "\n".join(lines)


def test_a_ledger_password_from_the_environment_is_accepted() -> None:
    text = (
        BASE
        + "defaults:\n  budget: {max_usd_total: 1, ledger: 'postgresql://app:${PGPASS}@db/ledger'}\n"
    )
    budget = load_config(text, environ={"PGPASS": "hunter2"}).defaults.budget
    assert budget.ledger == "postgresql://app:hunter2@db/ledger"
    (line,) = errors_of(text.replace("${PGPASS}", "${PGPASS:-hunter2}"), environ={})
    assert "defaults.budget.ledger: the ledger URL holds a password" in line


def test_malformed_yaml_gives_line_and_column() -> None:
    (line,) = errors_of("models:\n  weak: [openai/a\nnodes: {}\n")
    assert re.fullmatch(r"<string>:3:\d+: invalid YAML: .+", line)


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    file = tmp_path / "escalate.yaml"
    file.write_text(
        BASE
        + "defaults:\n  detector: {monologue: 0}\n  policy: {ladder: [wait]}\n"
        + "nodes:\n  a: {tool: {max_uses: 0}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(file)
    assert [(issue.line, issue.path) for issue in caught.value.issues] == [
        (5, "defaults.detector.monologue"),
        (6, "defaults.policy.ladder[0]"),
        (8, "nodes.a.tool.max_uses"),
    ]
    assert all(line.startswith(f"{file}:") for line in str(caught.value).splitlines())


def test_node_adjusting_an_unnamed_model_is_an_error() -> None:
    (line,) = errors_of("nodes:\n  a:\n    models: {strong: {temperature: 0}}\n")
    assert line.startswith(
        "<string>:3: nodes.a.models.strong: sets options of the strong model but names no model"
    )


def test_top_level_must_be_a_mapping() -> None:
    (line,) = errors_of("- planner\n- coder\n")
    assert line == (
        "<string>:1: the top level must be a mapping with models, prices, defaults and nodes, "
        "got ['planner', 'coder']"
    )


def test_bad_ledger_url_says_which_forms_work() -> None:
    (line,) = errors_of(BASE + "defaults:\n  budget: {ledger: 'mysql://db'}\n")
    assert line.startswith(
        "<string>:5: defaults.budget.ledger: budget ledger 'mysql://db' is not a ledger URL"
    )


def test_unknown_node_lists_known_nodes_and_the_nearest() -> None:
    cfg = load_config(BASE + "nodes:\n  planner:\n  coder:\n")
    with pytest.raises(
        ConfigError,
        match=r"no node 'planer' is configured \(did you mean 'planner'\?\); "
        r"configured nodes: planner, coder",
    ):
        cfg.for_node("planer")


# --- the graph check ---------------------------------------------------------------------


def _graph(*names: str) -> StateGraph:
    builder = StateGraph(MessagesState)
    for name in names:
        builder.add_node(name, lambda state: {"messages": []})
    builder.add_edge(START, names[0])
    return builder


def test_check_graph_accepts_a_graph_with_every_configured_node() -> None:
    cfg = load_config(BASE + "nodes:\n  planner:\n  coder:\n")
    builder = _graph("planner", "coder", "tools")
    assert cfg.check_graph(builder) is builder
    compiled = builder.compile()
    assert cfg.check_graph(compiled) is compiled


def test_check_graph_reports_nodes_the_graph_lacks() -> None:
    cfg = load_config(BASE + "nodes:\n  planner:\n  reviewr:\n")
    with pytest.raises(ConfigError) as caught:
        cfg.check_graph(_graph("planner", "reviewer").compile())
    assert str(caught.value) == (
        "<string>:6: nodes.reviewr: the graph has no node 'reviewr' (did you mean 'reviewer'?); "
        "its nodes: planner, reviewer. Rename this section to match, or remove it"
    )


def test_check_graph_counts_nodes_of_subgraphs() -> None:
    cfg = load_config(BASE + "nodes:\n  inner_agent:\n")
    parent = StateGraph(MessagesState)
    parent.add_node("team", _graph("inner_agent").compile())
    parent.add_edge(START, "team")
    cfg.check_graph(parent)
    cfg.check_graph(parent.compile())


# --- building ----------------------------------------------------------------------------


class Recorder:
    """Stands in for a factory and records what it was called with."""

    def __init__(self) -> None:
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = {}

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.args, self.kwargs = args, kwargs
        return "built"


def test_build_node_passes_models_lazily_and_every_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    monkeypatch.setattr(node_module, "create_escalating_node", recorder)
    cfg = load_config(
        "models:\n  weak: {model: openai/qwen2.5, api_base: 'http://gpu/v1'}\n"
        "  strong: anthropic/claude-sonnet-4-6\n"
        "prices: {openai/qwen2.5: {input: 0.1, output: 0.2}}\n"
        "defaults: {budget: {max_usd_per_thread: 1}}\n"
        "nodes:\n  planner: {detector: {monologue: 2}}\n"
    )
    tools = [object()]
    assert cfg.build_node("planner", tools=tools) == "built"
    weak, strong = recorder.args
    assert isinstance(weak, ModelRef)
    assert isinstance(strong, ModelRef)
    assert (weak.name, strong.name) == ("openai/qwen2.5", "anthropic/claude-sonnet-4-6")
    assert not weak.is_resolved  # nothing is built until the first call
    kwargs = recorder.kwargs
    assert kwargs["tools"] is tools
    assert kwargs["name"] == "planner"
    assert kwargs["detector"] == DetectorConfig(monologue=2)
    assert kwargs["policy"] == EscalationPolicy()
    assert isinstance(kwargs["budget"], Budget)
    assert kwargs["budget"].max_usd_per_thread == 1
    assert {
        model: price.model_dump(exclude_none=True) for model, price in kwargs["prices"].items()
    } == {"openai/qwen2.5": {"input": 0.1, "output": 0.2}}


def test_build_overrides_win_and_a_missing_model_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = Recorder()
    monkeypatch.setattr(node_module, "create_escalating_node", recorder)
    cfg = load_config("models: {strong: openai/big}\nnodes: {agent: }\n")
    with pytest.raises(ConfigError, match=r"no weak model for node 'agent': set models.weak"):
        cfg.build_node("agent")
    my_step = object()
    cfg.build_node("agent", weak=my_step, policy=EscalationPolicy(mode="takeover"))
    assert recorder.args[0] is my_step
    assert recorder.kwargs["policy"].mode == "takeover"
    assert recorder.kwargs["budget"] is None  # no limit set: no Budget, no ledger


def test_budgets_with_one_ledger_url_share_it_across_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    monkeypatch.setattr(node_module, "create_escalating_node", recorder)
    cfg = load_config(
        BASE
        + "defaults: {budget: {max_usd_total: 0.10}}\n"
        + "nodes:\n  a: {budget: {max_escalations_per_thread: 5}}\n"
        + "  b: {budget: {max_usd_per_thread: 1}}\n"
    )
    cfg.build_node("a")
    budget_a = recorder.kwargs["budget"]
    cfg.build_node("b")
    budget_b = recorder.kwargs["budget"]
    assert budget_a.reserve("thread-1", estimate_usd=0.06).granted
    # Node b's total is the same $0.10: node a's reservation counts against it.
    assert not budget_b.reserve("thread-2", estimate_usd=0.06).granted
    cfg.close()


def test_escalate_config_is_the_public_type() -> None:
    assert isinstance(load_config(BASE), EscalateConfig)


# --- round trip: every factory argument comes from the file, and behaves the same ---------------

FULL = """\
models:
  weak: {model: openai/qwen2.5, api_base: "http://gpu/v1"}
  strong: {model: anthropic/claude-sonnet-4-6, temperature: 0}
prices:
  openai/qwen2.5: {input: 0.1, output: 0.2}
  anthropic/claude-sonnet-4-6: {input: 3, output: 15}
defaults:
  detector: {repeated_action_error: 2}
  policy: {ladder: [escalate, escalate, stop], briefing_max_tokens: 800}
  budget: {max_escalations_per_thread: 1}
nodes:
  agent:
    tool: {name: consult, description: Ask a senior engineer., max_uses: 1}
"""

PRICES = {
    "openai/qwen2.5": {"input": 0.1, "output": 0.2},
    "anthropic/claude-sonnet-4-6": {"input": 3.0, "output": 15.0},
}

MODULES = {
    "langchain_escalate.node": node_module,
    "langchain_escalate.tool": tool_module,
    "langchain_escalate.middleware": middleware_module,
}

FACTORIES = {
    # builder: (module, factory name)
    "build_node": ("langchain_escalate.node", "create_escalating_node"),
    "build_tool": ("langchain_escalate.tool", "create_ask_expert_tool"),
    "build_middleware": ("langchain_escalate.middleware", "EscalationMiddleware"),
}


@pytest.mark.parametrize("builder", sorted(FACTORIES))
def test_builders_pass_every_argument_their_factory_accepts(
    builder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module_name, factory_name = FACTORIES[builder]
    module = MODULES[module_name]
    factory = getattr(module, factory_name)
    recorder = Recorder()
    monkeypatch.setattr(module, factory_name, recorder)
    getattr(load_config(FULL), builder)("agent")
    signature = inspect.signature(factory)
    bound = signature.bind(
        *recorder.args, **recorder.kwargs
    )  # raises if a builder passes a stray argument
    assert set(bound.arguments) == set(signature.parameters), (
        "a factory argument cannot be set from YAML"
    )


def test_tool_settings_mirror_the_tool_factory_defaults() -> None:
    parameters = inspect.signature(tool_module.create_ask_expert_tool).parameters
    for name, field in ToolSettings.model_fields.items():
        assert field.default == parameters[name].default, name
    assert parameters["briefing_max_tokens"].default == EscalationPolicy().briefing_max_tokens


def _transcript(messages: list[Any]) -> list[tuple[str, str, list[str]]]:
    """Messages without their ids: type, text, tool names called."""
    return [
        (
            message.type,
            str(message.content),
            [call["name"] for call in getattr(message, "tool_calls", [])],
        )
        for message in messages
    ]


def _records(state: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (r["node"], r["action"], r["rule"], r["outcome"], r["model"], r["cost_usd"])
        for r in state["escalations"]
    ]


@tool
def fetch_report(year: int) -> str:
    """Fetch the sales report of a year."""
    return f"Error: report {year} not found (HTTP 404)"


def _run_agent(node: Any) -> dict[str, Any]:
    builder = StateGraph(EscalationState)
    builder.add_node("agent", node)
    builder.add_node("tools", ToolNode([fetch_report], handle_tool_errors=True))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "round-trip"}, "recursion_limit": 60}
    return graph.invoke({"messages": [("user", "Total 2023 sales?")]}, config)


def _scripted_pair() -> tuple[Any, Any]:
    failing = AIMessage("", tool_calls=[tool_call("fetch_report", {"year": 2023})])
    weak = ScriptedChatModel(script=[failing], repeat_last=True, model_name="openai/qwen2.5")
    strong = ScriptedChatModel(
        script=["Try the archive."], repeat_last=True, model_name="anthropic/claude-sonnet-4-6"
    )
    return weak, strong


def test_yaml_built_node_behaves_like_the_python_built_one() -> None:
    weak, strong = _scripted_pair()
    python_state = _run_agent(
        create_escalating_node(
            weak,
            strong,
            tools=None,
            detector=DetectorConfig(repeated_action_error=2),
            policy=EscalationPolicy(
                ladder=["escalate", "escalate", "stop"], briefing_max_tokens=800
            ),
            budget=Budget(max_escalations_per_thread=1),
            prices=PRICES,
            name="agent",
        )
    )
    yaml_weak, yaml_strong = _scripted_pair()
    yaml_state = _run_agent(
        load_config(FULL).build_node("agent", weak=yaml_weak, strong=yaml_strong)
    )

    # The file's ladder, detector threshold and budget all showed: escalated once, then the
    # budget refused the second escalation and the ladder moved down to stop.
    records = _records(yaml_state)
    assert [(action, outcome) for _, action, _, outcome, _, _ in records][-1] == ("stop", "stopped")
    escalation = next(record for record in records if record[1] == "escalate")
    # One scripted call: 100 tokens in, 20 out, at the file's $3/$15 per 1M.
    assert escalation[3:] == ("advised", "anthropic/claude-sonnet-4-6", pytest.approx(0.0006))
    assert records == _records(python_state)
    assert _transcript(yaml_state["messages"]) == _transcript(python_state["messages"])
    assert len(yaml_strong.calls) == len(strong.calls) == 1
    assert _transcript(yaml_strong.calls[0]) == _transcript(strong.calls[0])  # same briefing


def test_yaml_built_tool_behaves_like_the_python_built_one() -> None:
    def answers(tool: Any) -> list[str]:
        return [tool.invoke({"question": "Which endpoint lists invoices?"}) for _ in range(2)]

    python_tool = create_ask_expert_tool(
        ScriptedChatModel(script=["Use v2."], model_name="anthropic/claude-sonnet-4-6"),
        name="consult",
        description="Ask a senior engineer.",
        max_uses=1,
        budget=Budget(max_escalations_per_thread=1),
        prices=PRICES,
        briefing_max_tokens=800,
    )
    yaml_strong = ScriptedChatModel(script=["Use v2."], model_name="anthropic/claude-sonnet-4-6")
    yaml_tool = load_config(FULL).build_tool("agent", strong=yaml_strong)
    assert (yaml_tool.name, yaml_tool.description) == (python_tool.name, python_tool.description)
    assert (yaml_tool.name, yaml_tool.description) == ("consult", "Ask a senior engineer.")
    yaml_answers = answers(yaml_tool)
    assert yaml_answers == answers(python_tool)
    assert yaml_answers[0] == "Use v2."
    assert "consult has been used 1 of 1" in yaml_answers[1]


def test_yaml_built_middleware_behaves_like_the_python_built_one() -> None:
    def run(middleware: Any, weak: Any) -> dict[str, Any]:
        agent = create_agent(
            weak, tools=[fetch_report], middleware=[middleware], checkpointer=InMemorySaver()
        )
        config = {"configurable": {"thread_id": "round-trip"}, "recursion_limit": 60}
        return agent.invoke({"messages": [("user", "Total 2023 sales?")]}, config)  # type: ignore[no-any-return]

    weak, strong = _scripted_pair()
    python_state = run(
        EscalationMiddleware(
            strong,
            detector=DetectorConfig(repeated_action_error=2),
            policy=EscalationPolicy(
                ladder=["escalate", "escalate", "stop"], briefing_max_tokens=800
            ),
            budget=Budget(max_escalations_per_thread=1),
            prices=PRICES,
            name="agent",
        ),
        weak,
    )
    yaml_weak, yaml_strong = _scripted_pair()
    yaml_state = run(load_config(FULL).build_middleware("agent", strong=yaml_strong), yaml_weak)

    actions = [(action, outcome) for _, action, _, outcome, _, _ in _records(yaml_state)]
    assert ("escalate", "advised") in actions
    assert actions[-1] == ("stop", "stopped")
    assert _records(yaml_state) == _records(python_state)
    assert _transcript(yaml_state["messages"]) == _transcript(python_state["messages"])
    assert len(yaml_strong.calls) == len(strong.calls) == 1
