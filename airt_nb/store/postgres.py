"""The PostgreSQL store: one database shared by engines and people on many machines.

Connections (psycopg 3, all in autocommit mode; a transaction is an explicit
``BEGIN`` ... ``COMMIT``):

* the **write connection**, shared by this process's threads through group
  commit (:class:`~.base.GroupCommit`).  A step's completion without further
  ops is one statement (:meth:`Tx.complete`), so one round trip; with
  ``durability="normal"`` it commits with ``synchronous_commit=off`` (a crash
  of the server may lose the last few hundred milliseconds of checkpoints,
  never make them half-written), while decisions, claims and everything else
  commit synchronously;
* the **listener** (:mod:`.pg_listen`): ``LISTEN airt``, and the engine's
  session advisory lock, which tells every other engine that this one lives;
* a few **readers** in a small pool, each in read-only mode.

Transient errors (serialization failures, deadlocks, a lost connection, a
server restarting) are retried with back-off for up to ``busy_timeout``
seconds; a connection lost while committing leaves the outcome unknown, and
only step completions, which can be recognised once written, are retried
then.  Anything else becomes a :class:`~airt_nb.StoreError` naming the
database without its password.

Times compared with leases come from the server's clock; lock, listen and
role details live in :mod:`.pg_listen` and :mod:`.pg_roles`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors

from ..errors import StoreError
from .base import Completion, GroupCommit, LeaseLostError, _Pending, redact, to_pyformat
from .migrations import LATEST, MIGRATIONS
from .pg_listen import Listener
from .protocol import Store
from .writes import PG_NOW, Tx

__all__ = ["PostgresStore"]

log = logging.getLogger("airt_nb")

T = TypeVar("T")

LOCK_CLASS = 7301  # pg_advisory_xact_lock(LOCK_CLASS, 0) serialises migrations
RESTART_GRACE = 10.0  # seconds after a server restart in which older engines may still be re-taking their locks
READERS = 4
TOGETHER_FROM = 6  # completions in one batch from which they are written by one statement

# An engine's lock key is a 64-bit hash of its owner id (no table, no collisions in practice);
# in pg_locks a bigint key shows as (classid, objid) = (high, low 32 bits), objsubid 1.  A server
# restart drops every lock at once: for RESTART_GRACE seconds afterwards, an engine registered
# before the restart counts as alive without its lock (it takes it again as it reconnects); one
# registered since has taken its lock before registering, so a missing lock means it is gone.
_ALIVE = (
    "SELECT o FROM unnest(?::text[]) AS o WHERE EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' "
    "AND l.granted AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = "
    "current_database()) AND l.classid::bigint = (hashtextextended(o, 7301) >> 32) & 4294967295 "
    "AND l.objid::bigint = hashtextextended(o, 7301) & 4294967295) "
    "OR (clock_timestamp() - pg_postmaster_start_time() < make_interval(secs => ?) "
    "AND EXISTS (SELECT 1 FROM engines e WHERE e.owner_id = o AND e.started_at < "
    "to_char(pg_postmaster_start_time() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')))"
)

sql_for = functools.lru_cache(maxsize=2048)(to_pyformat)


class _Cursor:
    """What :class:`Tx` and the reads expect of a cursor, on psycopg: ``?`` / ``:name`` placeholders."""

    __slots__ = ("_cur",)

    def __init__(self, cur: Any):
        self._cur = cur

    def execute(self, sql: str, params: Any = (), *, prepare: bool | None = None) -> Any:
        return self._cur.execute(sql_for(sql), params, prepare=prepare)

    def executemany(self, sql: str, rows: Any) -> Any:
        self._cur.executemany(sql_for(sql), list(rows))
        return self._cur


def _completion(op: Callable[..., Any]) -> Completion | None:
    owner = getattr(op, "__self__", None)
    return owner if isinstance(owner, Completion) else None


class _Readers:
    """A few read-only connections, lent to one query at a time; broken ones are dropped."""

    def __init__(self, connect: Callable[[], Any], size: int):
        self._connect = connect
        self._size = size
        self._idle: list[Any] = []
        self._count = 0
        self._cv = threading.Condition()
        self.closed = False

    @contextlib.contextmanager
    def take(self) -> Iterator[Any]:
        with self._cv:
            while not self._idle and self._count >= self._size:
                self._cv.wait()
            conn = self._idle.pop() if self._idle else None
            if conn is None:
                self._count += 1
        if conn is None:
            try:
                conn = self._connect()
            except BaseException:
                with self._cv:
                    self._count -= 1
                    self._cv.notify()
                raise
        try:
            yield conn
        finally:
            with self._cv:
                if conn.broken or conn.closed or self.closed:
                    self._count -= 1
                    with contextlib.suppress(Exception):
                        conn.close()
                else:
                    self._idle.append(conn)
                self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self.closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()


class PostgresStore(Store):
    """All of airt_nb's state in one PostgreSQL database (see the module docstring).

    ``url`` is a ``postgresql://user:password@host:port/dbname`` URL (any
    libpq parameter may follow as ``?name=value``).  ``durability="normal"``
    commits step completions asynchronously (``synchronous_commit=off``):
    safe against any crash of this process, and against a crash of the
    server but for its last few hundred milliseconds of checkpoints;
    ``"full"`` commits everything synchronously.

    When the role that connects may not write the ``approvals`` table itself
    (a per-user role set up with ``airt db grant``), decisions are recorded
    by the database's functions with the server's ``session_user`` as the
    decider: :attr:`authenticated_user` names it.

    >>> store = PostgresStore("postgresql://ann@db.example/airt")  # doctest: +SKIP
    """

    dialect = "postgresql"

    def __init__(self, url: str, *, durability: str = "normal", busy_timeout: float = 10.0, readers: int = READERS):
        self.path = redact(url)
        if durability not in ("normal", "full"):
            raise StoreError(f"durability must be 'normal' or 'full', got {durability!r}", path=self.path)
        self.url = url
        self.durability = durability
        self._busy = busy_timeout
        self._secret = _password(url)
        self._closed = False
        self._conn: Any = None
        self._conn = self._connect("write")
        try:
            self._migrate()
            row = self._conn.execute("SELECT session_user, has_table_privilege('approvals', 'UPDATE')").fetchone()
        except psycopg.Error as exc:
            self._conn.close()
            raise self._translate(exc, "open") from exc
        except BaseException:
            self._conn.close()
            raise
        self.session_user: str = row[0]
        self.definer = not row[1]
        self.authenticated_user = self.session_user if self.definer else None
        self._gc = GroupCommit(self._run_batch, self._closed_error)
        self._readers = _Readers(lambda: self._connect("read", read_only=True), max(1, readers))
        self._listener = Listener(self)

    # -- connections and errors ------------------------------------------------------------------

    def raw_connect(self, purpose: str, *, read_only: bool = False, **extra: Any) -> Any:
        """A new autocommit connection (psycopg errors are the caller's to translate)."""
        # Keepalives: a machine that vanished without closing its connection loses its lock (and
        # looks dead) within about half a minute, instead of the kernel's two hours.
        options = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
        if purpose == "write" and self.durability == "normal":
            # Checkpoints commit without waiting for the disk; what others rely on (decisions, requests,
            # claims, new workflows, engines' leases: Tx.synchronous) waits for it, per transaction.
            options += " -c synchronous_commit=off"
        if read_only:
            options += " -c default_transaction_read_only=on"
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(2, int(self._busy)),
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "options": options,
        }
        from psycopg.conninfo import conninfo_to_dict

        given = conninfo_to_dict(self.url)
        if "application_name" not in given:
            kwargs["application_name"] = f"airt_nb {purpose}"
        if "options" in given:
            kwargs["options"] = f"{given['options']} {options}"
        kwargs.update(extra)
        return psycopg.connect(self.url, **kwargs)

    def _connect(self, purpose: str, *, read_only: bool = False) -> Any:
        try:
            return self.raw_connect(purpose, read_only=read_only)
        except psycopg.Error as exc:
            raise self._translate(exc, "connect") from exc

    def scrub(self, text: str) -> str:
        """``text`` without the password (psycopg's messages never carry it; ours must not either)."""
        return text.replace(self._secret, "***") if self._secret else text

    def _translate(self, exc: BaseException, doing: str) -> StoreError:
        text = self.scrub(" ".join(str(exc).split()))
        state = getattr(exc, "sqlstate", None)
        if doing == "connect":
            msg = (
                f"cannot connect to database {self.path} ({text}); check the host, port, database name, "
                "user and password in the URL (AIRT_DB), and that the server accepts connections"
            )
        elif state == "42501":
            msg = (
                f"database {self.path}: permission denied ({text}) while trying to {doing}; the owner of the "
                "database can give this role access with: airt --db OWNER_URL db grant USER"
            )
        elif state == "25006" or (state or "").startswith("25"):
            msg = f"database {self.path} is read-only here ({text}); point AIRT_DB at the primary server"
        elif state == "53300":
            msg = f"database {self.path} has no connection slot left ({text}); raise max_connections or close idle clients"
        elif self._lost(exc, None):
            msg = (
                f"lost the connection to database {self.path} ({text}) while trying to {doing}, for more than "
                f"{self._busy:.0f} s; check that the server runs and is reachable"
            )
        else:
            msg = f"database {self.path}: {text} while trying to {doing}"
        return StoreError(msg, path=self.path)

    @staticmethod
    def _lost(exc: BaseException, conn: Any) -> bool:
        if isinstance(exc, pg_errors.AdminShutdown | pg_errors.CrashShutdown | pg_errors.CannotConnectNow):
            return True
        if conn is not None and (conn.broken or conn.closed):
            return True
        return type(exc) is psycopg.OperationalError  # connection failures carry no sqlstate

    def _transient(self, exc: BaseException, conn: Any) -> str | None:
        """``"retry"`` (run the transaction again), ``"lost"`` (reconnect first) or None."""
        if isinstance(exc, pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
            return "retry"
        if self._lost(exc, conn):
            return "lost"
        return None

    def _pause(self, began: float, delay: float) -> float:
        """Sleep before another try; returns the next delay."""
        time.sleep(min(delay * (1 + random.random()), max(0.0, began + self._busy - time.monotonic())))
        return min(delay * 2, 1.0)

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

    def _closed_error(self) -> StoreError:
        return StoreError(f"database {self.path} is closed", path=self.path)

    # -- migrations --------------------------------------------------------------------------------

    @staticmethod
    def _version(conn: Any) -> int:
        # pg_tables, read with the statement's snapshot: to_regclass() may answer from a catalog cache
        # that predates the migration another engine committed while this one waited for the lock.
        found = conn.execute(
            "SELECT 1 FROM pg_tables WHERE tablename = 'airt_meta' AND schemaname = current_schema()"
        ).fetchone()
        if found is None:
            return 0
        row = conn.execute("SELECT value FROM airt_meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        conn = self._conn
        version = self._version(conn)
        if version > LATEST:
            raise StoreError(
                f"database {self.path} was written by a newer airt_nb (schema version {version}, this one "
                f"knows up to {LATEST}); upgrade airt_nb (pip install -U airt_nb) to use it",
                path=self.path,
            )
        for m in MIGRATIONS:
            if m.number <= version:
                continue
            try:
                with conn.transaction():
                    # Engines opening a new database at once: one migrates, the others wait, then skip.
                    conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS,))
                    if self._version(conn) >= m.number:
                        continue
                    conn.execute(m.postgres)
                    conn.execute(
                        "INSERT INTO airt_meta (key, value) VALUES ('schema_version', %s) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (str(m.number),),
                    )
            except pg_errors.InsufficientPrivilege as exc:
                raise StoreError(
                    f"database {self.path} needs schema migration {m.number} ({m.title}), which this role may "
                    f"not apply ({self.scrub(str(exc).strip())}); open it once with the URL of the tables' "
                    "owner (for instance: airt --db OWNER_URL list)",
                    path=self.path,
                ) from exc
            except psycopg.Error as exc:
                raise self._translate(exc, f"apply migration {m.number} ({m.title})") from exc

    @property
    def schema_version(self) -> int:
        return int(self.query("SELECT value FROM airt_meta WHERE key = 'schema_version'")[0][0])

    def check_writable(self) -> None:
        """Raise now if this role or server cannot write, rather than at the first checkpoint."""
        row = self._read_rows(
            "SELECT pg_is_in_recovery(), has_table_privilege('workflow_steps', 'INSERT, UPDATE')", ()
        )[0]
        if row[0]:
            raise StoreError(
                f"database {self.path} is a standby (read-only); point AIRT_DB at the primary server",
                path=self.path,
            )
        if not row[1]:
            raise StoreError(
                f"database {self.path}: role {self.session_user} may not write airt_nb's tables; the owner of "
                f"the database can give it access with: airt --db OWNER_URL db grant {self.session_user}",
                path=self.path,
            )

    # -- writing -----------------------------------------------------------------------------------

    def write(self, op: Callable[[Tx], T]) -> T:
        """Run ``op(tx)`` in a transaction and commit it (possibly together with others)."""
        return self._gc.write(op)

    def complete(self, completion: Completion) -> str | None:
        """Commit a step's completion: one statement, one round trip (when it has no further ops)."""
        return self._gc.write(completion.apply)

    def _tx(self, conn: Any) -> Tx:
        return Tx(_Cursor(conn.cursor()), "postgresql", definer=self.definer)

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
        error = self._translate(exc, doing)
        error.__cause__ = exc
        return error

    # -- reading -------------------------------------------------------------------------------------

    def _read_rows(self, sql: str, params: Any, *, columns: bool = False) -> Any:
        if self._closed:
            raise self._closed_error()
        began, delay = time.monotonic(), 0.01
        while True:
            conn = None
            try:
                with self._readers.take() as conn:
                    cur = conn.execute(sql_for(sql), params)
                    rows = cur.fetchall() if cur.description else []
                    if columns:
                        return [d[0] for d in cur.description], rows
                    return rows
            except psycopg.Error as exc:
                if self._transient(exc, conn) is None or time.monotonic() - began > self._busy or self._closed:
                    raise self._translate(exc, "read") from exc
                delay = self._pause(began, delay)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read-only statement of the store's (``?`` placeholders) and return all rows."""
        return self._read_rows(sql, params)  # type: ignore[no-any-return]

    def columns_and_rows(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        return self._read_rows(sql, params, columns=True)  # type: ignore[no-any-return]

    # -- clocks, engines and wake-ups -----------------------------------------------------------------

    def now(self) -> str:
        """The server's clock: engines on machines whose clocks disagree still agree on leases."""
        return str(self._read_rows(f"SELECT {PG_NOW}", ())[0][0])

    def engines_alive(self, owners: Sequence[str]) -> set[str] | None:
        """The engines among ``owners`` whose session lock is held (see :data:`RESTART_GRACE`)."""
        if not owners:
            return set()
        return {r[0] for r in self._read_rows(_ALIVE, (list(owners), RESTART_GRACE))}

    def hold_engine_lock(self, owner: str) -> None:
        """Take ``owner``'s session lock on the listener connection: held while this engine lives."""
        self._listener.hold(owner)

    def listen(self, owner: str, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when another engine wakes ``owner`` or announces work (NOTIFY airt),
        and after the listener reconnected (a notification may have been missed)."""
        self._listener.start(owner, callback)

    def notify_now(self, channel: str, payload: str = "") -> None:
        """``NOTIFY channel`` at once, outside any transaction (on the write connection)."""
        with self._gc.exclusive():
            self._writer().execute("SELECT pg_notify(%s, %s)", (channel, payload))

    def data_version(self) -> str:
        """The server's WAL position: changes whenever anything is written (a cheap "look again" token)."""
        return str(self._read_rows("SELECT pg_current_wal_insert_lsn()::text", ())[0][0])

    # -- closing -------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._listener.stop()
        self._gc.close()
        self._closed = True
        self._readers.close()
        with contextlib.suppress(Exception):
            if self._conn is not None:
                self._conn.close()
        self._listener.close()


def _password(url: str) -> str | None:
    try:
        from psycopg.conninfo import conninfo_to_dict

        value = conninfo_to_dict(url).get("password")
    except Exception:
        return None
    return str(value) if value else None
