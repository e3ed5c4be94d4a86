# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
# ---

# %% [markdown]
"""
# 02 · The ask-expert tool: the weak model asks for help

`create_ask_expert_tool(strong)` is a tool like any other. The weak model
calls it when it knows it is unsure; the strong model is **briefed from the
conversation** (the task, what was tried and what came back), so the weak
model only states its question. Same engine as the escalating node (see
`docs/choosing.md` for which to use).

You will see:

1. the tool in a classic `ToolNode` agent: one error, one question, the answer followed;
2. the `EscalationRecord` the answer carries, and the briefing the strong model read;
3. `max_uses` refusing a call with a message the model can read, never an exception.

**Runs offline, without an API key.** The models are `ScriptedChatModel`s
from `langchain_escalate.testing`: they follow a script, report fixed token
counts, and are named after real litellm ids (`deepseek/deepseek-chat`,
`anthropic/claude-sonnet-4-6`), so every cost is those tokens at litellm's
**real prices**.
"""

# %%
import os

# litellm prices from its bundled price map, never a network fetch.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# %% [markdown]
"""
## The task and its tool

An analytics assistant queries a database. `run_sql` fails on a wrong column
name, as a real database would.
"""

# %%
from langchain_core.tools import tool


@tool
def run_sql(query: str) -> str:
    """Run a read-only SQL query on the orders database."""
    if "created_at" in query:
        return "count\n1284"
    if "created" in query:
        return 'Error: column "created" does not exist (table orders)'
    return "Error: syntax error at or near the end of the query"


# %% [markdown]
"""
## The models: the one cell to change for real providers

**With real models, replace this cell with:**

```python
# export DEEPSEEK_API_KEY=... ANTHROPIC_API_KEY=...
from langchain_litellm import ChatLiteLLM

WEAK, STRONG = "deepseek/deepseek-chat", "anthropic/claude-sonnet-4-6"
weak = ChatLiteLLM(model=WEAK)  # called by our own node below, so a chat model
strong = expert_once = STRONG   # the tool takes a litellm id as it is
```
"""

# %%
from langchain_core.messages import AIMessage

from langchain_escalate.testing import ScriptedChatModel, tool_call

WEAK, STRONG = "deepseek/deepseek-chat", "anthropic/claude-sonnet-4-6"
WRONG = "SELECT count(*) FROM orders WHERE created >= '2026-11-01'"
RIGHT = "SELECT count(*) FROM orders WHERE created_at >= '2026-11-01'"


def calls(tool_name, **args):
    return AIMessage("", tool_calls=[tool_call(tool_name, args)])


weak = ScriptedChatModel(
    model_name=WEAK,
    input_tokens_per_call=800,
    output_tokens_per_call=40,
    script=[
        calls("run_sql", query=WRONG),
        calls("ask_expert", question="run_sql says column created does not exist. Which column?"),
        calls("run_sql", query=RIGHT),
        "1,284 orders were placed since 1 November.",
    ],
)
strong = ScriptedChatModel(
    model_name=STRONG,
    input_tokens_per_call=700,
    output_tokens_per_call=50,
    script=["The column is created_at, not created. Run: " + RIGHT],
)
expert_once = ScriptedChatModel(model_name=STRONG, script=["Use created_at."])

# %% [markdown]
"""
## The tool in a `ToolNode` agent

The tool goes beside the others: in the `ToolNode` and in `bind_tools`. The
weak model hits the error once, asks the expert, and follows the answer.
"""

# %%
from langgraph.graph import START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langchain_escalate import EscalationState, create_ask_expert_tool

ask_expert = create_ask_expert_tool(strong, max_uses=2)  # at most 2 answers per thread
tools = [run_sql, ask_expert]
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
    print(f"{message.type:<6} {text}"[:140])

# %% [markdown]
"""
The expert's answer came back as the `ask_expert` tool result. It carries its
`EscalationRecord`, which is also in `state["escalations"]`:
"""

# %%
record = result["escalations"][0]
print(record["outcome"], record["model"], record["tokens_in"], record["tokens_out"])
print(f"cost ${record['cost_usd']:.6f}")

# %% [markdown]
"""
What the strong model read: a bounded briefing built from the conversation
(the task, what was tried and what came back) plus the question. The weak model
did not have to restate any of it.
"""

# %%
if isinstance(strong, ScriptedChatModel):  # a scripted model keeps what it was sent
    print(strong.calls[0][-1].content)

# %% [markdown]
"""
## Limits never raise

`max_uses` and a `Budget` cap the tool. A refused call is a tool result the
model can read (with `status="error"`), never an exception. Called directly,
outside a graph, the tool sends only the question and counts uses per tool object:
"""

# %%
once = create_ask_expert_tool(expert_once, max_uses=1)
print(once.invoke({"question": "Which date column does orders have?"}))
print(once.invoke({"question": "And which one for refunds?"}))

# %% [markdown]
"""
## What did it cost?

Every reply the run paid for, read from the final state, priced at
litellm's prices; the counterfactual runs every weak reply on the strong model.
"""

# %%
from langchain_escalate.cost import PriceBook, summarize_run

summary = summarize_run(
    result["messages"],
    weak_model=WEAK,
    strong_model=STRONG,
    prices=PriceBook(),
    records=result["escalations"],
)
print(summary.describe().replace("; ", "\n"))
