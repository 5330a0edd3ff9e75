"""The :class:`Store` protocol: the database as the engine, frames, panels and command line see it.

Every backend (:class:`~.sqlite.SQLiteStore`, :class:`~.postgres.PostgresStore`)
is a ``Store``: the reads are shared (:class:`~.reads.Reads`), the rest is
each backend's own — how a transaction is run and committed
(:meth:`Store.write`), the one operation the hot path calls for every step
(:meth:`Store.complete`), whose clock decides leases (:meth:`Store.now`), how
another engine's signal arrives (:meth:`Store.listen`), and whether the
database itself can tell that an engine is alive (:meth:`Store.engines_alive`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .reads import Reads

if TYPE_CHECKING:
    from .base import Completion
    from .writes import Tx

__all__ = ["Store"]

T = TypeVar("T")


class Store(Reads, abc.ABC):
    """One database (a SQLite file or a PostgreSQL database) and every operation on it."""

    dialect: str
    """``"sqlite"`` or ``"postgresql"``."""
    path: str
    """Where the database is, for messages: a file path, or a URL without its password."""
    durability: str
    authenticated_user: str | None = None
    """The database role every decision made through this store is recorded under (PostgreSQL with a
    per-user role: the server's ``session_user``); None when the decider's name is claimed (``by=``)."""

    @abc.abstractmethod
    def write(self, op: Callable[[Tx], T]) -> T:
        """Run ``op(tx)`` in one transaction and commit it (possibly together with others)."""

    @abc.abstractmethod
    def complete(self, completion: Completion) -> str | None:
        """Commit a step's completion (one row, fenced on the lease); returns the workflow's pending request."""

    @abc.abstractmethod
    def now(self) -> str:
        """The database's current time (ISO-8601 UTC text): leases and expiries use this clock."""

    @abc.abstractmethod
    def listen(self, owner: str, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (on a thread of the store) whenever another engine signals ``owner``
        or announces work; at most one listener per store."""

    def hold_engine_lock(self, owner: str) -> None:
        """Hold ``owner``'s lock for as long as this store is open, so that other engines can see it
        lives (PostgreSQL: a session advisory lock); called before the engine registers."""

    @abc.abstractmethod
    def engines_alive(self, owners: Sequence[str]) -> set[str] | None:
        """Which of ``owners`` are alive as far as the database can tell (PostgreSQL: their
        session lock is held); ``None`` when the database cannot tell (SQLite)."""

    @abc.abstractmethod
    def data_version(self) -> Any:
        """A cheap value that changes whenever anything is committed (for live views)."""

    @abc.abstractmethod
    def check_writable(self) -> None:
        """Raise :class:`~airt_nb.StoreError` now if this database cannot be written."""

    @abc.abstractmethod
    def close(self) -> None: ...
