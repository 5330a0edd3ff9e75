"""A PostgreSQL store's write connection: group commit batches turned into as few round trips as possible.

One connection is shared by the threads of a process through
:class:`~.base.GroupCommit`.  In a batch, a step's completion without further
ops is one autocommit statement (one round trip, one commit); from
:data:`TOGETHER_FROM` such completions on, all of them are one statement.
Everything else runs in one transaction (each op in a savepoint when there
are several).  With ``durability="normal"`` the connection's transactions
commit asynchronously, and those that write something another engine or a
person relies on (:attr:`Tx.synchronous`) wait for the disk.

Retries: a serialization failure or a deadlock runs the batch again; a lost
connection is reopened and the batch run again, unless it was lost while
committing, when the outcome is unknown: completions are then looked up
(:meth:`Tx.completion_applied`) and only those not written are written; any
other op fails with a :class:`~airt_nb.StoreError` saying so.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import psycopg

from ..errors import StoreError
from .base import Completion, LeaseLostError, _Pending
from .pg_conn import Connections, Cursor
from .writes import Tx

__all__ = ["TOGETHER_FROM", "BatchWriter"]

TOGETHER_FROM = 6  # completions in one batch from which they are written by one statement


def _completion(op: Callable[..., Any]) -> Completion | None:
    owner = getattr(op, "__self__", None)
    return owner if isinstance(owner, Completion) else None


class BatchWriter(Connections):
    """The write side of :class:`~.postgres.PostgresStore` (see the module docstring)."""

    definer: bool
    _conn: Any
    _closed: bool
    _gc: Any

    def _writer(self) -> Any:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            self._conn = None
            if self._closed:
                raise self._closed_error()
            self._conn = conn = self.raw_connect("write")
        return conn

    def _tx(self, conn: Any) -> Tx:
        return Tx(Cursor(conn.cursor()), "postgresql", definer=self.definer)

    def _run_batch(self, batch: list[_Pending]) -> None:
        plain = [i for i in batch if (c := _completion(i.op)) is not None and not c.more]
        # One statement for many completions costs more than one for a single one: it pays from a
        # few on (measured: about 6), or from two when each commit waits for the disk.
        if len(plain) >= (2 if self.durability == "full" else TOGETHER_FROM):
            self._complete_together(plain)
        else:
            for item in plain:
                self._complete_alone(item)
        rest = [i for i in batch if i not in plain]
        if rest:
            self._transaction(rest)

    def _complete_alone(self, item: _Pending) -> None:
        """One completion as one autocommit statement; after a connection lost mid-way, look before redoing."""
        c = _completion(item.op)
        assert c is not None
        began, delay, unknown = time.monotonic(), 0.01, False
        while True:
            conn = None
            try:
                conn = self._writer()
                tx = self._tx(conn)
                if unknown:
                    applied, requested = tx.completion_applied(c)
                    if applied:
                        item.result = requested
                        return
                item.result = item.op(tx)
                return
            except psycopg.Error as exc:
                kind = self._transient(exc, conn)
                if kind is None or time.monotonic() - began > self._busy:
                    item.error = self._op_error(exc, "record a step")
                    return
                unknown = unknown or kind == "lost"
                delay = self._pause(began, delay)
            except BaseException as exc:
                item.error = exc
                return

    def _complete_together(self, items: list[_Pending]) -> None:
        """Several threads' completions in one statement: one round trip, one commit."""
        todo = list(items)
        began, delay, unknown = time.monotonic(), 0.01, False
        while todo:
            conn = None
            try:
                conn = self._writer()
                tx = self._tx(conn)
                if unknown:
                    for item in list(todo):
                        applied, requested = tx.completion_applied(_completion(item.op))  # type: ignore[arg-type]
                        if applied:
                            item.result = requested
                            todo.remove(item)
                    if not todo:
                        return
                written = tx.complete_many([_completion(i.op) for i in todo])  # type: ignore[misc]
                for item in todo:
                    c = _completion(item.op)
                    assert c is not None
                    if c.step_id in written:
                        item.result = written[c.step_id]
                    else:
                        item.error = LeaseLostError(c.workflow_id)
                return
            except psycopg.Error as exc:
                kind = self._transient(exc, conn)
                if kind is None:
                    for item in todo:  # one bad row must not fail the others: each on its own
                        self._complete_alone(item)
                    return
                if time.monotonic() - began > self._busy:
                    self._fail(todo, self._op_error(exc, "record a step"))
                    return
                unknown = unknown or kind == "lost"
                delay = self._pause(began, delay)

    def _transaction(self, items: list[_Pending]) -> None:
        began, delay, unknown = time.monotonic(), 0.01, False
        steps_only = all(_completion(i.op) is not None for i in items)
        while True:
            conn = None
            committing = False
            for item in items:
                item.result = item.error = None
            try:
                conn = self._writer()
                tx = self._tx(conn)
                if unknown:  # only completions get here: keep those already committed
                    for item in list(items):
                        c = _completion(item.op)
                        assert c is not None
                        applied, requested = tx.completion_applied(c)
                        if applied:
                            item.result = requested
                            items = [i for i in items if i is not item]
                    if not items:
                        return
                conn.execute("BEGIN")
                if len(items) == 1:
                    item = items[0]
                    try:
                        item.result = item.op(tx)
                    except psycopg.Error:
                        raise
                    except BaseException as exc:
                        conn.execute("ROLLBACK")
                        item.error = exc
                        return
                else:
                    for item in items:
                        self._in_savepoint(conn, tx, item)
                if tx.synchronous and self.durability == "normal":
                    # Another engine or a person relies on it: wait for the disk (see raw_connect).
                    conn.execute("SET LOCAL synchronous_commit = on")
                committing = True
                conn.execute("COMMIT")
                return
            except psycopg.Error as exc:
                kind = self._transient(exc, conn)
                if conn is not None and not conn.broken:
                    with contextlib.suppress(psycopg.Error):
                        conn.execute("ROLLBACK")
                if committing and kind == "lost" and not steps_only:
                    error = StoreError(
                        f"lost the connection to database {self.path} while committing "
                        f"({self.scrub(str(exc).strip())}); whether the change was recorded is unknown: "
                        "look at the workflow before trying again",
                        path=self.path,
                    )
                    error.__cause__ = exc
                    self._fail(items, error)
                    return
                if kind is None or time.monotonic() - began > self._busy:
                    self._fail(items, self._op_error(exc, "write"))
                    return
                unknown = unknown or (committing and kind == "lost")
                delay = self._pause(began, delay)

    def _in_savepoint(self, conn: Any, tx: Tx, item: _Pending) -> None:
        conn.execute("SAVEPOINT op")
        try:
            item.result = item.op(tx)
            conn.execute("RELEASE op")
        except psycopg.Error as exc:
            if self._transient(exc, conn):
                raise
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            item.result, item.error = None, self._op_error(exc, "write")
        except BaseException as exc:
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            item.result, item.error = None, exc

    @staticmethod
    def _fail(items: list[_Pending], error: BaseException) -> None:
        for item in items:
            if item.error is None:
                item.result, item.error = None, error

    def _op_error(self, exc: BaseException, doing: str) -> BaseException:
        error = self.store_error(exc, doing)
        error.__cause__ = exc
        return error

    def notify_now(self, channel: str, payload: str = "") -> None:
        """``NOTIFY channel`` at once, outside any transaction (on the write connection)."""
        with self._gc.exclusive():
            self._writer().execute("SELECT pg_notify(%s, %s)", (channel, payload))
