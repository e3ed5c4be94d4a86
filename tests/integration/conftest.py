"""Recorded HTTP for the litellm path: one cassette per test, three ways to run.

* replay (default): every HTTP exchange comes from ``tests/cassettes/<test>.yaml``;
  no server, no network (a socket guard fails the test on any TCP connect).
* record (``ESCALATE_RECORD=1``): the local model server answers and the test's
  cassette is written anew (``make cassettes``).
* live (``ESCALATE_LIVE_MODEL=1``): the local model server answers and the
  exchanges go to a throwaway cassette in the test's tmp dir, so the same
  assertions (which compare against the HTTP body the server sent) run against
  the real server while ``tests/cassettes/`` stays untouched.

Record and live start the server (``scripts/model_server.py``) when it is not
running, and stop it at the end of the session if they started it.
"""

from __future__ import annotations

import enum
import importlib.util
import json
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import vcr

from langchain_escalate.models import ModelRef

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import ModuleType

    from vcr.cassette import Cassette

# Before litellm's first import (it happens inside the tests): its bundled price
# map and catalogs, never a fetch.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = ROOT / "tests" / "cassettes"

API_KEY = "sk-local-not-a-secret"
"""Sent like a real key, so the tests prove it never reaches a cassette."""

KEPT_REQUEST_HEADERS = frozenset({"accept", "content-type", "host"})
"""Every other request header is dropped before recording: auth headers of any
provider, and the SDK's platform headers that would churn on every re-recording.
``content-type`` stays because vcr compares JSON bodies as JSON only with it."""

SECRET_HEADERS = (
    "authorization",
    "proxy-authorization",
    "api-key",
    "x-api-key",
    "x-goog-api-key",
    "openai-organization",
    "openai-project",
    "cookie",
)
DROPPED_RESPONSE_HEADERS = frozenset({"set-cookie", "openai-organization", "openai-project"})


def _load_model_server() -> ModuleType:
    path = ROOT / "scripts" / "model_server.py"
    spec = importlib.util.spec_from_file_location("escalate_model_server", path)
    if spec is None or spec.loader is None:
        msg = f"cannot load {path}"
        raise ImportError(msg)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


model_server = _load_model_server()
API_BASE: str = model_server.API_BASE


class HttpMode(enum.Enum):
    """Where the model's HTTP replies come from."""

    REPLAY = "replay"
    RECORD = "record"
    LIVE = "live"

    @classmethod
    def from_env(cls) -> HttpMode:
        record = os.environ.get("ESCALATE_RECORD") == "1"
        live = os.environ.get("ESCALATE_LIVE_MODEL") == "1"
        if record and live:
            msg = (
                "set ESCALATE_RECORD=1 (rewrite tests/cassettes) "
                "or ESCALATE_LIVE_MODEL=1 (run live), not both"
            )
            raise pytest.UsageError(msg)
        if record:
            return cls.RECORD
        return cls.LIVE if live else cls.REPLAY


def _before_record_request(request: Any) -> Any:
    for name in list(request.headers):
        if name.lower() not in KEPT_REQUEST_HEADERS:
            del request.headers[name]
    return request


def _before_record_response(response: dict[str, Any]) -> dict[str, Any]:
    response["headers"] = {
        name: value
        for name, value in response["headers"].items()
        if name.lower() not in DROPPED_RESPONSE_HEADERS
    }
    return response


RECORDER = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    serializer="yaml",
    match_on=["method", "scheme", "host", "port", "path", "body"],
    filter_headers=list(SECRET_HEADERS),
    filter_query_parameters=["api_key", "key"],
    before_record_request=_before_record_request,
    before_record_response=_before_record_response,
    decode_compressed_response=True,
)
"""The one vcr configuration of the integration tests (docs/testing.md explains each choice)."""


@pytest.fixture(scope="session")
def api_key() -> str:
    """The key the tests send (a placeholder: the local server checks none)."""
    return API_KEY


@pytest.fixture(scope="session")
def http_mode() -> HttpMode:
    return HttpMode.from_env()


@pytest.fixture(scope="session")
def local_server(http_mode: HttpMode) -> Iterator[str | None]:
    """The local model server's API base in record/live mode (started if needed); None in replay."""
    if http_mode is HttpMode.REPLAY:
        yield None
        return
    started = model_server.ensure_running()
    try:
        yield API_BASE
    finally:
        if started:
            model_server.stop()


@pytest.fixture
def cassette(
    request: pytest.FixtureRequest,
    http_mode: HttpMode,
    local_server: str | None,
    tmp_path: Path,
) -> Iterator[Recording]:
    """The test's cassette, ``<test name>.yaml``, opened for the current mode.

    In replay mode the test must use every recorded exchange: a cassette that a
    test no longer plays is stale and fails here, so ``make cassettes`` is due.
    """
    del local_server  # started for its side effect in record/live mode
    name = f"{request.node.name}.yaml"
    if http_mode is HttpMode.REPLAY:
        if not (CASSETTES / name).exists():
            pytest.fail(f"no cassette tests/cassettes/{name}: record it with `make cassettes`")
        context = RECORDER.use_cassette(name, record_mode="none")
    elif http_mode is HttpMode.RECORD:
        (CASSETTES / name).unlink(missing_ok=True)  # a fresh recording, nothing stale kept
        context = RECORDER.use_cassette(name, record_mode="all")
    else:
        context = RECORDER.use_cassette(str(tmp_path / name), record_mode="all")
    with context as opened:
        yield Recording(opened)
        if http_mode is HttpMode.REPLAY:
            unused = (
                f"tests/cassettes/{name} has exchanges the test no longer makes: `make cassettes`"
            )
            assert opened.all_played, unused


@pytest.fixture(autouse=True)
def no_network(http_mode: HttpMode, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """In replay mode, record and refuse every TCP connect (litellm or anything else).

    The refusal alone could be swallowed by a library's own error handling, so
    the attempts are also asserted empty after the test.
    """
    attempts: list[str] = []
    if http_mode is not HttpMode.REPLAY:
        yield attempts
        return
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def _refuse(sock: socket.socket, address: Any) -> None:
        if sock.family in {socket.AF_INET, socket.AF_INET6}:
            attempts.append(repr(address))
            msg = f"network access during cassette replay: connect to {address!r}"
            raise OSError(msg)

    def _connect(sock: socket.socket, address: Any) -> None:
        _refuse(sock, address)
        real_connect(sock, address)

    def _connect_ex(sock: socket.socket, address: Any) -> int:
        _refuse(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", _connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _connect_ex)
    yield attempts
    assert not attempts, f"replay tried to reach the network: {attempts}"


class Recording:
    """A test's cassette with the HTTP bodies it holds, as the server and litellm sent them."""

    def __init__(self, cassette: Cassette) -> None:
        self.cassette = cassette

    def replies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the responses, in order."""
        return [json.loads(_text(reply["body"]["string"])) for reply in self.cassette.responses]

    def requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of the requests, in order."""
        return [json.loads(_text(request.body)) for request in self.cassette.requests]


@pytest.fixture
def local_model() -> Callable[..., ModelRef]:
    """Build a ``ModelRef`` to a litellm id served by the local model server.

    llama.cpp serves its one model whatever ``model`` a request names, so any
    ``openai/<name>`` id reaches Gemma; the id decides only how litellm prices it.
    """

    def build(model_id: str, **litellm_kwargs: Any) -> ModelRef:
        return ModelRef(
            model_id, api_base=API_BASE, api_key=API_KEY, temperature=0, **litellm_kwargs
        )

    return build


def _text(body: str | bytes | None) -> str:
    if body is None:
        return ""
    return body.decode() if isinstance(body, bytes) else body
