"""Who the approvals page decides as, and how that is established.

:func:`~airt_nb.server.handlers.identity` on Jupyter's own identity
providers (no server needed), and :func:`~airt_nb.server.api.decide` with a
real engine on a real PostgreSQL role of one person: the server's owner is
that role, a person logged in under another name is refused.  The same
rules through real servers are in ``test_server.py`` and ``test_serve.py``.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider, User
from shared_specs import SEED_SPEC

import airt_nb
from airt_nb import Registry, cli
from airt_nb.server import api, handlers
from airt_nb.server.api import ApiError, Identity

ACCOUNT = pwd.getpwuid(os.geteuid()).pw_name


def request(provider: Any, user: Any = None) -> Any:
    """What :func:`identity` reads of a request: who Jupyter let in, and the provider that did."""
    return SimpleNamespace(current_user=user or User(username="anonymous-Io"), identity_provider=provider)


class LoginProvider(IdentityProvider):
    """An identity provider that logs people in by name (as an organisation's single sign-on would)."""


def test_a_token_servers_owner_is_authenticated_only_as_the_account_it_runs_as() -> None:
    token = PasswordIdentityProvider(token="t")
    assert handlers.identity(request(token), ACCOUNT) == Identity(ACCOUNT, "jupyter", handlers.OS_ACCOUNT, "account")
    named = handlers.identity(request(token), "rita")
    assert named == Identity("rita", None, handlers.NAMED_OWNER, "named")
    assert named.owner


def test_the_account_is_the_operating_systems_not_the_environments(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("USER", "LOGNAME", "USERNAME", "LNAME"):
        monkeypatch.setenv(var, "rita")
    assert handlers.os_account() == ACCOUNT
    assert handlers.identity(request(PasswordIdentityProvider(token="t")), "rita").auth is None


def test_other_providers_keep_their_identity() -> None:
    opened = PasswordIdentityProvider(token="", hashed_password="")
    assert handlers.identity(request(opened), ACCOUNT) == Identity(ACCOUNT, None, handlers.NOBODY, "open")
    logged_in = handlers.identity(request(LoginProvider(), User(username="ann")), "olga")
    assert logged_in == Identity("ann", "jupyter", "authenticated by Jupyter")
    # Under JupyterHub the hub's user, whatever the owner and the provider's token say.
    hub_user = SimpleNamespace(username="rita", hub_user={"name": "rita"})
    hub = handlers.identity(request(PasswordIdentityProvider(token="t"), hub_user), "olga")
    assert hub == Identity("rita", "jupyterhub", "authenticated by JupyterHub")


# -- on a PostgreSQL role of the server's own ------------------------------------------------------------


@pytest.fixture
def roles(pg_db: str, pg_role: Callable[..., str], capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """Login roles ann and rita on the migrated database, each granted airt_nb's group."""
    urls = {}
    for name in ("ann", "rita"):
        urls[name] = pg_role(name).rsplit("/", 1)[0] + "/" + pg_db.rsplit("/", 1)[1]
        assert cli.main(["--db", pg_db, "db", "grant", name]) == 0
    capsys.readouterr()
    return urls


@pytest.fixture
def anns_server(roles: dict[str, str], pg_db: str, tmp_path: Path) -> Iterator[tuple[airt_nb.Engine, str, str]]:
    """The engine of a server on ann's role, and a run sam started (on the owner's connection) that
    waits for an approval: ``(engine, workflow id, approval id)``."""
    with (
        airt_nb.Engine(pg_db, registry=Registry(), user="sam") as notebook,
        airt_nb.Engine(roles["ann"], registry=Registry(), recover=False) as server,
    ):
        run = notebook.start(SEED_SPEC, inputs={"target": str(tmp_path / "out")})
        assert run.wait(timeout=20) == "PAUSED"
        yield server, run.id, run.pending_approval.approval_id


def test_a_person_logged_in_under_another_name_is_refused_and_told_why(
    anns_server: tuple[airt_nb.Engine, str, str],
) -> None:
    server, workflow_id, approval_id = anns_server
    rita = Identity("rita", "jupyterhub", "authenticated by JupyterHub")
    elsewhere = (
        "this server decides as its database role ann; rita (authenticated by JupyterHub) must decide from their "
        "own server (one that connects to the database as rita)"
    )
    assert api.user_json(server, rita)["refused"] == elsewhere
    with pytest.raises(ApiError) as refused:
        api.decide(server, approval_id, True, "rita clicked", None, user="rita", authenticated_by="jupyterhub")
    assert (refused.value.status, refused.value.message) == (403, f"{elsewhere}. Nothing was recorded")
    assert server.store.decisions(approval_id=approval_id) == []
    assert server.store.approvals(approval_id=approval_id)[0].status == "PENDING"

    ann = Identity("ann", "jupyterhub", "authenticated by JupyterHub")
    assert api.user_json(server, ann) == {
        "name": "ann",
        "authenticated_by": "jupyterhub",
        "note": "authenticated by JupyterHub",
        "refused": None,
    }
    decided = api.decide(server, approval_id, True, "mine", None, user="ann", authenticated_by="jupyterhub")
    assert (decided["approval"]["decided_by"], decided["approval"]["auth"]) == ("ann", "database")
    assert workflow_id == decided["approval"]["workflow_id"]


@pytest.mark.parametrize("owner", [("root", "jupyter", "account"), ("rita", None, "named"), ("rita", None, "open")])
def test_the_owner_of_a_token_server_on_a_role_decides_as_the_role(
    anns_server: tuple[airt_nb.Engine, str, str], owner: tuple[str, str | None, str]
) -> None:
    """Whoever holds the server's token holds ann's connection: the database records ann, and the page
    says so instead of the owner's name."""
    server, _, approval_id = anns_server
    name, auth, basis = owner
    shown = api.user_json(server, Identity(name, auth, "how the server knows", basis))
    assert (shown["name"], shown["authenticated_by"], shown["refused"]) == ("ann", "database", None)
    assert shown["note"].startswith("authenticated by the database: ann is this server's PostgreSQL role")
    assert ("authenticates nobody" in shown["note"]) == (basis == "open")
    decided = api.decide(server, approval_id, True, None, None, user=name, authenticated_by=auth, owner=True)
    assert (decided["approval"]["decided_by"], decided["approval"]["auth"]) == ("ann", "database")
