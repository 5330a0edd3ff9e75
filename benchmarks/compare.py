"""``make bench``'s SQLite | PostgreSQL table: the same workloads on both backends, in the same run.

Starts a durable PostgreSQL server (fsync on, PostgreSQL's defaults; from
``tests/pg_server.py``, data in ``$TMPDIR``) unless ``--pg-url`` names one (the
URL of its ``postgres`` database, as a superuser).  Every round runs each
workload once on each backend, one after the other, in fresh processes
(``backends.py``) on fresh databases, so both see the same load of the
machine; the table shows medians and min–max over the rounds.  Raw limits
(one-row INSERT + COMMIT over one connection) are measured in the same
processes.  Results go to ``benchmarks/results/backends-*.json``.

    python benchmarks/compare.py [--repeat 5] [--recovery-n 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from backends import child_env  # noqa: E402

B = "{backend}"
# (label, unit, higher is better, backends.py args, key)
ROWS = [
    ("durable steps/s, 1 workflow × 2,000 steps", "/s", True, ["steps", B, "normal", "2000"], "steps_per_s"),
    ("  raw one-row INSERT + COMMIT/s, same process", "/s", True, ["steps", B, "normal", "2000"], "raw_per_s"),
    ("  ours / raw", "", True, ["steps", B, "normal", "2000"], "ratio"),
    ("durable steps/s, durability='full'", "/s", True, ["steps", B, "full", "1000"], "steps_per_s"),
    ("  raw INSERT + COMMIT/s, waiting for the disk", "/s", True, ["steps", B, "full", "1000"], "raw_per_s"),
    ("3-step workflows/s from 4 processes", "/s", True, ["workflows", B, "1000", "4"], "workflows_per_s"),
    ("recovery of {n} crashed workflows: all COMPLETED", "s", False, ["recovery", B], "all_completed_s"),
    ("  first step resumed", "ms", False, ["recovery", B], "first_resume_ms"),
    ("approval decided in another process → next step done, median", "ms", False,
     ["approval_cross", B, "50"], "median_ms"),
    ("  90th percentile", "ms", False, ["approval_cross", B, "50"], "p90_ms"),
    ("  owner's CPU while idle", "s/min", False, ["approval_cross", B, "50"], "idle_cpu_s_per_min"),
    ("claims/s, 3 engines taking 10,000 free workflows", "/s", True, ["claims", B, "10000", "3"], "claims_per_s"),
]  # fmt: skip
BACKENDS = ("sqlite", "postgresql")


def run(args: list[str], timeout: float = 1800) -> dict:
    proc = subprocess.run(
        [sys.executable, str(HERE / "backends.py"), *args], env=child_env(), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit {proc.returncode}"}
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit in ("/s", "s/min", "ms") and value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if unit in ("", "s", "s/min") or value < 10 else f"{value:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", 5)))
    parser.add_argument("--recovery-n", type=int, default=10_000)
    parser.add_argument("--pg-url", help="a server's postgres database as a superuser (default: start one)")
    parser.add_argument("--out", default=str(HERE / "results"))
    opts = parser.parse_args()
    server = None
    pg = opts.pg_url
    if pg is None:
        from pg_server import PgServer

        server = PgServer(durable=True).start()
        pg = server.url()
        where = f"PostgreSQL {server.binaries.version_text} ({server.binaries.source}), fsync on, data in {server.dir}"
    else:
        where = "PostgreSQL at --pg-url"
    targets = {"sqlite": "sqlite", "postgresql": pg}
    started = time.time()
    samples: dict[tuple[str, ...], dict[str, list[dict]]] = {}
    try:
        for name, target in targets.items():
            t0 = time.perf_counter()
            made = run(["make_crashed", target, str(opts.recovery_n)])
            print(f"[setup] {name}: {opts.recovery_n:,} crashed workflows in {time.perf_counter() - t0:.1f} s {made}")
        distinct = list(dict.fromkeys(tuple(r[3]) for r in ROWS))
        for round_no in range(opts.repeat):
            for args in distinct:
                for name, target in targets.items():
                    result = run([a.replace(B, target) for a in args])
                    samples.setdefault(args, {}).setdefault(name, []).append(result)
            print(f"[{time.time() - started:6.0f} s] round {round_no + 1}/{opts.repeat}", flush=True)
    finally:
        if server is not None:
            server.stop()
    table = []
    for label, unit, higher, args, key in ROWS:
        row = {"metric": label.format(n=f"{opts.recovery_n:,}"), "unit": unit, "higher_is_better": higher}
        for name in BACKENDS:
            values = [s[key] for s in samples[tuple(args)][name] if key in s]
            errors = [s["error"] for s in samples[tuple(args)][name] if "error" in s]
            row[name] = {"median": statistics.median(values) if values else None, "values": values, "errors": errors}
        table.append(row)
    width = max(len(r["metric"]) for r in table)
    print(f"\n{'metric'.ljust(width)}  {'SQLite':>22}  {'PostgreSQL':>22}  unit")
    for r in table:
        cells = []
        for name in BACKENDS:
            v = r[name]["values"]
            spread = f" ({fmt(min(v), r['unit'])}–{fmt(max(v), r['unit'])})" if len(v) > 1 else ""
            cells.append((fmt(r[name]["median"], r["unit"]) + spread).rjust(22))
        note = "  " + r["postgresql"]["errors"][0] if r["postgresql"]["errors"] else ""
        print(f"{r['metric'].ljust(width)}  {cells[0]}  {cells[1]}  {r['unit']}{note}")
    elapsed = time.time() - started
    print(
        f"\n{opts.repeat} rounds, medians (min–max); {where}; total {elapsed:.0f} s; load at the end {os.getloadavg()}"
    )
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out / f"backends-{stamp}.json"
    path.write_text(json.dumps({"where": where, "repeat": opts.repeat, "seconds": elapsed, "rows": table}, indent=1))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
