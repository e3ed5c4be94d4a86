"""The agent of ``langchain-escalate demo``: a refund task, a weak model that gets stuck, the bill.

A real LangGraph agent (``StateGraph`` with the escalating node, a ``ToolNode``,
``tools_condition`` and an ``InMemorySaver`` checkpointer) handles an airline
refund. The customer gives an e-ticket number where the booking tool wants a
booking reference, and the weak model keeps retrying the lookup: the detector
fires, the ladder nudges, then escalates; the strong model's help gets the weak
model through the task. ``run_demo`` runs it and collects the story step by
step, the escalation records from state and the cost summary
(``summarize_run``); ``cli/demo.py`` prints them.

The two models are ``ScriptedChatModel`` stand-ins named after real models, so
the demo runs offline without an API key; the prices are litellm's real price
map, and each reply's tokens are estimated from the text the model read and
wrote. litellm is imported only to price the run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langchain_escalate.cost import PriceBook, RunSummary, format_usd, summarize_run
from langchain_escalate.detector import DetectorConfig
from langchain_escalate.merge import LADDER_KEY
from langchain_escalate.node import create_escalating_node
from langchain_escalate.policy import EscalationPolicy, Mode
from langchain_escalate.records import RECORD_KEY, EscalationState, records_of
from langchain_escalate.testing import ScriptedChatModel, tool_call

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph.state import CompiledStateGraph

    from langchain_escalate.models import ModelRef

WEAK_MODEL = "deepseek/deepseek-chat"
STRONG_MODEL = "anthropic/claude-sonnet-4-6"
CHARS_PER_TOKEN = 4
"""How the scripted models estimate token counts from text (a common rule of thumb)."""

ADVICE_HEADER = "Advice from a senior reviewer:"
"""How the escalation engine introduces the strong model's advice (told without it)."""

REAL_MODEL_MAX_STEPS = 12
"""A real weak model's calls in one turn before ``max_steps`` fires (scripted runs keep 100)."""

THREAD_ID = "demo-refund"
TICKET_NUMBER = "220-4471938265"
BOOKING_REFERENCE = "QX7K2M"
FARE_EUR = 412.50

SYSTEM_PROMPT = (
    "You are the refund assistant of a European airline. Use the tools to find the "
    "customer's booking, check that it is eligible, and issue refunds. Policy: when the "
    "airline cancelled a flight, the passenger gets the full fare back to the original means "
    "of payment (EU Regulation 261/2004, article 8); when the passenger cancelled, only taxes "
    "are refunded. Never refund more than the fare paid. Answer the customer politely and "
    "state the refund amount and reference."
)
TASK = (
    f"Hello, my flight LH 1234 on 20 November 2026 was cancelled and I want my money back. "
    f"My ticket number is {TICKET_NUMBER}. Thank you, Maria Silva"
)
ADVICE = (
    f"{TICKET_NUMBER} is an e-ticket number, not a booking reference: find_booking only "
    "accepts the 6-character reference. Call search_bookings(last_name='Silva', "
    "flight_date='2026-11-20') to get it, then find_booking with that reference. The airline "
    f"cancelled the flight, so issue_refund for the full fare (EUR {FARE_EUR:.2f})."
)
FINAL_ANSWER = (
    f"Dear Ms Silva, your flight LH 1234 was cancelled by us, so you are entitled to the full "
    f"fare. I have refunded EUR {FARE_EUR:.2f} to your original card (refund RF-20561, booking "
    f"{BOOKING_REFERENCE}). It should reach you within 7 days."
)

_BOOKING = {
    "reference": BOOKING_REFERENCE,
    "passenger": "Maria Silva",
    "flight": "LH 1234",
    "date": "2026-11-20",
    "status": "cancelled by airline",
    "fare_eur": FARE_EUR,
    "ticket": TICKET_NUMBER,
}


# -- the tools: plain Python, one of which fails until called correctly -------


@tool
def find_booking(reference: str) -> str:
    """Look a booking up by its 6-character booking reference (PNR), e.g. 'AB12CD'."""
    if reference.strip().upper() != BOOKING_REFERENCE:
        return f"Error: no booking with reference {reference!r}."
    return json.dumps(_BOOKING)


@tool
def search_bookings(last_name: str, flight_date: str) -> str:
    """Find booking references by the passenger's last name and the flight date (YYYY-MM-DD)."""
    if last_name.strip().lower() == "silva" and flight_date == _BOOKING["date"]:
        return f"1 booking: {BOOKING_REFERENCE} (Maria Silva, LH 1234, {flight_date})"
    return f"Error: no booking for {last_name!r} on {flight_date!r}."


@tool
def issue_refund(reference: str, amount_eur: float) -> str:
    """Refund a booking to the original means of payment."""
    if reference != BOOKING_REFERENCE:
        return f"Error: no booking with reference {reference!r}."
    if amount_eur > FARE_EUR:
        return f"Error: {amount_eur:.2f} exceeds the fare paid ({FARE_EUR:.2f})."
    return f"Refund RF-20561 of EUR {amount_eur:.2f} issued for booking {reference}."


TOOLS = [find_booking, search_bookings, issue_refund]


# -- what the run produced ----------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One line of the story: who did what.

    Attributes:
        actor: ``weak``, ``tool``, ``detector``, ``ladder``, ``strong`` or ``graph``.
        text: What happened, for people.
    """

    actor: str
    text: str

    def to_dict(self) -> dict[str, str]:
        """Return the JSON-ready dict."""
        return {"actor": self.actor, "text": self.text}


@dataclass(frozen=True)
class DemoRun:
    """Everything the demo shows: the setting, the story, the records, the cost.

    Attributes:
        task: What the customer wrote.
        mode: The escalation mode used.
        ladder: The policy's rungs, in order.
        weak_model: The weak model's name (for a stand-in, the model it is named after).
        strong_model: The strong model's name (likewise).
        weak_source: ``scripted``, ``local`` (the local model) or ``provider`` (a real API).
        strong_source: ``scripted`` or ``provider``.
        ended: ``answered``, ``stopped`` (the ladder's ``stop`` rung) or
            ``interrupted`` (the ``human`` rung: ``invoke`` returned ``__interrupt__``).
        prices: USD per 1M tokens in and out, per model, from litellm's price map.
        chars_per_token: How the scripted models estimate their token counts.
        steps: What happened, in order.
        records: Every ``EscalationRecord`` (as dicts) the node wrote to ``state["escalations"]``.
        summary: What the run cost, and what it would have cost on the strong model alone.
        answer: The agent's final reply to the customer.
        weak_calls: Calls the weak model answered.
        strong_calls: Calls the strong model answered.
    """

    task: str
    mode: Mode
    ladder: tuple[str, ...]
    weak_model: str
    strong_model: str
    weak_source: Source
    strong_source: Source
    ended: str
    prices: dict[str, tuple[float | None, float | None]]
    chars_per_token: int
    steps: list[Step]
    records: list[dict[str, Any]]
    summary: RunSummary
    answer: str
    weak_calls: int
    strong_calls: int

    def to_dict(self) -> dict[str, Any]:
        """Return the ``--format json`` object (the shape ``docs/demo.md`` documents)."""
        return {
            "task": self.task,
            "mode": self.mode,
            "ladder": list(self.ladder),
            "models": {
                "weak": self.weak_model,
                "strong": self.strong_model,
                "scripted": self.weak_source == self.strong_source == "scripted",
                "weak_source": self.weak_source,
                "strong_source": self.strong_source,
                "prices_usd_per_1m_tokens": {
                    model: {"input": per_input, "output": per_output}
                    for model, (per_input, per_output) in self.prices.items()
                },
            },
            "steps": [step.to_dict() for step in self.steps],
            "answer": self.answer,
            "ended": self.ended,
            "weak_calls": self.weak_calls,
            "strong_calls": self.strong_calls,
            "records": self.records,
            "summary": self.summary.to_dict(),
        }


@dataclass(frozen=True)
class DemoModels:
    """The two models a demo runs on, and how to name, label and price them.

    Attributes:
        weak: The weak model.
        strong: The strong model (a chat model, or a ``ModelRef`` built at first use).
        weak_name: The weak model's name in the story and the bill.
        strong_name: The strong model's name likewise.
        weak_source: ``scripted``, ``local`` or ``provider``.
        strong_source: ``scripted`` or ``provider``.
        prices: Prices for models litellm's map lacks (the local model costs nothing).
    """

    weak: BaseChatModel | ModelRef
    strong: BaseChatModel | ModelRef
    weak_name: str
    strong_name: str
    weak_source: Source
    strong_source: Source
    prices: PriceBook = field(default_factory=PriceBook)

    @property
    def scripted(self) -> bool:
        """Whether both models follow the demo's script."""
        return self.weak_source == self.strong_source == "scripted"


def scripted_models(mode: Mode = "advise") -> DemoModels:
    """Both models scripted, named after real ones: the offline demo with no key.

    Args:
        mode: The escalation mode the strong model's script is written for.

    Returns:
        The scripted weak and strong models.
    """
    weak = ScriptedChatModel(script=_weak_script(mode), model_name=WEAK_MODEL)
    return DemoModels(weak, stand_in_strong(mode), WEAK_MODEL, STRONG_MODEL, "scripted", "scripted")


def stand_in_strong(mode: Mode = "advise") -> ScriptedChatModel:
    """The strong model's scripted stand-in, named after ``STRONG_MODEL``.

    It answers as many escalations as come (the last step repeats), so it can
    stand beside a real weak model whose steps no script foresees.

    Args:
        mode: ``advise``: it gives the advice; ``takeover``: it makes the calls that solve the task.

    Returns:
        The stand-in.
    """
    return ScriptedChatModel(script=_strong_script(mode), model_name=STRONG_MODEL, repeat_last=True)


def run_demo(
    mode: Mode = "advise",
    *,
    models: DemoModels | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> DemoRun:
    """Run the refund agent once and collect what it did and what it cost.

    Args:
        mode: The escalation mode: ``advise`` or ``takeover``.
        models: The models to run on; both scripted (offline, no key) by default.
        on_step: Called with each step as it happens (a progress line for slow models).

    Returns:
        The story, the records from state, the final answer and the cost summary.

    Example:
        >>> run = run_demo("advise")
        >>> [(record["action"], record["rule"]) for record in run.records]
        [('nudge', 'repeated_action_error'), ('escalate', 'consecutive_failures')]
    """
    models = models or scripted_models(mode)
    policy, detector = _policy_for(models, mode)
    graph = _agent_graph(models, policy, detector)
    config: RunnableConfig = {"configurable": {"thread_id": THREAD_ID}}
    task = EscalationState(
        messages=[SystemMessage(SYSTEM_PROMPT), HumanMessage(TASK)],
        escalations=[],
        escalation_progress={},
    )
    names = (models.weak_name, models.strong_name)
    steps: list[Step] = []
    for node_name, update in _updates(graph.stream(task, config, stream_mode="updates")):
        for step in _narrate(node_name, update.get("messages") or [], policy, names):
            steps.append(step)
            if on_step is not None:
                on_step(step)

    snapshot = graph.get_state(config)
    state = snapshot.values
    records = list(state.get("escalations") or [])
    # The final state is enough: the message that replaced the pruned loop
    # carries what those weak calls cost.
    summary = summarize_run(
        state["messages"],
        weak_model=names[0],
        strong_model=names[1],
        prices=models.prices,
        records=records,
    )
    return DemoRun(
        task=TASK,
        mode=mode,
        ladder=policy.ladder,
        weak_model=names[0],
        strong_model=names[1],
        weak_source=models.weak_source,
        strong_source=models.strong_source,
        ended=_ending(snapshot.next, records),
        prices={model: _per_million(models.prices, model) for model in names},
        chars_per_token=CHARS_PER_TOKEN,
        steps=steps,
        records=records,
        summary=summary,
        answer=str(state["messages"][-1].text),
        weak_calls=sum(step.actor == "weak" for step in steps),
        strong_calls=sum(record["action"] == "escalate" for record in records),
    )


def _agent_graph(
    models: DemoModels, policy: EscalationPolicy, detector: DetectorConfig | None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The refund agent: the escalating node and a ToolNode, with a checkpointer."""
    node = create_escalating_node(
        models.weak,
        models.strong,
        tools=TOOLS,
        policy=policy,
        detector=detector,
        prices=models.prices.prices,
    )
    builder = StateGraph(EscalationState)
    builder.add_node("agent", node)
    builder.add_node("tools", ToolNode(TOOLS))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


def _policy_for(models: DemoModels, mode: Mode) -> tuple[EscalationPolicy, DetectorConfig | None]:
    if models.scripted:
        return EscalationPolicy(mode=mode), None  # the default ladder: nudge, escalate, human
    # A real model follows no script: end the run cleanly (stop, not a person)
    # and bound the weak model's calls, so a demo never runs away.
    policy = EscalationPolicy(mode=mode, ladder=["nudge", "escalate", "stop"])
    return policy, DetectorConfig(max_steps=REAL_MODEL_MAX_STEPS)


def _ending(pending: Sequence[str], records: Sequence[dict[str, Any]]) -> str:
    if pending:
        return "interrupted"
    if records and records[-1]["action"] == "stop":
        return "stopped"
    return "answered"


def _per_million(prices: PriceBook, model: str) -> tuple[float | None, float | None]:
    return prices.cost_usd(model, 1_000_000, 0), prices.cost_usd(model, 0, 1_000_000)


# -- the scripted models --------------------------------------------------------

Script = list[Callable[[list[BaseMessage]], AIMessage]]
Source = Literal["scripted", "local", "provider"]


def _weak_script(mode: Mode) -> Script:
    # Three identical lookups fire repeated_action_error (the nudge); three more
    # guesses at the number fire consecutive_failures (the escalation).
    stuck = [
        _calls(("find_booking", {"reference": TICKET_NUMBER})),
        _calls(("find_booking", {"reference": TICKET_NUMBER})),
        _calls(("find_booking", {"reference": TICKET_NUMBER})),
        _calls(("find_booking", {"reference": TICKET_NUMBER.replace("-", "")})),
        _calls(("find_booking", {"reference": TICKET_NUMBER.split("-")[1]})),
        _calls(("find_booking", {"reference": TICKET_NUMBER[-6:]})),
    ]
    if mode == "takeover":
        return [*stuck, _says(FINAL_ANSWER)]
    return [*stuck, *_solution(), _says(FINAL_ANSWER)]


def _strong_script(mode: Mode) -> Script:
    if mode == "takeover":
        return _solution()  # this step and the policy's 2 takeover steps
    return [_says(ADVICE)]


def _solution() -> Script:
    return [
        _calls(("search_bookings", {"last_name": "Silva", "flight_date": "2026-11-20"})),
        _calls(("find_booking", {"reference": BOOKING_REFERENCE})),
        _calls(("issue_refund", {"reference": BOOKING_REFERENCE, "amount_eur": FARE_EUR})),
    ]


def _calls(*calls: tuple[str, dict[str, Any]]) -> Callable[[list[BaseMessage]], AIMessage]:
    def answer(received: list[BaseMessage]) -> AIMessage:
        made = [tool_call(name, args) for name, args in calls]
        written = json.dumps([[name, args] for name, args in calls])
        return AIMessage("", tool_calls=made, usage_metadata=_usage(received, written))

    return answer


def _says(text: str) -> Callable[[list[BaseMessage]], AIMessage]:
    def answer(received: list[BaseMessage]) -> AIMessage:
        return AIMessage(text, usage_metadata=_usage(received, text))

    return answer


def _usage(received: Sequence[BaseMessage], written: str) -> dict[str, int]:
    """Estimate the call's usage from the text read and written, as a tokenizer would count it."""
    read = sum(len(str(message.text)) + _calls_length(message) for message in received)
    tokens_in = max(read // CHARS_PER_TOKEN, 1)
    tokens_out = max(len(written) // CHARS_PER_TOKEN, 1)
    return {
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "total_tokens": tokens_in + tokens_out,
    }


def _calls_length(message: BaseMessage) -> int:
    if not isinstance(message, AIMessage):
        return 0
    return sum(len(call["name"]) + len(json.dumps(call["args"])) for call in message.tool_calls)


# -- telling the story ----------------------------------------------------------


def _updates(chunks: Iterator[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for chunk in chunks:
        for node, update in chunk.items():
            if isinstance(update, dict):
                yield node, update


def _narrate(
    node: str, messages: Sequence[BaseMessage], policy: EscalationPolicy, names: tuple[str, str]
) -> list[Step]:
    steps: list[Step] = []
    removed = sum(isinstance(message, RemoveMessage) for message in messages)
    announced: set[int] = set()
    for message in messages:
        if isinstance(message, RemoveMessage):
            continue
        if RECORD_KEY in message.additional_kwargs:
            fired = (message.additional_kwargs.get(LADDER_KEY) or {}).get("fired")
            if fired is not None and fired not in announced:
                announced.add(fired)
                steps.extend(_narrate_firing(message, fired, policy))
            if removed:
                steps.append(
                    Step(
                        "graph",
                        f"pruned the loop ({removed} messages) from the weak model's context",
                    )
                )
                removed = 0
            steps.extend(_narrate_help(message, names[1]))
        elif isinstance(message, ToolMessage):
            steps.append(Step("tool", f"{message.name} -> {_shorten(str(message.text))}"))
        elif isinstance(message, AIMessage) and node == "agent":
            steps.append(_narrate_weak(message, names[0]))
    return steps


def _narrate_weak(message: AIMessage, weak: str) -> Step:
    if message.tool_calls:
        calls = ", ".join(_render_call(call["name"], call["args"]) for call in message.tool_calls)
        return Step("weak", f"{weak} calls {calls}")
    return Step("weak", f"{weak} answers the customer:\n{message.text}")


def _narrate_firing(message: BaseMessage, fired: int, policy: EscalationPolicy) -> list[Step]:
    """The detector's verdict and the rung the ladder chose (rungs that could not run first)."""
    record = message.additional_kwargs[RECORD_KEY]
    steps = [Step("detector", f"stuck: {record['rule']}\n{record['reason']}")]
    steps.extend(
        Step("ladder", f"rung '{attempt['action']}' could not run ({attempt['outcome']})")
        for attempt in records_of(message)[:-1]
    )
    ladder = " -> ".join(policy.ladder)
    steps.append(
        Step("ladder", f"firing {fired} of this turn: rung '{record['action']}' of {ladder}")
    )
    return steps


def _narrate_help(message: BaseMessage, strong: str) -> list[Step]:
    """What the rung added to the conversation."""
    record = message.additional_kwargs[RECORD_KEY]
    text = str(message.text)
    if record["action"] == "nudge":
        return [Step("ladder", f"free hint for the weak model:\n{text}")]
    if record["action"] != "escalate":  # human or stop
        return [Step("ladder", f"{record['action']}: {text}")]
    if isinstance(message, AIMessage):
        what = ", ".join(_render_call(c["name"], c["args"]) for c in message.tool_calls)
        return [Step("strong", f"{strong} takes over: {what or text} ({_cost(record)})")]
    if record.get("mode") == "takeover":
        return []  # the one-line summary of the pruned loop, already told
    advice = text.split(ADVICE_HEADER, 1)[-1].strip()
    return [
        Step(
            "strong",
            f"{strong} read the briefing and advised ({_cost(record)}):\n{advice}",
        )
    ]


def _render_call(name: str, args: dict[str, Any]) -> str:
    rendered = ", ".join(f"{key}={json.dumps(value)}" for key, value in args.items())
    return f"{name}({rendered})"


def _cost(record: dict[str, Any]) -> str:
    usd = format_usd(record.get("cost_usd"))
    return f"{record['tokens_in']} in / {record['tokens_out']} out, {usd}"


def _shorten(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
