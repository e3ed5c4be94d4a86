"""Re-record every cassette in ``tests/cassettes/`` against the local model server.

Starts the server (``scripts/model_server.py``) unless it already answers, runs
the integration tests with ``ESCALATE_RECORD=1`` (each test rewrites its own
cassette from scratch), replays them once offline to prove the new cassettes
are complete, and stops the server if this script started it.

Usage::

    python scripts/record_cassettes.py              # all of them (``make cassettes``)
    python scripts/record_cassettes.py -k json      # extra arguments go to pytest
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# ``python scripts/record_cassettes.py`` puts scripts/ first on sys.path.
import model_server

ROOT = Path(__file__).resolve().parent.parent
TESTS = "tests/integration"


def main(pytest_args: list[str]) -> int:
    started = model_server.ensure_running()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("ESCALATE_LIVE_MODEL", None)
    try:
        print(f"recording against {model_server.API_BASE}", flush=True)
        recorded = _pytest([*pytest_args], env={**env, "ESCALATE_RECORD": "1"})
    finally:
        if started:
            model_server.stop()
    if recorded != 0:
        print("recording failed: the failing tests' cassettes are incomplete", file=sys.stderr)
        return recorded
    print("replaying the new cassettes offline", flush=True)
    env.pop("ESCALATE_RECORD", None)
    replayed = _pytest([*pytest_args], env=env)
    for path in sorted((ROOT / "tests" / "cassettes").glob("*.yaml")):
        print(f"  {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")
    return replayed


def _pytest(args: list[str], *, env: dict[str, str]) -> int:
    command = [sys.executable, "-m", "pytest", TESTS, "-p", "no:cacheprovider", "-q", *args]
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
