"""Reservations per second (reserve + settle) per budget ledger.

Each ledger runs the same workload four times: one thread alone with a total
limit; N threads sharing the ledger with a total limit (every reservation must
see every thread's spend, so the ledger serializes them); N threads with
per-thread limits only (reservations of different threads need not wait for
each other); the same with an idempotency key on every reservation (the
engine's way: one key lookup more per reservation). The in-memory ledger,
measured in the same run, is the baseline.

    python benchmarks/ledger.py [--iterations 2000] [--threads 8]
        [--postgres-dsn postgresql://postgres@127.0.0.1:5432/test]

PostgreSQL is skipped (with the reason printed) when the server is unreachable.
Its table lives in a throwaway schema, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_escalate.budget import Budget

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ESTIMATE_USD = 0.001


def run(budget: Budget, *, iterations: int, threads: int, keyed: bool = False) -> float:
    """Reserve and settle ``iterations`` times over ``threads`` threads; return per second."""
    per_thread = iterations // threads
    run_id = uuid.uuid4().hex[:8]
    start = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                thread_id = f"w{index}-t{i % 50}"
                key = f"{thread_id}:{run_id}:{i}" if keyed else None
                reservation = budget.reserve(thread_id, ESTIMATE_USD, key=key)
                if not reservation.granted:
                    msg = f"refused: {reservation.reason}"
                    raise RuntimeError(msg)
                reservation.settle(ESTIMATE_USD / 2)
        except BaseException as error:
            errors.append(error)
            raise

    pool = [threading.Thread(target=worker, args=(index,)) for index in range(threads)]
    for thread in pool:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return per_thread * threads / elapsed


@contextmanager
def postgres_url(dsn: str) -> Iterator[str]:
    import psycopg  # noqa: PLC0415 - optional dependency
    from psycopg import sql  # noqa: PLC0415 - optional dependency

    schema = f"escalate_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        separator = "&" if "?" in dsn else "?"
        yield f"{dsn}{separator}table={schema}.reservations"
    finally:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


TOTAL = {"max_usd_total": 1e9}  # generous: every reservation takes the total-checking path
PER_THREAD = {"max_usd_per_thread": 1e9, "max_escalations_per_thread": 10**9}


def measure(
    name: str, make_url: Callable[[], str], *, iterations: int, threads: int
) -> tuple[str, list[float]]:
    figures = []
    workloads = (
        (1, TOTAL, False),
        (threads, TOTAL, False),
        (threads, PER_THREAD, False),
        (threads, PER_THREAD, True),
    )
    for workers, limits, keyed in workloads:
        budget = Budget(ledger=make_url(), **limits)
        budget.reserve("warm-up", 0.0).settle(0.0)  # opens connections, creates the table
        figures.append(run(budget, iterations=iterations, threads=workers, keyed=keyed))
        budget.close()
    return name, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--postgres-dsn",
        default=os.environ.get(
            "ESCALATE_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()

    rows = []
    rows.append(
        measure("memory", lambda: "memory://", iterations=args.iterations, threads=args.threads)
    )
    with tempfile.TemporaryDirectory() as directory:
        counter = iter(range(1_000))
        rows.append(
            measure(
                "sqlite",
                lambda: f"sqlite:///{Path(directory) / f'ledger{next(counter)}.db'}",
                iterations=args.iterations,
                threads=args.threads,
            )
        )
    try:
        with postgres_url(args.postgres_dsn) as url:
            rows.append(
                measure("postgres", lambda: url, iterations=args.iterations, threads=args.threads)
            )
    except Exception as error:  # noqa: BLE001 - any failure means the server is unusable
        print(f"postgres: skipped ({type(error).__name__}: {error})")

    baseline = rows[0][1]
    print(f"\nreserve+settle per second, {args.iterations} reservations per column")
    columns = [
        "1 thread, total",
        f"{args.threads} thr, total",
        f"{args.threads} thr, per-thread",
        f"{args.threads} thr, keyed",
    ]
    print(f"{'ledger':<10}" + "".join(f"{column:>20}{'vs memory':>11}" for column in columns))
    for name, figures in rows:
        print(
            f"{name:<10}"
            + "".join(
                f"{figure:>20,.0f}{figure / base:>10.3f}x"
                for figure, base in zip(figures, baseline, strict=True)
            )
        )


if __name__ == "__main__":
    main()
