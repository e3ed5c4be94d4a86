"""Which model errors are the caller's to see, which pass, and which count as being stuck.

A missing API key or a mistyped model id is not the weak model being stuck:
escalating it pays a strong model to hide the real cause. So every error a
model call raises is sorted into one of three kinds, by the exception's HTTP
status where it has one (litellm, openai, anthropic and httpx errors do) and
otherwise by its type:

- ``fatal`` — authentication (401), permission (403), bad request (400),
  unknown model (404) and programming errors (``TypeError``,
  ``AttributeError``, ...): raised to the caller unchanged.
- ``transient`` — rate limits (429), server errors (5xx), timeouts and
  connection failures: retried with backoff and jitter, and only when the
  retries are spent counted as a failure.
- ``failure`` — anything else (an unparseable answer, a provider's odd
  error): counted as a failure at once.
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
_FATAL_NAMES = frozenset(
    {
        "AuthenticationError",
        "PermissionDeniedError",
        "BadRequestError",
        "NotFoundError",
        "UnprocessableEntityError",
        "ContextWindowExceededError",
        "ContentPolicyViolationError",
        "UnsupportedParamsError",
    }
)
_TRANSIENT_NAMES = frozenset(
    {
        "RateLimitError",
        "APIConnectionError",
        "APITimeoutError",
        "Timeout",
        "InternalServerError",
        "ServiceUnavailableError",
        "BadGatewayError",
        "ConnectError",
        "ReadTimeout",
        "TimeoutException",
    }
)
_PROGRAMMING_ERRORS = (
    TypeError,
    AttributeError,
    NameError,
    ImportError,
    AssertionError,
    NotImplementedError,
    SyntaxError,
)


def classify(error: BaseException) -> ErrorKind:
    """Say what a model call's error means: ``fatal``, ``transient`` or ``failure``.

    Args:
        error: The exception the call raised.

    Returns:
        The kind (see the module docstring).

    Example:
        >>> classify(TimeoutError("read timed out")), classify(TypeError("bad arg"))
        ('transient', 'fatal')
    """
    status = _status_of(error)
    if status in FATAL_STATUS:
        return "fatal"
    if status in TRANSIENT_STATUS or (status is not None and status >= 500):  # noqa: PLR2004
        return "transient"
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & _FATAL_NAMES:
        return "fatal"
    if names & _TRANSIENT_NAMES or isinstance(
        error, (TimeoutError, asyncio.TimeoutError, ConnectionError)
    ):
        return "transient"
    if isinstance(error, _PROGRAMMING_ERRORS):
        return "fatal"
    return "failure"


def backoff_delay(attempt: int, base_s: float) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): exponential, with full jitter."""
    return random.uniform(0, base_s * 2 ** (attempt - 1))  # noqa: S311 - jitter, not security


def call_with_retries(call: Callable[[], T], *, retries: int, backoff_s: float, what: str) -> T:
    """Run ``call``; retry transient errors up to ``retries`` times; raise the rest.

    Args:
        call: The model call.
        retries: Retries after the first attempt.
        backoff_s: Base of the exponential backoff.
        what: Named in the log line of each retry.

    Returns:
        What ``call`` returns.
    """
    attempt = 0
    while True:
        try:
            return call()
        except Exception as error:  # noqa: PERF203 - a retry loop is a loop around a try
            attempt += 1
            if classify(error) != "transient" or attempt > retries:
                raise
            _log_retry(what, error, attempt, retries)
            time.sleep(backoff_delay(attempt, backoff_s))


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
            _log_retry(what, error, attempt, retries)
            await asyncio.sleep(backoff_delay(attempt, backoff_s))


def _status_of(error: BaseException) -> int | None:
    for source in (error, getattr(error, "response", None)):
        status = getattr(source, "status_code", None)
        if isinstance(status, int):
            return status
    return None


def _log_retry(what: str, error: BaseException, attempt: int, retries: int) -> None:
    logger.warning(
        "%s: transient error (%s: %s); retry %d of %d",
        what,
        type(error).__name__,
        redact(str(error)),
        attempt,
        retries,
    )
