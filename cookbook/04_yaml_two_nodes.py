# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
# ---

# %% [markdown]
"""
# 04 · Two nodes configured in one YAML file

Settings per graph node live in one `escalate.yaml`: the models, the
detector's thresholds, the ladder, the budget. Here a support graph has two
escalating nodes with different needs:

- **`triage`** looks the customer up. A wrong lookup is cheap and usually
  fixed from the error message, so it gets three tries and a free nudge
  first (`nudge, escalate, human`).
- **`support`** answers about invoices. Two identical failures are enough to
  call the strong model at once (`escalate, stop`).

You will see:

1. the file loaded, validated (`langchain-escalate check-config`) and merged per node;
2. a mistake caught with its line and the nearest valid key;
3. both nodes built from the file with `cfg.build_node(...)`, the graph
   checked against the file with `cfg.check_graph(...)`, and each node
   escalating by its own settings.

**Runs offline, without an API key.** The models are `ScriptedChatModel`s
from `langchain_escalate.testing`, named after the file's litellm ids, so
every cost is their token counts at litellm's **real prices**.
"""

# %%
import os
import tempfile
from pathlib import Path

# litellm prices from its bundled price map, never a network fetch.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

workdir = Path(tempfile.mkdtemp(prefix="escalate-cookbook-"))

# %% [markdown]
"""
## The file

`defaults` apply to every node; each node under `nodes` overrides only what it
writes. `${VAR:-default}` reads the environment (notebook 05 uses it for the
budget's ledger).
"""

# %%
config_file = workdir / "escalate.yaml"
config_file.write_text("""\
models:
  weak: deepseek/deepseek-chat
  strong: anthropic/claude-sonnet-4-6

defaults:
  detector:
    repeated_action_error: 2
  policy:
    ladder: [escalate, stop]

nodes:
  support:
  triage:
    detector: {repeated_action_error: 3}
    policy: {ladder: [nudge, escalate, human]}
""")

# %% [markdown]
"""
`langchain-escalate check-config` validates it and prints what each node runs
with (here called in-process; in a shell it is the same command):
"""

# %%
from langchain_escalate.cli import main

exit_code = main(["check-config", str(config_file)])
print("exit code", exit_code)

# %% [markdown]
"""
A mistake is caught with its line and the nearest valid key, rather than
silently ignored:
"""

# %%
from langchain_escalate import load_config

try:
    load_config("nodes:\n  support:\n    detector: {repeated_action_eror: 2}\n")
except ValueError as error:
    print(error)

# %% [markdown]
"""
`for_node` gives a node's settings after merging the defaults and its section:
"""

# %%
cfg = load_config(config_file)
for node_name in ("triage", "support"):
    settings = cfg.for_node(node_name)
    print(
        f"{node_name:<8} repeated_action_error={settings.detector.repeated_action_error} "
        f"ladder={settings.policy.ladder}"
    )

# %% [markdown]
"""
## The tools
"""

# %%
from langchain_core.tools import tool

CUSTOMERS = {"ana@example.com": "C-1042"}


@tool
def find_customer(email: str) -> str:
    """Find a customer's id by their email address."""
    return CUSTOMERS.get(email.strip().lower(), f"Error: no customer with email {email!r}")


@tool
def get_invoice(invoice_id: str) -> str:
    """Fetch an invoice by its id, e.g. INV-2026-0042."""
    if invoice_id.startswith("INV-"):
        return f"{invoice_id}: EUR 1,200.00, due 2026-12-15, unpaid, customer C-1042"
    return f"Error: invalid invoice id {invoice_id!r}"


# %% [markdown]
"""
## The models: the one cell to change for real providers

`build_node` uses the file's models unless you pass `weak=`/`strong=`; here
each node gets scripted stand-ins named like them. **With real models,
replace this cell with** (keys in the environment):

```python
triage_weak = triage_strong = support_weak = support_strong = None  # the file's models
```
"""

# %%
from langchain_core.messages import AIMessage

from langchain_escalate.testing import ScriptedChatModel, tool_call

WEAK, STRONG = "deepseek/deepseek-chat", "anthropic/claude-sonnet-4-6"


def calls(tool_name, **args):
    return AIMessage("", tool_calls=[tool_call(tool_name, args)])


triage_weak = ScriptedChatModel(
    model_name=WEAK,
    input_tokens_per_call=600,
    output_tokens_per_call=30,
    script=[
        *(calls("find_customer", email="Ana Example") for _ in range(2)),  # not an email, 2x
        calls("find_customer", email="ana@example.com"),  # it reads the error and fixes it
        "Customer C-1042 asks about invoice 2026-0042.",
    ],
)
triage_strong = ScriptedChatModel(model_name=STRONG, script=[])  # not called: see below
support_weak = ScriptedChatModel(
    model_name=WEAK,
    input_tokens_per_call=1_000,
    output_tokens_per_call=30,
    script=[
        *(calls("get_invoice", invoice_id="2026-0042") for _ in range(2)),
        calls("get_invoice", invoice_id="INV-2026-0042"),
        "Invoice INV-2026-0042 (EUR 1,200.00) is unpaid and due on 15 December.",
    ],
)
support_strong = ScriptedChatModel(
    model_name=STRONG,
    input_tokens_per_call=900,
    output_tokens_per_call=60,
    script=["Invoice ids carry the INV- prefix: call get_invoice('INV-2026-0042')."],
)

# %% [markdown]
"""
## Build both nodes from the file

`cfg.build_node(name, tools=...)` is `create_escalating_node(...)` with that
node's settings. Each node has its own `ToolNode`; triage hands over to
support when it answers. `cfg.check_graph(builder)` fails if a node the file
configures is missing from the graph (a typo, a renamed node), naming the
nearest one.
"""

# %%
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langchain_escalate import EscalationState

triage_tools, support_tools = [find_customer], [get_invoice]
builder = StateGraph(EscalationState)
builder.add_node(
    "triage",
    cfg.build_node("triage", tools=triage_tools, weak=triage_weak, strong=triage_strong),
)
builder.add_node(
    "support",
    cfg.build_node("support", tools=support_tools, weak=support_weak, strong=support_strong),
)
builder.add_node("triage_tools", ToolNode(triage_tools))
builder.add_node("support_tools", ToolNode(support_tools))
builder.add_edge(START, "triage")
builder.add_conditional_edges("triage", tools_condition, {"tools": "triage_tools", END: "support"})
builder.add_edge("triage_tools", "triage")
builder.add_conditional_edges("support", tools_condition, {"tools": "support_tools", END: END})
builder.add_edge("support_tools", "support")
graph = cfg.check_graph(builder).compile(checkpointer=InMemorySaver())

# %% [markdown]
"""
## Run a ticket
"""

# %%
result = graph.invoke(
    {"messages": [("user", "I am Ana (ana@example.com). Is my invoice 2026-0042 paid?")]},
    {"configurable": {"thread_id": "ticket-7"}},
)
print(result["messages"][-1].content)
for record in result["escalations"]:
    print(record["node"], record["action"], record["outcome"], record["rule"])

# %% [markdown]
"""
Both nodes failed the same call twice. In `triage` (threshold 3) that is
still a weak model reading its error: no rung, no cost. In `support`
(threshold 2) it fired `repeated_action_error`, and the ladder's first rung
there is `escalate`: the strong model advised at once, as the file says.
Per-node records (`record["node"]`) are what `langchain-escalate report`
groups by (notebook 05).

A node the graph does not have is caught when the graph is built:
"""

# %%
from langchain_escalate.config import ConfigError

partial = StateGraph(EscalationState)
partial.add_node("support", cfg.build_node("support", tools=support_tools))
partial.add_edge(START, "support")
try:
    cfg.check_graph(partial)
except ConfigError as error:
    print(error)

# %% [markdown]
"""
With real models, the file's `prices:` section prices models litellm does
not know (a local server, an OpenRouter id), and `models:` can be set per
node. See `docs/config.md` for the whole schema.
"""

# %%
import shutil

cfg.close()
shutil.rmtree(workdir)
