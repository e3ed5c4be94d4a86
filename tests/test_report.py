"""``langchain-escalate report`` on what real graph runs left in a checkpointer or a records file.

A real LangGraph agent (the escalating node, a real ToolNode, scripted models)
runs under LangGraph's SqliteSaver or PostgresSaver; ``report`` reads the
database back through the checkpointer's public API and must show what the
run cost: the records by node, rule, rung and model, the weak side from the
messages, and the all-strong counterfactual.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import MessagesState
from langgraph.types import Command
from node_scenarios import (
    PRICES,
    TOOLS,
    agent_graph,
    archive_call,
    failing_call,
    strong_model,
    user_input,
    weak_model,
)

from langchain_escalate.cli import main
from langchain_escalate.node import create_escalating_node
from langchain_escalate.records import EscalationState
from langchain_escalate.records_log import append_records

if TYPE_CHECKING:
    from collections.abc import Iterator

    from langgraph.checkpoint.base import BaseCheckpointSaver

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CONFIG = """\
models: {weak: openai/gpt-4.1-mini, strong: anthropic/claude-sonnet-4-6}
prices:
  weak-model: {input: 0.1, output: 0.4}
  strong-model: {input: 3.0, output: 15.0}
  other-strong: {input: 1.0, output: 5.0}
"""
# The scripted models answer every call with 100 tokens in and 20 out.
WEAK_CALL = (100 * 0.1 + 20 * 0.4) / 1e6
STRONG_CALL = (100 * 3.0 + 20 * 15.0) / 1e6
OTHER_STRONG_CALL = (100 * 1.0 + 20 * 5.0) / 1e6
STUCK_WEAK_CALLS = 11  # nine failing calls, the archive call, the answer


def run_stuck_thread(saver: BaseCheckpointSaver[Any], thread: str, state: type) -> None:
    """Nudged, advised, then a person answers the interrupt and the agent finishes."""
    weak = weak_model([*(failing_call() for _ in range(9)), archive_call(), "Total: 42 MEUR."])
    node = create_escalating_node(weak, strong_model(["Try again."]), tools=TOOLS, prices=PRICES)
    graph = agent_graph(node, state=state).compile(checkpointer=saver)
    config = {"configurable": {"thread_id": thread}}
    graph.invoke(user_input(), config)
    result = graph.invoke(Command(resume="Use fetch_archive."), config)
    assert result["messages"][-1].content == "Total: 42 MEUR."


def run_healthy_thread(saver: BaseCheckpointSaver[Any], thread: str, state: type) -> None:
    node = create_escalating_node(weak_model(["42 MEUR."]), strong_model([]), tools=TOOLS)
    graph = agent_graph(node, state=state).compile(checkpointer=saver)
    graph.invoke(user_input(), {"configurable": {"thread_id": thread}})


def write_runs(saver: BaseCheckpointSaver[Any], state: type = EscalationState) -> None:
    run_stuck_thread(saver, "stuck-1", state)
    run_stuck_thread(saver, "stuck-2", state)
    run_healthy_thread(saver, "healthy", state)


@pytest.fixture
def config_file(tmp_path: Path) -> str:
    path = tmp_path / "escalate.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "checkpoints.db"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        write_runs(saver)
    return path


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def report_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = report(capsys, *args, "--format", "json")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def assert_figures_of_the_runs(data: dict[str, Any]) -> None:
    """Two stuck threads (nudge, advice, a person each) and one healthy thread."""
    assert data["records"] == 6  # in state and in message metadata: counted once
    assert data["escalations"] == 2
    assert data["cost_usd"] == pytest.approx(2 * STRONG_CALL)
    by_rung = {g["name"]: g for g in data["by_rung"]}
    assert {name: g["records"] for name, g in by_rung.items()} == {
        "nudge": 2,
        "escalate": 2,
        "human": 2,
    }
    assert by_rung["escalate"]["tokens_in"] == 200
    assert by_rung["escalate"]["cost_usd"] == pytest.approx(2 * STRONG_CALL)
    assert [(g["name"], g["records"]) for g in data["by_rule"]] == [("repeated_action_error", 6)]
    assert [g["name"] for g in data["by_node"]] == ["agent"]
    assert {g["name"]: g["escalations"] for g in data["by_model"]} == {"strong-model": 2, "-": 0}

    weak_calls = 2 * STUCK_WEAK_CALLS + 1
    summary = data["summary"]
    assert summary["weak_tokens_in"] == 100 * weak_calls
    assert summary["weak_usd"] == pytest.approx(weak_calls * WEAK_CALL)
    assert summary["strong_usd"] == pytest.approx(2 * STRONG_CALL)
    all_strong = weak_calls * STRONG_CALL + 2 * STRONG_CALL
    assert summary["all_strong_usd"] == pytest.approx(all_strong)
    assert summary["saved_usd"] == pytest.approx(
        all_strong - weak_calls * WEAK_CALL - 2 * STRONG_CALL
    )
    threads = {t["thread_id"]: t for t in data["threads"]}
    assert set(threads) == {"stuck-1", "stuck-2", "healthy"}
    assert threads["healthy"]["records"] == 0
    # The healthy thread's counterfactual is priced at the strong model the others used.
    assert threads["healthy"]["summary"]["all_strong_usd"] == pytest.approx(STRONG_CALL)


def test_sqlite_report_prints_the_tables_and_writes_the_png(
    sqlite_db: Path, config_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "report.png"
    code, out, err = report(capsys, str(sqlite_db), "--config", config_file, "--plot", str(png))

    assert code == 0, err
    assert "6 records in 3 threads, 2 escalations" in out
    for title in ("By node", "By rule", "By rung", "By model", "Run summary", "Threads"):
        assert title in out
    assert "repeated_action_error" in out
    assert "all on strong" in out
    assert "$0.001200" in out  # the two escalations
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    assert png.stat().st_size > 1000


def test_sqlite_report_json_figures(
    sqlite_db: Path, config_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_figures_of_the_runs(report_json(capsys, str(sqlite_db), "--config", config_file))
    url = f"sqlite:///{sqlite_db}"  # an absolute path after three slashes
    assert_figures_of_the_runs(report_json(capsys, url, "--config", config_file))


def test_one_thread(sqlite_db: Path, config_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = report_json(capsys, str(sqlite_db), "--config", config_file, "--thread", "stuck-2")
    assert [t["thread_id"] for t in data["threads"]] == ["stuck-2"]
    assert data["records"] == 3
    assert data["summary"]["weak_tokens_in"] == 100 * STUCK_WEAK_CALLS


def test_plain_messages_state_records_ride_in_message_metadata(
    tmp_path: Path, config_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plain.db"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        write_runs(saver, MessagesState)
    data = report_json(capsys, str(path), "--config", config_file)
    # Without an `escalations` key, pruning keeps the help messages and their records.
    assert {g["name"]: g["records"] for g in data["by_rung"]} == {
        "nudge": 2,
        "escalate": 2,
        "human": 2,
    }
    assert data["cost_usd"] == pytest.approx(2 * STRONG_CALL)


def test_the_database_is_left_untouched(
    sqlite_db: Path, config_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sqlite_db.read_bytes()
    report_json(capsys, str(sqlite_db), "--config", config_file)
    assert sqlite_db.read_bytes() == before


def test_records_jsonl_has_the_strong_side_only(
    sqlite_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    connection = sqlite3.connect(sqlite_db, check_same_thread=False)
    saver = SqliteSaver(connection)
    records = [
        record
        for thread in ("stuck-1", "stuck-2")
        for record in saver.get_tuple({"configurable": {"thread_id": thread}}).checkpoint[
            "channel_values"
        ]["escalations"]
    ]
    connection.close()
    path = tmp_path / "records.jsonl"
    append_records(path, records)

    data = report_json(capsys, str(path))
    assert data["records"] == 6
    assert data["cost_usd"] == pytest.approx(2 * STRONG_CALL)
    assert data["summary"] is None
    assert any("records only" in note for note in data["notes"])

    code, out, _ = report(capsys, str(path))
    assert code == 0
    assert "By rule" in out
    assert "records only" in out


def test_report_never_imports_litellm_when_prices_are_known(
    sqlite_db: Path, config_file: str
) -> None:
    script = (
        "import sys\n"
        "from langchain_escalate.cli import main\n"
        f"code = main(['report', {str(sqlite_db)!r}, '--config', {config_file!r}])\n"
        "assert code == 0\n"
        "print('litellm imported:', 'litellm' in sys.modules)\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert "litellm imported: False" in result.stdout


# --- bad input: one line on stderr, exit 2, nothing created -----------------------


@pytest.fixture
def empty_checkpointer(tmp_path: Path) -> Path:
    path = tmp_path / "empty.db"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        saver.setup()
    return path


@pytest.fixture
def not_a_checkpointer(tmp_path: Path) -> Path:
    path = tmp_path / "other.sqlite"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE notes (text TEXT)")
    connection.commit()
    connection.close()
    return path


def bad_sources(tmp_path: Path, empty: Path, other: Path) -> dict[str, tuple[str, str]]:
    bad_line = tmp_path / "bad.jsonl"
    bad_line.write_text('{"node": "agent"}\n', encoding="utf-8")
    empty_jsonl = tmp_path / "empty.jsonl"
    empty_jsonl.write_text("", encoding="utf-8")
    return {
        "missing file": (str(tmp_path / "absent.db"), "absent.db: no such file"),
        "missing jsonl": (str(tmp_path / "absent.jsonl"), "cannot read"),
        "empty checkpointer": (str(empty), "no checkpoints in this database"),
        "not a checkpointer": (str(other), "not a LangGraph checkpointer database"),
        "sqlite URL without a path": ("sqlite://", "names no SQLite file"),
        "unknown scheme": ("mysql://db/app", "unsupported URL scheme 'mysql'"),
        "bad JSONL line": (str(bad_line), "bad.jsonl:1: not an escalation record"),
        "empty JSONL": (str(empty_jsonl), "no escalation records"),
        "unreachable PostgreSQL": (
            "postgresql://app:s3cret@127.0.0.1:1/app",
            "postgresql://app:***@127.0.0.1:1/app: cannot connect",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "missing jsonl",
        "empty checkpointer",
        "not a checkpointer",
        "sqlite URL without a path",
        "unknown scheme",
        "bad JSONL line",
        "empty JSONL",
        "unreachable PostgreSQL",
    ],
)
def test_bad_sources_exit_2_with_one_line(
    case: str,
    tmp_path: Path,
    empty_checkpointer: Path,
    not_a_checkpointer: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, problem = bad_sources(tmp_path, empty_checkpointer, not_a_checkpointer)[case]
    code, out, err = report(capsys, source)
    assert code == 2
    assert out == ""
    assert err.startswith("report: ")
    assert problem in err
    assert err.count("\n") == 1
    assert "s3cret" not in err
    assert not (tmp_path / "absent.db").exists()


def test_unknown_thread_exits_2(sqlite_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = report(capsys, str(sqlite_db), "--thread", "nope")
    assert code == 2
    assert "no checkpoints of thread 'nope'" in err


def test_plot_without_matplotlib_says_how_to_install(
    sqlite_db: Path,
    config_file: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [name for name in sys.modules if name.split(".")[0] == "matplotlib"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises
    png = tmp_path / "report.png"
    code, out, err = report(capsys, str(sqlite_db), "--config", config_file, "--plot", str(png))
    assert code == 2
    assert out == ""
    assert "pip install 'langchain-escalate[plot]'" in err
    assert not png.exists()


# --- PostgreSQL ----------------------------------------------------------------------


@pytest.fixture
def postgres_url(postgres_dsn: str) -> Iterator[str]:
    """A URL whose search_path is a fresh schema: only this test's checkpoints are in it."""
    import psycopg  # noqa: PLC0415 - optional dependency
    from psycopg import sql  # noqa: PLC0415 - optional dependency

    schema = f"report_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    separator = "&" if "?" in postgres_dsn else "?"
    yield f"{postgres_dsn}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.mark.postgres
def test_postgres_report(
    postgres_url: str, config_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from langgraph.checkpoint.postgres import PostgresSaver  # noqa: PLC0415 - optional

    with PostgresSaver.from_conn_string(postgres_url) as saver:
        code, _, err = report(capsys, postgres_url)
        assert code == 2
        assert "not a LangGraph checkpointer database" in err  # no tables yet
        saver.setup()
        code, _, err = report(capsys, postgres_url)
        assert code == 2
        assert "no checkpoints in this database" in err
        write_runs(saver)

    assert_figures_of_the_runs(report_json(capsys, postgres_url, "--config", config_file))
    png = tmp_path / "pg.png"
    code, out, err = report(capsys, postgres_url, "--config", config_file, "--plot", str(png))
    assert code == 0, err
    assert "By rung" in out
    assert png.read_bytes().startswith(PNG_SIGNATURE)


# --- prices ---------------------------------------------------------------------------


def _records_file(tmp_path: Path, **overrides: Any) -> Path:
    fields: dict[str, Any] = {
        "node": "agent",
        "action": "escalate",
        "rule": "monologue",
        "reason": "the same reply three times",
        "mode": "advise",
        "model": "strong-model",
        "tokens_in": 1_000,
        "tokens_out": 100,
        "cost_usd": None,  # the model had no price when the record was made
        "outcome": "advised",
        "thread_id": "t",
        "created_at": "2026-11-30T10:00:00Z",
    }
    fields.update(overrides)
    path = tmp_path / "records.jsonl"
    append_records(path, [fields])
    return path


def test_a_record_without_cost_is_priced_from_the_config(
    tmp_path: Path, config_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _records_file(tmp_path)
    data = report_json(capsys, str(path), "--config", config_file)
    assert data["cost_usd"] == pytest.approx((1_000 * 3.0 + 100 * 15.0) / 1e6)
    png = tmp_path / "z.png"  # a "Z" timestamp is read on every supported Python
    code, _, err = report(capsys, str(path), "--config", config_file, "--plot", str(png))
    assert code == 0, err
    assert png.read_bytes().startswith(PNG_SIGNATURE)


def test_an_unknown_price_is_shown_as_unknown_never_guessed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _records_file(tmp_path, model="in-house/mystery-model")
    data = report_json(capsys, str(path))
    assert data["cost_usd"] is None
    assert data["by_model"][0]["cost_usd"] is None
    assert any("in-house/mystery-model" in note for note in data["notes"])
    code, out, _ = report(capsys, str(path))
    assert code == 0
    assert "?" in out


def test_the_counterfactual_can_be_priced_at_another_strong_model(
    sqlite_db: Path, config_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    chosen = ("--strong-model", "other-strong")
    healthy = report_json(
        capsys, str(sqlite_db), "--config", config_file, "--thread", "healthy", *chosen
    )
    assert healthy["summary"]["all_strong_usd"] == pytest.approx(OTHER_STRONG_CALL)
    stuck = report_json(
        capsys, str(sqlite_db), "--config", config_file, "--thread", "stuck-1", *chosen
    )
    # Every weak call at the chosen model, plus what the escalation really cost.
    assert stuck["summary"]["all_strong_usd"] == pytest.approx(
        STUCK_WEAK_CALLS * OTHER_STRONG_CALL + STRONG_CALL
    )
    assert stuck["summary"]["weak_usd"] == pytest.approx(STUCK_WEAK_CALLS * WEAK_CALL)
    assert stuck["summary"]["strong_usd"] == pytest.approx(STRONG_CALL)


def test_a_database_where_no_thread_escalated_is_a_finding_not_an_error(
    tmp_path: Path, config_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "calm.db"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        run_healthy_thread(saver, "calm", EscalationState)
    png = tmp_path / "calm.png"
    code, out, err = report(capsys, str(path), "--config", config_file, "--plot", str(png))
    assert code == 0, err
    assert "0 records in 1 thread, 0 escalations to a strong model" in out
    assert png.read_bytes().startswith(PNG_SIGNATURE)


def test_an_expert_graphs_own_checkpoints_are_not_counted_as_weak_calls(
    tmp_path: Path, config_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from langgraph.graph import START, StateGraph  # noqa: PLC0415

    inner_model = strong_model()

    def think(state: MessagesState) -> dict[str, Any]:
        return {"messages": [inner_model.invoke(state["messages"])]}

    expert = StateGraph(MessagesState).add_node("think", think).add_edge(START, "think").compile()
    path = tmp_path / "expert.db"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        node = create_escalating_node(weak_model(), expert, tools=TOOLS, prices=PRICES)
        graph = agent_graph(node).compile(checkpointer=saver)
        graph.invoke(user_input(), {"configurable": {"thread_id": "expert"}})
        namespaces = {c.config["configurable"]["checkpoint_ns"] for c in saver.list(None)}
    assert len(namespaces) > 1  # the expert graph checkpointed in its own namespace

    data = report_json(capsys, str(path), "--config", config_file)
    assert [g["name"] for g in data["by_rung"]] == ["escalate", "nudge"]
    summary = data["summary"]
    weak_calls = 8  # six failing calls, the archive call, the answer
    assert summary["weak_tokens_in"] == 100 * weak_calls
    assert summary["strong_usd"] == pytest.approx(STRONG_CALL)
    # A graph expert names no model: the counterfactual is unknown until one is chosen.
    assert summary["all_strong_usd"] is None
    assert any("--strong-model" in note for note in data["notes"])
    chosen = report_json(
        capsys, str(path), "--config", config_file, "--strong-model", "strong-model"
    )
    expected = weak_calls * STRONG_CALL + STRONG_CALL
    assert chosen["summary"]["all_strong_usd"] == pytest.approx(expected)
