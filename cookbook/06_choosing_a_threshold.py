# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
# ---

# %% [markdown]
"""
# 06 · Catch the confidently wrong; choose the threshold from your own runs

Most failures of a cheap model are not loops: it answers, calmly, and is
wrong. The detector's `low_confidence` rule catches those when it has a
confidence to read, and `confidence=` on the node gives it one (sources:
`verbalized`, `logprobs`, `consistency`, your own `verify`; see
`docs/confidence.md`). Which threshold? `langchain-escalate calibrate` reads
runs you labelled and recommends the cheapest one that keeps, say, 95% of the
strong model's quality (`docs/calibrate.md`).

You will see:

1. a node whose weak model states its confidence; a low one escalates, a high one passes;
2. a RUNS.jsonl built from labelled runs, and `calibrate` on it: the curve,
   the recommended threshold, the baselines.

**Runs offline, without an API key.** The models are `ScriptedChatModel`s
from `langchain_escalate.testing`, named after real litellm ids, so every cost
is their token counts at litellm's **real prices**.
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
## The models: the one cell to change for real providers

With the `verbalized` source the node adds an instruction to the weak
model's system prompt: end the final answer with `Confidence: x`. The script
below answers one question sure of itself and one not. **With real models,
replace this cell with:**

```python
# export DEEPSEEK_API_KEY=... ANTHROPIC_API_KEY=...
WEAK, STRONG = "deepseek/deepseek-chat", "anthropic/claude-sonnet-4-6"
weak, strong = WEAK, STRONG  # litellm ids, resolved at their first call
```
"""

# %%
from langchain_escalate.testing import ScriptedChatModel

WEAK, STRONG = "deepseek/deepseek-chat", "anthropic/claude-sonnet-4-6"

weak = ScriptedChatModel(
    model_name=WEAK,
    input_tokens_per_call=400,
    output_tokens_per_call=30,
    script=[
        "Paris.\nConfidence: 0.95",
        "The refund window is 14 days.\nConfidence: 0.35",
        "The refund window is 30 days for orders after 1 March 2026.",  # after the advice
    ],
)
strong = ScriptedChatModel(
    model_name=STRONG,
    input_tokens_per_call=600,
    output_tokens_per_call=60,
    script=["Policy 4.2 changed on 1 March 2026: refunds are accepted within 30 days."],
)

# %% [markdown]
"""
## The node with a confidence source

`confidence=ConfidenceConfig(sources=["verbalized"])` scores the weak model's
final replies; `DetectorConfig(low_confidence=0.5)` is the threshold. The
`Confidence:` line is for the detector only: the reply the graph keeps has
it stripped.
"""

# %%
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph

from langchain_escalate import (
    DetectorConfig,
    EscalationPolicy,
    EscalationState,
    create_escalating_node,
)
from langchain_escalate.confidence import ConfidenceConfig

node = create_escalating_node(
    weak,
    strong,
    detector=DetectorConfig(low_confidence=0.5),
    policy=EscalationPolicy(ladder=["escalate", "stop"]),
    confidence=ConfidenceConfig(sources=["verbalized"]),
)
builder = StateGraph(EscalationState)
builder.add_node("agent", node)
builder.add_edge(START, "agent")
graph = builder.compile(checkpointer=InMemorySaver())

for thread, question in [
    ("capital", "What is the capital of France?"),
    ("refund", "How long is the refund window for an order of 2 April 2026?"),
]:
    config = {"configurable": {"thread_id": thread}}
    result = graph.invoke({"messages": [("user", question)]}, config)
    print(f"{thread}: {result['messages'][-1].content}")
    for record in result.get("escalations", []):
        print(f"  {record['action']} {record['outcome']} {record['rule']}: {record['reason']}")

# %% [markdown]
"""
The sure answer passed with no cost beyond the weak call. The unsure one
fired `low_confidence`: the strong model advised and the weak model answered
again, right this time. But is 0.5 the right threshold? Too low and wrong
answers pass; too high and you pay the strong model for answers that were
right.

## RUNS.jsonl: labelled runs

Run your tasks once in a shadow evaluation (the weak model answers, and the
strong model answers too), grade both answers, and write one line per task:
whether each was right, what each cost, and the weak model's confidence.
`calibrate.runs_from_records(records, labels)` builds these lines from the
shadow run's `EscalationRecord`s and your labels; here we write twelve by hand.
"""

# %%
import json

LABELLED = [  # (confidence, weak right?, strong right?)
    (0.98, True, True), (0.95, True, True), (0.92, True, True), (0.90, False, True),
    (0.85, True, True), (0.80, True, True), (0.72, True, False), (0.65, False, True),
    (0.55, True, True), (0.45, False, True), (0.35, False, True), (0.20, False, False),
]  # fmt: skip
runs_file = workdir / "runs.jsonl"
with runs_file.open("w") as runs:
    for number, (confidence, weak_right, strong_right) in enumerate(LABELLED, 1):
        run = {
            "id": f"task-{number}",
            "weak": {"correct": weak_right, "cost": 0.0004, "confidence": confidence},
            "strong": {"correct": strong_right, "cost": 0.012},
        }
        runs.write(json.dumps(run) + "\n")
print(runs_file.read_text().splitlines()[0])

# %% [markdown]
"""
## `langchain-escalate calibrate`

For every threshold it computes the quality and cost of "escalate when the
confidence is below it", recommends the cheapest one that keeps
`--target-quality` of the always-strong quality, and compares with the
baselines (weak alone, strong alone, random routing at the same rate, an
oracle). In a shell: `langchain-escalate calibrate runs.jsonl` (add
`--format json`, `--holdout 0.3`, `--plot curve.png`). Exit code 0 means the
target was reached, 1 that no threshold reaches it.
"""

# %%
from langchain_escalate.cli import main

exit_code = main(["calibrate", str(runs_file), "--target-quality", "0.9"])
print("exit code", exit_code)

# %% [markdown]
"""
The same in Python, to put the recommendation into your configuration:
"""

# %%
from langchain_escalate.calibrate import calibrate, read_runs

calibration = calibrate(read_runs(runs_file), target_quality=0.9)
threshold = calibration.recommended.threshold
print(f"DetectorConfig(low_confidence={threshold})")

# %% [markdown]
"""
Log more runs before trusting a threshold: `--holdout 0.3` fits on 70% of
them and reports how the threshold does on the rest.
"""

# %%
import shutil

shutil.rmtree(workdir)
