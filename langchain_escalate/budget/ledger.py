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
from typing import TYPE_CHECKING, Any

from langchain_escalate.budget.reservation import Reservation, decode_result

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "Committed",
    "KeyedRow",
    "Ledger",
    "Limits",
    "MemoryLedger",
    "Reservation",
    "Usage",
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
RESUMED_REASON = "within budget (reused the open reservation of key {key!r})"
SETTLED_REASON = "already settled (key {key!r}): nothing new reserved"


@dataclass(frozen=True)
class KeyedRow:
    """What a ledger holds for an idempotency key, read inside the reservation's atomic step.

    Attributes:
        id: The reservation's id.
        thread_id: The thread it was made for.
        estimate_nanos: The amount reserved.
        actual_nanos: The settled cost (``None`` while open).
        live: Open and not expired (its holder may still be running).
        result_json: The result stored when it was settled.
    """

    id: str
    thread_id: str
    estimate_nanos: int
    actual_nanos: int | None
    live: bool
    result_json: str | None = None


@dataclass(frozen=True)
class Usage:
    """Settled and open (live) spend, for ``Budget.status``; nano-dollars.

    Attributes:
        thread_escalations: Settled escalations of the thread (0 without a thread).
        thread_nanos: Settled spend of the thread.
        thread_open_escalations: Live reservations of the thread.
        thread_open_nanos: Money held by the thread's live reservations.
        total_nanos: Settled spend of every thread.
        total_open_nanos: Money held by every live reservation.
    """

    thread_escalations: int = 0
    thread_nanos: int = 0
    thread_open_escalations: int = 0
    thread_open_nanos: int = 0
    total_nanos: int = 0
    total_open_nanos: int = 0


class Ledger(ABC):
    """Where reservations live; shared by every process that must respect one budget.

    Implementations: ``MemoryLedger`` (one process), ``SQLiteLedger`` (the
    processes of one machine), ``PostgresLedger`` (a fleet). A new ledger
    implements the sync methods, each one atomic; the async ones default to
    running them in a worker thread, so they never block the event loop.
    """

    @abstractmethod
    def reserve(
        self,
        thread_id: str,
        *,
        estimate_usd: float,
        limits: Limits,
        ttl_s: float,
        key: str | None = None,
    ) -> Reservation:
        """Check every limit and, if all allow it, insert a reservation, atomically.

        With a ``key`` already in the ledger, the same atomic step returns the
        existing reservation instead (``_from_key``): settled, or open and
        live (its expiry renewed); an expired one is checked against the
        limits again and, if granted, revived under its id.

        Args:
            thread_id: The thread the escalation belongs to.
            estimate_usd: The amount to reserve.
            limits: The limits to check.
            ttl_s: After this many seconds a reservation neither settled nor
                released no longer counts (its holder is presumed dead).
            key: The escalation's idempotency key (unique in the ledger).

        Returns:
            The ``Reservation``, granted or refused with a reason.
        """

    @abstractmethod
    def settle(
        self, reservation_id: str, *, actual_usd: float | None, result_json: str | None = None
    ) -> None:
        """Replace an open reservation's estimate with its cost (``None``: keep the estimate).

        Stores ``result_json`` with it. Settling an expired reservation still
        records the spend; settling a settled one changes nothing (first wins).
        """

    @abstractmethod
    def release(self, reservation_id: str) -> None:
        """Delete an open reservation so it no longer counts."""

    @abstractmethod
    def spent(self, thread_id: str | None = None) -> float:
        """USD settled by one thread, or by all threads (live reservations excluded)."""

    @abstractmethod
    def escalations(self, thread_id: str) -> int:
        """Settled escalations of a thread (live reservations excluded)."""

    @abstractmethod
    def usage(self, thread_id: str | None = None) -> Usage:
        """Settled and live spend of a thread (if given) and of every thread."""

    def close(self) -> None:  # noqa: B027 - optional hook; the memory ledger holds nothing
        """Release connections; the ledger must not be used afterwards."""

    async def areserve(
        self,
        thread_id: str,
        *,
        estimate_usd: float,
        limits: Limits,
        ttl_s: float,
        key: str | None = None,
    ) -> Reservation:
        """Async ``reserve``."""
        return await asyncio.to_thread(
            self.reserve,
            thread_id,
            estimate_usd=estimate_usd,
            limits=limits,
            ttl_s=ttl_s,
            key=key,
        )

    async def asettle(
        self, reservation_id: str, *, actual_usd: float | None, result_json: str | None = None
    ) -> None:
        """Async ``settle``."""
        await asyncio.to_thread(
            self.settle, reservation_id, actual_usd=actual_usd, result_json=result_json
        )

    async def arelease(self, reservation_id: str) -> None:
        """Async ``release``."""
        await asyncio.to_thread(self.release, reservation_id)

    async def aspent(self, thread_id: str | None = None) -> float:
        """Async ``spent``."""
        return await asyncio.to_thread(self.spent, thread_id)

    async def aescalations(self, thread_id: str) -> int:
        """Async ``escalations``."""
        return await asyncio.to_thread(self.escalations, thread_id)

    async def ausage(self, thread_id: str | None = None) -> Usage:
        """Async ``usage``."""
        return await asyncio.to_thread(self.usage, thread_id)

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
        key: str | None = None,
        revive_id: str | None = None,
    ) -> Reservation:
        """Build the outcome of a reservation from what is committed (shared by every ledger).

        ``revive_id``: the id of this key's expired reservation, reused if granted.
        """
        reason = refusal_reason(
            limits, committed, thread_id=thread_id, estimate_nanos=to_nanos(estimate_usd)
        )
        granted = reason is None
        return Reservation(
            ledger=self,
            id=(revive_id or uuid.uuid4().hex) if granted else "",
            thread_id=thread_id,
            granted=granted,
            reason=reason or GRANTED_REASON,
            estimate_usd=estimate_usd,
            key=key,
        )

    def _from_key(self, row: KeyedRow, *, thread_id: str, key: str) -> Reservation | None:
        """The reservation a key already holds, or ``None`` when it expired open.

        Raises:
            ValueError: The key belongs to another thread.
        """
        if row.thread_id != thread_id:
            msg = (
                f"idempotency key {key!r} belongs to thread {row.thread_id!r}, "
                f"not {thread_id!r}: a key names one escalation of one thread"
            )
            raise ValueError(msg)
        common: dict[str, Any] = {
            "ledger": self,
            "id": row.id,
            "thread_id": thread_id,
            "granted": True,
            "estimate_usd": from_nanos(row.estimate_nanos),
            "key": key,
        }
        if row.actual_nanos is not None:
            return Reservation(
                **common,
                reason=SETTLED_REASON.format(key=key),
                settled_usd=from_nanos(row.actual_nanos),
                settled_result=decode_result(row.result_json),
            )
        if row.live:
            return Reservation(**common, reason=RESUMED_REASON.format(key=key), resumed=True)
        return None


@dataclass
class _Live:
    thread_id: str
    estimate_nanos: int
    expires_at: float
    key: str | None = None


@dataclass
class _Settled:
    escalations: int = 0
    nanos: int = 0


class MemoryLedger(Ledger):
    """A ledger in this process's memory: for one process, lost when it exits.

    The default (``ledger="memory://"``). Share one ``Budget`` (or one
    ``MemoryLedger``) between nodes to give them one total limit. Settled spend
    is kept as running sums, so a reservation costs O(live reservations);
    settled reservations made with a key are kept (key, cost, result) so a
    retry in this process finds them. Its methods hold a lock for
    microseconds and do no I/O, so the async ones run inline.
    """

    def __init__(self) -> None:
        """Create an empty ledger."""
        self._live: dict[str, _Live] = {}
        self._settled: dict[str, _Settled] = {}
        self._settled_nanos = 0
        self._keys: dict[str, KeyedRow] = {}  # key -> row (open: live fields are stale)
        self._lock = threading.Lock()

    def reserve(
        self,
        thread_id: str,
        *,
        estimate_usd: float,
        limits: Limits,
        ttl_s: float,
        key: str | None = None,
    ) -> Reservation:
        """See ``Ledger.reserve``."""
        with self._lock:
            now = time.monotonic()
            revive_id = None
            if key is not None and (row := self._key_row(key, now)) is not None:
                found = self._from_key(row, thread_id=thread_id, key=key)
                if found is not None:
                    if found.resumed:
                        self._live[row.id].expires_at = now + ttl_s
                    return found
                revive_id = row.id
            committed = self._committed(thread_id, now)
            reservation = self._decide(
                committed,
                thread_id=thread_id,
                estimate_usd=estimate_usd,
                limits=limits,
                key=key,
                revive_id=revive_id,
            )
            if reservation.granted:
                self._live[reservation.id] = _Live(
                    thread_id=thread_id,
                    estimate_nanos=to_nanos(estimate_usd),
                    expires_at=now + ttl_s,
                    key=key,
                )
                if key is not None:
                    self._keys[key] = KeyedRow(
                        reservation.id, thread_id, to_nanos(estimate_usd), None, live=True
                    )
            return reservation

    def settle(
        self, reservation_id: str, *, actual_usd: float | None, result_json: str | None = None
    ) -> None:
        """See ``Ledger.settle``."""
        with self._lock:
            # Kept after expiry until settled or released, so a late settle is still counted.
            entry = self._live.pop(reservation_id, None)
            if entry is None:  # settled or released by another holder of its key
                return
            nanos = entry.estimate_nanos if actual_usd is None else to_nanos(actual_usd)
            settled = self._settled.setdefault(entry.thread_id, _Settled())
            settled.escalations += 1
            settled.nanos += nanos
            self._settled_nanos += nanos
            if entry.key is not None:
                self._keys[entry.key] = KeyedRow(
                    reservation_id,
                    entry.thread_id,
                    entry.estimate_nanos,
                    nanos,
                    live=False,
                    result_json=result_json,
                )

    def release(self, reservation_id: str) -> None:
        """See ``Ledger.release``."""
        with self._lock:
            entry = self._live.pop(reservation_id, None)
            if entry is not None and entry.key is not None:
                del self._keys[entry.key]

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

    def usage(self, thread_id: str | None = None) -> Usage:
        """See ``Ledger.usage``."""
        with self._lock:
            live = list(self._live_entries(time.monotonic()))
            mine = [entry.estimate_nanos for entry in live if entry.thread_id == thread_id]
            settled = self._settled.get(thread_id, _Settled()) if thread_id else _Settled()
            return Usage(
                thread_escalations=settled.escalations,
                thread_nanos=settled.nanos,
                thread_open_escalations=len(mine),
                thread_open_nanos=sum(mine),
                total_nanos=self._settled_nanos,
                total_open_nanos=sum(entry.estimate_nanos for entry in live),
            )

    async def areserve(
        self,
        thread_id: str,
        *,
        estimate_usd: float,
        limits: Limits,
        ttl_s: float,
        key: str | None = None,
    ) -> Reservation:
        """See ``Ledger.reserve``."""
        return self.reserve(
            thread_id, estimate_usd=estimate_usd, limits=limits, ttl_s=ttl_s, key=key
        )

    async def asettle(
        self, reservation_id: str, *, actual_usd: float | None, result_json: str | None = None
    ) -> None:
        """See ``Ledger.settle``."""
        self.settle(reservation_id, actual_usd=actual_usd, result_json=result_json)

    async def arelease(self, reservation_id: str) -> None:
        """See ``Ledger.release``."""
        self.release(reservation_id)

    async def aspent(self, thread_id: str | None = None) -> float:
        """See ``Ledger.spent``."""
        return self.spent(thread_id)

    async def aescalations(self, thread_id: str) -> int:
        """See ``Ledger.escalations``."""
        return self.escalations(thread_id)

    async def ausage(self, thread_id: str | None = None) -> Usage:
        """See ``Ledger.usage``."""
        return self.usage(thread_id)

    def _key_row(self, key: str, now: float) -> KeyedRow | None:
        row = self._keys.get(key)
        if row is None or row.actual_nanos is not None:
            return row
        entry = self._live[row.id]
        return KeyedRow(row.id, row.thread_id, entry.estimate_nanos, None, entry.expires_at > now)

    def _committed(self, thread_id: str, now: float) -> Committed:
        settled = self._settled.get(thread_id, _Settled())
        live = list(self._live_entries(now))
        mine = [entry.estimate_nanos for entry in live if entry.thread_id == thread_id]
        return Committed(
            thread_escalations=settled.escalations + len(mine),
            thread_nanos=settled.nanos + sum(mine),
            total_nanos=self._settled_nanos + sum(entry.estimate_nanos for entry in live),
        )

    def _live_entries(self, now: float) -> Iterator[_Live]:
        return (entry for entry in self._live.values() if entry.expires_at > now)


def _usd(nanos: int) -> str:
    return f"${from_nanos(nanos):.4f}"
