# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
# ---

# %% [markdown]
"""
# 07 · The MCP server: escalation for any MCP client

`langchain-escalate mcp` puts the expert, the stuck detector and the budget
behind the Model Context Protocol, so a cheap model inside Claude Code,
Cline, Cursor or any MCP client can consult a stronger one, ask whether it
is looping, and see what is left to spend, with no LangGraph graph written.
(`pip install 'langchain-escalate[mcp]'`; the reference is `docs/mcp.md`.)

You will see:

1. `ExpertService`, the three tools as plain Python: `ask_expert` (briefed,
   threaded, priced, recorded), `check_stuck`, `budget_status`;
2. the same tools served by `create_mcp_server` and called by a real MCP
   client session, in memory;
3. the records file the server writes, read by `langchain-escalate report`.

**Runs offline, without an API key.** The expert is a `ScriptedChatModel`
from `langchain_escalate.testing`, named after a real litellm id, so every
cost is its token counts at litellm's **real prices**.
"""

# %%
import asyncio
import concurrent.futures
import os
import tempfile
from pathlib import Path

# litellm prices from its bundled price map, never a network fetch.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

workdir = Path(tempfile.mkdtemp(prefix="escalate-cookbook-"))


def run(coroutine):
    """Run a coroutine to its end, also inside Jupyter (whose event loop is already running)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


# %% [markdown]
"""
## The expert: the one cell to change for real providers

**With a real model, replace this cell with:**

```python
# export ANTHROPIC_API_KEY=...
STRONG = "anthropic/claude-sonnet-4-6"
expert = STRONG  # a litellm id, resolved at its first call
```
"""

# %%
from langchain_escalate.testing import ScriptedChatModel

STRONG = "anthropic/claude-sonnet-4-6"
expert = ScriptedChatModel(
    model_name=STRONG,
    input_tokens_per_call=1_200,
    output_tokens_per_call=80,
    script=[
        "Use GET /v2/invoices: /v1 was removed in October.",
        "Refunds moved too: POST /v2/refunds with the invoice id.",
        "Call the refund endpoint again with the same idempotency key.",
    ],
)

# %% [markdown]
"""
## `ExpertService`: the tools as plain Python

The service keeps consultation threads in a SQLite file and appends an
`EscalationRecord` per call to a JSONL file. The budget is a `Budget` like
the node's: point several servers (or a server and your agents) at one
ledger and together they cannot overspend.
"""

# %%
from langchain_escalate import Budget
from langchain_escalate.mcp_server import ExpertService

budget = Budget(max_escalations_per_thread=2, ledger=f"sqlite:///{workdir / 'ledger.db'}")
service = ExpertService(
    expert,
    budget=budget,
    threads=workdir / "threads.db",
    records=workdir / "records.jsonl",
    workdir=workdir,
)

first = run(service.ask_expert("Which endpoint lists invoices?", context="GET /v1/invoices: 404"))
print(first.to_text())
again = run(service.ask_expert("And refunds?", thread_id=first.thread_id))
print("turn", again.turn, "of thread", again.thread_id == first.thread_id)

# %% [markdown]
"""
The follow-up continued the thread: the expert was briefed on the earlier
question and answer. The thread has now used its two escalations:
"""

# %%
print(run(service.budget_status(first.thread_id)))

# %% [markdown]
"""
`check_stuck` runs the escalating node's detector over a transcript (OpenAI
chat format or LangChain message dicts), for free:
"""

# %%
failing_call = {
    "role": "assistant",
    "content": "",
    "tool_calls": [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_invoices", "arguments": '{"version": "v1"}'},
        }
    ],
}
transcript = [{"role": "user", "content": "List my invoices"}]
for number in range(1, 4):
    call = {**failing_call, "tool_calls": [{**failing_call["tool_calls"][0], "id": f"c{number}"}]}
    transcript += [call, {"role": "tool", "tool_call_id": f"c{number}", "content": "Error: 404"}]
print(service.check_stuck(transcript)["advice"])

# %% [markdown]
"""
## Served over MCP

`create_mcp_server(service)` is the SDK's `FastMCP` with the three tools.
`langchain-escalate mcp --config escalate.yaml` serves it on stdio (what
clients start) or `--http PORT` on loopback; here a real MCP client session
talks to it in memory. Over the protocol, a refusal is a tool result with
`isError` set and a message the calling model can act on:
"""

# %%
from mcp.shared.memory import create_connected_server_and_client_session

from langchain_escalate.mcp_server import create_mcp_server

server = create_mcp_server(service)


async def consult():
    async with create_connected_server_and_client_session(server) as session:
        tools = await session.list_tools()
        print("tools:", sorted(tool.name for tool in tools.tools))
        arguments = {"question": "Retry the refund?", "thread_id": first.thread_id}
        refused = await session.call_tool("ask_expert", arguments)
        print("refused:", refused.isError, refused.content[0].text)
        fresh = await session.call_tool("ask_expert", {"question": "Retry the refund?"})
        print("answered:", fresh.content[0].text.splitlines()[0])


run(consult())

# %% [markdown]
"""
An agent built with LangChain loads these tools with `langchain-mcp-adapters`
(`load_mcp_tools(session)`), and a client such as Claude Code starts the
command itself: `claude mcp add escalate -- langchain-escalate mcp --config
/abs/path/escalate.yaml`. See `docs/mcp.md` for Cline and Cursor.

## What the server spent: `report` on its records

Every call left a record (answered, or `over_budget`), in the file
`langchain-escalate report` reads:
"""

# %%
import subprocess
import sys

report = subprocess.run(  # noqa: S603 - this Python, running the CLI
    [sys.executable, "-m", "langchain_escalate.cli", "report", str(workdir / "records.jsonl")],
    capture_output=True,
    text=True,
    check=True,
    env={**os.environ, "COLUMNS": "120"},  # rich's tables, wide enough for model ids
)
print(report.stdout)

# %%
import shutil

budget.close()
shutil.rmtree(workdir)
