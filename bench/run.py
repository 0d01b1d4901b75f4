"""``make bench``: run every benchmark module ``bench/bench_*.py``, one process each.

Each module writes its own JSON under ``bench/results/``; this runner prints a
line per module and exits non-zero if any failed.

    python -m bench.run                 # all of them
    python -m bench.run train rm        # bench_train.py and bench_rm.py only
    python -m bench.run --list
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    """Names of the benchmark modules (``bench_NAME.py`` -> ``NAME``), sorted."""
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run Tether's benchmarks.")
    ap.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = ap.parse_args(argv)
    names = discover()
    if args.list:
        print("\n".join(names))
        return 0
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        print(f"error: unknown benchmark {unknown[0]!r}; known: {', '.join(names)}",
              file=sys.stderr)
        return 2
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE.parent), str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    failed = []
    for name in args.names or names:
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", f"bench.bench_{name}"], cwd=HERE.parent,
                             env=env)
        status = "ok" if res.returncode == 0 else f"FAILED (exit {res.returncode})"
        print(f"bench {name}: {status} in {time.perf_counter() - t0:.0f} s", flush=True)
        if res.returncode:
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
