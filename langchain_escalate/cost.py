"""Token usage and dollar cost of model replies, and the cost summary of a run.

Prices come from two places, in this order: prices given in configuration
(``PriceBook(prices={...})``, for models litellm does not know such as
OpenRouter ids or a local server), then litellm's bundled price map, read
through litellm's own ``cost_per_token`` so a cost here always equals the one
litellm reports, cache reads and writes included. A model found in neither gives
``None`` and one warning, never a made-up number.

litellm is imported lazily (it takes seconds) and always offline: see
``ensure_offline_price_map``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, ConfigDict, Field

from langchain_escalate.records import EscalationRecord, record_of

if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "PRUNED_USAGE_KEY",
    "ModelPrice",
    "PriceBook",
    "RunSummary",
    "UnknownPriceWarning",
    "cache_read_tokens_of",
    "cache_write_tokens_of",
    "ensure_offline_price_map",
    "price_reply",
    "pruned_usage",
    "summarize_run",
    "usage_of",
]

logger = logging.getLogger(__name__)

OFFLINE_PRICE_MAP_ENV = "LITELLM_LOCAL_MODEL_COST_MAP"
"""litellm reads its bundled price map instead of fetching one when this is ``True``."""

TOKENS_PER_PRICE_UNIT = 1_000_000
"""Configured prices are USD per million tokens, as providers publish them."""

CACHE_WRITE_DEFAULT_FACTOR = 2.0
"""A configured price without ``cache_write`` charges cache writes at this many times ``input``.

The highest cache-write surcharge a provider publishes (Anthropic's one-hour
cache; its five-minute cache is 1.25x, OpenAI and DeepSeek charge none), so a
missing cache-write price never under-states a cost.
"""

PRUNED_USAGE_KEY = "escalation_pruned_usage"
"""``additional_kwargs`` key: the usage of the replies a loop pruning removed from state.

A list of ``{"id", "model", "tokens_in", "tokens_out", "cache_read",
"cache_write"}`` dicts, one per removed reply (see ``pruned_usage``), on the
message that summarizes the pruned loop; ``summarize_run`` counts them.
"""

_warned_models: set[str] = set()
_warned_lock = threading.Lock()


class UnknownPriceWarning(UserWarning):
    """A model's price is in neither the configuration nor litellm's price map."""


def ensure_offline_price_map() -> None:
    """Make litellm use its bundled price map, never a network fetch.

    litellm fetches its price map when first imported unless
    ``LITELLM_LOCAL_MODEL_COST_MAP`` is ``True``; every path of this package
    that imports litellm calls this first. A value the user set is kept.
    """
    os.environ.setdefault(OFFLINE_PRICE_MAP_ENV, "True")


class ModelPrice(BaseModel):
    """The price of a model litellm does not know, in USD per million tokens.

    A missing ``cache_read`` price charges cache reads at ``input``, a missing
    ``cache_write`` at ``CACHE_WRITE_DEFAULT_FACTOR`` times ``input``: a missing
    price never under-states a cost.

    Example:
        >>> ModelPrice(input=0.15, output=0.60).output
        0.6
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0, description="USD per 1M prompt tokens")
    output: float = Field(ge=0, description="USD per 1M completion tokens")
    cache_read: float | None = Field(
        default=None,
        ge=0,
        description="USD per 1M prompt tokens read from the prompt cache (default: input)",
    )
    cache_write: float | None = Field(
        default=None,
        ge=0,
        description="USD per 1M prompt tokens written to the prompt cache (default: 2 x input)",
    )

    def cost_usd(
        self,
        tokens_in: int,
        tokens_out: int,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float:
        """Return the USD cost of one call (cache reads and writes are among ``tokens_in``).

        Example:
            >>> ModelPrice(input=1.0, output=2.0, cache_read=0.1).cost_usd(
            ...     1_000_000, 0, cache_read_tokens=500_000
            ... )
            0.55
        """
        read, written = _cache_within(cache_read_tokens, cache_write_tokens, tokens_in)
        read_rate = self.input if self.cache_read is None else self.cache_read
        write_rate = (
            self.input * CACHE_WRITE_DEFAULT_FACTOR
            if self.cache_write is None
            else self.cache_write
        )
        priced_tokens = (
            (tokens_in - read - written) * self.input
            + read * read_rate
            + written * write_rate
            + tokens_out * self.output
        )
        return priced_tokens / TOKENS_PER_PRICE_UNIT


class PriceBook:
    """Prices by model id: configured ones first, then litellm's bundled map.

    Args:
        prices: Model id to price, for models litellm lacks or to override it.
            A key matches the model id exactly, or the id without its provider
            prefix (``"qwen2.5"`` also prices ``"openai/qwen2.5"``).

    Raises:
        pydantic.ValidationError: A price is malformed (negative, unknown key).

    Example:
        >>> book = PriceBook({"openai/qwen2.5": {"input": 0.1, "output": 0.4}})
        >>> book.cost_usd("openai/qwen2.5", 1_000_000, 500_000)
        0.3
    """

    def __init__(self, prices: Mapping[str, ModelPrice | dict[str, Any]] | None = None) -> None:
        """Validate the configured prices."""
        self._prices: dict[str, ModelPrice] = {
            name: price if isinstance(price, ModelPrice) else ModelPrice.model_validate(price)
            for name, price in (prices or {}).items()
        }

    @property
    def prices(self) -> Mapping[str, ModelPrice]:
        """The configured prices (litellm's map not included)."""
        return dict(self._prices)

    def cost_usd(
        self,
        model: str,
        tokens_in: int,
        tokens_out: int,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float | None:
        """Return the USD cost of one call, or ``None`` when the price is unknown.

        Args:
            model: A litellm model id (``"deepseek/deepseek-chat"``) or a configured name.
            tokens_in: Prompt tokens, cache reads and writes included (LangChain's convention).
            tokens_out: Completion tokens.
            cache_read_tokens: How many of ``tokens_in`` were read from the prompt cache.
            cache_write_tokens: How many of ``tokens_in`` were written to the prompt cache.

        Returns:
            The cost in USD; ``None`` (with one ``UnknownPriceWarning`` per model
            per process) when neither the configuration nor litellm has the model.

        Example:
            >>> PriceBook().cost_usd("deepseek/deepseek-chat", 0, 0)
            0.0
        """
        configured = self._configured(model)
        if configured is not None:
            return configured.cost_usd(
                tokens_in,
                tokens_out,
                cache_read_tokens=cache_read_tokens,
                cache_write_tokens=cache_write_tokens,
            )
        read, written = _cache_within(cache_read_tokens, cache_write_tokens, tokens_in)
        cost = _litellm_cost(model, tokens_in, tokens_out, read=read, written=written)
        if cost is None:
            _warn_unknown(model)
        return cost

    def _configured(self, model: str) -> ModelPrice | None:
        price = self._prices.get(model)
        if price is None and "/" in model:
            price = self._prices.get(model.split("/", 1)[1])
        return price


def usage_of(message: BaseMessage) -> tuple[int, int]:
    """Return a reply's tokens in and out from LangChain's ``usage_metadata``; ``(0, 0)`` without.

    Every LangChain chat integration (``ChatLiteLLM`` included) fills
    ``usage_metadata``; tokens in are every prompt token, cached ones included.

    Args:
        message: Any message; only ``AIMessage`` carries usage.

    Returns:
        ``(tokens_in, tokens_out)``.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> usage = {"input_tokens": 9, "output_tokens": 2, "total_tokens": 11}
        >>> usage_of(AIMessage("hi", usage_metadata=usage))
        (9, 2)
    """
    usage = message.usage_metadata if isinstance(message, AIMessage) else None
    if not usage:
        return (0, 0)
    return int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)


def cache_read_tokens_of(message: BaseMessage) -> int:
    """Prompt tokens read from the provider's cache (``input_token_details["cache_read"]``)."""
    return _input_detail(message, "cache_read")


def cache_write_tokens_of(message: BaseMessage) -> int:
    """Prompt tokens written to the provider's cache (``input_token_details["cache_creation"]``)."""
    return _input_detail(message, "cache_creation")


def price_reply(prices: PriceBook, model: str, reply: BaseMessage) -> tuple[int, int, float | None]:
    """Tokens in, tokens out and USD cost of one reply at ``model``'s prices.

    Args:
        prices: The price book.
        model: The model the reply is priced as.
        reply: The reply.

    Returns:
        ``(tokens_in, tokens_out, cost_usd)``; the cost is ``None`` when the price is unknown.
    """
    tokens_in, tokens_out = usage_of(reply)
    cost = prices.cost_usd(
        model,
        tokens_in,
        tokens_out,
        cache_read_tokens=cache_read_tokens_of(reply),
        cache_write_tokens=cache_write_tokens_of(reply),
    )
    return tokens_in, tokens_out, cost


def _input_detail(message: BaseMessage, key: str) -> int:
    usage = message.usage_metadata if isinstance(message, AIMessage) else None
    details = usage.get("input_token_details") if usage else None
    return int((details or {}).get(key) or 0)


def pruned_usage(removed: Iterable[BaseMessage]) -> list[dict[str, Any]]:
    """Return the usage a message that replaces ``removed`` messages must carry.

    Removing a reply from state (``RemoveMessage``) must not remove what it
    cost: the message summarizing the removed ones carries this list under
    ``additional_kwargs[PRUNED_USAGE_KEY]``, and ``summarize_run`` counts it.
    One entry per removed reply that reports usage (replies are priced one by
    one, as tiered prices need), plus the entries a removed message itself
    carried, so a later pruning that removes an earlier summary keeps them.

    Args:
        removed: The messages being removed; each needs an id.

    Returns:
        ``{"id", "model", "tokens_in", "tokens_out", "cache_read",
        "cache_write"}`` dicts, one per reply id; ``model`` is the reply's
        ``response_metadata["model_name"]`` (``None`` when absent).

    Example:
        >>> from langchain_core.messages import AIMessage, ToolMessage
        >>> usage = {"input_tokens": 900, "output_tokens": 40, "total_tokens": 940}
        >>> loop = [AIMessage("", id="a", usage_metadata=usage), ToolMessage("x", tool_call_id="c")]
        >>> [(e["id"], e["tokens_in"]) for e in pruned_usage(loop)]
        [('a', 900)]
    """
    entries: dict[str, dict[str, Any]] = {}
    for message in removed:
        for entry in message.additional_kwargs.get(PRUNED_USAGE_KEY, []):
            entries.setdefault(str(entry["id"]), dict(entry))
        if not isinstance(message, AIMessage) or message.id is None:
            continue
        tokens_in, tokens_out = usage_of(message)
        if tokens_in == tokens_out == 0:
            continue
        model = message.response_metadata.get("model_name")
        entries[message.id] = {
            "id": message.id,
            "model": None if model is None else str(model),
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cache_read": cache_read_tokens_of(message),
            "cache_write": cache_write_tokens_of(message),
        }
    return list(entries.values())


def _cache_within(
    cache_read_tokens: int, cache_write_tokens: int, tokens_in: int
) -> tuple[int, int]:
    # Cache reads and writes are prompt tokens: counts above the prompt (a
    # provider quirk) must not price tokens that were never sent.
    read = max(0, min(cache_read_tokens, tokens_in))
    written = max(0, min(cache_write_tokens, tokens_in - read))
    return read, written


class RunSummary(BaseModel):
    """What a run cost on each side, and what it would have cost on the strong model alone.

    USD fields are ``None`` when a price they need is unknown; ``summarize_run``
    and docs/cost.md say how each figure is computed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    weak_model: str
    strong_model: str
    weak_tokens_in: int = 0
    weak_tokens_out: int = 0
    strong_tokens_in: int = 0
    strong_tokens_out: int = 0
    weak_usd: float | None = 0.0
    strong_usd: float | None = 0.0
    total_usd: float | None = 0.0
    all_strong_usd: float | None = 0.0
    saved_usd: float | None = 0.0
    escalations: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready dict (for records, logs and ``--format json``)."""
        return self.model_dump(mode="json")

    def describe(self) -> str:
        """Return a short report a person can read.

        Example:
            >>> summary = RunSummary(
            ...     weak_model="w", strong_model="s", weak_usd=0.001, strong_usd=0.02,
            ...     total_usd=0.021, all_strong_usd=0.05, saved_usd=0.029, escalations=1,
            ... )
            >>> for part in summary.describe().split("; "):
            ...     print(part)
            weak w: $0.001000 (0 in / 0 out)
            strong s: $0.020000 (0 in / 0 out), 1 escalation
            total $0.021000
            all on s: $0.050000
            saved $0.029000
        """
        plural = "" if self.escalations == 1 else "s"
        return (
            f"weak {self.weak_model}: {_usd(self.weak_usd)} "
            f"({self.weak_tokens_in} in / {self.weak_tokens_out} out); "
            f"strong {self.strong_model}: {_usd(self.strong_usd)} "
            f"({self.strong_tokens_in} in / {self.strong_tokens_out} out), "
            f"{self.escalations} escalation{plural}; total {_usd(self.total_usd)}; "
            f"all on {self.strong_model}: {_usd(self.all_strong_usd)}; saved {_usd(self.saved_usd)}"
        )

    def __str__(self) -> str:
        """The ``describe()`` report."""
        return self.describe()


def summarize_run(
    messages: Iterable[BaseMessage],
    *,
    weak_model: str,
    strong_model: str,
    prices: PriceBook,
    records: Iterable[EscalationRecord | Mapping[str, Any]] = (),
) -> RunSummary:
    """Summarize what a run cost on the weak model, on the strong one, and on the strong one alone.

    An ``AIMessage`` is a strong reply when it carries an ``EscalationRecord``
    or its ``model_name`` is ``strong_model``, else a weak one; each reply is
    priced on its own at its side's prices. Replies a loop pruning removed
    count from the usage their summary message carries (``PRUNED_USAGE_KEY``),
    each once. Escalation records whose tokens are on no message (an advise
    briefing) add their own tokens and cost; records of calls never made
    (``over_budget``, ``skipped``) add nothing. ``all_strong_usd`` prices the
    weak replies at the strong model's prices and adds ``strong_usd``. A side
    with tokens and an unknown price is ``None``, and so is what derives from it.

    Args:
        messages: The run's messages, in any order.
        weak_model: The weak model's id, for pricing.
        strong_model: The strong model's id, for pricing and classification.
        prices: The price book.
        records: Records kept outside the messages (the ``escalations`` key).

    Returns:
        The ``RunSummary``.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> usage = {"input_tokens": 1000, "output_tokens": 100, "total_tokens": 1100}
        >>> book = PriceBook(
        ...     {"cheap": {"input": 1, "output": 2}, "smart": {"input": 9, "output": 9}}
        ... )
        >>> summary = summarize_run(
        ...     [AIMessage("done", usage_metadata=usage)],
        ...     weak_model="cheap", strong_model="smart", prices=book,
        ... )
        >>> summary.weak_usd, summary.all_strong_usd, round(summary.saved_usd, 6)
        (0.0012, 0.0099, 0.0087)
    """
    messages = list(messages)
    tally = _Tally(prices, weak_model, strong_model)
    tally.seen_replies.update(m.id for m in messages if isinstance(m, AIMessage) and m.id)
    for message in messages:
        tally.add_pruned(message.additional_kwargs.get(PRUNED_USAGE_KEY, []))
        if isinstance(message, AIMessage):
            tally.add_reply(message)
    for raw in records:
        tally.add_record(
            raw if isinstance(raw, EscalationRecord) else EscalationRecord.model_validate(raw)
        )
    return tally.summary()


Usage = tuple[int, int, int, int]  # tokens in, tokens out, cache reads, cache writes


class _Tally:
    """Running sums of a run's two sides; a USD sum is ``None`` once a needed price is unknown."""

    def __init__(self, prices: PriceBook, weak_model: str, strong_model: str) -> None:
        self.prices, self.weak_model, self.strong_model = prices, weak_model, strong_model
        self.tokens = {"weak": [0, 0], "strong": [0, 0]}
        self.usd: dict[str, float | None] = {"weak": 0.0, "strong": 0.0, "weak_at_strong": 0.0}
        self.escalations = 0
        self.seen_replies: set[str | None] = set()
        self.seen_records: set[str] = set()

    def add_pruned(self, entries: Iterable[Mapping[str, Any]]) -> None:
        for entry in entries:
            if entry["id"] not in self.seen_replies:
                self.seen_replies.add(entry["id"])
                usage = tuple(int(entry.get(key) or 0) for key in _ENTRY_KEYS)
                self._add(usage, strong=entry.get("model") == self.strong_model)  # type: ignore[arg-type]

    def add_reply(self, message: AIMessage) -> None:
        usage = (*usage_of(message), cache_read_tokens_of(message), cache_write_tokens_of(message))
        record = record_of(message)
        if record is not None and self._count(record) and usage[0] == usage[1] == 0:
            self._add_record_cost(record)  # an advise briefing: its tokens are on the record
            return
        strong = (
            record is not None or message.response_metadata.get("model_name") == self.strong_model
        )
        self._add(usage, strong=strong)

    def add_record(self, record: EscalationRecord) -> None:
        if record.id not in self.seen_records and self._count(record):
            self._add_record_cost(record)

    def summary(self) -> RunSummary:
        weak, strong = self.usd["weak"], self.usd["strong"]
        total, all_strong = _sum(weak, strong), _sum(self.usd["weak_at_strong"], strong)
        return RunSummary(
            weak_model=self.weak_model,
            strong_model=self.strong_model,
            weak_tokens_in=self.tokens["weak"][0],
            weak_tokens_out=self.tokens["weak"][1],
            strong_tokens_in=self.tokens["strong"][0],
            strong_tokens_out=self.tokens["strong"][1],
            weak_usd=weak,
            strong_usd=strong,
            total_usd=total,
            all_strong_usd=all_strong,
            saved_usd=None if all_strong is None or total is None else all_strong - total,
            escalations=self.escalations,
        )

    def _count(self, record: EscalationRecord) -> bool:
        """Note the record once; whether it is an escalation whose strong call was made."""
        self.seen_records.add(record.id)
        if record.strong_called:
            self.escalations += 1
        return record.strong_called

    def _add(self, usage: Usage, *, strong: bool) -> None:
        tokens_in, tokens_out, read, written = usage
        side = "strong" if strong else "weak"
        self.tokens[side][0] += tokens_in
        self.tokens[side][1] += tokens_out
        # The counterfactual keeps the weak reply's cache reads and writes.
        sums = [("strong", self.strong_model)] if strong else [
            ("weak", self.weak_model), ("weak_at_strong", self.strong_model)
        ]  # fmt: skip
        for key, model in sums:
            cost = self.prices.cost_usd(
                model, tokens_in, tokens_out, cache_read_tokens=read, cache_write_tokens=written
            )
            self.usd[key] = _plus(self.usd[key], cost, tokens_in + tokens_out)

    def _add_record_cost(self, record: EscalationRecord) -> None:
        cost = record.cost_usd
        if cost is None:
            model = record.model or self.strong_model
            cost = self.prices.cost_usd(model, record.tokens_in, record.tokens_out)
        self.tokens["strong"][0] += record.tokens_in
        self.tokens["strong"][1] += record.tokens_out
        tokens = record.tokens_in + record.tokens_out
        self.usd["strong"] = _plus(self.usd["strong"], cost, tokens)


_ENTRY_KEYS = ("tokens_in", "tokens_out", "cache_read", "cache_write")


def _plus(total: float | None, amount: float | None, tokens: int) -> float | None:
    """Add ``amount``; an unknown price makes the total unknown only when it priced tokens."""
    if amount is None:
        return None if tokens else total
    return None if total is None else total + amount


def _sum(left: float | None, right: float | None) -> float | None:
    return None if left is None or right is None else left + right


def _litellm_cost(
    model: str, tokens_in: int, tokens_out: int, *, read: int, written: int
) -> float | None:
    litellm = _import_litellm()
    provider: str | None = None
    if "/" not in model:
        # A bare id ("deepseek-chat", as a provider echoes it back) is priced
        # only when litellm's own map names its provider; asking litellm to
        # guess would print to stdout and raise for most names.
        entry = litellm.model_cost.get(model)
        if not isinstance(entry, Mapping) or not entry.get("litellm_provider"):
            return None
        provider = str(entry["litellm_provider"])
    try:
        # litellm prints "Provider List: ..." to stdout for an unknown provider;
        # a command's JSON output must not carry it.
        with contextlib.redirect_stdout(io.StringIO()):
            prompt_usd, completion_usd = litellm.cost_per_token(
                model=model,
                prompt_tokens=tokens_in,
                completion_tokens=tokens_out,
                # Both counted within prompt_tokens, as in an OpenAI reply; litellm
                # charges them at the model's cache-read and cache-write prices.
                cache_read_input_tokens=read,
                cache_creation_input_tokens=written,
                custom_llm_provider=provider,
            )
    # litellm signals an unmapped model with several unrelated exception types
    # (ModelNotMappedError, BadRequestError, NotFoundError, plain Exception),
    # so the broad catch; the caller warns, and the cause is logged here.
    except Exception as error:  # noqa: BLE001
        logger.debug("litellm has no price for %r: %s", model, error)
        return None
    return float(prompt_usd) + float(completion_usd)


def _import_litellm() -> ModuleType:
    ensure_offline_price_map()
    import litellm  # noqa: PLC0415 - seconds to import; only cost computation pays it

    return litellm


def _warn_unknown(model: str) -> None:
    with _warned_lock:
        if model in _warned_models:
            return
        _warned_models.add(model)
    warnings.warn(
        f"no price for model {model!r}: its cost is reported as unknown (None). "
        f"Add it under `prices` in escalate.yaml or pass "
        f"PriceBook({{{model!r}: ModelPrice(input=..., output=...)}}) (USD per 1M tokens).",
        UnknownPriceWarning,
        stacklevel=3,
    )


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.6f}"
