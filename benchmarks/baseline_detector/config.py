"""Thresholds of the stuck detector's rules."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

RULES: tuple[str, ...] = (
    "repeated_action_observation",
    "repeated_action_error",
    "consecutive_failures",
    "monologue",
    "alternating",
    "low_confidence",
    "max_steps",
)
"""Rule names in priority order: when several fire at one message, the first is reported."""


class DetectorConfig(BaseModel):
    """Thresholds of the stuck detector; ``None`` turns a rule off.

    Each rule fires at the first message at which its condition holds (see
    ``docs/detector.md``). After firing, the rule's window starts afresh, so a
    loop that goes on fires again after another full threshold.

    Example:
        >>> from langchain_escalate import DetectorConfig
        >>> DetectorConfig(repeated_action_error=2).repeated_action_error
        2
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    repeated_action_observation: int | None = Field(
        default=4,
        ge=2,
        description="Stuck when the last N actions and their observations are identical.",
    )
    repeated_action_error: int | None = Field(
        default=3,
        ge=2,
        description="Stuck when the last N actions are identical and each observation is an error.",
    )
    consecutive_failures: int | None = Field(
        default=3,
        ge=1,
        description="Stuck after N failures in a row, whatever the actions; a success resets.",
    )
    monologue: int | None = Field(
        default=3,
        ge=2,
        description="Stuck after N identical replies in a row with no observation between them.",
    )
    alternating: int | None = Field(
        default=6,
        ge=4,
        description="Stuck when the last N action/observation pairs alternate A,B,A,B (A != B).",
    )
    low_confidence: float | None = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Stuck when a reply's self-rated confidence is below this.",
    )
    max_steps: int | None = Field(
        default=100,
        ge=1,
        description="Stuck after more than N weak-model calls in one turn without a final reply.",
    )
    reset_on_human: bool = Field(
        default=True, description="A HumanMessage starts a new turn and clears every window."
    )
