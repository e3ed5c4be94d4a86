"""Recorded conversations to LangChain messages.

Two shapes are read, item by item, so one list may even mix them:

- LangChain's ``messages_to_dict`` output: ``{"type": "ai", "data": {...}}``
  (and the flat ``{"type": "ai", "content": ...}`` form ``convert_to_messages`` accepts);
- the OpenAI chat format: ``{"role": "assistant", "content": ..., "tool_calls":
  [{"id", "type": "function", "function": {"name", "arguments"}}]}`` and
  ``{"role": "tool", "tool_call_id", "content"}``.

A tool call whose ``arguments`` are not valid JSON is what the model sent, not
a bad file: it becomes an invalid tool call (a failure for the detector).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_messages,
    messages_from_dict,
)
from langchain_core.messages.tool import invalid_tool_call, tool_call
from pydantic import ValidationError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_core.messages import InvalidToolCall, ToolCall

_OPENAI_ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class MessageFormatError(ValueError):
    """A recorded message that cannot be read.

    Attributes:
        index: Position of the message in its conversation (0 = first).
        why: What is wrong with it, in one line.
    """

    def __init__(self, index: int, why: str) -> None:
        """Create the error for message ``index``."""
        self.index = index
        self.why = why
        super().__init__(f"message {index}: {why}")


def messages_from_dicts(items: Sequence[Any]) -> list[BaseMessage]:
    """Turn recorded message dicts into LangChain messages.

    Args:
        items: Message dicts, in LangChain ``messages_to_dict`` form or OpenAI chat format.

    Returns:
        The messages, in order.

    Raises:
        MessageFormatError: When an item has an unknown shape or invalid fields;
            it names the item's index.

    Example:
        >>> messages = messages_from_dicts([
        ...     {"role": "user", "content": "Where is my order?"},
        ...     {"role": "assistant", "content": None, "tool_calls": [
        ...         {"id": "c1", "type": "function",
        ...          "function": {"name": "track", "arguments": '{"order": 7}'}}]},
        ...     {"role": "tool", "tool_call_id": "c1", "content": "in transit"},
        ... ])
        >>> [type(m).__name__ for m in messages], messages[1].tool_calls[0]["args"]
        (['HumanMessage', 'AIMessage', 'ToolMessage'], {'order': 7})
    """
    return [_message_from_dict(item, index) for index, item in enumerate(items)]


def check_tool_answers(messages: Sequence[BaseMessage]) -> None:
    """Check that every tool message answers a tool call made before it and not yet answered.

    Args:
        messages: The conversation.

    Raises:
        MessageFormatError: At the first tool message that answers no open call.
    """
    open_ids: set[str] = set()
    open_without_id = 0
    for index, message in enumerate(messages):
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                if call.get("id") is None:
                    open_without_id += 1
                else:
                    open_ids.add(str(call["id"]))
        elif isinstance(message, ToolMessage):
            if message.tool_call_id in open_ids:
                open_ids.discard(message.tool_call_id)
            elif open_without_id:
                open_without_id -= 1
            else:
                why = (
                    "tool message answers no open tool call "
                    f"(tool_call_id {message.tool_call_id!r}); each tool message must follow "
                    "the AI message that made the call"
                )
                raise MessageFormatError(index, why)


def _message_from_dict(item: Any, index: int) -> BaseMessage:
    if not isinstance(item, dict):
        why = f"expected a message object, got {_json_type(item)}"
        raise MessageFormatError(index, why)
    try:
        if "role" in item:
            return _from_openai(item, index)
        if "type" in item and "data" in item:
            return messages_from_dict([item])[0]
        if "type" in item or item.get("lc") == 1:
            return convert_to_messages([item])[0]
    except MessageFormatError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, NotImplementedError) as error:
        raise MessageFormatError(index, _one_line(error)) from None
    why = (
        f"unknown message shape with keys {sorted(item)[:6]}: expected 'role' (OpenAI chat format) "
        "or 'type' and 'data' (LangChain messages_to_dict)"
    )
    raise MessageFormatError(index, why)


def _from_openai(item: dict[str, Any], index: int) -> BaseMessage:
    role = item["role"]
    content = _openai_content(item.get("content"), index)
    name = item.get("name")
    if role in {"system", "developer"}:
        return SystemMessage(content, name=name)
    if role == "user":
        return HumanMessage(content, name=name)
    if role == "assistant":
        tool_calls, invalid = _openai_tool_calls(item.get("tool_calls") or [], index)
        metadata = dict(item.get("response_metadata") or {})
        if "logprobs" in item and "logprobs" not in metadata:
            metadata["logprobs"] = item["logprobs"]
        return AIMessage(
            content,
            name=name,
            tool_calls=tool_calls,
            invalid_tool_calls=invalid,
            response_metadata=metadata,
        )
    if role == "tool":
        call_id = item.get("tool_call_id")
        if not isinstance(call_id, str):
            why = "tool message without a string 'tool_call_id'"
            raise MessageFormatError(index, why)
        status = "error" if item.get("status") == "error" else "success"
        return ToolMessage(content, tool_call_id=call_id, name=name, status=status)
    if role == "function":
        return FunctionMessage(content=content, name=str(name or ""))
    why = f"unknown role {role!r}: expected one of {', '.join(_OPENAI_ROLES)}"
    raise MessageFormatError(index, why)


def _openai_content(content: Any, index: int) -> str | list[str | dict[str, Any]]:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(part, (str, dict)) for part in content):
        return content
    why = f"'content' must be a string, null or a list of content parts, got {_json_type(content)}"
    raise MessageFormatError(index, why)


def _openai_tool_calls(raw: Any, index: int) -> tuple[list[ToolCall], list[InvalidToolCall]]:
    if not isinstance(raw, list):
        why = f"'tool_calls' must be a list, got {_json_type(raw)}"
        raise MessageFormatError(index, why)
    calls: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for position, call in enumerate(raw):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            why = (
                f"tool_calls[{position}] has no function name: "
                "expected {'function': {'name': ..., 'arguments': ...}}"
            )
            raise MessageFormatError(index, why)
        call_id = call.get("id")
        call_id = call_id if isinstance(call_id, str) else None
        arguments = function.get("arguments")
        args = _parse_arguments(arguments)
        if args is None:
            text = arguments if isinstance(arguments, str) else json.dumps(arguments)
            error = "arguments are not a JSON object"
            invalid.append(
                invalid_tool_call(name=function["name"], args=text, id=call_id, error=error)
            )
        else:
            calls.append(tool_call(name=function["name"], args=args, id=call_id))
    return calls, invalid


def _parse_arguments(arguments: Any) -> dict[str, Any] | None:
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str):
        return None
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _one_line(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "message"
        return f"{where}: {first['msg']}"
    text = " ".join(str(error).split())
    if isinstance(error, KeyError):
        text = f"missing key {text}"
    return text[:200] or type(error).__name__


def _json_type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }
    return names.get(type(value), "a number")
