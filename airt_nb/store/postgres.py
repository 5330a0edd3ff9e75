"""The PostgreSQL store: one database shared by engines and people on many machines.

Connections (psycopg 3, all in autocommit mode; a transaction is an explicit
``BEGIN`` ... ``COMMIT``):

* the **write connection** (:mod:`.pg_write`), shared by this process's
  threads through group commit.  A step's completion is one statement, so
  one round trip; many at once are one statement too.  With
  ``durability="normal"`` checkpoints commit asynchronously (a crash of the
  server may lose its last few hundred milliseconds of them, never leave
  them half-written); decisions, requests, claims, new workflows and the
  engines' leases always wait for the disk;
* the **listener** (:mod:`.pg_listen`): ``LISTEN airt``, and the engine's
  session advisory lock, which tells every other engine that this one lives;
* a few **readers** in a small pool (:mod:`.pg_conn`), each read-only.

Transient errors (serialization failures, deadlocks, a lost connection, a
server restarting) are retried with back-off for up to ``busy_timeout``
seconds; anything else becomes a :class:`~airt_nb.StoreError` naming the
database without its password.  Migrations run in one transaction each under
an advisory lock.  Times compared with leases come from the server's clock.
Per-user roles and what they may do: :mod:`.pg_roles`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors

from ..errors import StoreError
from .base import Completion, GroupCommit, redact
from .migrations import LATEST, MIGRATIONS
from .pg_conn import Readers, password_of, sql_for
from .pg_listen import Listener
from .pg_write import BatchWriter
from .protocol import Store
from .writes import PG_NOW, Tx

__all__ = ["PostgresStore"]

log = logging.getLogger("airt_nb")

T = TypeVar("T")

LOCK_CLASS = 7301  # pg_advisory_xact_lock(LOCK_CLASS, 0) serialises migrations
RESTART_GRACE = 10.0  # seconds after a server restart in which older engines may still be re-taking their locks
READERS = 4

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


class PostgresStore(BatchWriter, Store):
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
        self._secret = password_of(url)
        self._closed = False
        self._conn: Any = None
        self._conn = self._connect("write")
        try:
            self._migrate()
            row = self._conn.execute("SELECT session_user, has_table_privilege('approvals', 'UPDATE')").fetchone()
        except psycopg.Error as exc:
            self._conn.close()
            raise self.store_error(exc, "open") from exc
        except BaseException:
            self._conn.close()
            raise
        self.session_user: str = row[0]
        self.definer = not row[1]
        self.authenticated_user = self.session_user if self.definer else None
        self._gc = GroupCommit(self._run_batch, self._closed_error)
        self._readers = Readers(lambda: self._connect("read", read_only=True), max(1, readers))
        self._listener = Listener(self)

    # -- connections and errors ------------------------------------------------------------------

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
                raise self.store_error(exc, f"apply migration {m.number} ({m.title})") from exc

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
                    raise self.store_error(exc, "read") from exc
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
