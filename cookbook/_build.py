"""Build the cookbook notebooks from the cells below: ``python cookbook/_build.py``.

The notebooks are written without outputs (run them to see the outputs). Edit
the cells here, not in the ``.ipynb`` files, then rebuild; ``tests/test_cookbook.py``
runs every notebook top to bottom, offline.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

Cells = list[tuple[str, str]]

SETUP = """\
import os

# litellm prices from its bundled price map, never a network fetch.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")"""

OFFLINE_NOTE = """\
**Runs offline, without an API key.** The weak and strong models are
`ScriptedChatModel`s from `langchain_escalate.testing`: they follow a script
and report fixed token counts, and they are named after real litellm model ids
(`deepseek/deepseek-chat`, `anthropic/claude-sonnet-4-6`), so every cost you see
is those token counts at the **real prices** of litellm's bundled price map."""

REAL_MODELS = """\
## With real models

Replace each scripted model with a litellm model id (resolved through
`langchain-litellm`'s `ChatLiteLLM` at its first call; the provider's key comes
from the environment) or with any LangChain chat model:

```python
# export DEEPSEEK_API_KEY=... ANTHROPIC_API_KEY=...
weak = "deepseek/deepseek-chat"
strong = "anthropic/claude-sonnet-4-6"
# or a local OpenAI-compatible server, priced by you (USD per 1M tokens, passed as prices=...):
from langchain_escalate.models import ModelRef
weak = ModelRef("openai/qwen2.5-coder-32b", api_base="http://localhost:8080/v1")
prices = {"openai/qwen2.5-coder-32b": {"input": 0.07, "output": 0.16}}
```

Everything else stays as it is; a real model's replies carry their real token
usage, which is what the records and the summary then price."""


# -- 01: the escalating node ----------------------------------------------------

NOTEBOOK_01: Cells = [
    (
        "markdown",
        """\
# 01 · Swap your model node for the escalating node

A classic LangGraph agent: a model node, a `ToolNode`, `tools_condition`, a
checkpointer. We replace the model node with `create_escalating_node(weak,
strong, tools=tools)` and nothing else. A cheap model does the work; the **stuck
detector** watches every message, and when it fires the **ladder** answers:
first a free *nudge*, then the strong model (*escalate*), then a person
(*human*, through `interrupt()`).

You will see:

1. the weak model looping on a failing tool call, and the detector firing (rule and reason);
2. the ladder's rungs: the nudge, then the strong model's advice, with the loop pruned;
3. the `EscalationRecord`s in state, and the cost summary: weak, strong, and the
   counterfactual "everything on the strong model".

"""
        + OFFLINE_NOTE,
    ),
    ("code", SETUP),
    (
        "markdown",
        """\
## The task and its tools

A code assistant answers questions about a repository. `read_file` fails unless
it is given the path from the repository root; `find_files` finds that path.""",
    ),
    (
        "code",
        '''\
from langchain_core.tools import tool

FILES = {
    "services/billing/config/service.yaml": "database:\\n  host: db.internal\\n  port: 5433\\n",
    "services/billing/README.md": "# Billing\\nSettings live in config/service.yaml.\\n",
}


@tool
def read_file(path: str) -> str:
    """Read a file of the repository, by its path from the repository root."""
    if path not in FILES:
        return f"Error: no such file: {path!r}"
    return FILES[path]


@tool
def find_files(name: str) -> str:
    """Find the files whose name contains `name`; returns paths from the repository root."""
    return "\\n".join(path for path in FILES if name in path.rsplit("/", 1)[-1]) or "no match"


tools = [read_file, find_files]''',
    ),
    (
        "markdown",
        """\
## The models

The weak model's script is what a cheap model stuck on this task does: the
same failing call three times, then other guesses, then (after help) the right
path. The strong model's script is its advice.""",
    ),
    (
        "code",
        """\
from langchain_core.messages import AIMessage

from langchain_escalate.testing import ScriptedChatModel, tool_call


def calls(tool_name, **args):
    return AIMessage("", tool_calls=[tool_call(tool_name, args)])


weak = ScriptedChatModel(
    model_name="deepseek/deepseek-chat",
    input_tokens_per_call=1_200,
    output_tokens_per_call=40,
    script=[
        *(calls("read_file", path="config/service.yaml") for _ in range(3)),  # the same error 3x
        calls("read_file", path="billing/config/service.yaml"),  # after the nudge: other guesses
        calls("read_file", path="service.yaml"),
        calls("read_file", path="billing/service.yaml"),  # 3 failures in a row
        calls("find_files", name="service.yaml"),  # after the strong model's advice
        calls("read_file", path="services/billing/config/service.yaml"),
        "The billing database listens on port 5433 (services/billing/config/service.yaml).",
    ],
)
strong = ScriptedChatModel(
    model_name="anthropic/claude-sonnet-4-6",
    input_tokens_per_call=900,
    output_tokens_per_call=60,
    script=[
        (
            "Paths are relative to the repository root and services live under services/. "
            "Call find_files(name='service.yaml') and read the path it returns."
        )
    ],
)""",
    ),
    (
        "markdown",
        """\
## Before and after

Before, the model node was:

```python
def agent(state):
    return {"messages": [model.bind_tools(tools).invoke(state["messages"])]}

builder.add_node("agent", agent)
```

After, one line changes: `create_escalating_node` binds the tools to the weak
model itself. `EscalationState` (optional: plain `MessagesState` works too) adds
`escalations`, where every record is kept, and `escalation_progress`, where the
detector's state is checkpointed.""",
    ),
    (
        "code",
        """\
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langchain_escalate import EscalationState, create_escalating_node

builder = StateGraph(EscalationState)
builder.add_node("agent", create_escalating_node(weak, strong, tools=tools))  # the changed line
builder.add_node("tools", ToolNode(tools))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", tools_condition)
builder.add_edge("tools", "agent")
graph = builder.compile(checkpointer=InMemorySaver())""",
    ),
    (
        "markdown",
        """\
## Run it and watch

`stream_mode=["updates", "custom"]` shows each node's output, and every
escalation record as a custom stream event (`{"escalation": record}`), the
moment the ladder answers.""",
    ),
    (
        "code",
        """\
import textwrap


def show(message):
    if message.type == "remove":
        return None
    if message.type == "ai" and message.tool_calls:
        call = message.tool_calls[0]
        return f"weak    calls {call['name']}({call['args']})"
    if message.type == "tool":
        return "tool    -> " + " ".join(message.content.split())
    if message.type == "human":  # added by the ladder: a nudge, or the strong model's advice
        return "ladder  adds:\\n" + textwrap.indent(textwrap.fill(message.content, 92), " " * 8)
    return f"weak    answers: {message.content}"


config = {"configurable": {"thread_id": "billing-port"}}
question = {"messages": [("user", "Which port does the billing service's database use?")]}
for mode, chunk in graph.stream(question, config, stream_mode=["updates", "custom"]):
    if mode == "custom":
        record = chunk["escalation"]
        print(f"\\n>>> stuck: {record['rule']}: {record['reason']}")
        print(f">>> rung: {record['action']} ({record['outcome']}), cost ${record['cost_usd']}")
        continue
    for update in chunk.values():
        messages = (update or {}).get("messages", [])
        pruned = sum(m.type == "remove" for m in messages)
        if pruned:
            print(f"graph   pruned {pruned} looping messages from the weak model's context")
        for message in messages:
            line = show(message)
            if line:
                print(line)""",
    ),
    (
        "markdown",
        """\
What happened:

- The third identical failing call fired **`repeated_action_error`**. The first
  rung, **nudge**, added a free hint ("you called read_file(...) 3 times...").
- The weak model tried other paths, all failing: three failures in a row fired
  **`consecutive_failures`**, the detector's second firing in this turn, so the
  ladder went one rung up: **escalate**. The strong model read a bounded
  briefing (the task, the attempts and their results, the rule) and its advice
  was added; the loop was **pruned** to a one-line summary so the weak model
  does not re-read its failures.
- The weak model finished on its own. Had it stayed stuck, the next rung,
  **human**, would have paused the graph with `interrupt()` (it needs the
  checkpointer we compiled with).

## The records

Every rung leaves an `EscalationRecord` in `state["escalations"]` (and on the
message it added): node, rule, reason, mode, model, tokens, cost, latency, outcome.""",
    ),
    (
        "code",
        """\
state = graph.get_state(config).values
for record in state["escalations"]:
    print(
        f"{record['action']:<9} {record['outcome']:<8} {record['rule']:<22} "
        f"model={record['model']} tokens={record['tokens_in']}/{record['tokens_out']} "
        f"cost=${record['cost_usd']:.6f}"
    )""",
    ),
    ("markdown", "What the strong model read: the briefing, not the whole conversation."),
    ("code", "print(strong.calls[0][-1].content)"),
    (
        "markdown",
        """\
## What did it cost?

`summarize_run` prices every reply at its side's price (litellm's map) and
computes the counterfactual: the same tokens, all on the strong model. The loop
was pruned from the state, but the weak model was paid for it: the message that
replaced the loop carries the usage of the replies it removed, so the final
state is enough.""",
    ),
    (
        "code",
        """\
from langchain_escalate.cost import PriceBook, summarize_run

summary = summarize_run(
    state["messages"],
    weak_model="deepseek/deepseek-chat",
    strong_model="anthropic/claude-sonnet-4-6",
    prices=PriceBook(),
    records=state["escalations"],
)
print(summary.describe().replace("; ", "\\n"))""",
    ),
    (
        "markdown",
        """\
## Another ladder: skip the nudge, let the strong model take over

`EscalationPolicy` sets the ladder and the mode; `DetectorConfig` the
thresholds. In `takeover` mode the strong model, bound to the same tools, takes
this step and the next `takeover_steps`, then hands back.""",
    ),
    (
        "code",
        """\
from langchain_escalate import DetectorConfig, EscalationPolicy

weak = ScriptedChatModel(
    model_name="deepseek/deepseek-chat",
    script=[
        *(calls("read_file", path="config/service.yaml") for _ in range(2)),
        "The billing database listens on port 5433.",
    ],
)
strong = ScriptedChatModel(
    model_name="anthropic/claude-sonnet-4-6",
    script=[
        calls("find_files", name="service.yaml"),
        calls("read_file", path="services/billing/config/service.yaml"),
    ],
)
node = create_escalating_node(
    weak,
    strong,
    tools=tools,
    detector=DetectorConfig(repeated_action_error=2),
    policy=EscalationPolicy(ladder=["escalate", "stop"], mode="takeover", takeover_steps=1),
)
builder = StateGraph(EscalationState)
builder.add_node("agent", node)
builder.add_node("tools", ToolNode(tools))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", tools_condition)
builder.add_edge("tools", "agent")
graph = builder.compile(checkpointer=InMemorySaver())

result = graph.invoke(question, {"configurable": {"thread_id": "takeover"}})
for message in result["messages"]:
    call = message.tool_calls[0] if getattr(message, "tool_calls", None) else None
    text = f"calls {call['name']}{call['args']}" if call else " ".join(message.content.split())
    print(f"{message.type:<6} {text}"[:120])
print([(r["action"], r["outcome"], r["mode"]) for r in result["escalations"]])""",
    ),
    ("markdown", REAL_MODELS),
]


# -- 02: the ask-expert tool and the middleware -----------------------------------

NOTEBOOK_02: Cells = [
    (
        "markdown",
        """\
# 02 · The ask-expert tool, and the middleware for `create_agent`

Two more ways in, on the same engine as the escalating node (see
`docs/choosing.md`):

- **`create_ask_expert_tool(strong)`**: the weak model *asks* for help when it
  knows it is unsure. The strong model is briefed from the conversation, so the
  weak model only states its question.
- **`EscalationMiddleware(strong)`** for `langchain.agents.create_agent`: the
  stuck detector watches the agent and the ladder answers, as in notebook 01,
  without touching the agent's loop.

"""
        + OFFLINE_NOTE,
    ),
    ("code", SETUP),
    (
        "markdown",
        """\
## The task and its tool

An analytics assistant queries a database. `run_sql` fails on a wrong column
name, as a real database would.""",
    ),
    (
        "code",
        '''\
from langchain_core.tools import tool

COLUMNS = {"orders": ("id", "customer_id", "total_eur", "created_at")}


@tool
def run_sql(query: str) -> str:
    """Run a read-only SQL query on the orders database."""
    if "created_at" in query:
        return "count\\n1284"
    if "created" in query:
        return 'Error: column "created" does not exist (table orders)'
    return "Error: syntax error at or near the end of the query"''',
    ),
    (
        "markdown",
        """\
## Part 1: the ask-expert tool in a `ToolNode` agent

The tool goes beside the others: in the `ToolNode` and in `bind_tools`. The
weak model hits the error once, asks the expert, and follows the answer.""",
    ),
    (
        "code",
        """\
from langchain_core.messages import AIMessage
from langgraph.graph import START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langchain_escalate import EscalationState, create_ask_expert_tool
from langchain_escalate.testing import ScriptedChatModel, tool_call


def calls(tool_name, **args):
    return AIMessage("", tool_calls=[tool_call(tool_name, args)])


WRONG = "SELECT count(*) FROM orders WHERE created >= '2026-11-01'"
RIGHT = "SELECT count(*) FROM orders WHERE created_at >= '2026-11-01'"

strong = ScriptedChatModel(
    model_name="anthropic/claude-sonnet-4-6",
    input_tokens_per_call=700,
    output_tokens_per_call=50,
    script=["The column is created_at, not created. Run: " + RIGHT],
)
ask_expert = create_ask_expert_tool(strong, max_uses=2)  # at most 2 answers per thread
tools = [run_sql, ask_expert]

weak = ScriptedChatModel(
    model_name="deepseek/deepseek-chat",
    input_tokens_per_call=800,
    output_tokens_per_call=40,
    script=[
        calls("run_sql", query=WRONG),
        calls("ask_expert", question="run_sql says column created does not exist. Which column?"),
        calls("run_sql", query=RIGHT),
        "1,284 orders were placed since 1 November.",
    ],
)
model = weak.bind_tools(tools)


def agent(state: EscalationState):
    return {"messages": [model.invoke(state["messages"])]}


builder = StateGraph(EscalationState)
builder.add_node("agent", agent)
builder.add_node("tools", ToolNode(tools))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", tools_condition)
builder.add_edge("tools", "agent")
graph = builder.compile()

result = graph.invoke({"messages": [("user", "How many orders since 1 November 2026?")]})
for message in result["messages"]:
    call = message.tool_calls[0] if getattr(message, "tool_calls", None) else None
    text = f"calls {call['name']}{call['args']}" if call else " ".join(message.content.split())
    print(f"{message.type:<6} {text}"[:140])""",
    ),
    (
        "markdown",
        """\
The expert's answer came back as the `ask_expert` tool result. It carries its
`EscalationRecord`, which is also in `state["escalations"]`:""",
    ),
    (
        "code",
        """\
record = result["escalations"][0]
print(record["outcome"], record["model"], record["tokens_in"], record["tokens_out"])
print(f"cost ${record['cost_usd']:.6f}")""",
    ),
    (
        "markdown",
        """\
What the strong model read: a bounded briefing built from the conversation
(the task, what was tried and what came back) plus the question. The weak model
did not have to restate any of it.""",
    ),
    ("code", "print(strong.calls[0][-1].content)"),
    (
        "markdown",
        """\
### Limits never raise

`max_uses` and a `Budget` cap the tool. A refused call is a tool result the
model can read (with `status="error"`), never an exception. Called directly,
outside a graph, the tool sends only the question and counts uses per tool object:""",
    ),
    (
        "code",
        """\
once = create_ask_expert_tool(
    ScriptedChatModel(script=["Use created_at."], model_name="anthropic/claude-sonnet-4-6"),
    max_uses=1,
)
print(once.invoke({"question": "Which date column does orders have?"}))
print(once.invoke({"question": "And which one for refunds?"}))""",
    ),
    (
        "markdown",
        """\
## Part 2: `EscalationMiddleware` in `create_agent`

Here the weak model does not ask: it retries the failing query. The middleware
feeds the detector before each model call; the ladder nudges on the first
firing and escalates on the second (the default ladder: nudge, escalate, human).""",
    ),
    (
        "code",
        """\
from langchain.agents import create_agent
from langgraph.checkpoint.memory import InMemorySaver

from langchain_escalate import EscalationMiddleware

weak = ScriptedChatModel(
    model_name="deepseek/deepseek-chat",
    input_tokens_per_call=800,
    output_tokens_per_call=40,
    script=[
        *(calls("run_sql", query=WRONG) for _ in range(6)),  # deaf to the nudge
        calls("run_sql", query=RIGHT),
        "1,284 orders were placed since 1 November.",
    ],
)
strong = ScriptedChatModel(
    model_name="anthropic/claude-sonnet-4-6",
    input_tokens_per_call=700,
    output_tokens_per_call=50,
    script=["The column is created_at, not created. Run: " + RIGHT],
)
agent = create_agent(
    weak,
    tools=[run_sql],
    middleware=[EscalationMiddleware(strong)],
    checkpointer=InMemorySaver(),  # lets the `human` rung interrupt, were it reached
)
config = {"configurable": {"thread_id": "orders-november"}}
result = agent.invoke({"messages": [("user", "How many orders since 1 November 2026?")]}, config)

print(result["messages"][-1].content)
for record in result["escalations"]:
    print(record["action"], record["outcome"], record["rule"], record["cost_usd"])""",
    ),
    (
        "markdown",
        """\
The third identical failure fired `repeated_action_error`: the nudge (free)
was added. Three more identical failures fired it again: the strong model
advised, its advice was added, the loop was pruned, and the weak model
finished. The strong model was called once.

## What did it cost?

As in notebook 01: every reply the run paid for, read from the final state
(the pruned loop's usage rides on the message that replaced it), priced at
litellm's prices.""",
    ),
    (
        "code",
        """\
from langchain_escalate.cost import PriceBook, summarize_run

summary = summarize_run(
    result["messages"],
    weak_model="deepseek/deepseek-chat",
    strong_model="anthropic/claude-sonnet-4-6",
    prices=PriceBook(),
    records=result["escalations"],
)
print(summary.describe().replace("; ", "\\n"))""",
    ),
    (
        "markdown",
        REAL_MODELS.replace(
            "Everything else stays as it is;",
            "`create_ask_expert_tool` and `EscalationMiddleware` take litellm ids directly. "
            "Here the weak model is called by your own code (part 1) or by `create_agent` "
            "(part 2), so give it as a chat model: "
            '`ChatLiteLLM(model="deepseek/deepseek-chat")` from `langchain_litellm`. '
            "Everything else stays as it is;",
        ),
    ),
]


# -- 03: YAML configuration and budgets -------------------------------------------

NOTEBOOK_03: Cells = [
    (
        "markdown",
        """\
# 03 · Configure escalation in YAML; cap the strong model with a budget

Settings per graph node live in one `escalate.yaml`: the models, the detector's
thresholds, the ladder, the budget. The budget's **ledger** is a SQLite file
here, so every process on the machine (every worker of your agent) shares the
same limits; a PostgreSQL URL does the same for a fleet.

You will see:

1. a config file loaded, validated and merged per node;
2. a node built from it, escalating once and recording what that cost in the ledger;
3. another process reading the same ledger;
4. what happens when the budget is exhausted: the request is refused before
   the strong model is called, recorded as `over_budget`, and the ladder moves
   down a rung (here to `stop`, which ends the turn with a clear message).

"""
        + OFFLINE_NOTE,
    ),
    (
        "code",
        SETUP
        + """

import tempfile
from pathlib import Path

workdir = Path(tempfile.mkdtemp(prefix="escalate-cookbook-"))
# The file reads the ledger URL from the environment (a SQLite file: 4 slashes, absolute path).
os.environ["ESCALATE_LEDGER_URL"] = f"sqlite:///{workdir / 'ledger.db'}"
print(workdir)""",
    ),
    (
        "markdown",
        """\
## The file

`defaults` apply to every node; each node under `nodes` overrides only what it
writes. `${VAR:-default}` reads the environment. The total budget is tiny on
purpose, so that we can see it run out.""",
    ),
    (
        "code",
        '''\
config_file = workdir / "escalate.yaml"
config_file.write_text("""\\
models:
  weak: deepseek/deepseek-chat
  strong: anthropic/claude-sonnet-4-6

defaults:
  detector:
    repeated_action_error: 2
  policy:
    ladder: [escalate, stop]
  budget:
    max_escalations_per_thread: 1
    max_usd_total: 0.01
    ledger: ${ESCALATE_LEDGER_URL:-memory://}

nodes:
  support:
  triage:
    detector: {repeated_action_error: 3}
    policy: {ladder: [nudge, escalate, human]}
""")''',
    ),
    (
        "markdown",
        "`langchain-escalate check-config` validates it and prints what each node runs with:",
    ),
    (
        "code",
        """\
from langchain_escalate.cli import main

exit_code = main(["check-config", str(config_file)])
print("exit code", exit_code)""",
    ),
    (
        "markdown",
        """\
A mistake is caught with its line and the nearest valid key, rather than
silently ignored:""",
    ),
    (
        "code",
        """\
from langchain_escalate import load_config

try:
    load_config("nodes:\\n  support:\\n    detector: {repeated_action_eror: 2}\\n")
except ValueError as error:
    print(error)""",
    ),
    (
        "markdown",
        """\
## Build the node from the file

`cfg.build_node("support", tools=tools)` is `create_escalating_node(...)` with
the node's settings. Without `weak=`/`strong=` it uses the file's litellm ids;
here we pass scripted stand-ins named like them. (In a graph that has every
node the file configures, `cfg.check_graph(builder).compile()` also checks that
none is missing: here `triage` belongs to another graph.)""",
    ),
    (
        "code",
        '''\
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langchain_escalate import EscalationState
from langchain_escalate.testing import ScriptedChatModel, tool_call


@tool
def get_invoice(invoice_id: str) -> str:
    """Fetch an invoice by its id, e.g. INV-2026-0042."""
    if invoice_id.startswith("INV-"):
        return f"{invoice_id}: EUR 1,200.00, due 2026-12-15, unpaid"
    return f"Error: invalid invoice id {invoice_id!r}"


tools = [get_invoice]


def calls(tool_name, **args):
    return AIMessage("", tool_calls=[tool_call(tool_name, args)])


def support_graph(weak, strong):
    builder = StateGraph(EscalationState)
    builder.add_node("support", cfg.build_node("support", tools=tools, weak=weak, strong=strong))
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "support")
    builder.add_conditional_edges("support", tools_condition)
    builder.add_edge("tools", "support")
    return builder.compile(checkpointer=InMemorySaver())


cfg = load_config(config_file)
settings = cfg.for_node("support")  # after merging defaults and the node's section
print(settings.policy.ladder, settings.detector.repeated_action_error)
print(settings.budget.max_usd_total, settings.budget.ledger)''',
    ),
    (
        "markdown",
        """\
## Ticket 1: the weak model gets stuck, the strong model helps

Two identical failures fire `repeated_action_error` (this file's threshold);
the ladder's first rung escalates. The budget reserves the escalation's
estimated cost in the ledger *before* calling the strong model, then settles
the actual cost.""",
    ),
    (
        "code",
        """\
weak = ScriptedChatModel(
    model_name="deepseek/deepseek-chat",
    input_tokens_per_call=1_000,
    output_tokens_per_call=30,
    script=[
        *(calls("get_invoice", invoice_id="2026-0042") for _ in range(2)),
        calls("get_invoice", invoice_id="INV-2026-0042"),
        "Invoice INV-2026-0042 (EUR 1,200.00) is unpaid and due on 15 December.",
    ],
)
strong = ScriptedChatModel(
    model_name="anthropic/claude-sonnet-4-6",
    input_tokens_per_call=900,
    output_tokens_per_call=60,
    script=["Invoice ids carry the INV- prefix: call get_invoice('INV-2026-0042')."],
)
graph = support_graph(weak, strong)
ticket_1 = graph.invoke(
    {"messages": [("user", "Is invoice 2026-0042 paid?")]},
    {"configurable": {"thread_id": "ticket-1"}},
)
print(ticket_1["messages"][-1].content)
for record in ticket_1["escalations"]:
    print(record["action"], record["outcome"], record["rule"], f"${record['cost_usd']:.6f}")""",
    ),
    (
        "markdown",
        """\
## Another process sees the same ledger

Any process that opens the same ledger URL shares the limits. Here a separate
Python process reads what ticket 1 spent:""",
    ),
    (
        "code",
        '''\
import subprocess
import sys

WORKER = """
import os
from langchain_escalate import Budget

budget = Budget(ledger=os.environ["ESCALATE_LEDGER_URL"])
print(f"spent in total: ${budget.spent():.6f}")
print(f"escalations of ticket-1: {budget.escalations('ticket-1')}")
"""
other_process = subprocess.run(  # noqa: S603 - this Python, running the code above
    [sys.executable, "-c", WORKER], capture_output=True, text=True, check=True
)
print(other_process.stdout)''',
    ),
    (
        "markdown",
        """\
## Ticket 2: the budget is exhausted

The next escalation would need its estimate (the briefing's tokens plus 500
answer tokens at the strong model's price) on top of what ticket 1 spent, and
that is more than `max_usd_total: 0.01`. The reservation is refused
atomically, the strong model is **not** called, the record says `over_budget`
with the reason, and the ladder moves down to `stop`: the turn ends with a
message saying why, instead of looping on.""",
    ),
    (
        "code",
        """\
weak = ScriptedChatModel(
    model_name="deepseek/deepseek-chat",
    input_tokens_per_call=1_000,
    output_tokens_per_call=30,
    script=[calls("get_invoice", invoice_id="2026-0077") for _ in range(2)],
)
strong = ScriptedChatModel(model_name="anthropic/claude-sonnet-4-6", script=[])
graph = support_graph(weak, strong)
ticket_2 = graph.invoke(
    {"messages": [("user", "Is invoice 2026-0077 paid?")]},
    {"configurable": {"thread_id": "ticket-2"}},
)
print(ticket_2["messages"][-1].content, "\\n")
for record in ticket_2["escalations"]:
    print(record["action"], record["outcome"], "-", record["reason"], "\\n")
print("strong model calls:", len(strong.calls))""",
    ),
    (
        "markdown",
        """\
The per-thread limit works the same way: ticket 1 has used its one
escalation, so another reservation for it is refused, with the reason:""",
    ),
    (
        "code",
        """\
from langchain_escalate import Budget

same_ledger = Budget(max_escalations_per_thread=1, ledger=os.environ["ESCALATE_LEDGER_URL"])
refused = same_ledger.reserve("ticket-1", estimate_usd=0.0001)
print(refused.granted, "-", refused.reason)
same_ledger.close()""",
    ),
    (
        "markdown",
        """\
## Clean up

`cfg.close()` closes the ledgers the builders opened.""",
    ),
    (
        "code",
        """\
import shutil

cfg.close()
shutil.rmtree(workdir)""",
    ),
    (
        "markdown",
        REAL_MODELS
        + """

With real models, drop `weak=`/`strong=` from `build_node`: the file's
`models` are used (per node if a node overrides them), and `prices:` in the
file prices models litellm does not know.""",
    ),
]

NOTEBOOKS: dict[str, Cells] = {
    "01_escalating_node.ipynb": NOTEBOOK_01,
    "02_ask_expert_tool_and_middleware.ipynb": NOTEBOOK_02,
    "03_yaml_config_and_budgets.ipynb": NOTEBOOK_03,
}


def build(cells: Cells) -> nbformat.NotebookNode:
    """Return a notebook of ``cells``, without outputs, for the ``python3`` kernel."""
    notebook = new_notebook(
        cells=[
            new_markdown_cell(source) if kind == "markdown" else new_code_cell(source)
            for kind, source in cells
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    # Stable cell ids, so rebuilding an unchanged notebook changes nothing.
    for number, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{number:02d}"
    return notebook


def main() -> None:
    """Write every notebook next to this file."""
    for name, cells in NOTEBOOKS.items():
        notebook = build(cells)
        nbformat.validate(notebook)
        nbformat.write(notebook, HERE / name)
        print(f"wrote cookbook/{name} ({len(cells)} cells)")


if __name__ == "__main__":
    main()
