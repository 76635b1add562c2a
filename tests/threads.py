"""Run work in several threads released together by a barrier (no sleeps to line them up)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections


def in_threads(count: int, work: Callable[[int], Any], *, timeout: float = 60) -> list[Any]:
    """`work(i)` in `count` threads at once; each result, or the exception it raised."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def runner(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except BaseException as exc:  # noqa: BLE001 - reported through results
            results[index] = exc
        finally:
            # Each thread had its own connection; a persistent one (CONN_MAX_AGE) would
            # outlive the thread and keep the test database from being dropped.
            connections.close_all()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results
