"""What to do when the detector says the weak model is stuck."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Rung = Literal["nudge", "escalate", "human", "stop"]
Mode = Literal["advise", "takeover"]


class EscalationPolicy(BaseModel):
    """The ladder of responses to a stuck verdict, and how escalation works.

    Attributes:
        ladder: A rung per firing in a turn (the last repeats); one that cannot run moves down.
        mode: ``advise`` (guidance, the weak model acts) or ``takeover`` (the strong model acts).
        takeover_steps: Further steps the strong model takes after the first.
        prune_loop: After help, replace the looping messages with a one-line summary.
        briefing_max_tokens: Upper bound on the briefing sent to the strong model.
        stop_behavior: ``message`` (an AIMessage ends the turn) or ``raise`` (EscalationStopped).
        max_retries: Retries of a transient failure (429, 5xx, timeout).
        retry_backoff_s: Base of the exponential backoff (full jitter) between retries.
        strong_timeout_s: Bound on one strong-model call; past it the escalation fails.
        stream_expert: Stream the strong model's tokens in ``stream_mode="messages"``.

    Example:
        >>> EscalationPolicy(ladder=["escalate", "stop"], mode="takeover").mode
        'takeover'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    ladder: tuple[Rung, ...] = Field(default=("nudge", "escalate", "human"), min_length=1)
    mode: Mode = "advise"
    takeover_steps: int = Field(default=2, ge=0)
    prune_loop: bool = True
    briefing_max_tokens: int = Field(default=1500, ge=200)
    stop_behavior: Literal["message", "raise"] = "message"
    max_retries: int = Field(default=2, ge=0)
    retry_backoff_s: float = Field(default=0.5, ge=0, allow_inf_nan=False)
    strong_timeout_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    stream_expert: bool = False

    def rung(self, times_fired: int) -> Rung:
        """The rung for the ``times_fired``-th firing in a turn (0-based)."""
        return self.rung_at(self.start_index(times_fired))

    def start_index(self, times_fired: int) -> int:
        """The ladder index the ``times_fired``-th firing starts from; the last rung repeats."""
        return min(times_fired, len(self.ladder) - 1)

    def rung_at(self, index: int) -> Rung:
        """The rung at ``index``; past the end of the ladder, ``stop``."""
        return self.ladder[index] if index < len(self.ladder) else "stop"
