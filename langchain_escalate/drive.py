"""Logic written once for sync and async: a generator that yields its I/O.

The logic yields ``Call`` objects, each the same I/O in a sync and an async
flavour (a model call, a budget reservation); ``run_sync`` performs them with
``Call.run``, ``run_async`` awaits ``Call.arun``.

Example:
    >>> def double_of_answer():
    ...     value = yield Call(lambda: 21, _async_21)
    ...     return value * 2
    >>> async def _async_21():
    ...     return 21
    >>> run_sync(double_of_answer())
    42
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One piece of I/O: ``run`` performs it synchronously, ``arun`` asynchronously."""

    run: Callable[[], T]
    arun: Callable[[], Awaitable[T]]


Steps = Generator[Call[Any], Any, T]
"""Logic written as a generator of ``Call`` objects that returns a ``T``."""


def run_sync(steps: Steps[T]) -> T:
    """Drive ``steps`` to its result, performing each ``Call`` synchronously.

    A call's exception is thrown back into the logic, ``GraphBubbleUp``,
    ``KeyboardInterrupt`` and cancellation included, so it can release what
    it holds before they go on.
    """
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            call = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as stop:
            return cast("T", stop.value)
        try:
            value, error = call.run(), None
        except BaseException as exc:  # noqa: BLE001 - handed to the logic, which re-raises it
            value, error = None, exc


async def run_async(steps: Steps[T]) -> T:
    """Async twin of ``run_sync``: each ``Call`` is awaited."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            call = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as stop:
            return cast("T", stop.value)
        try:
            value, error = await call.arun(), None
        except BaseException as exc:  # noqa: BLE001 - handed to the logic, which re-raises it
            value, error = None, exc
