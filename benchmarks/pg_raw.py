"""The limit a PostgreSQL store is compared with: raw one-row INSERT + COMMIT over one psycopg connection.

On a durable server (``fsync`` on, PostgreSQL's defaults; started from
``tests/pg_server.py`` in ``$TMPDIR`` unless ``--url`` names one), each round
inserts ``--rows`` rows into the same ``steps`` table as the SQLite reference
in ``workloads.py``, one commit per row, with ``synchronous_commit`` on and off,
three ways:

``autocommit``   one ``INSERT`` in autocommit mode: one round trip, the server commits
``transaction``  ``BEGIN``; ``INSERT``; ``COMMIT`` as psycopg sends them: three round trips
``pipeline``     the same three statements sent together in pipeline mode: one round trip

Rounds alternate the variants so that all see the same load of the machine; each
measurement opens a fresh connection and a fresh table.  Prints the median and
min–max per variant (``run.py``'s table) and writes every sample as JSON under
``benchmarks/results/``.

    python benchmarks/pg_raw.py [--rows 2000] [--repeat 5] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from run import Figure, Metric, machine, print_table, summarise  # noqa: E402

MODES = ("autocommit", "transaction", "pipeline")
SYNC = ("off", "on")


def raw_commits(url: str, n: int, synchronous_commit: str, mode: str) -> float:
    """Seconds for ``n`` one-row INSERT + COMMIT over one fresh connection (see the module docstring)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS steps")
        conn.execute(
            "CREATE TABLE steps (workflow_id TEXT, step_name TEXT, outputs TEXT, PRIMARY KEY (workflow_id, step_name))"
        )
        conn.execute(f"SET synchronous_commit = {synchronous_commit}")
        insert = "INSERT INTO steps VALUES (%s, %s, %s)"
        conn.execute(insert, ("warm-up", "s", "{}"))  # connection set up, plan cached, before the clock starts
        t0 = time.perf_counter()
        if mode == "autocommit":
            for i in range(n):
                conn.execute(insert, ("0123456789abcdef", f"s{i}", "{}"), prepare=True)
        elif mode == "transaction":
            conn.autocommit = False
            for i in range(n):
                conn.execute(insert, ("0123456789abcdef", f"s{i}", "{}"), prepare=True)
                conn.commit()
        elif mode == "pipeline":
            for i in range(n):
                with conn.pipeline():
                    conn.execute("BEGIN")
                    conn.execute(insert, ("0123456789abcdef", f"s{i}", "{}"), prepare=True)
                    conn.execute("COMMIT")
        else:
            raise ValueError(mode)
        elapsed = time.perf_counter() - t0
        conn.autocommit = True
        assert conn.execute("SELECT count(*) FROM steps").fetchone() == (n + 1,)
        conn.execute("DROP TABLE steps")
    return elapsed


def figures(rows: int) -> list[Figure]:
    metrics = []
    for mode in MODES:
        trips = "1 round trip" if mode != "transaction" else "3 round trips"
        metrics.append(Metric(f"{mode}_per_s", f"{mode} ({trips}): commits/s", "/s"))
        metrics.append(Metric(f"{mode}_us", f"{mode}: µs per commit", "µs", digits=1))
    return [
        Figure(f"sync-{sync}", f"raw PostgreSQL, {rows:,} one-row commits, synchronous_commit={sync}", [], metrics)
        for sync in SYNC
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", 5)))
    parser.add_argument("--url", help="an existing server's database (default: start a durable one)")
    parser.add_argument("--out", default=str(HERE / "results"))
    opts = parser.parse_args()
    server = None
    url = opts.url
    if url is None:
        from pg_server import PgServer

        server = PgServer(durable=True).start()
        url = server.create_database("bench")
        where = f"{server.binaries.source} PostgreSQL {server.binaries.version_text}, data in {server.dir}"
    else:
        where = "server at --url"
    started = time.time()
    figs = {f.name: f for f in figures(opts.rows)}
    try:
        import psycopg

        with psycopg.connect(url) as conn:
            settings = conn.execute(
                "SELECT current_setting('server_version'), current_setting('fsync'), current_setting('wal_sync_method')"
            ).fetchone()
        print(f"[setup] {where}; server {settings[0]}, fsync={settings[1]}, wal_sync_method={settings[2]}")
        for round_no in range(opts.repeat):
            for sync in SYNC:
                sample = {}
                for mode in MODES:
                    seconds = raw_commits(url, opts.rows, sync, mode)
                    sample[f"{mode}_per_s"] = opts.rows / seconds
                    sample[f"{mode}_us"] = seconds / opts.rows * 1e6
                figs[f"sync-{sync}"].samples.append(sample)
            print(f"[{time.time() - started:6.1f} s] round {round_no + 1}/{opts.repeat}", flush=True)
    finally:
        if server is not None:
            server.stop()
    rows = [r for fig in figs.values() for r in summarise(fig)]
    print_table(rows)
    elapsed = time.time() - started
    print(f"\n{opts.repeat} rounds; total {elapsed:.0f} s; {where}; machine: {machine()['cpu']}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, psycopg {psycopg.__version__}")  # fmt: skip
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "server": {"version": settings[0], "fsync": settings[1], "wal_sync_method": settings[2], "where": where},
        "repeat": opts.repeat,
        "seconds": elapsed,
        "rows": rows,
        "samples": {name: fig.samples for name, fig in figs.items()},
    }
    path = out / f"pg-raw-{stamp}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
