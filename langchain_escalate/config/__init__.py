"""Per-node configuration in YAML.

``load_config("escalate.yaml").build_node("planner", tools=tools)``; see
``docs/config.md`` for the reference of the file.
"""

from __future__ import annotations

from langchain_escalate.config.errors import ConfigError, ConfigIssue
from langchain_escalate.config.escalate_config import EscalateConfig
from langchain_escalate.config.loader import load_config
from langchain_escalate.config.schema import (
    BudgetSettings,
    ModelSpec,
    ToolSettings,
    config_json_schema,
)
from langchain_escalate.config.settings import NodeSettings

__all__ = [
    "BudgetSettings",
    "ConfigError",
    "ConfigIssue",
    "EscalateConfig",
    "ModelSpec",
    "NodeSettings",
    "ToolSettings",
    "config_json_schema",
    "load_config",
]
