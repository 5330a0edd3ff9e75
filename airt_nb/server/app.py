"""The Jupyter Server extension application: configuration, routes, the server's one engine.

Configurable like any server extension (``jupyter_server_config.py``,
``--AirtApp.db=...``):

``AirtApp.db``
    The database the page decides in; default ``$AIRT_DB``, else
    ``airt.db`` in the server's root directory.
``AirtApp.owner``
    Who a request let in by the server's token or password decides as;
    default ``$AIRT_USER``, ``$JUPYTERHUB_USER`` or the OS user who started
    the server.  The token proves access to the server, not a name: the
    owner counts as authenticated only when it is the operating-system
    account the server runs as; any other name is recorded as asserted
    (see :func:`~airt_nb.server.handlers.identity`).

The engine is opened on the first request that needs it (a server whose
folder holds no database creates none) with ``recover=False``: it records
decisions, and the engine that runs a workflow (its notebook's kernel, an
``airt worker``) carries it on.  It is closed when the server stops.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_server.extension.application import ExtensionApp
from traitlets import Unicode, default

from ..identity import current_user
from ..store.base import redact
from . import api
from .handlers import (
    ApprovalsHandler,
    DecisionHandler,
    EventHandler,
    NoRouteHandler,
    PageHandler,
    StaticHandler,
    WorkflowHandler,
)

if TYPE_CHECKING:
    from ..engine import Engine

__all__ = ["AirtApp", "Engines"]

_ID = r"(?P<{}>[A-Za-z0-9_.\-]+)"


class Engines:
    """The server's one engine, opened on first use and closed once at shutdown (thread-safe)."""

    def __init__(self, db: str):
        self.db = db
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._closed = False

    def get(self) -> Engine:
        with self._lock:
            if self._closed:
                raise api.ApiError(503, "the server is shutting down")
            if self._engine is None:
                self._engine = self._open()
            return self._engine

    def _open(self) -> Engine:
        from ..engine import Engine

        is_url = "://" in self.db and not self.db.startswith("sqlite:///")
        path = self.db[len("sqlite:///") :] if self.db.startswith("sqlite:///") else self.db
        if not is_url and not Path(path).is_file():
            raise api.ApiError(
                503,
                f"no airt_nb database at {path} yet; run a workflow there first, or point the server at yours "
                "with AIRT_DB or --AirtApp.db=PATH",
            )
        return Engine(self.db, recover=False)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.close(timeout=5)


class AirtApp(ExtensionApp):
    """``/airt/``: decide airt_nb approvals from a browser, as the user the server authenticated."""

    name = "airt"
    extension_url = "/airt/"
    load_other_extensions = True

    db = Unicode(help="database of the approvals page (default $AIRT_DB, else airt.db in the root directory)").tag(
        config=True
    )
    owner = Unicode(
        help="who a request let in by the server's token or password decides as "
        "(default $AIRT_USER, $JUPYTERHUB_USER or the OS user); authenticated only when it is the "
        "OS account the server runs as, else recorded as asserted"
    ).tag(config=True)

    @default("db")
    def _default_db(self) -> str:
        env = os.environ.get("AIRT_DB", "").strip()
        if env:
            return env
        root = getattr(self.serverapp, "root_dir", None) or os.getcwd()
        return str(Path(root) / "airt.db")

    @default("owner")
    def _default_owner(self) -> str:
        return current_user(None)

    @classmethod
    def get_extension_package(cls) -> str:
        return "airt_nb.server"

    def initialize_settings(self) -> None:
        self.engines = Engines(self.db)
        self.log.info("airt: approvals page at /airt/ on %s (decisions as the authenticated user)", redact(self.db))

    def initialize_handlers(self) -> None:
        self.handlers.extend(
            [
                (r"/airt/?", PageHandler),
                (r"/airt/static/(?P<name>[a-z]+\.(?:js|css))", StaticHandler),
                (r"/airt/api/approvals", ApprovalsHandler),
                (rf"/airt/api/approvals/{_ID.format('approval_id')}/decision", DecisionHandler),
                (rf"/airt/api/workflows/{_ID.format('workflow_id')}", WorkflowHandler),
                (
                    rf"/airt/api/workflows/{_ID.format('workflow_id')}/events/{_ID.format('event')}",
                    EventHandler,
                ),
                (r"/airt/api/(?P<path>.*)", NoRouteHandler),  # last: what no route above matched
            ]
        )

    async def stop_extension(self) -> None:
        import asyncio

        await asyncio.to_thread(self.engines.close)
        self.log.info("airt: closed the database %s", redact(self.db))
