"""Token usage and dollar cost of model replies, and the cost summary of a run.

Prices come from configuration first (``PriceBook(prices={...})``, for models
litellm does not know), then litellm's bundled price map through litellm's own
``cost_per_token``, cache reads and writes included. A model found in neither
costs ``None``, with one warning, never a made-up number. litellm is imported
lazily (it takes seconds) and always offline (``ensure_offline_price_map``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, ConfigDict, Field

from langchain_escalate.models import price_name
from langchain_escalate.records import EscalationRecord, record_of

logger = logging.getLogger(__name__)

OFFLINE_PRICE_MAP_ENV = "LITELLM_LOCAL_MODEL_COST_MAP"
TOKENS_PER_PRICE_UNIT = 1_000_000  # configured prices are USD per million tokens
# The highest cache-write surcharge a provider publishes (Anthropic's one-hour
# cache), so a missing cache-write price never under-states a cost.
CACHE_WRITE_DEFAULT_FACTOR = 2.0

PRUNED_USAGE_KEY = "escalation_pruned_usage"
"""``additional_kwargs`` key: the usage of replies a loop pruning removed (see ``pruned_usage``)."""

_USAGE_KEYS = ("tokens_in", "tokens_out", "cache_read", "cache_write")
_warned_models: set[str] = set()
_warned_lock = threading.Lock()


class UnknownPriceWarning(UserWarning):
    """A model's price is in neither the configuration nor litellm's price map."""


def ensure_offline_price_map() -> None:
    """Make litellm read its bundled price map instead of fetching one; a user's choice is kept."""
    os.environ.setdefault(OFFLINE_PRICE_MAP_ENV, "True")


def format_usd(value: float | None) -> str:
    """``$0.001234``, or ``unknown`` for a cost whose price is unknown."""
    return "unknown" if value is None else f"${value:.6f}"


class ModelPrice(BaseModel):
    """The price of a model litellm does not know, in USD per million tokens.

    A missing ``cache_read`` price charges cache reads at ``input``, a missing
    ``cache_write`` at twice ``input``: a missing price never under-states a cost.

    Example:
        >>> ModelPrice(input=1.0, output=2.0, cache_read=0.1).cost_usd(
        ...     1_000_000, 0, cache_read_tokens=500_000
        ... )
        0.55
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0, description="USD per 1M prompt tokens")
    output: float = Field(ge=0, description="USD per 1M completion tokens")
    cache_read: float | None = Field(None, ge=0, description="USD per 1M cache reads (or input)")
    cache_write: float | None = Field(None, ge=0, description="USD per 1M cache writes (2 x input)")

    def cost_usd(
        self,
        tokens_in: int,
        tokens_out: int,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> float:
        """Return the USD cost of one call (cache reads and writes are among ``tokens_in``)."""
        read, written = _cache_within(cache_read_tokens, cache_write_tokens, tokens_in)
        read_rate = self.input if self.cache_read is None else self.cache_read
        write_rate = self.cache_write
        if write_rate is None:
            write_rate = self.input * CACHE_WRITE_DEFAULT_FACTOR
        usd = (tokens_in - read - written) * self.input + read * read_rate + written * write_rate
        return (usd + tokens_out * self.output) / TOKENS_PER_PRICE_UNIT


class PriceBook:
    """Prices by model id: configured ones first, then litellm's bundled map.

    Args:
        prices: Model id to price, for models litellm lacks or to override it. A
            key matches the model in either spelling (``openai:qwen2.5`` or
            ``openai/qwen2.5``), or without its provider (``qwen2.5``).

    Raises:
        pydantic.ValidationError: A price is malformed (negative, unknown key).

    Example:
        >>> book = PriceBook({"openai/qwen2.5": {"input": 0.1, "output": 0.4}})
        >>> book.cost_usd("openai/qwen2.5", 1_000_000, 500_000)
        0.3
    """

    def __init__(self, prices: Mapping[str, ModelPrice | dict[str, Any]] | None = None) -> None:
        """Validate the configured prices."""
        self._prices = {name: ModelPrice.model_validate(p) for name, p in (prices or {}).items()}
        self._by_name = {price_name(name): price for name, price in self._prices.items()}

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
            model: A model id (``"deepseek/deepseek-chat"`` or ``"deepseek:deepseek-chat"``).
            tokens_in: Prompt tokens, cache reads and writes included (LangChain's convention).
            tokens_out: Completion tokens.
            cache_read_tokens: How many of ``tokens_in`` were read from the prompt cache.
            cache_write_tokens: How many of ``tokens_in`` were written to the prompt cache.

        Returns:
            The cost in USD; ``None`` (with one ``UnknownPriceWarning`` per model
            per process) when neither the configuration nor litellm has the model.
        """
        read, written = _cache_within(cache_read_tokens, cache_write_tokens, tokens_in)
        configured = self._configured(model)
        if configured is not None:
            return configured.cost_usd(
                tokens_in, tokens_out, cache_read_tokens=read, cache_write_tokens=written
            )
        cost = _litellm_cost(price_name(model), tokens_in, tokens_out, read, written)
        if cost is None:
            _warn_unknown(model)
        return cost

    def _configured(self, model: str) -> ModelPrice | None:
        name = price_name(model)
        for key in (model, name, name.partition("/")[2]):
            price = self._prices.get(key) or self._by_name.get(key)
            if price is not None:
                return price
        return None


def usage_of(message: BaseMessage) -> tuple[int, int]:
    """Return a reply's ``(tokens_in, tokens_out)`` from its ``usage_metadata``; ``(0, 0)`` without.

    Tokens in are every prompt token, cached ones included.
    """
    usage = _metadata(message)
    return int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)


def cache_read_tokens_of(message: BaseMessage) -> int:
    """Prompt tokens read from the provider's cache (``input_token_details["cache_read"]``)."""
    return _input_detail(message, "cache_read")


def cache_write_tokens_of(message: BaseMessage) -> int:
    """Prompt tokens written to the provider's cache (``input_token_details["cache_creation"]``)."""
    return _input_detail(message, "cache_creation")


def price_reply(prices: PriceBook, model: str, reply: BaseMessage) -> tuple[int, int, float | None]:
    """Tokens in, tokens out and USD cost (``None``: unknown) of a reply at ``model``'s prices."""
    usage = _usage4(reply)
    return usage[0], usage[1], _price(prices, model, usage)


def pruned_usage(removed: Iterable[BaseMessage]) -> list[dict[str, Any]]:
    """Return the usage a message that replaces ``removed`` messages must carry.

    Removing a reply from state must not remove what it cost: the message that
    summarizes the removed ones carries this list under
    ``additional_kwargs[PRUNED_USAGE_KEY]``, and ``summarize_run`` counts it.
    Entries a removed message itself carried are kept, so a later pruning that
    removes an earlier summary keeps them.

    Args:
        removed: The messages being removed; each needs an id.

    Returns:
        ``{"id", "model", "tokens_in", "tokens_out", "cache_read", "cache_write"}``
        dicts, one per reply that reports usage; ``model`` is the reply's
        ``response_metadata["model_name"]`` (``None`` when absent).
    """
    entries: dict[str, dict[str, Any]] = {}
    for message in removed:
        for entry in message.additional_kwargs.get(PRUNED_USAGE_KEY, []):
            entries.setdefault(str(entry["id"]), dict(entry))
        usage = _usage4(message)
        if isinstance(message, AIMessage) and message.id is not None and usage[0] + usage[1]:
            model = message.response_metadata.get("model_name")
            entry = {"id": message.id, "model": None if model is None else str(model)}
            entries[message.id] = entry | dict(zip(_USAGE_KEYS, usage, strict=True))
    return list(entries.values())


class RunSummary(BaseModel):
    """What a run cost on each side, and what it would have cost on the strong model alone.

    USD fields are ``None`` when a price they need is unknown; ``summarize_run``
    says how each figure is computed.
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
            f"weak {self.weak_model}: {format_usd(self.weak_usd)} "
            f"({self.weak_tokens_in} in / {self.weak_tokens_out} out); "
            f"strong {self.strong_model}: {format_usd(self.strong_usd)} "
            f"({self.strong_tokens_in} in / {self.strong_tokens_out} out), "
            f"{self.escalations} escalation{plural}; total {format_usd(self.total_usd)}; "
            f"all on {self.strong_model}: {format_usd(self.all_strong_usd)}; "
            f"saved {format_usd(self.saved_usd)}"
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
        for entry in message.additional_kwargs.get(PRUNED_USAGE_KEY, []):
            if entry["id"] not in tally.seen_replies:
                tally.seen_replies.add(entry["id"])
                usage = tuple(int(entry.get(key) or 0) for key in _USAGE_KEYS)
                tally.add(usage, strong=entry.get("model") == strong_model)
        if isinstance(message, AIMessage):
            tally.add_reply(message)
    for raw in records:
        record = EscalationRecord.model_validate(raw)
        if record.id not in tally.seen_records and tally.count(record):
            tally.add_record(record)
    return tally.summary()


class _Tally:
    """Running sums, named as in ``RunSummary``; a USD sum is ``None`` once a price is unknown."""

    def __init__(self, prices: PriceBook, weak_model: str, strong_model: str) -> None:
        self.prices, self.weak_model, self.strong_model = prices, weak_model, strong_model
        self.sums: dict[str, Any] = {"escalations": 0, "weak_at_strong": 0.0}
        for side in ("weak", "strong"):
            self.sums |= {f"{side}_tokens_in": 0, f"{side}_tokens_out": 0, f"{side}_usd": 0.0}
        self.seen_replies: set[str | None] = set()
        self.seen_records: set[str] = set()

    def add_reply(self, message: AIMessage) -> None:
        usage = _usage4(message)
        record = record_of(message)
        if record is not None and self.count(record) and usage[0] == usage[1] == 0:
            self.add_record(record)  # an advise briefing: its tokens are on the record
            return
        model = message.response_metadata.get("model_name")
        self.add(usage, strong=record is not None or model == self.strong_model)

    def count(self, record: EscalationRecord) -> bool:
        """Note the record once; whether it is an escalation whose strong call was made."""
        self.seen_records.add(record.id)
        self.sums["escalations"] += record.strong_called
        return record.strong_called

    def add(self, usage: tuple[int, ...], *, strong: bool) -> None:
        # The counterfactual keeps the weak reply's cache reads and writes.
        models = {"strong_usd": self.strong_model} if strong else {
            "weak_usd": self.weak_model, "weak_at_strong": self.strong_model
        }  # fmt: skip
        costs = {key: _price(self.prices, model, usage) for key, model in models.items()}
        self._add("strong" if strong else "weak", usage[0], usage[1], costs)

    def add_record(self, record: EscalationRecord) -> None:
        tokens_in, tokens_out, cost = record.tokens_in, record.tokens_out, record.cost_usd
        if cost is None:
            cost = self.prices.cost_usd(record.model or self.strong_model, tokens_in, tokens_out)
        self._add("strong", tokens_in, tokens_out, {"strong_usd": cost})

    def _add(self, side: str, tokens_in: int, tokens_out: int, costs: dict[str, Any]) -> None:
        self.sums[f"{side}_tokens_in"] += tokens_in
        self.sums[f"{side}_tokens_out"] += tokens_out
        for key, cost in costs.items():
            self.sums[key] = _plus(self.sums[key], cost, tokens_in + tokens_out)

    def summary(self) -> RunSummary:
        sums = dict(self.sums)
        weak_at_strong, strong = sums.pop("weak_at_strong"), sums["strong_usd"]
        total, all_strong = _plus(sums["weak_usd"], strong, 1), _plus(weak_at_strong, strong, 1)
        saved = None if all_strong is None or total is None else all_strong - total
        return RunSummary(
            weak_model=self.weak_model, strong_model=self.strong_model, total_usd=total,
            all_strong_usd=all_strong, saved_usd=saved, **sums,
        )  # fmt: skip


def _plus(total: float | None, amount: float | None, tokens: int) -> float | None:
    """Add ``amount``; an unknown price makes the total unknown only when it priced tokens."""
    if amount is None:
        return None if tokens else total
    return None if total is None else total + amount


def _input_detail(message: BaseMessage, key: str) -> int:
    return int((_metadata(message).get("input_token_details") or {}).get(key) or 0)


def _metadata(message: BaseMessage) -> Mapping[str, Any]:
    return (message.usage_metadata if isinstance(message, AIMessage) else None) or {}


def _price(prices: PriceBook, model: str, usage: tuple[int, ...]) -> float | None:
    tokens_in, tokens_out, read, written = usage
    return prices.cost_usd(
        model, tokens_in, tokens_out, cache_read_tokens=read, cache_write_tokens=written
    )


def _usage4(message: BaseMessage) -> tuple[int, int, int, int]:
    """Tokens in, tokens out, cache reads, cache writes."""
    return (*usage_of(message), cache_read_tokens_of(message), cache_write_tokens_of(message))


def _cache_within(
    cache_read_tokens: int, cache_write_tokens: int, tokens_in: int
) -> tuple[int, int]:
    # Cache counts above the prompt (a provider quirk) must not price tokens never sent.
    read = max(0, min(cache_read_tokens, tokens_in))
    return read, max(0, min(cache_write_tokens, tokens_in - read))


def _litellm_cost(
    model: str, tokens_in: int, tokens_out: int, read: int, written: int
) -> float | None:
    ensure_offline_price_map()
    import litellm  # noqa: PLC0415 - seconds to import; only cost computation pays it

    provider: str | None = None
    if "/" not in model:
        # A bare id (as a provider echoes it back) is priced only when litellm's
        # map names its provider; letting litellm guess prints and raises.
        entry = litellm.model_cost.get(model)
        if not isinstance(entry, Mapping) or not entry.get("litellm_provider"):
            return None
        provider = str(entry["litellm_provider"])
    try:
        # litellm prints "Provider List: ..." for an unknown provider: not into JSON output.
        with contextlib.redirect_stdout(io.StringIO()):
            prompt_usd, completion_usd = litellm.cost_per_token(
                model=model,
                prompt_tokens=tokens_in,
                completion_tokens=tokens_out,
                cache_read_input_tokens=read,  # both within prompt_tokens, as in an OpenAI reply
                cache_creation_input_tokens=written,
                custom_llm_provider=provider,
            )
    # litellm signals an unmapped model with several unrelated exception types.
    except Exception as error:  # noqa: BLE001
        logger.debug("litellm has no price for %r: %s", model, error)
        return None
    return float(prompt_usd) + float(completion_usd)


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
