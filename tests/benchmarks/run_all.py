"""Run every benchmark under tests/benchmarks/ (`make bench`); each prints its figures and its baseline.

Run: python -m tests.benchmarks.run_all [--quick] [bench_NAME ...]
`--quick` runs each at tiny sizes, in seconds, to prove it still works (the tests do; the figures mean little).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from pathlib import Path


def benchmark_names() -> list[str]:
    """The `bench_*` modules beside this one, in name order."""
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    """Run each (or each named) `bench_*` module's main(); report failures at the end with a non-zero exit."""
    parser = argparse.ArgumentParser(prog="run_all", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: prove each benchmark runs")
    parser.add_argument("names", nargs="*", metavar="bench_NAME", help="only these (default: every one)")
    args = parser.parse_args(argv)
    names = benchmark_names()
    if unknown := sorted(set(args.names) - set(names)):
        parser.error(f"no benchmark named {', '.join(unknown)}; there are {', '.join(names)}")
    failed = []
    for name in args.names or names:
        print(f"== {name}", flush=True)
        try:
            importlib.import_module(f"tests.benchmarks.{name}").main(quick=args.quick)
        except Exception:
            traceback.print_exc()
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
