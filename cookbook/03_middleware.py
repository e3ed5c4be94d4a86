# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
# ---

# %% [markdown]
"""
# 03 · `EscalationMiddleware` for `create_agent`

With `langchain.agents.create_agent` you do not write the agent loop, so you
add escalation as **middleware**: `EscalationMiddleware(strong)` feeds the
stuck detector before each model call, and the ladder answers as in notebook
01 (nudge, then the strong model, then a person), without touching the loop.

You will see the weak model retry a failing query, deaf to the nudge; the
strong model's advice; the loop pruned; the records and what the run cost.

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

`create_agent` calls the weak model itself, so it is given as a chat model.
**With real models, replace this cell with:**

```python
# export DEEPSEEK_API_KEY=... ANTHROPIC_API_KEY=...
from langchain_litellm import ChatLiteLLM

WEAK, STRONG = "deepseek/deepseek-chat", "anthropic/claude-sonnet-4-6"
weak = ChatLiteLLM(model=WEAK)
strong = STRONG  # the middleware takes a litellm id as it is
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
        *(calls("run_sql", query=WRONG) for _ in range(6)),  # deaf to the nudge
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

# %% [markdown]
"""
## The agent

One argument added to `create_agent`: `middleware=[EscalationMiddleware(strong)]`.
The default ladder is nudge, escalate, human; the checkpointer lets the
`human` rung pause the run with `interrupt()`, were it reached (then
`invoke` returns `__interrupt__`, and `Command(resume=...)` continues).
"""

# %%
from langchain.agents import create_agent
from langgraph.checkpoint.memory import InMemorySaver

from langchain_escalate import EscalationMiddleware

agent = create_agent(
    weak,
    tools=[run_sql],
    middleware=[EscalationMiddleware(strong)],
    checkpointer=InMemorySaver(),
)
config = {"configurable": {"thread_id": "orders-november"}}
result = agent.invoke({"messages": [("user", "How many orders since 1 November 2026?")]}, config)

print(result["messages"][-1].content)
for record in result["escalations"]:
    print(record["action"], record["outcome"], record["rule"], record["cost_usd"])

# %% [markdown]
"""
The third identical failure fired `repeated_action_error`: the nudge (free)
was added. Three more identical failures fired it again: the strong model
advised, its advice was added, the loop was pruned, and the weak model
finished. The strong model was called once:
"""

# %%
if isinstance(strong, ScriptedChatModel):  # a scripted model keeps what it was sent
    print("strong model calls:", len(strong.calls))

# %% [markdown]
"""
## What did it cost?

As in notebook 01: every reply the run paid for, read from the final state
(the pruned loop's usage rides on the message that replaced it), priced at
litellm's prices.
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
