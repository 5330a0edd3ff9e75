"""``airt dashboard``: the workflows of a database in a terminal (Textual).

The workflow list with a status filter, a detail view (steps, attempts,
errors, a progress bar) and the pending approvals, refreshed live from the
database, also while notebooks and ``airt worker`` processes run workflows
on it.  Keys (DESIGN §11): ``enter`` detail, ``a`` approve and ``x``
reject (each asks for a reason), ``b`` rollback and ``c`` cancel (each
confirmed), ``f`` next status filter, ``r`` refresh, ``q`` quit.

Decisions are made as ``--as USER`` or the engine's user (``AIRT_USER``,
the OS user): a name the person at the terminal asserts, as with the
``airt`` command.  The engine is opened with ``recover=False``: the
dashboard records decisions, rollbacks and cancels; the engines that run
the workflows carry them out.

Needs the ``tui`` extra (``pip install "airt_nb[tui]"``); only this
subpackage imports textual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..engine import Engine

__all__ = ["run_dashboard"]


def run_dashboard(engine: Engine, *, as_user: str | None = None) -> int:
    """Run the dashboard on ``engine`` until ``q``; closes the engine; returns the exit status.

    >>> run_dashboard(airt_nb.Engine("airt.db", recover=False))  # doctest: +SKIP
    0
    """
    from .app import DashboardApp

    try:
        DashboardApp(engine, as_user=as_user).run()
    finally:
        engine.close()
    return 0
