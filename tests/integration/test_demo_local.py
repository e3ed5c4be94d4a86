"""``langchain-escalate demo --local``, live: the real local model's own loop is caught.

Runs only with ``ESCALATE_LIVE_MODEL=1`` (as CI runs this directory a second
time), because it needs the ``live`` packages and minutes of CPU; the offline
paths of ``demo --local`` are tested in tests/test_demo_cli.py and
tests/test_demo_local_model.py. The demo is run as a user runs it: a
subprocess that starts the local model server itself (unless one is running)
and stops what it started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import model_server

ROOT = Path(__file__).resolve().parents[2]
LOCAL_MODEL = "openai/gemma-3-270m"

pytestmark = pytest.mark.timeout(1800)


def test_demo_local_catches_the_local_models_own_loop(http_mode) -> None:
    if http_mode.value != "live":
        pytest.skip("runs the local model: set ESCALATE_LIVE_MODEL=1")
    was_running = model_server.is_answering()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }

    done = subprocess.run(
        [sys.executable, "-m", "langchain_escalate.cli", "demo", "--local", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1700,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "loading the local model" in done.stderr  # the progress line while it loads
    run = json.loads(done.stdout)
    assert run["models"]["weak_source"] == "local"
    assert run["models"]["weak"] == LOCAL_MODEL
    steps = run["steps"]
    first_detection = next(n for n, step in enumerate(steps) if step["actor"] == "detector")
    # What the detector caught is the real model's own calls, failing at the tool.
    weak_calls = [step["text"] for step in steps[:first_detection] if step["actor"] == "weak"]
    assert weak_calls
    assert all(text.startswith(f"{LOCAL_MODEL} calls ") for text in weak_calls)
    tool_results = [step["text"] for step in steps[:first_detection] if step["actor"] == "tool"]
    assert any("Error" in text for text in tool_results)
    assert run["records"], "the detector fired but nothing was recorded"
    assert run["records"][0]["rule"] is not None
    assert run["ended"] in {"answered", "stopped"}
    if not was_running:
        assert not model_server.is_answering(), "the demo left the server it started running"
