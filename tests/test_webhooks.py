"""Webhooks against a real HTTP server on 127.0.0.1: signatures, retries, receivers that are
down, failing or hanging, restarts, and the order of events of one approval."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from shared_specs import ANN_APPROVES_SPEC

import airt_nb
from airt_nb import Registry
from airt_nb.store.migrations import MIGRATIONS
from airt_nb.store.sqlite import SQLiteStore
from airt_nb.webhooks import SIGNATURE_HEADER, check_webhook_url, sign, verify
from tests.conftest import poll_until

SECRET = "s3cret-for-tests"

SPEC = ANN_APPROVES_SPEC

FAST = {"webhook_timeout": 0.5, "webhook_initial_delay": 0.01, "webhook_max_delay": 0.05}


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers each request as scripted.

    ``script`` items: an HTTP status, or ``"hang"`` (hold the request until the test ends).
    After the script, every request gets 200.
    """

    def __init__(self, script: list[int | str] | None = None, port: int = 0):
        self.script = list(script or [])
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.cv = threading.Condition()
        self.release = threading.Event()
        self.hanging = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.cv:
                    receiver.requests.append((dict(self.headers), body))
                    action = receiver.script.pop(0) if receiver.script else 200
                    receiver.cv.notify_all()
                if action == "hang":
                    receiver.hanging.set()
                    receiver.release.wait(30)
                    action = 200
                try:
                    self.send_response(int(action))
                    self.end_headers()
                    self.wfile.write(b"ok" if action == 200 else b"receiver broken")
                except OSError:  # the client gave up on a hung request
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/airt"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 20) -> list[tuple[dict[str, str], bytes]]:
        with self.cv:
            assert self.cv.wait_for(lambda: len(self.requests) >= count, timeout), (
                f"receiver got {len(self.requests)} requests, expected {count}"
            )
            return list(self.requests)

    def events(self) -> list[str]:
        with self.cv:
            return [json.loads(body)["event"] for _, body in self.requests]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_engine(db: Path, url: str, registry: Registry | None = None, **kw: Any) -> airt_nb.Engine:
    return airt_nb.Engine(
        db, registry=registry or Registry(), user="tester", webhook_url=url, webhook_secret=SECRET, **{**FAST, **kw}
    )


def wait_delivered(eng: airt_nb.Engine, count: int, timeout: float = 20) -> list[Any]:
    """Wait (on the engine's condition, woken by every database change) until ``count`` deliveries are final."""
    final = ("DELIVERED", "FAILED")
    ok = poll_until(
        lambda: sum(d.status in final for d in eng.store.deliveries()) >= count,
        timeout,
    )
    deliveries = eng.store.deliveries()
    assert ok, [(d.event, d.status, d.attempts, d.last_error) for d in deliveries]
    return deliveries


# -- signing --------------------------------------------------------------------------------------


def test_verify_accepts_the_signature_and_refuses_tampering_or_a_wrong_secret() -> None:
    body = b'{"event":"approval.requested","timestamp":"2020-01-01T00:00:00+00:00"}'
    header = sign(body, SECRET)
    assert header.startswith("sha256=")
    assert len(header) == 7 + 64
    assert verify(body, header, SECRET)
    assert verify(body.decode(), header, SECRET)
    assert not verify(body.replace(b"requested", b"approved"), header, SECRET)
    assert not verify(body, header, "another secret")
    assert not verify(body, None, SECRET)
    assert not verify(body, "", SECRET)
    assert not verify(body, header, "")
    assert not verify(body, header.upper(), SECRET)
    # The signed timestamp lets a receiver refuse a replayed request.
    assert not verify(body, header, SECRET, max_age=300)


def test_a_request_is_posted_signed_and_verifiable(tmp_path: Path, receiver: Receiver) -> None:
    eng = make_engine(tmp_path / "airt.db", receiver.url)
    try:
        run = eng.start(SPEC, inputs={"target": str(tmp_path / "out")})
        assert run.wait(10) == "PAUSED"
        [(headers, body)] = receiver.wait_for(1)
        assert verify(body, headers[SIGNATURE_HEADER], SECRET, max_age=60)
        assert not verify(body + b" ", headers[SIGNATURE_HEADER], SECRET)
        assert not verify(body, headers[SIGNATURE_HEADER], "wrong")
        payload = json.loads(body)
        approval = run.pending_approval
        assert approval is not None
        assert headers["X-Airt-Delivery"] == payload["delivery_id"]
        assert headers["X-Airt-Timestamp"] == payload["timestamp"]
        assert headers["X-Airt-Event"] == payload["event"] == "approval.requested"
        assert headers["Content-Type"] == "application/json"
        assert payload["workflow_id"] == run.id
        assert payload["workflow_name"] == "publish"
        a = payload["approval"]
        assert a["approval_id"] == approval.approval_id
        assert a["message"] == f"Publish next to {tmp_path / 'out' / 'a.txt'}?"
        assert a["approvers"] == ["ann"]
        assert a["status"] == "PENDING"
        assert a["context"]["depends_on"] == {"write_a": {"path": str(tmp_path / "out" / "a.txt"), "bytes": 5}}
        assert [u["step"] for u in a["context"]["undo"]] == ["write_a"]

        run.approve(by="ann", reason="fine")
        assert run.wait(10) == "COMPLETED"
        _, (headers2, body2) = receiver.wait_for(2)
        assert verify(body2, headers2[SIGNATURE_HEADER], SECRET)
        decided = json.loads(body2)
        assert decided["event"] == "approval.approved"
        assert decided["approval"]["decided_by"] == "ann"
        assert decided["approval"]["auth"] == "asserted"  # a typed name, told apart from a proven one
        assert decided["approval"]["reason"] == "fine"
        assert decided["delivery_id"] != payload["delivery_id"]
        deliveries = wait_delivered(eng, 2)
        assert [(d.event, d.status, d.attempts, d.last_status) for d in deliveries] == [
            ("approval.requested", "DELIVERED", 1, 200),
            ("approval.approved", "DELIVERED", 1, 200),
        ]
    finally:
        eng.close()


def test_a_receiver_answering_500_three_times_gets_it_on_the_fourth_attempt(tmp_path: Path) -> None:
    receiver = Receiver([500, 500, 500])
    eng = make_engine(tmp_path / "airt.db", receiver.url)
    try:
        run = eng.start(SPEC, inputs={"target": str(tmp_path / "out")})
        assert run.wait(10) == "PAUSED"
        requests = receiver.wait_for(4)
        assert len({json.loads(b)["delivery_id"] for _, b in requests}) == 1  # one delivery, four attempts
        assert len({json.loads(b)["timestamp"] for _, b in requests}) == 4  # each attempt signed afresh
        assert all(verify(b, h[SIGNATURE_HEADER], SECRET) for h, b in requests)
        [delivery] = wait_delivered(eng, 1)
        assert (delivery.status, delivery.attempts, delivery.last_status) == ("DELIVERED", 4, 200)
        history = eng.store.delivery_attempts(delivery.delivery_id)
        assert [(h[0], h[3], h[4]) for h in history] == [
            (1, "RETRYING", 500),
            (2, "RETRYING", 500),
            (3, "RETRYING", 500),
            (4, "DELIVERED", 200),
        ]
        assert history[0][5] == "HTTP 500: receiver broken"
        assert run.status == "PAUSED"  # the workflow waited for its decision, not for the receiver

        frame = airt_nb.deliveries(eng)
        assert frame["history"][0][0]["outcome"] == "RETRYING"
        assert [h["http_status"] for h in frame["history"][0]] == [500, 500, 500, 200]
        approvals = airt_nb.approvals(eng)
        assert approvals.loc[0, "webhook_status"] == "DELIVERED"
        assert approvals.loc[0, "webhook_attempts"] == 4
    finally:
        eng.close()
        receiver.close()


def test_a_receiver_that_is_down_never_blocks_and_gets_it_when_back(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet: connection refused
    url = f"http://127.0.0.1:{port}/hook"
    eng = make_engine(tmp_path / "airt.db", url, webhook_max_attempts=1000)
    receiver = None
    try:
        run = eng.start(SPEC, inputs={"target": str(tmp_path / "out")})
        assert run.wait(10) == "PAUSED"
        assert poll_until(lambda: any(d.attempts >= 2 for d in eng.store.deliveries()), 20)
        [delivery] = eng.store.deliveries()
        assert delivery.status == "RETRYING"
        assert delivery.last_error.startswith("ConnectError")
        # Decidable while the receiver is down.
        run.reject(by="ann", reason="not now")
        assert run.wait(10) == "ROLLED_BACK"
        receiver = Receiver(port=port)
        receiver.wait_for(2)
        assert receiver.events() == ["approval.requested", "approval.rejected"]
        deliveries = wait_delivered(eng, 2)
        assert [d.status for d in deliveries] == ["DELIVERED", "DELIVERED"]
    finally:
        eng.close()
        if receiver:
            receiver.close()


def test_a_hanging_receiver_times_out_is_retried_and_blocks_nothing(tmp_path: Path) -> None:
    receiver = Receiver(["hang"])
    eng = make_engine(tmp_path / "airt.db", receiver.url, webhook_timeout=0.3)
    try:
        run = eng.start(SPEC, inputs={"target": str(tmp_path / "out")})
        assert run.wait(10) == "PAUSED"
        assert receiver.hanging.wait(10)
        # The receiver holds the first request: the workflow is PAUSED and decidable meanwhile.
        assert run.status == "PAUSED"
        run.approve(by="ann")
        assert run.wait(10) == "COMPLETED"
        assert not receiver.release.is_set()  # all of that happened while the request hung
        receiver.wait_for(3)
        deliveries = wait_delivered(eng, 2)
        requested = deliveries[0]
        assert (requested.event, requested.status, requested.attempts) == ("approval.requested", "DELIVERED", 2)
        history = eng.store.delivery_attempts(requested.delivery_id)
        assert history[0][3] == "RETRYING"
        assert history[0][5] == "ReadTimeout: no answer within 0.3 s"
        assert receiver.events() == ["approval.requested", "approval.requested", "approval.approved"]
    finally:
        eng.close()
        receiver.close()


def test_closing_the_engine_does_not_wait_for_a_hung_receiver(tmp_path: Path) -> None:
    receiver = Receiver(["hang"])
    eng = make_engine(tmp_path / "airt.db", receiver.url, webhook_timeout=600)
    try:
        run = eng.start(SPEC, inputs={"target": str(tmp_path / "out")})
        assert run.wait(10) == "PAUSED"
        assert receiver.hanging.wait(10)
        eng.close()  # would wait for the request (past the test timeout) if close joined the sender
        assert not receiver.release.is_set()
    finally:
        eng.close()
        receiver.close()


def test_an_undelivered_request_is_delivered_by_the_next_engine(tmp_path: Path) -> None:
    db = tmp_path / "airt.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    eng = make_engine(db, url, webhook_initial_delay=0.05, webhook_max_attempts=10_000)
    run = eng.start(SPEC, inputs={"target": str(tmp_path / "out")})
    assert run.wait(10) == "PAUSED"
    assert poll_until(lambda: any(d.attempts >= 1 for d in eng.store.deliveries()), 20)
    eng.close()
    [delivery] = SQLiteStore(db).deliveries()
    assert delivery.status == "RETRYING"

    receiver = Receiver(port=port)
    eng2 = make_engine(db, url)
    try:
        [(headers, body)] = receiver.wait_for(1)
        assert verify(body, headers[SIGNATURE_HEADER], SECRET)
        assert json.loads(body)["delivery_id"] == delivery.delivery_id
        [after] = wait_delivered(eng2, 1)
        assert (after.status, after.attempts) == ("DELIVERED", delivery.attempts + 1)
        assert eng2.get(run.id).status == "PAUSED"
    finally:
        eng2.close()
        receiver.close()


def test_a_decision_is_never_delivered_before_its_request(tmp_path: Path) -> None:
    receiver = Receiver([500, 500])
    eng = make_engine(tmp_path / "airt.db", receiver.url, webhook_initial_delay=0.2, webhook_max_delay=0.2)
    try:
        run = eng.start(SPEC, inputs={"target": str(tmp_path / "out")})
        assert run.wait(10) == "PAUSED"
        receiver.wait_for(1)
        run.approve(by="ann")  # the request is still failing
        receiver.wait_for(4)
        assert receiver.events() == [
            "approval.requested",
            "approval.requested",
            "approval.requested",
            "approval.approved",
        ]
    finally:
        eng.close()
        receiver.close()


def test_timeouts_and_cancellations_are_notified(tmp_path: Path, receiver: Receiver) -> None:
    spec = SPEC.replace("approvers: [ann]", "approvers: [ann]\n    timeout: 0.2")
    eng = make_engine(tmp_path / "airt.db", receiver.url)
    try:
        timed = eng.start(spec, inputs={"target": str(tmp_path / "t")})
        assert timed.wait(10) == "PAUSED"
        cancelled = eng.start(SPEC, inputs={"target": str(tmp_path / "c")})
        assert cancelled.wait(10) == "PAUSED"
        cancelled.cancel(by="bob")
        assert poll_until(lambda: timed.status == "ROLLED_BACK", 10)
        receiver.wait_for(4)
        by_workflow: dict[str, list[dict[str, Any]]] = {}
        for _, body in receiver.requests:
            payload = json.loads(body)
            by_workflow.setdefault(payload["workflow_id"], []).append(payload)
        assert [p["event"] for p in by_workflow[timed.id]] == ["approval.requested", "approval.expired"]
        expired = by_workflow[timed.id][1]["approval"]
        assert (expired["status"], expired["decided_by"], expired["reason"]) == ("REJECTED", "system", "timed out")
        assert [p["event"] for p in by_workflow[cancelled.id]] == ["approval.requested", "approval.cancelled"]
        assert by_workflow[cancelled.id][1]["approval"]["decided_by"] == "bob"
    finally:
        eng.close()


def test_a_decision_made_without_a_webhook_is_sent_where_the_request_went(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "airt.db"
    monkeypatch.setenv("AIRT_PUBLIC_URL", "https://hub.example.com/user/olga/")  # where the notebook runs
    eng = make_engine(db, receiver.url)
    try:
        run = eng.start(SPEC, inputs={"target": str(tmp_path / "out")})
        assert run.wait(10) == "PAUSED"
        receiver.wait_for(1)
        monkeypatch.delenv("AIRT_PUBLIC_URL")  # the approver's terminal does not know it
        client = airt_nb.Engine(db, recover=False, registry=Registry(), user="ann", webhook_url="")
        try:
            client.approve(run.id)
        finally:
            client.close()
        # The notebook's engine sends it (it notices the change in the database) and continues the run.
        receiver.wait_for(2)
        assert receiver.events() == ["approval.requested", "approval.approved"]
        assert poll_until(lambda: run.status == "COMPLETED", 10)
        # The decision links to the page the request linked to.
        pages = [json.loads(body).get("url") for _, body in receiver.requests]
        approval_id = run.decisions()[0].approval_id
        assert pages == [f"https://hub.example.com/user/olga/airt/?approval={approval_id}"] * 2
    finally:
        eng.close()


def test_two_engines_never_send_the_same_attempt_twice(tmp_path: Path, receiver: Receiver) -> None:
    db = tmp_path / "airt.db"
    a = make_engine(db, receiver.url)
    b = make_engine(db, receiver.url)
    try:
        runs = [a.start(SPEC, inputs={"target": str(tmp_path / f"o{i}")}) for i in range(5)]
        for r in runs:
            assert r.wait(10) == "PAUSED"
        wait_delivered(a, 5)
        ids = [json.loads(body)["delivery_id"] for _, body in receiver.wait_for(5)]
        assert len(ids) == len(set(ids)) == 5
    finally:
        a.close()
        b.close()


def test_a_webhook_url_must_be_http(tmp_path: Path) -> None:
    with pytest.raises(airt_nb.AirtError, match="must start with http:// or https://"):
        airt_nb.Engine(tmp_path / "airt.db", webhook_url="localhost:8000/hook")


def test_environment_configures_the_webhook(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("AIRT_WEBHOOK_SECRET", "from-env")
    eng = airt_nb.Engine(tmp_path / "airt.db", registry=Registry())
    try:
        run = eng.start(SPEC, inputs={"target": str(tmp_path / "out")})
        assert run.wait(10) == "PAUSED"
        [(headers, body)] = receiver.wait_for(1)
        assert verify(body, headers[SIGNATURE_HEADER], "from-env")
    finally:
        eng.close()


def test_a_version_1_database_upgrades_with_its_deliveries(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(MIGRATIONS[0].sqlite)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO webhook_deliveries (delivery_id, workflow_id, event, payload, status, created_at, "
        "next_attempt_at) VALUES ('d1', 'w1', 'approval.requested', '{}', 'PENDING', '2020', '2020')"
    )
    conn.commit()
    conn.close()
    store = SQLiteStore(db)
    try:
        assert store.schema_version == MIGRATIONS[-1].number
        [d] = store.deliveries()
        assert (d.delivery_id, d.status, d.url) == ("d1", "PENDING", None)
        # Rows from before URLs were recorded go to whichever URL is configured.
        assert [x.delivery_id for x in store.due_deliveries("2021", "http://x")] == ["d1"]
    finally:
        store.close()
    SQLiteStore(db).close()  # migrating twice is a no-op


CHILD = """
import sys
import airt_nb
db, url, target, spec = sys.argv[1:5]
eng = airt_nb.Engine(db, webhook_url=url, webhook_secret="s3cret-for-tests", webhook_timeout=0.3)
run = eng.start(spec, inputs={"target": target})
print(run.id, run.wait(10), flush=True)
sys.stdin.readline()  # killed here
"""


def test_a_delivery_in_flight_when_the_process_is_killed_is_sent_again(tmp_path: Path) -> None:
    receiver = Receiver(["hang"])
    db = tmp_path / "airt.db"
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), receiver.url, str(tmp_path / "out"), SPEC],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    eng = None
    try:
        assert child.stdout is not None
        workflow_id, status = child.stdout.readline().split()
        assert status == "PAUSED"
        assert receiver.hanging.wait(10)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        # The delivery is claimed by the dead process; once the claim lapses, the next engine sends it.
        eng = make_engine(db, receiver.url, webhook_timeout=0.3)
        (_, first), (headers, second) = receiver.wait_for(2)
        assert json.loads(second)["delivery_id"] == json.loads(first)["delivery_id"]
        assert verify(second, headers[SIGNATURE_HEADER], SECRET)
        [delivery] = wait_delivered(eng, 1)
        assert delivery.status == "DELIVERED"
        assert eng.get(workflow_id).status == "PAUSED"
    finally:
        child.kill()
        if eng is not None:
            eng.close()
        receiver.close()


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.com/airt", "http://127.0.0.1:8080/h", "http://[::1]:8000/", "http://u:p@h.example/x?y=1"],
)
def test_a_good_webhook_url_is_accepted(url: str) -> None:
    assert check_webhook_url(url) == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://", "names no host"),
        ("http://[::1", "check the brackets around an IPv6 address"),
        ("http://h/\r\nX-Evil: 1", "line break (CR/LF)"),
        ("http://h:70000/", "port that is not a number from 1 to 65535"),
        ("http://[not-ip]/", "check the brackets"),
        ("http://h\tx/", "cannot be in a URL"),
    ],
)
def test_a_bad_webhook_url_says_what_to_fix(url: str, says: str) -> None:
    with pytest.raises(airt_nb.AirtError) as info:
        check_webhook_url(url)
    assert says in str(info.value)
    assert "(AIRT_WEBHOOK_URL)" in str(info.value)


def test_a_receiver_no_engine_sends_to_holds_back_only_its_own_deliveries(tmp_path: Path, receiver: Receiver) -> None:
    # A request queued for a receiver no engine sends to any more (an engine that ran with another
    # AIRT_WEBHOOK_URL, a receiver retired) stays PENDING forever; it held back every later event of
    # the approval, to every receiver: the decision never reached the receiver in use.
    from airt_nb.store.records import row_of
    from airt_nb.webhooks import outbox_row

    gone = f"http://127.0.0.1:{free_port()}/"
    eng = make_engine(tmp_path / "airt.db", receiver.url)
    try:
        run = eng.start(SPEC, inputs={"target": str(tmp_path / "out")})
        assert run.wait(10) == "PAUSED"
        receiver.wait_for(1)
        approval = run.pending_approval
        assert approval is not None
        eng.store.write(
            lambda tx: tx.insert_delivery(outbox_row("approval.requested", row_of(approval), "publish", gone))
        )
        eng.approve(run.id, by="ann", reason="fine")
        receiver.wait_for(2)
        assert receiver.events() == ["approval.requested", "approval.approved"]

        def by_url() -> dict[tuple[str | None, str], str]:
            return {(d.url, d.event): d.status for d in eng.store.deliveries()}

        assert poll_until(lambda: by_url()[(receiver.url, "approval.approved")] == "DELIVERED", 10), by_url()
        assert by_url()[(gone, "approval.requested")] == "PENDING"  # waits for an engine that sends there, alone
        assert by_url()[(gone, "approval.approved")] == "PENDING"  # after its request, as ever
    finally:
        eng.close()


def test_each_of_several_approvals_says_how_its_approver_was_established(tmp_path: Path, receiver: Receiver) -> None:
    spec = SPEC.replace("approvers: [ann]", "approvers: [ann, bob]\n    min_approvals: 2")
    eng = make_engine(tmp_path / "airt.db", receiver.url)
    try:
        run = eng.start(spec, inputs={"target": str(tmp_path / "t")})
        assert run.wait(10) == "PAUSED"
        run.approve(by="ann")
        run.approve(by="bob")
        receiver.wait_for(3)
        payloads = [json.loads(body) for _, body in receiver.requests]
        assert [p["event"] for p in payloads] == ["approval.requested", "approval.progress", "approval.approved"]
        progress, final = payloads[1]["approval"], payloads[2]["approval"]
        assert (progress["decided_by"], progress["auth"], progress["approved_count"]) == ("ann", "asserted", 1)
        assert (final["decided_by"], final["auth"]) == ("bob", "asserted")
    finally:
        eng.close()
