"""The kernel's engine: one :class:`~airt_nb.Engine` per kernel, shared by magics and panels.

``%load_ext airt_nb`` opens it (database from ``$AIRT_DB`` or ``./airt.db``),
which recovers what the database holds; ``%workflow config --db PATH``
replaces it; ``airt_nb.dashboard()`` and ``airt_nb.approvals_panel()`` use
it, opening it on first use.  Code that wants its own engine simply creates
one: nothing here is global beyond this one slot.

Imports no IPython or ipywidgets.
"""

from __future__ import annotations

import os
import threading

from .engine import Engine

__all__ = ["close", "current", "engine", "open_engine"]

_lock = threading.Lock()
_engine: Engine | None = None


def _is_open(eng: Engine | None) -> bool:
    return eng is not None and not eng.closed


def current() -> Engine | None:
    """The kernel's engine if one is open, else ``None``."""
    return _engine if _is_open(_engine) else None


def engine() -> Engine:
    """The kernel's engine, opened (and recovered) on first use."""
    global _engine
    with _lock:
        if not _is_open(_engine):
            _engine = Engine()
        assert _engine is not None
        return _engine


def open_engine(db: str | os.PathLike[str] | None = None, **options: object) -> Engine:
    """Close the kernel's engine (if any) and open one on ``db``; returns it.

    Workflows the old engine was running stay RUNNING in its database and
    are carried on by the next engine that opens it.
    """
    global _engine
    with _lock:
        old, _engine = _engine, None
        if old is not None:
            old.close()
        _engine = Engine(db, **options)  # type: ignore[arg-type]
        return _engine


def close() -> None:
    """Close the kernel's engine (``%unload_ext airt_nb``)."""
    global _engine
    with _lock:
        old, _engine = _engine, None
    if old is not None:
        old.close()
