"""The public API: names a user imports must stay where they are."""

import subprocess
import sys

import pytest

import langchain_escalate

EXPECTED_ALL = [
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


def test_all_is_pinned() -> None:
    assert sorted(langchain_escalate.__all__) == sorted(EXPECTED_ALL)


def test_every_public_name_resolves() -> None:
    for name in langchain_escalate.__all__:
        assert getattr(langchain_escalate, name) is not None, name


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="create_escalating_nod"):
        _ = langchain_escalate.create_escalating_nod  # type: ignore[attr-defined]


def test_import_does_not_pull_in_litellm() -> None:
    # `import litellm` costs seconds; only code that calls a model may pay it.
    code = (
        "import sys, langchain_escalate\n"
        "from langchain_escalate import StuckDetector, EscalationPolicy, create_escalating_node\n"
        "assert 'litellm' not in sys.modules, 'litellm imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603 - our own code
