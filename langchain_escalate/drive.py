"""Logic written once for sync and async: a generator that yields its I/O as ``Call`` objects.

Example:
    >>> import asyncio
    >>> def doubled():
    ...     return (yield Call(lambda: 21, lambda: asyncio.sleep(0, 21))) * 2
    >>> run_sync(doubled()), asyncio.run(run_async(doubled()))
    (42, 42)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One piece of I/O: ``run`` performs it synchronously, ``arun`` asynchronously."""

    run: Callable[[], T]
    arun: Callable[[], Awaitable[T]]

    def then(self, after: Callable[[T], U]) -> Call[U]:
        """The same I/O with ``after`` applied to its result, sync or async."""

        async def arun() -> U:
            return after(await self.arun())

        return Call(lambda: after(self.run()), arun)


Steps = Generator[Call[Any], Any, T]
"""Logic written as a generator of ``Call`` objects that returns a ``T``."""


def run_sync(steps: Steps[T]) -> T:
    """Drive ``steps``, running each ``Call``; any error is thrown in, so the logic can clean up."""
    value, error = None, cast("BaseException | None", None)
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
    value, error = None, cast("BaseException | None", None)
    while True:
        try:
            call = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as stop:
            return cast("T", stop.value)
        try:
            value, error = await call.arun(), None
        except BaseException as exc:  # noqa: BLE001 - handed to the logic, which re-raises it
            value, error = None, exc
