"""Deciding outside the notebook: the ``/airt/`` page and JSON API in a Jupyter server.

Installing the package enables the extension (its
``jupyter_server_config.d/airt_nb.json``); ``jupyter server extension
list`` shows ``airt_nb.server``.  Any Jupyter server (JupyterLab, a
JupyterHub single-user server) then serves:

- ``GET /airt/``: the pending approvals with their context, decidable in place;
- ``GET /airt/api/approvals?status=PENDING``;
- ``GET /airt/api/workflows/{workflow_id}``;
- ``POST /airt/api/approvals/{approval_id}/decision`` with
  ``{"decision": "approve" | "reject", "reason": "...", "values": {...}}``.

``decided_by`` is who the server says the request is, never a name from
the request: the JupyterHub user under JupyterHub (authenticated), the
server's owner on a server protected by its token or password
(authenticated only when it is the OS account the server runs as, else
asserted), and on PostgreSQL with a role per person the database's role,
where a person logged in under another name is refused.  ``airt serve``
runs the same handlers on their own (:mod:`airt_nb.server.serve`).

Only this subpackage imports jupyter_server and tornado; the engine core
never imports it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["_jupyter_server_extension_points"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import AirtApp

    return [{"module": "airt_nb.server", "app": AirtApp}]
