"""``Reservation``: money set aside for one escalation, settled or released exactly once.

A reservation is made by a ledger (``Budget.reserve``). Used as a context
manager it never leaks: whatever ends the block (a return, an exception,
``asyncio.CancelledError``, ``KeyboardInterrupt``), a reservation that was
paid for (``mark_paid``) is settled with that cost and any other is released.
The async exit is shielded from cancellation, so a cancelled task still frees
its money.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from types import TracebackType

    from typing_extensions import Self

    from langchain_escalate.budget.ledger import Ledger

__all__ = [
    "MAX_RESULT_BYTES",
    "MAX_USD",
    "Reservation",
    "check_usd",
    "decode_result",
    "encode_result",
    "finish_despite_cancellation",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_RESULT_BYTES = 64 * 1024
"""Largest settled result (UTF-8 JSON) a ledger stores; a larger one is not stored."""

MAX_USD = 1e9
"""Largest amount a budget, an estimate or a cost may be: ledgers store nano-dollars in 64 bits."""


class Reservation:
    """Money set aside for one escalation, to settle or release afterwards.

    Returned by ``Budget.reserve``. When ``granted`` is false, nothing was
    reserved and ``reason`` says which limit refused. Settle it with the
    actual cost once the strong model answered - also when the answer turns
    out unusable: the money was spent. Release it when no model was paid.

    As a context manager (``with`` / ``async with``) it cannot leak: on exit
    a reservation that was settled stays settled, one marked paid
    (``mark_paid``) is settled with that cost, any other is released - on a
    return, an exception, cancellation or ``KeyboardInterrupt`` alike.

    A reservation made with an idempotency ``key`` may come back from a
    previous attempt of the same escalation (a resumed run): ``resumed`` when
    its open reservation was reused, ``already_settled`` when that attempt
    settled it; then ``settled_usd`` is what it cost and ``settled_result``
    the result stored with it, and the strong model need not be called again.

    Attributes:
        id: The reservation's id in the ledger (``""`` when refused).
        thread_id: The thread it was made for.
        granted: Whether money was (or, for ``already_settled``, had been) reserved.
        reason: A sentence saying which limit refused (or why it was granted).
        estimate_usd: The amount reserved.
        key: The idempotency key it was made with, if any.
        resumed: A previous attempt's open reservation with this key, reused.
        already_settled: A previous attempt settled this key; nothing new is reserved.
        settled_usd: What the settled attempt cost (``already_settled`` only).
        settled_result: The JSON result the settled attempt stored, if any.

    Example:
        >>> from langchain_escalate.budget import Budget
        >>> budget = Budget(max_escalations_per_thread=1)
        >>> with budget.reserve("t1", estimate_usd=0.02, key="t1:step-3") as reservation:
        ...     reservation.settle(0.015, result={"text": "Use the v2 endpoint."})
        >>> again = budget.reserve("t1", key="t1:step-3")  # a resumed run
        >>> again.already_settled, again.settled_usd, again.settled_result
        (True, 0.015, {'text': 'Use the v2 endpoint.'})
        >>> budget.reserve("t1").reason
        'thread t1 has used 1 of 1 escalations'
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        id: str,  # noqa: A002 - the reservation's public name
        thread_id: str,
        granted: bool,
        reason: str,
        estimate_usd: float,
        key: str | None = None,
        resumed: bool = False,
        settled_usd: float | None = None,
        settled_result: dict[str, Any] | None = None,
    ) -> None:
        """Made by a ledger; see the class docstring."""
        self.id = id
        self.thread_id = thread_id
        self.granted = granted
        self.reason = reason
        self.estimate_usd = estimate_usd
        self.key = key
        self.resumed = resumed
        self.already_settled = settled_usd is not None
        self.settled_usd = settled_usd
        self.settled_result = settled_result
        self._ledger = ledger
        self._closed = not granted or self.already_settled
        self._paid = False
        self._paid_usd: float | None = None
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        """Whether it still holds money (granted, neither settled nor released)."""
        return not self._closed

    def mark_paid(self, actual_usd: float | None) -> None:
        """Record that the strong model was paid, before deciding what its answer is worth.

        From here on the reservation is settled with this cost, never
        released: on ``settle`` without a cost, or on leaving the ``with``
        block whatever ends it (an unusable answer raised as a failure, a
        cancellation). Call it as soon as a reply is billed.

        Args:
            actual_usd: What the call cost; ``None`` when unknown (the estimate
                is then kept as the spend).

        Raises:
            ValueError: ``actual_usd`` is negative, not finite, or above
                ``MAX_USD``; the reservation is then marked paid at its estimate.
        """
        cost, error = _checked_cost(actual_usd)
        self._paid = True
        self._paid_usd = cost
        if error is not None:
            raise error

    def settle(self, actual_usd: float | None, result: dict[str, Any] | None = None) -> None:
        """Record the actual cost in place of the estimate, and the result if any.

        Args:
            actual_usd: What the escalation cost; ``None`` when unknown, in
                which case the estimate stays as the spend: an unknown cost
                is never counted as zero, so a budget never under-counts.
            result: A small JSON object to store with the settled reservation
                (the strong answer), returned to a resumed run that reserves
                with the same ``key`` as ``settled_result``. At most
                ``MAX_RESULT_BYTES`` as JSON; a larger one is not stored (a
                warning says so) and the resumed run calls the model again.

        Raises:
            ValueError: The reservation was refused; ``actual_usd`` is negative,
                not finite or above ``MAX_USD`` (the estimate is settled in its
                place); or ``result`` is not JSON (the cost is settled without
                it). Either way the money counts before the error is raised.
            RuntimeError: It was already settled or released.
        """
        if self._begin_settle():
            cost, cost_error = _checked_cost(actual_usd)
            encoded, result_error = self._encode(result)
            self._ledger.settle(self.id, actual_usd=cost, result_json=encoded)
            if error := cost_error or result_error:
                raise error

    async def asettle(self, actual_usd: float | None, result: dict[str, Any] | None = None) -> None:
        """Async ``settle``; finishes recording the cost even if the task is cancelled."""
        if self._begin_settle():
            cost, cost_error = _checked_cost(actual_usd)
            encoded, result_error = self._encode(result)
            await _shielded(self._ledger.asettle(self.id, actual_usd=cost, result_json=encoded))
            if error := cost_error or result_error:
                raise error

    def release(self) -> None:
        """Give the money back (no model was paid). No-op once settled, released, or if refused.

        A reservation marked paid is settled with that cost instead.
        """
        if self._paid:
            self._settle_paid()
        elif self._begin_release():
            self._ledger.release(self.id)

    async def arelease(self) -> None:
        """Async ``release``; finishes even if the task is cancelled."""
        if self._paid:
            await self._asettle_paid()
        elif self._begin_release():
            await _shielded(self._ledger.arelease(self.id))

    def __enter__(self) -> Self:
        """Enter a block that settles (if paid) or releases the reservation on exit."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Settle the paid cost, or release; whatever ended the block."""
        self.release()

    async def __aenter__(self) -> Self:
        """Enter a block that settles (if paid) or releases the reservation on exit."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Settle the paid cost, or release; shielded from a cancellation ending the block."""
        await self.arelease()

    def __bool__(self) -> bool:
        """Whether it was granted."""
        return self.granted

    def __repr__(self) -> str:
        """Show the thread, the outcome and the reason."""
        return (
            f"Reservation(thread_id={self.thread_id!r}, granted={self.granted}, "
            f"reason={self.reason!r}, estimate_usd={self.estimate_usd}, key={self.key!r}, "
            f"resumed={self.resumed}, already_settled={self.already_settled})"
        )

    def _settle_paid(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._ledger.settle(self.id, actual_usd=self._paid_usd, result_json=None)

    async def _asettle_paid(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        await _shielded(self._ledger.asettle(self.id, actual_usd=self._paid_usd, result_json=None))

    def _encode(self, result: dict[str, Any] | None) -> tuple[str | None, ValueError | None]:
        """The result as stored, or ``None`` with the error to raise once the cost is recorded."""
        try:
            return encode_result(
                result, where=f"reservation {self.id} of thread {self.thread_id}"
            ), None
        except ValueError as error:
            return None, error

    def _begin_settle(self) -> bool:
        if not self.granted:
            msg = (
                f"cannot settle a refused reservation for thread {self.thread_id} "
                f"({self.reason}): the strong model should not have been called"
            )
            raise ValueError(msg)
        with self._lock:
            if self._closed:
                msg = (
                    f"reservation {self.id} of thread {self.thread_id} "
                    "was already settled or released"
                )
                if self.already_settled:
                    msg += f" (by an earlier attempt with key {self.key!r})"
                raise RuntimeError(msg)
            self._closed = True
        return True

    def _begin_release(self) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._closed = True
        return True


def check_usd(name: str, value: float) -> None:
    """Refuse an amount a ledger cannot store.

    Raises:
        ValueError: ``value`` is negative, not finite, or above ``MAX_USD``.
    """
    if not math.isfinite(value) or not 0 <= value <= MAX_USD:
        msg = f"{name} must be a finite number of USD between 0 and {MAX_USD:.0f}, got {value}"
        raise ValueError(msg)


def _checked_cost(actual_usd: float | None) -> tuple[float | None, ValueError | None]:
    """A cost a ledger can store, or ``None`` (the estimate) with the error to raise after."""
    if actual_usd is None:
        return None, None
    try:
        check_usd("actual_usd", actual_usd)
    except ValueError as error:
        return None, error
    return actual_usd, None


def encode_result(result: dict[str, Any] | None, *, where: str) -> str | None:
    """Encode a settled result as compact JSON; ``None`` when absent or too large to store.

    Raises:
        ValueError: ``result`` is not a JSON object of finite numbers, strings, lists...
    """
    if result is None:
        return None
    if not isinstance(result, dict):
        msg = f"the result of {where} must be a JSON object (a dict), got {type(result).__name__}"
        raise ValueError(msg)  # noqa: TRY004 - one error type for "not storable JSON"
    try:
        encoded = json.dumps(result, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as error:
        msg = f"the result of {where} is not JSON: {error}"
        raise ValueError(msg) from error
    size = len(encoded.encode("utf-8", errors="surrogatepass"))
    if size > MAX_RESULT_BYTES:
        logger.warning(
            "the result of %s is %d bytes of JSON, over the %d-byte limit: not stored; "
            "a resumed run will call the strong model again",
            where,
            size,
            MAX_RESULT_BYTES,
        )
        return None
    return encoded


def decode_result(stored: str | None) -> dict[str, Any] | None:
    """The result a ledger stored (``encode_result``'s output)."""
    if stored is None:
        return None
    decoded: dict[str, Any] = json.loads(stored)
    return decoded


async def finish_despite_cancellation(operation: Awaitable[T]) -> tuple[T, BaseException | None]:
    """Run a ledger call to its end even if the awaiting task is cancelled meanwhile.

    The call runs in its own task; a cancellation of the caller waits for
    that task to finish (the money is recorded or freed).

    Returns:
        The call's result, and the caller's cancellation to re-raise (``None``
        when it was not cancelled).
    """
    task = asyncio.ensure_future(operation)
    cancelled: BaseException | None = None
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError as error:
            if task.cancelled():  # the call itself was cancelled (its loop is closing)
                raise
            cancelled = error
            if task.done():
                return task.result(), cancelled
            continue
        return result, cancelled


async def _shielded(operation: Awaitable[None]) -> None:
    """Run a ledger write to its end, then re-raise a cancellation that came meanwhile."""
    _, cancelled = await finish_despite_cancellation(operation)
    if cancelled is not None:
        raise cancelled
