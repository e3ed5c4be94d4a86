"""Start, stop and query the local model server the integration tests record against.

The server itself lives in ``langchain_escalate.cli.local_model`` (``demo
--local`` starts it too); this is its command line.

Usage::

    python scripts/model_server.py start    # start in the background, wait until it answers
    python scripts/model_server.py status   # exit 0 when it answers, 1 when not
    python scripts/model_server.py stop     # stop the server this script started
    python scripts/model_server.py serve    # run in the foreground (what ``start`` runs)

``start`` prints the address, the pid and the log file. Files live in
``$ESCALATE_MODEL_SERVER_DIR`` (default: ``<tmp>/langchain-escalate-model-server``).

The same names (``ensure_running``, ``stop``, ``is_answering``, ``API_BASE``) are
used by ``tests/integration/conftest.py`` and ``scripts/record_cassettes.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from langchain_escalate.cli.local_model import (
    API_BASE,
    BASE_URL,
    HOST,
    MODEL_ALIAS,
    PORT,
    ServerFiles,
    ensure_running,
    is_answering,
    serve,
    stop,
)

__all__ = [
    "API_BASE",
    "BASE_URL",
    "HOST",
    "MODEL_ALIAS",
    "PORT",
    "ServerFiles",
    "ensure_running",
    "is_answering",
    "serve",
    "stop",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "serve"])
    args = parser.parse_args(argv)
    files = ServerFiles.default()
    if args.command == "serve":
        serve()
        return 0
    if args.command == "status":
        answering = is_answering()
        print(f"{BASE_URL}: {'answering' if answering else 'not answering'} (log: {files.log})")
        return 0 if answering else 1
    if args.command == "stop":
        print("stopped" if stop(files=files) else "no server started by this script is running")
        return 0
    started_at = time.monotonic()
    try:
        started = ensure_running(files=files)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    if started:
        elapsed = time.monotonic() - started_at
        pid = files.pid.read_text().strip()
        print(f"started {API_BASE} in {elapsed:.1f} s (pid {pid}, log: {files.log})")
    else:
        print(f"already answering at {API_BASE} (log: {files.log})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
