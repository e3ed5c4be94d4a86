"""pydantic's validation errors, told to a person editing YAML.

pydantic says where (``loc``) and what (``type``, ``msg``, ``input``); the
line comes from the reader's marks, and a few error types get words that
fit YAML better: an unknown key names the nearest valid one, or the section
it belongs under; a bad choice names the nearest option.
"""

from __future__ import annotations

import re
from types import UnionType
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

from pydantic import BaseModel

from langchain_escalate.config.errors import ConfigIssue, Origin, YamlPath, did_you_mean, quote
from langchain_escalate.config.schema import ConfigFile

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from pydantic import ValidationError
    from pydantic_core import ErrorDetails

__all__ = ["explain"]


def explain(
    error: ValidationError, origin: Origin, written: Mapping[YamlPath, str]
) -> list[ConfigIssue]:
    """Return one issue per pydantic error, at its YAML path and line.

    Args:
        error: What ``model_validate`` raised.
        origin: The file and its line marks.
        written: For values taken from the environment, the text as written
            (``${LEDGER_URL}``): errors show that, never the value.

    Returns:
        The issues, the most specific error for each value only.
    """
    issues = []
    for details in _most_specific(error.errors()):
        loc: YamlPath = tuple(part for part in details["loc"] if part != "[key]")
        value = details.get("input")
        shown = f"{written[loc]!r} (from the environment)" if loc in written else quote(value)
        reword = _REWORDINGS.get(details["type"], _generic)
        issues.append(origin.issue(loc, reword(details, loc, shown)))
    return issues


def _most_specific(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    # pydantic reports a bad list item, then that the list is too short once
    # the item is dropped; only the first helps.
    locations = [tuple(details["loc"]) for details in errors]
    return [
        details
        for details, loc in zip(errors, locations, strict=True)
        if not any(len(other) > len(loc) and other[: len(loc)] == loc for other in locations)
    ]


def _generic(details: ErrorDetails, loc: YamlPath, shown: str) -> str:  # noqa: ARG001 - shared signature
    message = re.sub(r"^Input should be", "should be", details["msg"])
    return f"{'key ' if '[key]' in details['loc'] else ''}{message}, got {shown}"


def _not_one_of(details: ErrorDetails, loc: YamlPath, shown: str) -> str:  # noqa: ARG001
    expected = str(details.get("ctx", {}).get("expected", ""))
    options = re.findall(r"'([^']*)'", expected)
    return f"{shown} is not one of {expected}{did_you_mean(str(details.get('input')), options)}"


def _unknown_key(details: ErrorDetails, loc: YamlPath, shown: str) -> str:  # noqa: ARG001
    key, section = str(loc[-1]), _model_at(loc[:-1])
    if section is None:
        return f"unknown key {key!r}"
    # `model` first: it is the key people look for in a model's options.
    allowed = sorted(section.model_fields, key=lambda name: name != "model")
    owners = [
        name
        for name in allowed
        if (sub := _model_at((*loc[:-1], name))) and key in sub.model_fields
    ]
    hint = f" (it belongs under {owners[0]}:)" if owners else did_you_mean(key, allowed)
    return f"unknown key {key!r}{hint}; expected one of: {', '.join(allowed)}"


def _wrong_shape(details: ErrorDetails, loc: YamlPath, shown: str) -> str:  # noqa: ARG001
    if not loc:
        return (
            f"the top level must be a mapping with models, prices, defaults and nodes, got {shown}"
        )
    section = _model_at(loc)
    if section is not None and "model" in section.model_fields:
        return f"expected a model id or a mapping with model: and options, got {shown}"
    return f"expected a mapping (key: value lines), got {shown}"


def _wrong_form(details: ErrorDetails, loc: YamlPath, shown: str) -> str:  # noqa: ARG001
    section = _model_at(loc[:-1])
    field = section.model_fields.get(str(loc[-1])) if section else None
    expected = field.description if field and field.description else "a different value"
    return f"{shown} has the wrong form; expected {expected}"


def _model_at(loc: YamlPath) -> type[BaseModel] | None:
    """Return the pydantic model that validates the value at ``loc``, if one does."""
    annotation: Any = ConfigFile
    for part in (*loc, None):
        if get_origin(annotation) in {Union, UnionType}:  # `X | None`
            annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
        if part is None:
            break
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            annotation = field.annotation if field else None
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return annotation if is_model else None


_REWORDINGS: dict[str, Callable[[ErrorDetails, YamlPath, str], str]] = {
    "extra_forbidden": _unknown_key,
    "missing": lambda _d, loc, _s: f"missing required key {loc[-1]!r}",
    "literal_error": _not_one_of,
    "model_type": _wrong_shape,
    "dict_type": _wrong_shape,
    "model_attributes_type": _wrong_shape,
    "string_pattern_mismatch": _wrong_form,
    "tuple_type": lambda _d, _l, shown: f"expected a list ([a, b]), got {shown}",
    "list_type": lambda _d, _l, shown: f"expected a list ([a, b]), got {shown}",
    "too_short": lambda d, _l, _s: (
        f"expected at least {d.get('ctx', {}).get('min_length')} item(s), got none"
    ),
    # Our own validators' messages already name the value.
    "value_error": lambda d, _l, _s: d["msg"].removeprefix("Value error, "),
}
"""pydantic error types whose stock wording misleads a YAML author."""
