"""`python -m bench` (what `make bench` runs): every benchmark in bench/, one after another.

Each `bench/bench_*.py` has a `main(argv)` and can be run alone: `python -m bench.bench_store --help`.
Results are printed as JSON lines; copy the figures into BENCHMARKS.md with command, machine and date.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    names = argv if argv else sorted(
        m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_")
    )
    for name in names:
        print(f"== bench.{name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        rc = module.main([])
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
