"""Which model errors are the caller's to see, which are retried, and which count as failures.

A missing API key or a mistyped model id is not the weak model being stuck, and
escalating it would pay a strong model to hide the real cause. Errors are sorted
by HTTP status where they have one (litellm, openai, anthropic, httpx), else by type:

- ``fatal``: authentication (401), permission (403), bad request (400), unknown
  model (404) and programming errors (``TypeError``...): raised unchanged.
- ``transient``: rate limits (429), server errors (5xx), timeouts, connection
  failures: retried with backoff and jitter, then counted as a failure.
- ``failure``: anything else (an unparseable answer): a failure at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING, Literal, TypeVar

from langchain_escalate.redact import redact

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

logger = logging.getLogger("langchain_escalate")

T = TypeVar("T")

ErrorKind = Literal["fatal", "transient", "failure"]

FATAL_STATUS = frozenset({400, 401, 403, 404, 422})
TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})

# Matched by class name anywhere in the exception's MRO, so no provider SDK is imported.
_FATAL_NAMES = frozenset({
    "AuthenticationError", "PermissionDeniedError", "BadRequestError", "NotFoundError",
    "UnprocessableEntityError", "ContextWindowExceededError", "ContentPolicyViolationError",
    "UnsupportedParamsError",
})  # fmt: skip
_TRANSIENT_NAMES = frozenset({
    "RateLimitError", "APIConnectionError", "APITimeoutError", "Timeout", "InternalServerError",
    "ServiceUnavailableError", "BadGatewayError", "ConnectError", "ReadTimeout",
    "TimeoutException",
})  # fmt: skip
_TRANSIENT_TYPES = (TimeoutError, asyncio.TimeoutError, ConnectionError)
_PROGRAMMING_ERRORS = (
    TypeError, AttributeError, NameError, ImportError, AssertionError, NotImplementedError,
    SyntaxError,
)  # fmt: skip


def classify(error: BaseException) -> ErrorKind:
    """Say what a model call's error means: ``fatal``, ``transient`` or ``failure``.

    Example:
        >>> classify(TimeoutError("read timed out")), classify(TypeError("bad arg"))
        ('transient', 'fatal')
    """
    status = _status_of(error)
    if status in FATAL_STATUS:
        return "fatal"
    if status is not None and (status in TRANSIENT_STATUS or status >= 500):  # noqa: PLR2004
        return "transient"
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & _FATAL_NAMES:
        return "fatal"
    if names & _TRANSIENT_NAMES or isinstance(error, _TRANSIENT_TYPES):
        return "transient"
    return "fatal" if isinstance(error, _PROGRAMMING_ERRORS) else "failure"


def call_with_retries(call: Callable[[], T], *, retries: int, backoff_s: float, what: str) -> T:
    """Run ``call``, retrying transient errors ``retries`` times (``what`` names it in the log)."""
    attempt = 0
    while True:
        try:
            return call()
        except Exception as error:  # noqa: PERF203 - a retry loop is a loop around a try
            attempt += 1
            if classify(error) != "transient" or attempt > retries:
                raise
            time.sleep(_retry_delay(what, error, attempt, retries, backoff_s))


async def acall_with_retries(
    call: Callable[[], Awaitable[T]], *, retries: int, backoff_s: float, what: str
) -> T:
    """Async twin of ``call_with_retries``."""
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as error:  # noqa: PERF203 - a retry loop is a loop around a try
            attempt += 1
            if classify(error) != "transient" or attempt > retries:
                raise
            await asyncio.sleep(_retry_delay(what, error, attempt, retries, backoff_s))


def _status_of(error: BaseException) -> int | None:
    for source in (error, getattr(error, "response", None)):
        status = getattr(source, "status_code", None)
        if isinstance(status, int):
            return status
    return None


def _retry_delay(what: str, error: Exception, attempt: int, retries: int, base_s: float) -> float:
    """Log the retry; the wait before it: exponential backoff with full jitter."""
    logger.warning(
        "%s: transient error (%s: %s); retry %d of %d",
        what, type(error).__name__, redact(str(error)), attempt, retries,
    )  # fmt: skip
    return random.uniform(0, base_s * 2 ** (attempt - 1))  # noqa: S311 - jitter, not security
