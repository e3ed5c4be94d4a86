"""The shape of ``escalate.yaml``: one pydantic model per section, strict.

Every section forbids unknown keys, so a typo is an error rather than a
setting silently ignored. ``detector`` and ``policy`` are the library's own
``DetectorConfig`` and ``EscalationPolicy``; ``prices`` are ``cost.ModelPrice``.
The budget section is ``budget.Budget`` itself (with the ledger as a URL);
the ``Budget`` a node uses, with a shared ledger, is built only when a node is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from langchain_escalate.budget import Budget
from langchain_escalate.confidence import ConfidenceConfig  # noqa: TC001 - pydantic needs it
from langchain_escalate.cost import ModelPrice  # noqa: TC001 - pydantic needs it at runtime
from langchain_escalate.detector.config import DetectorConfig
from langchain_escalate.policy import EscalationPolicy

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "BudgetSettings",
    "ConfigFile",
    "DefaultsSection",
    "ModelOverride",
    "ModelSpec",
    "ModelsSection",
    "NodeModels",
    "NodeSection",
    "ToolSettings",
    "config_json_schema",
]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""What every provider accepts as a function name."""


_MODEL_ID_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "description": "A model id (provider/model or provider:model): {model: <id>}.",
}


def _or(alternative: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """Return a ``json_schema_extra`` that also accepts ``alternative`` for the mapping.

    The model's ``before`` validator takes the shorthand; the JSON Schema must
    say so too, or editors would flag ``strong: openai/gpt-4.1`` and ``planner:``.
    """

    def extend(schema: dict[str, Any]) -> None:
        kept = {"title", "description"}
        as_mapping = {key: schema.pop(key) for key in list(schema) if key not in kept}
        schema["anyOf"] = [alternative, as_mapping]

    return extend


_BUDGET_FIELD_DESCRIPTIONS = {
    "max_escalations_per_thread": "Escalations allowed per thread; null: no limit.",
    "max_usd_per_thread": "USD the strong model may spend per thread; null: no limit.",
    "max_usd_total": "USD the strong model may spend in all threads sharing the ledger; null: none",
    "ledger": (
        "Where spend is recorded: memory:// (this process), sqlite:///path/to/ledger.db "
        "(one machine) or postgresql://user@host/db (a fleet); ?table=name picks the table."
    ),
    "reservation_ttl_s": "Seconds after which a reservation whose holder died stops counting.",
    "default_estimate_usd": "USD reserved per escalation when its cost cannot be estimated.",
}


def _describe_budget_fields(schema: dict[str, Any]) -> None:
    # Editors show these on hover; Budget documents its fields in its docstring only.
    for name, description in _BUDGET_FIELD_DESCRIPTIONS.items():
        schema.get("properties", {}).get(name, {}).setdefault("description", description)


class _ModelOptions(BaseModel):
    """A model's ``ChatLiteLLM`` options (everything but the model id).

    API keys are not options here: litellm reads them from the provider's
    environment variable (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``...).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_or(_MODEL_ID_SCHEMA))

    api_base: str | None = Field(
        default=None, description="Endpoint of the provider or of a local OpenAI-compatible server."
    )
    organization: str | None = Field(default=None, description="Provider organization id.")
    custom_llm_provider: str | None = Field(
        default=None,
        description="litellm provider to route to, when the id has no provider prefix.",
    )
    base_model: str | None = Field(
        default=None, description="Model litellm should price the calls as."
    )
    temperature: float | None = Field(
        default=None, ge=0.0, le=2.0, description="Sampling temperature."
    )
    top_p: float | None = Field(default=None, ge=0.0, le=1.0, description="Nucleus sampling mass.")
    top_k: int | None = Field(default=None, ge=1, description="Top-k sampling.")
    max_tokens: int | None = Field(
        default=None, ge=1, description="Upper bound on tokens per reply."
    )
    num_ctx: int | None = Field(default=None, ge=1, description="Context window (Ollama).")
    request_timeout: float | None = Field(
        default=None, gt=0, description="Seconds before a call times out."
    )
    max_retries: int | None = Field(default=None, ge=0, description="Retries of a failed call.")
    streaming: bool | None = Field(default=None, description="Stream tokens from the provider.")
    use_responses_api: bool | None = Field(
        default=None, description="Call the provider's Responses API instead of Chat Completions."
    )
    extra_headers: dict[str, str] | None = Field(
        default=None,
        description="Extra HTTP headers (never credentials: keep those in the environment).",
    )
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Any other provider parameter, passed to the call as is."
    )

    @model_validator(mode="before")
    @classmethod
    def _model_id_shorthand(cls, data: Any) -> Any:
        # `strong: openai/gpt-4.1` reads better than `strong: {model: openai/gpt-4.1}`.
        return {"model": data} if isinstance(data, str) else data

    def litellm_kwargs(self) -> dict[str, Any]:
        """Return the options that were set, as ``ChatLiteLLM`` keyword arguments."""
        kwargs = self.model_dump(exclude={"model"}, exclude_none=True)
        if not kwargs.get("model_kwargs"):
            kwargs.pop("model_kwargs", None)
        return kwargs


class ModelSpec(_ModelOptions):
    """A model id and its options; a bare string is the id alone.

    Example:
        >>> ModelSpec.model_validate("openai/qwen2.5").model
        'openai/qwen2.5'
        >>> ModelSpec(model="openai/qwen2.5", api_base="http://localhost:8080/v1").litellm_kwargs()
        {'api_base': 'http://localhost:8080/v1'}
    """

    model: str = Field(
        min_length=1,
        description="Model id: provider/model (litellm) or provider:model (LangChain).",
    )


class ModelOverride(_ModelOptions):
    """A node's change to an inherited model.

    With ``model``, it replaces the inherited model whole (options belong to
    the model they were written for). Without ``model``, its options are laid
    over the inherited model's.
    """

    model: str | None = Field(
        default=None,
        min_length=1,
        description="Model id; omit it to keep the inherited model and change its options.",
    )


class ModelsSection(BaseModel):
    """The weak and strong models every node uses unless it overrides them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weak: ModelSpec | None = Field(
        default=None, description="The cheap model that does most of the work."
    )
    strong: ModelSpec | None = Field(
        default=None, description="The model that helps when the weak one is stuck."
    )


class NodeModels(BaseModel):
    """A node's changes to the weak and strong models."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weak: ModelOverride | None = Field(default=None, description="Replaces or adjusts models.weak.")
    strong: ModelOverride | None = Field(
        default=None, description="Replaces or adjusts models.strong."
    )


class BudgetSettings(Budget):
    """Limits on strong-model spend: ``budget.Budget``, with the ledger as a URL.

    A node gets a ``Budget`` only when at least one limit is set. Budgets
    with the same ``ledger`` URL share one ledger object.

    Example:
        >>> BudgetSettings(max_usd_per_thread=0.5).limited
        True
        >>> BudgetSettings().limited
        False
    """

    model_config = ConfigDict(json_schema_extra=_describe_budget_fields)

    # A file can only name a ledger; Budget's URL check still applies.
    ledger: str = "memory://"

    @property
    def limited(self) -> bool:
        """Whether any limit is set (otherwise no ``Budget`` is needed)."""
        limits = (self.max_escalations_per_thread, self.max_usd_per_thread, self.max_usd_total)
        return any(limit is not None for limit in limits)


class ToolSettings(BaseModel):
    """How the node's ask-expert tool (``build_tool``) looks to the weak model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        default="ask_expert", pattern=TOOL_NAME_PATTERN, description="Tool name the model sees."
    )
    description: str | None = Field(
        default=None, description="Tool description the model sees; null: the library's default."
    )
    max_uses: int | None = Field(
        default=None, ge=1, description="Calls allowed per thread; null: no limit."
    )


class DefaultsSection(BaseModel):
    """Settings every node starts from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detector: DetectorConfig = Field(
        default_factory=DetectorConfig, description="Stuck detector thresholds."
    )
    policy: EscalationPolicy = Field(
        default_factory=EscalationPolicy,
        description="The ladder of responses and the escalation mode.",
    )
    budget: BudgetSettings = Field(
        default_factory=BudgetSettings, description="Limits on strong-model spend."
    )
    tool: ToolSettings = Field(default_factory=ToolSettings, description="The ask-expert tool.")
    confidence: ConfidenceConfig | None = Field(
        default=None,
        description=(
            "Confidence sources that score the weak model's final replies and calls to "
            "review_tools (verbalized, logprobs, consistency, verify); null: none."
        ),
    )
    review_tools: tuple[str, ...] = Field(
        default=(),
        description="Tools whose calls are scored before they run; below the threshold "
        "the ladder answers and the call does not run.",
    )


class NodeSection(DefaultsSection):
    """One node's overrides, deep-merged over ``defaults`` (and ``models``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_or({"type": "null"}))

    models: NodeModels = Field(
        default_factory=NodeModels, description="This node's weak and strong models."
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_node(cls, data: Any) -> Any:
        return {} if data is None else data


class ConfigFile(BaseModel):
    """Everything ``escalate.yaml`` may hold (``EscalateConfig`` adds the behaviour)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="langchain-escalate configuration")

    models: ModelsSection = Field(
        default_factory=ModelsSection, description="Default weak and strong models (litellm ids)."
    )
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="USD per 1M tokens, by model id, for models litellm's price map lacks.",
    )
    defaults: DefaultsSection = Field(
        default_factory=DefaultsSection, description="Settings every node starts from."
    )
    nodes: dict[str, NodeSection] = Field(
        default_factory=dict, description="Per graph node: overrides of models and defaults."
    )


def config_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of ``escalate.yaml``, for editor completion.

    Example:
        >>> sorted(config_json_schema()["properties"])
        ['defaults', 'models', 'nodes', 'prices']
    """
    schema = ConfigFile.model_json_schema()
    for definition in [schema, *schema.get("$defs", {}).values()]:
        _first_paragraph_only(definition)
    return {"$schema": SCHEMA_DIALECT, **schema}


def _first_paragraph_only(definition: dict[str, Any]) -> None:
    # Class docstrings become descriptions; editors show them on hover, where
    # the summary helps and the Attributes/Example sections do not.
    description = definition.get("description")
    if isinstance(description, str):
        definition["description"] = " ".join(description.split("\n\n", 1)[0].split())
