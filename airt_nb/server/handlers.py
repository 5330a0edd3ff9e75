"""The tornado handlers of ``/airt/``: the page and its JSON API, on Jupyter Server's own auth.

Authentication, the login redirect, XSRF and the host / origin checks are
Jupyter Server's (:class:`~jupyter_server.base.handlers.JupyterHandler`):
an API request that is not authenticated gets 403, a POST authenticated by
a cookie must carry the ``_xsrf`` token (the page sends it as
``X-XSRFToken``), one authenticated by a token header needs none.

Who decides is who the server says the request is (:func:`identity`),
never a name from the request.  Engine calls block (SQLite), so they run on
a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.auth.identity import IdentityProvider, LegacyIdentityProvider, PasswordIdentityProvider
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from ..errors import StoreError
from ..store.base import redact
from . import api

if TYPE_CHECKING:
    from .app import AirtApp

__all__ = ["ApprovalsHandler", "DecisionHandler", "EventHandler", "PageHandler", "WorkflowHandler", "identity"]

STATIC = Path(__file__).parent / "static"
# Identity providers whose user is a random "anonymous" name: whoever holds the server's token or
# password is let in as the server's owner.
_OWNER_PROVIDERS = (IdentityProvider, PasswordIdentityProvider, LegacyIdentityProvider)

NOBODY = "this server authenticates nobody: the name is its owner's"
OS_ACCOUNT = "authenticated by Jupyter: the account this server runs as"
NAMED_OWNER = (
    "asserted: the server's token or password proves access to it, not this name, which is only the one "
    "the server was started with"
)


def os_account() -> str | None:
    """The name of the operating-system account this process runs as, from the account database.

    Not ``$USER`` or :func:`getpass.getuser`: whoever starts a process sets its environment.
    """
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):  # no account database, or no entry for this uid (containers)
        return None


def identity(handler: JupyterHandler, owner: str) -> api.Identity:
    """Who the request is, and how the server established it.

    Under JupyterHub the hub user (``"jupyterhub"``); with an identity
    provider that logs people in, the user it authenticated (``"jupyter"``).
    A server protected by its token or password lets in whoever holds them as
    its ``owner``: the owner counts as authenticated (``"jupyter"``) only when
    it is the account the server runs as, which the operating system
    established; any other name (``$AIRT_USER``, ``$JUPYTERHUB_USER`` outside a
    hub, ``--AirtApp.owner``) is the starter's claim, asserted (``None``), as
    is the owner of a server without any authentication.
    """
    user = handler.current_user
    provider = handler.identity_provider
    if getattr(user, "hub_user", None) is not None:  # jupyterhub's JupyterHubUser
        return api.Identity(str(user.username), "jupyterhub", "authenticated by JupyterHub")
    if type(provider) in _OWNER_PROVIDERS:
        if not provider.auth_enabled:
            return api.Identity(owner, None, NOBODY, "open")
        if owner == os_account():
            return api.Identity(owner, "jupyter", OS_ACCOUNT, "account")
        return api.Identity(owner, None, NAMED_OWNER, "named")
    return api.Identity(str(user.username), "jupyter", "authenticated by Jupyter")


class _Base(ExtensionHandlerMixin, JupyterHandler):
    auth_resource = "airt"

    @property
    def airt(self) -> AirtApp:
        return self.extensionapp  # type: ignore[return-value]

    def whoami(self) -> api.Identity:
        return identity(self, self.airt.owner)

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(engine, ...)`` on a worker thread."""
        try:
            engine = await asyncio.to_thread(self.airt.engines.get)  # opening migrates: off the event loop
            return await asyncio.to_thread(fn, engine, *args, **kwargs)
        except StoreError as exc:  # e.g. the database stayed locked longer than its busy timeout
            raise api.ApiError(503, " ".join(str(exc).split())) from None

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if not isinstance(value, api.ApiError):  # a refusal is an answer, not a server error
            super().log_exception(typ, value, tb)


class _Api(_Base, APIHandler):
    def send(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, api.ApiError):
            self.send({"message": exc.message}, exc.status)
            return
        if isinstance(exc, web.HTTPError):
            message = exc.log_message or exc.reason or "refused"
            if status_code == 403 and not self.current_user:
                message = "not authenticated: log in to this server, or send its token (Authorization: token ...)"
            self.send({"message": message % exc.args if exc.args else message}, status_code)
            return
        super().write_error(status_code, **kwargs)


class PageHandler(_Base):
    """``GET /airt/``: the approvals page (static HTML; the script reads the API)."""

    @web.authenticated
    @authorized
    def get(self) -> None:
        if not self.request.path.endswith("/"):  # the page's relative links need the slash
            query = f"?{self.request.query}" if self.request.query else ""
            self.redirect(f"{self.request.path}/{query}")
            return
        who = self.whoami()  # before the database is open; the API's answer adds what it says (user_json)
        page = (STATIC / "index.html").read_text()
        settings = {
            "base": self.base_url,
            "xsrf": self.xsrf_token.decode() if isinstance(self.xsrf_token, bytes) else self.xsrf_token,
            "user": who.name,
            "authenticated_by": who.auth,
            "note": who.note,
        }
        # The only dynamic part: a JSON island the script reads (json.dumps escapes nothing for HTML).
        island = json.dumps(settings).replace("<", "\\u003c")
        self.set_header("Cache-Control", "no-store")
        self.finish(page.replace("{{settings}}", island))


class StaticHandler(_Base):
    """The page's script and stylesheet (no build step: plain files next to this module)."""

    TYPES: ClassVar[dict[str, str]] = {
        "airt.js": "text/javascript; charset=utf-8",
        "airt.css": "text/css; charset=utf-8",
    }

    @web.authenticated
    @authorized
    def get(self, name: str) -> None:
        if name not in self.TYPES:
            raise web.HTTPError(404)
        self.set_header("Content-Type", self.TYPES[name])
        self.set_header("Cache-Control", "no-cache")
        self.finish((STATIC / name).read_bytes())


class ApprovalsHandler(_Api):
    """``GET /airt/api/approvals?status=PENDING`` (also ``&workflow_id=...``, ``&approval_id=...``)"""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        status = self.get_argument("status", "") or "PENDING"
        workflow_id = self.get_argument("workflow_id", None)
        approval_id = self.get_argument("approval_id", None)
        who = self.whoami()
        approvals = await self.call(api.list_approvals, status, workflow_id, approval_id, who)
        user = await self.call(api.user_json, who)
        self.send(
            {
                "user": user,
                "db": redact(self.airt.engines.db),
                "status": status.upper(),
                "approvals": approvals,
            }
        )


class WorkflowHandler(_Api):
    """``GET /airt/api/workflows/{workflow_id}``"""

    @web.authenticated
    @authorized
    async def get(self, workflow_id: str) -> None:
        self.send(await self.call(api.workflow_detail, workflow_id))


class DecisionHandler(_Api):
    """``POST /airt/api/approvals/{approval_id}/decision`` with ``{"decision", "reason", "values"}``."""

    @web.authenticated
    @authorized
    async def post(self, approval_id: str) -> None:
        approve, reason, values = api.parse_decision(self.request.body)
        who = self.whoami()
        result = await self.call(
            api.decide, approval_id, approve, reason, values, user=who.name, authenticated_by=who.auth, owner=who.owner
        )
        self.log.info(
            "airt: %s %s approval %s",
            result["approval"].get("decided_by") or who.name,
            "approved" if approve else "rejected",
            approval_id,
        )
        self.send(result)


class EventHandler(_Api):
    """``POST /airt/api/workflows/{workflow_id}/events/{event}`` with ``{"payload": ...}``: sent as the
    authenticated identity, like a decision."""

    @web.authenticated
    @authorized
    async def post(self, workflow_id: str, event: str) -> None:
        payload = api.parse_event(self.request.body)
        who = self.whoami()
        result = await self.call(api.send_event, workflow_id, event, payload, user=who.name, authenticated_by=who.auth)
        self.log.info("airt: %s sent event %s to workflow %s", who.name, event, workflow_id)
        self.send(result)


class NoRouteHandler(_Api):
    """Any other path under ``/airt/api/``: a JSON 404 that lists the routes (not Jupyter's HTML page)."""

    ROUTES = (
        "GET /airt/api/approvals?status=PENDING",
        "POST /airt/api/approvals/{approval_id}/decision",
        "GET /airt/api/workflows/{workflow_id}",
        "POST /airt/api/workflows/{workflow_id}/events/{event}",
    )

    @web.authenticated
    @authorized
    async def get(self, path: str) -> None:
        raise api.ApiError(404, f"no API route /airt/api/{path[:80]}; the routes are: {'; '.join(self.ROUTES)}")

    post = put = delete = patch = get
