"""``airt serve``: the approvals page on its own, with its token, and as a service of a real JupyterHub.

The hub test starts JupyterHub (PyPI ``jupyterhub``) with its proxy
(npm ``configurable-http-proxy``) on 127.0.0.1; the hub starts ``airt
serve`` as a managed service, people log in to the hub, go through its
OAuth to the page and decide as their hub user.
"""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from server_support import free_port, jupyter_env, server_process, stop
from shared_specs import SEED_SPEC

import airt_nb
from airt_nb import Registry
from airt_nb.server.serve import server_arguments
from tests.conftest import require_tool

TOKEN = "serve-t0ken"

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

    env = jupyter_env(tmp_path / "home", AIRT_USER="olga")
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
            assert listed["user"] == {"name": "olga", "authenticated_by": "jupyter"}
            assert [a["approval_id"] for a in listed["approvals"]] == [approval_id]
            answer = client.post(
                f"/airt/api/approvals/{approval_id}/decision", json={"decision": "approve", "by": "mallory"}
            )
            assert answer.status_code == 200
            assert answer.json()["approval"]["decided_by"] == "olga"
        assert run.wait(timeout=20) == "COMPLETED"


def test_standalone_serves_the_page_and_nothing_else(standalone: tuple[str, Path]) -> None:
    url, _ = standalone
    with httpx.Client(base_url=url, timeout=20, headers={"Authorization": f"token {TOKEN}"}) as client:
        assert client.get("/airt/").status_code == 200
        # The token's holder reaches the approvals, never a kernel or a file through this server.
        assert client.get("/api/kernels").status_code == 403
        assert client.post("/api/kernels", json={}).status_code == 403
        assert client.get("/api/contents").status_code == 403
        assert client.get("/api/terminals").status_code in (403, 404)


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
# ann and bob review; carl has a hub account but no access to the service.
c.JupyterHub.load_roles = [
    {{"name": "airt-reviewers", "scopes": ["access:services!service=airt"], "users": ["ann", "bob"]}},
]
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    proxy = require_tool(
        "configurable-http-proxy", "the JupyterHub service test (npm install -g configurable-http-proxy)"
    )
    home = tmp_path_factory.mktemp("hub")
    db = home / "airt.db"
    airt_nb.Engine(db, recover=False).close()
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
        db=str(db),
        environment=service_env,
    )
    (home / "jupyterhub_config.py").write_text(textwrap.dedent(config))
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:  # the hub, its proxy and the service's route all up
        return httpx.get(f"{url}/services/airt/airt/api/approvals").status_code == 403

    command = [sys.executable, "-m", "jupyterhub", "-f", str(home / "jupyterhub_config.py")]
    log = home / "hub.log"
    with server_process(command, env=env, cwd=home, log=log, ready=ready, timeout=90) as proc:
        yield url, db
        assert stop(proc) == 0


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
            assert listed["user"] == {"name": "ann", "authenticated_by": "jupyterhub"}
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
