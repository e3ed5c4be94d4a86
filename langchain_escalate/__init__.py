"""langchain-escalate: when a cheap model is stuck, a strong one helps.

Public names are imported lazily, so ``import langchain_escalate`` (and the
``scan`` command) stays fast and never pulls in litellm.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_escalate.budget import Budget
    from langchain_escalate.confidence import ConfidenceConfig
    from langchain_escalate.config import EscalateConfig, load_config
    from langchain_escalate.detector import DetectorConfig, StuckDetector, Verdict
    from langchain_escalate.middleware import EscalationMiddleware
    from langchain_escalate.node import create_escalating_node
    from langchain_escalate.policy import EscalationPolicy
    from langchain_escalate.records import EscalationRecord, EscalationState
    from langchain_escalate.tool import create_ask_expert_tool

__version__ = "0.3.0"

_EXPORTS: dict[str, str] = {
    "Budget": "langchain_escalate.budget",
    "ConfidenceConfig": "langchain_escalate.confidence",
    "DetectorConfig": "langchain_escalate.detector",
    "EscalateConfig": "langchain_escalate.config",
    "EscalationMiddleware": "langchain_escalate.middleware",
    "EscalationPolicy": "langchain_escalate.policy",
    "EscalationRecord": "langchain_escalate.records",
    "EscalationState": "langchain_escalate.records",
    "StuckDetector": "langchain_escalate.detector",
    "Verdict": "langchain_escalate.detector",
    "create_ask_expert_tool": "langchain_escalate.tool",
    "create_escalating_node": "langchain_escalate.node",
    "load_config": "langchain_escalate.config",
}

__all__ = [
    "Budget",
    "ConfidenceConfig",
    "DetectorConfig",
    "EscalateConfig",
    "EscalationMiddleware",
    "EscalationPolicy",
    "EscalationRecord",
    "EscalationState",
    "StuckDetector",
    "Verdict",
    "__version__",
    "create_ask_expert_tool",
    "create_escalating_node",
    "load_config",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module 'langchain_escalate' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
