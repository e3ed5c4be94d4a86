"""The expert side of an escalation: the bounded briefing and the strong model or graph."""

from langchain_escalate.expert.briefing import (
    DEFAULT_QUESTION,
    build_briefing,
    describe_call,
    estimate_tokens,
    is_help_message,
    truncate_middle,
    turn_start,
)
from langchain_escalate.expert.expert import Expert, ExpertAnswer, ExpertError, ExpertSpec

__all__ = [
    "DEFAULT_QUESTION",
    "Expert",
    "ExpertAnswer",
    "ExpertError",
    "ExpertSpec",
    "build_briefing",
    "describe_call",
    "estimate_tokens",
    "is_help_message",
    "truncate_middle",
    "turn_start",
]
