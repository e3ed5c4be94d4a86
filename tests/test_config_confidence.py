"""Confidence sources and review_tools per node in escalate.yaml (issue #10)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from langchain_escalate import load_config
from langchain_escalate.config import ConfigError
from langchain_escalate.config.schema import config_json_schema

if TYPE_CHECKING:
    from pathlib import Path

YAML = """\
models: {weak: openai/small, strong: anthropic/claude-sonnet-4-6}
defaults:
  confidence: {sources: [verbalized]}
nodes:
  support:
    confidence: {sources: [consistency, verify], samples: 4, verify: "json:loads"}
    review_tools: [issue_refund]
  chat:
"""


def test_a_node_takes_its_own_sources_and_review_tools_over_the_defaults() -> None:
    cfg = load_config(YAML)
    support, chat = cfg.for_node("support"), cfg.for_node("chat")
    assert support.confidence is not None
    assert support.confidence.sources == ("consistency", "verify")
    assert support.confidence.samples == 4
    assert support.review_tools == ("issue_refund",)
    assert chat.confidence is not None
    assert chat.confidence.sources == ("verbalized",)
    assert chat.review_tools == ()
    assert support.to_dict()["review_tools"] == ["issue_refund"]


def test_an_unknown_source_names_the_yaml_line(tmp_path: Path) -> None:
    path = tmp_path / "escalate.yaml"
    path.write_text(YAML.replace("[verbalized]", "[verbalised]"))
    with pytest.raises(ConfigError, match=r"escalate.yaml:3: defaults.confidence.sources"):
        load_config(path)


def test_the_schema_offers_confidence_and_review_tools() -> None:
    (_, section) = config_json_schema()["$defs"]["NodeSection"]["anyOf"]
    assert {"confidence", "review_tools"} <= set(section["properties"])
