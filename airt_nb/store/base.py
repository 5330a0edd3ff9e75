"""What the backends share: the checkpoint the hot path writes, group commit, placeholders.

A store is one database (a SQLite file, or a PostgreSQL database) seen by the
engine, the frames, the panels and the command line through the same names.
Writes are functions ``op(tx)`` run in one transaction (:meth:`Store.write`);
the one write that happens for every step, a step's completion, has an
operation of its own (:meth:`Store.complete`) so that each backend can make
it as cheap as it can: one row updated, fenced on the workflow's lease, in
one statement (and on PostgreSQL one round trip).

The SQL both backends share is written once (:mod:`.writes`, :mod:`.reads`)
with ``?`` and ``:name`` placeholders; the PostgreSQL backend translates them
with :func:`to_pyformat`.

Imports no driver: the backends do.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .writes import Tx

__all__ = ["Completion", "GroupCommit", "LeaseLostError", "redact", "to_pyformat"]

T = TypeVar("T")


class LeaseLostError(Exception):
    """Raised inside an op when this engine no longer holds the lease of the workflow it writes."""


@dataclass(slots=True)
class Completion:
    """A step's completion: what the hot path commits, in one transaction.

    The step's row gets its final status, attempt, times, inputs and outputs;
    the write only succeeds while ``owner`` holds the workflow's lease (else
    :class:`LeaseLostError`).  ``intent`` is the compensation intent
    ``(step_name, action, inputs, outputs, state)`` committed with it;
    ``more`` are further ops of the same transaction (starting steps that
    cannot be implied, an approval request, the workflow settling).
    """

    workflow_id: str
    owner: str
    step_id: int
    attempt: int
    started_at: str
    finished_at: str
    inputs: str | None
    outputs: str | None
    fingerprint: str | None
    intent: tuple[str, str, str, str, str | None] | None = None
    more: list[Callable[[Tx], Any]] | None = None
    status: str = "COMPLETED"

    def apply(self, tx: Tx) -> str | None:
        """Run in the transaction; returns the workflow's pending request (``cancel``, ``rollback``...)."""
        requested = tx.complete(self)
        if self.more:
            for op in self.more:
                op(tx)
        return requested


def redact(url: str) -> str:
    """``url`` without its password, for messages, logs and banners.

    >>> redact("postgresql://ann:s3cret@db.example/airt")
    'postgresql://ann:***@db.example/airt'
    >>> redact("postgresql://db.example/airt?user=ann&password=s3cret")
    'postgresql://db.example/airt?user=ann&password=***'
    >>> redact("/tmp/airt.db")
    '/tmp/airt.db'
    """
    url = re.sub(r"^([a-z][a-z0-9+.-]*://[^:/@]*):[^@/]*@", r"\1:***@", url)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url, flags=re.IGNORECASE)


_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|\?|:[A-Za-z_][A-Za-z0-9_]*|::|%")


def to_pyformat(sql: str) -> str:
    """SQL written with ``?`` / ``:name`` placeholders, rewritten for psycopg (``%s`` / ``%(name)s``).

    Quoted text is left alone (only its ``%`` doubled), and so are ``::`` casts.

    >>> to_pyformat("SELECT * FROM t WHERE a = ? AND b = :b AND c LIKE '%x' AND d::text = '?'")
    "SELECT * FROM t WHERE a = %s AND b = %(b)s AND c LIKE '%%x' AND d::text = '?'"
    """

    def swap(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        if token == "::":
            return token
        if token[0] == ":":
            return f"%({token[1:]})s"
        return token.replace("%", "%%")  # a quoted literal or identifier

    return _PLACEHOLDER.sub(swap, sql)


class _Pending:
    __slots__ = ("done", "error", "op", "result", "single")

    def __init__(self, op: Callable[[Any], Any], single: bool = False):
        self.op = op
        self.single = single  # the op runs one statement: alone, it is its own transaction
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommit:
    """Many threads' transactions committed together: the first writer leads, the others ride along.

    A thread that wants to write queues its op; whoever finds no commit in
    progress becomes the leader, runs every queued op in one transaction
    (each in its own savepoint when there are several, so that one op's
    failure does not undo the others), commits once, and hands the results
    back.  Alone, a writer pays exactly one commit and no thread hand-off;
    under load, many checkpoints share one commit (one fsync).

    ``run_batch(items)`` is the backend's: it must set ``item.result`` or
    ``item.error`` of every item.
    """

    def __init__(self, run_batch: Callable[[list[_Pending]], None], closed_error: Callable[[], Exception]):
        self._run_batch = run_batch
        self._closed_error = closed_error
        # The lock is taken directly (a C-level context manager) on the path of a lone writer; the
        # condition over it is only for writers that have to wait.
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._queue: list[_Pending] = []
        self._leading = False
        self._waiters = 0  # writers waiting for a commit (followers, or for the leader to finish)
        self.closed = False

    def write(self, op: Callable[[Any], T], *, single: bool = False) -> T:
        """Run ``op`` in a transaction committed with whatever others are queued; ``single``: ``op``
        runs exactly one statement, which the backend may run as its own transaction when alone."""
        item = _Pending(op, single)
        cv = self._cv
        with self._lock:
            if self.closed:
                raise self._closed_error()
            if not self._leading and not self._queue:
                self._leading = True  # alone: lead with no queue at all (the usual case)
                batch = [item]
            else:
                self._queue.append(item)
                self._waiters += 1
                try:
                    while not item.done:
                        if not self._leading:
                            self._leading = True
                            batch, self._queue = self._queue, []
                            break
                        cv.wait()
                    else:
                        if item.error is not None:
                            raise item.error
                        return item.result  # type: ignore[no-any-return]
                finally:
                    self._waiters -= 1
        try:
            self._run_batch(batch)
        finally:
            with self._lock:
                self._leading = False
                for done in batch:
                    done.done = True
                if self._waiters:
                    cv.notify_all()
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the writer (no transaction in progress) for one statement outside any transaction."""
        cv = self._cv
        with cv:
            self._waiters += 1
            try:
                while self._leading:
                    cv.wait()
            finally:
                self._waiters -= 1
            if self.closed:
                raise self._closed_error()
            self._leading = True
        try:
            yield
        finally:
            with cv:
                self._leading = False
                cv.notify_all()

    def close(self) -> None:
        """Refuse new writes; wait for the commit in progress."""
        with self._cv:
            self._waiters += 1
            try:
                while self._leading:
                    self._cv.wait()
            finally:
                self._waiters -= 1
            self.closed = True
