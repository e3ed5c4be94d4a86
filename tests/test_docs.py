"""The docs cannot rot: docstring examples and the docs' Python blocks run.

Every ```python block in README.md and docs/*.md is executed, the blocks of one
page in order in one namespace (so a page reads as one script), with two
markers on the line before a block:

* ``<!-- excerpt -->``: an excerpt of a user's program, run **as written** in
  its own namespace with offline stand-ins for what it leaves out (see
  ``docs_excerpts.py``): ``builder`` (a ``StateGraph``), ``tools``, an
  ``escalate.yaml`` in the working directory, and a scripted model for every
  model string, which must still be a string the real resolution accepts
  (``create_agent`` needs ``provider:model``). Whatever the excerpt built is
  run once: a compiled ``agent`` is invoked, nodes added to ``builder`` run.
* ``<!-- skip-run -->``: cannot run offline (a PostgreSQL server); the block says why.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
import textwrap
from pathlib import Path

import pytest
from docs_excerpts import ExcerptError, run_excerpt

import langchain_escalate

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"(?:<!-- (?P<marker>skip-run|excerpt) -->\s*\n)?```python\n(?P<code>.*?)\n```", re.DOTALL
)


def _modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(langchain_escalate.__path__, "langchain_escalate.")
        if not info.name.endswith("__main__")
    ]


@pytest.mark.parametrize("module_name", _modules())
def test_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"


def run_page(text: str, name: str) -> int:
    """Run a page's blocks; return how many ran."""
    namespace: dict[str, object] = {"__name__": f"docs_{Path(name).stem}"}
    ran = 0
    for number, block in enumerate(BLOCK.finditer(text), start=1):
        label = f"{name} block {number}"
        if block["marker"] == "skip-run":
            continue
        if block["marker"] == "excerpt":
            run_excerpt(block["code"], label)
        else:
            exec(compile(block["code"], label, "exec"), namespace)  # noqa: S102
        ran += 1
    return ran


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    if not run_page(page.read_text(), page.name):
        pytest.skip(f"{page.name} has no runnable Python block")


# -- the excerpt runner itself: it must catch what a user would hit -----------


def _page(code: str) -> str:
    return f"<!-- excerpt -->\n```python\n{textwrap.dedent(code).strip()}\n```\n"


def test_an_excerpt_runs_the_node_it_adds_with_scripted_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    page = _page(
        """
        from langchain_escalate import create_escalating_node

        builder.add_node(
            "agent",
            create_escalating_node(
                "deepseek/deepseek-chat", "anthropic:claude-sonnet-4-6", tools=tools
            ),
        )
        """
    )
    assert run_page(page, "node.md") == 1


@pytest.mark.parametrize(
    ("model", "complaint"),
    [
        ("deepseek/deepseek-chat", "init_chat_model wants 'provider:model'"),
        ("deepsek:deepseek-chat", "init_chat_model wants 'provider:model'"),
    ],
)
def test_create_agent_with_a_litellm_id_fails_as_it_would_for_a_user(
    model: str, complaint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    page = _page(
        f"""
        from langchain.agents import create_agent
        from langchain_escalate import EscalationMiddleware

        agent = create_agent(
            "{model}",
            tools=tools,
            middleware=[EscalationMiddleware("anthropic/claude-sonnet-4-6")],
        )
        """
    )
    with pytest.raises(ExcerptError, match=re.escape(complaint)):
        run_page(page, "README.md")


@pytest.mark.parametrize(
    "model", ["litellm:deepseek/deepseek-chat", "deepseek:deepseek-chat", "openai:gpt-4o-mini"]
)
def test_create_agent_with_a_langchain_string_runs(
    model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    page = _page(
        f"""
        from langchain.agents import create_agent
        from langchain_escalate import EscalationMiddleware

        agent = create_agent(
            "{model}",
            tools=tools,
            middleware=[EscalationMiddleware("anthropic/claude-sonnet-4-6")],
        )
        """
    )
    assert run_page(page, "README.md") == 1


def test_a_misspelled_model_id_fails_even_when_never_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Models are built lazily; the runner builds every one the excerpt named.
    monkeypatch.chdir(tmp_path)
    page = _page(
        """
        from langchain_escalate import create_ask_expert_tool

        tools = [*tools, create_ask_expert_tool("anthropik/claude-sonnet-4-6", max_uses=3)]
        """
    )
    with pytest.raises(ExcerptError, match="anthropik/claude-sonnet-4-6"):
        run_page(page, "README.md")


def test_the_yaml_excerpt_builds_its_node_from_the_stand_in_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    page = _page(
        """
        from langchain_escalate import load_config

        cfg = load_config("escalate.yaml")
        builder.add_node("planner", cfg.build_node("planner", tools=tools))
        """
    )
    assert run_page(page, "README.md") == 1
