"""The ledger interface, the limit check every ledger shares, and the in-memory ledger.

A ledger records reservations: money set aside for one escalation before the
strong model is called. A reservation is *live* until it is settled (its
actual cost replaces the estimate), released (it no longer counts), or expires
(its holder died; it no longer counts). Reserving checks every limit against
settled spend plus live reservations and inserts the new reservation in one
atomic step, so concurrent agents cannot overspend.

Amounts are stored as integer nano-dollars (``1e-9`` USD): sums of floats
depend on their order and drift (``0.1 + 0.1 + 0.1 > 0.3``), which would make
a budget that fits exactly N escalations refuse the N-th one.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

__all__ = [
    "Committed",
    "Ledger",
    "Limits",
    "MemoryLedger",
    "Reservation",
    "from_nanos",
    "refusal_reason",
    "to_nanos",
]

NANOS_PER_USD = 1_000_000_000


def to_nanos(usd: float) -> int:
    """Convert USD to the integer nano-dollars ledgers store."""
    return round(usd * NANOS_PER_USD)


def from_nanos(nanos: int) -> float:
    """Convert stored nano-dollars back to USD."""
    return nanos / NANOS_PER_USD


@dataclass(frozen=True)
class Limits:
    """The limits a reservation is checked against (``None``: no limit).

    Attributes:
        max_escalations_per_thread: Escalations per thread, live reservations included.
        max_nanos_per_thread: Nano-dollars per thread.
        max_nanos_total: Nano-dollars across every thread sharing the ledger.
    """

    max_escalations_per_thread: int | None = None
    max_nanos_per_thread: int | None = None
    max_nanos_total: int | None = None

    @property
    def has_total(self) -> bool:
        """Whether the check needs the spend of every thread, not only this one."""
        return self.max_nanos_total is not None


@dataclass(frozen=True)
class Committed:
    """Money and escalations already settled or held by live reservations.

    Attributes:
        thread_escalations: Escalations of the thread.
        thread_nanos: Nano-dollars of the thread.
        total_nanos: Nano-dollars of every thread (0 when not needed).
    """

    thread_escalations: int
    thread_nanos: int
    total_nanos: int = 0


def refusal_reason(
    limits: Limits, committed: Committed, *, thread_id: str, estimate_nanos: int
) -> str | None:
    """Return why a reservation is refused, or ``None`` when every limit allows it.

    The one limit check every ledger runs inside its atomic step.
    """
    cap = limits.max_escalations_per_thread
    if cap is not None and committed.thread_escalations + 1 > cap:
        return f"thread {thread_id} has used {committed.thread_escalations} of {cap} escalations"
    cap = limits.max_nanos_per_thread
    if cap is not None and committed.thread_nanos + estimate_nanos > cap:
        return (
            f"thread {thread_id} has spent or reserved {_usd(committed.thread_nanos)} "
            f"of its {_usd(cap)}; this escalation is estimated at {_usd(estimate_nanos)}"
        )
    cap = limits.max_nanos_total
    if cap is not None and committed.total_nanos + estimate_nanos > cap:
        return (
            f"the total budget is {_usd(committed.total_nanos)} spent or reserved "
            f"of {_usd(cap)} across all threads; this escalation is estimated at "
            f"{_usd(estimate_nanos)}"
        )
    return None


GRANTED_REASON = "within budget"


class Reservation:
    """Money set aside for one escalation, to settle or release afterwards.

    Returned by ``Budget.reserve``. When ``granted`` is false, nothing was
    reserved and ``reason`` says which limit refused. Settle it with the
    actual cost after the strong model answered; release it when the call
    failed. Used as a (async) context manager it is released on exit unless
    it was settled.

    Attributes:
        id: The reservation's id in the ledger (``""`` when refused).
        thread_id: The thread it was made for.
        granted: Whether money was reserved.
        reason: A sentence saying which limit refused (or ``"within budget"``).
        estimate_usd: The amount reserved.

    Example:
        >>> from langchain_escalate.budget import Budget
        >>> budget = Budget(max_escalations_per_thread=1)
        >>> with budget.reserve("t1", estimate_usd=0.02) as reservation:
        ...     reservation.settle(0.015)
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
    ) -> None:
        """Made by a ledger; see the class docstring."""
        self.id = id
        self.thread_id = thread_id
        self.granted = granted
        self.reason = reason
        self.estimate_usd = estimate_usd
        self._ledger = ledger
        self._closed = not granted
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        """Whether it still holds money (granted, neither settled nor released)."""
        return not self._closed

    def settle(self, actual_usd: float | None) -> None:
        """Record the actual cost in place of the estimate.

        Args:
            actual_usd: What the escalation cost; ``None`` when unknown, in
                which case the estimate stays as the spend: an unknown cost
                is never counted as zero, so a budget never under-counts.

        Raises:
            ValueError: The reservation was refused, or ``actual_usd`` is negative.
            RuntimeError: It was already settled or released.
        """
        if self._begin_settle(actual_usd):
            self._ledger.settle(self.id, actual_usd=actual_usd)

    async def asettle(self, actual_usd: float | None) -> None:
        """Async ``settle``."""
        if self._begin_settle(actual_usd):
            await self._ledger.asettle(self.id, actual_usd=actual_usd)

    def release(self) -> None:
        """Give the money back (the call failed). No-op once settled, released, or if refused."""
        if self._begin_release():
            self._ledger.release(self.id)

    async def arelease(self) -> None:
        """Async ``release``."""
        if self._begin_release():
            await self._ledger.arelease(self.id)

    def __enter__(self) -> Self:
        """Enter a block that releases the reservation unless it was settled."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Release the reservation unless it was settled."""
        self.release()

    async def __aenter__(self) -> Self:
        """Enter a block that releases the reservation unless it was settled."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Release the reservation unless it was settled."""
        await self.arelease()

    def __bool__(self) -> bool:
        """Whether it was granted."""
        return self.granted

    def __repr__(self) -> str:
        """Show the thread, the outcome and the reason."""
        return (
            f"Reservation(thread_id={self.thread_id!r}, granted={self.granted}, "
            f"reason={self.reason!r}, estimate_usd={self.estimate_usd})"
        )

    def _begin_settle(self, actual_usd: float | None) -> bool:
        if not self.granted:
            msg = (
                f"cannot settle a refused reservation for thread {self.thread_id} "
                f"({self.reason}): the strong model should not have been called"
            )
            raise ValueError(msg)
        if actual_usd is not None and actual_usd < 0:
            msg = f"actual_usd must be >= 0, got {actual_usd}"
            raise ValueError(msg)
        with self._lock:
            if self._closed:
                msg = (
                    f"reservation {self.id} of thread {self.thread_id} "
                    "was already settled or released"
                )
                raise RuntimeError(msg)
            self._closed = True
        return True

    def _begin_release(self) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._closed = True
        return True


class Ledger(ABC):
    """Where reservations live; shared by every process that must respect one budget.

    Implementations: ``MemoryLedger`` (one process), ``SQLiteLedger`` (the
    processes of one machine), ``PostgresLedger`` (a fleet). A new ledger
    implements the sync methods, each one atomic; the async ones default to
    running them in a worker thread, so they never block the event loop.
    """

    @abstractmethod
    def reserve(
        self, thread_id: str, *, estimate_usd: float, limits: Limits, ttl_s: float
    ) -> Reservation:
        """Check every limit and, if all allow it, insert a reservation, atomically.

        Args:
            thread_id: The thread the escalation belongs to.
            estimate_usd: The amount to reserve.
            limits: The limits to check.
            ttl_s: After this many seconds a reservation neither settled nor
                released no longer counts (its holder is presumed dead).

        Returns:
            The ``Reservation``, granted or refused with a reason.
        """

    @abstractmethod
    def settle(self, reservation_id: str, *, actual_usd: float | None) -> None:
        """Replace a reservation's estimate with its actual cost (``None``: keep the estimate).

        Settling an expired reservation still records the spend.
        """

    @abstractmethod
    def release(self, reservation_id: str) -> None:
        """Delete a live reservation so it no longer counts."""

    @abstractmethod
    def spent(self, thread_id: str | None = None) -> float:
        """USD settled by one thread, or by all threads (live reservations excluded)."""

    @abstractmethod
    def escalations(self, thread_id: str) -> int:
        """Settled escalations of a thread (live reservations excluded)."""

    def close(self) -> None:  # noqa: B027 - optional hook; the memory ledger holds nothing
        """Release connections; the ledger must not be used afterwards."""

    async def areserve(
        self, thread_id: str, *, estimate_usd: float, limits: Limits, ttl_s: float
    ) -> Reservation:
        """Async ``reserve``."""
        return await asyncio.to_thread(
            self.reserve, thread_id, estimate_usd=estimate_usd, limits=limits, ttl_s=ttl_s
        )

    async def asettle(self, reservation_id: str, *, actual_usd: float | None) -> None:
        """Async ``settle``."""
        await asyncio.to_thread(self.settle, reservation_id, actual_usd=actual_usd)

    async def arelease(self, reservation_id: str) -> None:
        """Async ``release``."""
        await asyncio.to_thread(self.release, reservation_id)

    async def aspent(self, thread_id: str | None = None) -> float:
        """Async ``spent``."""
        return await asyncio.to_thread(self.spent, thread_id)

    async def aescalations(self, thread_id: str) -> int:
        """Async ``escalations``."""
        return await asyncio.to_thread(self.escalations, thread_id)

    async def aclose(self) -> None:
        """Async ``close``."""
        await asyncio.to_thread(self.close)

    def _decide(
        self,
        committed: Committed,
        *,
        thread_id: str,
        estimate_usd: float,
        limits: Limits,
    ) -> Reservation:
        """Build the outcome of a reservation from what is committed (shared by every ledger)."""
        reason = refusal_reason(
            limits, committed, thread_id=thread_id, estimate_nanos=to_nanos(estimate_usd)
        )
        return Reservation(
            ledger=self,
            id=uuid.uuid4().hex if reason is None else "",
            thread_id=thread_id,
            granted=reason is None,
            reason=reason or GRANTED_REASON,
            estimate_usd=estimate_usd,
        )


@dataclass
class _Live:
    thread_id: str
    estimate_nanos: int
    expires_at: float


@dataclass
class _Settled:
    escalations: int = 0
    nanos: int = 0


class MemoryLedger(Ledger):
    """A ledger in this process's memory: for one process, lost when it exits.

    The default (``ledger="memory://"``). Share one ``Budget`` (or one
    ``MemoryLedger``) between nodes to give them one total limit. Settled spend
    is kept as running sums, so a reservation costs O(live reservations). Its
    methods hold a lock for microseconds and do no I/O, so the async ones run
    inline.
    """

    def __init__(self) -> None:
        """Create an empty ledger."""
        self._live: dict[str, _Live] = {}
        self._settled: dict[str, _Settled] = {}
        self._settled_nanos = 0
        self._lock = threading.Lock()

    def reserve(
        self, thread_id: str, *, estimate_usd: float, limits: Limits, ttl_s: float
    ) -> Reservation:
        """See ``Ledger.reserve``."""
        with self._lock:
            now = time.monotonic()
            settled = self._settled.get(thread_id, _Settled())
            live = [entry for entry in self._live.values() if entry.expires_at > now]
            mine = [entry.estimate_nanos for entry in live if entry.thread_id == thread_id]
            committed = Committed(
                thread_escalations=settled.escalations + len(mine),
                thread_nanos=settled.nanos + sum(mine),
                total_nanos=self._settled_nanos + sum(entry.estimate_nanos for entry in live),
            )
            reservation = self._decide(
                committed, thread_id=thread_id, estimate_usd=estimate_usd, limits=limits
            )
            if reservation.granted:
                self._live[reservation.id] = _Live(
                    thread_id=thread_id,
                    estimate_nanos=to_nanos(estimate_usd),
                    expires_at=now + ttl_s,
                )
            return reservation

    def settle(self, reservation_id: str, *, actual_usd: float | None) -> None:
        """See ``Ledger.settle``."""
        with self._lock:
            # Kept after expiry until settled or released, so a late settle is still counted.
            entry = self._live.pop(reservation_id)
            nanos = entry.estimate_nanos if actual_usd is None else to_nanos(actual_usd)
            settled = self._settled.setdefault(entry.thread_id, _Settled())
            settled.escalations += 1
            settled.nanos += nanos
            self._settled_nanos += nanos

    def release(self, reservation_id: str) -> None:
        """See ``Ledger.release``."""
        with self._lock:
            self._live.pop(reservation_id, None)

    def spent(self, thread_id: str | None = None) -> float:
        """See ``Ledger.spent``."""
        with self._lock:
            if thread_id is None:
                return from_nanos(self._settled_nanos)
            return from_nanos(self._settled.get(thread_id, _Settled()).nanos)

    def escalations(self, thread_id: str) -> int:
        """See ``Ledger.escalations``."""
        with self._lock:
            return self._settled.get(thread_id, _Settled()).escalations

    async def areserve(
        self, thread_id: str, *, estimate_usd: float, limits: Limits, ttl_s: float
    ) -> Reservation:
        """See ``Ledger.reserve``."""
        return self.reserve(thread_id, estimate_usd=estimate_usd, limits=limits, ttl_s=ttl_s)

    async def asettle(self, reservation_id: str, *, actual_usd: float | None) -> None:
        """See ``Ledger.settle``."""
        self.settle(reservation_id, actual_usd=actual_usd)

    async def arelease(self, reservation_id: str) -> None:
        """See ``Ledger.release``."""
        self.release(reservation_id)

    async def aspent(self, thread_id: str | None = None) -> float:
        """See ``Ledger.spent``."""
        return self.spent(thread_id)

    async def aescalations(self, thread_id: str) -> int:
        """See ``Ledger.escalations``."""
        return self.escalations(thread_id)


def _usd(nanos: int) -> str:
    return f"${from_nanos(nanos):.4f}"
