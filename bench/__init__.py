"""certstore benchmarks: ``python -m bench [NAME ...] [--quick] [--list]``.

Every benchmark lives in a module of this package and registers itself::

    from bench import BenchContext, Results, register

    @register("issuance", "certificates issued per second through the service layer")
    def issuance(ctx: BenchContext) -> Results:
        rate = ctx.rate(issue_one, seconds=ctx.pick(full=5.0, quick=0.5))
        ctx.log(f"issued {rate.per_s:.1f}/s")
        return {"issue_per_s": rate.per_s}

The runner imports every public module of the package (names not starting with ``_``), so adding a
benchmark means adding a module; nothing else changes. A benchmark writes human-readable lines through
:meth:`BenchContext.log` and returns its machine-readable results, which the runner prints last, one
``key=value`` line each (numbers; ``nan`` when something could not be measured).
"""

from __future__ import annotations

import importlib
import math
import os
import pkgutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO

__all__ = [
    "REGISTRY",
    "BenchContext",
    "Benchmark",
    "Rate",
    "Results",
    "discover",
    "format_results",
    "measure_rate",
    "register",
    "single_cpu",
]

#: What a benchmark returns: metric name → value. Names are ``[a-z0-9_]+``; values are numbers.
Results = dict[str, float | int]

BenchFunction = Callable[["BenchContext"], Results]


@dataclass(frozen=True)
class Rate:
    """``calls`` calls in ``seconds`` of wall time."""

    calls: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else float("nan")

    @property
    def us_per_call(self) -> float:
        return 1e6 * self.seconds / self.calls if self.calls else float("nan")


def measure_rate(function: Callable[[], object], seconds: float, *, min_calls: int = 3) -> Rate:
    """Calls ``function`` until ``seconds`` of wall time have passed (and at least ``min_calls`` times).

    One untimed warm-up call comes first (caches, lazy imports). The clock is read after every call, which
    costs ~0.1 µs: negligible next to the operations measured here; batch very fast operations yourself.
    """
    function()
    clock = time.perf_counter
    calls = 0
    start = clock()
    deadline = start + seconds
    while True:
        function()
        calls += 1
        now = clock()
        if now >= deadline and calls >= min_calls:
            return Rate(calls, now - start)


@contextmanager
def single_cpu() -> Iterator[int | None]:
    """Pins this process, and the children it starts meanwhile, to one CPU; yields its number (None if the
    platform cannot pin)."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    previous = os.sched_getaffinity(0)
    cpu = min(previous)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, previous)


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    function: BenchFunction


#: name → benchmark, filled by :func:`register` as modules are imported (see :func:`discover`).
REGISTRY: dict[str, Benchmark] = {}


def register(name: str, description: str) -> Callable[[BenchFunction], BenchFunction]:
    """Decorator: make ``function`` runnable as ``python -m bench NAME``."""
    if not name or not all(c.islower() or c.isdigit() or c in "_-" for c in name):
        raise ValueError(f"benchmark name {name!r}: use lower-case letters, digits, '_' and '-'")

    def decorate(function: BenchFunction) -> BenchFunction:
        existing = REGISTRY.get(name)
        if existing is not None and existing.function is not function:
            raise ValueError(f"benchmark {name!r} is registered twice ({existing.function.__module__})")
        REGISTRY[name] = Benchmark(name, description, function)
        return function

    return decorate


def discover() -> dict[str, Benchmark]:
    """Import every public module of this package so that their benchmarks register; returns the registry."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    return dict(sorted(REGISTRY.items()))


@dataclass
class BenchContext:
    """What a running benchmark gets: the mode (``quick`` for smoke tests) and where to write."""

    quick: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)

    def pick(self, *, full: float, quick: float) -> float:
        """``quick`` in quick mode, ``full`` otherwise (durations, iteration counts)."""
        return quick if self.quick else full

    def log(self, line: str = "") -> None:
        print(line, file=self.out, flush=True)

    def rate(self, function: Callable[[], object], seconds: float, *, min_calls: int = 3) -> Rate:
        """Call ``function`` repeatedly for ``seconds`` of wall time (after one warm-up call)."""
        return measure_rate(function, seconds, min_calls=min_calls)


def _format_value(value: float | int) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.1f}"


def format_results(results: Results) -> list[str]:
    """The ``key=value`` lines for ``results``, in insertion order."""
    lines = []
    for key, value in results.items():
        if not key or not all(c.islower() or c.isdigit() or c == "_" for c in key):
            raise ValueError(f"result key {key!r}: use lower-case letters, digits and '_'")
        if not isinstance(value, int | float):
            raise TypeError(f"result {key!r} is {type(value).__name__}, not a number")
        lines.append(f"{key}={_format_value(value)}")
    return lines
