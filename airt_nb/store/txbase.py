"""What every group of write statements works on: one transaction's cursor and its dialect."""

from __future__ import annotations

from typing import Any

__all__ = ["TxBase"]


class TxBase:
    """A write transaction's cursor and dialect; :class:`~airt_nb.store.writes.Tx` adds the statements."""

    __slots__ = ("_c", "definer", "dialect", "synchronous")

    def __init__(self, cursor: Any, dialect: str, *, definer: bool = False):
        self._c = cursor
        self.dialect = dialect
        # PostgreSQL with a per-user role: approvals are written only through the SECURITY DEFINER
        # functions of migration 7, which record the server's session_user as the decider.
        self.definer = definer
        # Set by the writes another engine or a person relies on (decisions, requests, claims and
        # releases, new workflows, engines and their leases): with durability "normal" on PostgreSQL,
        # a transaction without any of them commits asynchronously (see PostgresStore).
        self.synchronous = False
