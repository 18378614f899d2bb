"""``python -m bench [NAME ...] [--quick] [--list]``: run the named benchmarks (all when none is named)."""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from bench import BenchContext, discover, format_results


def main(argv: list[str] | None = None) -> int:
    registry = discover()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run certstore benchmarks. Each prints human lines, then its results as key=value lines.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--quick", action="store_true", help="short runs, for smoke tests (numbers are rough)"
    )
    args = parser.parse_args(argv)

    if args.list:
        width = max((len(name) for name in registry), default=0)
        for name, benchmark in registry.items():
            print(f"{name:<{width}}  {benchmark.description}")
        return 0

    unknown = [name for name in args.names if name not in registry]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(registry)}")
    selected = list(dict.fromkeys(args.names)) or list(registry)

    context = BenchContext(quick=args.quick)
    failed: list[str] = []
    for name in selected:
        benchmark = registry[name]
        print(f"== {name}: {benchmark.description}{' (quick)' if args.quick else ''} ==", flush=True)
        start = time.perf_counter()
        try:
            results = benchmark.function(context)
            lines = format_results(results)
        except Exception:
            traceback.print_exc()
            print(f"!! benchmark {name} failed", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        print(f"-- {name} took {time.perf_counter() - start:.1f} s", flush=True)
        for line in lines:
            print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
