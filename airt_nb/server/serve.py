"""``airt serve``: the approvals page on its own, for reviewers without a Jupyter server of their own.

It runs a Jupyter Server with only the ``airt_nb.server`` extension and the
page as its landing URL, so the handlers, the authentication and the XSRF
rules are exactly those of the extension:

- **standalone**: protected by a token (``--token``, ``$JUPYTER_TOKEN``, or
  a generated one printed with the URL); whoever holds it decides as the
  server's owner (``$AIRT_USER`` or the OS user who started it), recorded as
  authenticated only when that is the OS account the server runs as (the
  token proves access, not a name; any other name is asserted);
- **as a JupyterHub service** (``$JUPYTERHUB_API_TOKEN`` set, as the hub
  sets it for the services it starts): people log in with the hub's OAuth
  and decide as their hub user; the address and URL prefix come from
  ``$JUPYTERHUB_SERVICE_URL`` and ``$JUPYTERHUB_SERVICE_PREFIX``.

Only the page and its API are served: an authorizer refuses every other
resource of the server (kernels, contents, terminals), so a reviewer who can
reach the page cannot run code through it.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from jupyter_server.auth.authorizer import Authorizer

__all__ = ["AirtOnlyAuthorizer", "serve", "server_arguments"]

HUB_IDENTITY = "jupyterhub.singleuser.extension.JupyterHubIdentityProvider"


class AirtOnlyAuthorizer(Authorizer):
    """Allows the approvals page and its API (resource ``airt``) and nothing else of the server."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource == "airt"


def under_hub(env: dict[str, str] | os._Environ[str] | None = None) -> bool:
    return bool((env if env is not None else os.environ).get("JUPYTERHUB_API_TOKEN"))


def server_arguments(
    *,
    db: str | None = None,
    ip: str | None = None,
    port: int | None = None,
    token: str | None = None,
    env: dict[str, str] | os._Environ[str] | None = None,
) -> list[str]:
    """The Jupyter Server command line ``airt serve`` runs with.

    >>> server_arguments(db="airt.db", port=8765, token="t", env={})[:3]  # doctest: +NORMALIZE_WHITESPACE
    ['--ServerApp.default_url=/airt/', '--ServerApp.open_browser=False', '--ServerApp.terminals_enabled=False']
    """
    env = env if env is not None else os.environ
    args = [
        "--ServerApp.default_url=/airt/",
        "--ServerApp.open_browser=False",
        "--ServerApp.terminals_enabled=False",
        # The hub's users, or the token's holder, reach the page: never a kernel through it.
        f"--ServerApp.authorizer_class={__name__}.AirtOnlyAuthorizer",
    ]
    if db:
        args.append(f"--AirtApp.db={os.path.abspath(db) if '://' not in db else db}")
    if under_hub(env):
        service = urlparse(env.get("JUPYTERHUB_SERVICE_URL") or "http://127.0.0.1:8765")
        args += [
            f"--ServerApp.identity_provider_class={HUB_IDENTITY}",
            f"--ServerApp.base_url={env.get('JUPYTERHUB_SERVICE_PREFIX') or '/'}",
            f"--ServerApp.ip={ip or service.hostname or '127.0.0.1'}",
            f"--ServerApp.port={port or service.port or 8765}",
            "--ServerApp.port_retries=0",
        ]
    else:
        args += [
            f"--ServerApp.ip={ip or '127.0.0.1'}",
            f"--ServerApp.port={port or 8765}",
        ]
        if token:
            args.append(f"--IdentityProvider.token={token}")
        # Else Jupyter's own: $JUPYTER_TOKEN, or a new random token it prints with the URL.
    if os.geteuid() == 0:
        args.append("--ServerApp.allow_root=True")  # containers run as root
    return args


def serve(*, db: str | None = None, ip: str | None = None, port: int | None = None, token: str | None = None) -> int:
    """Run the approvals server until it is stopped (Ctrl-C, SIGTERM); returns the exit status."""
    if under_hub():
        try:
            import jupyterhub.singleuser.extension  # noqa: F401
        except ImportError:
            raise SystemExit(
                "airt serve: JUPYTERHUB_API_TOKEN is set but jupyterhub is not installed; "
                "pip install jupyterhub in this environment (the hub's OAuth comes with it)"
            ) from None
    from jupyter_server.serverapp import ServerApp

    app = ServerApp.instance(jpserver_extensions={"airt_nb.server": True})
    app.initialize(argv=server_arguments(db=db, ip=ip, port=port, token=token), find_extensions=False)
    app.start()
    return 0
