"""``Budget``: the limits on strong-model spend, and the ledger that enforces them."""

from __future__ import annotations

import threading
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, WithJsonSchema, field_validator

from langchain_escalate.budget.ledger import (
    Ledger,
    Limits,
    MemoryLedger,
    Reservation,
    Usage,
    from_nanos,
    to_nanos,
)
from langchain_escalate.budget.reservation import (
    MAX_USD,
    check_usd,
    finish_despite_cancellation,
)

__all__ = ["Budget", "open_ledger"]

LEDGER_SCHEMES = ("memory", "sqlite", "postgresql", "postgres")
MAX_TTL_S = 365 * 24 * 3600.0
"""Longest reservation TTL: a year (PostgreSQL intervals, and any sane need, end well before)."""
TABLE_PARAM = "table"
"""URL query parameter naming the ledger's table (sqlite and postgres)."""


class Budget(BaseModel):
    """Limits on the strong model's spend, enforced atomically by a ledger.

    An escalation reserves its estimated cost before calling the strong model
    (``reserve``), then settles the actual cost (``Reservation.settle``) or
    releases the reservation when the call failed. A refused reservation says
    which limit refused; the escalation ladder then moves down a rung.

    Attributes:
        max_escalations_per_thread: Escalations per thread (``None``: no limit).
        max_usd_per_thread: USD per thread (``None``: no limit). Every amount
            is a finite number from 0 to ``MAX_USD`` (a billion): ledgers store
            64-bit nano-dollars, so infinity, NaN and ``1e309`` are refused here.
        max_usd_total: USD across every thread and every process sharing the
            ledger (``None``: no limit).
        ledger: Where spend is recorded: ``"memory://"`` (this process),
            ``"sqlite:///relative/file.db"`` or ``"sqlite:////absolute/file.db"``
            (the processes of one machine), ``"postgresql://..."`` (a fleet), each
            URL optionally with ``?table=name``; or a ``Ledger`` object. The
            ledger is opened at first use and kept.
        reservation_ttl_s: A reservation neither settled nor released within
            this many seconds stops counting (its process was killed); at most a year.
        default_estimate_usd: Reserved when the caller cannot estimate a cost.

    Example:
        >>> budget = Budget(max_escalations_per_thread=2, max_usd_per_thread=0.10)
        >>> first = budget.reserve("t1", estimate_usd=0.06)
        >>> first.granted
        True
        >>> for part in budget.reserve("t1", estimate_usd=0.06).reason.split("; "):
        ...     print(part)
        thread t1 has spent or reserved $0.0600 of its $0.1000
        this escalation is estimated at $0.0600
        >>> first.settle(0.03)
        >>> budget.spent("t1")
        0.03
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

    max_escalations_per_thread: int | None = Field(default=None, ge=0)
    max_usd_per_thread: float | None = Field(default=None, ge=0, le=MAX_USD, allow_inf_nan=False)
    max_usd_total: float | None = Field(default=None, ge=0, le=MAX_USD, allow_inf_nan=False)
    # A Ledger object has no JSON Schema; the YAML config can only hold a URL.
    ledger: Annotated[
        str | Ledger,
        WithJsonSchema(
            {
                "type": "string",
                "description": (
                    "memory://, sqlite:///path.db or postgresql://... (optional ?table=name)"
                ),
            }
        ),
    ] = "memory://"
    reservation_ttl_s: float = Field(default=600.0, gt=0, le=MAX_TTL_S, allow_inf_nan=False)
    default_estimate_usd: float = Field(default=0.05, ge=0, le=MAX_USD, allow_inf_nan=False)

    _opened: Ledger | None = PrivateAttr(default=None)
    _open_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @field_validator("ledger")
    @classmethod
    def _check_ledger_url(cls, value: str | Ledger) -> str | Ledger:
        if isinstance(value, str):
            # Opening a ledger object connects to nothing, so this checks the
            # whole URL (scheme, path, table name) when the config is loaded.
            open_ledger(value)
        return value

    @property
    def limits(self) -> Limits:
        """The limits in the form ledgers check them."""
        return Limits(
            max_escalations_per_thread=self.max_escalations_per_thread,
            max_nanos_per_thread=_nanos_or_none(self.max_usd_per_thread),
            max_nanos_total=_nanos_or_none(self.max_usd_total),
        )

    def get_ledger(self) -> Ledger:
        """Return the ledger, opening it from its URL on first call (thread-safe)."""
        if isinstance(self.ledger, Ledger):
            return self.ledger
        if self._opened is None:
            with self._open_lock:
                if self._opened is None:
                    self._opened = open_ledger(self.ledger)
        return self._opened

    def reserve(
        self, thread_id: str, estimate_usd: float | None = None, *, key: str | None = None
    ) -> Reservation:
        """Reserve money for one escalation of a thread, if every limit allows it.

        Checks the thread's escalations and USD (settled plus live reservations)
        and the total USD, and records the reservation, in one atomic step.
        A retry of the same escalation under the same idempotency ``key`` gets
        the earlier attempt's reservation (``resumed``, or ``already_settled``
        with its ``settled_usd`` and ``settled_result``: nothing is paid twice);
        an expired one is checked against the limits again (docs/budgets.md).

        Args:
            thread_id: The LangGraph thread (``config["configurable"]["thread_id"]``).
            estimate_usd: The escalation's expected cost; ``default_estimate_usd``
                when ``None``.
            key: The escalation's idempotency key, unique in the ledger.

        Returns:
            A ``Reservation``: check ``granted``; ``reason`` says which limit
            refused. Use it as a context manager so it never leaks.

        Raises:
            ValueError: ``estimate_usd`` is negative, not finite or above
                ``MAX_USD``; or ``key`` belongs to another thread.

        Example:
            >>> budget = Budget(max_escalations_per_thread=1)
            >>> first = budget.reserve("t1", 0.02, key="t1:ckpt-7:agent:1")
            >>> # ... the process dies here; the resumed run reserves again:
            >>> again = budget.reserve("t1", 0.02, key="t1:ckpt-7:agent:1")
            >>> again.granted, again.resumed, again.id == first.id
            (True, True, True)
        """
        return self.get_ledger().reserve(
            thread_id,
            estimate_usd=self._estimate(estimate_usd),
            limits=self.limits,
            ttl_s=self.reservation_ttl_s,
            key=key,
        )

    async def areserve(
        self, thread_id: str, estimate_usd: float | None = None, *, key: str | None = None
    ) -> Reservation:
        """Async ``reserve``; never blocks the event loop, never leaks when cancelled.

        A task cancelled while the ledger is reserving waits for the ledger,
        releases what it reserved, then lets the cancellation propagate. The
        ``Reservation`` is an async context manager: ``async with await
        budget.areserve(...) as reservation:``.

        Raises:
            ValueError: As ``reserve``.

        Example:
            >>> import asyncio
            >>> async def escalate(budget: Budget) -> float:
            ...     async with await budget.areserve("t1", 0.02) as reservation:
            ...         reservation.mark_paid(0.013)  # billed, whatever happens next
            ...     return await budget.aspent("t1")
            >>> asyncio.run(escalate(Budget()))
            0.013
        """
        reserving = self.get_ledger().areserve(
            thread_id,
            estimate_usd=self._estimate(estimate_usd),
            limits=self.limits,
            ttl_s=self.reservation_ttl_s,
            key=key,
        )
        reservation, cancelled = await finish_despite_cancellation(reserving)
        if cancelled is not None:
            await reservation.arelease()
            raise cancelled
        return reservation

    def spent(self, thread_id: str | None = None) -> float:
        """USD settled by a thread, or by every thread (live reservations excluded)."""
        return self.get_ledger().spent(thread_id)

    async def aspent(self, thread_id: str | None = None) -> float:
        """Async ``spent``."""
        return await self.get_ledger().aspent(thread_id)

    def escalations(self, thread_id: str) -> int:
        """Settled escalations of a thread (live reservations excluded)."""
        return self.get_ledger().escalations(thread_id)

    async def aescalations(self, thread_id: str) -> int:
        """Async ``escalations``."""
        return await self.get_ledger().aescalations(thread_id)

    def status(self, thread_id: str | None = None) -> dict[str, Any]:
        """Spent, reserved and remaining, per limit: a JSON-ready snapshot of the budget.

        Args:
            thread_id: The thread whose per-thread limits to report; ``None``
                reports the total only (the per-thread entries are ``None``).

        Returns:
            ``{"ledger", "thread_id", "escalations_per_thread", "usd_per_thread",
            "usd_total"}``; each limit ``{"limit", "spent", "reserved", "remaining"}``
            (settled; held by open reservations; ``limit - spent - reserved``
            floored at 0; ``None`` when not configured). Escalations are counts.

        Example:
            >>> budget = Budget(max_escalations_per_thread=3, max_usd_total=1.0)
            >>> budget.reserve("t1", 0.25).settle(0.2)
            >>> _ = budget.reserve("t1", 0.1)
            >>> status = budget.status("t1")
            >>> status["escalations_per_thread"]
            {'limit': 3, 'spent': 1, 'reserved': 1, 'remaining': 1}
            >>> status["usd_total"]
            {'limit': 1.0, 'spent': 0.2, 'reserved': 0.1, 'remaining': 0.7}
        """
        ledger = self.get_ledger()
        return _status(self.limits, ledger.usage(thread_id), thread_id, type(ledger).__name__)

    async def astatus(self, thread_id: str | None = None) -> dict[str, Any]:
        """Async ``status``."""
        ledger = self.get_ledger()
        usage = await ledger.ausage(thread_id)
        return _status(self.limits, usage, thread_id, type(ledger).__name__)

    def close(self) -> None:
        """Close a ledger this budget opened from its URL (a ``Ledger`` object is the caller's)."""
        with self._open_lock:
            opened, self._opened = self._opened, None
        if opened is not None:
            opened.close()

    async def aclose(self) -> None:
        """Async ``close``; also closes the PostgreSQL pool of the running event loop."""
        with self._open_lock:
            opened, self._opened = self._opened, None
        if opened is not None:
            await opened.aclose()

    def __getstate__(self) -> dict[Any, Any]:
        """Pickle the settings only: the copy opens its own ledger (connections, locks)."""
        state: dict[Any, Any] = super().__getstate__()
        state["__pydantic_private__"] = None
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        """Restore the settings with a ledger not opened yet."""
        super().__setstate__(state)
        self.__pydantic_private__ = None
        self.model_post_init(None)

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Budget:
        """A copy shares the opened ledger: it is the same budget."""
        return self.model_copy()

    def _estimate(self, estimate_usd: float | None) -> float:
        if estimate_usd is None:
            return self.default_estimate_usd
        check_usd("estimate_usd", estimate_usd)
        return estimate_usd


def open_ledger(url: str) -> Ledger:
    """Open the ledger a URL names.

    Args:
        url: ``memory://``, ``sqlite:///relative.db``, ``sqlite:////absolute.db``,
            ``postgresql://...`` or ``postgres://...``; ``?table=name`` sets the
            table of a sqlite or postgres ledger.

    Returns:
        A new ``Ledger``.

    Raises:
        ValueError: The URL is not one of these forms.

    Example:
        >>> type(open_ledger("memory://")).__name__
        'MemoryLedger'
    """
    scheme, target, table = _parse_ledger_url(url)
    if scheme == "memory":
        return MemoryLedger()
    if scheme == "sqlite":
        from langchain_escalate.budget.sqlite import SQLiteLedger  # noqa: PLC0415 - only when used

        return SQLiteLedger(target, **_table_kwargs(table))
    from langchain_escalate.budget.postgres import PostgresLedger  # noqa: PLC0415 - only when used

    return PostgresLedger(target, **_table_kwargs(table))


def _parse_ledger_url(url: str) -> tuple[str, str, str | None]:
    """Split a ledger URL into (scheme, sqlite path or postgres DSN, table)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in LEDGER_SCHEMES:
        msg = (
            f"budget ledger {url!r} is not a ledger URL: use 'memory://', "
            "'sqlite:///path/to/ledger.db' or 'postgresql://user@host/db'"
        )
        raise ValueError(msg)
    query = parse_qs(parts.query)
    table = query.pop(TABLE_PARAM, [None])[-1]
    if scheme == "memory":
        return scheme, "", None
    if scheme == "sqlite":
        # SQLAlchemy's convention: three slashes, a relative path; four, an absolute one.
        path = parts.path.removeprefix("/")
        if parts.netloc or not path or path == ":memory:":
            msg = (
                f"budget ledger {url!r} names no SQLite file: use 'sqlite:///relative/path.db' "
                "or 'sqlite:////absolute/path.db'"
            )
            raise ValueError(msg)
        return scheme, path, table
    dsn = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
    return scheme, dsn, table


def _status(limits: Limits, usage: Usage, thread_id: str | None, ledger: str) -> dict[str, Any]:
    """Assemble ``Budget.status`` from the ledger's usage (amounts in nano-dollars)."""
    per_thread = thread_id is not None
    return {
        "ledger": ledger,
        "thread_id": thread_id,
        "escalations_per_thread": _entry(
            limits.max_escalations_per_thread,
            usage.thread_escalations,
            usage.thread_open_escalations,
            count=True,
        )
        if per_thread
        else None,
        "usd_per_thread": _entry(
            limits.max_nanos_per_thread, usage.thread_nanos, usage.thread_open_nanos
        )
        if per_thread
        else None,
        "usd_total": _entry(limits.max_nanos_total, usage.total_nanos, usage.total_open_nanos),
    }


def _entry(limit: int | None, spent: int, reserved: int, *, count: bool = False) -> dict[str, Any]:
    remaining = None if limit is None else max(0, limit - spent - reserved)
    if count:
        return {"limit": limit, "spent": spent, "reserved": reserved, "remaining": remaining}
    return {
        "limit": _usd_or_none(limit),
        "spent": from_nanos(spent),
        "reserved": from_nanos(reserved),
        "remaining": _usd_or_none(remaining),
    }


def _usd_or_none(nanos: int | None) -> float | None:
    return None if nanos is None else from_nanos(nanos)


def _table_kwargs(table: str | None) -> dict[str, Any]:
    return {} if table is None else {"table": table}


def _nanos_or_none(usd: float | None) -> int | None:
    return None if usd is None else to_nanos(usd)
