"""The detector's answer for one message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """Whether the conversation is stuck at the message just observed.

    Attributes:
        stuck: ``True`` when a rule fired at this message.
        rule: The rule that fired (a name from ``DetectorConfig``), else ``None``.
        reason: One sentence a person can read; empty when not stuck.
        evidence: Indices (in the detector's stream) of the messages that show it.
        loop_start: Index of the first message of the loop, when the rule is a loop.
    """

    stuck: bool = False
    rule: str | None = None
    reason: str = ""
    evidence: list[int] = field(default_factory=list)
    loop_start: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "stuck": self.stuck,
            "rule": self.rule,
            "reason": self.reason,
            "evidence": list(self.evidence),
            "loop_start": self.loop_start,
        }


NOT_STUCK = Verdict()
