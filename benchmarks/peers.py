"""``make bench-peers``: workloads 1–4 on airt_nb, DBOS Transact and LangGraph, in the same run.

Then the same on PostgreSQL, airt_nb and DBOS side by side, on a durable
server this script starts (``tests/pg_server.py``; fsync on), each run on a
fresh database of its own.

The peers are installed into their own virtual environment
(``benchmarks/.peers-venv``, or ``$AIRT_PEERS_VENV``) on first use: ``dbos``
and ``langgraph`` with ``langgraph-checkpoint-sqlite``.  Every round runs each
workload once on each system, one after the other, in fresh processes and on
fresh SQLite files, so the three see the same load of the machine; the table
shows medians over the rounds and how many times faster airt_nb is (a ratio
taken within each round, then its median).

    python benchmarks/peers.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import run_once  # noqa: E402
from workloads import make_crashed_db  # noqa: E402

PEER_PACKAGES = ["dbos>=3.4,<4", "langgraph>=1.2,<2", "langgraph-checkpoint-sqlite>=3,<4"]
N_STEPS, N_WORKFLOWS, N_CRASHED = 1000, 500, 200

# (label, unit, higher is better, ours: workloads.py args + key, peers: peer_workloads.py args + key)
ROWS = [
    ("durable steps/s, 1 workflow × 1,000 steps", "/s", True,
     (["steps", "normal", str(N_STEPS)], "steps_per_s"), (["steps", str(N_STEPS)], "steps_per_s")),
    ("  ours with durability='full'", "/s", True,
     (["steps", "full", str(N_STEPS)], "steps_per_s"), (["steps", str(N_STEPS)], "steps_per_s")),
    ("3-step workflows/s, 500 started one after another", "/s", True,
     (["workflows", "sequential", str(N_WORKFLOWS)], "workflows_per_s"),
     (["workflows", str(N_WORKFLOWS)], "workflows_per_s")),
    ("  ours, each waited for before the next", "/s", True,
     (["workflows", "each", str(N_WORKFLOWS)], "workflows_per_s"),
     (["workflows", str(N_WORKFLOWS)], "workflows_per_s")),
    ("recover 200 crashed workflows until all finished", "s", False,
     (["recovery", "{ours_crashed}"], "all_completed_s"), (["recovery", "{peer_crashed}"], "all_completed_s")),
    ("  until the first one resumed", "ms", False,
     (["recovery", "{ours_crashed}"], "first_resume_ms"), (["recovery", "{peer_crashed}"], "first_resume_ms")),
    ("approval round trip in-process, median", "ms", False,
     (["approval_local", "200"], "median_ms"), (["approval", "{approvals}"], "median_ms")),
    ("peak RSS of the 1,000-step run", "MB", False,
     (["steps", "normal", str(N_STEPS)], "peak_rss_mb"), (["steps", str(N_STEPS)], "peak_rss_mb")),
    ("import time", "s", False, (["imports"], "import_s"), (["steps", str(N_STEPS)], "import_s")),
]  # fmt: skip
PEERS = ("dbos", "langgraph")
S = "{server}"
# On PostgreSQL: (label, unit, higher is better, ours: backends.py args + key, DBOS: peer_workloads.py args + key)
PG_ROWS = [
    ("durable steps/s, 1 workflow × 1,000 steps", "/s", True,
     (["steps", S, "normal", str(N_STEPS)], "steps_per_s"), (["steps", S, str(N_STEPS)], "steps_per_s")),
    ("3-step workflows/s, 500 started from one process", "/s", True,
     (["workflows", S, str(N_WORKFLOWS), "1"], "workflows_per_s"),
     (["workflows", S, str(N_WORKFLOWS)], "workflows_per_s")),
    ("recover 200 crashed workflows until all finished", "s", False,
     (["recovery", S], "all_completed_s"), (["recovery", S], "all_completed_s")),
    ("  until the first one resumed", "ms", False,
     (["recovery", S], "first_resume_ms"), (["recovery", S], "first_resume_ms")),
    ("approval round trip in-process, median", "ms", False,
     (["approval_local", S, "50"], "median_ms"), (["approval", S, "50"], "median_ms")),
]  # fmt: skip
# DBOS waits for a message by polling SQLite about once a second: 20 round trips already take 20 s.
APPROVALS = {"dbos": "20", "langgraph": "200"}


def peers_python(venv: Path) -> str:
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"[setup] creating {venv} and installing {', '.join(PEER_PACKAGES)}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return str(python)


def run_peer(python: str, args: list[str], timeout: float = 900) -> dict:
    proc = subprocess.run(
        [python, str(HERE / "peer_workloads.py"), *args], capture_output=True, text=True, timeout=timeout
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit {proc.returncode}"}
    return json.loads(lines[-1])


def versions(python: str) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({p: m.version(p) for p in ('dbos', 'langgraph', 'langgraph-checkpoint-sqlite')}))"
    )
    return json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", 5)))
    parser.add_argument("--venv", default=os.environ.get("AIRT_PEERS_VENV", str(HERE / ".peers-venv")))
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--postgresql-only", action="store_true", help="only the PostgreSQL table")
    opts = parser.parse_args()
    python = peers_python(Path(opts.venv))
    if opts.postgresql_only:
        out = Path(opts.out)
        out.mkdir(parents=True, exist_ok=True)
        on_postgresql(python, opts.repeat, out, time.strftime("%Y%m%d-%H%M%S"))
        return
    found = versions(python)
    print("peers: " + ", ".join(f"{k} {v}" for k, v in found.items()), flush=True)
    work = Path(tempfile.mkdtemp(prefix="airt-peers-"))
    started = time.time()
    # samples[row][system] = list of values; ratios[row][peer] = list of per-round ratios
    samples: dict[int, dict[str, list[float]]] = {i: {s: [] for s in ("ours", *PEERS)} for i in range(len(ROWS))}
    errors: list[str] = []
    try:
        make_crashed_db(work / "ours-crashed.db", N_CRASHED)
        for peer in PEERS:
            subprocess.run(
                [python, str(HERE / "peer_workloads.py"), "crash", peer, str(work / f"{peer}-crashed.sqlite"),
                 str(N_CRASHED)],
                check=True, capture_output=True, timeout=300,
            )  # fmt: skip
        for round_no in range(opts.repeat):
            cache: dict[tuple, dict] = {}
            for i, (_label, _unit, _higher, (ours_args, ours_key), (peer_args, peer_key)) in enumerate(ROWS):
                args = [a.format(ours_crashed=work / "ours-crashed.db") for a in ours_args]
                key = ("ours", *args)
                if key not in cache:
                    cache[key] = run_once(args, timeout=900)
                if ours_key in cache[key]:
                    samples[i]["ours"].append(cache[key][ours_key])
                elif "error" in cache[key]:
                    errors.append(f"ours {args}: {cache[key]['error']}")
                for peer in PEERS:
                    pargs = [
                        a.format(peer_crashed=work / f"{peer}-crashed.sqlite", approvals=APPROVALS[peer])
                        for a in peer_args
                    ]
                    pkey = (peer, *pargs)
                    if pkey not in cache:
                        cache[pkey] = run_peer(python, [peer, *pargs])
                    if peer_key in cache[pkey]:
                        samples[i][peer].append(cache[pkey][peer_key])
                    elif "error" in cache[pkey]:
                        errors.append(f"{peer} {pargs}: {cache[pkey]['error']}")
            print(f"[{time.time() - started:6.0f} s] round {round_no + 1} of {opts.repeat}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def cell(values: list[float], unit: str) -> str:
        if not values:
            return "n/a"
        digits = 2 if unit in ("s",) else 1 if unit in ("ms", "MB") else 0
        med = statistics.median(values)
        return f"{med:,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"

    table = []
    for i, (label, unit, higher, *_rest) in enumerate(ROWS):
        row = {"what": label, "unit": unit, "ours": cell(samples[i]["ours"], unit)}
        for peer in PEERS:
            row[peer] = cell(samples[i][peer], unit)
            pairs = list(zip(samples[i]["ours"], samples[i][peer], strict=False))
            ratios = [(o / p if higher else p / o) for o, p in pairs if o and p]
            row[f"x_{peer}"] = f"{statistics.median(ratios):.1f}×" if ratios else "n/a"
        table.append(row)
    headers = ["what", "unit", "ours", "dbos", "langgraph", "x_dbos", "x_langgraph"]
    names = {
        "what": "median (min–max) over rounds",
        "ours": "airt_nb",
        "dbos": f"DBOS {found.get('dbos', '')} (SQLite)",
        "langgraph": f"LangGraph {found.get('langgraph', '')} + SqliteSaver",
        "x_dbos": "airt_nb vs DBOS",
        "x_langgraph": "airt_nb vs LangGraph",
    }
    widths = {h: max(len(names.get(h, h)), *(len(r[h]) for r in table)) for h in headers}
    print()
    print("  ".join(names.get(h, h).ljust(widths[h]) for h in headers))
    for r in table:
        print("  ".join(r[h].ljust(widths[h]) for h in headers))
    print(
        f"\n'×' = how many times faster (or smaller) airt_nb is, taken within each round; {opts.repeat} rounds; "
        f"{time.time() - started:.0f} s.  DBOS approvals: {APPROVALS['dbos']} round trips per run (it polls)."
    )
    for e in sorted(set(errors))[:10]:
        print("error:", e)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    result = {"versions": found, "repeat": opts.repeat, "table": table, "samples": samples, "errors": errors}
    for name in (f"peers-{stamp}.json", "peers-latest.json"):
        (out / name).write_text(json.dumps(result, indent=1, default=str))
    print(f"written: {out / f'peers-{stamp}.json'}")
    on_postgresql(python, opts.repeat, out, stamp)


def run_ours(args: list[str], timeout: float = 900) -> dict:
    proc = subprocess.run(
        [sys.executable, str(HERE / "backends.py"), *args], capture_output=True, text=True, timeout=timeout
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit {proc.returncode}"}
    return json.loads(lines[-1])


def on_postgresql(python: str, repeat: int, out: Path, stamp: str) -> None:
    """airt_nb and DBOS on the same durable PostgreSQL server, round by round."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from pg_server import PgServer

    started = time.time()
    samples: dict[int, dict[str, list[float]]] = {i: {"ours": [], "dbos": []} for i in range(len(PG_ROWS))}
    errors: list[str] = []
    with PgServer(durable=True) as server:
        url = server.url()
        run_ours(["make_crashed", url, str(N_CRASHED)])
        subprocess.run(
            [python, str(HERE / "peer_workloads.py"), "crash", "dbos-pg", url, str(N_CRASHED)],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        for round_no in range(repeat):
            cache: dict[tuple, dict] = {}
            for i, (_label, _unit, _higher, (ours_args, ours_key), (peer_args, peer_key)) in enumerate(PG_ROWS):
                for system, args, key in (("ours", ours_args, ours_key), ("dbos", peer_args, peer_key)):
                    full = [a.replace(S, url) for a in args]
                    ckey = (system, *full)
                    if ckey not in cache:
                        cache[ckey] = run_ours(full) if system == "ours" else run_peer(python, ["dbos-pg", *full])
                    if key in cache[ckey]:
                        samples[i][system].append(cache[ckey][key])
                    elif "error" in cache[ckey]:
                        errors.append(f"{system} {args}: {cache[ckey]['error']}")
            print(f"[{time.time() - started:6.0f} s] PostgreSQL round {round_no + 1} of {repeat}", flush=True)
        version = server.binaries.version_text
    table = []
    for i, (label, unit, higher, *_rest) in enumerate(PG_ROWS):
        ours, dbos = samples[i]["ours"], samples[i]["dbos"]
        ratios = [(o / p if higher else p / o) for o, p in zip(ours, dbos, strict=False) if o and p]
        table.append(
            {
                "what": label,
                "unit": unit,
                "ours": _cell(ours, unit),
                "dbos": _cell(dbos, unit),
                "x_dbos": f"{statistics.median(ratios):.1f}×" if ratios else "n/a",
            }
        )
    headers = {"what": "on PostgreSQL, median (min–max)", "unit": "unit", "ours": "airt_nb", "dbos": "DBOS",
               "x_dbos": "airt_nb vs DBOS"}  # fmt: skip
    widths = {h: max(len(n), *(len(r[h]) for r in table)) for h, n in headers.items()}
    print()
    print("  ".join(n.ljust(widths[h]) for h, n in headers.items()))
    for r in table:
        print("  ".join(r[h].ljust(widths[h]) for h in headers))
    print(f"\nPostgreSQL {version}, fsync on; {repeat} rounds; {time.time() - started:.0f} s.")
    for e in sorted(set(errors))[:10]:
        print("error:", e)
    result = {"server": version, "repeat": repeat, "table": table, "samples": samples, "errors": errors}
    (out / f"peers-pg-{stamp}.json").write_text(json.dumps(result, indent=1, default=str))


def _cell(values: list[float], unit: str) -> str:
    if not values:
        return "n/a"
    digits = 2 if unit in ("s",) else 1 if unit in ("ms", "MB") else 0
    med = statistics.median(values)
    return f"{med:,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"


if __name__ == "__main__":
    main()
