"""Which model errors are raised, which are retried, which count as failures; the retry loops."""

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
TRANSIENT_STATUS = frozenset({408, 409, 425, 429})  # and every 5xx
# Matched by class name anywhere in the exception's MRO, so no provider SDK is imported.
_FATAL_NAMES = frozenset({
    "AuthenticationError", "PermissionDeniedError", "BadRequestError", "NotFoundError",
    "UnprocessableEntityError", "ContextWindowExceededError", "ContentPolicyViolationError",
    "UnsupportedParamsError",
})  # fmt: skip
_TRANSIENT_NAMES = frozenset({
    "RateLimitError", "APIConnectionError", "APITimeoutError", "Timeout", "InternalServerError",
    "ServiceUnavailableError", "BadGatewayError", "ConnectError", "ReadTimeout", "TimeoutException",
})  # fmt: skip
_TRANSIENT_TYPES = (TimeoutError, asyncio.TimeoutError, ConnectionError)
_PROGRAMMING_ERRORS = (
    TypeError, AttributeError, NameError, ImportError, AssertionError, NotImplementedError,
    SyntaxError,
)  # fmt: skip


def classify(error: BaseException) -> ErrorKind:
    """Say what a model call's error means: ``fatal``, ``transient`` or ``failure``.

    By HTTP status where there is one, else by type: ``fatal`` (400-404, a missing key, a
    programming error) is raised unchanged, ``transient`` (429, 5xx, timeouts) retried.

    Example:
        >>> classify(TimeoutError("read timed out")), classify(TypeError("bad arg"))
        ('transient', 'fatal')
    """
    sources = (error, getattr(error, "response", None))
    codes = (getattr(source, "status_code", None) for source in sources)
    status = next((code for code in codes if isinstance(code, int)), None)
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
    for attempt in range(1, retries + 1):
        try:
            return call()
        except Exception as error:  # noqa: PERF203 - a retry loop is a loop around a try
            if classify(error) != "transient":
                raise
            time.sleep(_retry_delay(what, error, attempt, retries, backoff_s))
    return call()


async def acall_with_retries(
    call: Callable[[], Awaitable[T]], *, retries: int, backoff_s: float, what: str
) -> T:
    """Async twin of ``call_with_retries``."""
    for attempt in range(1, retries + 1):
        try:
            return await call()
        except Exception as error:  # noqa: PERF203 - a retry loop is a loop around a try
            if classify(error) != "transient":
                raise
            await asyncio.sleep(_retry_delay(what, error, attempt, retries, backoff_s))
    return await call()


def _retry_delay(what: str, error: Exception, attempt: int, retries: int, base_s: float) -> float:
    """Log the retry; the wait before it: exponential backoff with full jitter."""
    logger.warning(
        "%s: transient error (%s: %s); retry %d of %d",
        what, type(error).__name__, redact(str(error)), attempt, retries,
    )  # fmt: skip
    return random.uniform(0, base_s * 2 ** (attempt - 1))  # noqa: S311 - jitter, not security
