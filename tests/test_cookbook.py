"""The cookbook notebooks run top to bottom, offline, and show what their text promises.

Each notebook is a jupytext pair: ``cookbook/NN_name.py`` (percent format, the
source) and ``cookbook/NN_name.ipynb`` (committed without outputs). The tests
check that every pair says the same thing, then execute every ``.ipynb`` with
nbclient in one shared kernel (one start-up and one litellm import for the
whole cookbook; the namespace is reset and the working directory changed
before each notebook).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jupytext
import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
COOKBOOK = ROOT / "cookbook"
ANSI_STYLE = re.compile(r"\x1b\[[0-9;]*m")
PROVIDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "DEEPSEEK_API_KEY", "OPENROUTER_API_KEY")

# What each notebook must print: the behaviour its markdown explains.
EXPECTED = {
    "01_escalating_node": [
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
    "02_ask_expert_tool": [
        "answered anthropic/claude-sonnet-4-6 700 50",
        "## Question",
        "ask_expert has been used 1 of 1 times",
        "all on anthropic/claude-sonnet-4-6: $",
    ],
    "03_middleware": [
        "nudge nudged repeated_action_error",
        "escalate advised repeated_action_error",
        "1,284 orders were placed since 1 November.",
        "strong model calls: 1",
        "all on anthropic/claude-sonnet-4-6: $",
    ],
    "04_yaml_two_nodes": [
        "escalate.yaml: valid, 2 nodes",
        "did you mean 'repeated_action_error'?",
        "triage   repeated_action_error=3 ladder=('nudge', 'escalate', 'human')",
        "support  repeated_action_error=2 ladder=('escalate', 'stop')",
        "Invoice INV-2026-0042 (EUR 1,200.00) is unpaid",
        "support escalate advised repeated_action_error",
        "the graph has no node 'triage'",
    ],
    "05_budgets_and_report": [
        "escalate advised repeated_action_error",
        "escalations of ticket-1: 1",
        "escalate over_budget",
        "stop stopped",
        "strong model calls: 0",
        "False - thread ticket-1 has used 1 of 1 escalations",
        "checkpoints.db: 3 records in 2 threads, 1 escalation to a strong model",
        "all on strong",
        "saved vs all on anthropic/claude-sonnet-4-6: $",
        "3 records in records.jsonl",
        "records only",
    ],
    "06_choosing_a_threshold": [
        "capital: Paris.",
        "escalate advised low_confidence",
        "refund: The refund window is 30 days",
        "recommended: low_confidence = 0.55",
        "DetectorConfig(low_confidence=0.55)",
    ],
    "07_mcp_server": [
        "turn 2 of thread True",
        "'escalations_per_thread': {'limit': 2, 'spent': 2",
        "Stuck (repeated_action_error",
        "tools: ['ask_expert', 'budget_status', 'check_stuck']",
        "refused: True ask_expert could not answer",
        "answered: Call the refund endpoint again",
        "records.jsonl: 4 records in 2 threads, 3 escalations to a strong model",
    ],
}


def _cells(notebook: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def _printed(notebook: nbformat.NotebookNode) -> str:
    """What the notebook's cells printed, without terminal styles (rich colours a CLI's output)."""
    return ANSI_STYLE.sub(
        "",
        "".join(
            output.get("text", "")
            for cell in notebook.cells
            if cell.cell_type == "code"
            for output in cell.get("outputs", [])
            if output.get("output_type") == "stream"
        ),
    )


def test_every_notebook_is_a_pair_and_listed():
    scripts = sorted(path.stem for path in COOKBOOK.glob("[0-9][0-9]_*.py"))
    notebooks = sorted(path.stem for path in COOKBOOK.glob("*.ipynb"))
    assert scripts == notebooks == sorted(EXPECTED)
    assert len(EXPECTED) >= 7
    assert not (COOKBOOK / "_build.py").exists()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_committed_notebook_has_the_cells_of_its_script_and_no_outputs(name):
    script = jupytext.read(COOKBOOK / f"{name}.py")
    committed = nbformat.read(COOKBOOK / f"{name}.ipynb", as_version=4)

    assert _cells(committed) == _cells(script), (
        f"cookbook/{name}.ipynb differs from cookbook/{name}.py: "
        f"run `jupytext --sync cookbook/{name}.py`"
    )
    code = [cell for cell in committed.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert committed.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert committed.metadata["kernelspec"]["name"] == "python3"  # Jupyter opens it as Python


def _kernel_of_this_python(directory: Path) -> Path:
    """A ``python3`` kernel spec running this interpreter (the venv), whatever else is installed."""
    spec = directory / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return directory


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelManager]:
    """One kernel for every notebook: this Python, this checkout, offline prices, no API key."""
    jupyter = _kernel_of_this_python(tmp_path_factory.mktemp("jupyter"))
    env = {key: value for key, value in os.environ.items() if key not in PROVIDER_KEYS}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(jupyter))  # looked up first for kernel specs
        manager = KernelManager(kernel_name="python3")
        manager.start_kernel(env=env, cwd=str(tmp_path_factory.mktemp("kernel")))
    try:
        yield manager
    finally:
        manager.shutdown_kernel(now=True)


def _execute(notebook: nbformat.NotebookNode, kernel: KernelManager) -> None:
    NotebookClient(notebook, km=kernel, timeout=120).execute()  # raises at the first bad cell


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_top_to_bottom_offline(name, kernel, tmp_path):
    # A fresh namespace and working directory, as a notebook opened on its own would have.
    fresh = f"%reset -f\nimport os\nos.chdir({str(tmp_path)!r})"
    _execute(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(fresh)]), kernel)
    notebook: Any = nbformat.read(COOKBOOK / f"{name}.ipynb", as_version=4)

    _execute(notebook, kernel)

    printed = _printed(notebook)
    missing = [text for text in EXPECTED[name] if text not in printed]
    assert not missing, f"{name} did not print {missing}; it printed:\n{printed}"
