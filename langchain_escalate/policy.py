"""What to do when the detector says the weak model is stuck."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Rung = Literal["nudge", "escalate", "human", "stop"]
Mode = Literal["advise", "takeover"]

DEFAULT_LADDER: tuple[Rung, ...] = ("nudge", "escalate", "human")


class EscalationPolicy(BaseModel):
    """The ladder of responses to a stuck verdict, and how escalation works.

    Each time the detector fires within a turn, the next rung of ``ladder`` is
    used; past the last rung, the last rung repeats. A new human turn starts the
    ladder again. A rung that cannot run moves down the ladder: ``escalate``
    with an exhausted budget, or ``human`` in a graph without a checkpointer.

    Attributes:
        ladder: Rungs tried in order: ``nudge`` (a free hint to the weak model),
            ``escalate`` (the strong model), ``human`` (``interrupt()``),
            ``stop`` (end the turn).
        mode: ``advise``: the strong model answers with guidance and the weak
            model acts again. ``takeover``: the strong model, bound to the same
            tools, takes this step and the next ``takeover_steps``. Ignored when
            the expert is a compiled graph.
        takeover_steps: Further steps the strong model takes after the first.
        prune_loop: After help arrives, replace the looping messages with a
            one-line summary so the weak model does not re-read its failures.
        briefing_max_tokens: Upper bound on the briefing sent to the strong model.
        stop_behavior: ``message`` ends the turn with an AIMessage saying why;
            ``raise`` raises ``EscalationStopped``.
        max_retries: Retries of a model call that failed with a transient
            error (429, 5xx, timeout) before it counts as a failure.
        retry_backoff_s: Base of the exponential backoff (full jitter) between retries.
        strong_timeout_s: Bound on one strong-model call; past it the call
            counts as a failed escalation and the ladder moves down.
        stream_expert: Stream the strong model's tokens in ``stream_mode="messages"``;
            off by default, so a chat UI never shows the internal advice.

    Example:
        >>> from langchain_escalate import EscalationPolicy
        >>> EscalationPolicy(ladder=["escalate", "stop"], mode="takeover").mode
        'takeover'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ladder: tuple[Rung, ...] = Field(default=DEFAULT_LADDER, min_length=1)
    mode: Mode = "advise"
    takeover_steps: int = Field(default=2, ge=0)
    prune_loop: bool = True
    briefing_max_tokens: int = Field(default=1500, ge=200)
    stop_behavior: Literal["message", "raise"] = "message"
    max_retries: int = Field(default=2, ge=0)
    retry_backoff_s: float = Field(default=0.5, ge=0, allow_inf_nan=False)
    strong_timeout_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    stream_expert: bool = False

    @field_validator("ladder", mode="before")
    @classmethod
    def _ladder_as_tuple(cls, value: object) -> object:
        # YAML and JSON give lists; a tuple keeps the frozen model hashable.
        return tuple(value) if isinstance(value, list) else value

    def rung(self, times_fired: int) -> Rung:
        """The rung for the ``times_fired``-th firing in a turn (0-based)."""
        return self.rung_at(self.start_index(times_fired))

    def start_index(self, times_fired: int) -> int:
        """The ladder index the ``times_fired``-th firing starts from; the last rung repeats."""
        return min(times_fired, len(self.ladder) - 1)

    def rung_at(self, index: int) -> Rung:
        """The rung at ``index``; past the end of the ladder, ``stop``."""
        return self.ladder[index] if index < len(self.ladder) else "stop"
