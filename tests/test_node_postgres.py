"""Under LangGraph's PostgreSQL checkpointer, records and detector state survive a restart.

Needs the server at ``ESCALATE_TEST_POSTGRES_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``); skipped with the reason when it
is unreachable, and failing under ``CI`` (the ``postgres_dsn`` fixture).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest
from langgraph.checkpoint.postgres import PostgresSaver
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

from langchain_escalate.node import create_escalating_node

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.postgres


@pytest.fixture
def saver_factory(postgres_dsn: str) -> Iterator[Any]:
    """Opens a fresh PostgresSaver on the same database each call (a restart)."""
    import psycopg  # noqa: PLC0415 - optional dependency

    opened: list[Any] = []

    def open_saver() -> PostgresSaver:
        connection = psycopg.Connection.connect(postgres_dsn, autocommit=True, prepare_threshold=0)
        opened.append(connection)
        saver = PostgresSaver(connection)
        saver.setup()
        return saver

    yield open_saver
    for connection in opened:
        connection.close()


def test_records_and_detector_state_survive_a_restart(saver_factory: Any) -> None:
    thread = f"pg-{uuid.uuid4().hex}"
    config = {"configurable": {"thread_id": thread}}
    # Two failures before the restart, one after: the third is the firing one
    # only if the detector's state came back from the checkpoint.
    weak = weak_model([failing_call(), failing_call()])
    strong = strong_model()

    first = agent_graph(create_escalating_node(weak, strong, tools=TOOLS, prices=PRICES))
    first.compile(checkpointer=saver_factory(), interrupt_before=["agent"]).invoke(
        user_input(), config
    )
    graph = first.compile(checkpointer=saver_factory(), interrupt_before=["agent"])
    for _ in range(2):
        graph.invoke(None, config)
    saved = graph.get_state(config).values
    assert saved["escalation_progress"]["agent"]["detector"]["count"] >= 4

    # A new process: new models, new node, new graph, new connection.
    weak_after = weak_model([failing_call(), archive_call(), "Total: 42 MEUR."])
    strong_after = strong_model()
    node = create_escalating_node(weak_after, strong_after, tools=TOOLS, prices=PRICES)
    restarted = agent_graph(node).compile(checkpointer=saver_factory())
    result = restarted.invoke(None, config)

    assert result["messages"][-1].content == "Total: 42 MEUR."
    assert [r["outcome"] for r in result["escalations"]] == ["nudged"]
    assert "fetch_report" in weak_after.calls[1][-1].content  # the nudge, after the third failure
    assert strong_after.calls == []


def test_interrupt_then_resume_after_a_restart_pays_once(saver_factory: Any) -> None:
    thread = f"pg-{uuid.uuid4().hex}"
    config = {"configurable": {"thread_id": thread}}
    weak = weak_model([*(failing_call() for _ in range(9)), archive_call(), "Total: 42 MEUR."])
    strong = strong_model(["Try again."])

    def graph() -> Any:
        node = create_escalating_node(weak, strong, tools=TOOLS, prices=PRICES)
        return agent_graph(node).compile(checkpointer=saver_factory())

    graph().invoke(user_input(), config)
    result = graph().invoke(Command(resume="Use fetch_archive."), config)

    assert result["messages"][-1].content == "Total: 42 MEUR."
    assert len(strong.calls) == 1
    assert [r["outcome"] for r in result["escalations"]] == ["nudged", "advised", "human"]
