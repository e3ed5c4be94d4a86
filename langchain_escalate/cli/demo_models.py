"""The models ``demo`` can run on: scripted stand-ins, the local model, or real providers.

``demo --local`` runs the weak side on Gemma 3 270M served by llama.cpp on
loopback (``local_model``). That server has no tool-calling chat template for
Gemma, so ``JsonToolCaller`` does what small-model agents do: it writes the
conversation as a transcript, asks for the next step as JSON, and lets the
server's grammar constrain the reply to the JSON schema of "call one of the
bound tools" or "answer the customer". The model decides which, greedily; the
reply becomes an ``AIMessage`` with tool calls, so the escalating node, the
``ToolNode`` and the detector see what they see with any provider.
"""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from langchain_escalate.models import price_name
from langchain_escalate.testing import tool_call

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.runnables import Runnable

LOCAL_MODEL_ID = "openai/gemma-3-270m"
"""The local model as litellm reaches it (llama.cpp speaks the OpenAI API)."""

MAX_STRING = 48
"""Longest string the grammar lets the model write in a tool argument."""

MAX_ANSWER = 400
"""Longest answer to the customer the grammar allows."""

GRAMMAR_TYPES = {"number": "number", "integer": "integer", "boolean": "boolean"}
"""JSON Schema types the grammar writes as themselves; any other argument is a string."""


class MissingKeyError(RuntimeError):
    """A real model was asked for but its provider's API key is not set."""


def require_key(model_id: str, flag: str) -> None:
    """Fail with one line naming the env var a real model needs, when it is not set.

    Args:
        model_id: A model string (``provider:model`` or a litellm id).
        flag: The option that named it (``--weak``), for the message.

    Raises:
        MissingKeyError: The provider's key is not in the environment.
    """
    from langchain_escalate.cost import ensure_offline_price_map  # noqa: PLC0415 - imports litellm

    ensure_offline_price_map()
    import litellm  # noqa: PLC0415 - seconds to import; only a real-model demo pays it

    found = litellm.validate_environment(model=price_name(model_id))
    missing = list(found.get("missing_keys") or [])
    if missing:
        names = " and ".join(missing)
        msg = f"{flag} {model_id} needs {names} in the environment (not set)"
        raise MissingKeyError(msg)


def local_weak_model(api_base: str) -> JsonToolCaller:
    """The local Gemma 3 270M as an agent's weak model (greedy, grammar-constrained).

    Args:
        api_base: The local server's OpenAI-compatible base URL (loopback).

    Returns:
        A chat model that answers with tool calls chosen by the local model.
    """
    return JsonToolCaller(api_base=api_base, model_name=LOCAL_MODEL_ID)


class JsonToolCaller(BaseChatModel):
    """A chat model without tool calling, made to call tools through a JSON schema.

    It talks to llama.cpp's OpenAI-compatible endpoint directly: the request
    is one user message and a ``response_format`` whose JSON schema llama.cpp
    turns into a sampling grammar.

    Attributes:
        api_base: The server's base URL (``http://127.0.0.1:8765/v1``).
        model_name: The name replies carry in ``response_metadata`` (for pricing).
        max_tokens: Most tokens one reply may take.
        timeout_s: How long one reply may take.
        tools: The bound tools, as OpenAI tool schemas.
    """

    api_base: str
    model_name: str
    max_tokens: int = 120
    timeout_s: float = 300.0
    tools: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "json-tool-caller"

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Return a copy that may call ``tools`` (their schemas become the grammar)."""
        del tool_choice, kwargs
        schemas = [convert_to_openai_tool(tool)["function"] for tool in tools]
        return self.model_copy(update={"tools": schemas})

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        del stop, run_manager, kwargs
        body = {
            "model": self.model_name,
            "messages": [{"role": "user", "content": render_transcript(messages, self.tools)}],
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "grammar": grammar_for(self.tools, may_answer=_found_something(messages)),
            # The transcript only grows: the server reuses the prompt it already read.
            "cache_prompt": True,
        }
        reply = self._post(body)
        usage = reply.get("usage") or {}
        tokens_in, tokens_out = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        message = parse_step(
            str(reply["choices"][0]["message"].get("content") or ""), self.tools
        ).model_copy(
            update={
                "usage_metadata": {
                    "input_tokens": tokens_in,
                    "output_tokens": tokens_out,
                    "total_tokens": tokens_in + tokens_out,
                },
                "response_metadata": {"model_name": self.model_name},
            }
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - the loopback URL the demo started
            f"{self.api_base}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
            reply: dict[str, Any] = json.load(response)
        return reply


def render_transcript(messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]]) -> str:
    """Write the conversation as one prompt: instructions, tools, then what happened.

    Args:
        messages: The conversation, as the escalating node passes it.
        tools: The bound tools' OpenAI schemas.

    Returns:
        The prompt; it grows only at the end as the conversation does.
    """
    lines: list[str] = []
    for message in messages:
        text = str(message.text).strip()
        if isinstance(message, SystemMessage):
            lines += [text, "", "Tools:", *(_describe(tool) for tool in tools), ""]
            lines.append(
                "Reply with one tool call, written as tool_name(argument, ...), "
                'or with answer("...") to answer the customer.'
            )
        elif isinstance(message, HumanMessage):
            lines += ["", f"Customer: {text}"]
        elif isinstance(message, ToolMessage):
            lines.append(f"Result: {text}")
        elif isinstance(message, AIMessage) and message.tool_calls:
            lines.extend(
                f"Call: {render_call(call['name'], call['args'])}" for call in message.tool_calls
            )
        elif text:
            lines.append(f"Note: {text}")
    return "\n".join(lines)


def _describe(tool: dict[str, Any]) -> str:
    arguments = ", ".join(tool.get("parameters", {}).get("properties", {}))
    return f"- {tool['name']}({arguments}): {tool.get('description', '')}"


def grammar_for(tools: Sequence[dict[str, Any]], *, may_answer: bool) -> str:
    """The llama.cpp grammar (GBNF) of the next step: one tool call, or an answer.

    A call is written as in Python, ``find_booking("AB12CD")``, with JSON
    literals for arguments, in their schema's order: a small model spends its
    few tokens on the choice, not on JSON keys and indentation. An answer is
    ``answer("...")``.

    Args:
        tools: The bound tools' OpenAI schemas (string, number, integer and
            boolean arguments; others are written as strings).
        may_answer: Whether answering the customer is a choice yet.

    Returns:
        The grammar's text.
    """
    rules = [f"call{number} ::= {_call_rule(tool)}" for number, tool in enumerate(tools)]
    choices = [f"call{number}" for number in range(len(tools))]
    if may_answer or not tools:
        rules.append(f'answer ::= "answer(\\"" char{{1,{MAX_ANSWER}}} "\\")"')
        choices.append("answer")
    return "\n".join(
        [
            f"root ::= {' | '.join(choices)}",
            *rules,
            f'string ::= "\\"" char{{1,{MAX_STRING}}} "\\""',
            'char ::= [^"\\\\\\x00-\\x1F]',
            'number ::= "-"? [0-9]{1,7} ("." [0-9]{1,2})?',
            'integer ::= "-"? [0-9]{1,9}',
            'boolean ::= "true" | "false"',
        ]
    )


def _call_rule(tool: dict[str, Any]) -> str:
    properties = tool.get("parameters", {}).get("properties", {})
    arguments = ' ", " '.join(
        GRAMMAR_TYPES.get(spec.get("type"), "string") for spec in properties.values()
    )
    return f'"{tool["name"]}(" {arguments} ")"' if arguments else f'"{tool["name"]}()"'


def render_call(name: str, args: dict[str, Any]) -> str:
    """Write a tool call as the grammar does: ``name("value", 12.5)``.

    Args:
        name: The tool's name.
        args: Its arguments, in the tool's order.

    Returns:
        The call as text.
    """
    return f"{name}({', '.join(json.dumps(value) for value in args.values())})"


def _found_something(messages: Sequence[BaseMessage]) -> bool:
    # An agent that answers from what it found: the answer becomes a choice
    # once a tool has answered without an error.
    return any(
        isinstance(message, ToolMessage)
        and message.status != "error"
        and not str(message.text).lstrip().lower().startswith("error")
        for message in messages
    )


def parse_step(text: str, tools: Sequence[dict[str, Any]]) -> AIMessage:
    """Turn the model's ``name(args...)`` into a tool call, ``answer("...")`` into a reply.

    Args:
        text: What the model wrote (the grammar's language).
        tools: The bound tools' OpenAI schemas, to name the arguments.

    Returns:
        An ``AIMessage`` with one tool call, or with the answer as its text;
        text cut off by ``max_tokens`` is returned as it is.
    """
    name, paren, rest = text.strip().partition("(")
    try:
        values = json.loads(f"[{rest[:-1]}]") if paren and rest.endswith(")") else None
    except json.JSONDecodeError:
        values = None
    if values is None:
        return AIMessage(text)
    if name == "answer" and values:
        return AIMessage(str(values[0]))
    spec = next((tool for tool in tools if tool["name"] == name), None)
    if spec is None:
        return AIMessage(text)
    names = list(spec.get("parameters", {}).get("properties", {}))
    return AIMessage("", tool_calls=[tool_call(name, dict(zip(names, values, strict=False)))])
