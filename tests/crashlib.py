"""Crash-test kit: a worker that runs workflows in a child process, and the parent's tools.

The child (``python tests/crashlib.py CONFIG.json``) opens an :class:`airt_nb.Engine`
on a real database file, recovers, optionally starts workflows and approves
paused ones, and waits until every workflow is finished.  Its one action,
``effect``, appends JSON lines to an effects file opened with ``O_APPEND``
(one ``write`` per line, so lines of concurrent processes never mix):

``begin``  the step's function was entered (not a side effect)
``do``     THE side effect: counted by the tests
``end``    the function is about to return its outputs
``undo``   the compensation's side effect

A config may name one *stop point*; when the child reaches it, it writes a
line to the signal pipe and blocks forever, so that the parent can SIGKILL it
at exactly that instant:

``before``       in the step, before its side effect
``after``        in the step, after its side effect, before the checkpoint
``checkpoint``   after the step's completion has been committed (an event
                 observer blocks the worker thread before the next step runs)
``retrying``     after a failed attempt was recorded RETRYING, before the
                 back-off timer is armed
``paused``       once the workflow is PAUSED for an approval
``undo_before`` / ``undo_after``   around a compensation's side effect

The parent appends ``{"ev": "killed", "pid": ...}`` to the effects file just
before a kill, so the order of lines in the file alone says which process was
alive when: no clocks are compared.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SETTLED = ("COMPLETED", "FAILED", "ROLLED_BACK", "CANCELLED", "PAUSED")
TERMINAL = ("COMPLETED", "FAILED", "ROLLED_BACK", "CANCELLED")


# -- specs ----------------------------------------------------------------------------------------


def chain_spec(name: str = "chain", steps: int = 5, **per_step: dict[str, Any]) -> dict[str, Any]:
    """``s1 -> s2 -> ... -> sN``; each step passes the previous step's token on as ``prev``.

    ``per_step`` adds inputs or keys to one step, e.g. ``s3={"retry": {...}, "inputs": {"fail_first": 1}}``.
    """
    out = []
    for i in range(1, steps + 1):
        step: dict[str, Any] = {"name": f"s{i}", "action": "effect", "inputs": {}}
        if i > 1:
            step["inputs"]["prev"] = f"${{{{ steps.s{i - 1}.outputs.token }}}}"
        extra = dict(per_step.get(f"s{i}", {}))
        step["inputs"].update(extra.pop("inputs", {}))
        step.update(extra)
        out.append(step)
    return {"name": name, "steps": out}


# -- the child ------------------------------------------------------------------------------------


class _Child:
    def __init__(self, cfg: dict[str, Any]):
        self.cfg = cfg
        self.effects = cfg["effects"]
        self.stop = cfg.get("stop") or {}
        self.signal_fd = cfg.get("signal_fd")
        self.pid = os.getpid()
        self._signal_lock = threading.Lock()
        self._resume = threading.Event()
        self.engine: Any = None
        self._began: dict[tuple[str, str], threading.Event] = {}

    # The one place a child writes to the effects file: a single O_APPEND write per line.
    def log(self, ev: str, **fields: Any) -> None:
        line = json.dumps({"ev": ev, "pid": self.pid, "t": time.time(), **fields}) + "\n"
        fd = os.open(self.effects, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def began(self, workflow_id: str, step: str) -> threading.Event:
        with self._signal_lock:
            return self._began.setdefault((workflow_id, step), threading.Event())

    def signal(self, message: str) -> None:
        if self.signal_fd is None:
            return
        with self._signal_lock:
            os.write(self.signal_fd, (message + "\n").encode())

    def halt(self, where: str, workflow_id: str | None = None) -> None:
        """Tell the parent where we are, then block until killed (or sent SIGUSR1).

        With ``stop.request`` (``cancel`` or ``rollback``), ask for that first, as a
        person clicking the button while the step runs.
        """
        request = self.stop.get("request")
        if request and workflow_id and self.engine is not None:
            getattr(self.engine, request)(workflow_id, by="crash")
        self.signal(f"stopped {where}")
        self._resume.wait()

    def stop_point(self, at: str, step: str, workflow_id: str | None = None) -> None:
        if self.stop.get("at") == at and self.stop.get("step") in (step, "*"):
            self.halt(f"{at} {step}", workflow_id)

    def registry(self, variant: str = "v1", into: Any = None) -> Any:
        from airt_nb import Registry, StepContext

        reg = Registry() if into is None else into
        child = self
        if self.cfg.get("late"):
            reg.action("late")(lambda prev=None: {"token": "late"})

        def effect(
            ctx: StepContext,
            prev: Any = None,
            fail_first: int = 0,
            fail_always: bool = False,
            hold: float = 0.0,
            after: str = "",
        ) -> dict:
            if after:  # a parallel sibling must have begun first (in this process): no race in the test
                child.began(ctx.workflow_id, after).wait(10)
            common = {"wf": ctx.workflow_id, "step": ctx.step_name, "attempt": ctx.attempt, "key": ctx.idempotency_key}
            child.log("begin", **common)
            child.began(ctx.workflow_id, ctx.step_name).set()
            child.stop_point("before", ctx.step_name, ctx.workflow_id)
            token = uuid.uuid4().hex[:12]
            child.log("do", token=token, prev=prev, **common)
            if hold:
                time.sleep(hold)
            child.stop_point("after", ctx.step_name, ctx.workflow_id)
            if fail_always or ctx.attempt <= fail_first:
                child.log("end", failed=True, **common)
                raise RuntimeError(f"{ctx.step_name} fails on attempt {ctx.attempt}")
            child.log("end", token=token, **common)
            return {"token": token}

        if variant == "v2":
            # Same behaviour, different source: the fingerprint changes ("code changed").
            inner = effect

            def effect(  # type: ignore[no-redef]
                ctx: StepContext,
                prev: Any = None,
                fail_first: int = 0,
                fail_always: bool = False,
                hold: float = 0.0,
                after: str = "",
            ) -> dict:
                return inner(ctx, prev, fail_first, fail_always, hold, after)  # version 2

        act = reg.action("effect")(effect)

        @act.compensate
        def _undo(inputs: dict, outputs: dict, cctx: Any) -> None:
            child.stop_point("undo_before", cctx.step_name)
            child.log("undo", wf=cctx.workflow_id, step=cctx.step_name, token=outputs["token"])
            child.stop_point("undo_after", cctx.step_name)

        return reg

    def observe(self, event: Any) -> None:
        from airt_nb import events as ev

        stop_at, stop_step = self.stop.get("at"), self.stop.get("step")
        if isinstance(event, ev.StepFinished) and stop_step in (event.step_name, "*"):
            if stop_at == "checkpoint" and event.status == "COMPLETED":
                self.halt(f"checkpoint {event.step_name}")
            if stop_at == "retrying" and event.status == "RETRYING":
                self.halt(f"retrying {event.step_name}")
        if isinstance(event, ev.WorkflowStatusChanged) and event.status == "PAUSED" and stop_at == "paused":
            self.signal(f"stopped paused {event.workflow_id}")

    def main(self) -> int:
        import airt_nb

        cfg = self.cfg
        signal.signal(signal.SIGUSR1, lambda *_: self._resume.set())
        reg = self.registry(cfg.get("variant", "v1"))
        eng = airt_nb.Engine(
            cfg["db"],
            registry=reg,
            user="crash",
            recover=False,
            lease_ttl=cfg.get("lease_ttl", 30.0),
            session=cfg.get("session"),
            home_grace=cfg.get("home_grace"),
            durability=cfg.get("durability", "normal"),
        )
        self.engine = eng
        eng.subscribe(self.observe)
        if cfg.get("barrier"):
            # The parent releases every child at once, each with its database open (connections
            # made), so that they all start taking up work at the same moment (release_together).
            self.signal("at barrier")
            sys.stdin.readline()
        summary = eng.recover() if cfg.get("recover", True) else None
        self.signal(
            "opened "
            + json.dumps(
                {"resumed": summary.resumed, "restored": summary.restored, "skipped": summary.skipped}
                if summary
                else {}
            )
        )
        for item in cfg.get("start", []):
            run = eng.start(item["spec"], item.get("inputs"))
            self.signal(f"started {run.id}")
        if cfg.get("wait", True):
            self.wait_all(eng)
        if self.stop and not self._resume.is_set():
            self._resume.wait()  # a child with a stop point lives until it is killed (or resumed)
        eng.close()
        self.signal("done")
        return 0

    def wait_all(self, eng: Any) -> None:
        """Until every workflow in the database is finished (deciding paused ones if asked).

        A workflow whose name starts with ``reject`` is rejected, any other approved.
        """
        approve = self.cfg.get("approve", False)
        deadline = time.monotonic() + self.cfg.get("timeout", 60.0)
        while time.monotonic() < deadline:
            statuses = eng.store.status_counts()
            if approve and statuses.get("PAUSED"):
                for rec in eng.list(status="PAUSED", limit=1000):
                    decide = eng.reject if rec.name.startswith("reject") else eng.approve
                    try:
                        decide(rec.workflow_id, by="crash", reason="crash test")
                    except airt_errors() as exc:
                        self.log("approve-raced", wf=rec.workflow_id, error=str(exc))
                continue
            done = TERMINAL if approve else SETTLED
            if all(status in done for status in statuses):
                return
            with eng._cv:
                eng._cv.wait(0.05)
        raise SystemExit(f"workflows not finished in time: {eng.store.status_counts()}")


def registry(effects: Path | str, variant: str = "v1", *, into: Any = None, **cfg: Any) -> Any:
    """The crash tests' actions for use in the test process itself (registered ``into`` a given registry)."""
    return _Child({"effects": str(effects), **cfg}).registry(variant, into)


def airt_errors() -> tuple[type[Exception], ...]:
    from airt_nb import ApprovalError, WorkflowStateError

    return (ApprovalError, WorkflowStateError)


# -- the parent -----------------------------------------------------------------------------------


class ChildDiedError(AssertionError):
    pass


_SPAWNED: list[Child] = []


def kill_leftovers() -> None:
    """SIGKILL every child a failed test left running, and close readers (call after each test)."""
    close_readers()
    while _SPAWNED:
        child = _SPAWNED.pop()
        if child.proc.poll() is None:
            child.kill()
        child.close()


class Child:
    """A worker process and the read end of its signal pipe."""

    def __init__(self, tmp: Path, cfg: dict[str, Any], *, name: str = "child", wrap: list[str] | None = None):
        self.read_fd, write_fd = os.pipe()
        cfg = {**cfg, "signal_fd": write_fd}
        self.cfg_path = tmp / f"{name}-{time.monotonic_ns()}.json"
        self.cfg_path.write_text(json.dumps(cfg))
        self.stderr_path = self.cfg_path.with_suffix(".stderr")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env.pop("AIRT_RECOVER", None)
        if is_url(cfg["db"]):
            # Engines on PostgreSQL act as if each child ran on a machine of its own: no pid
            # check protects them, only leases and the engines' locks.
            env["AIRT_MACHINE_ID"] = f"machine-of-{name}-{uuid.uuid4().hex[:8]}"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*(wrap or []), sys.executable, str(Path(__file__).resolve()), str(self.cfg_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=err,
                pass_fds=[write_fd],
                env=env,
            )
        os.close(write_fd)
        _SPAWNED.append(self)
        self.effects = cfg["effects"]
        self._buf = b""
        self.messages: list[str] = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        """Let a child waiting at the barrier go (see :func:`release_together`)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def next_message(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise ChildDiedError(f"child {self.pid} said nothing for {timeout} s; stderr:\n{self.stderr()}")
            ready, _, _ = select.select([self.read_fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self.read_fd, 4096)
            if not chunk:
                self.proc.wait(timeout=10)
                raise ChildDiedError(
                    f"child {self.pid} exited ({self.proc.returncode}) before saying anything more; "
                    f"stderr:\n{self.stderr()}"
                )
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        message = line.decode()
        self.messages.append(message)
        return message

    def expect(self, prefix: str, timeout: float = 30.0) -> str:
        """Read messages until one starts with ``prefix``; return it."""
        while True:
            message = self.next_message(timeout)
            if message.startswith(prefix):
                return message
            if message.startswith("stopped") and not prefix.startswith("stopped"):
                raise ChildDiedError(f"child {self.pid} stopped unexpectedly: {message}")

    def kill(self) -> None:
        """Mark the moment in the effects file, SIGKILL the child and reap it.

        Marked first: another engine may see the child dead (a zombie's pid, a released PostgreSQL
        lock) and take its workflows before this process has reaped it.
        """
        line = json.dumps({"ev": "killed", "pid": self.proc.pid}) + "\n"
        fd = os.open(self.effects, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.close()

    def finish(self, timeout: float = 60.0) -> None:
        """Wait for a normal exit; fail with the child's stderr otherwise."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ChildDiedError(f"child {self.pid} did not finish in {timeout} s; stderr:\n{self.stderr()}") from None
        self.close()
        if rc != 0:
            raise ChildDiedError(f"child {self.pid} exited with {rc}; stderr:\n{self.stderr()}")

    def close(self) -> None:
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()


def config(db: Path, effects: Path, **kw: Any) -> dict[str, Any]:
    return {"db": str(db), "effects": str(effects), **kw}


# -- reading what happened ------------------------------------------------------------------------


def read_effects(path: Path | str) -> list[dict[str, Any]]:
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def is_url(db: Path | str) -> bool:
    return str(db).startswith(("postgresql://", "postgres://"))


_PG_READERS: dict[str, Any] = {}


def db_rows(db: Path | str, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
    """Read the database the way another tool would (a plain sqlite3 or psycopg connection).

    ``sql`` uses ``?`` placeholders for both.
    """
    if is_url(db):
        import psycopg

        url = str(db)
        conn = _PG_READERS.get(url)
        if conn is None or conn.closed or conn.broken:
            conn = _PG_READERS[url] = psycopg.connect(url, autocommit=True)
        return conn.execute(sql.replace("?", "%s"), tuple(params)).fetchall()  # type: ignore[no-any-return]
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, tuple(params)).fetchall()
    finally:
        conn.close()


def close_readers() -> None:
    """Close the connections :func:`db_rows` keeps to PostgreSQL databases."""
    while _PG_READERS:
        _url, conn = _PG_READERS.popitem()
        conn.close()


def step_rows(db: Path | str, workflow_id: str) -> dict[str, dict[str, Any]]:
    rows = db_rows(
        db,
        "SELECT step_name, status, attempt, outputs, inputs FROM workflow_steps WHERE workflow_id = ?",
        (workflow_id,),
    )
    return {
        r[0]: {
            "status": r[1],
            "attempt": r[2],
            "outputs": json.loads(r[3]) if r[3] else None,
            "inputs": json.loads(r[4]) if r[4] else None,
        }
        for r in rows
    }


def workflow_statuses(db: Path | str) -> dict[str, str]:
    return dict(db_rows(db, "SELECT workflow_id, status FROM workflows"))  # type: ignore[arg-type]


def wait_for_db(db: Path | str, sql: str, params: Iterable[Any] = (), timeout: float = 30.0) -> list[tuple]:
    """Poll a read-only query until it returns rows (the child has committed what we wait for)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = db_rows(db, sql, params)
        if rows:
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing matched {sql!r} {tuple(params)} within {timeout} s")
        time.sleep(0.005)


def effects_by_step(effects: list[dict[str, Any]], ev: str = "do") -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in effects:
        if e["ev"] == ev:
            out[(e["wf"], e["step"])].append(e)
    return out


def overlaps(effects: list[dict[str, Any]]) -> list[str]:
    """Moments where a process began a step of a workflow that a live other process was running.

    A step is open in a process from its ``begin`` to its ``end``, or until the
    parent marked that process ``killed``.  Order in the file is the order of
    events, so no clock is compared.
    """
    open_steps: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)  # wf -> {(step, key): pid}
    dead: set[int] = set()
    found = []
    for e in effects:
        if e["ev"] == "killed":
            dead.add(e["pid"])
            for running in open_steps.values():
                for k in [k for k, pid in running.items() if pid == e["pid"]]:
                    del running[k]
        elif e["ev"] == "begin":
            running = open_steps[e["wf"]]
            others = {pid for pid in running.values() if pid != e["pid"] and pid not in dead}
            if others:
                found.append(
                    f"pid {e['pid']} began {e['wf']}/{e['step']} while pid(s) {sorted(others)} ran "
                    f"{sorted(k[0] for k, p in running.items() if p in others)}"
                )
            running[(e["step"], e["key"])] = e["pid"]
        elif e["ev"] == "end":
            open_steps[e["wf"]].pop((e["step"], e["key"]), None)
    return found


if __name__ == "__main__":
    with open(sys.argv[1]) as fh:
        _cfg = json.load(fh)
    raise SystemExit(_Child(_cfg).main())


def release_together(children: list[Child], timeout: float = 120.0) -> None:
    """Wait until every child has its database open and waits at the barrier, then let them all go."""
    for child in children:
        child.expect("at barrier", timeout=timeout)
    for child in children:
        child.release()
