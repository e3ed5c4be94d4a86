"""The docs cannot rot: docstring examples and the docs' Python blocks run.

Every ```python block in README.md and docs/*.md is executed, the blocks of one
page in order in one namespace (so a page reads as one script). A block that
cannot run offline is preceded by the line ``<!-- skip-run -->`` and says why.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import langchain_escalate

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?P<skip><!-- skip-run -->\s*\n)?```python\n(?P<code>.*?)\n```", re.DOTALL)


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


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = [m["code"] for m in BLOCK.finditer(page.read_text()) if not m["skip"]]
    if not blocks:
        pytest.skip(f"{page.name} has no runnable Python block")
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for number, code in enumerate(blocks, start=1):
        exec(compile(code, f"{page.name} block {number}", "exec"), namespace)  # noqa: S102
