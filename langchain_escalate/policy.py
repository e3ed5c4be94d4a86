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

    @field_validator("ladder", mode="before")
    @classmethod
    def _ladder_as_tuple(cls, value: object) -> object:
        # YAML and JSON give lists; a tuple keeps the frozen model hashable.
        return tuple(value) if isinstance(value, list) else value

    def rung(self, times_fired: int) -> Rung:
        """Return the rung for the ``times_fired``-th firing in a turn (0-based)."""
        return self.ladder[min(times_fired, len(self.ladder) - 1)]
