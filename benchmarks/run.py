"""``make bench``: every figure of the performance table, measured side by side.

Each figure runs in a fresh process (``workloads.py``), at least five times;
the table shows the median and the min–max of those runs and, where raw
SQLite is the reference, the ratio measured in the same process.  The whole
result (every sample, the machine, the command) is written as JSON under
``benchmarks/results/``.

    python benchmarks/run.py                 # everything (a few minutes)
    python benchmarks/run.py --only steps,views --repeat 7
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report import shown_digits  # noqa: E402
from workloads import child_env, make_crashed_db  # noqa: E402


@dataclass
class Metric:
    key: str
    label: str
    unit: str
    target: str = ""
    ok: object = None  # callable(median) -> bool
    ratio_of: str | None = None  # key of the reference metric, shown next to this one
    digits: int = 0


@dataclass
class Figure:
    name: str
    title: str
    args: list[str]
    metrics: list[Metric]
    repeat: int | None = None
    setup: str | None = None
    samples: list[dict] = field(default_factory=list)


def figures(recovery_n: int, memory_n: int) -> list[Figure]:
    ge = lambda x: lambda v: v >= x  # noqa: E731
    le = lambda x: lambda v: v <= x  # noqa: E731
    steps_metrics = [
        Metric("steps_per_s", "steps/s", "/s"),
        Metric("us_per_step", "µs per step", "µs", digits=1),
        Metric("raw_commits_per_s", "raw sqlite3 INSERT+COMMIT/s", "/s"),
        Metric("ratio", "ours / raw", "", "≥ 0.5", ge(0.5), digits=2),
        Metric("protocol_us_per_step", "raw sqlite3 running our checkpoint's SQL", "µs", digits=1),
        Metric("protocol_ratio", "best ratio that SQL allows (raw / our SQL)", "", digits=2),
        Metric("python_us_per_step", "our Python per step (ours − our SQL)", "µs", digits=1),
        Metric("start_ms", "of which start(): validate, compile, insert the steps", "ms", digits=1),
        Metric("running_us_per_step", "µs per step once started", "µs", digits=1),
        Metric("running_ratio", "ours / raw once started", "", digits=2),
        Metric("store_us_per_step", "of which in the store's complete() (statement + commit)", "µs", digits=1),
        Metric("outside_store_us_per_step", "of which our Python outside the store", "µs", digits=1),
    ]
    full_metrics = [
        Metric("ratio", "ours / raw", "", "≥ 0.8", ge(0.8), digits=2) if m.key == "ratio" else m for m in steps_metrics
    ]
    workflow_metrics = [
        Metric("workflows_per_s", "workflows/s", "/s"),
        Metric("raw_commits_per_s", "raw sqlite3 INSERT+COMMIT/s", "/s"),
        Metric("ratio", "workflows/s ÷ raw commits/s (each needs ≥ 2 commits)", "", "≥ 0.25", ge(0.25), digits=3),
    ]
    return [
        Figure(
            "steps-normal", "1. durable steps, 1 workflow × 2,000 steps (normal)", ["steps", "normal"], steps_metrics
        ),
        Figure("steps-full", "1. durable steps, 1 workflow × 2,000 steps (full)", ["steps", "full"], full_metrics),
        Figure(
            "workflows-sequential",
            "2. 1,000 workflows × 3 steps, started one after another",
            ["workflows", "sequential"],
            [
                *workflow_metrics,
                Metric("checkpoints_per_commit", "checkpoints per commit", "", digits=2),
                Metric("statements_per_workflow", "SQL statements per workflow", "", digits=1),
                Metric("cpu_us_per_workflow", "CPU µs per workflow, every thread", "µs", digits=0),
                Metric("sql_cpu_us_per_workflow", "of which SQLite's (CPU of the statements)", "µs", digits=0),
                Metric("sql_us_per_workflow", "wall µs per workflow in SQLite calls (with GIL waits)", "µs", digits=0),
            ],
        ),
        Figure(
            "workflows-threads",
            "2. 1,000 workflows × 3 steps, started from 4 threads",
            ["workflows", "threads"],
            [
                *workflow_metrics,
                Metric("checkpoints_per_commit", "checkpoints per commit (group commit)", "", digits=2),
            ],
        ),
        Figure(
            "workflow-sql",
            "2. one 3-step workflow's statements replayed by raw sqlite3 (the floor SQLite sets)",
            ["workflow_sql", "1000"],
            [
                Metric("statements_per_workflow", "statements per workflow", "", digits=0),
                Metric("commits_per_workflow", "commits per workflow (run alone)", "", digits=0),
                Metric("floor_us_per_workflow", "µs per workflow, SQL alone", "µs", digits=0),
                Metric("raw_us_per_commit", "raw sqlite3 INSERT+COMMIT", "µs", digits=1),
                Metric("best_ratio", "best workflows ratio that SQL allows", "", digits=3),
            ],
        ),
        Figure(
            "workflows-each",
            "2. 1,000 workflows × 3 steps, each waited for before the next",
            ["workflows", "each"],
            [Metric("workflows_per_s", "workflows/s", "/s")],
        ),
        Figure(
            "recovery",
            f"3. recovery of {recovery_n:,} crashed workflows (SIGKILLed after step 1)",
            ["recovery", "{crashed_db}"],
            [
                Metric("all_completed_s", "Engine(db) → all COMPLETED", "s", "≤ 2.5 s", le(2.5), digits=2),
                Metric("first_resume_ms", "Engine(db) → first step resumed", "ms", "≤ 100 ms", le(100), digits=1),
                Metric("recover_call_s", "of which recover(): find, claim, load", "s", digits=2),
                Metric("cpu_s", "CPU time, every thread", "s", digits=2),
                Metric("sql_cpu_s", "of which SQLite's (CPU of the statements)", "s", digits=2),
                Metric("sql_s", "wall time in SQLite calls (with GIL waits)", "s", digits=2),
                Metric("statements_per_workflow", "SQL statements per workflow", "", digits=1),
            ],
            setup="crashed_db",
        ),
        Figure(
            "approval-local",
            "4. approval round trip in-process (run.approve() → next step done), median of 200",
            ["approval_local", "200"],
            [Metric("median_ms", "median", "ms", "≤ 2 ms", le(2), digits=2)],
        ),
        Figure(
            "approval-remote",
            "4. approval round trip across processes (decision committed → next step done)",
            ["approval_remote", "20", "5"],
            [
                Metric("median_ms", "median of 20", "ms", "≤ 200 ms", le(200), digits=1),
                Metric("command_median_ms", "whole approving command → next step done", "ms", digits=1),
                Metric("idle_cpu_s_per_min", "waiting engine's CPU while idle", "s/min", "≈ 0", le(0.6), digits=3),
            ],
        ),
        Figure(
            "views",
            "5. views over 100,000 workflows / 1,000,000 steps",
            ["views", "{views_db}"],
            [
                Metric("runs_s", "runs()", "s", "≤ 1.5 s", le(1.5), digits=2),
                Metric("steps_ms", "steps(workflow_id=...)", "ms", "≤ 20 ms", le(20), digits=1),
                Metric("first_page_ms", "list_workflows(limit=50)", "ms", "≤ 50 ms", le(50), digits=2),
                Metric("status_filter_ms", "list_workflows(status=..., limit=50)", "ms", "≤ 50 ms", le(50), digits=2),
                Metric("db_mb", "database size", "MB", digits=0),
            ],
            setup="views_db",
        ),
        Figure(
            "memory",
            f"6. memory: one engine, {memory_n:,} completed workflows (3 steps, batches of 1,000 from 4 threads)",
            ["memory", str(memory_n)],
            [
                Metric("peak_1k_mb", "peak RSS after 1,000", "MB", digits=1),
                Metric("peak_end_mb", f"peak RSS after {memory_n:,}", "MB", digits=1),
                Metric("growth", "growth of the peak", "", "≤ 10 %", le(0.10), digits=3),
                Metric("rss_1k_mb", "RSS now, after 1,000", "MB", digits=1),
                Metric("rss_end_mb", f"RSS now, after {memory_n:,}", "MB", digits=1),
                Metric("workflows_per_s", "workflows/s over the whole run", "/s"),
            ],
        ),
        Figure(
            "imports",
            "6. import airt_nb (fresh interpreter)",
            ["imports"],
            [
                Metric("import_s", "import time", "s", "≤ 0.3 s", le(0.3), digits=3),
                Metric("dependencies_import_s", "of which pydantic + yaml alone", "s", digits=3),
                Metric("heavy", "pandas / ipywidgets / IPython imported", "", "none"),
            ],
        ),
        Figure(
            "load-ext",
            "6. %load_ext airt_nb in a kernel",
            ["load_ext"],
            [Metric("load_ext_s", "load time", "s", "≤ 1 s", le(1.0), digits=2)],
        ),
        Figure(
            "panel",
            "7. live panel on a 10,000-step workflow (headless)",
            ["panel", "10000"],
            [
                Metric("messages_per_s", "comm messages/s", "/s", "≤ 10", le(10), digits=1),
                Metric("relative_speed", "speed with panel / without", "", "≥ 0.8", ge(0.8), digits=2),
            ],
        ),
    ]


def run_once(args: list[str], timeout: float) -> dict:
    proc = subprocess.run(
        [sys.executable, str(HERE / "workloads.py"), *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"error": " | ".join(tail) or f"exit {proc.returncode}"}
    return json.loads(lines[-1])


def fmt(value: object, digits: int) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "n/a"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def summarise(fig: Figure) -> list[dict]:
    rows = []
    na = next((s["n/a"] for s in fig.samples if "n/a" in s), None)
    errors = [s["error"] for s in fig.samples if "error" in s]
    good = [s for s in fig.samples if "error" not in s and "n/a" not in s]
    for m in fig.metrics:
        values = [s[m.key] for s in good if m.key in s]
        row = {"figure": fig.title, "metric": m.label, "unit": m.unit, "target": m.target, "runs": len(values)}
        if na:
            row.update(median="n/a", note=na)
        elif not values:
            row.update(median="n/a", note=errors[0] if errors else "no result")
        elif isinstance(values[0], str):
            row.update(median=values[0], values=values)
            row["met"] = None if not m.target else values[0] == "none"
        else:
            med = statistics.median(values)
            row.update(median=med, min=min(values), max=max(values), values=values)
            row["met"] = bool(m.ok(med)) if m.ok else None
        row["digits"] = m.digits
        rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    header = ("metric", "median", "min–max", "unit", "target", "")
    lines = []
    current = None
    for r in rows:
        if r["figure"] != current:
            current = r["figure"]
            lines.append(("## " + current,))
        d = shown_digits(r)
        spread = f"{fmt(r['min'], d)}–{fmt(r['max'], d)}" if "min" in r else ""
        met = {True: "ok", False: "MISSED", None: ""}[r.get("met")]
        median = fmt(r["median"], d) if r["median"] != "n/a" else "n/a"
        note = f"  ({r['note']})" if r.get("note") else ""
        lines.append((r["metric"], median, spread, r["unit"], r["target"], met + note))
    widths = [max(len(str(ln[i])) for ln in lines if len(ln) > 1) for i in range(len(header) - 1)]
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=False)]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)))
    for ln in lines:
        if len(ln) == 1:
            print(ln[0])
            continue
        cells = [
            str(c).rjust(w) if i in (1, 2) else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(ln, widths, strict=False))
        ]
        print("  ".join(cells) + "  " + ln[-1])


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "load_at_start": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", 5)))
    parser.add_argument("--only", default="", help="comma-separated figure names (e.g. steps-normal,views)")
    parser.add_argument("--recovery-n", type=int, default=10_000)
    parser.add_argument("--memory-n", type=int, default=100_000)
    parser.add_argument("--out", default=str(HERE / "results"))
    opts = parser.parse_args()
    chosen = {s for s in opts.only.split(",") if s}
    figs = [f for f in figures(opts.recovery_n, opts.memory_n) if not chosen or f.name in chosen]
    unknown = chosen - {f.name for f in figures(opts.recovery_n, opts.memory_n)}
    if unknown:
        raise SystemExit(f"unknown figure(s) {', '.join(sorted(unknown))}")
    work = Path(tempfile.mkdtemp(prefix="airt-bench-"))
    started = time.time()
    paths: dict[str, str] = {}
    try:
        for fig in figs:
            if fig.setup == "crashed_db" and "crashed_db" not in paths:
                t0 = time.perf_counter()
                make_crashed_db(work / "crashed.db", opts.recovery_n)
                paths["crashed_db"] = str(work / "crashed.db")
                print(
                    f"[setup] crashed database with {opts.recovery_n:,} workflows in {time.perf_counter() - t0:.1f} s"
                )
            if fig.setup == "views_db" and "views_db" not in paths:
                from gen_db import generate

                t0 = time.perf_counter()
                generate(work / "views.db")
                paths["views_db"] = str(work / "views.db")
                print(f"[setup] views database in {time.perf_counter() - t0:.1f} s")
            args = [a.format(**paths) for a in fig.args]
            t0 = time.perf_counter()
            for _ in range(opts.repeat):
                fig.samples.append(run_once(args, timeout=900))
                if "n/a" in fig.samples[-1]:
                    break
            print(f"[{time.perf_counter() - t0:6.1f} s] {fig.name}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [r for fig in figs for r in summarise(fig)]
    print_table(rows)
    elapsed = time.time() - started
    print(f"\n{opts.repeat} fresh processes per figure; total {elapsed:.0f} s; machine: {machine()['cpu']}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")  # fmt: skip
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "repeat": opts.repeat,
        "seconds": elapsed,
        "rows": rows,
        "samples": {f.name: f.samples for f in figs},
    }
    for name in (f"bench-{stamp}.json", "latest.json"):
        (out / name).write_text(json.dumps(result, indent=1, default=str))
    print(f"written: {out / f'bench-{stamp}.json'}")


if __name__ == "__main__":
    main()
