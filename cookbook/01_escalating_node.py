# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
# ---

# %% [markdown]
"""
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

**Runs offline, without an API key.** The weak and strong models are
`ScriptedChatModel`s from `langchain_escalate.testing`: they follow a script
and report fixed token counts, and they are named after real litellm model ids
(`deepseek/deepseek-chat`, `anthropic/claude-sonnet-4-6`), so every cost you see
is those token counts at the **real prices** of litellm's bundled price map.
"""

# %%
import os

# litellm prices from its bundled price map, never a network fetch.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# %% [markdown]
"""
## The task and its tools

A code assistant answers questions about a repository. `read_file` fails unless
it is given the path from the repository root; `find_files` finds that path.
"""

# %%
from langchain_core.tools import tool

FILES = {
    "services/billing/config/service.yaml": "database:\n  host: db.internal\n  port: 5433\n",
    "services/billing/README.md": "# Billing\nSettings live in config/service.yaml.\n",
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
    return "\n".join(path for path in FILES if name in path.rsplit("/", 1)[-1]) or "no match"


tools = [read_file, find_files]

# %% [markdown]
"""
## The models: the one cell to change for real providers

The weak model's script is what a cheap model stuck on this task does: the
same failing call three times, then other guesses, then (after help) the right
path. The strong model's script is its advice. The second pair plays the
`takeover` ladder at the end of the notebook.

**With real models, replace this cell with:**

```python
# export DEEPSEEK_API_KEY=... ANTHROPIC_API_KEY=...
WEAK, STRONG = "deepseek/deepseek-chat", "anthropic/claude-sonnet-4-6"
weak = takeover_weak = WEAK  # litellm ids, resolved at their first call
strong = takeover_strong = STRONG
```

(or any LangChain chat model; a local OpenAI-compatible server is
`ModelRef("openai/qwen2.5-coder-32b", api_base="http://localhost:8080/v1")` from
`langchain_escalate.models`, priced by you with `prices=`). A real model finds
its own way, so the transcript will differ; the records and the cost summary
then price real usage.
"""

# %%
from langchain_core.messages import AIMessage

from langchain_escalate.testing import ScriptedChatModel, tool_call

WEAK, STRONG = "deepseek/deepseek-chat", "anthropic/claude-sonnet-4-6"


def calls(tool_name, **args):
    return AIMessage("", tool_calls=[tool_call(tool_name, args)])


weak = ScriptedChatModel(
    model_name=WEAK,
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
    model_name=STRONG,
    input_tokens_per_call=900,
    output_tokens_per_call=60,
    script=[
        (
            "Paths are relative to the repository root and services live under services/. "
            "Call find_files(name='service.yaml') and read the path it returns."
        )
    ],
)
takeover_weak = ScriptedChatModel(
    model_name=WEAK,
    script=[
        *(calls("read_file", path="config/service.yaml") for _ in range(2)),
        "The billing database listens on port 5433.",
    ],
)
takeover_strong = ScriptedChatModel(
    model_name=STRONG,
    script=[
        calls("find_files", name="service.yaml"),
        calls("read_file", path="services/billing/config/service.yaml"),
    ],
)

# %% [markdown]
"""
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
detector's state is checkpointed.
"""

# %%
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
graph = builder.compile(checkpointer=InMemorySaver())

# %% [markdown]
"""
## Run it and watch

`stream_mode=["updates", "custom"]` shows each node's output, and every
escalation record as a custom stream event (`{"escalation": record}`), the
moment the ladder answers.
"""

# %%
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
        return "ladder  adds:\n" + textwrap.indent(textwrap.fill(message.content, 92), " " * 8)
    return f"weak    answers: {message.content}"


config = {"configurable": {"thread_id": "billing-port"}}
question = {"messages": [("user", "Which port does the billing service's database use?")]}
for mode, chunk in graph.stream(question, config, stream_mode=["updates", "custom"]):
    if mode == "custom":
        record = chunk["escalation"]
        print(f"\n>>> stuck: {record['rule']}: {record['reason']}")
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
                print(line)

# %% [markdown]
"""
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
message it added): node, rule, reason, mode, model, tokens, cost, latency, outcome.
"""

# %%
state = graph.get_state(config).values
for record in state["escalations"]:
    print(
        f"{record['action']:<9} {record['outcome']:<8} {record['rule']:<22} "
        f"model={record['model']} tokens={record['tokens_in']}/{record['tokens_out']} "
        f"cost=${record['cost_usd']:.6f}"
    )

# %% [markdown]
"""
What the strong model read: the briefing, not the whole conversation.
"""

# %%
if isinstance(strong, ScriptedChatModel):  # a scripted model keeps what it was sent
    print(strong.calls[0][-1].content)

# %% [markdown]
"""
## What did it cost?

`summarize_run` prices every reply at its side's price (litellm's map) and
computes the counterfactual: the same tokens, all on the strong model. The loop
was pruned from the state, but the weak model was paid for it: the message that
replaced the loop carries the usage of the replies it removed, so the final
state is enough.
"""

# %%
from langchain_escalate.cost import PriceBook, summarize_run

summary = summarize_run(
    state["messages"],
    weak_model=WEAK,
    strong_model=STRONG,
    prices=PriceBook(),
    records=state["escalations"],
)
print(summary.describe().replace("; ", "\n"))

# %% [markdown]
"""
## Another ladder: skip the nudge, let the strong model take over

`EscalationPolicy` sets the ladder and the mode; `DetectorConfig` the
thresholds. In `takeover` mode the strong model, bound to the same tools, takes
this step and the next `takeover_steps`, then hands back.
"""

# %%
from langchain_escalate import DetectorConfig, EscalationPolicy

node = create_escalating_node(
    takeover_weak,
    takeover_strong,
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
print([(r["action"], r["outcome"], r["mode"]) for r in result["escalations"]])
