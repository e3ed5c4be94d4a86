"""The stuck detector: from a message stream to verdicts.

Layer 1 of langchain-escalate: depends on ``langchain_core.messages``,
pydantic and the standard library only (no LangGraph, no litellm, no I/O).
"""

from langchain_escalate.detector.config import RULES, DetectorConfig
from langchain_escalate.detector.core import StuckDetector
from langchain_escalate.detector.formats import MessageFormatError, messages_from_dicts
from langchain_escalate.detector.steps import read_confidence, strip_confidence
from langchain_escalate.detector.verdict import Verdict

__all__ = [
    "RULES",
    "DetectorConfig",
    "MessageFormatError",
    "StuckDetector",
    "Verdict",
    "messages_from_dicts",
    "read_confidence",
    "strip_confidence",
]
