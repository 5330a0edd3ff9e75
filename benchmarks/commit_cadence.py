"""How long a durable SQLite commit waits for the disk, depending on the work done between commits.

A raw loop of one-row INSERT + COMMIT (WAL, ``synchronous=FULL``, the pragmas of
``durability="full"``), with a busy wait of ``gap`` µs of CPU between two commits,
as an engine runs a step's Python between two checkpoints. Each gap is run in
alternating rounds; the table gives the median (min–max) of the time spent in
the commits only, in µs.

    python benchmarks/commit_cadence.py
    python benchmarks/commit_cadence.py --rounds 6 --gaps 0 20 40
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path


def commit_us(gap_us: float, n: int) -> float:
    """Mean µs spent inside each of ``n`` commits, with ``gap_us`` of busy CPU between two of them."""
    folder = Path(tempfile.mkdtemp(prefix="airt-cadence-"))
    conn = sqlite3.connect(folder / "raw.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE steps (key TEXT PRIMARY KEY, outputs TEXT)")
        inside = 0.0
        for i in range(n):
            began = time.perf_counter()
            conn.execute("INSERT INTO steps VALUES (?, ?)", (f"s{i}", "{}"))  # autocommit: one commit
            inside += time.perf_counter() - began
            until = time.perf_counter() + gap_us / 1e6
            while time.perf_counter() < until:  # the CPU stays busy, as a step's Python keeps it
                pass
    finally:
        conn.close()
        shutil.rmtree(folder, ignore_errors=True)
    return inside / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--gaps", type=float, nargs="+", default=[0, 10, 20, 30, 40, 50, 75, 100])
    opts = parser.parse_args()
    samples: dict[float, list[float]] = {gap: [] for gap in opts.gaps}
    for r in range(opts.rounds):
        for gap in opts.gaps if r % 2 == 0 else reversed(opts.gaps):
            samples[gap].append(commit_us(gap, opts.commits))
    print(f"{opts.rounds} rounds of {opts.commits:,} commits, WAL + synchronous=FULL; µs per commit")
    print(f"{'CPU between commits':>20}  {'commit, median (min–max)':>26}")
    for gap, values in samples.items():
        spread = f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"
        print(f"{gap:>17.0f} µs  {spread:>26}")


if __name__ == "__main__":
    main()
