"""``airt worker`` as a real process, on SQLite and on PostgreSQL: it continues what nobody runs,
sends the webhooks, says how it is doing, and drains on SIGTERM."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import poll_until
from test_webhooks import Receiver

from airt_nb import Engine, Registry
from airt_nb.webhooks import verify

ROOT = Path(__file__).resolve().parents[1]
SECRET = "worker-secret"

pytestmark = pytest.mark.both_backends

TWO_GATES = """
name: two-gates
steps:
  - name: write_a
    action: file.write
    inputs: {path: a.txt, content: a}
  - name: first
    type: human_approval
    message: "First?"
  - name: write_b
    action: file.write
    inputs: {path: b.txt, content: b}
  - name: second
    type: human_approval
    message: "Second?"
  - name: write_c
    action: file.write
    inputs: {path: c.txt, content: c}
"""

SLOW = """
name: slow
steps:
  - name: gate
    type: human_approval
    message: "Go?"
  - name: nap
    action: python.call
    inputs: {function: "time:sleep", args: [2.5]}
  - name: after
    action: file.write
    inputs: {path: after.txt, content: x}
"""


class WorkerProcess:
    """``airt --db DB worker`` in a process of its own; its stderr read line by line."""

    def __init__(self, db: str, tmp_path: Path, *args: str, **env: str):
        full = dict(os.environ)
        full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full.get("PYTHONPATH")]))
        full["AIRT_HOME_GRACE"] = "0"  # take up what a closed notebook left at once
        full["AIRT_MACHINE_ID"] = f"worker-machine-{uuid.uuid4().hex[:8]}"
        full.update(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "airt_nb.cli", "--db", db, "worker", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            env=full,
        )
        self.lines: list[str] = []
        self._buf = b""

    def read(self, timeout: float = 0.05) -> None:
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        while select.select([fd], [], [], timeout)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self._buf += chunk
            *done, self._buf = self._buf.split(b"\n")
            self.lines += [d.decode(errors="replace") for d in done]
            timeout = 0

    def expect(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.lines if text in line]
            if found:
                return found[0]
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.read()
                raise AssertionError(f"worker never said {text!r}; it said:\n" + "\n".join(self.lines))
            self.read(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.read()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def worker_factory(db: str, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.kill()


def history(db: str, workflow_id: str) -> list[tuple[str, str | None]]:
    with Engine(db, recover=False, registry=Registry()) as eng:
        return [(e.event, e.by) for e in eng.store.history(workflow_id)]


def test_the_worker_continues_what_nobody_runs_and_sends_the_webhooks(
    db: str, tmp_path: Path, worker_factory: list[WorkerProcess]
) -> None:
    receiver = Receiver()
    try:
        with Engine(db, registry=Registry(), user="ann", recover=False) as notebook:
            run = notebook.start(TWO_GATES, workdir=tmp_path)
            assert run.wait(timeout=10) == "PAUSED"
        # The notebook is gone; a worker starts, with the webhook settings of the team.
        worker = WorkerProcess(
            db, tmp_path, "--health-every", "0.3", AIRT_WEBHOOK_URL=receiver.url, AIRT_WEBHOOK_SECRET=SECRET
        )
        worker_factory.append(worker)
        worker.expect("airt worker: serving")
        with Engine(db, registry=Registry(), user="bob", recover=False) as inbox:
            inbox.approve(run.id, reason="first is fine")
            assert inbox.get(run.id).wait(timeout=30) == "PAUSED"  # the worker ran write_b, asks again
            assert (tmp_path / "b.txt").read_text() == "b"
            receiver.wait_for(1)
            inbox.approve(run.id, reason="second too")
            assert inbox.get(run.id).wait(timeout=30) == "COMPLETED"
        assert (tmp_path / "c.txt").read_text() == "c"
        requests = receiver.wait_for(2)
        assert receiver.events()[:2] == ["approval.requested", "approval.approved"]
        for headers, body in requests:
            assert verify(body, headers["X-Airt-Signature-256"], SECRET)
        health = worker.expect("running here")
        assert "waiting for an engine" in health
        assert "pending approvals" in health
        assert "webhook deliveries waiting" in health
        assert worker.stop() == 0
        worker.expect("stopped after draining")
        resumed_by = [by for event, by in history(db, run.id) if event == "resumed"]
        assert len(resumed_by) == 2  # after each decision, by the worker
    finally:
        receiver.close()


def test_sigterm_lets_the_step_in_flight_finish_releases_the_lease_and_exits_0(
    db: str, tmp_path: Path, worker_factory: list[WorkerProcess]
) -> None:
    with Engine(db, registry=Registry(), user="ann", recover=False) as notebook:
        run = notebook.start(SLOW, workdir=tmp_path)
        assert run.wait(timeout=10) == "PAUSED"
    worker = WorkerProcess(db, tmp_path)
    worker_factory.append(worker)
    worker.expect("airt worker: serving")
    with Engine(db, registry=Registry(), user="bob", recover=False) as inbox:
        inbox.approve(run.id)
        assert poll_until(lambda: inbox.where(run.id) not in ("nowhere", "here"), timeout=20)
        time.sleep(0.5)  # the nap is in flight in the worker
        assert worker.stop() == 0
        worker.expect("finishing the steps in flight")
        record = inbox.get(run.id).record
        steps = {s.step_name: s.status for s in inbox.get(run.id).steps()}
        assert (record.status, record.lease_owner) == ("RUNNING", None)
        assert steps == {"gate": "COMPLETED", "nap": "COMPLETED", "after": "PENDING"}
        assert not (tmp_path / "after.txt").exists()
    # What the worker left is continued by the next engine that takes up work.
    with Engine(db, registry=Registry(), home_grace=0) as next_one:
        assert next_one.get(run.id).wait(timeout=20) == "COMPLETED"
    assert (tmp_path / "after.txt").exists()


def test_a_worker_that_cannot_open_its_database_says_why_and_exits_1(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-folder" / "airt.db")
    worker = WorkerProcess(missing, tmp_path)
    try:
        assert worker.proc.wait(60) == 1
        worker.read()
        assert worker.expect(f"cannot open database {missing}: folder")
    finally:
        worker.kill()


def test_a_worker_whose_import_fails_names_the_module_and_exits_1(tmp_path: Path) -> None:
    worker = WorkerProcess(str(tmp_path / "airt.db"), tmp_path, "--import", "no_such_actions_module")
    try:
        assert worker.proc.wait(60) == 1
        worker.read()
        assert worker.expect("cannot import no_such_actions_module")
        assert not (tmp_path / "airt.db").exists()  # nothing opened, nothing written
    finally:
        worker.kill()
