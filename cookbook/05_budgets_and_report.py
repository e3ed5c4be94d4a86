# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
# ---

# %% [markdown]
"""
# 05 · Cap the strong model with a budget; read what it cost with `report`

A `Budget` bounds what the strong model may cost, per thread and in total.
Its **ledger** is a SQLite file here, so every process on the machine (every
worker of your agent) shares the same limits; a PostgreSQL URL does the same
for a fleet. After a week in production, `langchain-escalate report` answers
"what did escalation cost, where, and why?" from the checkpointer's database.

You will see:

1. a node with a budget, escalating once and recording what that cost in the ledger;
2. another process reading the same ledger;
3. what happens when the budget is exhausted: the request is refused before
   the strong model is called, recorded as `over_budget`, and the ladder
   moves down a rung (here to `stop`, which ends the turn with a clear message);
4. `langchain-escalate report` on the SQLite checkpointer the run wrote, and
   on a records JSONL file.

**Runs offline, without an API key.** The models are `ScriptedChatModel`s
from `langchain_escalate.testing`, named after real litellm ids, so every cost
is their token counts at litellm's **real prices**. The SQLite checkpointer
is `langgraph-checkpoint-sqlite` (`pip install langgraph-checkpoint-sqlite`).
"""

# %%
import os
import tempfile
from pathlib import Path

# litellm prices from its bundled price map, never a network fetch.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

workdir = Path(tempfile.mkdtemp(prefix="escalate-cookbook-"))
LEDGER = f"sqlite:///{workdir / 'ledger.db'}"  # a SQLite file: 4 slashes, absolute path
CHECKPOINTS = workdir / "checkpoints.db"

# %% [markdown]
"""
## The budget

One escalation per thread, and one cent in total: tiny on purpose, so that
we can see it run out. In YAML (notebook 04) it is the `budget:` section of a
node, with `ledger: ${ESCALATE_LEDGER_URL:-memory://}`.
"""

# %%
from langchain_escalate import Budget

budget = Budget(max_escalations_per_thread=1, max_usd_total=0.01, ledger=LEDGER)

# %% [markdown]
"""
## The tool and the models

**With real models**, replace the next cell (the models) with:

```python
# export DEEPSEEK_API_KEY=... ANTHROPIC_API_KEY=...
WEAK, STRONG = "deepseek/deepseek-chat", "anthropic/claude-sonnet-4-6"
weak_1 = weak_2 = WEAK  # litellm ids, resolved at their first call
strong_1 = strong_2 = STRONG
```
"""

# %%
from langchain_core.tools import tool


@tool
def get_invoice(invoice_id: str) -> str:
    """Fetch an invoice by its id, e.g. INV-2026-0042."""
    if invoice_id.startswith("INV-"):
        return f"{invoice_id}: EUR 1,200.00, due 2026-12-15, unpaid"
    return f"Error: invalid invoice id {invoice_id!r}"


tools = [get_invoice]

# %%
from langchain_core.messages import AIMessage

from langchain_escalate.testing import ScriptedChatModel, tool_call

WEAK, STRONG = "deepseek/deepseek-chat", "anthropic/claude-sonnet-4-6"


def calls(tool_name, **args):
    return AIMessage("", tool_calls=[tool_call(tool_name, args)])


weak_1 = ScriptedChatModel(  # ticket 1: stuck, then helped
    model_name=WEAK,
    input_tokens_per_call=1_000,
    output_tokens_per_call=30,
    script=[
        *(calls("get_invoice", invoice_id="2026-0042") for _ in range(2)),
        calls("get_invoice", invoice_id="INV-2026-0042"),
        "Invoice INV-2026-0042 (EUR 1,200.00) is unpaid and due on 15 December.",
    ],
)
strong_1 = ScriptedChatModel(
    model_name=STRONG,
    input_tokens_per_call=900,
    output_tokens_per_call=60,
    script=["Invoice ids carry the INV- prefix: call get_invoice('INV-2026-0042')."],
)
weak_2 = ScriptedChatModel(  # ticket 2: stuck again, when the budget is spent
    model_name=WEAK,
    input_tokens_per_call=1_000,
    output_tokens_per_call=30,
    script=[calls("get_invoice", invoice_id="2026-0077") for _ in range(2)],
)
strong_2 = ScriptedChatModel(model_name=STRONG, script=[])  # must not be called

# %% [markdown]
"""
## The graph, checkpointed to a SQLite file

The budget goes to the node (`budget=`); the ladder here is `escalate`, then
`stop`. The checkpointer is a `SqliteSaver` on a file: that file is what
`report` reads afterwards.
"""

# %%
import sqlite3

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langchain_escalate import (
    DetectorConfig,
    EscalationPolicy,
    EscalationState,
    create_escalating_node,
)

checkpointer = SqliteSaver(sqlite3.connect(CHECKPOINTS, check_same_thread=False))


def support_graph(weak, strong):
    node = create_escalating_node(
        weak,
        strong,
        tools=tools,
        detector=DetectorConfig(repeated_action_error=2),
        policy=EscalationPolicy(ladder=["escalate", "stop"]),
        budget=budget,
    )
    builder = StateGraph(EscalationState)
    builder.add_node("support", node)
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "support")
    builder.add_conditional_edges("support", tools_condition)
    builder.add_edge("tools", "support")
    return builder.compile(checkpointer=checkpointer)


# %% [markdown]
"""
## Ticket 1: the weak model gets stuck, the strong model helps

The budget reserves the escalation's estimated cost in the ledger *before*
calling the strong model, then settles the actual cost.
"""

# %%
ticket_1 = support_graph(weak_1, strong_1).invoke(
    {"messages": [("user", "Is invoice 2026-0042 paid?")]},
    {"configurable": {"thread_id": "ticket-1"}},
)
print(ticket_1["messages"][-1].content)
for record in ticket_1["escalations"]:
    print(record["action"], record["outcome"], record["rule"], f"${record['cost_usd']:.6f}")

# %% [markdown]
"""
## Another process sees the same ledger

Any process that opens the same ledger URL shares the limits. Here a separate
Python process reads what ticket 1 spent:
"""

# %%
import subprocess
import sys

WORKER = """
import sys
from langchain_escalate import Budget

budget = Budget(ledger=sys.argv[1])
print(f"spent in total: ${budget.spent():.6f}")
print(f"escalations of ticket-1: {budget.escalations('ticket-1')}")
"""
other_process = subprocess.run(  # noqa: S603 - this Python, running the code above
    [sys.executable, "-c", WORKER, LEDGER], capture_output=True, text=True, check=True
)
print(other_process.stdout)

# %% [markdown]
"""
## Ticket 2: the budget is exhausted

The next escalation would need its estimate (the briefing's tokens plus 500
answer tokens at the strong model's price) on top of what ticket 1 spent, and
that is more than `max_usd_total=0.01`. The reservation is refused
atomically, the strong model is **not** called, the record says `over_budget`
with the reason, and the ladder moves down to `stop`: the turn ends with a
message saying why, instead of looping on.
"""

# %%
ticket_2 = support_graph(weak_2, strong_2).invoke(
    {"messages": [("user", "Is invoice 2026-0077 paid?")]},
    {"configurable": {"thread_id": "ticket-2"}},
)
print(ticket_2["messages"][-1].content, "\n")
for record in ticket_2["escalations"]:
    print(record["action"], record["outcome"], "-", record["reason"], "\n")
if isinstance(strong_2, ScriptedChatModel):
    print("strong model calls:", len(strong_2.calls))

# %% [markdown]
"""
The per-thread limit works the same way: ticket 1 has used its one
escalation, so another reservation for it is refused, with the reason.
`status()` shows every limit: spent, reserved, remaining.
"""

# %%
refused = budget.reserve("ticket-1", estimate_usd=0.0001)
print(refused.granted, "-", refused.reason)
for limit, figures in budget.status("ticket-1").items():
    print(limit, figures)

# %% [markdown]
"""
## `langchain-escalate report` on the checkpointer

`report` reads every thread's records and messages from the checkpointer's
database (read-only, through the checkpointer's own `list()`), and prints, per
node, rule, rung and model: how often, the strong model's tokens and cost;
then the run summary with the weak model's cost, the **all-strong
counterfactual** and what was **saved**. In a shell:
`langchain-escalate report checkpoints.db` (add `--thread ID`, `--format json`,
`--plot cost.png`, or a `postgresql://` URL).
"""

# %%
REPORT = [sys.executable, "-m", "langchain_escalate.cli", "report"]  # = langchain-escalate report
WIDE = {**os.environ, "COLUMNS": "120"}  # rich's tables, wide enough for model ids

checkpointer.conn.close()  # the run is over; report opens the file read-only
report = subprocess.run(  # noqa: S603 - this Python, running the CLI
    [*REPORT, str(CHECKPOINTS)], capture_output=True, text=True, check=True, env=WIDE
)
print(report.stdout)

# %% [markdown]
"""
`--format json` gives the same figures to a script (here in-process, through
`langchain_escalate.cli.main`, the function behind the command):
"""

# %%
import contextlib
import io
import json

from langchain_escalate.cli import main

with contextlib.redirect_stdout(io.StringIO()) as output:
    main(["report", str(CHECKPOINTS), "--format", "json"])
figures = json.loads(output.getvalue())
print("escalations:", figures["escalations"], "records:", figures["records"])
print("by rung:", {row["name"]: row["records"] for row in figures["by_rung"]})
summary = figures["summary"]
print(f"saved vs all on {summary['strong_model']}: ${summary['saved_usd']:.4f}")

# %% [markdown]
"""
## A records JSONL file

A process that keeps no graph state (the MCP server of notebook 07, your own
service around the ask-expert tool) appends its records to a JSONL file with
`langchain_escalate.records_log`, one `EscalationRecord` a line; `report`
reads it like a database. It holds only the strong side (the weak model's
calls leave no record), so the tables are complete but the run summary is
omitted.
"""

# %%
from langchain_escalate.records_log import append_records, read_records

records_file = workdir / "records.jsonl"
append_records(records_file, [*ticket_1["escalations"], *ticket_2["escalations"]])
print(len(read_records(records_file)), "records in", records_file.name)
report = subprocess.run(  # noqa: S603 - this Python, running the CLI
    [*REPORT, str(records_file)], capture_output=True, text=True, check=True, env=WIDE
)
print(report.stdout)

# %% [markdown]
"""
## Clean up
"""

# %%
import shutil

budget.close()
shutil.rmtree(workdir)
