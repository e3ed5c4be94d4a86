"""The litellm path end to end over recorded HTTP from a real local model server.

Each test compares what langchain-escalate reads from a ``ChatLiteLLM`` reply
with the HTTP body the server sent (as the cassette holds it), so the same
assertions hold when replaying, recording, or running live (see conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from node_scenarios import (
    PRICES,
    TASK,
    TOOLS,
    agent_graph,
    user_input,
    weak_model,
    weak_script,
)
from pydantic import BaseModel, ConfigDict, Field

from langchain_escalate.cost import (
    ModelPrice,
    PriceBook,
    UnknownPriceWarning,
    cache_read_tokens_of,
    usage_of,
)
from langchain_escalate.models import ModelRef
from langchain_escalate.node import create_escalating_node
from langchain_escalate.policy import EscalationPolicy

if TYPE_CHECKING:
    from .conftest import Recording

# Recording or running live waits for a CPU-bound model on a shared machine.
pytestmark = pytest.mark.timeout(600)

CASSETTES = Path(__file__).resolve().parents[1] / "cassettes"

PRICED_ID = "openai/gpt-4o-mini"
"""A model in litellm's bundled price map; with ``api_base`` the local server answers for it."""

LOCAL_ID = "openai/gemma-3-270m"
"""The local model under its own name: litellm has no price for it, configuration does."""

LOCAL_PRICE = ModelPrice(input=0.10, output=0.40)

PROMPT = "Name one prime number."

ModelFactory = Callable[..., ModelRef]


def test_invoke_reports_the_recorded_usage_at_litellms_price(
    cassette: Recording, local_model: ModelFactory
) -> None:
    reply = local_model(PRICED_ID, max_tokens=16).get().invoke(PROMPT)

    [body] = cassette.replies()
    assert reply.content == body["choices"][0]["message"]["content"]
    assert usage_of(reply) == _usage_in(body)
    _assert_priced_as_litellm_prices_it(reply, body)


async def test_ainvoke_replays_through_litellms_async_transport(
    cassette: Recording, local_model: ModelFactory
) -> None:
    import httpx  # noqa: PLC0415
    import litellm  # noqa: PLC0415 - seconds to import
    from litellm.llms.custom_httpx.aiohttp_transport import LiteLLMAiohttpTransport  # noqa: PLC0415

    # litellm sends async calls through its own aiohttp transport unless told
    # to use httpx's; whichever it uses, vcr must be what serves the reply.
    transported: list[str] = []
    aiohttp_disabled = litellm.disable_aiohttp_transport or (
        os.environ.get("DISABLE_AIOHTTP_TRANSPORT", "").lower() == "true"
    )

    # The spies come off while the cassette is still open: vcr's stub sits on the
    # transport, and a spy undone after vcr unpatched would put the stub back for good.
    with (
        _spy_on(LiteLLMAiohttpTransport, "aiohttp", transported),
        _spy_on(httpx.AsyncHTTPTransport, "httpx", transported),
    ):
        reply = await local_model(PRICED_ID, max_tokens=16).get().ainvoke(PROMPT)

    [body] = cassette.replies()
    assert transported == ["httpx" if aiohttp_disabled else "aiohttp"]
    assert reply.content == body["choices"][0]["message"]["content"]
    assert usage_of(reply) == _usage_in(body)
    _assert_priced_as_litellm_prices_it(reply, body)


def test_configured_price_covers_a_model_litellm_does_not_know(
    cassette: Recording, local_model: ModelFactory
) -> None:
    import litellm  # noqa: PLC0415 - seconds to import

    reply = local_model(LOCAL_ID, max_tokens=16).get().invoke(PROMPT)

    [body] = cassette.replies()
    tokens_in, tokens_out = usage_of(reply)
    assert (tokens_in, tokens_out) == _usage_in(body)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownPriceWarning)
        assert PriceBook().cost_usd(LOCAL_ID, tokens_in, tokens_out) is None
    configured = PriceBook({LOCAL_ID: LOCAL_PRICE}).cost_usd(LOCAL_ID, tokens_in, tokens_out)
    litellms = litellm.completion_cost(
        completion_response=litellm.ModelResponse(**body),
        model=LOCAL_ID,
        custom_llm_provider="openai",
        custom_cost_per_token={
            "input_cost_per_token": LOCAL_PRICE.input / 1_000_000,
            "output_cost_per_token": LOCAL_PRICE.output / 1_000_000,
        },
    )
    assert configured is not None
    assert configured > 0
    assert configured == pytest.approx(litellms, rel=1e-9)


def test_cached_prompt_tokens_are_priced_at_litellms_cache_read_rate(
    cassette: Recording, local_model: ModelFactory
) -> None:
    # The server reuses its prompt cache only when a request asks for it; the
    # second, identical request then reports cached prompt tokens.
    model = local_model(
        PRICED_ID, max_tokens=8, model_kwargs={"extra_body": {"cache_prompt": True}}
    ).get()
    prompt = "List three colours of the rainbow."

    model.invoke(prompt)
    reply = model.invoke(prompt)

    body = cassette.replies()[-1]
    cached = body["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached > 0
    assert usage_of(reply) == _usage_in(body)
    assert cache_read_tokens_of(reply) == cached
    _assert_priced_as_litellm_prices_it(reply, body)
    # The discount is real: the same tokens, none of them cached, cost more.
    discounted = PriceBook().cost_usd(PRICED_ID, *usage_of(reply), cache_read_tokens=cached)
    at_full_rate = PriceBook().cost_usd(PRICED_ID, *usage_of(reply))
    assert _known(discounted) < _known(at_full_rate)


class Diagnosis(BaseModel):
    """A schema a base model meets only when the server constrains its sampling."""

    model_config = ConfigDict(extra="forbid")

    problem: str = Field(max_length=60)
    next_step: str = Field(max_length=60)
    confident: bool


def test_json_schema_response_format_makes_the_base_model_answer_in_schema(
    cassette: Recording, local_model: ModelFactory
) -> None:
    structured = (
        local_model(LOCAL_ID, max_tokens=128)
        .get()
        .with_structured_output(Diagnosis, method="json_schema", include_raw=True)
    )

    result = structured.invoke(
        "The search tool failed three times with the same timeout. "
        "Diagnose the problem and give the next step, as JSON."
    )

    [request] = cassette.requests()
    [body] = cassette.replies()
    assert request["response_format"]["type"] == "json_schema"
    assert isinstance(result, dict)
    assert result["parsing_error"] is None
    assert isinstance(result["parsed"], Diagnosis)
    content = body["choices"][0]["message"]["content"]
    assert Diagnosis.model_validate_json(content) == result["parsed"]


def test_cassettes_hold_no_credentials(api_key: str) -> None:
    cassettes = sorted(CASSETTES.glob("*.yaml"))
    assert cassettes, f"no cassettes in {CASSETTES}: record them with `make cassettes`"
    for path in cassettes:
        text = path.read_text().lower()
        for secret in (api_key.lower(), "authorization", "api-key", "api_key", "bearer"):
            assert secret not in text, f"{path.name} contains {secret!r}"


@contextlib.contextmanager
def _spy_on(transport: type[Any], name: str, calls: list[str]) -> Iterator[None]:
    own = "handle_async_request" in vars(transport)
    real_handle = transport.handle_async_request

    async def handle(self: Any, request: Any) -> Any:
        calls.append(name)
        return await real_handle(self, request)

    transport.handle_async_request = handle  # type: ignore[method-assign]
    try:
        yield
    finally:
        if own:
            transport.handle_async_request = real_handle  # type: ignore[method-assign]
        else:
            del transport.handle_async_request


def _known(usd: float | None) -> float:
    assert usd is not None
    return usd


def _usage_in(body: dict[str, Any]) -> tuple[int, int]:
    return (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"])


def _assert_priced_as_litellm_prices_it(reply: BaseMessage, body: dict[str, Any]) -> None:
    import litellm  # noqa: PLC0415 - seconds to import

    assert isinstance(reply, AIMessage)
    ours = PriceBook().cost_usd(
        PRICED_ID, *usage_of(reply), cache_read_tokens=cache_read_tokens_of(reply)
    )
    litellms = litellm.completion_cost(
        completion_response=litellm.ModelResponse(**body),
        model=PRICED_ID,
        custom_llm_provider="openai",
    )
    assert ours is not None
    assert ours > 0
    assert ours == pytest.approx(litellms, rel=1e-9)
    # The figure litellm computed itself during the call, as langchain-litellm reports it.
    assert reply.response_metadata["response_cost"] == pytest.approx(ours, rel=1e-9)


def test_escalating_node_records_the_strong_replys_tokens_and_cost(
    cassette: Recording, local_model: ModelFactory
) -> None:
    import litellm  # noqa: PLC0415 - seconds to import

    # Escalate at the first firing (no nudge first): a short briefing keeps the
    # recording quick on a CPU; the weak model then follows its script to the end.
    weak = weak_model(weak_script(failures=3))
    strong = local_model(PRICED_ID, max_tokens=24)
    policy = EscalationPolicy(ladder=["escalate", "stop"], mode="advise")
    node = create_escalating_node(weak, strong, tools=TOOLS, policy=policy, prices=PRICES)
    graph = agent_graph(node).compile(checkpointer=InMemorySaver())

    result = graph.invoke(user_input(), {"configurable": {"thread_id": "replay"}})

    [request] = cassette.requests()
    [body] = cassette.replies()
    assert TASK in request["messages"][-1]["content"]  # the briefing went over the wire
    escalation = next(r for r in result["escalations"] if r["action"] == "escalate")
    assert escalation["outcome"] == "advised"
    assert escalation["model"] == PRICED_ID
    assert (escalation["tokens_in"], escalation["tokens_out"]) == _usage_in(body)
    litellms = litellm.completion_cost(
        completion_response=litellm.ModelResponse(**body),
        model=PRICED_ID,
        custom_llm_provider="openai",
    )
    assert escalation["cost_usd"] == pytest.approx(litellms, rel=1e-9)
    advice = body["choices"][0]["message"]["content"].strip()
    assert any(advice in str(m.content) for m in weak.calls[-1])
    assert result["messages"][-1].content == "The 2023 total is 42 MEUR."
