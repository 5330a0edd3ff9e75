"""``airt serve``: the approvals page on its own, with its token, and as a service of a real JupyterHub.

The hub tests start JupyterHub (PyPI ``jupyterhub``) with its proxy
(npm ``configurable-http-proxy``) on 127.0.0.1; the hub starts ``airt
serve`` as a managed service, people log in to the hub, go through its
OAuth to the page and decide as their hub user (on a PostgreSQL role of the
server's own, only the person the role is).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from server_support import free_port, jupyter_env, server_process, stop
from shared_specs import SEED_SPEC

import airt_nb
from airt_nb import Registry, cli
from airt_nb.server.serve import server_arguments
from tests.conftest import require_tool

TOKEN = "serve-t0ken"
OWNER = pwd.getpwuid(os.geteuid()).pw_name  # the account the server runs as: the one owner it authenticates

pytestmark = pytest.mark.slow


def paused(engine: airt_nb.Engine, tmp_path: Path) -> tuple[airt_nb.Run, str]:
    run = engine.start(SEED_SPEC, inputs={"target": str(tmp_path / "out")})
    assert run.wait(timeout=20) == "PAUSED"
    (approval,) = run.approvals()
    return run, approval.approval_id


def test_arguments_standalone_and_under_a_hub() -> None:
    alone = server_arguments(db="x.db", port=9000, env={})
    assert "--ServerApp.ip=127.0.0.1" in alone
    assert "--ServerApp.port=9000" in alone
    assert f"--AirtApp.db={os.path.abspath('x.db')}" in alone
    # Without --token, Jupyter's own: $JUPYTER_TOKEN, or a new random one it prints with the URL.
    assert not [a for a in alone if a.startswith("--IdentityProvider.token")]
    assert "--IdentityProvider.token=fixed" in server_arguments(token="fixed", env={})

    hub = server_arguments(
        env={
            "JUPYTERHUB_API_TOKEN": "x",
            "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:10101",
            "JUPYTERHUB_SERVICE_PREFIX": "/services/airt/",
        }
    )
    assert "--ServerApp.identity_provider_class=jupyterhub.singleuser.extension.JupyterHubIdentityProvider" in hub
    assert "--ServerApp.base_url=/services/airt/" in hub
    assert "--ServerApp.port=10101" in hub
    assert not [a for a in hub if a.startswith("--IdentityProvider.token")]


@pytest.fixture
def standalone(tmp_path: Path, db_path: Path) -> Iterator[tuple[str, Path]]:
    airt_nb.Engine(db_path, recover=False).close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "airt_nb.cli",
        "--db",
        str(db_path),
        "serve",
        "--port",
        str(port),
        "--token",
        TOKEN,
    ]

    def ready() -> bool:
        return httpx.get(f"{url}/airt/api/approvals", headers={"Authorization": f"token {TOKEN}"}).status_code == 200

    env = jupyter_env(tmp_path / "home", AIRT_USER=OWNER)
    log = tmp_path / "serve.log"
    with server_process(command, env=env, cwd=tmp_path, log=log, ready=ready) as proc:
        yield url, log
        assert stop(proc) == 0
    assert "Traceback" not in log.read_text()


def test_without_a_token_it_makes_one_and_prints_it(tmp_path: Path, db_path: Path) -> None:
    airt_nb.Engine(db_path, recover=False).close()
    port = free_port()
    command = [sys.executable, "-m", "airt_nb.cli", "--db", str(db_path), "serve", "--port", str(port)]
    log = tmp_path / "serve.log"

    printed = re.compile(r"/airt/\?token=([0-9a-f]{32,})")

    env = jupyter_env(tmp_path / "home")
    with server_process(command, env=env, cwd=tmp_path, log=log, ready=lambda: bool(printed.search(log.read_text()))):
        token = printed.findall(log.read_text())[0]
        url = f"http://127.0.0.1:{port}/airt/api/approvals"
        assert httpx.get(url).status_code == 403
        assert httpx.get(url, headers={"Authorization": f"token {token}"}).status_code == 200


def test_standalone_with_its_token_decides_as_its_owner(
    standalone: tuple[str, Path], db_path: Path, tmp_path: Path
) -> None:
    url, _ = standalone
    with airt_nb.Engine(db_path, registry=Registry(), user="sam") as notebook:
        run, approval_id = paused(notebook, tmp_path)
        with httpx.Client(base_url=url, timeout=20) as anonymous:
            assert anonymous.get("/airt/api/approvals").status_code == 403
            refused = anonymous.post(f"/airt/api/approvals/{approval_id}/decision", json={"decision": "approve"})
            assert refused.status_code == 403
            assert anonymous.get("/", follow_redirects=False).status_code == 302
        with httpx.Client(base_url=url, timeout=20, headers={"Authorization": f"token {TOKEN}"}) as client:
            landing = client.get("/", follow_redirects=False)
            assert landing.headers["Location"].split("?")[0].endswith("/airt/")
            listed = client.get("/airt/api/approvals").json()
            assert (listed["user"]["name"], listed["user"]["authenticated_by"]) == (OWNER, "jupyter")
            assert [a["approval_id"] for a in listed["approvals"]] == [approval_id]
            answer = client.post(
                f"/airt/api/approvals/{approval_id}/decision", json={"decision": "approve", "by": "mallory"}
            )
            assert answer.status_code == 200
            assert answer.json()["approval"]["decided_by"] == OWNER
        assert run.wait(timeout=20) == "COMPLETED"
        assert [(d.decided_by, d.auth) for d in run.decisions()] == [(OWNER, "jupyter")]


def test_standalone_serves_the_page_and_nothing_else(standalone: tuple[str, Path]) -> None:
    url, _ = standalone
    with httpx.Client(base_url=url, timeout=20, headers={"Authorization": f"token {TOKEN}"}) as client:
        assert client.get("/airt/").status_code == 200
        # The token's holder reaches the approvals, never a kernel or a file through this server.
        assert client.get("/api/kernels").status_code == 403
        assert client.post("/api/kernels", json={}).status_code == 403
        assert client.get("/api/contents").status_code == 403
        assert client.get("/api/terminals").status_code in (403, 404)


GATE_POLICY = """\
users:
  ann: [agent]
  rita: [reviewer]
roles:
  agent:
    allow: ["*"]
    paths: [OUT]
    require_approval:
      - actions: ["file.*"]
        approvers: [reviewer]
        authenticated: true
        exclude_requester: true
  reviewer:
    approve: true
"""
GATED_SPEC = """\
name: prod
inputs: {target: out}
steps:
  - name: review
    type: human_approval
    approvers: [reviewer]
    authenticated: true
    exclude_requester: true
  - name: deploy
    action: file.write
    inputs: {path: "${{ inputs.target }}/prod.txt", content: agent was here}
"""


def test_started_under_someone_elses_name_it_does_not_pass_an_authenticated_gate(tmp_path: Path, db_path: Path) -> None:
    """ann, an agent whose runs need an authenticated reviewer's approval, starts ``AIRT_USER=rita airt
    serve`` with a token of her own: the token proves she holds the server, not that she is rita."""
    assert OWNER != "rita"
    policy = tmp_path / "policy.yaml"
    policy.write_text(GATE_POLICY.replace("OUT", str(tmp_path / "out")))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "airt_nb.cli", "--db", str(db_path), "serve", "--port", str(port)]
    command += ["--token", "anns-own-token"]

    def ready() -> bool:
        answer = httpx.get(f"{url}/airt/api/approvals", headers={"Authorization": "token anns-own-token"})
        return answer.status_code == 200

    with airt_nb.Engine(db_path, registry=Registry(), policy=policy, user="ann") as agent:
        run = agent.start(GATED_SPEC, inputs={"target": str(tmp_path / "out")})
        assert run.wait(timeout=20) == "PAUSED"
        (approval,) = run.approvals()
        env = jupyter_env(tmp_path / "home", AIRT_USER="rita", AIRT_POLICY=str(policy))
        with (
            server_process(command, env=env, cwd=tmp_path, log=tmp_path / "serve.log", ready=ready),
            httpx.Client(base_url=url, timeout=20, headers={"Authorization": "token anns-own-token"}) as ann,
        ):
            listed = ann.get("/airt/api/approvals").json()
            answer = ann.post(f"/airt/api/approvals/{approval.approval_id}/decision", json={"decision": "approve"})

        assert (listed["user"]["name"], listed["user"]["authenticated_by"]) == ("rita", None)
        assert listed["user"]["note"].startswith("asserted: the server's token or password proves access to it")
        assert answer.status_code == 403, answer.text
        assert "accepts only authenticated decisions" in answer.json()["message"]
        assert run.status == "PAUSED"
        assert run.decisions() == []
    assert not (tmp_path / "out" / "prod.txt").exists()


# -- under a real JupyterHub ------------------------------------------------------------------------------

HUB_CONFIG = """
import sys
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = {pid_file!r}
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "pw"
c.Authenticator.allow_all = True
c.JupyterHub.db_url = "sqlite:///{hub_db}"
c.JupyterHub.cookie_secret_file = {secret!r}
c.JupyterHub.services = [{{
    "name": "airt",
    "url": "http://127.0.0.1:{service_port}",
    "command": [sys.executable, "-m", "airt_nb.cli", "--db", {db!r}, "serve"],
    "environment": {environment!r},
    "oauth_no_confirm": True,
}}]
# The reviewers have access to the service; carl has a hub account but no access.
c.JupyterHub.load_roles = [
    {{"name": "airt-reviewers", "scopes": ["access:services!service=airt"], "users": {reviewers!r}}},
]
"""


@contextmanager
def running_hub(home: Path, db: str, reviewers: list[str]) -> Iterator[str]:
    """A JupyterHub whose service ``airt`` is ``airt --db DB serve``, until the block ends; yields its URL."""
    proxy = require_tool(
        "configurable-http-proxy", "the JupyterHub service test (npm install -g configurable-http-proxy)"
    )
    port = free_port()
    env = jupyter_env(home / "jupyter", PATH=f"{Path(proxy).parent}{os.pathsep}{os.environ['PATH']}")
    service_env = {k: env[k] for k in ("PYTHONPATH", "JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR")}
    config = HUB_CONFIG.format(
        port=port,
        hub_port=free_port(),
        proxy_api_port=free_port(),
        service_port=free_port(),
        pid_file=str(home / "proxy.pid"),
        hub_db=home / "jupyterhub.sqlite",
        secret=str(home / "cookie_secret"),
        db=db,
        environment=service_env,
        reviewers=reviewers,
    )
    (home / "jupyterhub_config.py").write_text(textwrap.dedent(config))
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:  # the hub, its proxy and the service's route all up
        return httpx.get(f"{url}/services/airt/airt/api/approvals").status_code == 403

    command = [sys.executable, "-m", "jupyterhub", "-f", str(home / "jupyterhub_config.py")]
    log = home / "hub.log"
    with server_process(command, env=env, cwd=home, log=log, ready=ready, timeout=90) as proc:
        yield url
        assert stop(proc) == 0


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("hub")
    db = home / "airt.db"
    airt_nb.Engine(db, recover=False).close()
    with running_hub(home, str(db), ["ann", "bob"]) as url:
        yield url, db


@contextmanager
def hub_login(url: str, user: str) -> Iterator[httpx.Client]:
    """A browser-like client logged in to the hub as ``user``."""
    with httpx.Client(base_url=url, timeout=20) as client:
        client.get("/hub/login")
        answer = client.post("/hub/login", data={"username": user, "password": "pw", "_xsrf": client.cookies["_xsrf"]})
        assert answer.status_code == 302, answer.text  # to the user's server, which this hub never starts
        yield client


def page_settings(client: httpx.Client) -> dict[str, str]:
    """Open the page like a browser: through the hub's OAuth the first time."""
    page = client.get("/services/airt/airt/", follow_redirects=True)
    assert page.status_code == 200, page.text[-500:]
    return json.loads(page.text.split('type="application/json">')[1].split("</script>")[0])


def test_under_jupyterhub_people_decide_as_their_hub_user(hub: tuple[str, Path], tmp_path: Path) -> None:
    url, db = hub
    with airt_nb.Engine(db, registry=Registry(), user="sam") as notebook:
        run, approval_id = paused(notebook, tmp_path)
        decision = f"/services/airt/airt/api/approvals/{approval_id}/decision"

        assert httpx.post(f"{url}{decision}", json={"decision": "approve"}).status_code == 403  # not logged in

        with hub_login(url, "carl") as carl:  # a hub user without access to the service
            refused = carl.get("/services/airt/airt/", follow_redirects=True)
            assert refused.status_code == 403
            assert carl.get("/services/airt/airt/api/approvals").status_code == 403

        with hub_login(url, "ann") as ann:
            settings = page_settings(ann)
            assert settings["user"] == "ann"
            assert settings["authenticated_by"] == "jupyterhub"
            listed = ann.get("/services/airt/airt/api/approvals").json()
            assert listed["user"] == {
                "name": "ann",
                "authenticated_by": "jupyterhub",
                "note": "authenticated by JupyterHub",
                "refused": None,
            }
            assert approval_id in [a["approval_id"] for a in listed["approvals"]]
            without_xsrf = ann.post(decision, json={"decision": "approve"})
            assert without_xsrf.status_code == 403
            answer = ann.post(
                decision,
                json={"decision": "approve", "reason": "fine", "by": "bob"},
                headers={"X-XSRFToken": settings["xsrf"]},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["approval"]["decided_by"] == "ann"
        assert run.wait(timeout=20) == "COMPLETED"

    audit = airt_nb.audit(db=db)
    row = audit[(audit["event"] == "approval") & (audit["workflow_id"] == run.id)].iloc[-1]
    assert row["user"] == "ann"
    assert "authenticated by jupyterhub" in row["detail"]


def test_on_a_database_role_of_its_own_only_that_person_decides(
    pg_db: str, pg_role: Callable[..., str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """ann's server connects to PostgreSQL as ann, so the database records every decision it makes as
    ann's.  rita, logged in to the hub, reaches it: she is told, and refused, instead of approving in
    ann's name; ann decides there as herself."""
    urls = {}
    for name in ("ann", "rita"):
        urls[name] = pg_role(name).rsplit("/", 1)[0] + "/" + pg_db.rsplit("/", 1)[1]
        assert cli.main(["--db", pg_db, "db", "grant", name]) == 0
    capsys.readouterr()
    (tmp_path / "hub").mkdir()
    with (
        airt_nb.Engine(pg_db, registry=Registry(), user="sam") as notebook,
        running_hub(tmp_path / "hub", urls["ann"], ["ann", "rita"]) as url,
    ):
        run, approval_id = paused(notebook, tmp_path)
        decision = f"/services/airt/airt/api/approvals/{approval_id}/decision"
        elsewhere = (
            "this server decides as its database role ann; rita (authenticated by JupyterHub) must decide from "
            "their own server (one that connects to the database as rita)"
        )
        with hub_login(url, "rita") as rita:
            settings = page_settings(rita)
            listed = rita.get("/services/airt/airt/api/approvals").json()
            refused = rita.post(
                decision,
                json={"decision": "approve", "reason": "rita clicked"},
                headers={"X-XSRFToken": settings["xsrf"]},
            )
        assert listed["user"] == {
            "name": "rita",
            "authenticated_by": "jupyterhub",
            "note": "authenticated by JupyterHub",
            "refused": elsewhere,
        }
        assert refused.status_code == 403, refused.text
        assert refused.json()["message"] == f"{elsewhere}. Nothing was recorded"
        assert run.status == "PAUSED"
        assert run.decisions() == []

        with hub_login(url, "ann") as ann:
            settings = page_settings(ann)
            assert ann.get("/services/airt/airt/api/approvals").json()["user"]["refused"] is None
            answer = ann.post(
                decision, json={"decision": "approve", "reason": "mine"}, headers={"X-XSRFToken": settings["xsrf"]}
            )
        assert answer.status_code == 200, answer.text
        assert run.wait(timeout=20) == "COMPLETED"
        assert [(d.decided_by, d.auth, d.reason) for d in run.decisions()] == [("ann", "database", "mine")]
