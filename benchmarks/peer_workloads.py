"""Workloads 1–4 on DBOS Transact (SQLite and PostgreSQL) and LangGraph (SqliteSaver), for ``peers.py``.

Runs inside the peers' own virtual environment (it never imports airt_nb):
``python benchmarks/peer_workloads.py PEER WORKLOAD [ARGS...]`` prints one JSON
object.  Each peer runs with its defaults on a fresh SQLite file, or (peer
``dbos-pg``) on a fresh database of the PostgreSQL server whose ``postgres``
database URL is given; the step bodies are as trivial as ours.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

T_START = time.perf_counter()
CRASHING = os.environ.get("PEER_CRASHING") == "1"
_first_resume: list[float] = []
_finished = [0]
_finished_lock = threading.Lock()
_all_done = threading.Event()
_expected = [0]


def _fresh(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix="airt-peer-")) / name


def _mark_finished() -> None:
    with _finished_lock:
        _finished[0] += 1
        if _finished[0] == _expected[0]:
            _all_done.set()


# -- DBOS ------------------------------------------------------------------------------------------


def dbos_app(db: Path):
    t0 = time.perf_counter()
    from dbos import DBOS

    import_s = time.perf_counter() - t0
    url = str(db) if str(db).startswith("postgresql://") else f"sqlite:///{db}"
    DBOS(config={"name": "airt-bench", "system_database_url": url})

    @DBOS.step()
    def noop() -> dict:
        return {}

    @DBOS.step()
    def s1() -> dict:
        if CRASHING:
            time.sleep(3600)  # in flight when the process is killed
        if not _first_resume:
            _first_resume.append(time.perf_counter())
        return {}

    @DBOS.workflow()
    def chain(n: int) -> int:
        for _ in range(n):
            noop()
        return n

    @DBOS.workflow()
    def crash_wf() -> int:
        noop()
        s1()
        noop()
        _mark_finished()
        return 3

    @DBOS.workflow()
    def approve_wf() -> str:
        noop()
        DBOS.set_event("waiting", True)
        decision = DBOS.recv("approve", timeout_seconds=60)
        noop()
        return decision

    return DBOS, {"chain": chain, "crash_wf": crash_wf, "approve_wf": approve_wf, "import_s": import_s}


def dbos_steps(n: str = "1000", db: Path | str | None = None) -> dict:
    DBOS, f = dbos_app(db or _fresh("dbos.sqlite"))
    DBOS.launch()
    t0 = time.perf_counter()
    DBOS.start_workflow(f["chain"], int(n)).get_result()
    elapsed = time.perf_counter() - t0
    DBOS.destroy()
    return {"steps_per_s": int(n) / elapsed, "import_s": f["import_s"]}


def dbos_workflows(n: str = "500", db: Path | str | None = None) -> dict:
    DBOS, f = dbos_app(db or _fresh("dbos.sqlite"))
    DBOS.launch()
    DBOS.start_workflow(f["chain"], 3).get_result()
    t0 = time.perf_counter()
    handles = [DBOS.start_workflow(f["chain"], 3) for _ in range(int(n))]
    for h in handles:
        h.get_result()
    elapsed = time.perf_counter() - t0
    DBOS.destroy()
    return {"workflows_per_s": int(n) / elapsed}


def dbos_victim(db: str, n: str) -> dict:
    DBOS, f = dbos_app(Path(db))
    DBOS.launch()
    for _ in range(int(n)):
        DBOS.start_workflow(f["crash_wf"])
    conn = sqlite3.connect(db)
    while conn.execute("SELECT COUNT(*) FROM operation_outputs WHERE function_id = 1").fetchone()[0] < int(n):
        time.sleep(0.05)
    print("ready", flush=True)
    time.sleep(3600)
    return {}


def dbos_recovery(db: str) -> dict:
    work = _fresh("dbos.sqlite")
    import shutil

    shutil.copyfile(db, work)
    conn = sqlite3.connect(work)
    _expected[0] = conn.execute("SELECT COUNT(*) FROM workflow_status WHERE status = 'PENDING'").fetchone()[0]
    conn.close()
    import dbos  # noqa: F401  (imported before the clock starts, as airt_nb is for ours)

    t0 = time.perf_counter()
    DBOS, _ = dbos_app(work)
    DBOS.launch()  # recovers this executor's pending workflows
    assert _all_done.wait(timeout=600), f"{_finished[0]} of {_expected[0]} recovered"
    elapsed = time.perf_counter() - t0
    DBOS.destroy()
    return {"all_completed_s": elapsed, "first_resume_ms": (_first_resume[0] - t0) * 1000}


def dbos_approval(n: str = "20", db: Path | str | None = None) -> dict:
    DBOS, f = dbos_app(db or _fresh("dbos.sqlite"))
    DBOS.launch()
    samples = []
    for _ in range(int(n)):
        h = DBOS.start_workflow(f["approve_wf"])
        DBOS.get_event(h.workflow_id, "waiting", timeout_seconds=30)
        t0 = time.perf_counter()
        DBOS.send(h.workflow_id, "approved", topic="approve")
        h.get_result()
        samples.append(time.perf_counter() - t0)
    DBOS.destroy()
    return {"median_ms": statistics.median(samples) * 1000}


# -- DBOS on PostgreSQL ------------------------------------------------------------------------------

PG_TEMPLATE = "dbos_bench_crashed"


def _pg_database(server: str, template: str | None = None) -> str:
    """A new database on ``server`` (a copy of ``template`` if given); returns its URL."""
    import psycopg

    name = f"dbos_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return server.rsplit("/", 1)[0] + "/" + name


def _pg_drop(server: str, url: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def dbos_pg_steps(server: str, n: str = "1000") -> dict:
    db = _pg_database(server)
    try:
        return dbos_steps(n, db=db)
    finally:
        _pg_drop(server, db)


def dbos_pg_workflows(server: str, n: str = "500") -> dict:
    db = _pg_database(server)
    try:
        return dbos_workflows(n, db=db)
    finally:
        _pg_drop(server, db)


def dbos_pg_approval(server: str, n: str = "200") -> dict:
    db = _pg_database(server)
    try:
        return dbos_approval(n, db=db)
    finally:
        _pg_drop(server, db)


def dbos_pg_victim(db: str, n: str) -> dict:
    import psycopg

    DBOS, f = dbos_app(db)
    DBOS.launch()
    for _ in range(int(n)):
        DBOS.start_workflow(f["crash_wf"])
    with psycopg.connect(db, autocommit=True) as conn:
        query = "SELECT COUNT(*) FROM dbos.operation_outputs WHERE function_id = 1"
        while conn.execute(query).fetchone()[0] < int(n):
            time.sleep(0.05)
    print("ready", flush=True)
    time.sleep(3600)
    return {}


def dbos_pg_recovery(server: str) -> dict:
    import dbos  # noqa: F401  (imported before the clock starts, as airt_nb is for ours)
    import psycopg

    db = _pg_database(server, template=PG_TEMPLATE)
    try:
        with psycopg.connect(db, autocommit=True) as conn:
            _expected[0] = conn.execute(
                "SELECT COUNT(*) FROM dbos.workflow_status WHERE status = 'PENDING'"
            ).fetchone()[0]
        t0 = time.perf_counter()
        DBOS, _ = dbos_app(db)
        DBOS.launch()  # recovers this executor's pending workflows
        assert _all_done.wait(timeout=600), f"{_finished[0]} of {_expected[0]} recovered"
        elapsed = time.perf_counter() - t0
        DBOS.destroy()
    finally:
        _pg_drop(server, db)
    return {"all_completed_s": elapsed, "first_resume_ms": (_first_resume[0] - t0) * 1000}


# -- LangGraph ---------------------------------------------------------------------------------------


def lg_imports():
    t0 = time.perf_counter()
    from typing import TypedDict

    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import END, START, StateGraph

    import_s = time.perf_counter() - t0

    class State(TypedDict):
        n: int

    return SqliteSaver, StateGraph, START, END, State, import_s


def lg_saver(db: Path):
    SqliteSaver, *_ = lg_imports()
    return SqliteSaver(sqlite3.connect(db, check_same_thread=False))


def lg_chain(n: int, saver, crash: bool = False):
    _, StateGraph, START, END, State, _ = lg_imports()
    g = StateGraph(State)
    prev = START
    for i in range(n):

        def node(state, i=i):
            if crash and i == 1:
                if CRASHING:
                    _mark_finished()  # counts arrivals in step 2 here
                    time.sleep(3600)
                if not _first_resume:
                    _first_resume.append(time.perf_counter())
            return {"n": state["n"] + 1}

        g.add_node(f"s{i}", node)
        g.add_edge(prev, f"s{i}")
        prev = f"s{i}"
    g.add_edge(prev, END)
    return g.compile(checkpointer=saver)


def lg_steps(n: str = "1000") -> dict:
    import_s = lg_imports()[-1]
    graph = lg_chain(int(n), lg_saver(_fresh("lg.sqlite")))
    t0 = time.perf_counter()
    graph.invoke({"n": 0}, {"configurable": {"thread_id": "t"}, "recursion_limit": int(n) + 10})
    elapsed = time.perf_counter() - t0
    return {"steps_per_s": int(n) / elapsed, "import_s": import_s}


def lg_workflows(n: str = "500") -> dict:
    graph = lg_chain(3, lg_saver(_fresh("lg.sqlite")))
    graph.invoke({"n": 0}, {"configurable": {"thread_id": "warm"}})
    t0 = time.perf_counter()
    for i in range(int(n)):
        graph.invoke({"n": 0}, {"configurable": {"thread_id": f"w{i}"}})
    return {"workflows_per_s": int(n) / (time.perf_counter() - t0)}


def lg_victim(db: str, n: str) -> dict:
    graph = lg_chain(3, lg_saver(Path(db)), crash=True)
    _expected[0] = int(n)
    for i in range(int(n)):
        threading.Thread(
            target=graph.invoke, args=({"n": 0}, {"configurable": {"thread_id": f"c{i}"}}), daemon=True
        ).start()
    _all_done.wait()
    time.sleep(1.0)  # checkpoints are written in the background: let the last ones land
    print("ready", flush=True)
    time.sleep(3600)
    return {}


def lg_recovery(db: str) -> dict:
    import shutil

    work = _fresh("lg.sqlite")
    shutil.copyfile(db, work)
    conn = sqlite3.connect(work)
    threads = [r[0] for r in conn.execute("SELECT DISTINCT thread_id FROM checkpoints ORDER BY thread_id")]
    conn.close()
    lg_imports()  # imported before the clock starts, as airt_nb is for ours
    t0 = time.perf_counter()
    graph = lg_chain(3, lg_saver(work), crash=True)
    for thread_id in threads:  # no recovery of its own: resume each thread by hand
        out = graph.invoke(None, {"configurable": {"thread_id": thread_id}})
        assert out["n"] == 3, out
    elapsed = time.perf_counter() - t0
    return {"all_completed_s": elapsed, "first_resume_ms": (_first_resume[0] - t0) * 1000, "workflows": len(threads)}


def lg_approval(n: str = "200") -> dict:
    from langgraph.types import Command, interrupt

    _, StateGraph, START, END, State, _ = lg_imports()

    def review(state):
        interrupt("go?")
        return {"n": state["n"] + 1}

    g = StateGraph(State)
    g.add_node("before", lambda s: {"n": 1})
    g.add_node("review", review)
    g.add_node("after", lambda s: {"n": s["n"] + 1})
    g.add_edge(START, "before")
    g.add_edge("before", "review")
    g.add_edge("review", "after")
    g.add_edge("after", END)
    graph = g.compile(checkpointer=lg_saver(_fresh("lg.sqlite")))
    samples = []
    for i in range(int(n)):
        cfg = {"configurable": {"thread_id": f"a{i}"}}
        assert "__interrupt__" in graph.invoke({"n": 0}, cfg)
        t0 = time.perf_counter()
        out = graph.invoke(Command(resume=True), cfg)
        samples.append(time.perf_counter() - t0)
        assert out["n"] == 3
    return {"median_ms": statistics.median(samples) * 1000}


# -- crashing a peer ------------------------------------------------------------------------------------


def make_crashed(peer: str, path: Path | str, n: int) -> None:
    """``path``: a SQLite file, or for ``dbos-pg`` the server's URL (the template database is made there)."""
    if peer == "dbos-pg":
        import psycopg

        server = str(path)
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{PG_TEMPLATE}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{PG_TEMPLATE}"')
        path = server.rsplit("/", 1)[0] + "/" + PG_TEMPLATE
    env = dict(os.environ, PEER_CRASHING="1")
    proc = subprocess.Popen(
        [sys.executable, __file__, peer, "victim", str(path), str(n)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise SystemExit(f"{peer}: the process to crash did not get ready ({line!r})")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if peer == "dbos-pg":
        return
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


PEERS = {
    "dbos": {
        "steps": dbos_steps,
        "workflows": dbos_workflows,
        "victim": dbos_victim,
        "recovery": dbos_recovery,
        "approval": dbos_approval,
    },
    "dbos-pg": {
        "steps": dbos_pg_steps,
        "workflows": dbos_pg_workflows,
        "victim": dbos_pg_victim,
        "recovery": dbos_pg_recovery,
        "approval": dbos_pg_approval,
    },
    "langgraph": {
        "steps": lg_steps,
        "workflows": lg_workflows,
        "victim": lg_victim,
        "recovery": lg_recovery,
        "approval": lg_approval,
    },
}


def main(argv: list[str]) -> None:
    if argv[:1] == ["crash"]:
        make_crashed(argv[1], argv[2] if argv[1] == "dbos-pg" else Path(argv[2]), int(argv[3]))
        print(json.dumps({"crashed": argv[2]}))
        os._exit(0)
    peer, name, *args = argv
    result = PEERS[peer][name](*args)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
