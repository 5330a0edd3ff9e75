"""The benchmark workloads, one per figure; each runs in a fresh process.

``python benchmarks/workloads.py NAME [ARGS...]`` runs one workload once and
prints one JSON object of measurements on its last line.  ``run.py`` starts
these processes, repeats them and prints the table; run one by hand to look at
a single figure.

Every measurement that has a reference (raw ``sqlite3``) measures it in the
same process, right before ours, on a fresh database with the same pragmas, so
that the ratio is taken under the same load of the machine.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WORKLOADS = {}


def workload(fn):
    WORKLOADS[fn.__name__] = fn
    return fn


def child_env() -> dict[str, str]:
    """Environment for child processes: they import this checkout's airt_nb."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("AIRT_DB", None)
    env["AIRT_RECOVER"] = "1"
    return env


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_now_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def tmpdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="airt-bench-"))


def registry():
    """A registry with the trivial actions the workloads use."""
    from airt_nb import Registry

    reg = Registry(builtins=False)

    @reg.action("noop")
    def noop() -> dict:
        return {}

    @reg.action("tick")
    def tick() -> dict:
        time.sleep(0.0002)  # long enough that a 10,000-step run lasts a few seconds
        return {}

    return reg


def chain(name: str, n: int, action: str = "noop") -> dict:
    return {"name": name, "steps": [{"name": f"s{i}", "action": action} for i in range(n)]}


# -- 1. durable step throughput ----------------------------------------------------------------


def raw_commits(path: Path, n: int, durability: str) -> float:
    """The limit: one INSERT + COMMIT per step with our pragmas; returns seconds."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(
        "CREATE TABLE steps (workflow_id TEXT, step_name TEXT, outputs TEXT, PRIMARY KEY (workflow_id, step_name))"
    )
    t0 = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO steps VALUES (?, ?, ?)", ("0123456789abcdef", f"s{i}", "{}"))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def raw_checkpoints(path: Path, n: int, durability: str) -> float:
    """Raw sqlite3 running exactly the statement of our step checkpoint, on our schema; returns seconds.

    What the durable step protocol costs in SQLite alone: one row updated per step (the step's
    completion, fenced on the workflow's lease, the pending request read back), one commit per step.
    """
    from airt_nb.store.migrations import MIGRATIONS
    from airt_nb.store.writes import COMPLETE_SQLITE
    from airt_nb.timeutil import now_iso

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys = ON")
    for m in MIGRATIONS:
        conn.executescript(m.sqlite)
    now = now_iso()
    conn.execute(
        "INSERT INTO workflows (workflow_id, name, status, spec, spec_hash, inputs, created_at, updated_at, "
        "total_steps, lease_owner) VALUES ('w', 'raw', 'RUNNING', '', 'h', '{}', ?, ?, ?, 'me')",
        (now, now, n),
    )
    conn.executemany(
        "INSERT INTO workflow_steps (workflow_id, step_name, position, type, action, status, attempt) "
        "VALUES ('w', ?, ?, 'action', 'noop', 'PENDING', 0)",
        [(f"s{i}", i) for i in range(n)],
    )
    ids = [r[0] for r in conn.execute("SELECT step_id FROM workflow_steps ORDER BY position")]
    sql = COMPLETE_SQLITE
    t0 = time.perf_counter()
    for i in range(n):
        now = now_iso()
        # As the store runs a lone completion: one statement, its own transaction.
        conn.execute(sql, ("COMPLETED", 1, now, now, "{}", "{}", "0123456789abcdef", ids[i], "w", "me", "w")).fetchall()
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


@workload
def steps(durability: str = "normal", n: str = "2000") -> dict:
    """One workflow of ``n`` trivial steps, from start() to COMPLETED; and raw sqlite3 alike."""
    from airt_nb import Engine

    count = int(n)
    work = tmpdir()
    raw = raw_commits(work / "raw.db", count, durability)
    floor = raw_checkpoints(work / "floor.db", count, durability)
    eng = Engine(work / "airt.db", registry=registry(), durability=durability)
    in_store = _time_completions(eng.store)
    spec = chain("steps", count)
    t0 = time.perf_counter()
    run = eng.start(spec)
    started = time.perf_counter()  # the spec validated, its plan compiled, its 2,000 step rows inserted
    status = run.wait(timeout=600)
    elapsed = time.perf_counter() - t0
    running = time.perf_counter() - started
    eng.close()
    shutil.rmtree(work, ignore_errors=True)
    assert status == "COMPLETED", status
    return {
        "steps_per_s": count / elapsed,
        "us_per_step": elapsed / count * 1e6,
        "raw_commits_per_s": count / raw,
        "raw_us_per_commit": raw / count * 1e6,
        "ratio": raw / elapsed,
        "protocol_us_per_step": floor / count * 1e6,
        "protocol_ratio": raw / floor,
        "python_us_per_step": (elapsed - floor) / count * 1e6,
        "start_ms": (started - t0) * 1000,
        "running_us_per_step": running / count * 1e6,
        "running_ratio": raw / running,
        "store_us_per_step": in_store[0] / count * 1e6,
        "outside_store_us_per_step": (running - in_store[0]) / count * 1e6,
    }


def _time_completions(store) -> list[float]:
    """Time spent in the store's ``complete()`` (the checkpoint's statement and its commit), so that
    the rest of a running step is our Python outside the store."""
    spent = [0.0]
    complete = store.complete

    def timed(completion):
        t0 = time.perf_counter()
        try:
            return complete(completion)
        finally:
            spent[0] += time.perf_counter() - t0

    store.complete = timed
    return spent


# -- 2. workflow throughput -----------------------------------------------------------------------


def _count_commits(store) -> dict:
    """Wrap the store's commit to count transactions and the ops they carried."""
    counts = {"commits": 0, "ops": 0}
    group = store._gc
    original = group._run_batch

    def counting(batch):
        counts["commits"] += 1
        counts["ops"] += len(batch)
        return original(batch)

    group._run_batch = counting
    return counts


class _TimedConnection:
    """The store's write connection, timing every statement: how much of a workflow is SQLite's work.

    ``seconds`` is the wall time of the calls: with other threads running it includes waiting for the
    GIL (and the write lock) on the way back, so ``cpu_seconds``, the calling thread's CPU time in
    them, is SQLite's own share.
    """

    def __init__(self, conn):
        self._conn = conn
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.statements = 0
        self.recorded: list[tuple[str, str, object]] | None = None  # (method, sql, params) when recording

    def execute(self, sql, params=()):
        return self._timed("execute", sql, params)

    def executemany(self, sql, rows):
        return self._timed("executemany", sql, list(rows))

    def _timed(self, method, sql, params):
        if self.recorded is not None:
            self.recorded.append((method, sql, params))
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return getattr(self._conn, method)(sql, params)
        finally:
            self.seconds += time.perf_counter() - t0
            self.cpu_seconds += time.thread_time() - c0
            self.statements += 1

    def __getattr__(self, name):
        return getattr(self._conn, name)


def _process_cpu() -> float:
    """CPU seconds of this process, every thread (user + system)."""
    t = os.times()
    return t.user + t.system


def _time_sql(store) -> _TimedConnection:
    from airt_nb.store.writes import Tx

    timed = _TimedConnection(store._conn)
    store._conn = timed
    store._tx = Tx(timed, "sqlite")
    return timed


@workload
def workflows(mode: str = "sequential", n: str = "1000") -> dict:
    """``n`` workflows of 3 steps: started one after another, from 4 threads, or each waited for."""
    from airt_nb import Engine

    count = int(n)
    work = tmpdir()
    raw = raw_commits(work / "raw.db", 2000, "normal") / 2000  # seconds per raw commit, same disk, same run
    eng = Engine(work / "airt.db", registry=registry())
    counts = _count_commits(eng.store)
    spec = chain("three", 3)
    eng.wait(eng.start(spec).id, timeout=60)  # warm the spec cache: every start below is the same spec
    counts.update(commits=0, ops=0)
    timed = _time_sql(eng.store) if mode == "sequential" else None
    runs: list = []
    cpu0 = _process_cpu()
    t0 = time.perf_counter()
    if mode == "sequential":
        runs = [eng.start(spec) for _ in range(count)]
    elif mode == "threads":
        lock = threading.Lock()

        def starter(k: int) -> None:
            mine = [eng.start(spec) for _ in range(k)]
            with lock:
                runs.extend(mine)

        threads = [threading.Thread(target=starter, args=(count // 4,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elif mode == "each":
        for _ in range(count):
            run = eng.start(spec)
            run.wait(timeout=60)
            runs.append(run)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    statuses = [eng.wait(r.id, timeout=600) for r in runs]
    elapsed = time.perf_counter() - t0
    cpu = _process_cpu() - cpu0
    eng.close()
    shutil.rmtree(work, ignore_errors=True)
    assert statuses.count("COMPLETED") == len(runs) == count, statuses[:3]
    return {
        "workflows_per_s": count / elapsed,
        "raw_commits_per_s": 1 / raw,
        "ratio": count / elapsed * raw,
        "commits": counts["commits"],
        "checkpoints": counts["ops"],
        "checkpoints_per_commit": counts["ops"] / max(counts["commits"], 1),
        **(
            {
                "sql_us_per_workflow": timed.seconds / count * 1e6,
                "sql_cpu_us_per_workflow": timed.cpu_seconds / count * 1e6,
                "cpu_us_per_workflow": cpu / count * 1e6,
                "statements_per_workflow": timed.statements / count,
                "rest_us_per_workflow": (elapsed - timed.seconds) / count * 1e6,
            }
            if timed is not None
            else {}
        ),
    }


@workload
def workflow_sql(n: str = "1000") -> dict:
    """The statements one 3-step workflow runs, recorded from the engine and replayed ``n`` times by
    raw sqlite3 on one thread (prepared, same pragmas, new ids each time): the least a workflow costs
    in SQLite alone, beside raw INSERT+COMMIT measured in the same process."""
    from airt_nb import Engine

    count = int(n)
    work = tmpdir()
    raw = raw_commits(work / "raw.db", 2000, "normal") / 2000
    eng = Engine(work / "airt.db", registry=registry())
    spec = chain("three", 3)
    eng.wait(eng.start(spec).id, timeout=60)
    timed = _time_sql(eng.store)
    timed.recorded = []
    run = eng.start(spec)
    eng.wait(run.id, timeout=60)
    time.sleep(0.2)  # the settling commit has returned to its thread
    recorded, timed.recorded = timed.recorded, None
    eng.close()
    old_id = run.id
    conn = sqlite3.connect(work / "airt.db", isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    first_step = conn.execute("SELECT MIN(step_id) FROM workflow_steps WHERE workflow_id = ?", (old_id,)).fetchone()[0]

    def swap(value, new_id, offset):
        if value == old_id:
            return new_id
        if type(value) is int and first_step <= value < first_step + 3:
            return value + offset
        return value

    def params_for(params, new_id, offset):
        if isinstance(params, dict):
            return {k: swap(v, new_id, offset) for k, v in params.items()}
        return tuple(swap(v, new_id, offset) for v in params)

    t0 = time.perf_counter()
    for i in range(count):
        new_id = f"{i:016x}"
        offset = conn.execute("SELECT MAX(step_id) FROM workflow_steps").fetchone()[0] + 1 - first_step
        for method, sql, params in recorded:
            if method == "executemany":
                conn.executemany(sql, [params_for(p, new_id, offset) for p in params])
            else:
                conn.execute(sql, params_for(params, new_id, offset)).fetchall()
    floor = (time.perf_counter() - t0) / count
    conn.close()
    shutil.rmtree(work, ignore_errors=True)
    commits, in_tx = 0, False
    for _, sql, _ in recorded:
        if sql.startswith("BEGIN"):
            in_tx = True
        elif sql in ("COMMIT", "ROLLBACK"):
            commits, in_tx = commits + (sql == "COMMIT"), False
        elif not in_tx and not sql.startswith("SELECT"):
            commits += 1  # a statement that is its own transaction
    return {
        "statements_per_workflow": len(recorded),
        "commits_per_workflow": commits,
        "floor_us_per_workflow": floor * 1e6,
        "raw_us_per_commit": raw * 1e6,
        "best_ratio": raw / floor,
    }


# -- 3. recovery at scale -------------------------------------------------------------------------

CRASH_SPEC = {
    "name": "victim",
    "steps": [{"name": "s0", "action": "noop"}, {"name": "s1", "action": "stuck"}, {"name": "s2", "action": "noop"}],
}
_crashing = False
_first_resume: list[float] = []


def crash_registry():
    """noop, and "stuck": interrupted in the process to crash, trivial when recovered.

    Both processes define the actions from this same source, so recovery sees unchanged code.
    """
    from airt_nb import StepInterrupted

    reg = registry()

    @reg.action("stuck")
    def stuck() -> dict:
        if _crashing:
            # Left RUNNING in the database, exactly like a step in flight when the process dies.
            raise StepInterrupted()
        if not _first_resume:
            _first_resume.append(time.perf_counter())
        return {}

    return reg


@workload
def victim(db: str, n: str) -> dict:
    """Start ``n`` 3-step workflows, stop each in step 2, say "ready", and wait to be killed."""
    global _crashing
    from airt_nb import Engine

    _crashing = True
    # The same notebook session as the recovering engine: a restarted kernel gets its own workflows at once.
    eng = Engine(db, registry=crash_registry(), recover=False, session="bench-crash")
    for _ in range(int(n)):
        eng.start(CRASH_SPEC)
    check = sqlite3.connect(db)
    query = "SELECT COUNT(*) FROM workflow_steps WHERE step_name = 's1' AND status = 'RUNNING'"
    while check.execute(query).fetchone()[0] < int(n):
        time.sleep(0.05)
    print("ready", flush=True)
    time.sleep(3600)
    return {}


def make_crashed_db(path: Path, n: int, script: Path | None = None) -> None:
    """Start ``n`` 3-step workflows in a child process, SIGKILL it after step 1 of each.

    ``script``: the ``workloads.py`` (of another checkout) whose code writes it; a newer schema opens
    an older database (it migrates it), never the other way round.
    """
    proc = subprocess.Popen(
        [sys.executable, str(script or __file__), "victim", str(path), str(n)],
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise SystemExit(f"the process to crash did not get ready: {line!r}")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Fold the WAL into the file so that one copy of the file is the whole crashed database.
    conn = sqlite3.connect(path)
    running = conn.execute(
        "SELECT COUNT(*) FROM workflow_steps WHERE step_name = 's1' AND status = 'RUNNING'"
    ).fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert running == n, running


@workload
def recovery(db: str) -> dict:
    """Engine(db) on a copy of a crashed database: time to the first resumed step and to all COMPLETED."""
    from airt_nb import Engine

    work = tmpdir()
    path = work / "airt.db"
    shutil.copyfile(db, path)
    conn = sqlite3.connect(path)
    total = conn.execute("SELECT COUNT(*) FROM workflows WHERE status = 'RUNNING'").fetchone()[0]
    conn.close()
    reg = crash_registry()
    first = _first_resume
    done = threading.Event()
    finished = [0]
    lock = threading.Lock()

    def on_event(event) -> None:
        if getattr(event, "status", None) == "COMPLETED" and type(event).__name__ == "WorkflowStatusChanged":
            with lock:
                finished[0] += 1
                if finished[0] == total:
                    done.set()

    cpu_start = _process_cpu()
    t0 = time.perf_counter()
    eng = Engine(path, registry=reg, recover=False, session="bench-crash")
    timed = _time_sql(eng.store)
    eng.subscribe(on_event)
    summary = eng.recover()
    recovered = time.perf_counter()
    done.wait(timeout=300)
    t_all = time.perf_counter()
    cpu_end = _process_cpu()
    completed = eng.store.count_workflows(status="COMPLETED")
    eng.close()
    shutil.rmtree(work, ignore_errors=True)
    assert completed == total, (completed, total, str(summary))
    return {
        "workflows": total,
        "all_completed_s": t_all - t0,
        "first_resume_ms": (first[0] - t0) * 1000,
        "recover_call_s": recovered - t0,
        "workflows_per_s": total / (t_all - t0),
        "sql_s": timed.seconds,
        "sql_cpu_s": timed.cpu_seconds,
        "cpu_s": cpu_end - cpu_start,
        "statements_per_workflow": timed.statements / total,
    }


# -- 4. approval round trip -------------------------------------------------------------------------

APPROVAL_SPEC = {
    "name": "approve",
    "steps": [
        {"name": "before", "action": "noop"},
        {"name": "review", "type": "human_approval", "message": "go?"},
        {"name": "after", "action": "noop"},
    ],
}


@workload
def approval_local(n: str = "200") -> dict:
    """run.approve() -> the next step has completed, in one process."""
    from airt_nb import Engine

    work = tmpdir()
    eng = Engine(work / "airt.db", registry=registry(), user="bench")
    samples = []
    for _ in range(int(n)):
        run = eng.start(APPROVAL_SPEC)
        assert run.wait(timeout=10) == "PAUSED"
        t0 = time.perf_counter()
        run.approve(by="bench")
        status = run.wait(timeout=10)
        samples.append(time.perf_counter() - t0)
        assert status == "COMPLETED", status
    eng.close()
    shutil.rmtree(work, ignore_errors=True)
    return {
        "median_ms": statistics.median(samples) * 1000,
        "p90_ms": statistics.quantiles(samples, n=10)[-1] * 1000,
    }


def approve_command(db: Path, workflow_id: str) -> list[str]:
    """The command another process runs to approve.

    Switch to the CLI once it exists: ``return ["airt", "--db", str(db), "approve", workflow_id]``.
    """
    code = "import sys; from airt_nb import Engine; Engine(sys.argv[1], recover=False).approve(sys.argv[2], by='bench')"
    return [sys.executable, "-c", code, str(db), workflow_id]


@workload
def approval_remote(n: str = "20", idle: str = "5") -> dict:
    """An engine waits; another process approves; decision committed -> next step done.

    Also: the waiting engine's CPU time while idle (nothing to do but poll).
    """
    from airt_nb import Engine

    work = tmpdir()
    db = work / "airt.db"
    eng = Engine(db, registry=registry(), user="bench")
    # Idle: one paused workflow, nothing else; measure this process's CPU.
    parked = eng.start(APPROVAL_SPEC)
    parked.wait(timeout=10)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(float(idle))
    cpu_per_min = (time.process_time() - cpu0) / (time.perf_counter() - wall0) * 60
    decision_ms, command_ms = [], []
    for _ in range(int(n)):
        run = eng.start(APPROVAL_SPEC)
        assert run.wait(timeout=10) == "PAUSED"
        done = threading.Event()
        seen: list[float] = []

        def on_event(event, wid=run.id, done=done, seen=seen) -> None:
            is_after = event.workflow_id == wid and getattr(event, "step_name", None) == "after"
            if is_after and not seen and type(event).__name__ == "StepFinished":
                seen.append(time.time())
                done.set()

        unsubscribe = eng.subscribe(on_event)
        t0 = time.perf_counter()
        subprocess.run(approve_command(db, run.id), env=child_env(), check=True, capture_output=True)
        assert done.wait(timeout=30), "the approved workflow did not continue"
        command_ms.append((time.perf_counter() - t0) * 1000)
        unsubscribe()
        decided = eng.store.approvals(workflow_id=run.id)[0].decided_at
        from airt_nb.timeutil import to_epoch

        decision_ms.append((seen[0] - to_epoch(decided)) * 1000)
        assert run.wait(timeout=10) == "COMPLETED"
    eng.close()
    shutil.rmtree(work, ignore_errors=True)
    return {
        "median_ms": statistics.median(decision_ms),
        "max_ms": max(decision_ms),
        "command_median_ms": statistics.median(command_ms),
        "idle_cpu_s_per_min": cpu_per_min,
    }


# -- 5. views over a large database ------------------------------------------------------------------


@workload
def views(db: str) -> dict:
    """runs(), steps(workflow_id=...), the dashboard's first page and a status filter, on a big database."""
    import airt_nb.frames  # noqa: F401  (pandas is already loaded in a notebook that looks at frames)
    from airt_nb import runs, steps
    from airt_nb.store.sqlite import SQLiteStore

    out: dict = {}
    t0 = time.perf_counter()
    df = runs(db)
    out["runs_s"] = time.perf_counter() - t0
    out["runs_rows"] = len(df)
    del df
    store = SQLiteStore(db)
    some = store.list_workflows(limit=1, offset=54321)[0].workflow_id
    t0 = time.perf_counter()
    sdf = steps(db, workflow_id=some)
    out["steps_ms"] = (time.perf_counter() - t0) * 1000
    assert len(sdf) == 10, len(sdf)
    t0 = time.perf_counter()
    page = store.list_workflows(limit=50)
    out["first_page_ms"] = (time.perf_counter() - t0) * 1000
    assert len(page) == 50
    t0 = time.perf_counter()
    failed = store.list_workflows(status="FAILED", limit=50)
    out["status_filter_ms"] = (time.perf_counter() - t0) * 1000
    assert len(failed) == 50
    t0 = time.perf_counter()
    store.count_workflows(status="FAILED")
    out["count_status_ms"] = (time.perf_counter() - t0) * 1000
    store.close()
    out["db_mb"] = sum(p.stat().st_size for p in Path(db).parent.glob(Path(db).name + "*")) / 2**20
    return out


# -- 6. memory and start-up ---------------------------------------------------------------------------


@workload
def memory(n: str = "100000", batch: str = "1000") -> dict:
    """Peak RSS after 1,000 and after ``n`` completed workflows in one engine."""
    from airt_nb import Engine

    work = tmpdir()
    eng = Engine(work / "airt.db", registry=registry())
    spec = chain("three", 3)
    size = int(batch)
    out: dict = {}
    done = 0
    t0 = time.perf_counter()
    while done < int(n):
        runs: list = []
        # Started from 4 threads, as in the workflows figure: the same history, in less time.
        starters = [
            threading.Thread(target=lambda: runs.extend([eng.start(spec) for _ in range(size // 4)])) for _ in range(4)
        ]
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        for r in runs:
            assert eng.wait(r.id, timeout=600) == "COMPLETED"
        done += size
        if done == 1000:
            out["rss_1k_mb"] = rss_now_mb()
            out["peak_1k_mb"] = rss_peak_mb()
    out["rss_end_mb"] = rss_now_mb()
    out["peak_end_mb"] = rss_peak_mb()
    out["growth"] = out["peak_end_mb"] / out["peak_1k_mb"] - 1
    out["workflows_per_s"] = done / (time.perf_counter() - t0)
    eng.close()
    shutil.rmtree(work, ignore_errors=True)
    return out


@workload
def imports() -> dict:
    """``import airt_nb`` in a fresh interpreter, and what it pulled in."""
    code = (
        "import sys, time, json; t = time.perf_counter(); import airt_nb; d = time.perf_counter() - t; "
        "print(json.dumps({'import_s': d, 'heavy': [m for m in ('pandas', 'ipywidgets', 'IPython') if m in sys.modules]}))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=child_env(), check=True, capture_output=True, text=True)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    floor = subprocess.run(
        [sys.executable, "-c", "import time; t = time.perf_counter(); import pydantic, yaml, sqlite3; "
         "print(time.perf_counter() - t)"],
        env=child_env(),
        check=True,
        capture_output=True,
        text=True,
    )  # fmt: skip
    out["heavy"] = ",".join(out["heavy"]) or "none"
    out["dependencies_import_s"] = float(floor.stdout)
    return out


@workload
def load_ext() -> dict:
    """``%load_ext airt_nb`` in a real kernel (start-up of the kernel not counted)."""
    if not (ROOT / "airt_nb" / "magics.py").exists():
        return {"n/a": "airt_nb/magics.py does not exist yet"}
    from jupyter_client.manager import start_new_kernel

    work = tmpdir()
    env = child_env()
    env["AIRT_DB"] = str(work / "airt.db")
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(work))
    try:
        kc.execute_interactive("import time", timeout=60)
        t0 = time.perf_counter()
        reply = kc.execute_interactive("%load_ext airt_nb", timeout=60, output_hook=lambda msg: None)
        elapsed = time.perf_counter() - t0
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        shutil.rmtree(work, ignore_errors=True)
    return {"load_ext_s": elapsed}


# -- 7. panels under load -------------------------------------------------------------------------------


def _panel_factory():
    """The live panel of a run, or None while airt_nb.widgets does not exist."""
    try:
        import airt_nb.widgets as widgets
    except ImportError:
        return None
    for name in ("RunPanel", "run_panel"):
        factory = getattr(widgets, name, None)
        if factory is not None and callable(factory):
            return factory
    try:
        from airt_nb.widgets.run_panel import RunPanel

        return RunPanel
    except ImportError:
        return None


@workload
def panel(n: str = "10000") -> dict:
    """A long workflow with its live panel attached (headless): comm messages/s and relative speed."""
    factory = _panel_factory()
    if factory is None:
        return {"n/a": "airt_nb.widgets does not exist yet"}
    import comm
    from ipywidgets import Widget

    sent = [0]

    class CountingComm(comm.base_comm.BaseComm):
        def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
            if msg_type == "comm_msg":
                sent[0] += 1

    comm.create_comm = lambda **kw: CountingComm(**kw)
    from airt_nb import Engine

    count = int(n)
    work = tmpdir()
    eng = Engine(work / "airt.db", registry=registry())
    # Steps of 0.2 ms: the run lasts seconds, so the rate measured is the panel's steady state,
    # not the few messages that building and displaying it cost once.
    spec = chain("panel", count, action="tick")
    t0 = time.perf_counter()
    assert eng.start(spec).wait(timeout=600) == "COMPLETED"
    bare = time.perf_counter() - t0
    run = eng.start(spec)
    panel_widget = factory(run)
    sent[0] = 0  # count what updating the panel costs, not building it
    t0 = time.perf_counter()
    status = run.wait(timeout=600)
    with_panel = time.perf_counter() - t0
    eng.close()
    assert status == "COMPLETED"
    del panel_widget
    Widget.close_all()
    shutil.rmtree(work, ignore_errors=True)
    return {
        "messages_per_s": sent[0] / with_panel,
        "relative_speed": bare / with_panel,
    }


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in WORKLOADS:
        raise SystemExit(f"usage: workloads.py {{{','.join(WORKLOADS)}}} [ARGS...]")
    result = WORKLOADS[argv[0]](*argv[1:])
    result["peak_rss_mb"] = result.get("peak_rss_mb", rss_peak_mb())
    print(json.dumps(result), flush=True)
    # Do not wait for stray non-daemon threads: the measurement is done.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
