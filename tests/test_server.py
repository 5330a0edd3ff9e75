"""The ``/airt/`` page and JSON API in a real ``jupyter server`` subprocess, driven with httpx.

The server finds the extension the way a user's does (the package's
``jupyter_server_config.d/airt_nb.json``), is protected by a token, and
decides in a database that an engine in this process runs workflows on, as a
notebook's kernel would: the decision is recorded by the server, the
workflow is carried on here.  Its owner is the operating-system account it
runs as, the one owner name a token server records as authenticated; servers
started under another name record it as asserted.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_support import free_port, jupyter_env, server_process, stop
from shared_specs import ANN_APPROVES_SPEC, SEED_SPEC

import airt_nb
from airt_nb import Registry

TOKEN = "t0ken-for-tests"
OWNER = pwd.getpwuid(os.geteuid()).pw_name  # the account the server runs as
OS_ACCOUNT_NOTE = "authenticated by Jupyter: the account this server runs as"
NAMED_NOTE = (
    "asserted: the server's token or password proves access to it, not this name, which is only the one the "
    "server was started with"
)

pytestmark = pytest.mark.slow


@dataclass
class Server:
    url: str
    db: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"token {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=20)


@contextmanager
def token_server(home: Path, root: Path, *args: str, **env: str) -> Iterator[Server]:
    """A ``jupyter server`` protected by :data:`TOKEN` on ``root/airt.db`` (made here), until the block ends."""
    db = root / "airt.db"
    airt_nb.Engine(db, recover=False).close()  # the database a notebook in this folder would use
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "jupyter", "server", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True", *args,
    ]  # fmt: skip
    log = home / "server.log"

    def ready() -> bool:
        return httpx.get(f"{url}/api/status", headers={"Authorization": f"token {TOKEN}"}).status_code == 200

    with server_process(command, env=jupyter_env(home, **env), cwd=root, log=log, ready=ready) as proc:
        yield Server(url, db, log, proc)
        # Stopped like a service: the extension closes its engine, nothing fails on the way out.
        assert stop(proc) == 0
        text = log.read_text()
        assert "Traceback" not in text, text[-3000:]
        assert f"airt: closed the database {db}" in text


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("jupyter-home")
    root = tmp_path_factory.mktemp("jupyter-root")
    with token_server(home, root, AIRT_USER=OWNER) as running:
        yield running


@pytest.fixture
def notebook(server: Server) -> Iterator[airt_nb.Engine]:
    """The engine of a notebook on the server's database: it runs the workflows."""
    eng = airt_nb.Engine(server.db, registry=Registry(), user="sam")
    yield eng
    eng.close()


def paused(engine: airt_nb.Engine, tmp_path: Path, spec: str = SEED_SPEC) -> airt_nb.Run:
    run = engine.start(spec, inputs={"target": str(tmp_path / "out")})
    assert run.wait(timeout=20) == "PAUSED"
    return run


def approval_of(run: airt_nb.Run) -> str:
    (approval,) = [a for a in run.approvals() if a.status == "PENDING"]
    return approval.approval_id


def decide(client: httpx.Client, approval_id: str, body: Any, **kw: Any) -> httpx.Response:
    return client.post(f"/airt/api/approvals/{approval_id}/decision", content=json.dumps(body), **kw)


# -- being enabled by the install -------------------------------------------------------------------


def test_installing_the_package_enables_the_extension(tmp_path: Path) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        env=jupyter_env(tmp_path),
        timeout=60,
    )
    lines = [
        " ".join(line.split()) for line in re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr).splitlines()
    ]
    assert "airt_nb.server enabled" in lines
    assert lines[lines.index("- Validating airt_nb.server...") + 1] == "airt_nb.server OK"


# -- authentication ------------------------------------------------------------------------------


def test_requests_without_the_token_are_refused_with_403(
    server: Server, notebook: airt_nb.Engine, tmp_path: Path
) -> None:
    run = paused(notebook, tmp_path)
    anonymous = server.client(token=None)
    wrong = server.client(token="not-the-token")

    for client in (anonymous, wrong):
        listed = client.get("/airt/api/approvals")
        assert listed.status_code == 403
        assert "not authenticated" in listed.json()["message"]
        decided = decide(client, approval_of(run), {"decision": "approve"})
        assert decided.status_code == 403
        assert client.get(f"/airt/api/workflows/{run.id}").status_code == 403
    page = anonymous.get("/airt/", follow_redirects=False)
    assert page.status_code == 302
    assert "/login" in page.headers["Location"]

    assert run.status == "PAUSED"  # nothing was decided
    assert [a.status for a in run.approvals()] == ["PENDING"]


def test_the_page_is_served_with_who_decides(server: Server) -> None:
    with server.client() as client:
        page = client.get("/airt/")
        assert page.status_code == 200
        settings = json.loads(page.text.split('type="application/json">')[1].split("</script>")[0])
        assert settings["user"] == OWNER
        assert settings["authenticated_by"] == "jupyter"
        assert settings["note"] == OS_ACCOUNT_NOTE
        assert settings["xsrf"]
        assert "<button" in page.text  # the status tabs; the approvals are drawn by the script
        assert client.get("/airt/static/airt.js").headers["Content-Type"].startswith("text/javascript")
        assert client.get("/airt/static/airt.css").status_code == 200
        assert client.get("/airt/static/nope.js").status_code == 404
        moved = client.get("/airt?approval=abc", follow_redirects=False)
        assert moved.status_code == 302
        assert moved.headers["Location"].endswith("/airt/?approval=abc")


# -- reading -------------------------------------------------------------------------------------


def test_pending_approvals_come_with_their_context(server: Server, notebook: airt_nb.Engine, tmp_path: Path) -> None:
    run = paused(notebook, tmp_path)
    with server.client() as client:
        data = client.get("/airt/api/approvals", params={"status": "pending"}).json()

    assert data["user"] == {"name": OWNER, "authenticated_by": "jupyter", "note": OS_ACCOUNT_NOTE, "refused": None}
    assert data["db"] == str(server.db)
    (mine,) = [a for a in data["approvals"] if a["workflow_id"] == run.id]
    assert mine["approval_id"] == approval_of(run)
    assert mine["status"] == "PENDING"
    assert mine["step_name"] == "review"
    assert mine["workflow_name"] == "publish-report"
    assert mine["workflow_status"] == "PAUSED"
    assert mine["started_by"] == "sam"
    assert mine["message"] == f"Publish B next to {tmp_path / 'out'}/a.txt?"
    assert mine["context"]["depends_on"]["write_a"]["path"] == f"{tmp_path / 'out'}/a.txt"
    assert [u["step"] for u in mine["context"]["undo"]] == ["write_a"]


def test_a_workflow_reads_with_its_steps_and_approvals(
    server: Server, notebook: airt_nb.Engine, tmp_path: Path
) -> None:
    run = paused(notebook, tmp_path)
    with server.client() as client:
        data = client.get(f"/airt/api/workflows/{run.id}").json()
        by_prefix = client.get(f"/airt/api/workflows/{run.id[:8]}").json()

    assert data["workflow"]["workflow_id"] == run.id
    assert data["workflow"]["status"] == "PAUSED"
    assert "spec" not in data["workflow"]
    assert [(s["step_name"], s["status"]) for s in data["steps"]] == [
        ("write_a", "COMPLETED"),
        ("review", "WAITING"),
        ("write_b", "PENDING"),
    ]
    assert data["steps"][0]["outputs"]["bytes"] == 5
    assert [a["status"] for a in data["approvals"]] == ["PENDING"]
    assert data["attempts"] == []  # recorded for retried steps
    assert by_prefix["workflow"]["workflow_id"] == run.id


# -- deciding ------------------------------------------------------------------------------------


def test_a_decision_is_recorded_as_the_authenticated_owner_never_the_name_in_the_body(
    server: Server, notebook: airt_nb.Engine, tmp_path: Path
) -> None:
    run = paused(notebook, tmp_path)
    with server.client() as client:
        answer = decide(client, approval_of(run), {"decision": "approve", "reason": "  looks good ", "by": "mallory"})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["approval"]["decided_by"] == OWNER
    assert body["approval"]["status"] == "APPROVED"
    assert body["approval"]["reason"] == "looks good"
    assert body["workflow_status"] in ("RUNNING", "COMPLETED")
    # The notebook's engine carries the workflow on.
    assert run.wait(timeout=20) == "COMPLETED"
    (approval,) = run.approvals()
    assert approval.decided_by == OWNER
    audit = airt_nb.audit(db=server.db)
    row = audit[(audit["event"] == "approval") & (audit["workflow_id"] == run.id)].iloc[-1]
    assert row["user"] == OWNER
    assert "authenticated by jupyter" in row["detail"]


def test_a_rejection_rolls_the_workflow_back(server: Server, notebook: airt_nb.Engine, tmp_path: Path) -> None:
    run = paused(notebook, tmp_path)
    with server.client() as client:
        answer = decide(client, approval_of(run), {"decision": "reject", "reason": "not now"})

    assert answer.status_code == 200
    assert answer.json()["approval"]["status"] == "REJECTED"
    assert run.wait(timeout=20) == "ROLLED_BACK"
    assert not (tmp_path / "out" / "a.txt").exists()


def test_a_cookie_authenticated_post_needs_the_xsrf_token(
    server: Server, notebook: airt_nb.Engine, tmp_path: Path
) -> None:
    run = paused(notebook, tmp_path)
    with httpx.Client(base_url=server.url, timeout=20) as browser:
        # As a browser: the token in the link once, a login cookie and the _xsrf cookie from then on.
        assert browser.get("/airt/", params={"token": TOKEN}).status_code == 200
        assert browser.get("/airt/api/approvals").status_code == 200  # the cookie alone authenticates
        xsrf = browser.cookies["_xsrf"]

        missing = decide(browser, approval_of(run), {"decision": "approve"})
        assert missing.status_code == 403
        assert "xsrf" in missing.json()["message"].lower()
        forged = decide(browser, approval_of(run), {"decision": "approve"}, headers={"X-XSRFToken": "2|forged|x|y"})
        assert forged.status_code == 403
        assert run.status == "PAUSED"

        ok = decide(browser, approval_of(run), {"decision": "approve"}, headers={"X-XSRFToken": xsrf})
        assert ok.status_code == 200, ok.text
    assert ok.json()["approval"]["decided_by"] == OWNER
    assert run.wait(timeout=20) == "COMPLETED"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "must be JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "the body nests too deeply to be read"),
        (b'{"decision": "approve", "reason": ' + b"7" * 5000 + b"}", "an integer of more than 4,300 digits"),
        (b'{"reason": "x"}', '"decision" must be "approve" or "reject", not None'),
        (b'{"decision": "maybe"}', "not 'maybe'"),
        (b'{"decision": "approve", "reason": 3}', '"reason" must be text'),
        (b'{"decision": "approve", "values": [1]}', '"values" must be an object'),
        (b'{"decision": "approve", "values": {"replicas": 3}}', "this approval has no fields, so it takes no values"),
    ],
)
def test_bad_values_get_400_and_decide_nothing(
    server: Server, notebook: airt_nb.Engine, tmp_path: Path, body: bytes, message: str
) -> None:
    run = paused(notebook, tmp_path)
    with server.client() as client:
        answer = client.post(f"/airt/api/approvals/{approval_of(run)}/decision", content=body)

    assert answer.status_code == 400
    assert message in answer.json()["message"]
    assert answer.headers["Content-Type"].startswith("application/json")
    assert [a.status for a in run.approvals()] == ["PENDING"]


def test_each_refusal_has_its_status(server: Server, notebook: airt_nb.Engine, tmp_path: Path) -> None:
    only_ann = paused(notebook, tmp_path / "ann", ANN_APPROVES_SPEC)
    run = paused(notebook, tmp_path)
    with server.client() as client:
        bad_status = client.get("/airt/api/approvals", params={"status": "SOMETIMES"})
        unknown_approval = decide(client, "0123456789abcdef", {"decision": "approve"})
        unknown_workflow = client.get("/airt/api/workflows/fedcba9876543210")
        not_an_approver = decide(client, approval_of(only_ann), {"decision": "approve"})
        first = decide(client, approval_of(run), {"decision": "approve"})
        second = decide(client, first.json()["approval"]["approval_id"], {"decision": "reject"})

    assert bad_status.status_code == 400
    assert "unknown approval status 'SOMETIMES'" in bad_status.json()["message"]
    assert unknown_approval.status_code == 404
    assert "no approval '0123456789abcdef'" in unknown_approval.json()["message"]
    assert unknown_workflow.status_code == 404
    assert "fedcba9876543210" in unknown_workflow.json()["message"]
    assert not_an_approver.status_code == 403
    assert f"user '{OWNER}'" in not_an_approver.json()["message"]
    assert "may not decide" in not_an_approver.json()["message"]
    assert only_ann.status == "PAUSED"
    assert first.status_code == 200
    assert second.status_code == 409
    assert f"already approved by {OWNER}" in second.json()["message"]


def test_a_path_under_the_api_that_is_no_route_answers_json(server: Server) -> None:
    with server.client() as client:
        answers = [client.get("/airt/api/nothing/here"), client.post("/airt/api/approvals/x/decide", content=b"{}")]
    for answer in answers:
        assert answer.status_code == 404
        assert answer.headers["Content-Type"].startswith("application/json")
        assert "the routes are: GET /airt/api/approvals" in answer.json()["message"]


def test_decided_approvals_are_listed_by_status(server: Server, notebook: airt_nb.Engine, tmp_path: Path) -> None:
    run = paused(notebook, tmp_path)
    approval_id = approval_of(run)
    with server.client() as client:
        assert decide(client, approval_id, {"decision": "reject", "reason": "no"}).status_code == 200
        rejected = client.get("/airt/api/approvals", params={"status": "REJECTED"}).json()["approvals"]
        one = client.get("/airt/api/approvals", params={"status": "ALL", "approval_id": approval_id}).json()
        pending = client.get("/airt/api/approvals").json()["approvals"]

    assert approval_id in [a["approval_id"] for a in rejected]
    assert [a["approval_id"] for a in one["approvals"]] == [approval_id]
    assert one["approvals"][0]["decided_by"] == OWNER
    assert one["approvals"][0]["reason"] == "no"
    assert approval_id not in [a["approval_id"] for a in pending]


def test_pending_approvals_say_whether_the_person_may_decide_them(
    server: Server, notebook: airt_nb.Engine, tmp_path: Path
) -> None:
    """The page disables what the person deciding may not do, and says why, from the API's answer:
    ``standing`` is the notebook card's own check, asked as the server's owner (decided: ``None``)."""
    from airt_nb.approval_standing import standing

    anyone = paused(notebook, tmp_path / "anyone")
    gated = paused(notebook, tmp_path / "gated", AUTHENTICATED_SPEC)  # this server's owner is authenticated
    only_ann = paused(notebook, tmp_path / "ann", ANN_APPROVES_SPEC)
    own = notebook.start(EXCLUDING_SPEC, inputs={"target": str(tmp_path / "own")}, user=OWNER)
    two = paused(notebook, tmp_path / "two", FIELDS_SPEC)
    assert own.wait(timeout=20) == "PAUSED"
    with server.client() as client:
        assert decide(client, approval_of(two), {"decision": "approve"}).status_code == 200
        listed = {a["workflow_id"]: a["standing"] for a in client.get("/airt/api/approvals").json()["approvals"]}
        assert decide(client, approval_of(anyone), {"decision": "reject"}).status_code == 200
        assert anyone.wait(timeout=20) == "ROLLED_BACK"
        (decided,) = client.get("/airt/api/approvals", params={"status": "ALL", "workflow_id": anyone.id}).json()[
            "approvals"
        ]

    may = {"may_decide": True, "refusal": None, "already": None}
    assert listed[anyone.id] == may
    assert listed[gated.id] == may
    assert listed[only_ann.id] == {
        "may_decide": False,
        "refusal": f"You ({OWNER}) may not decide this approval: only ann may decide this approval. Ask one of "
        "the approvers.",
        "already": None,
    }
    assert listed[own.id] == {
        "may_decide": False,
        "refusal": f"You ({OWNER}) started this workflow, and the step says who started it may not decide it.",
        "already": None,
    }
    assert listed[two.id] == {
        "may_decide": False,
        "refusal": None,
        "already": f"You ({OWNER}) approved already; it waits for 1 more approval(s) from other people. You may "
        "still reject it.",
    }
    # The words of the notebook's card for the same person: one check, not a copy of it.
    with airt_nb.Engine(server.db, registry=Registry(), user=OWNER, recover=False) as as_owner:
        for run in (only_ann, own, two):
            (record,) = [a for a in as_owner.store.approvals(workflow_id=run.id) if a.status == "PENDING"]
            verdict = standing(as_owner, record)
            assert (listed[run.id]["refusal"], listed[run.id]["already"]) == (verdict.refusal, verdict.already)
    assert (decided["status"], decided["standing"]) == ("REJECTED", None)
    assert (decided["workflow_status"], decided["workflow_error"]) == (
        "ROLLED_BACK",
        f"rejected by {OWNER} at step 'review'",
    )


# -- events --------------------------------------------------------------------------------------------

EVENT_SPEC = """
name: waits-for-ci
steps:
  - name: ci
    type: wait_event
    event: ci.done
    schema: {type: object, required: [passed]}
  - name: after
    action: wait
    inputs: {seconds: 0}
"""


def send(client: httpx.Client, workflow_id: str, event: str, body: Any) -> httpx.Response:
    return client.post(f"/airt/api/workflows/{workflow_id}/events/{event}", content=json.dumps(body))


def test_an_event_is_sent_as_the_authenticated_owner_and_the_run_goes_on(
    server: Server, notebook: airt_nb.Engine
) -> None:
    run = notebook.start(EVENT_SPEC)
    assert run.wait(timeout=20) == "PAUSED"
    with server.client() as client:
        answer = send(client, run.id, "ci.done", {"payload": {"passed": True}, "by": "mallory"})
        detail = client.get(f"/airt/api/workflows/{run.id}").json()

    assert answer.status_code == 200, answer.text
    event = answer.json()["event"]
    assert (event["sent_by"], event["auth"], event["payload"]) == (OWNER, "jupyter", {"passed": True})
    assert detail["events"][0]["status"] == "RECEIVED"
    assert run.wait(timeout=20) == "COMPLETED"  # the notebook's engine carries it on
    assert run.outputs["ci"] == {"passed": True}


def test_each_refused_event_has_its_status(server: Server, notebook: airt_nb.Engine) -> None:
    run = notebook.start(EVENT_SPEC)
    assert run.wait(timeout=20) == "PAUSED"
    with server.client() as client:
        unknown_workflow = send(client, "fedcba9876543210", "ci.done", {"payload": {}})
        unknown_event = send(client, run.id, "ci.dne", {"payload": {"passed": True}})
        refused = send(client, run.id, "ci.done", {"payload": {"passed_": True}})
        not_json = client.post(f"/airt/api/workflows/{run.id}/events/ci.done", content=b"{nope")
        first = send(client, run.id, "ci.done", {"payload": {"passed": False}})
        again = send(client, run.id, "ci.done", {"payload": {"passed": True}})
    with server.client(token=None) as anonymous:
        unauthenticated = send(anonymous, run.id, "ci.done", {"payload": {"passed": True}})

    assert unknown_workflow.status_code == 404
    assert unknown_event.status_code == 400
    assert "no step waiting for event 'ci.dne'" in unknown_event.json()["message"]
    assert refused.status_code == 400
    assert "'passed' is a required property" in refused.json()["message"]
    assert not_json.status_code == 400
    assert first.status_code == 200
    assert again.status_code == 409
    assert unauthenticated.status_code == 403
    assert [e.payload for e in notebook.store.sent_events(workflow_id=run.id)] == ['{"passed": false}']


# -- links in webhooks ------------------------------------------------------------------------------


def test_webhook_payloads_link_to_the_approval_page(
    monkeypatch: pytest.MonkeyPatch, db_path: Path, tmp_path: Path
) -> None:
    from tests.test_webhooks import Receiver

    receiver = Receiver()
    monkeypatch.setenv("AIRT_PUBLIC_URL", "https://hub.example.com/user/olga/")
    try:
        with airt_nb.Engine(db_path, registry=Registry(), webhook_url=receiver.url, webhook_secret="s") as eng:
            run = paused(eng, tmp_path)
            approval_id = approval_of(run)
            run.approve(by="ann")
            requests = receiver.wait_for(2)
    finally:
        receiver.close()
    bodies = [json.loads(body) for _, body in requests]
    assert [b["event"] for b in bodies] == ["approval.requested", "approval.approved"]
    assert {b["url"] for b in bodies} == {f"https://hub.example.com/user/olga/airt/?approval={approval_id}"}


def test_without_a_public_url_webhook_payloads_carry_no_link(db_path: Path, tmp_path: Path) -> None:
    from tests.test_webhooks import Receiver

    receiver = Receiver()
    try:
        with airt_nb.Engine(db_path, registry=Registry(), webhook_url=receiver.url, webhook_secret="s") as eng:
            paused(eng, tmp_path)
            ((_, body),) = receiver.wait_for(1)
    finally:
        receiver.close()
    assert "url" not in json.loads(body)


def test_the_server_waits_for_a_database_instead_of_creating_one(tmp_path: Path) -> None:
    from airt_nb.server.api import ApiError
    from airt_nb.server.app import Engines

    engines = Engines(str(tmp_path / "none.db"))
    with pytest.raises(ApiError, match=r"no airt_nb database at .*none\.db yet") as caught:
        engines.get()
    assert caught.value.status == 503
    assert not (tmp_path / "none.db").exists()
    airt_nb.Engine(tmp_path / "none.db", recover=False).close()
    assert engines.get().db == str(tmp_path / "none.db")
    engines.close()
    with pytest.raises(ApiError, match="shutting down"):
        engines.get()


def test_a_server_without_a_token_decides_as_its_owner_unauthenticated(tmp_path: Path) -> None:
    """No token, no password: anyone reaching the port is the owner, and nothing claims otherwise."""
    root = tmp_path / "root"
    root.mkdir()
    db = root / "airt.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "jupyter", "server", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--IdentityProvider.token=",
        "--ServerApp.password=", f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True",
    ]  # fmt: skip
    with airt_nb.Engine(db, registry=Registry(), user="sam") as notebook:
        run = paused(notebook, tmp_path)

        def ready() -> bool:
            return httpx.get(f"{url}/api/status").status_code == 200

        env = jupyter_env(tmp_path / "home", AIRT_USER=OWNER)
        log = tmp_path / "server.log"
        with (
            server_process(command, env=env, cwd=root, log=log, ready=ready),
            httpx.Client(base_url=url, timeout=20) as client,
        ):
            listed = client.get("/airt/api/approvals").json()
            body = {"decision": "approve", "by": "mallory"}
            assert decide(client, approval_of(run), body).status_code == 403  # XSRF holds all the same
            assert client.get("/airt/").status_code == 200  # sets the _xsrf cookie, as for a browser
            answer = decide(client, approval_of(run), body, headers={"X-XSRFToken": client.cookies["_xsrf"]})
        assert listed["user"] == {
            "name": OWNER,
            "authenticated_by": None,
            "note": "this server authenticates nobody: the name is its owner's",
            "refused": None,
        }
        assert answer.status_code == 200, answer.text
        assert answer.json()["approval"]["decided_by"] == OWNER
        assert run.wait(timeout=20) == "COMPLETED"
    audit = airt_nb.audit(db=db)
    row = audit[(audit["event"] == "approval") & (audit["workflow_id"] == run.id)].iloc[-1]
    assert "authenticated" not in str(row["detail"])


REVIEWERS_POLICY = """\
users:
  rita: [reviewer]
roles:
  reviewer:
    approve: true
"""
AUTHENTICATED_SPEC = SEED_SPEC.replace(
    '    message: "Publish B next to ${{ steps.write_a.outputs.path }}?"\n',
    '    message: "Publish B next to ${{ steps.write_a.outputs.path }}?"\n    authenticated: true\n',
)
EXCLUDING_SPEC = SEED_SPEC.replace(
    '    message: "Publish B next to ${{ steps.write_a.outputs.path }}?"\n',
    '    message: "Publish B next to ${{ steps.write_a.outputs.path }}?"\n    exclude_requester: true\n',
)
REVIEWER_SPEC = SEED_SPEC.replace(
    '    message: "Publish B next to ${{ steps.write_a.outputs.path }}?"\n',
    '    message: "Publish B next to ${{ steps.write_a.outputs.path }}?"\n    approvers: [reviewer]\n',
)


def test_a_token_servers_owner_named_by_its_starter_is_asserted(tmp_path: Path) -> None:
    """AIRT_USER=rita on a server that runs as another account: the token proves access, not that the
    holder is rita.  Her name is recorded as asserted, and a step that takes only authenticated
    decisions refuses it."""
    assert OWNER != "rita"
    (tmp_path / "root").mkdir()
    policy = tmp_path / "policy.yaml"
    policy.write_text(REVIEWERS_POLICY)
    with (
        token_server(tmp_path, tmp_path / "root", AIRT_USER="rita", AIRT_POLICY=str(policy)) as named,
        airt_nb.Engine(named.db, registry=Registry(), user="sam") as notebook,
    ):
        plain = paused(notebook, tmp_path / "plain", REVIEWER_SPEC)
        gated = paused(notebook, tmp_path / "gated", AUTHENTICATED_SPEC)
        event_run = notebook.start(EVENT_SPEC)
        assert event_run.wait(timeout=20) == "PAUSED"
        with named.client() as client:
            page = client.get("/airt/")
            settings = json.loads(page.text.split('type="application/json">')[1].split("</script>")[0])
            listed = client.get("/airt/api/approvals").json()
            refused = decide(client, approval_of(gated), {"decision": "approve"})
            answer = decide(client, approval_of(plain), {"decision": "approve", "reason": "fine"})
            sent = send(client, event_run.id, "ci.done", {"payload": {"passed": True}})

        assert (settings["user"], settings["authenticated_by"], settings["note"]) == ("rita", None, NAMED_NOTE)
        assert listed["user"] == {"name": "rita", "authenticated_by": None, "note": NAMED_NOTE, "refused": None}
        standings = {a["workflow_id"]: a["standing"] for a in listed["approvals"]}
        assert standings[plain.id] == {"may_decide": True, "refusal": None, "already": None}
        assert standings[gated.id]["refusal"].startswith(  # the page disables the buttons and says so
            "This step accepts only authenticated decisions, and your name (rita) is only asserted here: decide "
            "on an approvals page (/airt/) that authenticates you"
        )
        assert refused.status_code == 403
        assert "accepts only authenticated decisions" in refused.json()["message"]
        assert gated.status == "PAUSED"
        assert answer.status_code == 200, answer.text
        assert (answer.json()["approval"]["decided_by"], answer.json()["approval"]["auth"]) == ("rita", "asserted")
        assert plain.wait(timeout=20) == "COMPLETED"
        assert [(d.decided_by, d.auth) for d in plain.decisions()] == [("rita", "asserted")]
        assert (sent.json()["event"]["sent_by"], sent.json()["event"]["auth"]) == ("rita", None)
    audit = airt_nb.audit(db=named.db)
    row = audit[(audit["event"] == "approval") & (audit["workflow_id"] == plain.id)].iloc[-1]
    assert row["user"] == "rita"
    assert "authenticated" not in str(row["detail"])


def test_an_owner_set_in_the_servers_configuration_needs_the_policys_act_as(tmp_path: Path) -> None:
    """--AirtApp.owner=rita names someone other than the account that runs the server: deciding under
    that name is acting as rita, which the policy gives the account no right to."""
    (tmp_path / "root").mkdir()
    policy = tmp_path / "policy.yaml"
    policy.write_text(REVIEWERS_POLICY)
    with (
        token_server(tmp_path, tmp_path / "root", "--AirtApp.owner=rita", AIRT_POLICY=str(policy)) as named,
        airt_nb.Engine(named.db, registry=Registry(), user="sam") as notebook,
    ):
        run = paused(notebook, tmp_path, REVIEWER_SPEC)
        with named.client() as client:
            answer = decide(client, approval_of(run), {"decision": "approve"})

        assert answer.status_code == 403, answer.text
        assert "may not decide as 'rita'" in answer.json()["message"]
        assert run.status == "PAUSED"
        assert run.decisions() == []


FIELDS_SPEC = SEED_SPEC.replace(
    '    message: "Publish B next to ${{ steps.write_a.outputs.path }}?"\n',
    '    message: "Publish B next to ${{ steps.write_a.outputs.path }}?"\n'
    "    fields:\n      copies: {type: integer, default: 1, minimum: 1, maximum: 3}\n"
    "    min_approvals: 2\n",
).replace('content: "${{ steps.write_a.outputs.bytes }}"', 'content: "${{ steps.review.outputs.values.copies }}"')


def test_typed_values_through_the_api_with_two_approvals(
    server: Server, notebook: airt_nb.Engine, tmp_path: Path
) -> None:
    run = paused(notebook, tmp_path, FIELDS_SPEC)
    with server.client() as client:
        listed = client.get("/airt/api/approvals").json()["approvals"]
        (mine,) = [a for a in listed if a["workflow_id"] == run.id]
        assert mine["fields"]["copies"] == {
            "type": "integer",
            "default": 1,
            "minimum": 1,
            "maximum": 3,
            "required": True,
        }
        assert mine["field_hints"] == {"copies": "integer from 1 to 3, default 1"}  # the page shows it by the input
        assert (mine["min_approvals"], mine["approved_count"]) == (2, 0)
        assert (mine["exclude_requester"], mine["authenticated"]) == (False, False)  # true/false, as in webhooks
        assert mine["preview"]["steps"][0]["step"] == "write_b"
        assert "hash" not in mine["preview"]["steps"][0]
        bad = decide(client, mine["approval_id"], {"decision": "approve", "values": {"copies": 9}})
        partial = decide(client, mine["approval_id"], {"decision": "approve", "values": {"copies": 3}})
        again = decide(client, mine["approval_id"], {"decision": "approve"})

    assert bad.status_code == 400
    assert "copies: 9 is out of range; from 1 to 3" in bad.json()["message"]
    assert partial.status_code == 200
    assert (partial.json()["approval"]["status"], partial.json()["approval"]["approved_count"]) == ("PENDING", 1)
    assert partial.json()["approval"]["field_values"] == {"copies": 3}
    assert again.status_code == 409  # the server's owner approved already: a second approval must be someone else
    assert "approved already (1 of 2 approvals)" in again.json()["message"]
    assert [(d.decided_by, d.auth, d.values) for d in run.decisions()] == [(OWNER, "jupyter", {"copies": 3})]
    notebook.approve(run.id, by="rita")
    assert run.wait(timeout=20) == "COMPLETED"
    assert (tmp_path / "out/b.txt").read_text() == "3"
