"""A node's effective settings: its section deep-merged over the defaults.

Only the keys a section actually wrote take part in the merge (pydantic's
``model_fields_set``), so ``monologue: null`` in a node turns the rule off
there, while a key the node does not mention keeps the default's value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from langchain_escalate.config.schema import (
    BudgetSettings,
    DefaultsSection,
    ModelOverride,
    ModelSpec,
    ModelsSection,
    NodeSection,
    ToolSettings,
)
from langchain_escalate.detector.config import DetectorConfig
from langchain_escalate.policy import EscalationPolicy
from langchain_escalate.redact import redact_data

if TYPE_CHECKING:
    from collections.abc import Mapping

    from langchain_escalate.confidence import ConfidenceConfig
    from langchain_escalate.cost import ModelPrice

__all__ = ["NodeSettings", "merge_model", "merge_node"]

_SectionT = TypeVar("_SectionT", bound=BaseModel)


@dataclass(frozen=True)
class NodeSettings:
    """What one node runs with, after merging its section over the defaults.

    Attributes:
        name: The node's name (a key of ``nodes``).
        weak: The weak model and its options; ``None`` when the file names
            none (pass ``weak=`` to ``build_node``).
        strong: The strong model and its options; ``None`` when the file
            names none (pass ``strong=`` to the builder).
        detector: The stuck detector's thresholds.
        policy: The ladder and the escalation mode.
        budget: Limits on strong-model spend (``budget.limited`` is ``False``
            when none is set).
        tool: The ask-expert tool's name, description and ``max_uses``.
        confidence: The confidence sources, or ``None``.
        review_tools: Tools whose calls are scored before they run.
        prices: USD per 1M tokens for models litellm lacks (shared by every node).
    """

    name: str
    weak: ModelSpec | None
    strong: ModelSpec | None
    detector: DetectorConfig
    policy: EscalationPolicy
    budget: BudgetSettings
    tool: ToolSettings
    prices: Mapping[str, ModelPrice]
    confidence: ConfidenceConfig | None = None
    review_tools: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as JSON-ready data, secrets redacted (``redact.redact_data``)."""
        data = {
            "name": self.name,
            "weak": _model_dict(self.weak),
            "strong": _model_dict(self.strong),
            "detector": self.detector.model_dump(mode="json"),
            "policy": self.policy.model_dump(mode="json"),
            "budget": self.budget.model_dump(mode="json"),
            "tool": self.tool.model_dump(mode="json"),
            "confidence": None
            if self.confidence is None
            else self.confidence.model_dump(mode="json"),
            "review_tools": list(self.review_tools),
            "prices": {
                model: price.model_dump(mode="json") for model, price in self.prices.items()
            },
        }
        redacted: dict[str, Any] = redact_data(data)
        return redacted


def merge_node(
    name: str,
    *,
    models: ModelsSection,
    defaults: DefaultsSection,
    node: NodeSection,
    prices: Mapping[str, ModelPrice],
) -> NodeSettings:
    """Return a node's effective settings: ``node`` laid over ``defaults`` and ``models``.

    Args:
        name: The node's name.
        models: The file's default models.
        defaults: The file's default sections.
        node: The node's own section.
        prices: The file's prices.

    Returns:
        The merged settings.
    """
    return NodeSettings(
        name=name,
        weak=merge_model(models.weak, node.models.weak),
        strong=merge_model(models.strong, node.models.strong),
        detector=_overlay(DetectorConfig, defaults.detector, node.detector),
        policy=_overlay(EscalationPolicy, defaults.policy, node.policy),
        budget=_overlay(BudgetSettings, defaults.budget, node.budget),
        tool=_overlay(ToolSettings, defaults.tool, node.tool),
        prices=dict(prices),
        confidence=node.confidence
        if "confidence" in node.model_fields_set
        else defaults.confidence,
        review_tools=(
            node.review_tools if "review_tools" in node.model_fields_set else defaults.review_tools
        ),
    )


def merge_model(inherited: ModelSpec | None, override: ModelOverride | None) -> ModelSpec | None:
    """Return the model a node uses.

    An override that names a ``model`` replaces the inherited one whole: its
    options were written for that model, and an inherited ``api_base`` would
    send it to the wrong server. An override without ``model`` adjusts the
    inherited model's options (``model_kwargs`` and ``extra_headers`` merge
    key by key). Without an inherited model, such an override gives ``None``;
    the loader reports it as an error.

    Example:
        >>> base = ModelSpec(model="openai/qwen2.5", api_base="http://gpu:8080/v1")
        >>> merge_model(base, ModelOverride(temperature=0.0)).litellm_kwargs()
        {'api_base': 'http://gpu:8080/v1', 'temperature': 0.0}
        >>> merge_model(base, ModelOverride(model="deepseek/deepseek-chat")).litellm_kwargs()
        {}
    """
    if override is None:
        return inherited
    if override.model is not None:
        return ModelSpec.model_validate(_written(override))
    if inherited is None:
        return None
    merged = _written(inherited)
    for key, value in _written(override).items():
        previous = merged.get(key)
        merged[key] = (
            {**previous, **value}
            if isinstance(previous, dict) and isinstance(value, dict)
            else value
        )
    return ModelSpec.model_validate(merged)


def _overlay(cls: type[_SectionT], base: BaseModel, override: BaseModel) -> _SectionT:
    return cls.model_validate({**_written(base), **_written(override)})


def _written(section: BaseModel) -> dict[str, Any]:
    # The keys the YAML (or the caller) gave, not the class defaults.
    return {name: getattr(section, name) for name in section.model_fields_set}


def _model_dict(spec: ModelSpec | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    return {"model": spec.model, **spec.litellm_kwargs()}
