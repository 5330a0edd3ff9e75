"""Workloads measured on both backends: ``make bench``'s SQLite | PostgreSQL table.

``python benchmarks/backends.py NAME BACKEND [ARGS...]`` runs one workload once
on a fresh database and prints one JSON object on its last line.  ``BACKEND``
is ``sqlite`` (a file in a temporary folder) or the URL of a PostgreSQL
server's ``postgres`` database as its superuser (a database is created for the
run and dropped after it).  ``run.py`` starts the server (durable: fsync on)
and these processes, and prints the table.

Each figure that has a raw limit measures it in the same process, on the same
server, right before ours: one-row INSERT + COMMIT over one connection
(PostgreSQL: autocommit, one round trip, ``synchronous_commit`` as our
checkpoints use it).

    python benchmarks/backends.py steps sqlite normal 2000
    python benchmarks/backends.py approval_cross postgresql://postgres:pw@127.0.0.1:5432/postgres 50
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WORKLOADS: dict[str, Any] = {}
CRASH_TEMPLATE = "airt_bench_crashed"  # PostgreSQL: a template database; SQLite: a file in the temp folder
SQLITE_CRASHED = Path(tempfile.gettempdir()) / "airt_bench_crashed.db"


def workload(fn: Any) -> Any:
    WORKLOADS[fn.__name__] = fn
    return fn


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("AIRT_DB", None)
    env.update(extra)
    return env


def registry() -> Any:
    from airt_nb import Registry

    reg = Registry(builtins=False)

    @reg.action("noop")
    def noop() -> dict:
        return {}

    return reg


def chain(name: str, n: int, action: str = "noop") -> dict[str, Any]:
    return {"name": name, "steps": [{"name": f"s{i}", "action": action} for i in range(n)]}


def _db_url(server: str, name: str) -> str:
    return server.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def database(backend: str, template: str | None = None) -> Iterator[str]:
    """A fresh database for one run: a SQLite file, or a PostgreSQL database (dropped afterwards)."""
    if backend == "sqlite":
        work = Path(tempfile.mkdtemp(prefix="airt-bench-"))
        if template:
            shutil.copyfile(SQLITE_CRASHED, work / "airt.db")
        try:
            yield str(work / "airt.db")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    import psycopg

    name = f"airt_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(backend, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield _db_url(backend, name)
    finally:
        with psycopg.connect(backend, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def raw_commits(db: str, n: int, durability: str) -> float:
    """The limit: ``n`` one-row INSERT + COMMIT over one connection; seconds."""
    rows = [("0123456789abcdef", f"s{i}", "{}") for i in range(n)]
    create = (
        "CREATE TABLE raw_steps (workflow_id TEXT, step_name TEXT, outputs TEXT, PRIMARY KEY (workflow_id, step_name))"
    )
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(create)
            conn.execute(f"SET synchronous_commit = {'on' if durability == 'full' else 'off'}")
            insert = "INSERT INTO raw_steps VALUES (%s, %s, %s)"
            conn.execute(insert, ("warm", "up", "{}"))
            t0 = time.perf_counter()
            for row in rows:
                conn.execute(insert, row, prepare=True)
            elapsed = time.perf_counter() - t0
            conn.execute("DROP TABLE raw_steps")
        return elapsed
    import sqlite3

    conn = sqlite3.connect(db + ".raw", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}")
    conn.execute(create)
    t0 = time.perf_counter()
    for row in rows:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO raw_steps VALUES (?, ?, ?)", row)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


# -- steps ---------------------------------------------------------------------------------------------


@workload
def steps(backend: str, durability: str = "normal", n: str = "2000") -> dict[str, Any]:
    """One workflow of ``n`` trivial steps, start() to COMPLETED; and the raw limit alike."""
    from airt_nb import Engine

    count = int(n)
    with database(backend) as db:
        raw = raw_commits(db, count, durability)
        with Engine(db, registry=registry(), durability=durability) as eng:
            eng.wait(eng.start(chain("warm", 3)).id, timeout=60)
            t0 = time.perf_counter()
            status = eng.start(chain("steps", count)).wait(timeout=600)
            elapsed = time.perf_counter() - t0
    assert status == "COMPLETED", status
    return {
        "steps_per_s": count / elapsed,
        "us_per_step": elapsed / count * 1e6,
        "raw_per_s": count / raw,
        "ratio": raw / elapsed,
    }


# -- workflows from several processes --------------------------------------------------------------------


@workload
def _starter(db: str, n: str) -> dict[str, Any]:
    """A child of ``workflows``: open an engine, wait for "go", start ``n`` 3-step workflows, wait for all."""
    from airt_nb import Engine

    with Engine(db, registry=registry(), recover=False) as eng:
        spec = chain("three", 3)
        eng.wait(eng.start(spec).id, timeout=60)
        print("ready", flush=True)
        sys.stdin.readline()
        runs = [eng.start(spec) for _ in range(int(n))]
        statuses = [eng.wait(r.id, timeout=600) for r in runs]
    assert statuses.count("COMPLETED") == len(statuses), statuses[:3]
    return {"done": len(statuses)}


@workload
def workflows(backend: str, n: str = "1000", procs: str = "4") -> dict[str, Any]:
    """``n`` 3-step workflows started from ``procs`` processes at once (each runs its own)."""
    count, k = int(n), int(procs)
    with database(backend) as db:
        from airt_nb import Engine

        Engine(db, recover=False).close()  # create (migrate) the database once
        children = [
            subprocess.Popen(
                [sys.executable, __file__, "_starter", db, str(count // k)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=child_env(AIRT_MACHINE_ID=f"bench-{i}"),
            )
            for i in range(k)
        ]
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        t0 = time.perf_counter()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            child.communicate(timeout=600)
            assert child.returncode == 0
        elapsed = time.perf_counter() - t0
    return {"workflows_per_s": count // k * k / elapsed}


# -- recovery of crashed workflows ------------------------------------------------------------------------

CRASH_SPEC = {
    "name": "victim",
    "steps": [{"name": "s0", "action": "noop"}, {"name": "s1", "action": "stuck"}, {"name": "s2", "action": "noop"}],
}
_crashing = False
_first_resume: list[float] = []


def crash_registry() -> Any:
    from airt_nb import StepInterrupted

    reg = registry()

    @reg.action("stuck")
    def stuck() -> dict:
        if _crashing:
            raise StepInterrupted()  # left RUNNING, as a step in flight when the process dies
        if not _first_resume:
            _first_resume.append(time.perf_counter())
        return {}

    return reg


@workload
def _victim(db: str, n: str) -> dict[str, Any]:
    """Start ``n`` workflows, each stopped in its second step, say "ready", wait to be killed."""
    global _crashing
    from airt_nb import Engine

    _crashing = True
    eng = Engine(db, registry=crash_registry(), recover=False)
    for _ in range(int(n)):
        eng.start(CRASH_SPEC)
    while eng.store.query("SELECT COUNT(*) FROM workflow_steps WHERE step_name = 's1' AND status = 'RUNNING'")[0][
        0
    ] < int(n):
        time.sleep(0.05)
    print("ready", flush=True)
    time.sleep(3600)
    return {}


@workload
def make_crashed(backend: str, n: str = "10000") -> dict[str, Any]:
    """The template database of ``recovery``: ``n`` workflows whose engine was SIGKILLed mid-way."""
    if backend == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SQLITE_CRASHED}{suffix}").unlink(missing_ok=True)
        db = str(SQLITE_CRASHED)
    else:
        import psycopg

        with psycopg.connect(backend, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{CRASH_TEMPLATE}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{CRASH_TEMPLATE}"')
        db = _db_url(backend, CRASH_TEMPLATE)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "_victim", db, n], stdout=subprocess.PIPE, text=True, env=child_env()
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    proc.kill()
    proc.wait()
    assert line.strip() == "ready", line
    if backend == "sqlite":  # one file is the whole crashed database
        import sqlite3

        with contextlib.closing(sqlite3.connect(db)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {"seconds": time.perf_counter() - t0}


@workload
def recovery(backend: str) -> dict[str, Any]:
    """Engine(db).recover() on a copy of the crashed database: first resumed step, all COMPLETED."""
    from airt_nb import Engine

    with database(backend, template=CRASH_TEMPLATE) as db:
        done = threading.Event()
        finished = [0]
        lock = threading.Lock()
        eng0 = Engine(db, recover=False)
        total = eng0.store.count_workflows(status="RUNNING")
        eng0.close()

        def on_event(event: Any) -> None:
            if type(event).__name__ == "WorkflowStatusChanged" and event.status == "COMPLETED":
                with lock:
                    finished[0] += 1
                    if finished[0] == total:
                        done.set()

        t0 = time.perf_counter()
        eng = Engine(db, registry=crash_registry(), recover=False)
        eng.subscribe(on_event)
        eng.recover()
        done.wait(timeout=600)
        elapsed = time.perf_counter() - t0
        completed = eng.store.count_workflows(status="COMPLETED")
        eng.close()
    assert completed == total, (completed, total)
    return {
        "workflows": total,
        "all_completed_s": elapsed,
        "first_resume_ms": (_first_resume[0] - t0) * 1000,
        "workflows_per_s": total / elapsed,
    }


# -- a decision made in another process ------------------------------------------------------------------

APPROVAL_SPEC = {
    "name": "approve",
    "steps": [
        {"name": "before", "action": "noop"},
        {"name": "review", "type": "human_approval", "message": "go?"},
        {"name": "after", "action": "noop"},
    ],
}


@workload
def approval_local(backend: str, n: str = "200") -> dict[str, Any]:
    """run.approve() → the next step has completed, in one process."""
    from airt_nb import Engine

    with database(backend) as db, Engine(db, registry=registry(), user="bench") as eng:
        samples = []
        for _ in range(int(n)):
            run = eng.start(APPROVAL_SPEC)
            assert run.wait(timeout=10) == "PAUSED"
            t0 = time.perf_counter()
            run.approve(by="bench")
            status = run.wait(timeout=10)
            samples.append(time.perf_counter() - t0)
            assert status == "COMPLETED", status
    return {"median_ms": statistics.median(samples) * 1000}


@workload
def _decider(db: str) -> dict[str, Any]:
    """A child of ``approval_cross``: an open engine that approves the workflow ids it reads."""
    from airt_nb import Engine

    with Engine(db, registry=registry(), recover=False, user="bench") as eng:
        print("ready", flush=True)
        for line in sys.stdin:
            eng.approve(line.strip(), by="bench")
            print("decided", flush=True)
    return {}


@workload
def approval_cross(backend: str, n: str = "50") -> dict[str, Any]:
    """An engine waits on a paused workflow; an engine in another process (already open) approves;
    from the decision's commit to the owner's next step done.  Also the owner's idle CPU."""
    from airt_nb import Engine
    from airt_nb.timeutil import to_epoch

    with database(backend) as db:
        eng = Engine(db, registry=registry(), user="bench")
        decider = subprocess.Popen(
            [sys.executable, __file__, "_decider", db],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(AIRT_MACHINE_ID="bench-decider"),
        )
        assert decider.stdin is not None
        assert decider.stdout is not None
        try:
            assert decider.stdout.readline().strip() == "ready"
            parked = eng.start(APPROVAL_SPEC)
            parked.wait(timeout=10)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            time.sleep(3)
            idle_cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0) * 60
            samples = []
            for _ in range(int(n)):
                run = eng.start(APPROVAL_SPEC)
                assert run.wait(timeout=10) == "PAUSED"
                done = threading.Event()
                seen: list[float] = []

                def on_event(
                    event: Any, wid: str = run.id, seen: list[float] = seen, done: threading.Event = done
                ) -> None:
                    after = event.workflow_id == wid and getattr(event, "step_name", None) == "after"
                    if after and not seen and type(event).__name__ == "StepFinished":
                        seen.append(time.time())
                        done.set()

                unsubscribe = eng.subscribe(on_event)
                decider.stdin.write(run.id + "\n")
                decider.stdin.flush()
                assert decider.stdout.readline().strip() == "decided"
                assert done.wait(timeout=30), "the approved workflow did not continue"
                unsubscribe()
                decided = eng.store.approvals(workflow_id=run.id)[0].decided_at
                samples.append((seen[0] - to_epoch(decided)) * 1000)
                assert run.wait(timeout=10) == "COMPLETED"
        finally:
            decider.stdin.close()
            decider.wait(30)
            eng.close()
    return {
        "median_ms": statistics.median(samples),
        "p90_ms": statistics.quantiles(samples, n=10)[-1],
        "idle_cpu_s_per_min": idle_cpu,
    }


# -- claims by several engines at once --------------------------------------------------------------------


@workload
def _claimer(db: str) -> dict[str, Any]:
    """A child of ``claims``: claim free workflows in batches, as a sweep does, until none is left."""
    from airt_nb.recovery import BATCH
    from airt_nb.store import open_store

    owner = f"claimer-{os.getpid()}"
    store = open_store(db)
    print("ready", flush=True)
    sys.stdin.readline()
    taken = 0
    while True:
        ids = [r[0] for r in store.candidates(limit=1000)]
        if not ids:
            break
        for i in range(0, len(ids), BATCH):
            chunk = ids[i : i + BATCH]
            now = store.now()
            taken += len(store.write(lambda tx, chunk=chunk, now=now: tx.claim(owner, chunk, [], now)))
    store.close()
    return {"taken": taken}


@workload
def claims(backend: str, n: str = "10000", engines: str = "3") -> dict[str, Any]:
    """``n`` workflows nobody runs, claimed by ``engines`` processes at once: claims/s, each claimed once."""
    from airt_nb.store import open_store
    from airt_nb.timeutil import now_iso

    count = int(n)
    with database(backend) as db:
        store = open_store(db)
        now = now_iso()
        rows = [
            {
                "workflow_id": f"wf{i:08d}", "name": "free", "status": "RUNNING", "spec": "{}", "spec_hash": "h",
                "inputs": "{}", "created_at": now, "updated_at": now, "started_by": "bench", "total_steps": 1,
                "lease_owner": None, "workdir": None, "session": None,
            }
            for i in range(count)
        ]  # fmt: skip
        for i in range(0, count, 1000):
            store.write(lambda tx, part=rows[i : i + 1000]: [tx.insert_workflow(r) for r in part])
        store.close()
        children = [
            subprocess.Popen(
                [sys.executable, __file__, "_claimer", db],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=child_env(),
            )
            for _ in range(int(engines))
        ]
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        t0 = time.perf_counter()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        taken = []
        for child in children:
            out, _ = child.communicate(timeout=600)
            taken.append(json.loads(out.strip().splitlines()[-1])["taken"])
        elapsed = time.perf_counter() - t0
        store = open_store(db)
        owners = store.query(
            "SELECT COUNT(*), COUNT(DISTINCT workflow_id) FROM workflows WHERE lease_owner IS NOT NULL"
        )
        store.close()
    assert sum(taken) == count == owners[0][0] == owners[0][1], (taken, owners)
    return {"claims_per_s": count / elapsed, "per_engine": taken}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in WORKLOADS:
        raise SystemExit(f"usage: backends.py {{{','.join(WORKLOADS)}}} BACKEND [ARGS...]")
    print(json.dumps(WORKLOADS[argv[0]](*argv[1:])), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
