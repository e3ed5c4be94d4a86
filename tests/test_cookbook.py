"""The cookbook notebooks run top to bottom, offline, and show what their text promises."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
COOKBOOK = ROOT / "cookbook"
PROVIDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "DEEPSEEK_API_KEY", "OPENROUTER_API_KEY")

# What each notebook must print: the behaviour its markdown explains.
EXPECTED = {
    "01_escalating_node.ipynb": [
        ">>> stuck: repeated_action_error",
        ">>> rung: nudge (nudged)",
        ">>> stuck: consecutive_failures",
        ">>> rung: escalate (advised)",
        "pruned 6 looping messages",
        "weak    answers: The billing database listens on port 5433",
        "## Task",  # the briefing the strong model read
        "all on anthropic/claude-sonnet-4-6: $",
        "('escalate', 'took_over', 'takeover')",
    ],
    "02_ask_expert_tool_and_middleware.ipynb": [
        "answered anthropic/claude-sonnet-4-6 700 50",
        "## Question",
        "ask_expert has been used 1 of 1 times",
        "nudge nudged repeated_action_error",
        "escalate advised repeated_action_error",
        "1,284 orders were placed since 1 November.",
    ],
    "03_yaml_config_and_budgets.ipynb": [
        "escalate.yaml: valid, 2 nodes",
        "did you mean 'repeated_action_error'?",
        "escalate advised repeated_action_error",
        "escalations of ticket-1: 1",
        "escalate over_budget",
        "stop stopped",
        "strong model calls: 0",
        "False - thread ticket-1 has used 1 of 1 escalations",
    ],
}


def _build_module() -> Any:
    spec = importlib.util.spec_from_file_location("cookbook_build", COOKBOOK / "_build.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kernel_of_this_python(directory: Path) -> Path:
    """A ``python3`` kernel spec running this interpreter (the venv), whatever else is installed."""
    spec = directory / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return directory


def _printed(notebook: nbformat.NotebookNode) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )


def test_every_notebook_is_listed():
    assert sorted(path.name for path in COOKBOOK.glob("*.ipynb")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_committed_notebook_is_the_generated_one_without_outputs(name):
    build = _build_module()
    committed = nbformat.read(COOKBOOK / name, as_version=4)

    assert nbformat.writes(committed) == nbformat.writes(build.build(build.NOTEBOOKS[name])), (
        f"cookbook/{name} differs from cookbook/_build.py: run `python cookbook/_build.py`"
    )
    assert all(not cell.get("outputs") for cell in committed.cells if cell.cell_type == "code")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_top_to_bottom_offline(name, tmp_path, monkeypatch):
    # The kernel is this Python, imports this checkout, prices offline, and has no key to
    # call a real model with. JUPYTER_PATH comes first when kernel specs are looked up.
    monkeypatch.setenv("JUPYTER_PATH", str(_kernel_of_this_python(tmp_path / "jupyter")))
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    for key in PROVIDER_KEYS:
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "run").mkdir()
    notebook = nbformat.read(COOKBOOK / name, as_version=4)

    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path / "run")}},
    )
    client.execute()  # raises CellExecutionError at the first cell that raises

    printed = _printed(notebook)
    missing = [text for text in EXPECTED[name] if text not in printed]
    assert not missing, f"{name} did not print {missing}; it printed:\n{printed}"
