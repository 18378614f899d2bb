"""Running a coroutine to its end from a synchronous test, whatever loop this thread already has."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coroutine)`` on a thread of its own: the test's thread may have a loop running already —
    Playwright's synchronous API keeps one there for the whole session once a page test has started the browser,
    and the parallel suite (``pytest -n``) runs page tests and others in the same process in any order."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-coroutine") as pool:
        return pool.submit(asyncio.run, coroutine).result()
