"""Token usage and USD cost of replies (configured prices, then litellm's), and a run's summary."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import warnings
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, ConfigDict, Field

from langchain_escalate.models import price_name
from langchain_escalate.records import EscalationRecord, record_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

logger = logging.getLogger(__name__)

PRUNED_USAGE_KEY = "escalation_pruned_usage"
"""``additional_kwargs`` key: the usage of replies a loop pruning removed (see ``pruned_usage``)."""

_USAGE_KEYS = ("tokens_in", "tokens_out", "cache_read", "cache_write")
_Call = tuple[bool, str | None, tuple[int, ...], float | None]  # strong?, model, usage, known USD
_Priced = tuple[int, int, float | None, float | None]  # tokens in, out, USD, USD at strong prices
_warned_models: set[str] = set()
_warned_lock = threading.Lock()


class UnknownPriceWarning(UserWarning):
    """A model's price is in neither the configuration nor litellm's price map."""


def ensure_offline_price_map() -> None:
    """Make litellm read its bundled price map instead of fetching one; a user's choice is kept."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def format_usd(value: float | None) -> str:
    """``$0.001234``, or ``unknown`` for a cost whose price is unknown."""
    return "unknown" if value is None else f"${value:.6f}"


class ModelPrice(BaseModel):
    """The price of a model litellm does not know, in USD per million tokens.

    Cache reads default to ``input``, writes to twice ``input``: never an under-stated cost.

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
        write_rate = self.input * 2 if self.cache_write is None else self.cache_write
        usd = (tokens_in - read - written) * self.input + read * read_rate + written * write_rate
        return (usd + tokens_out * self.output) / 1_000_000


class PriceBook:
    """Prices by model id: configured ones first, then litellm's bundled map.

    Args:
        prices: Model id to price, for models litellm lacks or to override it. A key matches
            the model as ``openai:qwen2.5``, ``openai/qwen2.5`` or ``qwen2.5`` alike.

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
        """Return the USD cost of one call (cache reads and writes among ``tokens_in``).

        ``None`` when no price is known, with one ``UnknownPriceWarning`` per model per process.
        """
        read, written = _cache_within(cache_read_tokens, cache_write_tokens, tokens_in)
        name = price_name(model)
        for key in (model, name, name.partition("/")[2]):
            price = self._prices.get(key) or self._by_name.get(key)
            if price is not None:
                return price.cost_usd(
                    tokens_in, tokens_out, cache_read_tokens=read, cache_write_tokens=written
                )
        cost = _litellm_cost(name, tokens_in, tokens_out, read, written)
        if cost is None:
            _warn_unknown(model)
        return cost


def usage_of(message: BaseMessage) -> tuple[int, int]:
    """Return a reply's ``(tokens_in, tokens_out)``, cached prompt tokens in; else ``(0, 0)``."""
    return _usage4(message)[:2]


def cache_read_tokens_of(message: BaseMessage) -> int:
    """Prompt tokens read from the provider's cache (``input_token_details["cache_read"]``)."""
    return _usage4(message)[2]


def cache_write_tokens_of(message: BaseMessage) -> int:
    """Prompt tokens written to the provider's cache (``input_token_details["cache_creation"]``)."""
    return _usage4(message)[3]


def price_reply(prices: PriceBook, model: str, reply: BaseMessage) -> tuple[int, int, float | None]:
    """Tokens in, tokens out and USD cost (``None``: unknown) of a reply at ``model``'s prices."""
    usage = _usage4(reply)
    return usage[0], usage[1], _price(prices, model, usage)


def pruned_usage(removed: Iterable[BaseMessage]) -> list[dict[str, Any]]:
    """Return the usage entries the message replacing ``removed`` (each with an id) must carry.

    One ``{"id", "model", "tokens_in", "tokens_out", "cache_read", "cache_write"}`` dict per
    reply with usage (``model``: its ``model_name`` or ``None``), plus the entries the removed
    messages carried; ``summarize_run`` counts them from ``additional_kwargs[PRUNED_USAGE_KEY]``.
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
    """A run's cost per side and all on the strong model (a USD figure is ``None`` if unknown)."""

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

    A reply (from ``messages``, or pruned: ``PRUNED_USAGE_KEY``, once) is strong when it carries
    an ``EscalationRecord`` or its ``model_name`` is ``strong_model``, and is priced at its side's
    prices. A record whose tokens are on no message (an advise briefing, or in ``records``) adds
    them to the strong side, unless its strong call was never made. ``all_strong_usd`` prices
    the weak replies at strong prices. Tokens of an unknown price make a USD figure ``None``.

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
    seen = {m.id for m in messages if isinstance(m, AIMessage) and m.id}
    calls: list[_Call] = []
    noted: list[EscalationRecord] = []  # each message's record, then the other records once
    for message in messages:
        for entry in message.additional_kwargs.get(PRUNED_USAGE_KEY, []):
            if entry["id"] not in seen:
                seen.add(entry["id"])
                usage = tuple(int(entry.get(key) or 0) for key in _USAGE_KEYS)
                calls.append((entry.get("model") == strong_model, None, usage, None))
        if not isinstance(message, AIMessage):
            continue
        record, usage = record_of(message), _usage4(message)
        if record is not None:
            noted.append(record)
        if record is not None and record.strong_called and usage[0] == usage[1] == 0:
            calls.append(_record_call(record))  # an advise briefing: its tokens are on the record
        else:
            model = message.response_metadata.get("model_name")
            calls.append((record is not None or model == strong_model, None, usage, None))
    ids = {record.id for record in noted}
    for record in map(EscalationRecord.model_validate, records):
        if record.id not in ids:
            ids.add(record.id)
            noted.append(record)
            if record.strong_called:
                calls.append(_record_call(record))
    escalations = sum(record.strong_called for record in noted)
    return _summary(calls, escalations, prices, weak_model, strong_model)


def _record_call(record: EscalationRecord) -> _Call:
    """A strong call known from its record: its tokens, and its cost or its model to price."""
    return True, record.model, (record.tokens_in, record.tokens_out, 0, 0), record.cost_usd


def _summary(
    calls: list[_Call], escalations: int, prices: PriceBook, weak_model: str, strong_model: str
) -> RunSummary:
    """Price each call at its side's model (unless its cost is known) and add up each side."""
    priced: dict[str, list[_Priced]] = {"weak": [], "strong": []}
    for is_strong, model, usage, known in calls:
        cost = known
        if cost is None:
            cost = _price(prices, model or (strong_model if is_strong else weak_model), usage)
        # The counterfactual keeps the weak replies' cache reads and writes.
        at_strong = cost if is_strong else _price(prices, strong_model, usage)
        priced["strong" if is_strong else "weak"].append((usage[0], usage[1], cost, at_strong))
    sums: dict[str, Any] = {"escalations": escalations}
    for side, rows in priced.items():
        sums[f"{side}_tokens_in"] = sum(row[0] for row in rows)
        sums[f"{side}_tokens_out"] = sum(row[1] for row in rows)
        sums[f"{side}_usd"] = _sum(rows, 2)
    weak, strong, at_strong_sum = sums["weak_usd"], sums["strong_usd"], _sum(priced["weak"], 3)
    total = None if weak is None or strong is None else weak + strong
    all_strong = None if at_strong_sum is None or strong is None else at_strong_sum + strong
    saved = None if all_strong is None or total is None else all_strong - total
    sums |= {"total_usd": total, "all_strong_usd": all_strong, "saved_usd": saved}
    return RunSummary(weak_model=weak_model, strong_model=strong_model, **sums)


def _sum(calls: list[_Priced], column: int) -> float | None:
    """Add up one USD column in order; ``None`` once a call with tokens has no price."""
    total = 0.0
    for call in calls:
        cost = call[column]
        if cost is None and call[0] + call[1]:
            return None
        total += cost or 0.0
    return total


def _usage4(message: BaseMessage) -> tuple[int, int, int, int]:
    """Tokens in, tokens out, cache reads and cache writes, from ``usage_metadata``."""
    metadata = message.usage_metadata if isinstance(message, AIMessage) else None
    usage: Mapping[str, Any] = metadata or {}
    details: Mapping[str, Any] = usage.get("input_token_details") or {}
    return (
        int(usage.get("input_tokens") or 0),
        int(usage.get("output_tokens") or 0),
        int(details.get("cache_read") or 0),
        int(details.get("cache_creation") or 0),
    )


def _price(prices: PriceBook, model: str, usage: tuple[int, ...]) -> float | None:
    tokens_in, tokens_out, read, written = usage
    return prices.cost_usd(
        model, tokens_in, tokens_out, cache_read_tokens=read, cache_write_tokens=written
    )


def _cache_within(read: int, written: int, tokens_in: int) -> tuple[int, int]:
    """Cap the cache counts at the prompt (a provider quirk), so no unsent token is priced."""
    read = max(0, min(read, tokens_in))
    return read, max(0, min(written, tokens_in - read))


def _litellm_cost(
    model: str, tokens_in: int, tokens_out: int, read: int, written: int
) -> float | None:
    ensure_offline_price_map()
    import litellm  # noqa: PLC0415 - seconds to import; only cost computation pays it

    # A bare id is priced only when litellm's map names its provider (a guess prints and raises).
    provider = None if "/" in model else litellm.model_cost.get(model, {}).get("litellm_provider")
    if "/" not in model and not provider:
        return None
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
    except Exception as error:  # noqa: BLE001 - litellm signals an unmapped model in many ways
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
