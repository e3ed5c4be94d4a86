"""Overhead of the escalating node per step, against a bare model node, in the same run.

Both nodes call the same kind of scripted model (a ``ScriptedChatModel`` that
repeats a tool call with fresh ids and usage). Each step is what happens in a
real agent loop: the state holds the conversation plus the weak model's last
reply and the tool result that answered it; the node feeds the new messages to
the detector, calls the model, checks the reply and writes its progress.
The conversation is a sliding window of fixed length, so the figure is per
step at that length; 100 and 2,000 messages show that the overhead does not
grow with the conversation.

Run from the repository root: ``python -m benchmarks.node_overhead`` (``--steps``, ``--rounds``).
"""

from __future__ import annotations

import argparse
import itertools
import time
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableLambda

from langchain_escalate.detector import DetectorConfig
from langchain_escalate.node import create_escalating_node
from langchain_escalate.testing import ScriptedChatModel, tool_call

CONFIG: dict[str, Any] = {
    "configurable": {"thread_id": "bench"},
    "metadata": {"langgraph_node": "agent"},
}


CITIES = ("Paris", "Lyon", "Nice", "Lille", "Brest", "Dijon", "Metz", "Nancy", "Tours", "Reims")


def weak_model() -> ScriptedChatModel:
    """Searches a different city each call, as a healthy agent would."""
    calls = itertools.count()

    def step(messages: list[BaseMessage]) -> AIMessage:
        del messages
        city = CITIES[next(calls) % len(CITIES)]
        return AIMessage("", tool_calls=[tool_call("search", {"q": f"weather in {city}"})])

    return ScriptedChatModel(script=[step], repeat_last=True, model_name="weak-model")


def history(length: int) -> list[BaseMessage]:
    """A healthy conversation: varied searches with varied results (never stuck)."""
    messages: list[BaseMessage] = [HumanMessage("Plan a trip.", id="h0")]
    index = 0
    while len(messages) < length:
        call = tool_call("search", {"q": f"topic {index}"})
        messages.append(AIMessage("", tool_calls=[call], id=f"a{index}"))
        messages.append(
            ToolMessage(f"result {index}: {'x' * 40}", tool_call_id=call["id"], id=f"t{index}")
        )
        index += 1
    return messages[:length]


def tool_result(reply: AIMessage, step: int) -> ToolMessage:
    city = reply.tool_calls[0]["args"]["q"]
    return ToolMessage(f"Sunny in {city}.", tool_call_id=reply.tool_calls[0]["id"], id=f"r{step}")


class Loop:
    """One node driven through steps; the state slides so its length stays fixed."""

    def __init__(self, node: Any, length: int, *, with_progress: bool) -> None:
        self.node = node
        self.messages = history(length)
        self.with_progress = with_progress
        self.progress: dict[str, Any] = {}
        self.step = 0

    def state(self) -> dict[str, Any]:
        if self.with_progress:
            return {
                "messages": self.messages,
                "escalations": [],
                "escalation_progress": self.progress,
            }
        return {"messages": self.messages}

    def run(self, steps: int) -> float:
        # CPU time of this process: other processes on a shared machine do not count.
        started = time.process_time()
        for _ in range(steps):
            update = self.node.invoke(self.state(), CONFIG)
            reply = update["messages"][-1]
            self.progress = update.get("escalation_progress", self.progress)
            self.step += 1
            self.messages = [*self.messages[2:], reply, tool_result(reply, self.step)]
        return (time.process_time() - started) / steps


def bare_node() -> Any:
    model = weak_model()
    return RunnableLambda(lambda state: {"messages": [model.invoke(state["messages"])]})


def escalating_node() -> Any:
    # A healthy agent never ends its turn here: the turn-length rule is off so
    # every step takes the path of a step that is not stuck.
    detector = DetectorConfig(max_steps=None)
    return create_escalating_node(weak_model(), ScriptedChatModel(script=[]), detector=detector)


def measure(length: int, *, steps: int, rounds: int, with_progress: bool) -> tuple[float, float]:
    bare = Loop(bare_node(), length, with_progress=with_progress)
    ours = Loop(escalating_node(), length, with_progress=with_progress)
    bare.run(steps)  # warm up both (first calls build caches)
    ours.run(steps)
    bare_times, our_times = [], []
    for _ in range(rounds):  # interleaved, so both see the same machine load
        bare_times.append(bare.run(steps))
        our_times.append(ours.run(steps))
    # The fastest round is the one least disturbed (GC, cache misses, other work).
    return min(bare_times), min(our_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"per-step CPU time, best of {args.rounds} rounds x {args.steps} steps")
    header = ("state", "messages", "bare ms", "node ms", "overhead ms", "overhead %")
    print("{:<22} {:>8} {:>9} {:>9} {:>12} {:>11}".format(*header))
    for with_progress, label in ((True, "EscalationState"), (False, "MessagesState")):
        for length in (100, 2_000):
            bare, ours = measure(
                length, steps=args.steps, rounds=args.rounds, with_progress=with_progress
            )
            overhead = ours - bare
            print(
                f"{label:<22} {length:>8} {bare * 1e3:>9.3f} {ours * 1e3:>9.3f} "
                f"{overhead * 1e3:>12.3f} {overhead / bare * 100:>10.1f}%"
            )


if __name__ == "__main__":
    main()
